//! Signed approvals through the whole pipeline: approvers with their own Ed25519 keys, a
//! challenge the gateway signs, two approvers who must be two people, a challenge that
//! cannot be approved after it expired.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::approval::{sign_approval, Approval, PrivateKey};
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::ledger::{settle, MemoryLedger};
use scopegate_engine::{Decision, Engine, Secrets, Verdict};
use serde_json::Value;

mod common;
use common::NOW;

struct Keys {
    gateway: PrivateKey,
    alice: PrivateKey,
    bob: PrivateKey,
}

fn keys() -> Keys {
    Keys {
        gateway: PrivateKey::from_seed([1; 32]),
        alice: PrivateKey::from_seed([2; 32]),
        bob: PrivateKey::from_seed([3; 32]),
    }
}

fn engine(k: &Keys) -> Engine {
    let bundle = format!(
        r#"{{"bundle": "signed", "version": 1, "environment": "production", "state": {{"store": "local"}},
      "approvals": {{"challenge_key": "{}", "challenge_ttl": "5m",
                     "approvers": [{{"name": "alice", "ed25519": "{}"}}, {{"name": "bob", "ed25519": "{}"}}]}},
      "services": [{{"name": "rentals", "protocol": "rest", "match": {{"path_prefix": "/rest"}}, "rest": {{"style": "postgrest"}}}}],
      "roles": [{{"name": "writer", "allow": [
          {{"service": "rentals", "resources": ["reservations"], "actions": ["read", "delete"], "friction": "approval"}},
          {{"service": "rentals", "resources": ["payments"], "actions": ["delete"], "friction": "approval", "approvals": 2}}]}}],
      "keys": [{{"id": "writer-1", "sha256": "{}", "role": "writer"}},
               {{"id": "writer-2", "sha256": "{}", "role": "writer"}}]}}"#,
        k.gateway.public_base64(),
        k.alice.public_base64(),
        k.bob.public_base64(),
        hex(&sha256(b"writer-key")),
        hex(&sha256(b"writer2-key")),
    );
    let seed = k.gateway.to_base64();
    let env = move |n: &str| (n == "SCOPEGATE_CHALLENGE_KEY").then(|| seed.clone());
    Engine::from_json(bundle.as_bytes(), &Secrets::Env(&env)).unwrap()
}

fn decide(e: &Engine, path: &str, key: &str, token: Option<&str>, now: i64) -> Verdict {
    let mut h = vec![
        (":method".to_string(), b"DELETE".to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gw.test".to_vec()),
        (
            "authorization".to_string(),
            format!("Bearer {key}").into_bytes(),
        ),
    ];
    if let Some(t) = token {
        h.push(("x-scopegate-approval".to_string(), t.as_bytes().to_vec()));
    }
    e.decide(h, b"", now)
}

fn signed_challenge(v: &Verdict) -> String {
    let body: Value = serde_json::from_str(&v.response_body()).unwrap();
    assert_eq!(body["decision"], "challenge", "{body}");
    // The request as sent is shown, bound by the signed challenge.
    let claims = scopegate_engine::approval::open_challenge(
        &keys().gateway.public(),
        body["signed"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims.shown,
        scopegate_engine::approval::shown_hash(&body["request"])
    );
    assert_eq!(body["request"]["method"], "DELETE");
    assert!(!claims.operations.is_empty());
    body["signed"].as_str().unwrap().to_string()
}

fn approve(by: &PrivateKey, name: &str, challenge: &str, iat_ms: i64, nonce: &str) -> String {
    sign_approval(
        by,
        &Approval {
            v: 2,
            challenge: challenge.to_string(),
            approver: name.into(),
            iat: iat_ms / 1000,
            exp: iat_ms / 1000 + 600,
            nonce: nonce.into(),
        },
    )
}

#[test]
fn an_approver_signs_what_the_gateway_signed() {
    let k = keys();
    let e = engine(&k);
    let path = "/rest/reservations?id=eq.r-1";
    let challenge = signed_challenge(&decide(&e, path, "writer-key", None, NOW));
    let ledger = MemoryLedger::new();

    let token = approve(&k.alice, "alice", &challenge, NOW + 1000, "n-1");
    let v = settle(
        &ledger,
        decide(&e, path, "writer-key", Some(&token), NOW + 2000),
        NOW + 2000,
    );
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
    assert_eq!(v.approval().unwrap().approvers, ["alice"]);
    let again = settle(
        &ledger,
        decide(&e, path, "writer-key", Some(&token), NOW + 3000),
        NOW + 3000,
    );
    assert!(
        again.reason().contains("already used"),
        "{}",
        again.reason()
    );

    let refused = |token: &str, now: i64, why: &str| {
        let v = decide(&e, path, "writer-key", Some(token), now);
        assert_eq!(v.decision(), Decision::Deny, "{why}");
        assert!(v.reason().contains(why), "{} / {why}", v.reason());
    };
    // Alice cannot sign as Bob; nobody unlisted approves.
    refused(
        &approve(&k.alice, "bob", &challenge, NOW, "n-2"),
        NOW,
        "not signed by `bob`",
    );
    refused(
        &approve(
            &PrivateKey::from_seed([7; 32]),
            "mallory",
            &challenge,
            NOW,
            "n-3",
        ),
        NOW,
        "not an approver",
    );
    // Not after the challenge's 5 minutes.
    refused(
        &approve(&k.alice, "alice", &challenge, NOW + 301_000, "n-4"),
        NOW + 302_000,
        "after the challenge expired",
    );
    // Another key, another request: the challenge does not fit (the digest binds the key).
    let other = decide(
        &e,
        path,
        "writer2-key",
        Some(&approve(&k.alice, "alice", &challenge, NOW, "n-5")),
        NOW,
    );
    assert_eq!(other.decision(), Decision::Deny);
    assert!(
        other.reason().contains("another request"),
        "{}",
        other.reason()
    );
    refused(
        &approve(&k.alice, "alice", &challenge, NOW, "n-6").replace("v2.", "v1."),
        NOW,
        "shared-key",
    );
    let elsewhere = decide(
        &e,
        "/rest/reservations?id=eq.r-2",
        "writer-key",
        Some(&approve(&k.alice, "alice", &challenge, NOW, "n-7")),
        NOW,
    );
    assert!(
        elsewhere.reason().contains("another request"),
        "{}",
        elsewhere.reason()
    );
}

#[test]
fn two_approvals_need_two_people() {
    let k = keys();
    let e = engine(&k);
    let path = "/rest/payments?id=eq.p-1";
    let ch = decide(&e, path, "writer-key", None, NOW);
    let body: Value = serde_json::from_str(&ch.response_body()).unwrap();
    assert_eq!(body["approvals"], 2);
    let challenge = signed_challenge(&ch);
    let a = approve(&k.alice, "alice", &challenge, NOW, "n-a");
    let a2 = approve(&k.alice, "alice", &challenge, NOW, "n-a2");
    let forged_bob = approve(&k.alice, "bob", &challenge, NOW, "n-fb");
    let b = approve(&k.bob, "bob", &challenge, NOW, "n-b");
    for (tokens, ok) in [
        (format!("{a},{a2}"), false),
        (format!("{a},{forged_bob}"), false),
        (a.clone(), false),
        (format!("{a},{b}"), true),
    ] {
        let v = decide(&e, path, "writer-key", Some(&tokens), NOW + 1000);
        assert_eq!(v.decision() == Decision::Allow, ok, "{}", v.reason());
    }
}
