//! The decision memo never changes a decision: every case of the shipped policy suites
//! (policies/*.tests.jsonl) and the adversarial suite (tests/adversarial/cases.jsonl) is
//! decided three times (three request ids) by one engine — the memo's later hits — and each
//! time by an engine that has seen nothing: the verdicts must be equal, request id included. Then
//! what the memo must never keep: a key that expires, a budget, and the request id itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::pipeline::UNREAD_HEADER_VALUES;
use scopegate_engine::request::HeaderList;
use scopegate_engine::{Decision, Engine, Secrets};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

mod common;
use common::{root, NOW};

fn keys(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(id, secret)| (id.trim().to_string(), secret.trim().to_string()))
        .collect()
}

/// A case's request, as the filter hands it to the engine; `None` for a case this test
/// does not build (an approval token minted by the CLI, a binary body).
fn request(
    case: &Value,
    keys: &HashMap<String, String>,
    id: &str,
) -> Option<(HeaderList, Vec<u8>)> {
    if case.get("token").is_some()
        || case.get("approved_by").is_some()
        || case.get("body_base64").is_some()
    {
        return None;
    }
    let mut headers = vec![
        (
            ":method".to_string(),
            case["method"].as_str()?.as_bytes().to_vec(),
        ),
        (
            ":path".to_string(),
            case["path"].as_str()?.as_bytes().to_vec(),
        ),
        (":authority".to_string(), b"gateway.test".to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
        ("x-request-id".to_string(), id.as_bytes().to_vec()),
    ];
    if let Some(who) = case.get("as").and_then(Value::as_str) {
        headers.push((
            "authorization".into(),
            format!("Bearer {}", keys.get(who)?).into_bytes(),
        ));
    }
    match case.get("headers") {
        Some(Value::Object(m)) => {
            for (n, v) in m {
                headers.push((n.to_ascii_lowercase(), v.as_str()?.as_bytes().to_vec()));
            }
        }
        Some(Value::Array(list)) => {
            for p in list {
                headers.push((
                    p[0].as_str()?.to_ascii_lowercase(),
                    p[1].as_str()?.as_bytes().to_vec(),
                ));
            }
        }
        _ => {}
    }
    let body = match case.get("body") {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v) if !v.is_null() => v.to_string().into_bytes(),
        _ => Vec::new(),
    };
    Some((headers, body))
}

#[test]
fn memoised_decisions_equal_fresh_ones_over_every_suite() {
    let suites = [
        (
            "policies/demo.json",
            "policies/demo.keys",
            "policies/demo.tests.jsonl",
        ),
        (
            "policies/mcp.json",
            "policies/mcp.keys",
            "policies/mcp.tests.jsonl",
        ),
        (
            "policies/railway.json",
            "policies/railway.keys",
            "policies/railway.tests.jsonl",
        ),
        (
            "tests/adversarial/bundle.json",
            "tests/adversarial/bundle.keys",
            "tests/adversarial/cases.jsonl",
        ),
    ];
    let (mut decided, mut held) = (0, 0);
    for (bundle, keyfile, cases) in suites {
        let json = std::fs::read(root().join(bundle)).unwrap();
        let keys = keys(&root().join(keyfile));
        let engine = Engine::from_json(&json, &Secrets::Unchecked).unwrap();
        let text = std::fs::read_to_string(root().join(cases)).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let case: Value = serde_json::from_str(line).unwrap();
            if request(&case, &keys, "r-1").is_none() {
                continue;
            }
            for (n, id) in ["r-1", "r-2", "r-3"].iter().enumerate() {
                let (mut headers, body) = request(&case, &keys, id).unwrap();
                // The values no decision reads vary from request to request, some hostile
                // (control characters, non-UTF-8, a credential's shape): a decision that
                // starts reading one of them differs from a fresh one here.
                for (i, name) in UNREAD_HEADER_VALUES.iter().enumerate().skip(1) {
                    let value: Vec<u8> = match (n + i) % 4 {
                        0 => format!("00-{i:032x}-{n:016x}-01").into_bytes(),
                        1 => b"Bearer sgk_not_a_key\x01\n".to_vec(),
                        2 => vec![0xff, 0xfe, b'x'],
                        _ => Vec::new(),
                    };
                    headers.push((name.to_string(), value));
                }
                let fresh = Engine::from_json(&json, &Secrets::Unchecked)
                    .unwrap()
                    .decide(headers.clone(), &body, NOW);
                let v = engine.decide(headers, &body, NOW);
                assert_eq!(
                    v,
                    fresh,
                    "{} ({bundle}): decision {} differs from a fresh engine's",
                    case["name"],
                    n + 1
                );
            }
            decided += 1;
        }
        held += engine.memoised_decisions();
    }
    assert!(decided > 850, "only {decided} cases decided");
    // Header-only allows (without approval or budget) are what the memo keeps: 51 distinct
    // ones in these suites when this was written.
    assert!(held >= 40, "the memo kept only {held} decisions");
}

fn bundle(key: Value, budget: Option<Value>) -> Engine {
    let mut role = json!({"name": "ops", "allow": [
        {"service": "rest", "resources": ["orders"], "actions": ["read", "delete"]}]});
    if let Some(b) = budget {
        role["budget"] = b;
    }
    let b = json!({"bundle": "memo", "version": 1, "environment": "production",
        "services": [{"name": "rest", "protocol": "rest", "match": {"path_prefix": "/rest"},
                      "rest": {"style": "postgrest"}}],
        "roles": [role], "keys": [key]});
    Engine::from_json(b.to_string().as_bytes(), &Secrets::Unchecked).unwrap()
}

