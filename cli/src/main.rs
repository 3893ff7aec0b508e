//! `scopegate`: the command line over the filter's own engine.
//!
//! Exit codes: 0 success (for `eval`: the request was evaluated, whatever the decision;
//! for `approve`: a token was printed), 1 the bundle or input was rejected (or the
//! approval declined), 2 usage error (clap).

use base64::Engine as _;
use clap::{Parser, Subcommand};
use scopegate_engine::approval;
use scopegate_engine::bundle::GraphqlSchema;
use scopegate_engine::decode::sql::SqlDecoder;
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::ledger::{settle, MemoryLedger};
use scopegate_engine::time::{format_rfc3339_millis, parse_rfc3339};
use scopegate_engine::verdict::op_json;
use scopegate_engine::{policy, Engine, HeaderList, Secrets};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "scopegate",
    version,
    about = "Scoped keys, decoded requests and friction for the APIs AI agents call"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage agent keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check a bundle exactly as the filter's configure step does (upstream secrets
    /// and the approval key are not read). Prints every problem with its JSON path; exit
    /// 1 if any. Then warnings a reviewer needs: effectively-root keys, grants guards
    /// take away, unused roles and services, keys without expiry, wildcard resources
    /// on destructive actions.
    Lint {
        /// Bundle JSON file.
        bundle: PathBuf,
        /// Attach a GraphQL schema to a service: SERVICE=FILE, an introspection result
        /// (`.json`) or SDL (any other extension). Repeatable.
        #[arg(long = "schema", value_name = "SERVICE=FILE")]
        schemas: Vec<String>,
        /// Exit 1 when there are warnings (CI).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Decide one raw HTTP/1.1 request (request line, headers, blank line, body) the
    /// way the filter would, and print the decision as JSON.
    Eval {
        /// Bundle JSON file.
        bundle: PathBuf,
        /// Raw request file; `-` reads stdin.
        #[arg(long)]
        request: PathBuf,
        /// Evaluation time (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
        /// Environment of the filter instance (default: the bundle's).
        #[arg(long)]
        env: Option<String>,
        /// Attach a GraphQL schema to a service (as for `lint`). Repeatable.
        #[arg(long = "schema", value_name = "SERVICE=FILE")]
        schemas: Vec<String>,
    },
    /// Approve one challenged request (a 428 with `"friction": "approval"`): shows what
    /// it does, then prints an approval token — the only output on stdout — for the
    /// agent to retry the identical request with (`x-scopegate-approval: <token>`).
    /// Run by a human holding the approval key; the token allows that request once.
    Approve(Approval),
    /// Policy tests: run request cases through the engine and compare decisions. CASES is
    /// a JSON Lines file (`{"name", "as", "method", "path", "headers", "body", "expect",
    /// "reason"}`; `headers` may be a list of `[name, value]` pairs to repeat a name,
    /// `body_base64` gives a body that is not text) or a folder of `.http` files (raw requests after `# expect: deny`,
    /// `# as: KEY-NAME`, `# reason: text` lines). Prints a table and `N passed, M failed`;
    /// exit 1 when any case fails.
    Test {
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
    },
    /// What each key can actually do: its role, environments, expiry, and per service
    /// every grant it holds, what guards take away, and a blast-radius line per
    /// destructive action. With a GraphQL schema (`--schema`) or a table list
    /// (`--tables SERVICE=FILE`, one name per line) patterns are expanded into the
    /// concrete fields/tables they reach, each run through the filter's own evaluation.
    Explain {
        /// Bundle JSON file.
        bundle: PathBuf,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
        /// Only the keys of this role (or the role itself if it has none).
        #[arg(long)]
        role: Option<String>,
        /// table, json or markdown.
        #[arg(long, default_value = "table")]
        format: String,
        /// Attach a GraphQL schema to a service (as for `lint`). Repeatable.
        #[arg(long = "schema", value_name = "SERVICE=FILE")]
        schemas: Vec<String>,
        /// The tables (resource names) of a service, one per line. Repeatable.
        #[arg(long = "tables", value_name = "SERVICE=FILE")]
        tables: Vec<String>,
    },
    /// Print the JSON Schema of bundle v1, generated from the engine's own types (the
    /// committed copy is schema/bundle-v1.schema.json; `make policies` checks it is current).
    Schema,
    /// Show the operations the SQL decoder finds in SQL read from stdin, as one JSON
    /// object: {"ok", "operations", "error"}.
    Sql {
        /// postgres, mysql, sqlite or generic.
        #[arg(long, default_value = "postgres")]
        dialect: String,
        /// Schema unqualified names resolve to (default: the dialect's).
        #[arg(long)]
        default_schema: Option<String>,
        /// Functions to treat as pure, besides the built-in list (repeatable).
        #[arg(long = "safe-function")]
        safe_functions: Vec<String>,
        /// Read JSON Lines (one JSON string of SQL per line); print one result per line.
        #[arg(long)]
        batch: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a fresh random key (give it to the agent) and the bundle line that admits
    /// it (only its SHA-256 goes into the bundle).
    New {
        /// Key id, as audit records will name it.
        #[arg(long)]
        id: String,
        /// Role the key maps to.
        #[arg(long)]
        role: String,
        /// Environments the key is valid in (repeatable).
        #[arg(long = "env")]
        environments: Vec<String>,
        /// Expiry (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Key {
            command:
                KeyCommand::New {
                    id,
                    role,
                    environments,
                    expires,
                },
        } => key_new(&id, &role, &environments, expires.as_deref()),
        Command::Lint {
            bundle,
            schemas,
            deny_warnings,
        } => lint(&bundle, &schemas, deny_warnings),
        Command::Eval {
            bundle,
            request,
            now,
            env,
            schemas,
        } => eval(&bundle, &request, now.as_deref(), env.as_deref(), &schemas),
        Command::Approve(a) => approve(&a),
        Command::Schema => schema(),
        Command::Explain {
            bundle,
            key,
            role,
            format,
            schemas,
            tables,
        } => explain(
            &bundle,
            key.as_deref(),
            role.as_deref(),
            &format,
            &schemas,
            &tables,
        ),
        Command::Test {
            bundle,
            cases,
            keys,
            now,
        } => policy_test(&bundle, &cases, keys.as_deref(), now.as_deref()),
        Command::Sql {
            dialect,
            default_schema,
            safe_functions,
            batch,
        } => sql(&dialect, default_schema, safe_functions, batch),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

fn key_new(
    id: &str,
    role: &str,
    environments: &[String],
    expires: Option<&str>,
) -> Result<(), String> {
    if let Some(e) = expires {
        parse_rfc3339(e).ok_or_else(|| format!("--expires: `{e}` is not an RFC 3339 timestamp"))?;
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let key = format!(
        "sgk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let mut line = json!({"id": id, "sha256": hex(&sha256(key.as_bytes())), "role": role});
    if let Some(obj) = line.as_object_mut() {
        if !environments.is_empty() {
            obj.insert("environments".into(), json!(environments));
        }
        if let Some(e) = expires {
            obj.insert("expires".into(), json!(e));
        }
    }
    println!("key (give it to the agent; it is not stored anywhere):\n  {key}");
    println!("bundle line (add it to \"keys\"):\n  {line}");
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Compiles a bundle as the filter would, with GraphQL schemas attached from files.
fn load(bundle: &Path, schemas: &[String]) -> Result<policy::Policy, String> {
    load_both(bundle, schemas).map(|(_, p)| p)
}

/// The parsed bundle and its compiled policy.
fn load_both(
    bundle: &Path,
    schemas: &[String],
) -> Result<(scopegate_engine::bundle::Bundle, policy::Policy), String> {
    let json = read(bundle)?;
    let mut b =
        scopegate_engine::bundle::parse(&json).map_err(|e| format!("{}: {e}", bundle.display()))?;
    for spec in schemas {
        let (service, file) = spec
            .split_once('=')
            .ok_or_else(|| format!("--schema `{spec}`: expected SERVICE=FILE"))?;
        let svc = b
            .services
            .iter_mut()
            .find(|s| s.name == service)
            .ok_or_else(|| format!("--schema: no service `{service}` in the bundle"))?;
        let text = read(Path::new(file))?;
        let schema = if file.ends_with(".json") {
            let value = serde_json::from_slice(&text).map_err(|e| format!("{file}: {e}"))?;
            GraphqlSchema {
                sdl: None,
                introspection: Some(value),
            }
        } else {
            let sdl = String::from_utf8(text).map_err(|_| format!("{file}: not UTF-8"))?;
            GraphqlSchema {
                sdl: Some(sdl),
                introspection: None,
            }
        };
        svc.graphql.get_or_insert_with(Default::default).schema = Some(schema);
    }
    let p = policy::compile(&b, &Secrets::Unchecked)
        .map_err(|e| format!("{}: {e}", bundle.display()))?;
    Ok((b, p))
}

fn lint(bundle: &Path, schemas: &[String], deny_warnings: bool) -> Result<(), String> {
    let (b, p) = load_both(bundle, schemas)?;
    let warnings = scopegate_engine::lint::warnings(&b);
    for w in &warnings {
        println!("{}: warning: {w}", bundle.display());
    }
    if deny_warnings && !warnings.is_empty() {
        return Err(format!(
            "{}: {} warning(s) and --deny-warnings",
            bundle.display(),
            warnings.len()
        ));
    }
    println!(
        "{}: ok: {}{}",
        bundle.display(),
        p.summary(),
        match warnings.len() {
            0 => String::new(),
            n => format!(" ({n} warning(s))"),
        }
    );
    Ok(())
}

/// Splits a raw HTTP/1.1 request into the header list the filter would see
/// (`:method`, `:path`, `:authority` first) and the body.
fn parse_raw_request(raw: &[u8]) -> Result<(HeaderList, Vec<u8>), String> {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(i) => (raw.get(..i), raw.get(i + 4..)),
        None => match find(raw, b"\n\n") {
            Some(i) => (raw.get(..i), raw.get(i + 2..)),
            None => (Some(raw), Some(&[][..])),
        },
    };
    let head = std::str::from_utf8(head.unwrap_or_default())
        .map_err(|_| "request head is not UTF-8".to_string())?;
    let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().ok_or("empty request")?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line `{request_line}`"));
    };
    if !version.starts_with("HTTP/") {
        return Err(format!("bad request line `{request_line}`"));
    }
    let (authority, path) = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => match rest.find('/') {
            Some(i) => (
                Some(rest.get(..i).unwrap_or_default()),
                rest.get(i..).unwrap_or("/"),
            ),
            None => (Some(rest), "/"),
        },
        None => (None, target),
    };
    let mut headers = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
    ];
    let mut rest = Vec::new();
    let mut host = authority.map(str::to_string);
    let mut content_length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line `{line}`"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        match name.as_str() {
            "host" if host.is_none() => host = Some(value.to_string()),
            "host" => {}
            "content-length" => {
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("bad content-length `{value}`"))?,
                );
                rest.push((name, value.as_bytes().to_vec()));
            }
            _ => rest.push((name, value.as_bytes().to_vec())),
        }
    }
    if let Some(h) = host {
        headers.push((":authority".to_string(), h.into_bytes()));
    }
    headers.extend(rest);
    let mut body = body.unwrap_or_default().to_vec();
    if let Some(n) = content_length {
        body.truncate(n);
    }
    Ok((headers, body))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn eval(
    bundle: &Path,
    request: &Path,
    now: Option<&str>,
    env: Option<&str>,
    schemas: &[String],
) -> Result<(), String> {
    let mut p = load(bundle, schemas)?;
    if let Some(e) = env {
        p.set_environment(e.to_string());
    }
    let now_ms = now_or(now)?;
    let (headers, body) = parse_raw_request(&read(request)?)?;
    let v = Engine::new(p).decide(headers, &body, now_ms);
    let out = json!({
        "decision": v.decision.as_str(),
        "status": v.status(),
        "reason": v.reason,
        "rule": v.rule,
        "key": v.subject.key,
        "role": v.subject.role,
        "service": v.subject.service,
        "operations": v.operations.iter().map(op_json).collect::<Vec<_>>(),
        "digest": v.digest,
        "evaluated_at": format_rfc3339_millis(now_ms),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// One policy test case.
#[derive(Debug)]
struct Case {
    name: String,
    headers: HeaderList,
    body: Vec<u8>,
    expect: String,
    reason: Option<String>,
    /// Approvers the runner mints tokens for, for the challenge this request gets.
    approved_by: Vec<String>,
    /// A name for the tokens: minted with `approved_by` they are kept under it; without,
    /// the tokens kept under it are sent again (a replay).
    token: Option<String>,
}

fn key_file(path: Option<&Path>) -> Result<Vec<(String, String)>, String> {
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

fn credential(keys: &[(String, String)], name: &str) -> Result<(String, Vec<u8>), String> {
    let key = keys
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, k)| k.clone())
        .ok_or_else(|| format!("no key named `{name}` (give --keys)"))?;
    Ok(("authorization".into(), format!("Bearer {key}").into_bytes()))
}

fn load_cases(path: &Path, keys: &[(String, String)]) -> Result<Vec<Case>, String> {
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
fn case_headers(h: Option<&serde_json::Value>) -> Result<HeaderList, String> {
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

fn policy_test(
    bundle: &Path,
    cases: &Path,
    keys: Option<&Path>,
    now: Option<&str>,
) -> Result<(), String> {
    let mut policy = load(bundle, &[])?;
    let keys = key_file(keys)?;
    let cases = load_cases(cases, &keys)?;
    let now_ms = now_or(now)?;
    // The runner is the approver of `approved_by` cases: a key of its own for the run.
    let approver = if cases.iter().any(|c| !c.approved_by.is_empty()) {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("no randomness from the OS: {e}"))?;
        let key = approval::ApprovalKey::new(&secret)?;
        policy.approval_key = Some(approval::ApprovalKey::new(&secret)?);
        Some(key)
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
            (Some(key), false, name) => {
                let challenge = engine.decide(headers.clone(), &c.body, now_ms);
                let minted = mint(key, &challenge, &c.approved_by, now_ms)
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
        let v = settle(&ledger, engine.decide(headers, &c.body, now_ms));
        let ok = v.decision.as_str() == c.expect
            && c.reason
                .as_ref()
                .is_none_or(|r| v.reason.contains(r.as_str()));
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
            v.decision.as_str(),
            if ok { String::new() } else { v.reason.clone() },
        );
    }
    println!("{}: {passed} passed, {failed} failed", bundle.display());
    if failed > 0 {
        return Err(format!("{failed} policy test(s) failed"));
    }
    Ok(())
}

fn explain(
    bundle: &Path,
    key: Option<&str>,
    role: Option<&str>,
    format: &str,
    schemas: &[String],
    tables: &[String],
) -> Result<(), String> {
    use scopegate_engine::explain as x;
    let (b, p) = load_both(bundle, schemas)?;
    let mut lists = std::collections::HashMap::new();
    for spec in tables {
        let (service, file) = spec
            .split_once('=')
            .ok_or_else(|| format!("--tables `{spec}`: expected SERVICE=FILE"))?;
        let text =
            String::from_utf8(read(Path::new(file))?).map_err(|_| format!("{file}: not UTF-8"))?;
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        lists.insert(service.to_string(), names);
    }
    let universe = x::universe(&p, &lists);
    let reports = x::explain(&b, &p, &universe, key, role)?;
    match format {
        "table" => print!("{}", x::render_table(&reports)),
        "markdown" => print!("{}", x::render_markdown(&reports)),
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?
        ),
        f => return Err(format!("--format `{f}`: table, json or markdown")),
    }
    Ok(())
}

fn schema() -> Result<(), String> {
    let mut schema = schemars::schema_for!(scopegate_engine::bundle::Bundle);
    schema.insert(
        "$id".into(),
        json!("https://scopegate.dev/schema/bundle-v1.schema.json"),
    );
    schema.insert("title".into(), json!("scopegate policy bundle v1"));
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).map_err(|e| e.to_string())?
    );
    Ok(())
}

