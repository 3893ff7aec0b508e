//! One request through the pipeline of DESIGN.md:
//! authenticate → route → (body?) → decode → evaluate → verdict.
//!
//! The filter calls `begin` on request headers and, when a body must be read, `finish`
//! at end of stream (or trailers). The CLI and tests call `decide` with the whole request.
//! Both paths run the same code, so they cannot disagree.
//!
//! One module per stage: `envelope`, `authentication`, `routing`, `decoding` (and
//! evaluation), `friction`, `forwarding` (and shadow mode); this one orchestrates.

mod authentication;
mod decoding;
mod envelope;
mod forwarding;
pub use forwarding::SERVICE_HEADER;
mod friction;
mod routing;

use crate::approval;
use crate::bundle::{BundleErrors, Friction};
use crate::decode::mcp::answer_is_filtered;
use crate::decode::memo::Memo;
use crate::decode::{Decode, Input};
use crate::digest::{hex, request_digest, sha256, DigestInput};
use crate::evaluate::{evaluate, Evaluation, Owed};
use crate::json::nests_deeper_than;
use crate::operation::Operation;
use crate::policy::{Decoder, Policy, Secrets, Service};
use crate::request::{content_type, DecodeError, HeaderList, HeaderValue, RequestHead, Target};
use crate::verdict::{
    Allowed, Approved, BudgetUse, Challenge, Forward, GrantSet, JsonRpc, ListFilter, Outcome,
    Proof, Refusal, Subject, Verdict,
};
pub use authentication::Verified;
use authentication::*;
use envelope::*;
use std::collections::BTreeSet;

#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    /// Whole decisions of repeated header-only requests ([`Engine::begin_verified`]), each
    /// with the time it stops holding (its key's expiry).
    decisions: Memo<(Verdict, Option<i64>)>,
    /// The memo is off when the bundle reads a credential from a header whose value the
    /// memo's key leaves out ([`UNREAD_HEADER_VALUES`]).
    memo_off: bool,
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
    /// The grants that covered `ops` (`Verdict::grants`).
    grants: GrantSet,
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

