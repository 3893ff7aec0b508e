//! `scopegate audit verify`: checks the chain of records at a sink (engine's `audit::verify`).

use crate::*;
use scopegate_engine::audit::verify;
use scopegate_engine::policy::AuditKey;

pub(crate) fn audit_verify(
    file: &Path,
    key_env: Option<&str>,
    partial: bool,
) -> Result<(), String> {
    let raw = read(file)?;
    let text = String::from_utf8(raw).map_err(|_| format!("{}: not UTF-8", file.display()))?;
    let key = match key_env {
        None => None,
        Some(name) => {
            let v = std::env::var(name).map_err(|_| format!("`{name}` is not set"))?;
            Some(AuditKey::new(v.as_bytes()).map_err(|e| format!("`{name}`: {e}"))?)
        }
    };
    let v = verify(&text, key.as_ref(), partial);
    let records: u64 = v.streams.values().map(|s| s.0).sum();
    println!(
        "{records} chained records in {} stream{}{}",
        v.streams.len(),
        if v.streams.len() == 1 { "" } else { "s" },
        if key.is_some() { " (keyed)" } else { "" }
    );
    for (stream, (n, first, last)) in &v.streams {
        println!("  {stream}: {n} records, seq {first}..{last}");
    }
    if v.problems.is_empty() {
        println!("ok: no gap, no repeat, no altered record");
        return Ok(());
    }
    for p in &v.problems {
        println!("  {p}");
    }
    Err(format!("{} problem(s) in the chain", v.problems.len()))
}