#[derive(clap::Args)]
struct Approval {
    /// The challenge: the 428 response body (JSON; an MCP JSON-RPC error with it in
    /// `data` is accepted), a file or `-` for stdin.
    #[arg(long, conflicts_with = "request", required_unless_present = "request")]
    challenge: Option<PathBuf>,
    /// Or the saved raw request (as for `eval`), decided with `--bundle` to find its
    /// digest and operations.
    #[arg(long, requires = "bundle")]
    request: Option<PathBuf>,
    /// Bundle JSON file (with `--request`).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Who approves, as the audit record will name them.
    #[arg(long)]
    approver: String,
    /// How long the token stays valid: e.g. 30s, 10m, 1h (at most 24h).
    #[arg(long, default_value = "10m")]
    ttl: String,
    /// Environment variable holding the approval key.
    #[arg(long, default_value = "SCOPEGATE_APPROVAL_KEY")]
    key_env: String,
    /// Or a file holding the approval key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Approve without asking (scripts, tests).
    #[arg(long)]
    yes: bool,
    /// Issue time (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
}

fn now_or(now: Option<&str>) -> Result<i64, String> {
    match now {
        Some(s) => parse_rfc3339(s).ok_or_else(|| format!("--now: `{s}` is not RFC 3339")),
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0)),
    }
}

