//! `scopegate eval`: one request decided by the engine, natively.

use crate::*;

pub(crate) fn eval(
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
        "decision": v.decision().as_str(),
        "status": v.status(),
        "reason": v.reason(),
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
