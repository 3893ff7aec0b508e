//! `scopegate test`: policy tests, in order, against one in-memory ledger.

use crate::*;
use scopegate_engine::bundle::Friction;
use scopegate_engine::verdict::{Challenge, Outcome, Proof};

/// One policy test case.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) name: String,
    /// Where it is written: `file:line`, or the `.http` file.
    pub(crate) at: String,
    pub(crate) headers: HeaderList,
    pub(crate) body: Vec<u8>,
    pub(crate) expect: String,
    pub(crate) reason: Option<String>,
    /// The key the request is sent with (`as`), by its name in the `--keys` file: its
    /// credential is added when the case runs, so an unknown name fails that case only.
    pub(crate) key: Option<String>,
    /// Where in `headers` the credential goes (after the pseudo-headers of a JSON Lines
    /// case, after the headers of an `.http` one).
    pub(crate) key_at: usize,
    /// Approvers the runner mints tokens for, for the challenge this request gets.
    pub(crate) approved_by: Vec<String>,
    /// A name for the tokens: minted with `approved_by` they are kept under it; without,
    /// the tokens kept under it are sent again (a replay).
    pub(crate) token: Option<String>,
}

/// The keys cases name with `as`, and the file they came from.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    file: Option<PathBuf>,
    names: Vec<(String, String)>,
}

