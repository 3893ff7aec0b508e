//! Decisions, the one mapping from refusal kinds to HTTP status, and the JSON an agent
//! reads when it is stopped.

use crate::operation::Operation;
use crate::request::DecodeError;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Unauthenticated,
    Deny,
    TooLarge,
    Challenge,
    OverBudget,
    /// The audit sink could not take the record of a request in `required` audit mode.
    Unavailable,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Deny => "deny",
            Decision::TooLarge => "too_large",
            Decision::Challenge => "challenge",
            Decision::OverBudget => "over_budget",
            Decision::Unavailable => "unavailable",
        }
    }

    /// The status a local reply carries; `None` for allow (the upstream's status).
    pub fn status(self) -> Option<u16> {
        match self {
            Decision::Allow => None,
            Decision::Unauthenticated => Some(401),
            Decision::Deny => Some(403),
            Decision::TooLarge => Some(413),
            Decision::Challenge => Some(428),
            Decision::OverBudget => Some(429),
            Decision::Unavailable => Some(503),
        }
    }
}

/// Why a request is refused. Each kind maps to exactly one decision (`decision()`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no credential presented")]
    NoCredential,
    #[error("ambiguous credential: {0}")]
    AmbiguousCredential(String),
    /// `fingerprint`: `sha256:` and the first 8 hex digits of the presented key's SHA-256,
    /// for the audit record (never the key).
    #[error("unknown key")]
    UnknownKey { fingerprint: String },
    #[error("key `{0}` has expired")]
    ExpiredKey(String),
    #[error("key `{key}` is not valid in environment `{environment}`")]
    WrongEnvironment { key: String, environment: String },
    #[error("key `{0}` names a role that does not exist")]
    BrokenKey(String),
    /// A verified token no `identities` entry admits (or one that expired since).
    #[error("{0}")]
    UnknownIdentity(String),
    /// A bearer token Envoy's `jwt_authn` did not verify.
    #[error("a bearer token the gateway did not verify (only tokens Envoy's jwt_authn verified are read)")]
    UnverifiedToken,
    #[error("no service matches {method} {path}")]
    NoService { method: String, path: String },
    #[error("undecodable: {0}")]
    Undecodable(#[from] DecodeError),
    #[error("{0}")]
    NotCovered(String),
    #[error("{0}")]
    Denied(String),
    #[error("request body exceeds the service's limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// An approval token or confirmation that does not fit the request.
    #[error("{0}")]
    BadProof(String),
    #[error("key `{key}` has used its budget of {limit} destructive operations per {per}")]
    OverBudget {
        key: String,
        limit: u32,
        per: String,
    },
    #[error("the audit sink did not take this request's record ({0}); audit is required, so it was not forwarded")]
    AuditUnavailable(String),
    /// The fleet's state store (etcd) did not settle a request that needs state.
    #[error("the shared state store did not record this request's approval or budget ({0}); it was not forwarded")]
    StateUnavailable(String),
}

