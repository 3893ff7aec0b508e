//! Fleet state on etcd: the approval nonces a request consumes and the budget window it
//! spends, settled for every Envoy of a fleet at once (`"state": {"store": "etcd"}`).
//!
//! Sans I/O: [`Settlement`] says which HTTP call to make to etcd's JSON gateway (v3, over
//! HTTP/1.1) and reads each answer; the filter dispatches the calls (`dispatch_http_call`)
//! and a contract test sends the same bodies to a real etcd. One request that needs state
//! is one transaction: every nonce must be absent (`create_revision == 0`) and the budget
//! window unchanged since it was read (`mod_revision`, or absent), and then all of them are
//! written — so a refused request burns nothing. A failed transaction reads the keys it
//! compared (same revision), which tells a replayed token from a budget another replica
//! spent meanwhile; the budget is then retried, a bounded number of times.
//!
//! Keys live under a lease that outlives what they record (a token's expiry, the budget's
//! window) by [`LEASE_SLACK_SECS`]: the lease id is derived from the prefix and its expiry
//! minute, so replicas agree on it without talking; the first put under a lease that does
//! not exist yet grants it (an id granted already is fine).
//!
//! Fail closed: any answer that is not a well-formed success or a known refusal — no
//! answer, a timeout (504), no quorum (503, 500), a body that is not what etcd sends —
//! refuses the request as `unavailable` with the cause. Nothing falls back to local state.
//! The gateway's traps (FLEET.md): base64 keys and values, int64 fields as strings, fields
//! at their zero value omitted (a failed transaction has no `succeeded`), unknown fields
//! ignored (so every body here is checked against a real etcd by the contract test).

use crate::ledger::{budget_key, nonce_key, Spend};
use crate::verdict::{BudgetUse, Refusal};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Transactions one request may try (a budget contended by other replicas is re-read and
/// tried again); beyond, it is refused as unavailable rather than spent twice.
pub const MAX_ATTEMPTS: u32 = 8;
/// Calls one request may repeat after the transport failed (no answer, or Envoy's own
/// 502/503/504: a member that died, a connection reset): the next call usually reaches
/// another member. A repeated call that etcd had in fact committed can only refuse more
/// (its nonce then reads as used, its window as spent), never allow more.
pub const MAX_TRANSPORT_RETRIES: u32 = 2;
/// How long a lease outlives what its keys record: the clock skew tolerated between the
/// replicas and etcd.
pub const LEASE_SLACK_SECS: i64 = 300;
/// Lease expiries are rounded up to this many seconds, so one lease serves many requests.
pub const LEASE_BUCKET_SECS: i64 = 60;

/// The compiled `state` section, when it names etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStore {
    /// Envoy cluster of the etcd members (their client port, HTTP/1.1).
    pub cluster: String,
    /// `:authority` of the calls (default: the cluster name).
    pub authority: String,
    /// Key prefix (`scopegate/` by default); one per fleet that shares approvals and budgets.
    pub prefix: String,
    /// Per-call timeout in milliseconds.
    pub timeout_ms: u64,
}

/// One call to etcd's JSON gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub path: &'static str,
    pub body: String,
}

impl Call {
    /// The headers of the call (`dispatch_http_call` needs the three pseudo-headers).
    pub fn headers<'a>(&'a self, store: &'a EtcdStore) -> [(&'a str, &'a str); 4] {
        [
            (":method", "POST"),
            (":path", self.path),
            (":authority", store.authority.as_str()),
            ("content-type", "application/json"),
        ]
    }
}

/// What a settlement wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Make this call and hand its answer to [`Settlement::answer`].
    Call(Call),
    /// Recorded: the request may go.
    Settled,
    /// Refused: a used token, a spent budget, or a store that did not answer well.
    Refused(Refusal),
}

/// The budget window as last read: its count and `mod_revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    count: u32,
    mod_revision: i64,
}

