//! `scopegate approve`: a human approves one request, out of band.

use crate::*;

#[derive(clap::Args)]
pub(crate) struct Approval {
    /// The challenge: the 428 response body (JSON; an MCP JSON-RPC error with it in
    /// `data` is accepted), a file or `-` for stdin.
    #[arg(long, conflicts_with = "request", required_unless_present = "request")]
    challenge: Option<PathBuf>,
    /// Or the saved raw request (as for `eval`), decided with `--bundle` to find its
    /// digest and operations.
    #[arg(long, requires = "bundle")]
    request: Option<PathBuf>,
    /// Bundle JSON file: with `--request`, and for a signed challenge (bundle
    /// `approvals`), whose signature is checked with the bundle's `challenge_key`.
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
    /// A file holding the key: for a signed challenge, your own private key (`scopegate
    /// approver new`); else the shared approval key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Approve without asking (scripts, tests).
    #[arg(long)]
    yes: bool,
    /// Issue time (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
}

/// `30s`, `10m`, `1h` → seconds (at most 24 h).
pub(crate) fn parse_ttl(ttl: &str) -> Option<i64> {
    scopegate_engine::time::parse_span_secs(ttl)
        .filter(|secs| (1..=approval::MAX_TTL_SECS).contains(secs))
}

pub(crate) fn approve(a: &Approval) -> Result<(), String> {
    if !approval::valid_label(&a.approver) {
        return Err("--approver: 1-64 printable characters, no comma or quote".into());
    }
    let ttl = parse_ttl(&a.ttl)
        .ok_or_else(|| format!("--ttl `{}`: e.g. 30s, 10m, 1h (at most 24h)", a.ttl))?;
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
    let challenge = approval::challenge_in(&challenge)?.clone();
    if challenge.get("signed").is_some() {
        return approve_signed(a, &challenge, ttl, now_ms);
    }
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
    eprintln!(
        "approval requested by key `{}` for:",
        approval::printable(key_id)
    );
    for op in challenge
        .get("operations")
        .and_then(|o| o.as_array())
        .into_iter()
        .flatten()
    {
        eprintln!("  {}", approval::printable(&op.to_string()));
    }
    eprintln!("reason: {}", approval::printable(field("reason")));
    eprintln!("request digest: {}", approval::printable(digest));
    let needed = challenge
        .get("approvals")
        .and_then(|n| n.as_u64())
        .unwrap_or(1);
    ask(a, needed)?;
    let secret = match &a.key_file {
        Some(f) => read(f)?,
        None => std::env::var(&a.key_env)
            .map_err(|_| format!("no approval key: set {} or pass --key-file", a.key_env))?
            .into_bytes(),
    };
    let key = approval::ApprovalKey::new(&secret)?;
    let grant = claims(digest, key_id, now_ms / 1000 + ttl, &a.approver)?;
    eprintln!(
        "token valid until {}, for this request once:",
        format_rfc3339_millis(grant.exp * 1000)
    );
    println!("{}", approval::issue(&key, &grant));
    Ok(())
}