impl Keys {
    /// `name=key` lines (blank lines and `#` comments skipped); no file, no keys.
    pub(crate) fn read(path: Option<&Path>) -> Result<Keys, String> {
        let Some(path) = path else {
            return Ok(Keys::default());
        };
        let text =
            String::from_utf8(read(path)?).map_err(|_| format!("{}: not UTF-8", path.display()))?;
        Ok(Keys {
            file: Some(path.to_path_buf()),
            names: text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(n, k)| (n.trim().to_string(), k.trim().to_string()))
                .collect(),
        })
    }

    /// The `authorization` header for the key named `name`.
    pub(crate) fn credential(&self, name: &str) -> Result<(String, Vec<u8>), String> {
        if let Some((_, key)) = self.names.iter().find(|(n, _)| n == name) {
            return Ok(("authorization".into(), format!("Bearer {key}").into_bytes()));
        }
        Err(match &self.file {
            None => format!(
                "the case is sent as key `{name}`, but no keys were given: they come from --keys FILE (`name=key` lines, as in policies/*.keys)"
            ),
            Some(file) => format!(
                "no key named `{name}` in {} (the --keys file; it names {})",
                file.display(),
                match self.names.as_slice() {
                    [] => "no key".to_string(),
                    names => names
                        .iter()
                        .map(|(n, _)| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            ),
        })
    }
}

pub(crate) fn load_cases(path: &Path) -> Result<Vec<Case>, String> {
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
            let (headers, body) = parse_raw_request(raw.get(skip..).unwrap_or_default())
                .map_err(|e| format!("{}: {e}", f.display()))?;
            cases.push(Case {
                name: f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                at: f.display().to_string(),
                key_at: headers.len(),
                headers,
                body,
                expect: expect.ok_or_else(|| format!("{}: no `# expect:` line", f.display()))?,
                reason,
                key: who,
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
        let key_at = headers.len();
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
            key: field("as").map(str::to_string),
            key_at,
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
            at,
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

/// `scopegate test`'s arguments.
#[derive(clap::Args)]
pub(crate) struct TestArgs {
    /// Bundle JSON file.
    bundle: PathBuf,
    /// Cases: a .jsonl file or a folder of .http files.
    cases: PathBuf,
    /// `name=key` lines (as in policies/*.keys): the keys cases name with `as`.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Evaluation time (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
    /// Run only the cases whose name contains this text (case-sensitive); none is an error.
    #[arg(long, value_name = "SUBSTRING")]
    filter: Option<String>,
    /// `human` (a table, what was not exercised, a summary) or `json` (one document).
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    format: TestFormat,
    /// Exit 1 also when a grant or guard of the bundle was not exercised by any case.
    #[arg(long)]
    require_coverage: bool,
}

/// How `scopegate test` prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TestFormat {
    Human,
    Json,
}

/// What one case came to.
#[derive(Debug)]
pub(crate) struct Ran {
    name: String,
    at: String,
    expect: String,
    expect_reason: Option<String>,
    /// The engine's verdict, settled against the run's ledger; `None` when the case could
    /// not be run (`error`).
    verdict: Option<scopegate_engine::Verdict>,
    error: Option<String>,
    /// What differed from the expectation, one sentence each.
    differences: Vec<String>,
}

impl Ran {
    fn passed(&self) -> bool {
        self.error.is_none() && self.differences.is_empty()
    }

    fn json(&self) -> serde_json::Value {
        let v = self.verdict.as_ref();
        json!({
            "name": self.name,
            "at": self.at,
            "expected": {"decision": self.expect, "reason": self.expect_reason},
            "decision": v.map(|v| v.decision().as_str()),
            "reason": v.map(|v| v.reason()),
            "rule": v.and_then(|v| v.rule.as_deref()),
            "passed": self.passed(),
            "error": self.error,
            "differences": self.differences,
        })
    }
}

/// What a verdict differs in from a case's expectation.
pub(crate) fn differences(
    expect: &str,
    reason: Option<&str>,
    v: &scopegate_engine::Verdict,
) -> Vec<String> {
    let mut out = Vec::new();
    let got = v.decision().as_str();
    if got != expect {
        out.push(format!("expected decision `{expect}`, got `{got}`"));
    }
    let actual = v.reason();
    match reason {
        Some(r) if !actual.contains(r) => {
            out.push(format!("expected reason containing {r:?}, got {actual:?}"))
        }
        // A wrong decision: its reason says why.
        _ if !out.is_empty() => out.push(format!("reason: {actual:?}")),
        _ => {}
    }
    if let (false, Some(rule)) = (out.is_empty(), &v.rule) {
        out.push(format!("rule: {rule}"));
    }
    out
}

pub(crate) fn policy_test(a: &TestArgs) -> Result<(), String> {
    let (bundle, mut policy) = load_both(&a.bundle, &[])?;
    let keys = Keys::read(a.keys.as_deref())?;
    let all = load_cases(&a.cases)?;
    let total = all.len();
    let cases: Vec<Case> = match &a.filter {
        None => all,
        Some(f) => all
            .into_iter()
            .filter(|c| c.name.contains(f.as_str()))
            .collect(),
    };
    if let (Some(f), true) = (&a.filter, cases.is_empty()) {
        return Err(format!(
            "--filter `{f}` selects none of the {total} cases in {}",
            a.cases.display()
        ));
    }
    let now_ms = now_or(a.now.as_deref())?;
    // The runner is the approver of `approved_by` cases, with keys of its own for the run:
    // the shared key, or (signed approvals) a key per approver and the gateway's.
    let approver = if cases.iter().any(|c| !c.approved_by.is_empty()) {
        Some(Minter::for_run(&mut policy, &cases)?)
    } else {
        None
    };
    let engine = Engine::new(policy);
    let mut run = Run {
        engine: &engine,
        keys: &keys,
        approver: approver.as_ref(),
        now_ms,
        ledger: MemoryLedger::new(),
        tokens: Default::default(),
        filtered: a.filter.is_some(),
    };
    // Cases run in order against one ledger, as requests do against one Envoy: a token is
    // used once, a budget spent across cases.
    let results: Vec<Ran> = cases.into_iter().map(|c| run.case(c)).collect();
    let passed = results.iter().filter(|r| r.passed()).count();
    let errors = results.iter().filter(|r| r.error.is_some()).count();
    let failed = results.len() - passed;
    let coverage = Coverage::of(
        &bundle,
        engine.policy(),
        results.iter().filter_map(|r| r.verdict.as_ref()),
    );
    match a.format {
        TestFormat::Json => {
            let doc = json!({
                "bundle": a.bundle.display().to_string(),
                "cases": a.cases.display().to_string(),
                "filter": a.filter,
                "results": results.iter().map(Ran::json).collect::<Vec<_>>(),
                "totals": {
                    "cases": total,
                    "selected": results.len(),
                    "passed": passed,
                    "failed": failed,
                    "errors": errors,
                },
                "coverage": coverage.json(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
            );
        }
        TestFormat::Human => {
            if let Some(f) = &a.filter {
                println!(
                    "--filter `{f}`: {} of {total} cases selected",
                    results.len()
                );
            }
            print_table(&results);
            print!("{}", coverage.human());
            println!(
                "{}: {passed} passed, {failed} failed{}",
                a.bundle.display(),
                match errors {
                    0 => String::new(),
                    n => format!(" ({n} could not run)"),
                }
            );
        }
    }
    if failed > 0 {
        return Err(format!("{failed} policy test(s) failed"));
    }
    if a.require_coverage && !coverage.complete() {
        return Err("--require-coverage: some grants or guards were not exercised".into());
    }
    Ok(())
}

fn print_table(results: &[Ran]) {
    let width = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .min(60);
    for r in results {
        let got = r.verdict.as_ref().map_or("-", |v| v.decision().as_str());
        println!(
            "{} {:width$}  expect {:<15} got {got}",
            if r.passed() { "PASS" } else { "FAIL" },
            r.name,
            r.expect,
        );
        for line in r.error.iter().chain(&r.differences) {
            println!("     {line}");
        }
    }
}

/// A run's shared state: the engine, the ledger, the tokens minted so far.
struct Run<'a> {
    engine: &'a Engine,
    keys: &'a Keys,
    approver: Option<&'a Minter>,
    now_ms: i64,
    ledger: MemoryLedger,
    tokens: std::collections::HashMap<String, String>,
    /// `--filter` was given (an earlier case may not have run).
    filtered: bool,
}

impl Run<'_> {
    fn case(&mut self, c: Case) -> Ran {
        let (verdict, error) = match self.decide(&c) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(format!("{}: {e}", c.at))),
        };
        Ran {
            differences: verdict
                .as_ref()
                .map(|v| differences(&c.expect, c.reason.as_deref(), v))
                .unwrap_or_default(),
            name: c.name,
            at: c.at,
            expect: c.expect,
            expect_reason: c.reason,
            verdict,
            error,
        }
    }

    /// The case's request with its key and approval tokens, decided and settled.
    fn decide(&mut self, c: &Case) -> Result<scopegate_engine::Verdict, String> {
        let mut headers = c.headers.clone();
        if let Some(name) = &c.key {
            let credential = self.keys.credential(name)?;
            headers.insert(c.key_at.min(headers.len()), credential);
        }
        let sent = match (self.approver, c.approved_by.is_empty(), &c.token) {
            (Some(minter), false, name) => {
                let challenge = self.engine.decide(headers.clone(), &c.body, self.now_ms);
                let minted = mint(minter, &challenge, &c.approved_by, self.now_ms)?;
                if let Some(name) = name {
                    self.tokens.insert(name.clone(), minted.clone());
                }
                Some(minted)
            }
            (_, true, Some(name)) => Some(self.tokens.get(name).cloned().ok_or_else(|| {
                format!(
                    "no tokens named `{name}` yet (an earlier case mints them with `approved_by`{})",
                    if self.filtered {
                        "; --filter may have left it out"
                    } else {
                        ""
                    }
                )
            })?),
            _ => None,
        };
        if let Some(t) = sent {
            headers.push(("x-scopegate-approval".into(), t.into_bytes()));
        }
        let v = self.engine.decide(headers, &c.body, self.now_ms);
        Ok(settle(&self.ledger, v, self.now_ms))
    }
}

/// The bundle's grants and guards no case exercised. A grant is exercised when it covered
/// an operation of a case (`Verdict::grants`, whatever was then decided) or decided one;
/// a guard when it decided a case (`Verdict::rule`).
#[derive(Debug, Default)]
pub(crate) struct Coverage {
    grants: usize,
    guards: usize,
    /// (rule, role, what it grants).
    unexercised_grants: Vec<(String, String, String)>,
    /// (rule, what it does).
    unexercised_guards: Vec<(String, String)>,
    /// Grants past what a verdict records (`GrantSet::CAPACITY` per role).
    untracked: Vec<String>,
}

impl Coverage {
    pub(crate) fn of<'v>(
        bundle: &scopegate_engine::bundle::Bundle,
        policy: &policy::Policy,
        verdicts: impl Iterator<Item = &'v scopegate_engine::Verdict>,
    ) -> Coverage {
        use scopegate_engine::verdict::GrantSet;
        let mut used = vec![GrantSet::default(); policy.roles.len()];
        let mut decided = std::collections::HashSet::new();
        for v in verdicts {
            if let Some(rule) = &v.rule {
                decided.insert(rule.as_str());
            }
            let role = v
                .subject
                .role
                .as_deref()
                .and_then(|r| policy.roles.iter().position(|x| x.name == r));
            if let Some(set) = role.and_then(|i| used.get_mut(i)) {
                *set = set.union(v.grants);
            }
        }
        let mut c = Coverage::default();
        for ((role, grants), set) in bundle.roles.iter().zip(&policy.roles).zip(&used) {
            // The bundle's own grants (MCP plumbing, appended after them, is not one).
            for (j, (g, compiled)) in role.allow.iter().zip(&grants.grants).enumerate() {
                c.grants += 1;
                if set.contains(j) || decided.contains(compiled.rule.as_str()) {
                    continue;
                }
                if !set.tracks(j) {
                    c.untracked.push(compiled.rule.clone());
                    continue;
                }
                let mut what = format!(
                    "{}: {} on {}",
                    g.service,
                    g.actions.join(", "),
                    g.resources.join(", ")
                );
                if let Some(f) = g.friction.filter(|f| *f != Friction::None) {
                    what.push_str(&format!(" ({})", f.as_str()));
                }
                c.unexercised_grants
                    .push((compiled.rule.clone(), role.name.clone(), what));
            }
        }
        for (g, compiled) in bundle.guards.iter().zip(&policy.guards) {
            c.guards += 1;
            if decided.contains(compiled.rule.as_str()) {
                continue;
            }
            let what = format!(
                "{} {} on {} (services {})",
                g.effect.as_str(),
                g.actions
                    .as_ref()
                    .map_or("every action".to_string(), |a| a.join(", ")),
                g.resources
                    .as_ref()
                    .map_or("every resource".to_string(), |r| r.join(", ")),
                g.services.join(", ")
            );
            c.unexercised_guards.push((compiled.rule.clone(), what));
        }
        c
    }

    pub(crate) fn complete(&self) -> bool {
        self.unexercised_grants.is_empty()
            && self.unexercised_guards.is_empty()
            && self.untracked.is_empty()
    }

    fn human(&self) -> String {
        let mut out = format!(
            "coverage: {} of {} grants, {} of {} guards exercised",
            self.grants - self.unexercised_grants.len() - self.untracked.len(),
            self.grants,
            self.guards - self.unexercised_guards.len(),
            self.guards
        );
        if self.complete() {
            out.push('\n');
            return out;
        }
        out.push_str("; not exercised:\n");
        for (rule, role, what) in &self.unexercised_grants {
            out.push_str(&format!("  {rule} (role `{role}`) {what}\n"));
        }
        for (rule, what) in &self.unexercised_guards {
            out.push_str(&format!("  {rule} {what}\n"));
        }
        if !self.untracked.is_empty() {
            out.push_str(&format!(
                "  not tracked (past a role's first {} grants): {}\n",
                scopegate_engine::verdict::GrantSet::CAPACITY,
                self.untracked.join(", ")
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "grants": self.grants,
            "guards": self.guards,
            "grants_not_exercised": self.unexercised_grants.iter().map(|(rule, role, what)| {
                json!({"rule": rule, "role": role, "grant": what})
            }).collect::<Vec<_>>(),
            "guards_not_exercised": self.unexercised_guards.iter().map(|(rule, what)| {
                json!({"rule": rule, "guard": what})
            }).collect::<Vec<_>>(),
            "not_tracked": self.untracked,
        })
    }
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
