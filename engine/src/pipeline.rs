//! One request through the pipeline of DESIGN.md:
//! authenticate → route → (body?) → decode → evaluate → verdict.
//!
//! The filter calls `begin` on request headers and, when a body must be read, `finish`
//! at end of stream (or trailers). The CLI and tests call `decide` with the whole request.
//! Both paths run the same code, so they cannot disagree.

use crate::approval;
use crate::bundle::{BundleErrors, Friction};
use crate::decode::mcp::answer_is_filtered;
use crate::digest::{request_digest, sha256, DigestInput};
use crate::evaluate::{evaluate, Evaluation, Owed};
use crate::json::nests_deeper_than;
use crate::operation::Operation;
use crate::policy::{Decoder, Key, Policy, Secrets, Service};
use crate::request::{
    content_type, undecodable, DecodeError, HeaderList, HeaderValue, RequestHead, Target,
};
use crate::verdict::{
    Approved, BudgetUse, Decision, Forward, JsonRpc, ListFilter, Refusal, Subject, Verdict,
};
use std::collections::BTreeSet;

/// Headers that ask a server to treat the request as another method. Never honoured:
/// the gateway and the upstream could disagree on what the request does.
/// Headers that make some upstreams act on another method or path than the one decided.
const OVERRIDE_HEADERS: [(&str, &str); 5] = [
    ("x-http-method-override", "method"),
    ("x-http-method", "method"),
    ("x-method-override", "method"),
    ("x-original-url", "path"),
    ("x-rewrite-url", "path"),
];

const APPROVAL_HEADER: &str = "x-scopegate-approval";
const CONFIRM_HEADER: &str = "x-scopegate-confirm";

/// Headers scopegate owns on the upstream side; whatever an agent sends is dropped.
const SCOPEGATE_HEADERS: [&str; 4] = [
    "x-scopegate-key",
    "x-scopegate-role",
    "x-scopegate-approval",
    "x-scopegate-confirm",
];

#[derive(Debug)]
pub struct Engine {
    policy: Policy,
}

/// What `begin` concluded.
#[derive(Debug)]
pub enum Step {
    /// Decided on headers alone.
    Decided(Verdict),
    /// The body is needed. Apply `forward()` now (the request is held, so nothing
    /// reaches the upstream before the decision), buffer up to `max_body_bytes()`,
    /// then call `finish`.
    NeedBody(Pending),
}

/// A request held for its body.
#[derive(Debug)]
pub struct Pending {
    head: RequestHead,
    target: Target,
    subject: Subject,
    key_id: String,
    role: usize,
    service: usize,
    max_body_bytes: usize,
    forward: Forward,
    now_ms: i64,
    /// The key's destructive budget, if any.
    budget: Option<crate::policy::Budget>,
    /// Operations and the friction they owe, once decoded and evaluated: from the head
    /// alone (REST, then held only so a challenge can bind the body), or `None` while
    /// decoding waits for the body (SQL, and REST writes whose rows a grant checks).
    judged: Option<Judged>,
    /// The decoder reads the body (`body_needed`).
    body_needed: bool,
}

/// Decoded operations, the strictest friction owed, and the operations that owe a
/// confirmation (`<action> <resource>`).
#[derive(Debug)]
struct Judged {
    ops: Vec<Operation>,
    owed: Option<Owed>,
    confirm: Vec<String>,
}

impl Pending {
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    fn owes_challenge(&self) -> bool {
        self.judged.as_ref().is_some_and(|j| {
            j.owed
                .as_ref()
                .is_some_and(|o| matches!(o.friction, Friction::Confirm | Friction::Approval))
        })
    }

    fn into_ops(self) -> Vec<Operation> {
        self.judged.map(|j| j.ops).unwrap_or_default()
    }
}

/// An authenticated caller.
struct Caller<'p> {
    key: &'p Key,
    role_name: &'p str,
}

impl Engine {
    pub fn new(policy: Policy) -> Self {
        Engine { policy }
    }

