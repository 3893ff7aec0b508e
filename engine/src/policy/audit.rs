//! The bundle's `audit` section: the sink, the record's log level and content, the chain.

use super::*;
use crate::approval::hmac_sha256;
use std::fmt;

/// The audit key (`audit.key_env`): hashes record values, keys the chain.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < 32 {
            return Err(format!(
                "the audit key must be at least 32 bytes (it has {})",
                trimmed.len()
            ));
        }
        Ok(AuditKey(trimmed.to_vec()))
    }
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, message)
    }
    /// A key for one purpose, derived from this one (HMAC of the label).
    pub fn derive(&self, label: &[u8]) -> AuditKey {
        AuditKey(self.mac(label).to_vec())
    }
}

/// How record values appear in a record.
#[derive(Debug, Clone, Default)]
pub enum RecordValues {
    #[default]
    Plain,
    /// HMAC-SHA256 with the audit key (`None` only in tools that never forward).
    Hashed(Option<AuditKey>),
    Omitted,
}

/// The compiled `audit` options besides the sink.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The level of the record's line in Envoy's log; `None`: no line.
    pub log: Option<bundle::AuditLog>,
    pub values: RecordValues,
    /// Values kept per record key.
    pub max_values: usize,
    /// Records carry `chain` (stream, seq, prev).
    pub chain: bool,
    /// Keys the chain's hash (`None`: SHA-256).
    pub chain_key: Option<AuditKey>,
    /// Record keys the bundle's grants name: recorded besides id-like keys (`id`,
    /// `*_id`, `*Id`). Other keys an operation carries (the columns of a created row, a
    /// tool's free arguments) are left out, counted: their values may be anything.
    pub record_keys: Vec<String>,
    /// Keys an unknown credential's fingerprint (HMAC instead of SHA-256: nobody without
    /// the key can test guesses of a secret sent by mistake against the record).
    pub fingerprint_key: Option<AuditKey>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            log: Some(bundle::AuditLog::Info),
            values: RecordValues::Plain,
            max_values: 16,
            chain: false,
            chain_key: None,
            record_keys: Vec::new(),
            fingerprint_key: None,
        }
    }
}

pub(super) fn compile(
    a: Option<&bundle::AuditConfig>,
    secrets: &Secrets,
    errs: &mut Errs,
) -> (Option<AuditSink>, AuditOptions) {
    let Some(a) = a else {
        return (None, AuditOptions::default());
    };
    let required = a.mode == Some(bundle::AuditMode::Required);
    let sink = match &a.sink {
        Some(s) => sink(s, required, errs),
        None => {
            if required {
                errs.push(
                    "audit.mode",
                    "`required` needs a `sink`: the collector that must take each record",
                );
            }
            None
        }
    };
    let key = match (&a.key_env, secrets) {
        (None, _) => None,
        (Some(name), _) if !is_env_name(name) => {
            errs.push("audit.key_env", "must be an environment variable name");
            None
        }
        (Some(name), Secrets::Env(env)) => match env(name) {
            None => {
                errs.push(
                    "audit.key_env",
                    format!("`{name}` is not set in the Wasm VM (vm_config.environment_variables)"),
                );
                None
            }
            Some(v) => match AuditKey::new(v.as_bytes()) {
                Ok(k) => Some(k),
                Err(e) => {
                    errs.push("audit.key_env", format!("`{name}`: {e}"));
                    None
                }
            },
        },
        (Some(_), Secrets::Unchecked) => None,
    };
    let values = match a.values {
        None | Some(bundle::AuditValues::Plain) => RecordValues::Plain,
        Some(bundle::AuditValues::Omitted) => RecordValues::Omitted,
        Some(bundle::AuditValues::Hashed) => {
            if a.key_env.is_none() {
                errs.push(
                    "audit.values",
                    "`hashed` needs `key_env`: the key of the HMAC",
                );
            }
            RecordValues::Hashed(key.as_ref().map(|k| k.derive(b"scopegate audit values")))
        }
    };
    let max_values = match a.max_values {
        None => 16,
        Some(n) if n <= 256 => n,
        Some(_) => {
            errs.push("audit.max_values", "must be between 0 and 256");
            16
        }
    };
    let options = AuditOptions {
        log: match a.log {
            None => Some(bundle::AuditLog::Info),
            Some(bundle::AuditLog::Off) => None,
            Some(l) => Some(l),
        },
        values,
        max_values,
        chain: a.chain.unwrap_or(false),
        // Separate keys for the two jobs: whoever may search hashed values cannot forge
        // a chain with what they were given, and the reverse.
        chain_key: key.as_ref().map(|k| k.derive(b"scopegate audit chain")),
        record_keys: Vec::new(),
        fingerprint_key: key
            .as_ref()
            .map(|k| k.derive(b"scopegate audit fingerprint")),
    };
    (sink, options)
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The audit sink's settings, with their defaults and bounds.
fn sink(s: &bundle::AuditSink, required: bool, errs: &mut Errs) -> Option<AuditSink> {
    let mut bounded = |at: &str, v: Option<u64>, default: u64, lo: u64, hi: u64| match v {
        None => default,
        Some(v) if (lo..=hi).contains(&v) => v,
        Some(_) => {
            errs.push(
                format!("audit.sink.{at}"),
                format!("must be between {lo} and {hi}"),
            );
            default
        }
    };
    let batch = bounded("batch", s.batch.map(|v| v as u64), 100, 1, 1000);
    let flush_ms = bounded("flush_ms", s.flush_ms, 1000, 10, 60_000);
    let queue = bounded("queue", s.queue.map(|v| v as u64), 10_000, 1, 1_000_000);
    let timeout_ms = bounded("timeout_ms", s.timeout_ms, 2000, 10, 60_000);
    let path = s.path.clone().unwrap_or_else(|| "/audit".to_string());
    if !path.starts_with('/') || s.cluster.is_empty() {
        errs.push(
            "audit.sink",
            "`cluster` must be an Envoy cluster name and `path` start with `/`",
        );
        return None;
    }
    Some(AuditSink {
        cluster: s.cluster.clone(),
        authority: s.authority.clone().unwrap_or_else(|| s.cluster.clone()),
        path,
        batch: usize::try_from(batch).unwrap_or(100),
        flush_ms,
        queue: usize::try_from(queue).unwrap_or(10_000),
        timeout_ms,
        required,
    })
}
