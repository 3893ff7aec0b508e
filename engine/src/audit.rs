//! The audit record: one JSON line per request (DESIGN.md). Never holds a key, an
//! approval key, an upstream credential or a body — only ids, decisions and digests.
//!
//! Serialised straight from borrowed fields (no intermediate JSON tree): it is written
//! for every request, so it is on the hot path.

use crate::operation::{Action, Scope};
use crate::time::format_rfc3339_millis;
use crate::verdict::{Subject, Verdict};
use serde::Serialize;
use std::borrow::Cow;

/// Context a record needs besides the verdict.
pub struct AuditContext<'a> {
    pub bundle: &'a str,
    pub environment: &'a str,
    pub now_ms: i64,
    /// Final response status as the host saw it (`None` if the stream never got one).
    pub status: Option<u16>,
    pub enforced: bool,
}

impl<'a> AuditContext<'a> {
    /// The context of a record from the filter: the policy's bundle and environment.
    pub fn of(policy: &'a crate::policy::Policy, now_ms: i64, status: Option<u16>) -> Self {
        AuditContext {
            bundle: &policy.name,
            environment: &policy.environment,
            now_ms,
            status,
            enforced: true,
        }
    }
}

#[derive(Serialize)]
struct Op<'a> {
    service: &'a str,
    action: Action,
    resource: &'a str,
    scope: Scope,
}

#[derive(Serialize)]
struct Record<'a> {
    ts: String,
    bundle: &'a str,
    environment: &'a str,
    request_id: &'a str,
    key: Option<&'a str>,
    role: Option<&'a str>,
    service: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    operations: Vec<Op<'a>>,
    decision: &'a str,
    reason: &'a str,
    rule: Option<&'a str>,
    digest: Option<&'a str>,
    /// Who approved (several joined with `+`).
    approval: Option<String>,
    status: Option<u16>,
    enforced: bool,
}

impl<'a> Record<'a> {
    fn new(ctx: &'a AuditContext, s: &'a Subject, decision: &'a str, reason: &'a str) -> Self {
        Record {
            ts: format_rfc3339_millis(ctx.now_ms),
            bundle: ctx.bundle,
            environment: ctx.environment,
            request_id: &s.request_id,
            key: s.key.as_deref(),
            role: s.role.as_deref(),
            service: s.service.as_deref(),
            method: &s.method,
            path: &s.path,
            operations: Vec::new(),
            decision,
            reason,
            rule: None,
            digest: None,
            approval: None,
            status: ctx.status,
            enforced: ctx.enforced,
        }
    }

    fn line(&self) -> String {
        // Serialising plain strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The record of a decided request, as one JSON line.
pub fn record(ctx: &AuditContext, verdict: &Verdict) -> String {
    let reason = verdict.reason();
    let mut r = Record::new(ctx, &verdict.subject, verdict.decision().as_str(), &reason);
    r.operations = verdict
        .operations
        .iter()
        .map(|op| Op {
            service: &op.service,
            action: op.action,
            resource: &op.resource,
            scope: op.scope,
        })
        .collect();
    r.rule = verdict.rule.as_deref();
    r.digest = verdict.digest.as_deref();
    r.approval = verdict.approval().map(|a| a.approvers.join("+"));
    r.enforced = ctx.enforced && verdict.enforced();
    r.line()
}

const INCOMPLETE: &str = "stream ended before the request was complete; nothing was forwarded";

/// The record of a stream that ended before any decision (reset while the body was
/// still arriving): nothing was forwarded.
pub fn incomplete_record(ctx: &AuditContext, subject: &Subject) -> String {
    Record::new(ctx, subject, "incomplete", INCOMPLETE).line()
}

/// The decision as Envoy's access log sees it (filter state, bundle `filter_state`): one
/// JSON property `scopegate` (`json`), or one property per field, `scopegate_<field>`
/// (`fields`, "-" for none).
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub decision: &'a str,
    pub reason: Cow<'a, str>,
    pub key: Option<&'a str>,
    pub role: Option<&'a str>,
    pub service: Option<&'a str>,
    pub rule: Option<&'a str>,
    /// `action resource` pairs, comma-separated.
    pub operations: String,
    pub enforced: bool,
}

impl<'a> Summary<'a> {
    pub fn of(v: &'a Verdict) -> Self {
        let mut operations = String::new();
        for (i, o) in v.operations.iter().enumerate() {
            if i > 0 {
                operations.push_str(", ");
            }
            operations.push_str(o.action.as_str());
            operations.push(' ');
            operations.push_str(&o.resource);
        }
        Summary {
            rule: v.rule.as_deref(),
            operations,
            enforced: v.enforced(),
            ..Summary::new(&v.subject, v.decision().as_str(), v.reason())
        }
    }