    pub fn from_json(json: &[u8], secrets: &Secrets) -> Result<Self, BundleErrors> {
        Ok(Engine::new(crate::policy::compile_json(json, secrets)?))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decides a complete request (CLI, tests): `begin`, then `finish` if needed.
    pub fn decide(&self, headers: HeaderList, body: &[u8], now_ms: i64) -> Verdict {
        match self.begin(headers, !body.is_empty(), now_ms) {
            Step::Decided(v) => v,
            Step::NeedBody(p) => self.finish(p, body),
        }
    }

    /// Headers phase, from the host's full header list (pseudo-headers included).
    /// `body_follows` is false when the headers ended the stream.
    pub fn begin(&self, headers: HeaderList, body_follows: bool, now_ms: i64) -> Step {
        match self.begin_enforced(headers, body_follows, now_ms) {
            Step::Decided(v) => Step::Decided(self.shadowed(v)),
            held => held,
        }
    }

    fn begin_enforced(&self, headers: HeaderList, body_follows: bool, now_ms: i64) -> Step {
        let head = match RequestHead::from_headers(headers) {
            Ok(h) => h,
            Err(e) => {
                let subject = Subject {
                    request_id: "-".into(),
                    path: "<undecodable>".into(),
                    ..Subject::default()
                };
                return Step::Decided(refuse(subject, e.into(), Vec::new()));
            }
        };
        // The target, normalised, and the envelope every protocol shares: a request that
        // fails either is never public and never reaches a decoder.
        let parsed = Target::parse(&head.path);
        let mut subject = Subject {
            request_id: request_id(&head),
            method: head.method.clone(),
            path: parsed
                .as_ref()
                .map(Target::path)
                .unwrap_or_else(|_| "<undecodable>".to_string()),
            ..Subject::default()
        };
        let target = parsed.and_then(|t| check_envelope(&head, &t).map(|()| t));

        // Public routes need no key.
        if let Ok(t) = &target {
            if let Some(svc) = self.public_service(&head, t, body_follows) {
                subject.service = Some(svc.name.clone());
                let verdict = Verdict {
                    decision: Decision::Allow,
                    reason: "public route".into(),
                    rule: None,
                    hint: None,
                    subject,
                    operations: Vec::new(),
                    friction: None,
                    digest: None,
                    forward: Some(self.forward(svc, None, |h| head.has_header(h))),
                    list_filter: None,
                    approvals_needed: 0,
                    approval: None,
                    budget: None,
                    enforced: true,
                };
                return Step::Decided(verdict);
            }
        }

        let caller = match self.authenticate(&head, now_ms) {
            Ok(c) => c,
            Err(r) => return Step::Decided(refuse(subject, r, Vec::new())),
        };
        subject.key = Some(caller.key.id.clone());
        subject.role = Some(caller.role_name.to_string());

        let target = match target {
            Ok(t) => t,
            Err(e) => return Step::Decided(refuse(subject, e.into(), Vec::new())),
        };
        let Some((service_idx, service)) = self.route(&head, &target) else {
            let r = Refusal::NoService {
                method: head.method.clone(),
                path: subject.path.clone(),
            };
            return Step::Decided(refuse(subject, r, Vec::new()));
        };
        subject.service = Some(service.name.clone());
        if matches!(service.decoder, Decoder::Mcp(_)) {
            subject.jsonrpc = Some(JsonRpc::default());
        }
        // Removals only for headers the request has: each is a host call in the filter.
        let forward = self.forward(service, Some(&caller), |h| head.has_header(h));
        let body_needed = self.body_needed(
            service_idx,
            service,
            caller.key.role,
            &head,
            &target,
            body_follows,
        );
        let pending = Pending {
            forward,
            key_id: caller.key.id.clone(),
            role: caller.key.role,
            service: service_idx,
            max_body_bytes: service.max_body_bytes,
            head,
            target,
            subject,
            now_ms,
            budget: caller.key.budget,
            judged: None,
            body_needed,
        };
        if body_needed && body_follows {
            // The operations (or what a write assigns) are in the body: hold the request
            // until it has arrived.
            return Step::NeedBody(pending);
        }
        let pending = match self.judge(pending, &[]) {
            Ok(p) => p,
            Err(v) => return Step::Decided(*v),
        };
        if pending.owes_challenge() && body_follows {
            // The challenge is bound to the body: read it before answering.
            return Step::NeedBody(pending);
        }
        // Anything but a challenge is decided without the body (a challenge reaching
        // here has none coming).
        Step::Decided(self.conclude(pending, &[]))
    }

    /// Body phase: the whole body has arrived (end of stream or trailers).
    pub fn finish(&self, pending: Pending, body: &[u8]) -> Verdict {
        let v = self.finish_enforced(pending, body);
        self.shadowed(v)
    }

    fn finish_enforced(&self, pending: Pending, body: &[u8]) -> Verdict {
        if body.len() > pending.max_body_bytes {
            return self.too_large(pending);
        }
        let pending = if pending.judged.is_none() {
            match self.judge(pending, body) {
                Ok(p) => p,
                Err(v) => return *v,
            }
        } else {
            pending
        };
        self.conclude(pending, body)
    }

    /// Decode and evaluate: the operations, and what they owe. `Err` is a refusal
    /// (undecodable, not covered) ready to send.
    fn judge(&self, mut p: Pending, body: &[u8]) -> Result<Pending, Box<Verdict>> {
        let (Some(service), Some(role)) =
            (self.policy.service(p.service), self.policy.role(p.role))
        else {
            let r = Refusal::BrokenKey(p.key_id.clone());
            return Err(Box::new(refuse(p.subject, r, Vec::new())));
        };
        let ops = match &service.decoder {
            _ if p.body_needed && !identity_encoded(&p.head) => undecodable(
                "request body with a content-encoding: scopegate decides on bodies it reads as sent (identity only)",
            ),
            // Only where the decoder will read the body as JSON (the media type it checks).
            _ if p.body_needed
                && reads_json(&service.decoder, &p.head)
                && nests_deeper_than(body, service.max_json_depth) =>
            {
                undecodable(format!(
                    "JSON body nests deeper than the service's limits.max_json_depth of {}",
                    service.max_json_depth
                ))
            }
            Decoder::Rest(d) => d.decode(
                &service.name,
                &p.head,
                &p.target,
                p.body_needed.then_some(body),
            ),
            // A SQL endpoint is its prefix exactly: a server may route the path below it
            // to handlers of its own (ClickHouse's `http_handlers`, which run their own
            // SQL and read path segments as parameters) — issue 18, class 3.
            Decoder::Sql(_)
                if p
                    .target
                    .strip_prefix(&service.prefix)
                    .is_none_or(|rest| !rest.is_empty()) =>
            {
                undecodable(format!(
                    "SQL is served at `/{}` only",
                    service.prefix.join("/")
                ))
            }
            Decoder::Sql(d) => d.decode(&service.name, &p.head, &p.target, body),
            Decoder::Graphql(d) => d.decode(&service.name, &p.head, &p.target, body),
            Decoder::Mcp(d) => {
                let (decoded, result) = d.decode(&service.name, &p.head, &p.target, body);
                p.subject.jsonrpc = Some(JsonRpc {
                    ids: decoded.ids,
                    session_wire: decoded.session_wire,
                });
                result.map(|()| decoded.ops)
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
                let e = DecodeError("request decodes to no operation".into());
                return Err(Box::new(refuse(p.subject, e.into(), Vec::new())));
            }
            Ok(ops) => ops,
            Err(e) => return Err(Box::new(refuse(p.subject, e.into(), Vec::new()))),
        };
        let evaluation = evaluate(&self.policy, role, &ops);
        let (owed, confirm) = match &evaluation {
            Evaluation::NotCovered { reason, .. } => {
                return Err(Box::new(refuse(
                    p.subject,
                    Refusal::NotCovered(reason.clone()),
                    ops,
                )));
            }
            Evaluation::Covered { owed } => (
                evaluation.strictest().map(|(_, o)| o.clone()),
                owed.iter()
                    .zip(&ops)
                    .filter(|(o, _)| o.friction == Friction::Confirm)
                    .map(|(_, op)| format!("{} {}", op.action, op.resource))
                    .collect(),
            ),
        };
        p.judged = Some(Judged { ops, owed, confirm });
        Ok(p)
    }

    /// Whether deciding reads the body. SQL, GraphQL and MCP always do. A REST request
    /// does when it writes rows its body holds and the caller's role has a grant with
    /// `records` on the service: such a grant checks what the write assigns (the values
    /// of the rows it creates, the post-image of the rows it updates). Anything else is
    /// decided on its head, its body streaming through.
    fn body_needed(
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
            Decoder::Rest(d) if body_follows && d.reads_route_bodies() => true,
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

    /// The body could not be read from the host: refused, never forwarded unread.
    pub fn unreadable(&self, pending: Pending) -> Verdict {
        let e = DecodeError("request body could not be read".into());
        let subject = pending.subject.clone();
        self.shadowed(refuse(subject, e.into(), pending.into_ops()))
    }

    /// The body grew past the service's limit before it ended.
    pub fn too_large(&self, pending: Pending) -> Verdict {
        let r = Refusal::TooLarge {
            limit: pending.max_body_bytes,
        };
        let subject = pending.subject.clone();
        self.shadowed(refuse(subject, r, pending.into_ops()))
    }

    /// Shadow mode (the bundle's `"mode": "shadow"`, or the caller's role's): a refusal
    /// is recorded as decided, with `enforced: false`, and the request goes on — with
    /// the usual header changes when a key was recognised, untouched otherwise.
    fn shadowed(&self, v: Verdict) -> Verdict {
        if v.decision == Decision::Allow {
            return v;
        }
        let role = v
            .subject
            .role
            .as_deref()
            .and_then(|r| self.policy.roles.iter().find(|x| x.name == r));
        if !(self.policy.shadow || role.is_some_and(|r| r.shadow)) {
            return v;
        }
        let service = v
            .subject
            .service
            .as_deref()
            .and_then(|s| self.policy.service_named(s));
        let key = v
            .subject
            .key
            .as_deref()
            .and_then(|k| self.policy.key_by_id(k));
        let forward = match (service, key, role) {
            (Some(service), Some(key), Some(role)) => self.forward(
                service,
                Some(&Caller {
                    key,
                    role_name: &role.name,
                }),
                // The head is gone: every removal (one of an absent header is a no-op).
                |_| true,
            ),
            _ => Forward::default(),
        };
        Verdict {
            forward: Some(forward),
            enforced: false,
            ..v
        }
    }

    /// Turns decoded, evaluated operations into the verdict. `body` is only read for a
    /// challenge, whose digest binds it (the filter holds the body in that case only).
    /// A confirmation or approval presented with the request is checked here.
    fn conclude(&self, p: Pending, body: &[u8]) -> Verdict {
        let Some(judged) = p.judged else {
            let e = DecodeError("request was not decoded".into());
            return refuse(p.subject, e.into(), Vec::new());
        };
        let owed = judged.owed.unwrap_or(Owed {
            friction: Friction::None,
            approvals: 1,
            rule: String::new(),
            reason: String::new(),
        });
        // What a challenge binds: computed only when friction is owed.
        let digest = matches!(owed.friction, Friction::Confirm | Friction::Approval)
            .then(|| digest_of(&p.key_id, &p.head, &p.target, body, &judged.ops))
            .unwrap_or_default();
        let base = Verdict {
            decision: Decision::Allow,
            reason: owed.reason.clone(),
            rule: (!owed.rule.is_empty()).then_some(owed.rule.clone()),
            hint: None,
            subject: p.subject,
            operations: judged.ops,
            friction: None,
            approvals_needed: 0,
            digest: None,
            forward: None,
            list_filter: None,
            approval: None,
            budget: None,
            enforced: true,
        };
        let allow = |v: Verdict, approval: Option<Approved>| {
            let budget = budget_use(p.budget, &p.key_id, &v.operations, p.now_ms);
            Verdict {
                list_filter: answer_is_filtered(&v.operations).then_some(ListFilter {
                    role: p.role,
                    service: p.service,
                }),
                forward: Some(p.forward.clone()),
                approval,
                budget,
                ..v
            }
        };
        let challenge = |v: Verdict, digest: Option<String>| Verdict {
            decision: Decision::Challenge,
            hint: Some(challenge_hint(owed.friction)),
            friction: Some(owed.friction),
            approvals_needed: if owed.friction == Friction::Approval {
                owed.approvals
            } else {
                0
            },
            digest,
            ..v
        };
        let proof = |v: Verdict, reason: String| v.refused(Refusal::BadProof(reason));
        match owed.friction {
            Friction::None => allow(base, None),
            Friction::Deny => {
                let r = Refusal::Denied(base.reason.clone());
                Verdict {
                    decision: r.decision(),
                    hint: Some(r.hint()),
                    ..base
                }
            }
            Friction::Confirm => match p.head.header(CONFIRM_HEADER) {
                HeaderValue::Absent => challenge(base, Some(digest)),
                HeaderValue::Repeated => proof(base, format!("repeated {CONFIRM_HEADER}")),
                HeaderValue::One(v) => {
                    let given: BTreeSet<String> = String::from_utf8_lossy(v)
                        .split(',')
                        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
                        .filter(|c| !c.is_empty())
                        .collect();
                    let want: BTreeSet<String> = judged.confirm.iter().cloned().collect();
                    if given == want {
                        let reason = format!("confirmed: {}", judged.confirm.join(", "));
                        allow(Verdict { reason, ..base }, None)
                    } else {
                        let want = judged.confirm.join(", ");
                        proof(base, format!("{CONFIRM_HEADER} does not match: this request needs exactly `{want}`"))
                    }
                }
            },
            Friction::Approval => match p.head.header(APPROVAL_HEADER) {
                HeaderValue::Absent => challenge(base, Some(digest)),
                HeaderValue::Repeated => proof(
                    base,
                    format!("repeated {APPROVAL_HEADER} (send several tokens comma-separated)"),
                ),
                HeaderValue::One(v) => {
                    match self.check_approval(v, &digest, &p.key_id, p.now_ms, owed.approvals) {
                        Ok(approved) => {
                            let reason = format!(
                                "approved by {} ({})",
                                approved.approvers.join(" and "),
                                base.reason
                            );
                            allow(
                                Verdict {
                                    reason,
                                    digest: Some(digest),
                                    ..base
                                },
                                Some(approved),
                            )
                        }
                        Err(reason) => proof(
                            Verdict {
                                digest: Some(digest),
                                ..base
                            },
                            reason,
                        ),
                    }
                }
            },
        }
    }

    /// Approval tokens (comma-separated): each must verify; `needed` different approvers.
    fn check_approval(
        &self,
        header: &[u8],
        digest: &str,
        key_id: &str,
        now_ms: i64,
        needed: u8,
    ) -> Result<Approved, String> {
        let Some(key) = &self.policy.approval_key else {
            return Err(
                "approval tokens cannot be checked here: no approval key is configured".into(),
            );
        };
        let text = String::from_utf8_lossy(header);
        let tokens: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() || tokens.len() > 2 {
            return Err(format!("{APPROVAL_HEADER} must hold one or two tokens"));
        }
        let mut approved = Approved {
            approvers: Vec::new(),
            nonces: Vec::new(),
        };
        for (i, t) in tokens.iter().enumerate() {
            let g = approval::verify(key, t, digest, key_id, now_ms)
                .map_err(|e| format!("approval token {} rejected: {e}", i + 1))?;
            if approved.approvers.contains(&g.approver) {
                return Err(format!(
                    "two tokens from the same approver `{}`",
                    g.approver
                ));
            }
            if approved.nonces.iter().any(|(n, _)| *n == g.nonce) {
                return Err("two tokens with the same nonce".into());
            }
            approved.approvers.push(g.approver);
            approved.nonces.push((g.nonce, g.exp));
        }
        if approved.approvers.len() < usize::from(needed) {
            return Err(format!(
                "this request needs {needed} approvals from different approvers; {} given",
                approved.approvers.len()
            ));
        }
        Ok(approved)
    }

    /// Finds the caller's key. Every presented credential header counts; two different
    /// credentials, or one header sent twice, are refused rather than picked from.
    fn authenticate(&self, head: &RequestHead, now_ms: i64) -> Result<Caller<'_>, Refusal> {
        let mut presented: Option<&[u8]> = None;
        for name in &self.policy.credential_headers {
            let value = match head.header(name) {
                HeaderValue::Absent => continue,
                HeaderValue::Repeated => {
                    return Err(Refusal::AmbiguousCredential(format!(
                        "repeated {name} header"
                    )))
                }
                HeaderValue::One(v) => v,
            };
            let token = if name == "authorization" {
                match bearer_token(value) {
                    Some(t) => t,
                    None => continue, // another scheme: not a scopegate key (and stripped)
                }
            } else {
                trim(value)
            };
            if token.is_empty() {
                return Err(Refusal::AmbiguousCredential(format!("empty {name}")));
            }
            match presented {
                Some(p) if p != token => {
                    return Err(Refusal::AmbiguousCredential(
                        "two different credentials presented".into(),
                    ))
                }
                _ => presented = Some(token),
            }
        }
        let token = presented.ok_or(Refusal::NoCredential)?;
        let key = self
            .policy
            .key_by_digest(&sha256(token))
            .ok_or(Refusal::UnknownKey)?;
        if key.expires.is_some_and(|e| now_ms >= e) {
            return Err(Refusal::ExpiredKey(key.id.clone()));
        }
        if let Some(envs) = &key.environments {
            if !envs.contains(&self.policy.environment) {
                return Err(Refusal::WrongEnvironment {
                    key: key.id.clone(),
                    environment: self.policy.environment.clone(),
                });
            }
        }
        let role = self
            .policy
            .role(key.role)
            .ok_or_else(|| Refusal::BrokenKey(key.id.clone()))?;
        Ok(Caller {
            key,
            role_name: &role.name,
        })
    }

    /// First service whose `match` fits (hosts, path prefix by whole segments, methods).
    fn route(&self, head: &RequestHead, target: &Target) -> Option<(usize, &Service)> {
        let host = head.host();
        self.policy.services.iter().enumerate().find(|(_, s)| {
            (s.hosts.is_empty() || s.hosts.iter().any(|h| h.matches(&host)))
                && target.strip_prefix(&s.prefix).is_some()
                && s.methods.as_ref().is_none_or(|m| m.contains(&head.method))
        })
    }

    /// The service of a public route this request takes. A query string or a body is an
    /// input the upstream reads: such a request is not public (it is decided like any
    /// other, with a key).
    fn public_service(
        &self,
        head: &RequestHead,
        target: &Target,
        body_follows: bool,
    ) -> Option<&Service> {
        if self.policy.public.is_empty() || !target.query.is_empty() || body_follows {
            return None;
        }
        let (_, routed) = self.route(head, target)?;
        self.policy
            .public
            .iter()
            .filter(|p| p.path == target.segments && p.methods.contains(&head.method))
            .filter_map(|p| self.policy.service(p.service))
            .find(|s| std::ptr::eq(*s, routed))
    }

    /// Header changes on the way to the upstream: the agent's credential and any
    /// `x-scopegate-*` it sent are removed (those `present` says the request has); identity
    /// and upstream auth are set.
    fn forward(
        &self,
        service: &Service,
        caller: Option<&Caller>,
        present: impl Fn(&str) -> bool,
    ) -> Forward {
        let mut f = Forward::default();
        let credentials = self.policy.credential_headers.iter().map(String::as_str);
        f.remove.extend(
            credentials
                .chain(SCOPEGATE_HEADERS)
                .filter(|h| present(h))
                .map(str::to_string),
        );
        if let Some(c) = caller {
            f.set.push(("x-scopegate-key".into(), c.key.id.clone()));
            f.set
                .push(("x-scopegate-role".into(), c.role_name.to_string()));
        }
        if let Some(ua) = &service.upstream_auth {
            f.set.push((ua.header.clone(), ua.value.clone()));
        }
        if matches!(service.decoder, Decoder::Mcp(_)) {
            // MCP answers may be filtered on the way back: ask for them uncompressed.
            f.remove.push("accept-encoding".into());
        }
        f
    }
}

/// The destructive budget a forwarded request spends, if its key has one.
fn budget_use(
    budget: Option<crate::policy::Budget>,
    key_id: &str,
    ops: &[Operation],
    now_ms: i64,
) -> Option<BudgetUse> {
    let budget = budget?;
    let cost = ops.iter().filter(|o| o.is_destructive()).count();
    (cost > 0).then(|| BudgetUse {
        key: key_id.to_string(),
        limit: budget.limit,
        window_ms: budget.window_ms,
        per: human_window(budget.window_ms),
        cost: u32::try_from(cost).unwrap_or(u32::MAX),
        now_ms,
    })
}

fn digest_of(
    key_id: &str,
    head: &RequestHead,
    target: &Target,
    body: &[u8],
    operations: &[Operation],
) -> String {
    request_digest(&DigestInput {
        key_id,
        method: &head.method,
        authority: &head.authority,
        path: &target.path(),
        query: &target.raw_query,
        body,
        operations,
    })
}

/// `3600000` → `1h`.
fn human_window(ms: i64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{}s", ms / 1000)
}

fn challenge_hint(friction: Friction) -> String {
    match friction {
        Friction::Confirm => "this operation needs confirmation: only if a human asked for exactly this, retry it unchanged with `x-scopegate-confirm: <action> <resource>`".into(),
        _ => "this operation needs a human's approval out of band: give the `challenge` to a human who can run `scopegate approve`, then retry the request unchanged with the token in `x-scopegate-approval`; do not try another way".into(),
    }
}

fn refuse(subject: Subject, r: Refusal, operations: Vec<Operation>) -> Verdict {
    Verdict {
        decision: r.decision(),
        reason: r.to_string(),
        rule: None,
        hint: Some(r.hint()),
        subject,
        operations,
        friction: None,
        digest: None,
        forward: None,
        list_filter: None,
        approvals_needed: 0,
        approval: None,
        budget: None,
        enforced: true,
    }
}

/// Headers whose meaning depends on which of two copies a server reads (first-wins or
/// last-wins): sent twice, the request is refused whatever the protocol. (`authorization`
/// and `x-api-key` are checked by authentication, `mcp-*` by the MCP decoder too.)
const SINGLE_HEADERS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "accept-profile",
    "content-profile",
];
const SINGLE_HEADER_PREFIXES: [&str; 2] = ["x-scopegate-", "mcp-"];

