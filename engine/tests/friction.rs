//! Friction an agent cannot satisfy by itself: approval tokens bound to the exact request,
//! two approvers, confirmations, budgets, the instance's environment — table-driven
//! through the whole pipeline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::approval::{issue, ApprovalKey, Claims};
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::ledger::budget_key;
use scopegate_engine::{Decision, Engine, Secrets, Verdict};
use serde_json::Value;

mod common;
use common::NOW;

const APPROVAL_KEY: &str = "approval-key-for-tests-0123456789abcdef";

fn bundle() -> String {
    let sha = |k: &str| hex(&sha256(k.as_bytes()));
    format!(
        r#"{{"bundle": "friction", "version": 1, "environment": "production",
      "services": [{{"name": "rentals", "protocol": "rest", "match": {{"path_prefix": "/rest"}}, "rest": {{"style": "postgrest"}}}},
        {{"name": "df", "protocol": "rest", "match": {{"path_prefix": "/df"}}, "rest": {{"style": "dreamfactory"}}}},
        {{"name": "infra", "protocol": "rest", "match": {{"path_prefix": "/v2"}},
          "rest": {{"style": "routes", "routes": [
            {{"methods": ["POST"], "path": "/volumes/{{volumeId}}/delete", "resource": "volumeDelete", "action": "delete"}},
            {{"methods": ["GET"], "path": "/volumes/{{volumeId}}", "resource": "volume", "action": "read"}}]}},
          "environments": {{"records": ["volumeId"], "ids": {{"vol-prod-1": "production"}},
                            "by_environment": {{"staging": ["vol-staging-1", "vol-staging-2"]}}}}}}],
      "roles": [{{"name": "writer", "budget": {{"destructive": 2, "per": "1h"}}, "allow": [
          {{"service": "rentals", "resources": ["reservations"], "actions": ["read", "delete"], "friction": "approval"}},
          {{"service": "df", "resources": ["vehicles"], "actions": ["drop"]}},
          {{"service": "infra", "resources": ["volumeDelete"], "actions": ["delete"], "environments": ["staging"]}},
          {{"service": "infra", "resources": ["volume"], "actions": ["read"]}},
          {{"service": "rentals", "resources": ["vehicles"], "actions": ["read"], "environments": ["staging"]}},
          {{"service": "rentals", "resources": ["scratch", "notes"], "actions": ["delete"], "friction": "confirm"}}]}}],
      "keys": [
        {{"id": "writer-1", "sha256": "{}", "role": "writer"}},
        {{"id": "writer-2", "sha256": "{}", "role": "writer", "budget": {{"destructive": 1, "per": "30m"}}}}],
      "guards": [{{"services": ["*"], "actions": ["drop"], "effect": "approval", "approvals": 2}},
                 {{"services": ["infra"], "actions": ["read"], "environments": ["production"], "effect": "confirm"}}]}}"#,
        sha("writer-key"),
        sha("writer2-key")
    )
}

fn engine_with(env_key: Option<&str>, environment: Option<&str>) -> Result<Engine, String> {
    let env = |n: &str| match n {
        "SCOPEGATE_APPROVAL_KEY" => env_key.map(str::to_string),
        "SCOPEGATE_ENVIRONMENT" => environment.map(str::to_string),
        _ => None,
    };
    Engine::from_json(bundle().as_bytes(), &Secrets::Env(&env)).map_err(|e| e.to_string())
}

fn engine() -> Engine {
    engine_with(Some(APPROVAL_KEY), None).unwrap()
}

fn decide(
    e: &Engine,
    method: &str,
    path: &str,
    key: &str,
    extra: &[(&str, &str)],
    now: i64,
) -> Verdict {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gw.test".to_vec()),
        ("x-api-key".to_string(), key.as_bytes().to_vec()),
    ];
    for (n, v) in extra {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    e.decide(h, b"", now)
}

fn token(digest: &str, key: &str, approver: &str, nonce: &str, exp: i64, with: &str) -> String {
    let k = ApprovalKey::new(with.as_bytes()).unwrap();
    issue(
        &k,
        &Claims {
            v: 1,
            digest: digest.into(),
            key: key.into(),
            exp,
            approver: approver.into(),
            nonce: nonce.into(),
        },
    )
}

