//! The audit record: one JSON line per request (DESIGN.md). Never holds a key, an
//! approval key, an upstream credential or a body — only ids, decisions and digests.

use crate::operation::Scope;
use crate::time::format_rfc3339_millis;
use crate::verdict::{Subject, Verdict};
use serde_json::{json, Value};

/// Context a record needs besides the verdict.
pub struct AuditContext<'a> {
    pub bundle: &'a str,
    pub environment: &'a str,
    pub now_ms: i64,
    /// Final response status as the host saw it (`None` if the stream never got one).
    pub status: Option<u16>,
    pub enforced: bool,
}

pub fn record(ctx: &AuditContext, verdict: &Verdict) -> Value {
    let ops: Vec<Value> = verdict
        .operations
        .iter()
        .map(|op| {
            json!({
                "service": op.service,
                "action": op.action,
                "resource": op.resource,
                "scope": if op.scope == Scope::All { "all" } else { "some" },
            })
        })
        .collect();
    let s = &verdict.subject;
    json!({
        "ts": format_rfc3339_millis(ctx.now_ms),
        "bundle": ctx.bundle,
        "environment": ctx.environment,
        "request_id": s.request_id,
        "key": s.key,
        "role": s.role,
        "service": s.service,
        "method": s.method,
        "path": s.path,
        "operations": ops,
        "decision": verdict.decision.as_str(),
        "reason": verdict.reason,
        "rule": verdict.rule,
        "digest": verdict.digest,
        "approval": Value::Null,
        "status": ctx.status,
        "enforced": ctx.enforced,
    })
}

/// A record for a stream that ended before any decision (reset while the body was
/// still arriving): nothing was forwarded.
pub fn incomplete_record(ctx: &AuditContext, subject: &Subject) -> Value {
    json!({
        "ts": format_rfc3339_millis(ctx.now_ms),
        "bundle": ctx.bundle,
        "environment": ctx.environment,
        "request_id": subject.request_id,
        "key": subject.key,
        "role": subject.role,
        "service": subject.service,
        "method": subject.method,
        "path": subject.path,
        "operations": [],
        "decision": "incomplete",
        "reason": "stream ended before the request was complete; nothing was forwarded",
        "rule": Value::Null,
        "digest": Value::Null,
        "approval": Value::Null,
        "status": ctx.status,
        "enforced": ctx.enforced,
    })
}
