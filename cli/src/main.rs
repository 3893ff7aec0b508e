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
    /// are not read). Prints every problem with its JSON path; exit 1 if any.
    Lint {
        /// Bundle JSON file.
        bundle: PathBuf,
        /// Attach a GraphQL schema to a service: SERVICE=FILE, an introspection result
        /// (`.json`) or SDL (any other extension). Repeatable.
        #[arg(long = "schema", value_name = "SERVICE=FILE")]
        schemas: Vec<String>,
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
    Approve {
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
    },
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
        Command::Lint { bundle, schemas } => lint(&bundle, &schemas),
        Command::Eval {
            bundle,
            request,
            now,
            env,
            schemas,
        } => eval(&bundle, &request, now.as_deref(), env.as_deref(), &schemas),
        Command::Approve {
            challenge,
            request,
            bundle,
            approver,
            ttl,
            key_env,
            key_file,
            yes,
            now,
        } => approve(&Approval {
            challenge,
            request,
            bundle,
            approver,
            ttl,
            key_env,
            key_file,
            yes,
            now,
        }),
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
    policy::compile(&b, &Secrets::Unchecked).map_err(|e| format!("{}: {e}", bundle.display()))
}

fn lint(bundle: &Path, schemas: &[String]) -> Result<(), String> {
    let p = load(bundle, schemas)?;
    println!("{}: ok: {}", bundle.display(), p.summary());
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

struct Approval {
    challenge: Option<PathBuf>,
    request: Option<PathBuf>,
    bundle: Option<PathBuf>,
    approver: String,
    ttl: String,
    key_env: String,
    key_file: Option<PathBuf>,
    yes: bool,
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
    let grant = approval::Grant {
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
}
