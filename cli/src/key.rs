//! `scopegate key new`: a key for an agent, and the bundle line that admits it.

use crate::*;

pub(crate) fn key_new(
    id: &str,
    role: &str,
    environments: &[String],
    expires: Option<&str>,
    bundle: Option<&Path>,
) -> Result<(), String> {
    if let Some(e) = expires {
        let at = parse_rfc3339(e)
            .ok_or_else(|| format!("--expires: `{e}` is not an RFC 3339 timestamp"))?;
        if at <= now_or(None)? {
            return Err(format!(
                "--expires: `{e}` is already past: the key would never work"
            ));
        }
    }
    match bundle {
        Some(path) => {
            let (b, _) = load_both(path, &[])?;
            if !b.roles.iter().any(|r| r.name == role) {
                let roles: Vec<&str> = b.roles.iter().map(|r| r.name.as_str()).collect();
                return Err(format!(
                    "--role: `{role}` is not a role of {} (its roles: {})",
                    path.display(),
                    roles.join(", ")
                ));
            }
            if b.keys.iter().any(|k| k.id == id) {
                return Err(format!(
                    "--id: {} already has a key `{id}`",
                    path.display()
                ));
            }
        }
        None => eprintln!(
            "note: pass --bundle to check that role `{role}` exists (a key for a role the bundle lacks is refused when the bundle is compiled)"
        ),
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