/// `30s`, `10m`, `1h` → seconds.
fn parse_ttl(ttl: &str) -> Option<i64> {
    let (n, unit) = ttl.split_at(ttl.len().checked_sub(1)?);
    let n: i64 = n.parse().ok()?;
    let secs = n.checked_mul(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    })?;
    (1..=approval::MAX_TTL_SECS).contains(&secs).then_some(secs)
}

fn approve(a: &Approval) -> Result<(), String> {
    if !approval::valid_label(&a.approver) {
        return Err("--approver: 1-64 printable characters, no comma or quote".into());
    }
    let ttl = parse_ttl(&a.ttl)
        .ok_or_else(|| format!("--ttl `{}`: e.g. 30s, 10m, 1h (at most 24h)", a.ttl))?;
    let secret = match &a.key_file {
        Some(f) => read(f)?,
        None => std::env::var(&a.key_env)
            .map_err(|_| format!("no approval key: set {} or pass --key-file", a.key_env))?
            .into_bytes(),
    };
    let key = approval::ApprovalKey::new(&secret)?;
    let now_ms = now_or(a.now.as_deref())?;
    // What is being approved: the challenge as the agent received it, or the request
    // decided afresh by the engine.
    let challenge = match (&a.challenge, &a.request, &a.bundle) {
        (Some(c), _, _) => serde_json::from_slice::<serde_json::Value>(&read(c)?)
            .map_err(|e| format!("{}: not JSON: {e}", c.display()))?,
        (None, Some(r), Some(b)) => {
            let (headers, body) = parse_raw_request(&read(r)?)?;
            let v = Engine::new(load(b, &[])?).decide(headers, &body, now_ms);
            serde_json::from_str(&v.response_body()).map_err(|e| e.to_string())?
        }
        _ => return Err("give --challenge, or --request with --bundle".into()),
    };
    let challenge = challenge
        .pointer("/error/data")
        .cloned()
        .unwrap_or(challenge);
    let field = |k: &str| {
        challenge
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    if field("decision") != "challenge" || field("friction") != "approval" {
        return Err(format!(
            "this request is not awaiting approval (decision `{}`, friction `{}`)",
            field("decision"),
            field("friction")
        ));
    }
    let (digest, key_id) = (field("challenge"), field("key"));
    if !digest.starts_with("sha256:") || key_id.is_empty() {
        return Err("the challenge has no digest or key".into());
    }
    eprintln!("approval requested by key `{key_id}` for:");
    for op in challenge
        .get("operations")
        .and_then(|o| o.as_array())
        .into_iter()
        .flatten()
    {
        eprintln!("  {op}");
    }
    eprintln!("reason: {}", field("reason"));
    eprintln!("request digest: {digest}");
    let needed = challenge
        .get("approvals")
        .and_then(|n| n.as_u64())
        .unwrap_or(1);
    if needed > 1 {
        eprintln!("this request needs {needed} approvals from different people: the agent sends the tokens comma-separated");
    }
    if !a.yes
        && !confirm_on_tty(&format!(
            "approve as `{}` for {}? [y/N] ",
            a.approver, a.ttl
        ))?
    {
        return Err("not approved".into());
    }
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let grant = approval::Claims {
        v: 1,
        digest: digest.to_string(),
        key: key_id.to_string(),
        exp: now_ms / 1000 + ttl,
        approver: a.approver.clone(),
        nonce: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce),
    };
    eprintln!(
        "token valid until {}, for this request once:",
        format_rfc3339_millis(grant.exp * 1000)
    );
    println!("{}", approval::issue(&key, &grant));
    Ok(())
}

