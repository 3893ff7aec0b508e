//! State the engine cannot keep per request: whether an approval token was already used,
//! and what a key has spent of its destructive budget. Decisions are pure; a verdict that
//! would forward is then *settled* against a [`Ledger`] — the tokens' nonces recorded as
//! used and the budget window spent, each with compare-and-set, any doubt refusing.
//!
//! The filter's ledger is the proxy-wasm shared data of one Envoy (every worker of the
//! VM); the CLI (`scopegate test`) and the tests use [`MemoryLedger`]. A fleet store
//! (several Envoys) implements the same two calls. Both key formats live here.

use crate::verdict::{BudgetUse, Refusal, Verdict};
use hashbrown::HashMap;
use std::cell::RefCell;

/// A key-value store with compare-and-set.
pub trait Ledger {
    /// The value under `key` (if any) and the token a `set` must present.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Stores `value` if the key's token is still `cas`; false when another writer got
    /// there first, or the store did not answer.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
}

/// What a forwarded request must record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// Approval nonces with their tokens' expiry (unix seconds).
    pub nonces: Vec<(String, i64)>,
    pub budget: Option<BudgetUse>,
}

impl Spend {
    /// What an allowed verdict must record; `None` when it needs no state.
    pub fn of(v: &Verdict) -> Option<Spend> {
        let a = v.allowed()?;
        let nonces = a
            .approval
            .as_ref()
            .map(|a| a.nonces.clone())
            .unwrap_or_default();
        (!nonces.is_empty() || a.budget.is_some()).then(|| Spend {
            nonces,
            budget: a.budget.clone(),
        })
    }
}

/// The key recording an approval token's nonce as used.
pub fn nonce_key(nonce: &str) -> String {
    format!("scopegate:nonce:{nonce}")
}

/// The key counting a budget's current window.
pub fn budget_key(b: &BudgetUse) -> String {
    format!("scopegate:budget:{}:{}:{}", b.key, b.window_ms, b.window())
}

/// The key of the ledger's lock. Proxy-wasm shared data cannot create a key only if it
/// is absent — a set of a missing key succeeds whatever its cas — so two workers that
/// both read a nonce as unused would both record it and both forward. Every nonce and
/// budget key is therefore read and written only while this key, which always exists
/// (`prepare`), is held: taken with compare-and-set, released at once.
pub const LOCK_KEY: &str = "scopegate:lock";
const FREE: &[u8] = b"free";
/// Attempts to take the lock before refusing (a holder keeps it for microseconds: one
/// synchronous callback).
const LOCK_ATTEMPTS: usize = 64;
/// A lock held longer than this was left by a VM that died while holding it.
const LOCK_STALE_MS: i64 = 2000;

/// Installs the lock: the root context does it when the filter is configured, before
/// any request (every worker; the first write wins, later ones write the same).
pub fn prepare(ledger: &dyn Ledger) {
    if ledger.get(LOCK_KEY).0.is_none() {
        ledger.set(LOCK_KEY, FREE, None);
    }
}

/// Settles a verdict that would forward: refused if one of its approval tokens was used
/// already, or its budget window has no room left; otherwise the nonces are recorded and
/// the spend counted — all checked first, then written, under the ledger's lock, so a
/// refused request burns neither and two workers never both use one token or both take
/// the last of a budget. A lock that cannot be taken refuses (never a double spend).
pub fn settle(ledger: &dyn Ledger, v: Verdict, now_ms: i64) -> Verdict {
    let Some(spend) = Spend::of(&v) else {
        return v;
    };
    if !lock(ledger, now_ms) {
        return v.refused(Refusal::BadProof(
            "a concurrent request used the same approval or budget; retry".into(),
        ));
    }
    let refusal = record(ledger, spend);
    ledger.set(LOCK_KEY, FREE, None);
    match refusal {
        Some(r) => v.refused(r),
        None => v,
    }
}

/// Takes the lock (installing it if `prepare` did not run, as in the CLI).
fn lock(ledger: &dyn Ledger, now_ms: i64) -> bool {
    let held = format!("held:{now_ms}");
    for _ in 0..LOCK_ATTEMPTS {
        match ledger.get(LOCK_KEY) {
            (None, _) => prepare(ledger),
            (Some(v), cas) => {
                let stale = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|v| v.strip_prefix("held:"))
                    .and_then(|t| t.parse::<i64>().ok())
                    .is_some_and(|t| now_ms.saturating_sub(t) > LOCK_STALE_MS);
                if (v == FREE || stale)
                    && cas.is_some()
                    && ledger.set(LOCK_KEY, held.as_bytes(), cas)
                {
                    return true;
                }
            }
        }
    }
    false
}

