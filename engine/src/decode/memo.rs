//! A bounded memo of decoded statements — the same SQL text, decoded once per VM — also
//! used for whole decisions of repeated header-only requests (`Engine::begin_verified`,
//! with values that go stale: [`Memo::get_valid_or`]).
//!
//! Agents repeat their statements, and parsing is most of the cost of a SQL decision
//! (sqlparser: tens of µs per KB natively, more inside Wasm). A decoded statement depends
//! only on its exact text, its parameters and the service's (fixed) decoder settings, so
//! the memo is keyed by those exact bytes: a hit is a full byte-for-byte match (the hash
//! only finds the slot), never a "similar" statement.
//!
//! Bounded two ways: texts over `MAX_KEY_BYTES` are never kept, and the memo holds at
//! most two generations of `GENERATION` entries — when the newer one fills, the older is
//! dropped (an approximation of least-recently-used with O(1) work and no bookkeeping
//! per hit). Worst case memory: 2 × 256 × 4 KiB of keys plus their operations.
//! Only successful decodes are kept; refusals are decoded again (and are rare).

use hashbrown::HashMap;
use std::cell::RefCell;

/// Longest key (statement + parameters) the memo keeps.
pub const MAX_KEY_BYTES: usize = 4096;
/// Entries per generation.
pub const GENERATION: usize = 256;

#[derive(Debug, Default)]
struct Generations<V> {
    young: HashMap<Box<str>, V>,
    old: HashMap<Box<str>, V>,
}

#[derive(Debug, Default)]
pub struct Memo<V> {
    inner: RefCell<Generations<V>>,
}

impl<V: Clone> Clone for Memo<V> {
    /// A copy starts empty: a memo is a cache, not state.
    fn clone(&self) -> Self {
        Memo::new()
    }
}

impl<V: Clone> Memo<V> {
    pub fn new() -> Self {
        Memo {
            inner: RefCell::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
            }),
        }
    }

    /// The memoised value for `key`, or `compute`'s (kept when it is `Ok` and the key is
    /// short enough). A busy memo (re-entered) is bypassed, never an error.
    pub fn get_or<E>(&self, key: &str, compute: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        self.get_valid_or(key, |_| true, compute)
    }

    /// As [`Memo::get_or`], for values that go stale: one `valid` refuses is computed
    /// again (and replaced).
    pub fn get_valid_or<E>(
        &self,
        key: &str,
        valid: impl Fn(&V) -> bool,
        compute: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if key.len() > MAX_KEY_BYTES {
            return compute();
        }
        if let Ok(mut g) = self.inner.try_borrow_mut() {
            if let Some(v) = g.young.get(key).filter(|v| valid(v)) {
                return Ok(v.clone());
            }
            if let Some((k, v)) = g.old.remove_entry(key) {
                if valid(&v) {
                    let out = v.clone();
                    g.insert(k, v);
                    return Ok(out);
                }
            }
        }
        let v = compute()?;
        if let Ok(mut g) = self.inner.try_borrow_mut() {
            g.insert(key.into(), v.clone());
        }
        Ok(v)
    }

    /// Entries held (both generations).
    pub fn len(&self) -> usize {
        self.inner
            .try_borrow()
            .map_or(0, |g| g.young.len() + g.old.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V> Generations<V> {
    fn insert(&mut self, key: Box<str>, v: V) {
        if self.young.len() >= GENERATION {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn computes_once_per_exact_key_and_never_keeps_errors() {
        let memo: Memo<u32> = Memo::new();
        let calls = Cell::new(0);
        let f = |v: u32| {
            calls.set(calls.get() + 1);
            Ok::<u32, ()>(v)
        };
        assert_eq!(memo.get_or("select 1", || f(1)), Ok(1));
        assert_eq!(memo.get_or("select 1", || f(99)), Ok(1));
        assert_eq!(
            memo.get_or("select 1 ", || f(2)),
            Ok(2),
            "one byte differs: a miss"
        );
        assert_eq!(calls.get(), 2);
        assert_eq!(memo.get_or("bad", || Err::<u32, ()>(())), Err(()));
        assert_eq!(memo.get_or("bad", || f(3)), Ok(3), "errors are not kept");
    }

    #[test]
    fn bounded_by_generations_and_key_length() {
        let memo: Memo<usize> = Memo::new();
        for i in 0..(GENERATION * 5) {
            let _ = memo.get_or(&format!("k{i}"), || Ok::<usize, ()>(i));
        }
        assert!(memo.len() <= 2 * GENERATION, "{}", memo.len());
        // The most recent generation is still there; the first keys are gone.
        let calls = Cell::new(0);
        let again = |i: usize| {
            calls.set(calls.get() + 1);
            Ok::<usize, ()>(i)
        };
        let last = GENERATION * 5 - 1;
        assert_eq!(memo.get_or(&format!("k{last}"), || again(0)), Ok(last));
        assert_eq!(calls.get(), 0);
        assert_eq!(memo.get_or("k0", || again(7)), Ok(7));
        assert_eq!(calls.get(), 1);
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        let _ = memo.get_or(&long, || Ok::<usize, ()>(1));
        assert_eq!(
            memo.get_or(&long, || again(2)),
            Ok(2),
            "long keys are not kept"
        );
    }

    #[test]
    fn an_old_entry_that_is_used_again_moves_to_the_young_generation() {
        let memo: Memo<usize> = Memo::new();
        let _ = memo.get_or("keep", || Ok::<usize, ()>(1));
        for i in 0..GENERATION {
            let _ = memo.get_or(&format!("k{i}"), || Ok::<usize, ()>(i));
        }
        // `keep` is in the old generation now; a hit promotes it.
        assert_eq!(memo.get_or("keep", || Ok::<usize, ()>(2)), Ok(1));
        for i in 0..GENERATION {
            let _ = memo.get_or(&format!("j{i}"), || Ok::<usize, ()>(i));
        }
        assert_eq!(memo.get_or("keep", || Ok::<usize, ()>(3)), Ok(1));
    }
}