#[test]
fn approval_is_bound_to_the_exact_request() {
    let e = engine();
    let path = "/rest/reservations?id=eq.r-1";
    let ch = decide(&e, "DELETE", path, "writer-key", &[], NOW);
    assert_eq!(ch.decision(), Decision::Challenge);
    let body: Value = serde_json::from_str(&ch.response_body()).unwrap();
    assert_eq!(body["key"], "writer-1");
    assert_eq!(body["approvals"], 1);
    let digest = ch.digest.clone().unwrap();
    let exp = NOW / 1000 + 600;
    let good = token(&digest, "writer-1", "alice", "n1", exp, APPROVAL_KEY);

    let v = decide(
        &e,
        "DELETE",
        path,
        "writer-key",
        &[("x-scopegate-approval", &good)],
        NOW,
    );
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
    assert!(
        v.reason().starts_with("approved by alice"),
        "{}",
        v.reason()
    );
    let a = v.approval().cloned().unwrap();
    assert_eq!(
        (a.approvers, a.nonces),
        (vec!["alice".to_string()], vec![("n1".to_string(), exp)])
    );
    assert_eq!(v.digest.as_deref(), Some(digest.as_str()));

    // (what, request path, token, reason fragment)
    let other = decide(
        &e,
        "DELETE",
        "/rest/reservations?id=eq.r-2",
        "writer-key",
        &[],
        NOW,
    )
    .digest
    .unwrap();
    let cases = [
        (
            "token of another request",
            path,
            token(&other, "writer-1", "alice", "n2", exp, APPROVAL_KEY),
            "another request",
        ),
        (
            "this token on another request",
            "/rest/reservations?id=eq.r-2",
            good.clone(),
            "another request",
        ),
        (
            "another key's token",
            path,
            token(&digest, "writer-2", "alice", "n3", exp, APPROVAL_KEY),
            "issued for key",
        ),
        (
            "expired",
            path,
            token(
                &digest,
                "writer-1",
                "alice",
                "n4",
                NOW / 1000 - 1,
                APPROVAL_KEY,
            ),
            "expired",
        ),
        (
            "forged with a wrong key",
            path,
            token(
                &digest,
                "writer-1",
                "alice",
                "n5",
                exp,
                "not-the-approval-key-0123456789abcdef",
            ),
            "bad signature",
        ),
        ("garbage", path, "v1.e30.AAAA".to_string(), "bad signature"),
        (
            "same approver twice",
            path,
            format!(
                "{good}, {}",
                token(&digest, "writer-1", "alice", "n6", exp, APPROVAL_KEY)
            ),
            "same approver",
        ),
    ];
    for (what, p, t, why) in cases {
        let v = decide(
            &e,
            "DELETE",
            p,
            "writer-key",
            &[("x-scopegate-approval", &t)],
            NOW,
        );
        assert_eq!(v.decision(), Decision::Deny, "{what}: {}", v.reason());
        assert!(v.reason().contains(why), "{what}: {}", v.reason());
        assert!(v.approval().is_none() && v.forward().is_none(), "{what}");
        let body = v.response_body();
        assert!(!body.contains(APPROVAL_KEY), "{what}");
    }
    // Another key presenting the writer's token: the digest binds the key too.
    let v = decide(
        &e,
        "DELETE",
        path,
        "writer2-key",
        &[("x-scopegate-approval", &good)],
        NOW,
    );
    assert_eq!(v.decision(), Decision::Deny);
    // Repeated header.
    let v = decide(
        &e,
        "DELETE",
        path,
        "writer-key",
        &[
            ("x-scopegate-approval", &good),
            ("x-scopegate-approval", &good),
        ],
        NOW,
    );
    assert!(v.reason().contains("repeated"), "{}", v.reason());
}

#[test]
fn two_approvers_for_the_most_dangerous() {
    let e = engine();
    // DreamFactory's `_schema` DELETE drops the table: a guard asks two approvers.
    let path = "/df/_schema/vehicles";
    let ch = decide(&e, "DELETE", path, "writer-key", &[], NOW);
    assert_eq!(ch.decision(), Decision::Challenge, "{}", ch.reason());
    let body: Value = serde_json::from_str(&ch.response_body()).unwrap();
    assert_eq!(body["approvals"], 2);
    let d = ch.digest.unwrap();
    let exp = NOW / 1000 + 600;
    let alice = token(&d, "writer-1", "alice", "a1", exp, APPROVAL_KEY);
    let bob = token(&d, "writer-1", "bob", "b1", exp, APPROVAL_KEY);
    let alice2 = token(&d, "writer-1", "alice", "a2", exp, APPROVAL_KEY);
    let cases = [
        (alice.clone(), Decision::Deny, "needs 2 approvals"),
        (format!("{alice},{alice2}"), Decision::Deny, "same approver"),
        (
            format!("{alice}, {bob}"),
            Decision::Allow,
            "approved by alice and bob",
        ),
        (
            format!("{alice},{bob},{alice2}"),
            Decision::Deny,
            "one or two tokens",
        ),
    ];
    for (t, decision, why) in cases {
        let v = decide(
            &e,
            "DELETE",
            path,
            "writer-key",
            &[("x-scopegate-approval", &t)],
            NOW,
        );
        assert_eq!(v.decision(), decision, "{why}: {}", v.reason());
        assert!(v.reason().contains(why), "{why}: {}", v.reason());
    }
}