/// One request's settlement against etcd.
#[derive(Debug, Clone)]
pub struct Settlement {
    store: EtcdStore,
    spend: Spend,
    now_ms: i64,
    /// The lease every key of this request is put under.
    lease: Lease,
    /// The budget window as last read (`None`: believed absent).
    budget: Option<Seen>,
    attempts: u32,
    transport_retries: u32,
    granting: bool,
    granted: bool,
    /// The last call made, repeated after a transport failure.
    last: Option<Call>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    id: i64,
    /// Unix seconds the lease must last until.
    until: i64,
}

impl Settlement {
    /// A settlement and its first call.
    pub fn start(store: &EtcdStore, spend: Spend, now_ms: i64) -> (Settlement, Call) {
        let records_until = spend
            .nonces
            .iter()
            .map(|(_, exp)| *exp)
            .chain(spend.budget.as_ref().map(window_end_secs))
            .max()
            .unwrap_or(now_ms / 1000);
        let until = round_up(records_until, LEASE_BUCKET_SECS).saturating_add(LEASE_SLACK_SECS);
        let mut s = Settlement {
            lease: Lease {
                id: lease_id(&store.prefix, until),
                until,
            },
            store: store.clone(),
            spend,
            now_ms,
            budget: None,
            attempts: 1,
            transport_retries: 0,
            granting: false,
            granted: false,
            last: None,
        };
        let call = s.txn();
        s.last = Some(call.clone());
        (s, call)
    }

    /// The next step, given the answer to the last call: its HTTP status (`None`: no
    /// answer, the call failed or timed out) and body.
    pub fn answer(&mut self, status: Option<u16>, body: &[u8]) -> Next {
        let next = self.step(status, body);
        if let Next::Call(c) = &next {
            self.last = Some(c.clone());
        }
        next
    }

    fn step(&mut self, status: Option<u16>, body: &[u8]) -> Next {
        let transport_failed = match status {
            None => true,
            Some(502..=504) => etcd_code(body).is_none(),
            Some(_) => false,
        };
        if transport_failed && self.transport_retries < MAX_TRANSPORT_RETRIES {
            if let Some(call) = self.last.clone() {
                self.transport_retries += 1;
                return Next::Call(call);
            }
        }
        if self.granting {
            self.granting = false;
            return match (status, etcd_code(body)) {
                // Granted, or granted already by another request or replica.
                (Some(200), _) | (Some(412), Some(9)) => {
                    self.granted = true;
                    Next::Call(self.txn())
                }
                _ => unavailable("granting a lease", status, body),
            };
        }
        match (status, etcd_code(body)) {
            (Some(200), _) => self.txn_answer(body),
            // The lease does not exist yet: grant it once, then try the same transaction.
            (Some(404), Some(5)) if !self.granted => {
                self.granting = true;
                Next::Call(self.grant())
            }
            _ => unavailable("the transaction", status, body),
        }
    }

    fn txn_answer(&mut self, body: &[u8]) -> Next {
        let Ok(answer) = serde_json::from_slice::<Value>(body) else {
            return unavailable("the transaction", Some(200), body);
        };
        if answer.get("succeeded") == Some(&Value::Bool(true)) {
            return Next::Settled;
        }
        // Failed: the failure branch read every compared key, in the same revision.
        let Some(read) = self.read_failure(&answer) else {
            return unavailable("the transaction", Some(200), body);
        };
        if let Some(nonce) = read.used_nonce {
            return Next::Refused(Refusal::BadProof(format!(
                "approval token already used (nonce `{nonce}`): a token allows one request"
            )));
        }
        let Some(b) = &self.spend.budget else {
            // Nothing explains the failure: never guess.
            return unavailable("the transaction", Some(200), body);
        };
        let now = read.budget;
        if now == self.budget {
            return unavailable("the transaction", Some(200), body);
        }
        if now.map_or(0, |s| s.count).saturating_add(b.cost) > b.limit {
            return Next::Refused(Refusal::OverBudget {
                key: b.key.clone(),
                limit: b.limit,
                per: b.per.clone(),
            });
        }
        if self.attempts >= MAX_ATTEMPTS {
            return Next::Refused(Refusal::StateUnavailable(format!(
                "the budget window stayed contended for {MAX_ATTEMPTS} attempts"
            )));
        }
        self.budget = now;
        self.attempts += 1;
        Next::Call(self.txn())
    }

