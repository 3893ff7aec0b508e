//! `scopegate-approver`: the approval inbox. Agents post the challenges a scopegate
//! gateway answers with (428) and poll for the tokens; people sign in, see exactly what
//! each request does, and approve or deny it — each approval signed with that approver's
//! own Ed25519 key, as `scopegate approve --key-file` would. It loads the same bundle as
//! the gateways, so it checks challenges and agents' keys exactly as they do.

pub mod app;
pub mod error;
pub mod html;
pub mod password;
pub mod store;
pub mod web;
pub mod webhook;

use app::{App, Clock, Trusted};
use scopegate_engine::approval::PrivateKey;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What `serve` is given.
pub struct Config {
    pub bundle: Vec<u8>,
    pub db: String,
    pub public_url: String,
    /// Approver name → private key file.
    pub key_files: Vec<(String, std::path::PathBuf)>,
    pub webhook: Option<String>,
    pub trusted: Option<Trusted>,
    pub session_ttl_secs: i64,
    pub token_ttl_secs: i64,
    pub clock: Clock,
}

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0)
    })
}

/// Reads a private key file (base64 seed, as `scopegate approver new` writes).
pub fn read_key(path: &Path) -> Result<PrivateKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    PrivateKey::from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Compiles the bundle, opens the database, loads the approvers' keys: every mismatch
/// (a key file that is not the listed approver's, a bundle without signed approvals)
/// stops the start.
pub async fn build(c: Config) -> Result<App, String> {
    use scopegate_engine::{bundle, policy};
    let b = bundle::parse(&c.bundle).map_err(|e| format!("bundle: {e}"))?;
    let p = policy::compile(&b, &policy::Secrets::Unchecked).map_err(|e| format!("bundle: {e}"))?;
    let signed = p
        .signed
        .clone()
        .ok_or("the bundle has no `approvals` section: the inbox serves signed approvals only")?;
    let mut keys = HashMap::new();
    for (name, file) in &c.key_files {
        let key = read_key(file)?;
        match signed.approvers.iter().find(|a| &a.name == name) {
            None => {
                return Err(format!(
                    "--key {name}=…: `{name}` is not an approver of this bundle"
                ))
            }
            Some(a) if a.key != key.public() => {
                return Err(format!(
                    "--key {name}={}: not `{name}`'s key (the bundle lists another public key)",
                    file.display()
                ))
            }
            Some(_) => {}
        }
        keys.insert(name.clone(), key);
    }
    if !(60..=scopegate_engine::approval::MAX_TTL_SECS).contains(&c.token_ttl_secs) {
        return Err("--token-ttl: from 1m to 24h".into());
    }
    let mut csrf_secret = vec![0u8; 32];
    getrandom::fill(&mut csrf_secret).map_err(|e| format!("no randomness: {e}"))?;
    let db = store::open(&c.db)
        .await
        .map_err(|e| format!("database {}: {e}", redact(&c.db)))?;
    let universe = scopegate_engine::explain::universe(&p, &HashMap::new());
    Ok(App {
        bundle: b,
        gateway: signed.gateway,
        approvers: signed.approvers,
        policy: std::sync::Mutex::new(p),
        universe,
        keys,
        db,
        public_url: c.public_url.trim_end_matches('/').to_string(),
        webhook: c.webhook,
        http: reqwest::Client::new(),
        trusted: c.trusted,
        csrf_secret,
        session_ttl_secs: c.session_ttl_secs,
        token_ttl_secs: c.token_ttl_secs,
        clock: c.clock,
    })
}

/// A database URL without its password (user info or a `password=` parameter).
pub fn redact(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = url.get(s + 3..at).unwrap_or_default();
            let user = creds.split(':').next().unwrap_or_default();
            format!(
                "{}{user}:***{}",
                url.get(..s + 3).unwrap_or_default(),
                url.get(at..).unwrap_or_default()
            )
        }
        _ => url.to_string(),
    };
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q);
        let query: Vec<String> = query
            .trim_start_matches('?')
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}?{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_not_shown() {
        assert_eq!(
            super::redact("postgres://inbox:s3cret@db:5432/inbox"),
            "postgres://inbox:***@db:5432/inbox"
        );
        assert_eq!(
            super::redact("postgres://db/inbox?user=inbox&password=s3cret&sslmode=require"),
            "postgres://db/inbox?user=inbox&password=***&sslmode=require"
        );
        assert_eq!(super::redact("sqlite://inbox.db"), "sqlite://inbox.db");
    }
}