impl Refusal {
    pub fn decision(&self) -> Decision {
        match self {
            Refusal::NoCredential
            | Refusal::AmbiguousCredential(_)
            | Refusal::UnknownKey { .. }
            | Refusal::ExpiredKey(_)
            | Refusal::WrongEnvironment { .. }
            | Refusal::BrokenKey(_)
            | Refusal::UnknownIdentity(_)
            | Refusal::UnverifiedToken => Decision::Unauthenticated,
            Refusal::NoService { .. }
            | Refusal::Undecodable(_)
            | Refusal::NotCovered(_)
            | Refusal::Denied(_)
            | Refusal::BadProof(_) => Decision::Deny,
            Refusal::TooLarge { .. } => Decision::TooLarge,
            Refusal::OverBudget { .. } => Decision::OverBudget,
            Refusal::AuditUnavailable(_) | Refusal::StateUnavailable(_) => Decision::Unavailable,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            Refusal::NoCredential
            | Refusal::UnknownKey { .. }
            | Refusal::AmbiguousCredential(_) => {
                "present exactly one scopegate key, in `Authorization: Bearer <key>` or `x-api-key`; keys are issued by your platform team".into()
            }
            Refusal::UnknownIdentity(_) | Refusal::UnverifiedToken => {
                "present a token from an identity provider this gateway trusts, for this gateway's audience, or a scopegate key — never both".into()
            }
            Refusal::ExpiredKey(_) | Refusal::WrongEnvironment { .. } | Refusal::BrokenKey(_) => {
                "this key cannot be used here; ask a human for a key issued for this environment".into()
            }
            Refusal::NoService { .. } => "no API behind this gateway serves that path".into(),
            Refusal::Undecodable(_) => {
                "scopegate denies what it cannot fully understand; send a plain, unambiguous request".into()
            }
            Refusal::NotCovered(_) => {
                "your key's role does not allow this; do not retry or look for another way — ask a human if the task needs it".into()
            }
            Refusal::Denied(_) => {
                "this operation is blocked by policy; a human must do it outside the agent if it is really needed".into()
            }
            Refusal::TooLarge { limit } => format!("send a request body of at most {limit} bytes"),
            Refusal::BadProof(_) => {
                "this proof does not fit this request: ask the human for one issued for exactly this request; never reuse, edit or forge a token".into()
            }
            Refusal::OverBudget { .. } => {
                "this key has done all the destructive work it may in this window; stop and tell a human".into()
            }
            Refusal::AuditUnavailable(_) => {
                "the gateway cannot record requests right now; retry later".into()
            }
            Refusal::StateUnavailable(_) => {
                "the gateway cannot reach its shared state right now; retry later (an approval token may have been spent if the store took it and its answer was lost: ask for a new one if it is refused as used)".into()
            }
        }
    }
}

/// Header changes for a request that is forwarded: removals first, then sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forward {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

/// Who and what a request was, for responses and audit records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub key: Option<String>,
    /// The fingerprint of a key no entry matches (see [`Refusal::UnknownKey`]).
    pub credential: Option<String>,
    pub role: Option<String>,
    pub service: Option<String>,
    /// The query as received (without `?`), `None` when empty.
    pub query: Option<String>,
    /// The `user-agent` header, when there is exactly one.
    pub user_agent: Option<String>,
    /// A 401's `WWW-Authenticate` other than scopegate's default (MCP services with
    /// `identities.resource_metadata`). Not audited.
    pub www_authenticate: Option<String>,
    /// Names of the request's headers in a credential family an upstream reads
    /// (`x-hasura-*`), removed when it is forwarded. Not audited.
    pub prefixed_headers: Vec<String>,
    /// Names of the request's headers that spell a credential or scopegate header with
    /// `_` for `-` (`x_api_key`), which PHP and WSGI upstreams read as the dashed one:
    /// always removed. Not audited.
    pub alias_headers: Vec<String>,
    /// MCP requests: how a refusal is answered in JSON-RPC. `None` otherwise.
    pub jsonrpc: Option<JsonRpc>,
}

/// An MCP request's JSON-RPC side, for refusals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonRpc {
    /// Ids of the request's messages (empty when none could be read).
    pub ids: Vec<Value>,
    /// The session wire (no `mcp-protocol-version`, or a handshake-era one): its clients
    /// read a JSON-RPC error only from a 2xx answer (the 1.x SDK tears the session down on
    /// any other status), so a `deny` or `challenge` of a request with an id is answered
    /// 200 with the error, as MCP servers answer their own errors on that wire.
    pub session_wire: bool,
}

/// An allowed MCP request whose answer lists tools, resources or prompts: the answer is
/// filtered to what this role may reach (`Engine::filter_answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFilter {
    pub role: usize,
    pub service: usize,
}

/// The outcome of one request: who and what it was, and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub subject: Subject,
    pub operations: Vec<Operation>,
    /// The bundle rule that decided (a grant, a guard, a budget), when one did.
    pub rule: Option<String>,
    /// The grants of the caller's role that covered the request's operations (for each
    /// operation, the one `evaluate` chose), whatever was then decided: a guard may have
    /// taken over, the ledger refused. Empty when the request was not evaluated or some
    /// operation was not covered. Not in audit records; `scopegate test` reports coverage
    /// from it.
    pub grants: GrantSet,
    /// `sha256:…` request digest: on a challenge, and on an answer to one (approved, or
    /// refused for its token).
    pub digest: Option<String>,
    pub outcome: Outcome,
    /// Shadow mode: the outcome is recorded, not enforced, and the request is forwarded
    /// with these header changes whatever it is. `None` when enforced.
    pub shadow: Option<Forward>,
}