/// A signed challenge: checked against the bundle's challenge key, shown from what the
/// gateway signed, approved with the approver's own key.
fn approve_signed(
    a: &Approval,
    challenge: &serde_json::Value,
    ttl: i64,
    now_ms: i64,
) -> Result<(), String> {
    let bundle = a.bundle.as_ref().ok_or(
        "a signed challenge is checked with the bundle's `approvals.challenge_key`: pass --bundle",
    )?;
    let policy = load(bundle, &[])?;
    let s = policy
        .signed
        .as_ref()
        .ok_or("the bundle has no `approvals` section: it does not sign challenges")?;
    let approval::Presented {
        signed,
        claims: c,
        request: shown,
    } = approval::present(&s.gateway, challenge, now_ms)?;
    let now = now_ms.div_euclid(1000);
    let key_file = a
        .key_file
        .as_ref()
        .ok_or("pass --key-file with your private key (`scopegate approver new`)")?;
    let key = approval::PrivateKey::from_base64(&String::from_utf8_lossy(&read(key_file)?))?;
    match s.approvers.iter().find(|x| x.name == a.approver) {
        None => {
            return Err(format!(
                "`{}` is not an approver of this bundle",
                a.approver
            ))
        }
        Some(x) if x.key != key.public() => {
            return Err(format!(
                "{} is not `{}`'s key",
                key_file.display(),
                a.approver
            ))
        }
        Some(_) => {}
    }
    eprintln!(
        "approval requested by key `{}` in `{}` (signed by the gateway; answerable until {}) for:",
        approval::printable(&c.key),
        approval::printable(&c.environment),
        format_rfc3339_millis(c.exp * 1000)
    );
    for op in &c.operations {
        eprintln!("  {}", approval::printable(&op.to_string()));
    }
    // The request as the agent sent it: what the operations were decoded from.
    let text = |k: &str| shown.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    eprintln!(
        "the request, as sent:\n  {} {}",
        text("method"),
        text("target")
    );
    let body = text("body");
    if !body.is_empty() {
        let pretty = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| body.to_string());
        for line in pretty.lines() {
            eprintln!("  {}", approval::printable(line));
        }
        if let Some(n) = shown.get("body_bytes") {
            eprintln!(
                "  … (the first {} of {n} bytes shown; the digest binds all of them)",
                approval::SHOWN_BODY_BYTES
            );
        }
    }
    eprintln!("request digest: {}", c.digest);
    ask(a, u64::from(c.approvals))?;
    let token = sign_approval(&key, &signed, &a.approver, now, now + ttl)?;
    eprintln!(
        "token valid until {}, for this request once:",
        format_rfc3339_millis((now + ttl) * 1000)
    );
    println!("{token}");
    Ok(())
}

/// Says how many approvers the request needs, then asks (unless `--yes`).
fn ask(a: &Approval, needed: u64) -> Result<(), String> {
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
    Ok(())
}

/// A signed approval of the challenge `signed`, with a fresh random nonce.
pub(crate) fn sign_approval(
    key: &approval::PrivateKey,
    signed: &str,
    approver: &str,
    iat: i64,
    exp: i64,
) -> Result<String, String> {
    Ok(approval::sign_approval(
        key,
        &approval::Approval {
            v: 2,
            challenge: signed.to_string(),
            approver: approver.to_string(),
            iat,
            exp,
            nonce: fresh_nonce()?,
        },
    ))
}

fn fresh_nonce() -> Result<String, String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce))
}

/// What a new token says: one approver's approval of the request `digest` asked for by
/// key `key`, until `exp` (Unix seconds), with a fresh random nonce (single use).
pub(crate) fn claims(
    digest: &str,
    key: &str,
    exp: i64,
    approver: &str,
) -> Result<approval::Claims, String> {
    Ok(approval::Claims {
        v: 1,
        digest: digest.to_string(),
        key: key.to_string(),
        exp,
        approver: approver.to_string(),
        nonce: fresh_nonce()?,
    })
}

/// Asks on the terminal (not stdin, which may carry the challenge).
pub(crate) fn confirm_on_tty(question: &str) -> Result<bool, String> {
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

#[cfg(test)]
mod tests {
    use scopegate_engine::approval::printable;

    #[test]
    fn what_the_agent_sent_cannot_redraw_the_terminal() {
        assert_eq!(
            printable("DELETE /*\u{1b}[6A\u{1b}[J\r*/"),
            "DELETE /*\\u{1b}[6A\\u{1b}[J\\u{d}*/"
        );
        assert_eq!(printable("a\u{202e}b\u{9b}c"), "a\\u{202e}b\\u{9b}c");
        assert_eq!(printable("SELECT 'é'"), "SELECT 'é'");
    }
}