    /// The transaction: compare every key, put every key, read them back on failure.
    fn txn(&self) -> Call {
        let lease = self.lease.id.to_string();
        let mut compare = Vec::new();
        let mut success = Vec::new();
        let mut failure = Vec::new();
        for (nonce, exp) in &self.spend.nonces {
            let key = self.key(&nonce_key(nonce));
            compare.push(
                json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}),
            );
            success.push(json!({"request_put": {"key": key, "value": B64.encode(exp.to_string()), "lease": lease}}));
            failure.push(json!({"request_range": {"key": key}}));
        }
        if let Some(b) = &self.spend.budget {
            let key = self.key(&budget_key(b));
            let after = match self.budget {
                None => {
                    compare.push(json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}));
                    b.cost
                }
                Some(seen) => {
                    compare.push(json!({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": seen.mod_revision.to_string()}));
                    seen.count.saturating_add(b.cost)
                }
            };
            success.push(json!({"request_put": {"key": key, "value": B64.encode(after.to_string()), "lease": lease}}));
            failure.push(json!({"request_range": {"key": key}}));
        }
        Call {
            path: "/v3/kv/txn",
            body: json!({"compare": compare, "success": success, "failure": failure}).to_string(),
        }
    }

    fn grant(&self) -> Call {
        let ttl = self
            .lease
            .until
            .saturating_sub(self.now_ms / 1000)
            .max(LEASE_BUCKET_SECS);
        Call {
            path: "/v3/lease/grant",
            body: json!({"TTL": ttl.to_string(), "ID": self.lease.id.to_string()}).to_string(),
        }
    }

    fn key(&self, name: &str) -> String {
        B64.encode(format!("{}{name}", self.store.prefix))
    }

    /// A failed transaction's reads, in the order of the failure branch: `None` when the
    /// answer is not that.
    fn read_failure(&self, answer: &Value) -> Option<Read> {
        let responses = answer.get("responses")?.as_array()?;
        let expected = self.spend.nonces.len() + usize::from(self.spend.budget.is_some());
        if responses.len() != expected {
            return None;
        }
        let mut read = Read::default();
        let mut ranges = responses.iter().map(|r| r.get("response_range"));
        for (nonce, _) in &self.spend.nonces {
            let kvs = kvs(ranges.next()??)?;
            if !kvs.is_empty() && read.used_nonce.is_none() {
                read.used_nonce = Some(nonce.clone());
            }
        }
        if self.spend.budget.is_some() {
            let kvs = kvs(ranges.next()??)?;
            read.budget = match kvs.as_slice() {
                [] => None,
                [kv] => Some(Seen {
                    count: decode_b64(kv.get("value"))?.parse().ok()?,
                    mod_revision: kv.get("mod_revision")?.as_str()?.parse().ok()?,
                }),
                _ => return None,
            };
        }
        Some(read)
    }
}

#[derive(Debug, Default)]
struct Read {
    used_nonce: Option<String>,
    budget: Option<Seen>,
}

/// A range response's key-values (absent when empty: etcd omits zero values).
fn kvs(range: &Value) -> Option<Vec<&Value>> {
    if !range.is_object() {
        return None;
    }
    match range.get("kvs") {
        None => Some(Vec::new()),
        Some(Value::Array(a)) => Some(a.iter().collect()),
        Some(_) => None,
    }
}

fn decode_b64(v: Option<&Value>) -> Option<String> {
    let bytes = B64.decode(v?.as_str()?).ok()?;
    String::from_utf8(bytes).ok()
}

/// etcd's gRPC status code in an error body (`{"error": …, "code": 5, …}`).
fn etcd_code(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("code")?
        .as_i64()
}