/// Tokens for a challenge, one per approver, comma-separated as an agent sends them.
fn mint(
    key: &approval::ApprovalKey,
    challenge: &scopegate_engine::Verdict,
    approvers: &[String],
    now_ms: i64,
) -> Result<String, String> {
    let body: serde_json::Value =
        serde_json::from_str(&challenge.response_body()).map_err(|e| e.to_string())?;
    let body = body.pointer("/error/data").cloned().unwrap_or(body);
    let field = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    if field("decision") != "challenge" || field("friction") != "approval" {
        return Err(format!(
            "`approved_by`, but the request is not awaiting approval (decision `{}`: {})",
            field("decision"),
            field("reason")
        ));
    }
    let mut tokens = Vec::new();
    for approver in approvers {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness from the OS: {e}"))?;
        let grant = approval::Claims {
            v: 1,
            digest: field("challenge").to_string(),
            key: field("key").to_string(),
            exp: now_ms / 1000 + 300,
            approver: approver.clone(),
            nonce: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce),
        };
        tokens.push(approval::issue(key, &grant));
    }
    Ok(tokens.join(","))
}

/// Asks on the terminal (not stdin, which may carry the challenge).
fn confirm_on_tty(question: &str) -> Result<bool, String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            "no terminal to ask on: pass --yes to approve non-interactively".to_string()
        })?;
    let mut w = &tty;
    w.write_all(question.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::BufReader::new(&tty)
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn sql(
    dialect: &str,
    default_schema: Option<String>,
    safe_functions: Vec<String>,
    batch: bool,
) -> Result<(), String> {
    let cfg = json!({
        "dialect": dialect,
        "default_schema": default_schema,
        "statement": {"raw": true},
        "safe_functions": safe_functions,
    });
    let cfg: scopegate_engine::bundle::SqlConfig =
        serde_json::from_value(cfg).map_err(|e| format!("--dialect: {e}"))?;
    let mut errs = Vec::new();
    let decoder = SqlDecoder::compile(&cfg, "sql", &mut errs);
    let decoder = match (decoder, errs.first()) {
        (Some(d), None) => d,
        (_, Some(e)) => return Err(e.to_string()),
        (None, None) => return Err("SQL settings rejected".into()),
    };
    let classify = |text: &str| match decoder.classify("sql", text, &[]) {
        Ok(ops) => json!({"ok": true, "operations": ops, "error": null}),
        Err(e) => json!({"ok": false, "operations": [], "error": e.to_string()}),
    };
    let input = String::from_utf8(read(Path::new("-"))?).map_err(|_| "stdin is not UTF-8")?;
    if batch {
        for line in input.lines().filter(|l| !l.trim().is_empty()) {
            let text: String =
                serde_json::from_str(line).map_err(|e| format!("--batch line: {e}"))?;
            println!("{}", classify(&text));
        }
    } else {
        println!("{}", classify(&input));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_requests() {
        let (h, body) = parse_raw_request(
            b"DELETE /rest/reservations?id=eq.1 HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: k\r\nx-api-key: k2\r\nContent-Length: 2\r\n\r\n{}trailing",
        )
        .unwrap();
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ":method",
                ":path",
                ":authority",
                "x-api-key",
                "x-api-key",
                "content-length"
            ]
        );
        assert_eq!(body, b"{}");
        let (h, _) =
            parse_raw_request(b"GET http://gw.test:8080/x HTTP/1.1\nHost: other\n\n").unwrap();
        assert_eq!(h[2].1, b"gw.test:8080");
        assert!(parse_raw_request(b"GET /x\r\n\r\n").is_err());
        assert!(parse_raw_request(b"GET /x HTTP/1.1\r\nbroken\r\n\r\n").is_err());
    }

    #[test]
    fn http_case_folders() {
        let dir = std::env::temp_dir().join(format!("scopegate-cases-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("01-delete.http"),
            "# expect: deny\n# as: reader\n# reason: not covered\nDELETE /rest/x?id=eq.1 HTTP/1.1\nHost: gw\n\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let keys = vec![("reader".to_string(), "sgk_r".to_string())];
        let cases = load_cases(&dir, &keys).unwrap();
        assert_eq!(cases.len(), 1);
        let c = &cases[0];
        assert_eq!(
            (c.name.as_str(), c.expect.as_str(), c.reason.as_deref()),
            ("01-delete", "deny", Some("not covered"))
        );
        assert!(c
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == b"Bearer sgk_r"));
        assert_eq!(c.headers[0].1, b"DELETE");
        std::fs::write(dir.join("02-bad.http"), "GET / HTTP/1.1\n\n").unwrap();
        assert!(load_cases(&dir, &keys)
            .unwrap_err()
            .contains("no `# expect:`"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