impl Engine {
    pub fn new(policy: Policy) -> Self {
        let memo_off = policy.credential_headers.iter().any(|c| value_unread(c));
        Engine {
            policy,
            decisions: Memo::new(),
            memo_off,
        }
    }
    pub fn from_json(json: &[u8], secrets: &Secrets) -> Result<Self, BundleErrors> {
        Ok(Engine::new(crate::policy::compile_json(json, secrets)?))
    }
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// Decisions the decision memo holds (see [`Engine::begin_verified`]).
    pub fn memoised_decisions(&self) -> usize {
        self.decisions.len()
    }
    /// Decides a complete request (CLI, tests): `begin`, then `finish` if needed.
    pub fn decide(&self, headers: HeaderList, body: &[u8], now_ms: i64) -> Verdict {
        self.decide_verified(headers, None, body, now_ms)
    }
    /// Headers phase, from the host's full header list (pseudo-headers included).
    /// `body_follows` is false when the headers ended the stream.
    pub fn begin(&self, headers: HeaderList, body_follows: bool, now_ms: i64) -> Step {
        self.begin_verified(headers, None, body_follows, now_ms)
    }
    /// `begin`, with the payload of a token Envoy's `jwt_authn` verified (read by the
    /// filter from dynamic metadata, only when the bundle has `identities`).
    ///
    /// A request that ends with its headers is first looked up among the VM's earlier
    /// decisions (the decision memo, [`decision_key`]): agents repeat their requests, and a
    /// decision is most of what a header-only request costs inside the VM. The key is
    /// every byte of every header but the values of [`UNREAD_HEADER_VALUES`] (the request
    /// id, set afresh on a hit, and tracing headers), so a hit is the same request.
    /// Only decisions that depend on nothing but those bytes and the bundle are kept: an
    /// allow without approval, budget, shadow or digest, by a key (until it expires: a hit
    /// after that is decided afresh) or on a public route, and never with `identities`
    /// (the verified token is not a header).
    pub fn begin_verified(
        &self,
        headers: HeaderList,
        verified: Option<&Verified>,
        body_follows: bool,
        now_ms: i64,
    ) -> Step {
        let key = match (verified, &self.policy.identities, body_follows) {
            (None, None, false) if !self.memo_off => {
                decision_key(&headers, &self.policy.credential_headers)
            }
            _ => None,
        };
        let Some(key) = key else {
            return self.begin_fresh(headers, verified, body_follows, now_ms);
        };
        let id = request_id_of(
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
                .map(|(_, v)| v.as_slice()),
        );
        let found = self.decisions.get_valid_or(
            &key,
            |(_, until)| until.is_none_or(|t| now_ms < t),
            || match self.begin_fresh(headers, None, false, now_ms) {
                Step::Decided(v) => match self.memoisable(&v) {
                    Some(until) => Ok((v, until)),
                    None => Err(Box::new(Step::Decided(v))),
                },
                step => Err(Box::new(step)),
            },
        );
        match found {
            Ok((mut v, _)) => {
                v.subject.request_id = id;
                Step::Decided(v)
            }
            Err(step) => *step,
        }
    }
    fn begin_fresh(
        &self,
        headers: HeaderList,
        verified: Option<&Verified>,
        body_follows: bool,
        now_ms: i64,
    ) -> Step {
        match self.begin_enforced(headers, verified, body_follows, now_ms) {
            Step::Decided(v) => Step::Decided(self.shadowed(v)),
            held => held,
        }
    }
    /// Whether the decision memo may keep a verdict — one that the request's bytes and the
    /// bundle decide alone — and until when: `Some(None)` for good, `Some(Some(t))` until
    /// its key expires at `t`, `None` not at all (see [`Engine::begin_verified`]).
    fn memoisable(&self, v: &Verdict) -> Option<Option<i64>> {
        let a = v.allowed()?;
        if a.approval.is_some() || a.budget.is_some() || v.shadow.is_some() || v.digest.is_some() {
            return None;
        }
        match &v.subject.key {
            None => Some(None),
            Some(id) => Some(self.policy.key_by_id(id)?.expires),
        }
    }
    /// `decide`, with a verified token's payload (see `begin_verified`).
    pub fn decide_verified(
        &self,
        headers: HeaderList,
        verified: Option<&Verified>,
        body: &[u8],
        now_ms: i64,
    ) -> Verdict {
        match self.begin_verified(headers, verified, !body.is_empty(), now_ms) {
            Step::Decided(v) => v,
            Step::NeedBody(p) => self.finish(p, body),
        }
    }
    fn begin_enforced(
        &self,
        headers: HeaderList,
        verified: Option<&Verified>,
        body_follows: bool,
        now_ms: i64,
    ) -> Step {
        let head = match RequestHead::from_headers(headers) {
            Ok(h) => h,
            Err(e) => {
                let subject = Subject {
                    request_id: "-".into(),
                    path: "<undecodable>".into(),
                    ..Subject::default()
                };
                return Step::Decided(Verdict::refuse(subject, e.into(), Vec::new()));
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
            query: parsed
                .as_ref()
                .ok()
                .filter(|t| !t.raw_query.is_empty())
                .map(|t| t.raw_query.clone()),
            user_agent: match head.header("user-agent") {
                HeaderValue::One(v) => Some(String::from_utf8_lossy(v).into_owned()),
                _ => None,
            },
            prefixed_headers: head.prefixed(&crate::policy::UPSTREAM_CREDENTIAL_PREFIXES),
            alias_headers: head.underscore_aliases(
                &crate::policy::UPSTREAM_CREDENTIAL_HEADERS,
                &["x-hasura-", "x-scopegate-"],
            ),
            ..Subject::default()
        };
        let target = parsed.and_then(|t| check_envelope(&head, &t).map(|()| t));

        // Public routes need no key.
        if let Ok(t) = &target {
            if let Some(svc) = self.public_service(&head, t, body_follows) {
                subject.service = Some(svc.name.clone());
                let allowed = Allowed {
                    reason: "public route".into(),
                    forward: self.forward(
                        svc,
                        None,
                        |h| head.has_header(h),
                        &subject.prefixed_headers,
                        &subject.alias_headers,
                    ),
                    list_filter: None,
                    approval: None,
                    budget: None,
                };
                let verdict = Verdict {
                    subject,
                    operations: Vec::new(),
                    rule: None,
                    grants: GrantSet::default(),
                    digest: None,
                    outcome: Outcome::Allow(allowed),
                    shadow: None,
                };
                return Step::Decided(verdict);
            }
        }

        let caller = match self.authenticate(&head, now_ms, verified) {
            Ok(c) => c,
            Err(r) => {
                // MCP clients find the authorization server from the 401 (the MCP
                // authorization specification; RFC 9728).
                if let (Some(url), Ok(t)) = (
                    self.policy
                        .identities
                        .as_ref()
                        .and_then(|i| i.resource_metadata.as_deref()),
                    &target,
                ) {
                    if self
                        .route(&head, t)
                        .is_some_and(|(_, svc)| matches!(svc.decoder, Decoder::Mcp(_)))
                    {
                        subject.www_authenticate =
                            Some(format!("Bearer resource_metadata=\"{url}\""));
                    }
                }
                // The record names the key even when it cannot be used here.
                match &r {
                    Refusal::ExpiredKey(id)
                    | Refusal::WrongEnvironment { key: id, .. }
                    | Refusal::BrokenKey(id) => subject.key = Some(id.clone()),
                    Refusal::UnknownKey { fingerprint } => {
                        subject.credential = Some(fingerprint.clone())
                    }
                    _ => {}
                }
                return Step::Decided(Verdict::refuse(subject, r, Vec::new()));
            }
        };
        subject.key = Some(caller.id.clone());
        subject.role = Some(caller.role_name.to_string());

        let target = match target {
            Ok(t) => t,
            Err(e) => return Step::Decided(Verdict::refuse(subject, e.into(), Vec::new())),
        };
        let Some((service_idx, service)) = self.route(&head, &target) else {
            let r = Refusal::NoService {
                method: head.method.clone(),
                path: subject.path.clone(),
            };
            return Step::Decided(Verdict::refuse(subject, r, Vec::new()));
        };
        subject.service = Some(service.name.clone());
        if matches!(service.decoder, Decoder::Mcp(_)) {
            subject.jsonrpc = Some(JsonRpc::default());
        }
        // Removals only for headers the request has: each is a host call in the filter.
        let forward = self.forward(
            service,
            Some(&caller),
            |h| head.has_header(h),
            &subject.prefixed_headers,
            &subject.alias_headers,
        );
        let body_needed = self.body_needed(
            service_idx,
            service,
            caller.role,
            &head,
            &target,
            body_follows,
        );
        let pending = Pending {
            forward,
            key_id: caller.id.clone(),
            role: caller.role,
            service: service_idx,
            max_body_bytes: service.max_body_bytes,
            head,
            target,
            subject,
            now_ms,
            budget: caller.budget,
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
    /// The body could not be read from the host: refused, never forwarded unread.
    pub fn unreadable(&self, pending: Pending) -> Verdict {
        let e = DecodeError::malformed("request body could not be read");
        let subject = pending.subject.clone();
        self.shadowed(Verdict::refuse(subject, e.into(), pending.into_ops()))
    }
    /// The body grew past the service's limit before it ended.
    pub fn too_large(&self, pending: Pending) -> Verdict {
        let r = Refusal::TooLarge {
            limit: pending.max_body_bytes,
        };
        let subject = pending.subject.clone();
        self.shadowed(Verdict::refuse(subject, r, pending.into_ops()))
    }
}

fn request_id(head: &RequestHead) -> String {
    request_id_of(
        head.headers
            .iter()
            .filter(|(n, _)| n == "x-request-id")
            .map(|(_, v)| v.as_slice()),
    )
}

/// The record's request id from the `x-request-id` values: one plain id, else `-`.
fn request_id_of<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> String {
    match (values.next(), values.next()) {
        (Some(v), None)
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

/// Headers whose values no decision reads: the request id (it names the request in its
/// record and is set afresh on a memo hit) and the tracing headers proxies and meshes add
/// to every request. Their names stay in the decision memo's key (presence, repeats and
/// order still count); their values do not, or no traced request would ever hit.
/// `engine/tests/decision_memo.rs` decides every suite case with varied, hostile values in
/// each of them and checks the verdicts equal fresh ones.
pub const UNREAD_HEADER_VALUES: [&str; 16] = [
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "uber-trace-id",
    "x-cloud-trace-context",
    "x-amzn-trace-id",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "sw8",
];

/// Whether `name` is one of [`UNREAD_HEADER_VALUES`] (in any case).
fn value_unread(name: &str) -> bool {
    UNREAD_HEADER_VALUES
        .iter()
        .any(|u| name.eq_ignore_ascii_case(u))
}

/// The decision memo's key for a header list: every header in order, each name and value
/// prefixed by its length (so no two lists share a key); a value of
/// [`UNREAD_HEADER_VALUES`] replaced by `~`, and a credential header's value by `#` and its
/// SHA-256 (the memo never holds an agent's secret, and compares no secret in variable
/// time; a length is digits, so the three forms cannot meet). `None` when another value is
/// not UTF-8 (such a request is decided afresh; the keys are text).
fn decision_key(headers: &HeaderList, credential_headers: &[String]) -> Option<String> {
    use std::fmt::Write;
    let mut key = String::with_capacity(512);
    for (n, v) in headers {
        if value_unread(n) {
            write!(key, "{}:{n}~", n.len()).ok()?;
        } else if credential_headers.iter().any(|c| n.eq_ignore_ascii_case(c)) {
            write!(key, "{}:{n}#{}", n.len(), hex(&sha256(v))).ok()?;
        } else {
            let v = std::str::from_utf8(v).ok()?;
            write!(key, "{}:{n}{}:{v}", n.len(), v.len()).ok()?;
        }
        if key.len() > crate::decode::memo::MAX_KEY_BYTES {
            return None;
        }
    }
    Some(key)
}
