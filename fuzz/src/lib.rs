//! Shared by the fuzz targets: the fuzz bundle (`fuzz/bundle.json`, every protocol and
//! dialect, records, friction, a guard) compiled once per thread, and the checks every
//! decision must pass whatever the input.

use scopegate_engine::{Decision, Engine, HeaderList, Secrets, Verdict};

pub const BUNDLE: &str = include_str!("../bundle.json");
/// The agent key of `fuzz/bundle.keys` (public; fuzzing only).
pub const AGENT_KEY: &str = "sgk_fuzz_agent_0123456789abcdefghijklmnopqrstuvwx";
/// 2026-11-24T18:00:00Z: inside every key's validity.
pub const NOW_MS: i64 = 1_795_543_200_000;

thread_local! {
    static ENGINE: Engine = match Engine::from_json(BUNDLE.as_bytes(), &Secrets::Unchecked) {
        Ok(e) => e,
        Err(e) => panic!("fuzz/bundle.json does not compile: {e:?}"),
    };
}

/// Runs `f` with the compiled fuzz bundle.
pub fn with_engine<T>(f: impl FnOnce(&Engine) -> T) -> T {
    ENGINE.with(f)
}

/// Pseudo-headers and the agent's credential, then `extra`.
pub fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> HeaderList {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gateway.test".to_vec()),
        (
            "authorization".to_string(),
            format!("Bearer {AGENT_KEY}").into_bytes(),
        ),
    ];
    h.extend(
        extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    h
}

/// Decides the request twice (the second time through the decoded-statement memo and
/// any other per-VM state) and checks what must hold for every verdict.
pub fn decide_checked(engine: &Engine, headers: HeaderList, body: &[u8]) -> Verdict {
    let v = engine.decide(headers.clone(), body, NOW_MS);
    let again = engine.decide(headers, body, NOW_MS);
    assert_eq!(v, again, "the same request decided twice differs");
    check(&v);
    v
}

/// Invariants of a verdict: a forward exactly when allowed (the fuzz bundle enforces), a
/// refusal status otherwise, a reason always, a JSON body on every refusal.
pub fn check(v: &Verdict) {
    assert!(!v.reason().is_empty(), "a verdict without a reason: {v:?}");
    match v.decision() {
        Decision::Allow => {
            assert!(v.forward().is_some(), "allowed without a forward: {v:?}");
            assert!(v.decision().status().is_none());
        }
        _ => {
            assert!(v.forward().is_none(), "refused but forwarded: {v:?}");
            assert!(
                v.decision().status().is_some(),
                "refusal without a status: {v:?}"
            );
        }
    }
    let body = v.response_body();
    if v.decision() != Decision::Allow {
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).is_ok(),
            "refusal body is not JSON: {body}"
        );
    }
}