    /// A stream that ended before any decision (see [`incomplete_record`]).
    pub fn incomplete(s: &'a Subject) -> Self {
        Summary::new(s, "incomplete", INCOMPLETE.into())
    }

    fn new(s: &'a Subject, decision: &'a str, reason: Cow<'a, str>) -> Self {
        Summary {
            decision,
            reason,
            key: s.key.as_deref(),
            role: s.role.as_deref(),
            service: s.service.as_deref(),
            rule: None,
            operations: String::new(),
            enforced: true,
        }
    }

    /// The `json` form: one object.
    pub fn json(&self) -> String {
        // Serialising plain strings and options cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The `fields` form: (property name, value) pairs.
    pub fn fields(&self) -> [(&'static str, &str); 8] {
        let or_dash = |v: Option<&'a str>| v.unwrap_or("-");
        [
            ("scopegate_decision", self.decision),
            ("scopegate_reason", &self.reason),
            ("scopegate_key", or_dash(self.key)),
            ("scopegate_role", or_dash(self.role)),
            ("scopegate_service", or_dash(self.service)),
            ("scopegate_rule", or_dash(self.rule)),
            ("scopegate_operations", &self.operations),
            (
                "scopegate_enforced",
                if self.enforced { "true" } else { "false" },
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Operation;
    use crate::verdict::{Outcome, Refusal};

    fn sample() -> Verdict {
        Verdict {
            outcome: Outcome::Refuse(Refusal::Denied("guard: volume* destructive".into())),
            rule: Some("guards[0]".into()),
            grants: crate::verdict::GrantSet::default(),
            subject: Subject {
                request_id: "req-1".into(),
                method: "POST".into(),
                path: "/graphql".into(),
                key: Some("agent-domains".into()),
                role: Some("domains".into()),
                service: Some("railway".into()),
                jsonrpc: None,
            },
            operations: vec![Operation::new("railway", Action::Delete, "volumeDelete")],
            digest: Some("sha256:ab".into()),
            shadow: None,
        }
    }

    #[test]
    fn record_fields_in_design_order() {
        let v = sample();
        let ctx = AuditContext {
            bundle: "rentals-prod",
            environment: "production",
            now_ms: 1_795_543_200_123,
            status: Some(403),
            enforced: true,
        };
        assert_eq!(
            record(&ctx, &v),
            r#"{"ts":"2026-11-24T18:00:00.123Z","bundle":"rentals-prod","environment":"production","request_id":"req-1","key":"agent-domains","role":"domains","service":"railway","method":"POST","path":"/graphql","operations":[{"service":"railway","action":"delete","resource":"volumeDelete","scope":"some"}],"decision":"deny","reason":"guard: volume* destructive","rule":"guards[0]","digest":"sha256:ab","approval":null,"status":403,"enforced":true}"#
        );
        let line = incomplete_record(&ctx, &v.subject);
        assert!(line.contains(r#""decision":"incomplete""#) && line.contains(r#""operations":[]"#));
    }

    #[test]
    fn summary_forms() {
        let mut v = sample();
        v.subject.role = None;
        v.operations = vec![
            Operation::new("railway", Action::Delete, "volumeDelete"),
            Operation::new("railway", Action::Read, "volume"),
        ];
        let s = Summary::of(&v);
        assert_eq!(
            s.json(),
            r#"{"decision":"deny","reason":"guard: volume* destructive","key":"agent-domains","role":null,"service":"railway","rule":"guards[0]","operations":"delete volumeDelete, read volume","enforced":true}"#
        );
        let f = s.fields();
        assert_eq!(f[0], ("scopegate_decision", "deny"));
        assert_eq!(f[3], ("scopegate_role", "-"));
        assert_eq!(
            f[6],
            ("scopegate_operations", "delete volumeDelete, read volume")
        );
        assert_eq!(f[7], ("scopegate_enforced", "true"));
        let i = Summary::incomplete(&v.subject);
        assert_eq!(
            (i.decision, i.key, i.operations.as_str()),
            ("incomplete", Some("agent-domains"), "")
        );
    }
}