fn get(path: &str, method: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":authority".into(), b"gateway.test".to_vec()),
        ("authorization".into(), b"Bearer sgk_memo_test_key".to_vec()),
    ]
}

#[test]
fn a_key_that_expires_is_decided_afresh_every_time() {
    let engine = bundle(
        json!({"id": "k", "role": "ops", "sha256": hex(&sha256(b"sgk_memo_test_key")),
               "expires": "2026-11-15T00:00:00Z"}),
        None,
    );
    let before = 1_763_000_000_000; // 2025-11-13
    let after = 1_795_000_000_000; // 2026-11-18
    assert_eq!(
        engine
            .decide(get("/rest/orders", "GET"), b"", before)
            .decision(),
        Decision::Allow
    );
    assert_eq!(
        engine
            .decide(get("/rest/orders", "GET"), b"", before)
            .decision(),
        Decision::Allow
    );
    let v = engine.decide(get("/rest/orders", "GET"), b"", after);
    assert_eq!(
        v.decision(),
        Decision::Unauthenticated,
        "an expired key allowed from the memo: {v:?}"
    );
}

#[test]
fn a_budgeted_decision_is_never_kept() {
    let engine = bundle(
        json!({"id": "k", "role": "ops", "sha256": hex(&sha256(b"sgk_memo_test_key"))}),
        Some(json!({"destructive": 5, "per": "1h"})),
    );
    let first = engine.decide(get("/rest/orders?id=eq.1", "DELETE"), b"", NOW);
    let later = engine.decide(get("/rest/orders?id=eq.1", "DELETE"), b"", NOW + 7_200_000);
    let (a, b) = (first.allowed().unwrap(), later.allowed().unwrap());
    assert!(a.budget.is_some(), "the budget is spent: {first:?}");
    assert_ne!(
        a.budget, b.budget,
        "the second spend is its own (its time), not the first's"
    );
}

#[test]
fn the_request_id_is_the_requests_own_on_a_hit() {
    let engine = bundle(
        json!({"id": "k", "role": "ops", "sha256": hex(&sha256(b"sgk_memo_test_key"))}),
        None,
    );
    let with_id = |id: &[u8]| {
        let mut h = get("/rest/orders", "GET");
        h.push(("x-request-id".into(), id.to_vec()));
        h
    };
    assert_eq!(
        engine
            .decide(with_id(b"first"), b"", NOW)
            .subject
            .request_id,
        "first"
    );
    assert_eq!(
        engine
            .decide(with_id(b"second"), b"", NOW)
            .subject
            .request_id,
        "second"
    );
    // Not a plain id, repeated, or absent: `-`, as when decided afresh.
    assert_eq!(
        engine.decide(with_id(b"a b"), b"", NOW).subject.request_id,
        "-"
    );
    let mut twice = with_id(b"x");
    twice.push(("x-request-id".into(), b"y".to_vec()));
    assert_eq!(engine.decide(twice, b"", NOW).subject.request_id, "-");
    assert_eq!(
        engine
            .decide(get("/rest/orders", "GET"), b"", NOW)
            .subject
            .request_id,
        "-"
    );
}

#[test]
fn a_bundle_that_reads_a_credential_from_an_unread_header_has_no_memo() {
    // The key leaves the values of UNREAD_HEADER_VALUES out: a bundle that takes the agent's
    // key from one of them would let a second request ride on the first one's key.
    let b = json!({"bundle": "memo", "version": 1, "environment": "production",
        "credential_headers": ["x-request-id"],
        "services": [{"name": "rest", "protocol": "rest", "match": {"path_prefix": "/rest"},
                      "rest": {"style": "postgrest"}}],
        "roles": [{"name": "ops", "allow": [
            {"service": "rest", "resources": ["orders"], "actions": ["read"]}]}],
        "keys": [{"id": "k", "role": "ops", "sha256": hex(&sha256(b"sgk_memo_test_key"))}]});
    let engine = Engine::from_json(b.to_string().as_bytes(), &Secrets::Unchecked).unwrap();
    let with = |v: &[u8]| {
        let mut h = get("/rest/orders", "GET");
        h.retain(|(n, _)| n != "authorization");
        h.push(("x-request-id".into(), v.to_vec()));
        h
    };
    assert_eq!(
        engine
            .decide(with(b"sgk_memo_test_key"), b"", NOW)
            .decision(),
        Decision::Allow
    );
    let v = engine.decide(with(b"sgk_guessed"), b"", NOW);
    assert_eq!(v.decision(), Decision::Unauthenticated, "{v:?}");
    assert_eq!(engine.memoised_decisions(), 0);
}

#[test]
fn another_credential_for_the_same_request_is_decided_afresh() {
    let engine = bundle(
        json!({"id": "k", "role": "ops", "sha256": hex(&sha256(b"sgk_memo_test_key"))}),
        None,
    );
    assert_eq!(
        engine
            .decide(get("/rest/orders", "GET"), b"", NOW)
            .decision(),
        Decision::Allow
    );
    assert_eq!(engine.memoised_decisions(), 1);
    // Another key presented for the same request is decided afresh (and refused).
    let mut other = get("/rest/orders", "GET");
    other.retain(|(n, _)| n != "authorization");
    other.push(("authorization".into(), b"Bearer sgk_someone_else".to_vec()));
    assert_eq!(
        engine.decide(other, b"", NOW).decision(),
        Decision::Unauthenticated
    );
}