/// A set of grant indices (into `Role::grants`), as bits: no allocation per request.
/// Grants past the first `GrantSet::CAPACITY` of a role are not recorded (`tracks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantSet(u128);

impl GrantSet {
    /// How many grants of a role a set can record.
    pub const CAPACITY: usize = 128;

    /// Records grant `i` (ignored past `CAPACITY`).
    pub fn insert(&mut self, i: usize) {
        if self.tracks(i) {
            self.0 |= 1 << i;
        }
    }

    pub fn contains(self, i: usize) -> bool {
        self.tracks(i) && self.0 & (1 << i) != 0
    }

    /// Whether grant `i` can be recorded at all.
    pub fn tracks(self, i: usize) -> bool {
        i < Self::CAPACITY
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The grants in both sets.
    pub fn union(self, other: GrantSet) -> GrantSet {
        GrantSet(self.0 | other.0)
    }
}

/// Allowed, challenged or refused — each with only what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow(Allowed),
    Challenge(Challenge),
    /// The refusal's kind maps to the decision, status, reason and hint (`Refusal`).
    Refuse(Refusal),
}

/// An allowed request: forwarded with these header changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub reason: String,
    pub forward: Forward,
    /// For MCP answers that list what may be called: filtered to the role.
    pub list_filter: Option<ListFilter>,
    /// Allowed by approval: who approved, and the tokens' nonces that must be recorded as
    /// used (single use) before forwarding.
    pub approval: Option<Approved>,
    /// The key has a budget and the request is destructive: counted before forwarding.
    pub budget: Option<BudgetUse>,
}

/// A request that owes a proof before it can go: the agent retries it unchanged with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub reason: String,
    pub proof: Proof,
    /// Seconds the challenge can be answered.
    pub ttl_secs: i64,
    /// Signed approvals: the challenge as the gateway signed it (`c1.…`), what an
    /// approver signs.
    pub signed: Option<String>,
    /// Signed approvals: the request as sent, shown to the approver (its hash is in
    /// `signed`).
    pub request: Option<Value>,
    /// Signed approvals with an inbox (bundle `approvals.inbox_url`): where a human
    /// approves it, and where the agent posts it.
    pub inbox: Option<InboxLinks>,
}

/// A challenge's places in the approval inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxLinks {
    /// The page a human approves on: `<inbox_url>/c/<digest hex>`.
    pub approval_url: String,
    /// The API the agent posts the challenge to (and polls): `<inbox_url>/v1/challenges`.
    pub api: String,
}

/// The proof a challenge asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// `x-scopegate-confirm` naming the operations.
    Confirm,
    /// Approval tokens from this many (1 or 2) different approvers.
    Approval { approvers: u8 },
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::Confirm => "confirm",
            Proof::Approval { .. } => "approval",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            Proof::Confirm => "this operation needs confirmation: only if a human asked for exactly this, retry it unchanged with `x-scopegate-confirm: <action> <resource>`",
            Proof::Approval { .. } => "this operation needs a human's approval out of band: give the `challenge` to a human who can run `scopegate approve`, then retry the request unchanged with the token in `x-scopegate-approval`; do not try another way",
        }
    }
}

/// The hint of an approval challenge when the bundle names an inbox.
const INBOX_HINT: &str = "this operation needs a human's approval out of band: POST this whole answer to `inbox` with your own key, poll `inbox`/<challenge hex> until `state` is `approved`, then retry the request unchanged with `retry.value` in `x-scopegate-approval`; `denied` or `expired` means no; do not try another way";

/// Approval tokens accepted for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub approvers: Vec<String>,
    /// (nonce, expiry in unix seconds).
    pub nonces: Vec<(String, i64)>,
}

/// What a request spends of its key's destructive budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUse {
    pub key: String,
    pub limit: u32,
    pub window_ms: i64,
    pub per: String,
    /// Destructive operations in the request.
    pub cost: u32,
    pub now_ms: i64,
}

impl BudgetUse {
    /// The index of the window `now_ms` falls in (windows are counted from the epoch).
    pub fn window(&self) -> i64 {
        self.now_ms.checked_div(self.window_ms).unwrap_or(0)
    }
}

/// Seconds a challenge stays answerable (approval tokens carry their own expiry).
pub const CHALLENGE_TTL_SECS: i64 = 300;

