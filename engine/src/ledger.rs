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

/// The key recording an approval token's nonce as used.
pub fn nonce_key(nonce: &str) -> String {
    format!("scopegate:nonce:{nonce}")
}

/// The key counting a budget's current window.
pub fn budget_key(b: &BudgetUse) -> String {
    let window = b.now_ms.checked_div(b.window_ms).unwrap_or(0);
    format!("scopegate:budget:{}:{}:{window}", b.key, b.window_ms)
}

/// Settles a verdict that would forward: refused if one of its approval tokens was used
/// already, or its budget window has no room left; otherwise the nonces are recorded and
/// the spend counted — all checked first, then written, so a refused request burns
/// neither. A write that loses a compare-and-set race refuses (never a double spend).
pub fn settle(ledger: &dyn Ledger, v: Verdict) -> Verdict {
    let Some(allowed) = v.allowed() else {
        return v;
    };
    let nonces: Vec<(String, i64)> = allowed
        .approval
        .as_ref()
        .map(|a| a.nonces.clone())
        .unwrap_or_default();
    let budget = allowed.budget.clone();
    let mut claims = Vec::new();
    for (nonce, exp) in &nonces {
        let key = nonce_key(nonce);
        match ledger.get(&key) {
            (Some(used), _) if !used.is_empty() => {
                return v.refused(Refusal::BadProof(format!(
                    "approval token already used (nonce `{nonce}`): a token allows one request"
                )));
            }
            (_, cas) => claims.push((key, exp.to_le_bytes().to_vec(), cas)),
        }
    }
    if let Some(b) = budget {
        let counter = budget_key(&b);
        let (count, cas) = match ledger.get(&counter) {
            (Some(bytes), cas) => (
                bytes
                    .get(..4)
                    .and_then(|s| <[u8; 4]>::try_from(s).ok())
                    .map_or(u32::MAX, u32::from_le_bytes),
                cas,
            ),
            (None, cas) => (0, cas),
        };
        let after = count.saturating_add(b.cost);
        if after > b.limit {
            return v.refused(Refusal::OverBudget {
                key: b.key,
                limit: b.limit,
                per: b.per,
            });
        }
        claims.push((counter, after.to_le_bytes().to_vec(), cas));
    }
    for (key, value, cas) in claims {
        if !ledger.set(&key, &value, cas) {
            return v.refused(Refusal::BadProof(
                "a concurrent request used the same approval or budget; retry".into(),
            ));
        }
    }
    v
}

/// A ledger in memory, for one process (the CLI, tests). Tokens count writes, as proxy-wasm
/// shared data's do.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Ledger for MemoryLedger {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.entries.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, Some(0)),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let mut entries = self.entries.borrow_mut();
        let current = entries.get(key).map_or(0, |(_, c)| *c);
        if cas.is_some_and(|c| c != current) {
            return false;
        }
        entries.insert(key.to_string(), (value.to_vec(), current.wrapping_add(1)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_set_refuses_a_stale_token() {
        let l = MemoryLedger::new();
        let (v, cas) = l.get("k");
        assert_eq!(v, None);
        assert!(l.set("k", b"1", cas));
        // The token read before the first write is stale now.
        assert!(!l.set("k", b"2", cas));
        let (v, cas) = l.get("k");
        assert_eq!(v.as_deref(), Some(&b"1"[..]));
        assert!(l.set("k", b"2", cas));
        assert_eq!(l.get("k").0.as_deref(), Some(&b"2"[..]));
    }
}
