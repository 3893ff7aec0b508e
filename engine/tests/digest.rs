//! The approval digest binds what a request means, per protocol: a client that re-sends
//! what was approved — JSON re-serialised, the next JSON-RPC id, SQL re-spaced, a GraphQL
//! document re-formatted — gets the same digest; any change to what the upstream would do
//! gets another.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::{Decision, Engine, Secrets};

mod common;
use common::NOW;

fn engine() -> Engine {
    let sha = hex(&sha256(b"agent-key"));
    let bundle = format!(
        r#"{{"bundle": "digest", "version": 1, "environment": "production", "state": {{"store": "local"}},
      "services": [
        {{"name": "rest", "protocol": "rest", "match": {{"path_prefix": "/rest"}}, "rest": {{"style": "postgrest"}}}},
        {{"name": "sql", "protocol": "sql", "match": {{"path_prefix": "/sql"}},
          "sql": {{"dialect": "postgres", "statement": {{"json_pointer": "/query"}}, "params": {{"json_pointer": "/params"}}}}}},
        {{"name": "gql", "protocol": "graphql", "match": {{"path_prefix": "/graphql"}}}},
        {{"name": "mcp", "protocol": "mcp", "match": {{"path_prefix": "/mcp"}}}}],
      "roles": [{{"name": "agent", "allow": [
        {{"service": "rest", "resources": ["*"], "actions": ["read", "create", "update", "delete"], "friction": "approval"}},
        {{"service": "sql", "resources": ["*"], "actions": ["read", "create", "update", "delete"], "friction": "approval"}},
        {{"service": "gql", "resources": ["*"], "actions": ["read", "delete", "execute"], "friction": "approval"}},
        {{"service": "mcp", "resources": ["*"], "actions": ["read", "delete", "execute", "create"], "friction": "approval"}}]}}],
      "keys": [{{"id": "agent", "sha256": "{sha}", "role": "agent"}}]}}"#
    );
    let env = |n: &str| (n == "SCOPEGATE_APPROVAL_KEY").then(|| "k".repeat(40));
    Engine::from_json(bundle.as_bytes(), &Secrets::Env(&env)).unwrap()
}

