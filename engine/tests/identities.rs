//! Verified-token identities across every protocol: the adversarial bundle (REST, SQL,
//! GraphQL, MCP services) with `identities`, decided with the payload jwt_authn would have
//! verified. The e2e test (tests/e2e/test_identities.py) drives REST and MCP through a real
//! Envoy with jwt_authn; this drives all four decoders with the same authentication code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::Verified;
use scopegate_engine::{Decision, Engine, Secrets, Verdict};
use serde_json::{json, Value};
use std::path::Path;

mod common;
use common::NOW;

fn engine() -> Engine {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut b: Value =
        serde_json::from_slice(&std::fs::read(root.join("tests/adversarial/bundle.json")).unwrap())
            .unwrap();
    b["identities"] = json!({"resource_metadata": "https://gw.test/.well-known/oauth-protected-resource",
      "entries": [
        {"id": "writers", "issuer": "https://idp.test", "audiences": ["gw"], "scopes": ["shop.write"],
         "role": "writer", "id_claim": "client_id"},
        {"id": "agents", "issuer": "https://idp.test", "audiences": ["gw"], "claims": {"groups": ["cart-bots"]},
         "role": "agent"},
        {"id": "readers", "issuer": "https://idp.test", "audiences": ["gw"], "claims": {"client_id": ["ro-*"]},
         "role": "reader"}]});
    Engine::from_json(b.to_string().as_bytes(), &Secrets::Unchecked)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn token(extra: Value) -> Verified {
    let mut c = json!({"iss": "https://idp.test", "aud": "gw", "sub": "u-1", "exp": 1_900_000_000});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.as_object().unwrap().clone()
}

fn decide(e: &Engine, who: &Verified, method: &str, path: &str, body: &str) -> Verdict {
    let h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gw.test".to_vec()),
        ("content-type".to_string(), b"application/json".to_vec()),
        // What reaches scopegate after jwt_authn (its `forward: false` removed the token);
        // a JWT-shaped bearer kept by a `forward: true` provider is not a key either.
        (
            "authorization".to_string(),
            b"Bearer eyJh.eyJz.c2ln".to_vec(),
        ),
    ];
    e.decide_verified(h, Some(who), body.as_bytes(), NOW)
}

#[test]
fn claims_map_to_roles_on_every_protocol() {
    let e = engine();
    let reader = token(json!({"client_id": "ro-reporting"}));
    let writer = token(json!({"client_id": "etl-7", "scope": "openid shop.write"}));
    let agent = token(json!({"groups": ["cart-bots"], "client_id": "bot-1"}));
    let sql = |q: &str| json!({"sql": q}).to_string();
    let gql = |q: &str| json!({"query": q}).to_string();
    let mcp = |tool: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}})
            .to_string()
    };
    let cases: Vec<(&Verified, &str, &str, String, Decision, &str)> = vec![
        // REST
        (
            &reader,
            "GET",
            "/rest/orders?id=eq.1",
            String::new(),
            Decision::Allow,
            "readers/u-1",
        ),
        (
            &reader,
            "DELETE",
            "/rest/orders?id=eq.1",
            String::new(),
            Decision::Deny,
            "readers/u-1",
        ),
        (
            &writer,
            "PATCH",
            "/rest/orders?id=eq.1",
            r#"{"note":"x"}"#.into(),
            Decision::Allow,
            "writers/etl-7",
        ),
        (
            &agent,
            "DELETE",
            "/rest/notes?id=eq.n-1",
            String::new(),
            Decision::Challenge,
            "agents/u-1",
        ),
        // SQL
        (
            &reader,
            "POST",
            "/sql",
            sql("SELECT id FROM orders"),
            Decision::Allow,
            "readers/u-1",
        ),
        (
            &reader,
            "POST",
            "/sql",
            sql("DELETE FROM orders WHERE id = 1"),
            Decision::Deny,
            "readers/u-1",
        ),
        (
            &agent,
            "POST",
            "/sql",
            sql("DELETE FROM carts WHERE id = 'c-1'"),
            Decision::Allow,
            "agents/u-1",
        ),
        (
            &agent,
            "POST",
            "/sql",
            sql("DELETE FROM carts WHERE id = 'c-9'"),
            Decision::Deny,
            "agents/u-1",
        ),
        // GraphQL
        (
            &reader,
            "POST",
            "/graphql",
            gql("{ orders { id } }"),
            Decision::Allow,
            "readers/u-1",
        ),
        (
            &reader,
            "POST",
            "/graphql",
            gql("mutation { orderCreate(input: {}) { id } }"),
            Decision::Deny,
            "readers/u-1",
        ),
        (
            &writer,
            "POST",
            "/graphql",
            gql("mutation { orderCreate(input: {}) { id } }"),
            Decision::Allow,
            "writers/etl-7",
        ),
        // MCP
        (
            &reader,
            "POST",
            "/mcp",
            mcp("list_orders", json!({})),
            Decision::Allow,
            "readers/u-1",
        ),
        (
            &reader,
            "POST",
            "/mcp",
            mcp("create_order", json!({"item": "x"})),
            Decision::Deny,
            "readers/u-1",
        ),
        (
            &writer,
            "POST",
            "/mcp",
            mcp("create_order", json!({"item": "x"})),
            Decision::Allow,
            "writers/etl-7",
        ),
    ];
    for (who, method, path, body, want, id) in cases {
        let v = decide(&e, who, method, path, &body);
        assert_eq!(v.decision(), want, "{method} {path} {body}: {}", v.reason());
        assert_eq!(v.subject.key.as_deref(), Some(id), "{method} {path}");
    }
}

