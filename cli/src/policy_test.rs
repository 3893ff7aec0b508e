//! `scopegate test`: policy tests, in order, against one in-memory ledger.

use crate::*;
use scopegate_engine::verdict::{Challenge, Outcome, Proof};

/// One policy test case.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) headers: HeaderList,
    pub(crate) body: Vec<u8>,
    pub(crate) expect: String,
    pub(crate) reason: Option<String>,
    /// Approvers the runner mints tokens for, for the challenge this request gets.
    pub(crate) approved_by: Vec<String>,
    /// A name for the tokens: minted with `approved_by` they are kept under it; without,
    /// the tokens kept under it are sent again (a replay).
    pub(crate) token: Option<String>,
}

pub(crate) fn key_file(path: Option<&Path>) -> Result<Vec<(String, String)>, String> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text =
        String::from_utf8(read(path)?).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(n, k)| (n.trim().to_string(), k.trim().to_string()))
        .collect())
}

pub(crate) fn credential(
    keys: &[(String, String)],
    name: &str,
) -> Result<(String, Vec<u8>), String> {
    let key = keys
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, k)| k.clone())
        .ok_or_else(|| format!("no key named `{name}` (give --keys)"))?;
    Ok(("authorization".into(), format!("Bearer {key}").into_bytes()))
}

pub(crate) fn load_cases(path: &Path, keys: &[(String, String)]) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "http"))
            .collect();
        files.sort();
        for f in files {
            let raw = read(&f)?;
            let text = String::from_utf8_lossy(&raw);
            let (mut expect, mut who, mut reason, mut skip) = (None, None, None, 0);
            for line in text.lines() {
                let Some(meta) = line.strip_prefix('#') else {
                    break;
                };
                skip += line.len() + 1;
                let (k, v) = meta.split_once(':').unwrap_or((meta, ""));
                match k.trim() {
                    "expect" => expect = Some(v.trim().to_string()),
                    "as" => who = Some(v.trim().to_string()),
                    "reason" => reason = Some(v.trim().to_string()),
                    _ => {}
                }
            }
            let (mut headers, body) = parse_raw_request(raw.get(skip..).unwrap_or_default())?;
            if let Some(w) = who {
                headers.push(credential(keys, &w)?);
            }
            cases.push(Case {
                name: f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                headers,
                body,
                expect: expect.ok_or_else(|| format!("{}: no `# expect:` line", f.display()))?,
                reason,
                approved_by: Vec::new(),
                token: None,
            });
        }
        return Ok(cases);
    }
    let text =
        String::from_utf8(read(path)?).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let c: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{at}: {e}"))?;
        let field = |k: &str| c.get(k).and_then(|v| v.as_str());
        let mut headers = vec![
            (
                ":method".to_string(),
                field("method").unwrap_or("GET").as_bytes().to_vec(),
            ),
            (
                ":path".to_string(),
                field("path")
                    .ok_or(format!("{at}: no `path`"))?
                    .as_bytes()
                    .to_vec(),
            ),
            (
                ":authority".to_string(),
                field("authority")
                    .unwrap_or("gateway.test")
                    .as_bytes()
                    .to_vec(),
            ),
        ];
        if let Some(w) = field("as") {
            headers.push(credential(keys, w)?);
        }
        headers.extend(case_headers(c.get("headers")).map_err(|e| format!("{at}: {e}"))?);
        let body = match (c.get("body"), field("body_base64")) {
            (_, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("{at}: body_base64: {e}"))?,
            (None | Some(serde_json::Value::Null), None) => Vec::new(),
            (Some(serde_json::Value::String(s)), None) => s.clone().into_bytes(),
            (Some(v), None) => v.to_string().into_bytes(),
        };
        if !body.is_empty() && !headers.iter().any(|(n, _)| n == "content-type") {
            headers.push(("content-type".into(), b"application/json".to_vec()));
        }
        cases.push(Case {
            name: field("name").unwrap_or(&at).to_string(),
            headers,
            body,
            expect: field("expect")
                .ok_or(format!("{at}: no `expect`"))?
                .to_string(),
            reason: field("reason").map(str::to_string),
            approved_by: match c.get("approved_by") {
                None => Vec::new(),
                Some(serde_json::Value::Array(names)) => names
                    .iter()
                    .map(|n| n.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or(format!("{at}: `approved_by` is a list of approver names"))?,
                Some(_) => return Err(format!("{at}: `approved_by` is a list of approver names")),
            },
            token: field("token").map(str::to_string),
        });
    }
    Ok(cases)
}

/// A case's `headers`: an object (`{"name": "value"}`), or a list of `[name, value]` pairs
/// when a name repeats (the order is kept: repeats are what some cases test).
pub(crate) fn case_headers(h: Option<&serde_json::Value>) -> Result<HeaderList, String> {
    let pair = |n: &str, v: &serde_json::Value| -> Result<(String, Vec<u8>), String> {
        let v = v
            .as_str()
            .ok_or_else(|| format!("header `{n}`: the value is not a string"))?;
        Ok((n.to_ascii_lowercase(), v.as_bytes().to_vec()))
    };
    match h {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Object(m)) => m.iter().map(|(n, v)| pair(n, v)).collect(),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([serde_json::Value::String(n), v]) => pair(n, v),
                _ => Err("`headers` list items are [name, value] pairs".to_string()),
            })
            .collect(),
        Some(_) => Err("`headers` is an object or a list of [name, value] pairs".to_string()),
    }
}