/// The challenge digest of a request (it must be challenged).
fn digest(e: &Engine, method: &str, path: &str, extra: &[(&str, &str)], body: &str) -> String {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gw.test".to_vec()),
        ("authorization".to_string(), b"Bearer agent-key".to_vec()),
    ];
    for (n, v) in extra {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    let v = e.decide(h, body.as_bytes(), NOW);
    assert_eq!(
        v.decision(),
        Decision::Challenge,
        "{method} {path} {body}: {}",
        v.reason()
    );
    v.digest.unwrap()
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn rest_digests_follow_meaning() {
    let e = engine();
    let d = |path: &str, extra: &[(&str, &str)], body: &str| digest(&e, "PATCH", path, extra, body);
    let base = d(
        "/rest/docs?id=eq.4",
        &[JSON],
        r#"{"title": "a", "body": "b"}"#,
    );
    // Same meaning: whitespace and member order, a percent-encoded letter.
    assert_eq!(
        base,
        d("/rest/docs?id=eq.4", &[JSON], r#"{"body":"b","title":"a"}"#)
    );
    assert_eq!(
        base,
        d(
            "/rest/docs?id=%65q.4",
            &[JSON],
            "{\"title\":\"a\",\n \"body\":\"b\"}"
        )
    );
    // Another meaning: a value, the row, a schema profile, a Prefer resolution.
    for (path, extra, body) in [
        (
            "/rest/docs?id=eq.4",
            vec![JSON],
            r#"{"title": "a", "body": "c"}"#,
        ),
        (
            "/rest/docs?id=eq.5",
            vec![JSON],
            r#"{"title": "a", "body": "b"}"#,
        ),
        (
            "/rest/docs?id=eq.4",
            vec![JSON, ("content-profile", "audit")],
            r#"{"title": "a", "body": "b"}"#,
        ),
        (
            "/rest/docs?id=eq.4",
            vec![JSON, ("prefer", "missing=default")],
            r#"{"title": "a", "body": "b"}"#,
        ),
        (
            "/rest/docs?id=eq.4",
            vec![JSON],
            r#"{"title": "a", "body": "b", "x": 1}"#,
        ),
    ] {
        assert_ne!(base, d(path, &extra, body), "{path} {extra:?} {body}");
    }
}

#[test]
fn sql_digests_follow_tokens_not_spacing() {
    let e = engine();
    let d = |body: &str| digest(&e, "POST", "/sql", &[JSON], body);
    let base = d(r#"{"query": "UPDATE docs SET body = 'x  y' WHERE id = $1", "params": [4]}"#);
    assert_eq!(
        base,
        d("{\"params\":[4],\n \"query\": \"UPDATE  docs\\n  SET body='x  y'\\tWHERE id=$1\"}")
    );
    for other in [
        // Inside a literal, spacing is data.
        r#"{"query": "UPDATE docs SET body = 'x y' WHERE id = $1", "params": [4]}"#,
        r#"{"query": "UPDATE docs SET body = 'x  y' WHERE id = $1", "params": [5]}"#,
        r#"{"query": "UPDATE docs SET body = (SELECT string_agg(body, ',') FROM docs) WHERE id = $1", "params": [4]}"#,
        // A comment is kept (some servers read them).
        r#"{"query": "UPDATE docs SET body = 'x  y' WHERE id = $1 /* hint */", "params": [4]}"#,
    ] {
        assert_ne!(base, d(other), "{other}");
    }
}

#[test]
fn graphql_digests_follow_document_and_variables() {
    let e = engine();
    let d = |body: &str| digest(&e, "POST", "/graphql", &[JSON], body);
    let base = d(
        r#"{"query": "mutation D($id: String!) { volumeDelete(volumeId: $id) }", "variables": {"id": "v-1"}}"#,
    );
    assert_eq!(
        base,
        d(
            r##"{"variables":{"id":"v-1"},"query":"# approved\nmutation D($id:String!){volumeDelete(volumeId:$id),}"}"##
        )
    );
    for other in [
        r#"{"query": "mutation D($id: String!) { volumeDelete(volumeId: $id) }", "variables": {"id": "v-2"}}"#,
        r#"{"query": "mutation D($id: String!) { volumeDelete(volumeId: $id) { id } }", "variables": {"id": "v-1"}}"#,
        r#"{"query": "mutation D($id: String!) { volumeDelete(volumeId: $id) }", "variables": {"id": "v-1"}, "operationName": "D"}"#,
        // The same request as a batch of one.
        r#"[{"query": "mutation D($id: String!) { volumeDelete(volumeId: $id) }", "variables": {"id": "v-1"}}]"#,
    ] {
        assert_ne!(base, d(other), "{other}");
    }
}

#[test]
fn mcp_digests_ignore_the_request_id() {
    let e = engine();
    let d = |body: &str| {
        digest(
            &e,
            "POST",
            "/mcp",
            &[JSON, ("accept", "application/json, text/event-stream")],
            body,
        )
    };
    let base = d(
        r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_doc", "arguments": {"id": 4}}}"#,
    );
    assert_eq!(
        base,
        d(
            r#"{"method":"tools/call","params":{"arguments":{"id":4},"name":"delete_doc"},"jsonrpc":"2.0","id":"next-7"}"#
        )
    );
    assert_eq!(
        base,
        d(
            r#"{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_doc", "arguments": {"id": 4}, "_meta": {"progressToken": 2}}}"#
        )
    );
    for other in [
        r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_doc", "arguments": {"id": 5}}}"#,
        r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_doc", "arguments": {"id": 4, "cascade": true}}}"#,
        r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "purge_doc", "arguments": {"id": 4}}}"#,
    ] {
        assert_ne!(base, d(other), "{other}");
    }
}
