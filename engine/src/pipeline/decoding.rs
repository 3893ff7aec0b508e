//! Decoding: whether the body is needed, and the request decoded into operations by its
//! service's decoder, then evaluated against the role.

use super::*;
use crate::request::{over_limit, unmodelled};

impl Engine {
    /// Decode and evaluate: the operations, and what they owe. `Err` is a refusal
    /// (undecodable, not covered) ready to send.
    pub(super) fn judge(&self, mut p: Pending, body: &[u8]) -> Result<Pending, Box<Verdict>> {
        let (Some(service), Some(role)) =
            (self.policy.service(p.service), self.policy.role(p.role))
        else {
            let r = Refusal::BrokenKey(p.key_id.clone());
            return Err(Box::new(Verdict::refuse(p.subject, r, Vec::new())));
        };
        let ops = match &service.decoder {
            _ if p.body_needed && !identity_encoded(&p.head) => unmodelled(
                "request body with a content-encoding: scopegate decides on bodies it reads as sent (identity only)",
            ),
            // Only where the decoder will read the body as JSON (the media type it checks).
            _ if p.body_needed
                && reads_json(&service.decoder, &p.head)
                && nests_deeper_than(body, service.max_json_depth) =>
            {
                over_limit(format!(
                    "JSON body nests deeper than the service's limits.max_json_depth of {}",
                    service.max_json_depth
                ))
            }
            decoder => {
                let input = Input {
                    service: &service.name,
                    prefix: &service.prefix,
                    head: &p.head,
                    target: &p.target,
                    body: p.body_needed.then_some(body),
                };
                let decoded = decoder.decode(&input);
                if decoded.jsonrpc.is_some() {
                    p.subject.jsonrpc = decoded.jsonrpc;
                }
                decoded.ops
            }
        };
        // Each operation's environments: from its ids where the service maps them,
        // else this instance's. Only grants and guards with `environments` read them.
        let mut ops = ops;
        if let (Ok(ops), true) = (&mut ops, self.policy.uses_environments) {
            for op in ops.iter_mut() {
                op.environments = self
                    .policy
                    .service_named(&op.service)
                    .map(|s| s.environments_of(op, &self.policy.environment))
                    .unwrap_or_else(|| vec![self.policy.environment.clone()]);
            }
        }
        let ops = match ops {
            Ok(ops) if ops.is_empty() => {
                let e = DecodeError::unmodelled("request decodes to no operation");
                return Err(Box::new(Verdict::refuse(p.subject, e.into(), Vec::new())));
            }
            Ok(ops) => ops,
            Err(e) => return Err(Box::new(Verdict::refuse(p.subject, e.into(), Vec::new()))),
        };
        let evaluation = evaluate(&self.policy, role, &ops);
        let (owed, confirm, grants) = match &evaluation {
            Evaluation::NotCovered { reason, .. } => {
                return Err(Box::new(Verdict::refuse(
                    p.subject,
                    Refusal::NotCovered(reason.clone()),
                    ops,
                )));
            }
            Evaluation::Covered { owed, grants } => (
                evaluation.strictest().map(|(_, o)| o.clone()),
                owed.iter()
                    .zip(&ops)
                    .filter(|(o, _)| o.friction == Friction::Confirm)
                    .map(|(_, op)| format!("{} {}", op.action, op.resource))
                    .collect(),
                *grants,
            ),
        };
        p.judged = Some(Judged {
            ops,
            owed,
            confirm,
            grants,
        });
        Ok(p)
    }
    /// Whether deciding reads the body. SQL, GraphQL and MCP always do. A REST request
    /// does when it writes rows its body holds and the caller's role has a grant with
    /// `records` on the service: such a grant checks what the write assigns (the values
    /// of the rows it creates, the post-image of the rows it updates). Anything else is
    /// decided on its head, its body streaming through.
    pub(super) fn body_needed(
        &self,
        service_idx: usize,
        service: &Service,
        role: usize,
        head: &RequestHead,
        target: &Target,
        body_follows: bool,
    ) -> bool {
        match &service.decoder {
            // An upstream that reads options from the body of a read or delete (DreamFactory):
            // the body is read to be refused, never left unseen.
            Decoder::Rest(d) if body_follows && d.reads_body_options() => true,
            // A route's body may shadow its parameters (`route_body`).
            Decoder::Rest(d) if body_follows && d.reads_route_body(&head.method, target) => true,
            // Held for a grant with `records` (what the write assigns, what the call is
            // given), and a function's arguments also for a guard with `arguments` on
            // the service.
            Decoder::Rest(d) => {
                let records_grant = || {
                    self.policy.role(role).is_some_and(|r| {
                        r.grants
                            .iter()
                            .any(|g| g.service == service_idx && g.records.is_some())
                    })
                };
                let argument_guard = || {
                    self.policy.guards.iter().any(|g| {
                        g.arguments.is_some() && g.services.iter().any(|s| s.matches(&service.name))
                    })
                };
                d.body_holds_rows(&head.method, target)
                    && (records_grant()
                        || (d.body_holds_arguments(&head.method, target) && argument_guard()))
            }
            other => other.needs_body(),
        }
    }
}

/// Whether the decoder reads a held body as JSON (where the JSON depth limit applies).
pub(super) fn reads_json(decoder: &Decoder, head: &RequestHead) -> bool {
    match decoder {
        Decoder::Rest(d) => d.body_is_json(head),
        _ => content_type(head, &["application/json"], "JSON").is_ok(),
    }
}

/// No `content-encoding`, or exactly `identity`: the body's bytes are what the upstream
/// will read (anything else — `gzip`, a list, a repeated header — is not).
pub(super) fn identity_encoded(head: &RequestHead) -> bool {
    match head.header("content-encoding") {
        HeaderValue::Absent => true,
        HeaderValue::One(v) => trim(v).eq_ignore_ascii_case(b"identity"),
        HeaderValue::Repeated => false,
    }
}