pub(crate) fn policy_test(
    bundle: &Path,
    cases: &Path,
    keys: Option<&Path>,
    now: Option<&str>,
) -> Result<(), String> {
    let mut policy = load(bundle, &[])?;
    let keys = key_file(keys)?;
    let cases = load_cases(cases, &keys)?;
    let now_ms = now_or(now)?;
    // The runner is the approver of `approved_by` cases, with keys of its own for the run:
    // the shared key, or (signed approvals) a key per approver and the gateway's.
    let approver = if cases.iter().any(|c| !c.approved_by.is_empty()) {
        Some(Minter::for_run(&mut policy, &cases)?)
    } else {
        None
    };
    let engine = Engine::new(policy);
    // Cases run in order against one ledger, as requests do against one Envoy: a token is
    // used once, a budget spent across cases.
    let ledger = MemoryLedger::new();
    let mut tokens: std::collections::HashMap<String, String> = Default::default();
    let (mut passed, mut failed) = (0, 0);
    let width = cases
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(4)
        .min(60);
    for c in cases {
        let mut headers = c.headers;
        let sent = match (&approver, c.approved_by.is_empty(), &c.token) {
            (Some(minter), false, name) => {
                let challenge = engine.decide(headers.clone(), &c.body, now_ms);
                let minted = mint(minter, &challenge, &c.approved_by, now_ms)
                    .map_err(|e| format!("{}: {e}", c.name))?;
                if let Some(name) = name {
                    tokens.insert(name.clone(), minted.clone());
                }
                Some(minted)
            }
            (_, true, Some(name)) => Some(
                tokens
                    .get(name)
                    .cloned()
                    .ok_or(format!("{}: no tokens named `{name}` yet", c.name))?,
            ),
            _ => None,
        };
        if let Some(t) = sent {
            headers.push(("x-scopegate-approval".into(), t.into_bytes()));
        }
        let v = settle(&ledger, engine.decide(headers, &c.body, now_ms), now_ms);
        let ok = v.decision().as_str() == c.expect
            && c.reason
                .as_ref()
                .is_none_or(|r| v.reason().contains(r.as_str()));
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
        println!(
            "{} {:width$}  expect {:<15} got {:<15} {}",
            if ok { "PASS" } else { "FAIL" },
            c.name,
            c.expect,
            v.decision().as_str(),
            if ok {
                String::new()
            } else {
                v.reason().into_owned()
            },
        );
    }
    println!("{}: {passed} passed, {failed} failed", bundle.display());
    if failed > 0 {
        return Err(format!("{failed} policy test(s) failed"));
    }
    Ok(())
}

/// How the runner mints approvals for its cases.
pub(crate) enum Minter {
    Shared(approval::ApprovalKey),
    /// Each named approver's private key (the policy's public keys replaced by theirs).
    Signed(std::collections::HashMap<String, approval::PrivateKey>),
}

impl Minter {
    /// Keys for this run, put into the policy as the filter's environment would.
    fn for_run(
        policy: &mut scopegate_engine::policy::Policy,
        cases: &[Case],
    ) -> Result<Self, String> {
        if let Some(s) = policy.signed.as_mut() {
            let gateway = crate::approver::fresh_key()?;
            s.gateway = gateway.public();
            s.signer = Some(gateway);
            let mut keys = std::collections::HashMap::new();
            for name in cases.iter().flat_map(|c| &c.approved_by) {
                if keys.contains_key(name) {
                    continue;
                }
                let key = crate::approver::fresh_key()?;
                // A name the bundle does not list stays unlisted: its token is refused.
                if let Some(a) = s.approvers.iter_mut().find(|a| &a.name == name) {
                    a.key = key.public();
                }
                keys.insert(name.clone(), key);
            }
            return Ok(Minter::Signed(keys));
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("no randomness from the OS: {e}"))?;
        policy.approval_key = Some(approval::ApprovalKey::new(&secret)?);
        Ok(Minter::Shared(approval::ApprovalKey::new(&secret)?))
    }
}

/// Tokens for a challenge, one per approver, comma-separated as an agent sends them; each
/// valid as long as the challenge is answerable.
pub(crate) fn mint(
    minter: &Minter,
    challenge: &scopegate_engine::Verdict,
    approvers: &[String],
    now_ms: i64,
) -> Result<String, String> {
    let (
        Outcome::Challenge(
            c @ Challenge {
                proof: Proof::Approval { .. },
                ..
            },
        ),
        Some(digest),
        Some(key_id),
    ) = (
        &challenge.outcome,
        &challenge.digest,
        &challenge.subject.key,
    )
    else {
        return Err(format!(
            "`approved_by`, but the request is not awaiting approval (decision `{}`: {})",
            challenge.decision().as_str(),
            challenge.reason()
        ));
    };
    let now = now_ms.div_euclid(1000);
    let exp = now + c.ttl_secs;
    let tokens = approvers
        .iter()
        .map(|a| match (minter, &c.signed) {
            (Minter::Shared(key), _) => {
                claims(digest, key_id, exp, a).map(|c| approval::issue(key, &c))
            }
            (Minter::Signed(keys), Some(signed)) => match keys.get(a) {
                Some(key) => sign_approval(key, signed, a, now, exp),
                None => Err(format!("no key for approver `{a}`")),
            },
            (Minter::Signed(_), None) => Err("the challenge is not signed".into()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tokens.join(","))
}