/// Envelope checks every protocol shares: nothing may ask the upstream to treat the
/// request as another method or path than the one the filter judged, and no header
/// that matters may come twice.
fn check_envelope(head: &RequestHead, target: &Target) -> Result<(), DecodeError> {
    for (h, what) in OVERRIDE_HEADERS {
        if head.has_header(h) {
            return undecodable(format!("{what} override header `{h}`"));
        }
    }
    let single = |n: &str| {
        SINGLE_HEADERS.contains(&n) || SINGLE_HEADER_PREFIXES.iter().any(|p| n.starts_with(p))
    };
    for (i, (name, _)) in head.headers.iter().enumerate() {
        if single(name)
            && head
                .headers
                .iter()
                .skip(i + 1)
                .any(|(other, _)| other == name)
        {
            return undecodable(format!("repeated {name} header"));
        }
    }
    if target.params("_method").next().is_some() {
        return undecodable("method override parameter `_method`");
    }
    Ok(())
}

/// Whether the decoder reads a held body as JSON (where the JSON depth limit applies).
fn reads_json(decoder: &Decoder, head: &RequestHead) -> bool {
    match decoder {
        Decoder::Rest(d) => d.body_is_json(head),
        _ => content_type(head, &["application/json"], "JSON").is_ok(),
    }
}

/// No `content-encoding`, or exactly `identity`: the body's bytes are what the upstream
/// will read (anything else — `gzip`, a list, a repeated header — is not).
fn identity_encoded(head: &RequestHead) -> bool {
    match head.header("content-encoding") {
        HeaderValue::Absent => true,
        HeaderValue::One(v) => trim(v).eq_ignore_ascii_case(b"identity"),
        HeaderValue::Repeated => false,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// `Bearer <token>` (scheme case-insensitive) → token.
fn bearer_token(v: &[u8]) -> Option<&[u8]> {
    let v = trim(v);
    let scheme = v.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(trim(v.get(7..)?))
}

fn request_id(head: &RequestHead) -> String {
    match head.header("x-request-id") {
        HeaderValue::One(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b)) =>
        {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => "-".to_string(),
    }
}
