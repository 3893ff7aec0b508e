//! `scopegate approver new` and `scopegate approver gateway`: Ed25519 key pairs for
//! signed approvals — one per approver, one per gateway (fleet) for its challenges.

use crate::*;
use scopegate_engine::approval::PrivateKey;

/// A fresh private key.
pub(crate) fn fresh_key() -> Result<PrivateKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(PrivateKey::from_seed(seed))
}

/// Writes a private key file readable by its owner only; refuses to overwrite one.
fn write_private(path: &Path, key: &PrivateKey) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(path)
        .map_err(|e| format!("{}: {e} (a key file is never overwritten)", path.display()))?;
    writeln!(f, "{}", key.to_base64()).map_err(|e| format!("{}: {e}", path.display()))
}

/// A key pair for an approver: the private key into `out`, the bundle line on stdout.
pub(crate) fn approver_new(name: &str, out: &Path) -> Result<(), String> {
    if !approval::valid_label(name) {
        return Err("--name: 1-64 printable characters, no comma or quote".into());
    }
    let key = fresh_key()?;
    write_private(out, &key)?;
    eprintln!(
        "private key of `{name}` written to {} (keep it to yourself: `scopegate approve --key-file`)",
        out.display()
    );
    eprintln!("bundle line (add it to \"approvals\".\"approvers\"):");
    println!("{}", json!({"name": name, "ed25519": key.public_base64()}));
    Ok(())
}

/// The gateway's challenge key: its seed into `out` (for `SCOPEGATE_CHALLENGE_KEY`), the
/// bundle's `challenge_key` on stdout.
pub(crate) fn approver_gateway(out: &Path) -> Result<(), String> {
    let key = fresh_key()?;
    write_private(out, &key)?;
    eprintln!(
        "challenge-signing key written to {}: give its content to every gateway as {} (vm_config.environment_variables)",
        out.display(),
        approval::CHALLENGE_KEY_ENV
    );
    eprintln!("bundle value (\"approvals\".\"challenge_key\"):");
    println!("{}", key.public_base64());
    Ok(())
}