#[test]
fn what_does_not_authenticate() {
    let e = engine();
    let h = |extra: &[(&str, &str)]| {
        let mut h = vec![
            (":method".to_string(), b"POST".to_vec()),
            (":path".to_string(), b"/mcp".to_vec()),
            (":authority".to_string(), b"gw.test".to_vec()),
            ("content-type".to_string(), b"application/json".to_vec()),
        ];
        h.extend(
            extra
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
        );
        h
    };
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    // A JWT-shaped bearer with no verified payload: unverified, never read.
    let v = e.decide_verified(
        h(&[("authorization", "Bearer eyJh.eyJz.c2ln")]),
        None,
        body,
        NOW,
    );
    assert_eq!(v.decision(), Decision::Unauthenticated);
    assert!(v.reason().contains("did not verify"), "{}", v.reason());
    // The MCP 401 points at the protected-resource metadata.
    let headers = v.response_headers();
    let www = headers
        .iter()
        .find(|(n, _)| *n == "www-authenticate")
        .unwrap();
    assert_eq!(
        www.1,
        r#"Bearer resource_metadata="https://gw.test/.well-known/oauth-protected-resource""#
    );
    // A payload no entry admits, an expired one, one for another audience.
    for (claims, says) in [
        (
            json!({"client_id": "intern"}),
            "no identity of the bundle matches",
        ),
        (
            json!({"client_id": "ro-1", "exp": 1_700_000_000}),
            "expired",
        ),
        (
            json!({"client_id": "ro-1", "aud": "elsewhere"}),
            "no identity",
        ),
        (
            json!({"scope": "shop.write", "client_id": "etl\r\nx-scopegate-role: admin"}),
            "not a printable name",
        ),
        (
            json!({"client_id": "ro-1", "sub": "a\r\nb"}),
            "not a printable name",
        ),
    ] {
        let who = token(claims);
        let v = e.decide_verified(h(&[]), Some(&who), body, NOW);
        assert_eq!(v.decision(), Decision::Unauthenticated, "{who:?}");
        assert!(v.reason().contains(says), "{says}: {}", v.reason());
    }
    // A key and a verified token together.
    let who = token(json!({"client_id": "ro-1"}));
    let v = e.decide_verified(h(&[("x-api-key", "some-key")]), Some(&who), body, NOW);
    assert_eq!(v.decision(), Decision::Unauthenticated);
    assert!(v
        .reason()
        .contains("both a scopegate key and a verified token"));
    // Without identities in the bundle, a JWT is only an unknown key (nothing is read).
    let plain = Engine::from_json(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/adversarial/bundle.json"),
        )
        .unwrap(),
        &Secrets::Unchecked,
    )
    .unwrap();
    let v = plain.decide_verified(
        h(&[("authorization", "Bearer eyJh.eyJz.c2ln")]),
        Some(&who),
        body,
        NOW,
    );
    assert_eq!(v.decision(), Decision::Unauthenticated);
    assert!(v.reason().contains("unknown key"), "{}", v.reason());
}