/// Under the lock: checks every nonce and the budget window, then writes them.
fn record(ledger: &dyn Ledger, Spend { nonces, budget }: Spend) -> Option<Refusal> {
    let mut writes = Vec::new();
    for (nonce, exp) in &nonces {
        let key = nonce_key(nonce);
        if ledger.get(&key).0.is_some_and(|used| !used.is_empty()) {
            return Some(Refusal::BadProof(format!(
                "approval token already used (nonce `{nonce}`): a token allows one request"
            )));
        }
        writes.push((key, exp.to_le_bytes().to_vec()));
    }
    if let Some(b) = budget {
        let counter = budget_key(&b);
        let count = match ledger.get(&counter).0 {
            Some(bytes) => bytes
                .get(..4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map_or(u32::MAX, u32::from_le_bytes),
            None => 0,
        };
        let after = count.saturating_add(b.cost);
        if after > b.limit {
            return Some(Refusal::OverBudget {
                key: b.key,
                limit: b.limit,
                per: b.per,
            });
        }
        writes.push((counter, after.to_le_bytes().to_vec()));
    }
    for (key, value) in writes {
        if !ledger.set(&key, &value, None) {
            return Some(Refusal::BadProof(
                "the approval or budget could not be recorded; retry".into(),
            ));
        }
    }
    None
}

/// A ledger in memory, for one process (the CLI, tests). Tokens count writes, as proxy-wasm
/// shared data's do.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// The last cas handed out (one counter for every key, as Envoy's).
    next: std::cell::Cell<u32>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }
}

/// As proxy-wasm shared data behaves (proxy-wasm-cpp-host `SharedData`): a missing key
/// reads as nothing (no cas); a set of a missing key succeeds whatever the cas; a set of
/// an existing key with a cas that is not 0 succeeds only if it is still the key's.
impl Ledger for MemoryLedger {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.entries.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let mut entries = self.entries.borrow_mut();
        let next = self.next.get().wrapping_add(1).max(1);
        self.next.set(next);
        match entries.get_mut(key) {
            Some((_, current)) if cas.is_some_and(|c| c != 0 && c != *current) => false,
            Some(entry) => {
                *entry = (value.to_vec(), next);
                true
            }
            None => {
                entries.insert(key.to_string(), (value.to_vec(), next));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_ledger_behaves_as_shared_data() {
        let l = MemoryLedger::new();
        assert_eq!(l.get("k"), (None, None));
        // A missing key is created whatever the cas: no "create only if absent".
        assert!(l.set("k", b"1", Some(77)));
        let (v, cas) = l.get("k");
        assert_eq!(v.as_deref(), Some(&b"1"[..]));
        assert!(l.set("k", b"2", cas));
        // The cas read before the last write is stale now.
        assert!(!l.set("k", b"3", cas));
        assert!(l.set("k", b"3", None));
        assert_eq!(l.get("k").0.as_deref(), Some(&b"3"[..]));
    }

    fn verdict(nonce: &str) -> Verdict {
        use crate::verdict::{Allowed, Approved, Forward, GrantSet, Outcome, Subject};
        Verdict {
            subject: Subject::default(),
            operations: Vec::new(),
            rule: None,
            grants: GrantSet::default(),
            digest: None,
            outcome: Outcome::Allow(Allowed {
                reason: "approved".into(),
                forward: Forward::default(),
                list_filter: None,
                approval: Some(Approved {
                    approvers: vec!["alice".into()],
                    nonces: vec![(nonce.into(), 1_900_000_000)],
                }),
                budget: None,
            }),
            shadow: None,
        }
    }

    #[test]
    fn a_token_is_recorded_under_the_lock_and_once() {
        let l = MemoryLedger::new();
        prepare(&l);
        assert!(settle(&l, verdict("n-1"), 10_000).allowed().is_some());
        assert!(
            settle(&l, verdict("n-1"), 10_000).refusal().is_some(),
            "a replay"
        );
        // Another worker holds the lock: refused, nothing recorded.
        assert!(l.set(LOCK_KEY, b"held:9000", None));
        assert!(settle(&l, verdict("n-2"), 10_000).refusal().is_some());
        assert_eq!(l.get(&nonce_key("n-2")).0, None);
        // Released: n-2 goes, once; the lock is free again after every settle.
        assert!(l.set(LOCK_KEY, FREE, None));
        assert!(settle(&l, verdict("n-2"), 10_000).allowed().is_some());
        assert_eq!(l.get(LOCK_KEY).0.as_deref(), Some(FREE));
        // A lock left by a VM that died holding it is taken over once stale.
        assert!(l.set(LOCK_KEY, b"held:1000", None));
        assert!(settle(&l, verdict("n-3"), 10_000).allowed().is_some());
    }
}