impl Verdict {
    /// A request refused before or without operations.
    pub fn refuse(subject: Subject, r: Refusal, operations: Vec<Operation>) -> Verdict {
        Verdict {
            subject,
            operations,
            rule: None,
            grants: GrantSet::default(),
            digest: None,
            outcome: Outcome::Refuse(r),
            shadow: None,
        }
    }

    /// The same request refused after the engine allowed it (a replayed approval token,
    /// a spent budget, an audit sink that did not answer): what the filter finds with
    /// state the engine does not have. Enforced even in shadow mode.
    pub fn refused(self, r: Refusal) -> Verdict {
        Verdict {
            rule: None,
            outcome: Outcome::Refuse(r),
            shadow: None,
            ..self
        }
    }

    pub fn decision(&self) -> Decision {
        match &self.outcome {
            Outcome::Allow(_) => Decision::Allow,
            Outcome::Challenge(_) => Decision::Challenge,
            Outcome::Refuse(r) => r.decision(),
        }
    }

    /// Why, in a sentence (audit records, the agent's answer).
    pub fn reason(&self) -> std::borrow::Cow<'_, str> {
        match &self.outcome {
            Outcome::Allow(a) => a.reason.as_str().into(),
            Outcome::Challenge(c) => c.reason.as_str().into(),
            Outcome::Refuse(r) => r.to_string().into(),
        }
    }

    /// What the agent should do next (refusals and challenges).
    pub fn hint(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Allow(_) => None,
            Outcome::Challenge(c) if c.inbox.is_some() => Some(INBOX_HINT.to_string()),
            Outcome::Challenge(c) => Some(c.proof.hint().to_string()),
            Outcome::Refuse(r) => Some(r.hint()),
        }
    }

    pub fn allowed(&self) -> Option<&Allowed> {
        match &self.outcome {
            Outcome::Allow(a) => Some(a),
            _ => None,
        }
    }

    /// The approval an allowed request was given.
    pub fn approval(&self) -> Option<&Approved> {
        self.allowed().and_then(|a| a.approval.as_ref())
    }

    /// What an allowed request spends of its key's budget.
    pub fn budget(&self) -> Option<&BudgetUse> {
        self.allowed().and_then(|a| a.budget.as_ref())
    }

    /// The proof a challenge asks for.
    pub fn proof(&self) -> Option<Proof> {
        match &self.outcome {
            Outcome::Challenge(c) => Some(c.proof),
            _ => None,
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.outcome {
            Outcome::Refuse(r) => Some(r),
            _ => None,
        }
    }

    /// The header changes a forwarded request gets; `None` when it is not forwarded.
    pub fn forward(&self) -> Option<&Forward> {
        match (&self.outcome, &self.shadow) {
            (Outcome::Allow(a), _) => Some(&a.forward),
            (_, shadow) => shadow.as_ref(),
        }
    }

    /// Whether the filter forwards the request: allowed, or shadowed.
    pub fn forwards(&self) -> bool {
        self.forward().is_some()
    }

    /// False in shadow mode for anything but an allow.
    pub fn enforced(&self) -> bool {
        self.shadow.is_none()
    }

    /// The status of a local reply; `None` for allow. See `JsonRpc::session_wire`.
    pub fn status(&self) -> Option<u16> {
        match (&self.subject.jsonrpc, self.decision()) {
            (Some(rpc), Decision::Deny | Decision::Challenge)
                if rpc.session_wire && !rpc.ids.is_empty() =>
            {
                Some(200)
            }
            _ => self.decision().status(),
        }
    }

    /// The JSON body of a local reply (every decision but allow). For MCP, a JSON-RPC
    /// error per request of the body (one with `id: null` when none could be read), the
    /// decision in its `data`, so MCP clients surface it as the call's error.
    pub fn response_body(&self) -> String {
        let body = self.decision_json();
        let decision = self.decision();
        let reason = self.reason();
        match self.subject.jsonrpc.as_ref().map(|r| &r.ids) {
            None => body.to_string(),
            Some(ids) => {
                let error = |id: &Value| {
                    json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": self.jsonrpc_code(),
                        "message": format!("scopegate: {}: {reason}", decision.as_str()),
                        "data": body,
                    }})
                };
                match ids.as_slice() {
                    [] => error(&Value::Null).to_string(),
                    [one] => error(one).to_string(),
                    many => Value::Array(many.iter().map(error).collect()).to_string(),
                }
            }
        }
    }

    /// JSON-RPC error codes of refusals, in the server-defined range and clear of the
    /// codes MCP defines (-32000, -32001, -32020..-32022, -32042).
    pub fn jsonrpc_code(&self) -> i64 {
        match self.decision() {
            Decision::Unauthenticated => -32005,
            Decision::TooLarge => -32013,
            Decision::Challenge => -32028,
            Decision::OverBudget => -32029,
            Decision::Unavailable => -32030,
            Decision::Allow | Decision::Deny => -32003,
        }
    }

    fn decision_json(&self) -> Value {
        let ops: Vec<Value> = self.operations.iter().map(op_json).collect();
        let mut body = json!({
            "decision": self.decision().as_str(),
            "reason": self.reason(),
            "request_id": self.subject.request_id,
            "operations": ops,
            "rule": self.rule,
            "hint": self.hint(),
        });
        if let (Outcome::Refuse(Refusal::Undecodable(e)), Some(obj)) =
            (&self.outcome, body.as_object_mut())
        {
            obj.insert("undecodable".into(), json!(e.kind().as_str()));
        }
        if let (Outcome::Challenge(c), Some(obj)) = (&self.outcome, body.as_object_mut()) {
            obj.insert("key".into(), json!(self.subject.key));
            obj.insert("challenge".into(), json!(self.digest));
            obj.insert("friction".into(), json!(c.proof.as_str()));
            obj.insert("expires_in".into(), json!(c.ttl_secs));
            if let Some(signed) = &c.signed {
                obj.insert("signed".into(), json!(signed));
            }
            if let Some(request) = &c.request {
                obj.insert("request".into(), request.clone());
            }
            if let Some(inbox) = &c.inbox {
                obj.insert("approval_url".into(), json!(inbox.approval_url));
                obj.insert("inbox".into(), json!(inbox.api));
            }
            if let Proof::Approval { approvers } = c.proof {
                obj.insert("approvals".into(), json!(approvers));
            }
        }
        body
    }

    /// Headers of a local reply.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("content-type", "application/json".to_string()),
            ("cache-control", "no-store".to_string()),
            ("x-scopegate-decision", self.decision().as_str().to_string()),
        ];
        if self.decision() == Decision::Unauthenticated {
            let value = self
                .subject
                .www_authenticate
                .clone()
                .unwrap_or_else(|| "Bearer realm=\"scopegate\"".to_string());
            h.push(("www-authenticate", value));
        }
        h
    }
}