fn unavailable(what: &str, status: Option<u16>, body: &[u8]) -> Next {
    let cause = match status {
        None => format!("etcd did not answer {what}"),
        Some(s) => {
            let text = String::from_utf8_lossy(body.get(..160).unwrap_or(body));
            let text: String = text.chars().filter(|c| !c.is_control()).collect();
            format!("etcd answered {what} with {s}: {text}")
        }
    };
    Next::Refused(Refusal::StateUnavailable(cause))
}

/// When a budget window ends, in unix seconds.
fn window_end_secs(b: &BudgetUse) -> i64 {
    b.window()
        .saturating_add(1)
        .saturating_mul(b.window_ms)
        .checked_div(1000)
        .unwrap_or(0)
}

fn round_up(t: i64, step: i64) -> i64 {
    t.checked_div(step).map_or(t, |q| {
        q.saturating_add(i64::from(t % step != 0))
            .saturating_mul(step)
    })
}

/// A positive, non-zero lease id every replica derives alike for one prefix and expiry.
fn lease_id(prefix: &str, until: i64) -> i64 {
    let h = Sha256::digest(format!("scopegate-lease\0{prefix}\0{until}"));
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(h.iter()) {
        *d = *s;
    }
    // Below 2^62: clear of the sign bit, and of anything a float would round.
    i64::from_be_bytes(b) & 0x3fff_ffff_ffff_ffff | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> EtcdStore {
        EtcdStore {
            cluster: "etcd".into(),
            authority: "etcd".into(),
            prefix: "sg/".into(),
            timeout_ms: 500,
        }
    }

    fn budget(limit: u32) -> BudgetUse {
        BudgetUse {
            key: "agent".into(),
            limit,
            window_ms: 3_600_000,
            per: "1h".into(),
            cost: 1,
            now_ms: 1_800_000_000_000,
        }
    }

    fn range(kv: Option<(&str, i64)>) -> Value {
        match kv {
            None => json!({"response_range": {"header": {}}}),
            Some((v, rev)) => json!({"response_range": {"kvs": [{
                "key": "x", "value": B64.encode(v), "mod_revision": rev.to_string(),
                "create_revision": "3", "version": "1"}], "count": "1"}}),
        }
    }

    #[test]
    fn a_used_nonce_refuses_and_a_spent_budget_is_retried_then_refused() {
        let spend = Spend {
            nonces: vec![("n1".into(), 1_800_000_300)],
            budget: Some(budget(2)),
        };
        let (mut s, first) = Settlement::start(&store(), spend, 1_800_000_000_000);
        let body: Value = serde_json::from_str(&first.body).unwrap();
        assert_eq!(body["compare"].as_array().unwrap().len(), 2);
        assert_eq!(body["compare"][0]["target"], "CREATE");
        assert_eq!(body["compare"][0]["create_revision"], "0");
        assert_eq!(
            body["success"][0]["request_put"]["key"],
            B64.encode("sg/scopegate:nonce:n1")
        );
        // Another replica spent 1 of 2 meanwhile: retried on its mod_revision.
        let failed = json!({"responses": [range(None), range(Some(("1", 41)))]}).to_string();
        let Next::Call(retry) = s.answer(Some(200), failed.as_bytes()) else {
            panic!("a retry")
        };
        let body: Value = serde_json::from_str(&retry.body).unwrap();
        assert_eq!(body["compare"][1]["target"], "MOD");
        assert_eq!(body["compare"][1]["mod_revision"], "41");
        assert_eq!(body["success"][1]["request_put"]["value"], B64.encode("2"));
        // Now full: over budget.
        let full = json!({"responses": [range(None), range(Some(("2", 42)))]}).to_string();
        assert!(matches!(
            s.answer(Some(200), full.as_bytes()),
            Next::Refused(Refusal::OverBudget { .. })
        ));
        // A used nonce is a replay, whatever the budget says.
        let (mut s, _) = Settlement::start(
            &store(),
            Spend {
                nonces: vec![("n1".into(), 1_800_000_300)],
                budget: None,
            },
            1_800_000_000_000,
        );
        let used = json!({"responses": [range(Some(("1800000300", 7)))]}).to_string();
        assert!(matches!(
            s.answer(Some(200), used.as_bytes()),
            Next::Refused(Refusal::BadProof(_))
        ));
    }

    #[test]
    fn anything_but_a_well_formed_answer_is_unavailable() {
        let spend = Spend {
            nonces: vec![("n1".into(), 1_800_000_300)],
            budget: None,
        };
        let cases: [(Option<u16>, &str); 7] = [
            (None, ""),
            (Some(504), "upstream request timeout"),
            (
                Some(503),
                r#"{"error":"etcdserver: request timed out","code":14}"#,
            ),
            (Some(500), r#"{"error":"etcdserver: no leader","code":2}"#),
            (Some(200), "not json"),
            // A failed transaction that read nothing: not what the body asked for.
            (Some(200), r#"{"header":{}}"#),
            // A failure no compared key explains.
            (Some(200), r#"{"responses":[{"response_range":{}}]}"#),
        ];
        for (status, body) in cases {
            let (mut s, first) = Settlement::start(&store(), spend.clone(), 1_800_000_000_000);
            // The transport failing (no answer, Envoy's own 504) repeats the call, twice.
            let mut next = s.answer(status, body.as_bytes());
            let mut repeats = 0;
            while next == Next::Call(first.clone()) {
                repeats += 1;
                next = s.answer(status, body.as_bytes());
            }
            let transport = status.is_none() || status == Some(504);
            assert_eq!(
                repeats,
                if transport { MAX_TRANSPORT_RETRIES } else { 0 },
                "{status:?} {body}"
            );
            assert!(
                matches!(next, Next::Refused(Refusal::StateUnavailable(_))),
                "{status:?} {body}"
            );
        }
    }

    #[test]
    fn a_missing_lease_is_granted_once_then_the_same_transaction_tried() {
        let spend = Spend {
            nonces: vec![("n1".into(), 1_800_000_030)],
            budget: None,
        };
        let (mut s, first) = Settlement::start(&store(), spend, 1_800_000_000_000);
        let missing = br#"{"error":"etcdserver: requested lease not found","code":5}"#;
        let Next::Call(grant) = s.answer(Some(404), missing) else {
            panic!("a grant")
        };
        assert_eq!(grant.path, "/v3/lease/grant");
        let g: Value = serde_json::from_str(&grant.body).unwrap();
        // Until the token's expiry rounded up to the minute, plus the slack.
        let until = 1_800_000_060 + LEASE_SLACK_SECS;
        assert_eq!(g["TTL"], (until - 1_800_000_000).to_string());
        assert_eq!(g["ID"], lease_id("sg/", until).to_string());
        let exists = br#"{"error":"etcdserver: lease already exists","code":9}"#;
        assert_eq!(s.answer(Some(412), exists), Next::Call(first));
        // A second missing lease is not granted again.
        assert!(matches!(
            s.answer(Some(404), missing),
            Next::Refused(Refusal::StateUnavailable(_))
        ));
        assert_eq!(
            s.answer(Some(200), br#"{"header":{},"succeeded":true}"#),
            Next::Settled
        );
    }

    #[test]
    fn contention_is_bounded() {
        let spend = Spend {
            nonces: vec![],
            budget: Some(budget(1000)),
        };
        let (mut s, _) = Settlement::start(&store(), spend, 1_800_000_000_000);
        let mut last = None;
        for rev in 1..=MAX_ATTEMPTS + 1 {
            let failed = json!({"responses": [range(Some(("1", i64::from(rev))))]}).to_string();
            last = Some(s.answer(Some(200), failed.as_bytes()));
            if !matches!(last, Some(Next::Call(_))) {
                break;
            }
        }
        assert!(matches!(
            last,
            Some(Next::Refused(Refusal::StateUnavailable(_)))
        ));
    }
}