#[test]
fn confirmation_names_every_operation_that_owes_it() {
    let e = engine();
    let path = "/rest/scratch?id=eq.s-1";
    let ch = decide(&e, "DELETE", path, "writer-key", &[], NOW);
    assert_eq!(ch.decision(), Decision::Challenge);
    assert_eq!(ch.proof().map(|f| f.as_str()), Some("confirm"));
    let cases = [
        ("delete scratch", Decision::Allow),
        (" delete   scratch ", Decision::Allow),
        ("delete notes", Decision::Deny),
        ("delete scratch, delete notes", Decision::Deny),
        ("yes", Decision::Deny),
    ];
    for (c, decision) in cases {
        let v = decide(
            &e,
            "DELETE",
            path,
            "writer-key",
            &[("x-scopegate-confirm", c)],
            NOW,
        );
        assert_eq!(v.decision(), decision, "{c}: {}", v.reason());
    }
    let v = decide(
        &e,
        "DELETE",
        path,
        "writer-key",
        &[("x-scopegate-confirm", "delete notes")],
        NOW,
    );
    assert!(
        v.reason().contains("needs exactly `delete scratch`"),
        "{}",
        v.reason()
    );
}

#[test]
fn budgets_are_per_key_and_window() {
    let e = engine();
    let confirm = [("x-scopegate-confirm", "delete scratch")];
    let v = decide(
        &e,
        "DELETE",
        "/rest/scratch?id=eq.s-1",
        "writer-key",
        &confirm,
        NOW,
    );
    let b = v
        .budget()
        .cloned()
        .expect("a destructive request spends budget");
    assert_eq!(
        (b.key.as_str(), b.limit, b.cost, b.per.as_str()),
        ("writer-1", 2, 1, "1h")
    );
    let later = decide(
        &e,
        "DELETE",
        "/rest/scratch?id=eq.s-1",
        "writer-key",
        &confirm,
        NOW + 3_600_000,
    );
    assert_ne!(
        budget_key(&b),
        budget_key(later.budget().unwrap()),
        "a new window, a new counter"
    );
    let v2 = decide(
        &e,
        "DELETE",
        "/rest/scratch?id=eq.s-1",
        "writer2-key",
        &confirm,
        NOW,
    );
    let b2 = v2.budget().unwrap();
    assert_eq!(
        (b2.limit, b2.per.as_str()),
        (1, "30m"),
        "the key's own budget wins"
    );
    // Reads spend nothing.
    let ch = decide(&e, "GET", "/rest/reservations", "writer-key", &[], NOW);
    assert!(ch.budget().is_none());
    // Over budget: what the filter does with the count it keeps.
    let over = v.refused(scopegate_engine::verdict::Refusal::OverBudget {
        key: "writer-1".into(),
        limit: 2,
        per: "1h".into(),
    });
    assert_eq!(over.status(), Some(429));
    assert_eq!(over.decision().as_str(), "over_budget");
}

#[test]
fn the_approval_key_and_environment_come_from_the_vm() {
    let err = engine_with(None, None).unwrap_err();
    assert!(err.contains("SCOPEGATE_APPROVAL_KEY` is not set"), "{err}");
    let err = engine_with(Some("short"), None).unwrap_err();
    assert!(err.contains("at least 32 bytes"), "{err}");
    let e = engine_with(Some(APPROVAL_KEY), Some("staging")).unwrap();
    assert_eq!(e.policy().environment, "staging");
    assert!(engine_with(Some(APPROVAL_KEY), Some("bad env")).is_err());
    assert!(!format!("{:?}", e.policy().approval_key).contains(APPROVAL_KEY));
}

#[test]
fn opaque_ids_resolve_to_their_environment() {
    let e = engine();
    let cases = [
        // (method, path, decision, environments)
        (
            "POST",
            "/v2/volumes/vol-staging-1/delete",
            Decision::Allow,
            vec!["staging"],
        ),
        (
            "POST",
            "/v2/volumes/vol-prod-1/delete",
            Decision::Deny,
            vec!["production"],
        ),
        // An id the map does not know is production.
        (
            "POST",
            "/v2/volumes/vol-9f3/delete",
            Decision::Deny,
            vec!["production"],
        ),
        // A guard scoped to production adds friction there only.
        (
            "GET",
            "/v2/volumes/vol-staging-2",
            Decision::Allow,
            vec!["staging"],
        ),
        (
            "GET",
            "/v2/volumes/vol-prod-1",
            Decision::Challenge,
            vec!["production"],
        ),
    ];
    for (method, path, decision, envs) in cases {
        let v = decide(&e, method, path, "writer-key", &[], NOW);
        assert_eq!(v.decision(), decision, "{path}: {}", v.reason());
        assert_eq!(v.operations[0].environments, envs, "{path}");
    }
    // A service without a map is in the instance's environment: the staging-only grant
    // covers it on a staging gateway and not on this production one.
    let v = decide(&e, "GET", "/rest/vehicles", "writer-key", &[], NOW);
    assert_eq!(v.decision(), Decision::Deny, "{}", v.reason());
    let staging = engine_with(Some(APPROVAL_KEY), Some("staging")).unwrap();
    let v = decide(&staging, "GET", "/rest/vehicles", "writer-key", &[], NOW);
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
}