/// An operation as agents and audit records see it.
pub fn op_json(op: &Operation) -> Value {
    let mut v = json!({
        "service": op.service,
        "action": op.action,
        "resource": op.resource,
        "scope": op.scope,
    });
    if let Some(obj) = v.as_object_mut() {
        if !op.records.is_empty() {
            obj.insert("records".into(), json!(op.records));
        }
        if !op.sets.is_empty() {
            obj.insert("sets".into(), json!(op.sets));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_sets() {
        let mut s = GrantSet::default();
        assert!(s.is_empty());
        for i in [0, 5, 127, 128, 500] {
            s.insert(i);
        }
        let got: Vec<usize> = (0..600).filter(|&i| s.contains(i)).collect();
        assert_eq!(got, [0, 5, 127]);
        assert!(s.tracks(127) && !s.tracks(128));
        let mut t = GrantSet::default();
        t.insert(1);
        assert!(s.union(t).contains(1) && s.union(t).contains(5));
    }

    #[test]
    fn statuses_are_mapped_once() {
        let cases = [
            (Refusal::NoCredential, 401),
            (Refusal::ExpiredKey("k".into()), 401),
            (
                Refusal::NoService {
                    method: "GET".into(),
                    path: "/".into(),
                },
                403,
            ),
            (Refusal::Undecodable(DecodeError::malformed("x")), 403),
            (Refusal::NotCovered("x".into()), 403),
            (Refusal::TooLarge { limit: 1 }, 413),
        ];
        for (r, status) in cases {
            assert_eq!(r.decision().status(), Some(status), "{r}");
        }
        assert_eq!(Decision::Challenge.status(), Some(428));
        assert_eq!(Decision::Allow.status(), None);
    }
}
