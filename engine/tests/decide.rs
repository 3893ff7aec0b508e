//! The whole pipeline, table-driven: headers (and body) in, verdict out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::time::parse_rfc3339;
use scopegate_engine::{Decision, Engine, Secrets, Step, Verdict};

const NOW: &str = "2026-11-24T18:00:00Z";

fn bundle() -> String {
    let sha = |k: &str| hex(&sha256(k.as_bytes()));
    format!(
        r#"{{
      "bundle": "decide", "version": 1, "environment": "production",
      "services": [
        {{"name": "rentals", "protocol": "rest", "match": {{"path_prefix": "/rest"}},
          "rest": {{"style": "postgrest"}}, "limits": {{"max_body_bytes": 64}},
          "upstream_auth": {{"header": "authorization", "prefix": "Bearer ", "env": "TOKEN"}}}},
        {{"name": "df", "protocol": "rest", "match": {{"hosts": ["*.df.test"], "path_prefix": "/api/v2/rentals", "methods": ["GET", "DELETE"]}},
          "rest": {{"style": "dreamfactory"}}}},
        {{"name": "railway", "protocol": "rest", "match": {{"path_prefix": "/v2"}},
          "rest": {{"style": "routes", "routes": [
            {{"methods": ["POST"], "path": "/volumes/{{volumeId}}/delete", "resource": "volumeDelete", "action": "delete"}},
            {{"methods": ["POST"], "path": "/domains/{{domain}}", "resource": "customDomainCreate", "action": "create"}}]}}}}
      ],
      "roles": [
        {{"name": "reader", "allow": [
          {{"service": "rentals", "resources": ["reservations", "vehicles"], "actions": ["read"]}},
          {{"service": "df", "resources": ["reservations"], "actions": ["read", "delete"]}}]}},
        {{"name": "writer", "allow": [
          {{"service": "rentals", "resources": ["reservations"], "actions": ["read", "update"], "records": {{"tenant_id": ["acme"]}}}},
          {{"service": "rentals", "resources": ["reservations"], "actions": ["create", "delete"], "friction": "approval"}},
          {{"service": "rentals", "resources": ["vehicles"], "actions": ["drop"]}}]}},
        {{"name": "domains", "allow": [
          {{"service": "railway", "resources": ["customDomain*"], "actions": ["read", "create", "update", "delete"]}}]}},
        {{"name": "staging-ops", "allow": [
          {{"service": "railway", "resources": ["volume*"], "actions": ["delete"], "records": {{"volumeId": ["vol-staging-1"]}}}}]}}
      ],
      "keys": [
        {{"id": "reader-1", "sha256": "{}", "role": "reader", "environments": ["production"], "expires": "2027-01-01T00:00:00Z"}},
        {{"id": "writer-1", "sha256": "{}", "role": "writer"}},
        {{"id": "domains-1", "sha256": "{}", "role": "domains"}},
        {{"id": "expired-1", "sha256": "{}", "role": "reader", "expires": "{NOW}"}},
        {{"id": "staging-1", "sha256": "{}", "role": "reader", "environments": ["staging"]}},
        {{"id": "ops-1", "sha256": "{}", "role": "staging-ops"}}
      ],
      "guards": [
        {{"services": ["*"], "resources": ["*backup*"], "actions": ["destructive"], "effect": "deny"}},
        {{"services": ["*"], "actions": ["drop", "admin"], "effect": "approval"}}
      ],
      "public": [{{"service": "rentals", "methods": ["GET"], "path": "/rest/health"}}]
    }}"#,
        sha("reader-key"),
        sha("writer-key"),
        sha("domains-key"),
        sha("expired-key"),
        sha("staging-key"),
        sha("ops-key"),
    )
}

fn engine() -> Engine {
    let env = |n: &str| match n {
        "TOKEN" => Some("upstream-secret".to_string()),
        "SCOPEGATE_APPROVAL_KEY" => Some("approval-key-for-tests-0123456789abcdef".to_string()),
        _ => None,
    };
    Engine::from_json(bundle().as_bytes(), &Secrets::Env(&env)).unwrap()
}

fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gw.test".to_vec()),
    ];
    for (n, v) in extra {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    h
}

fn now() -> i64 {
    parse_rfc3339(NOW).unwrap()
}

fn decide(method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> Verdict {
    engine().decide(headers(method, path, extra), body, now())
}

#[test]
fn decisions_table() {
    let reader = ("authorization", "Bearer reader-key");
    let writer = ("x-api-key", "writer-key");
    let domains = ("authorization", "bearer  domains-key ");
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a [u8],
        Decision,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        // Authentication.
        (
            "GET",
            "/rest/vehicles",
            vec![],
            b"",
            Decision::Unauthenticated,
            "no credential",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![("authorization", "Bearer nope")],
            b"",
            Decision::Unauthenticated,
            "unknown key",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![("authorization", "Bearer")],
            b"",
            Decision::Unauthenticated,
            "no credential",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![("x-api-key", " ")],
            b"",
            Decision::Unauthenticated,
            "empty x-api-key",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![("x-api-key", "expired-key")],
            b"",
            Decision::Unauthenticated,
            "has expired",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![("x-api-key", "staging-key")],
            b"",
            Decision::Unauthenticated,
            "environment `production`",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![reader, writer],
            b"",
            Decision::Unauthenticated,
            "two different credentials",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![reader, ("x-api-key", "reader-key")],
            b"",
            Decision::Allow,
            "allowed by grant roles[0].allow[0]",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![reader, reader],
            b"",
            Decision::Unauthenticated,
            "repeated authorization",
        ),
        (
            "GET",
            "/rest/health",
            vec![],
            b"",
            Decision::Allow,
            "public route",
        ),
        (
            "POST",
            "/rest/health",
            vec![],
            b"",
            Decision::Unauthenticated,
            "no credential",
        ),
        // Issue 18, class 3: a query string or a body is an input the upstream reads; a
        // request carrying one is not public (decided like any other, with a key).
        (
            "GET",
            "/rest/health?select=secret",
            vec![],
            b"",
            Decision::Unauthenticated,
            "no credential",
        ),
        (
            "GET",
            "/rest/health",
            vec![],
            b"{\"probe\": true}",
            Decision::Unauthenticated,
            "no credential",
        ),
        // Method overrides are refused everywhere, public routes included.
        (
            "GET",
            "/rest/health?_method=DELETE",
            vec![],
            b"",
            Decision::Unauthenticated,
            "no credential",
        ),
        (
            "GET",
            "/rest/health",
            vec![("x-http-method-override", "DELETE")],
            b"",
            Decision::Unauthenticated,
            "no credential",
        ),
        (
            "POST",
            "/v2/domains/example.com?_method=DELETE",
            vec![domains],
            b"",
            Decision::Deny,
            "method override parameter `_method`",
        ),
        // Routing.
        (
            "GET",
            "/nowhere",
            vec![reader],
            b"",
            Decision::Deny,
            "no service matches GET /nowhere",
        ),
        (
            "GET",
            "/restx/vehicles",
            vec![reader],
            b"",
            Decision::Deny,
            "no service matches",
        ),
        (
            "GET",
            "/api/v2/rentals/_table/reservations",
            vec![reader],
            b"",
            Decision::Deny,
            "no service matches",
        ),
        (
            "GET",
            "/api/v2/rentals/_table/reservations",
            vec![reader, (":authority", "eu.df.test:443")],
            b"",
            Decision::Deny,
            "repeated :authority",
        ),
        // Decoding and scope.
        (
            "GET",
            "/rest/reservations?id=eq.r-1",
            vec![reader],
            b"",
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        (
            "GET",
            "/rest/payments",
            vec![reader],
            b"",
            Decision::Deny,
            "grants no read on `payments`",
        ),
        (
            "GET",
            "/rest/reservations?select=*,payments(*)",
            vec![reader],
            b"",
            Decision::Deny,
            "grants no read on `payments`",
        ),
        (
            "GET",
            "/rest/reservations",
            vec![reader, ("accept-profile", "private")],
            b"",
            Decision::Deny,
            "`private.reservations`",
        ),
        (
            "DELETE",
            "/rest/reservations?id=eq.r-1",
            vec![reader],
            b"",
            Decision::Deny,
            "grants no delete",
        ),
        (
            "GET",
            "/rest/../rest/payments",
            vec![reader],
            b"",
            Decision::Deny,
            "undecodable: path holds a dot segment",
        ),
        (
            "GET",
            "/rest/vehicles",
            vec![reader, ("x-http-method-override", "DELETE")],
            b"",
            Decision::Deny,
            "method override",
        ),
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme",
            vec![writer],
            b"{}",
            Decision::Allow,
            "roles[1].allow[0]",
        ),
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.globex",
            vec![writer],
            b"{}",
            Decision::Deny,
            "proven records",
        ),
        (
            "PATCH",
            "/rest/reservations",
            vec![writer],
            b"{}",
            Decision::Deny,
            "scope all",
        ),
        // Friction and guards.
        (
            "DELETE",
            "/rest/reservations?id=eq.r-1",
            vec![writer],
            b"",
            Decision::Challenge,
            "approval required by grant roles[1].allow[1]",
        ),
        (
            "DELETE",
            "/rest/vehicles_backup?id=eq.1",
            vec![writer],
            b"",
            Decision::Deny,
            "grants no delete",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_schema/vehicles",
            vec![writer],
            b"",
            Decision::Deny,
            "no service matches",
        ),
        // The incident, as a REST route: the domains key cannot delete a volume.
        (
            "POST",
            "/v2/domains/example.com",
            vec![domains, ("content-type", "application/json")],
            b"{}",
            Decision::Allow,
            "roles[2].allow[0]",
        ),
        // Issue 18, class 3: a route's body member named like its parameter may be merged
        // over the path's value by the framework (Rails, Laravel): refused, as is a body
        // whose names cannot be read.
        (
            "POST",
            "/v2/domains/example.com",
            vec![domains, ("content-type", "application/json")],
            br#"{"Domain": "victim.example"}"#,
            Decision::Deny,
            "merge it over",
        ),
        (
            "POST",
            "/v2/domains/example.com",
            vec![
                domains,
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            b"a=1&domain[]=victim.example",
            Decision::Deny,
            "merge it over",
        ),
        (
            "POST",
            "/v2/domains/example.com",
            vec![domains, ("content-type", "application/json")],
            br#"{"target_port": 8443}"#,
            Decision::Allow,
            "roles[2].allow[0]",
        ),
        (
            "POST",
            "/v2/domains/example.com",
            vec![domains, ("content-type", "multipart/form-data; boundary=x")],
            b"--x--",
            Decision::Deny,
            "names must be read",
        ),
        (
            "POST",
            "/v2/domains/example.com",
            vec![domains],
            b"{}",
            Decision::Deny,
            "without content-type",
        ),
        (
            "POST",
            "/v2/volumes/vol-prod-9/delete",
            vec![domains],
            b"",
            Decision::Deny,
            "grants no delete on `volumeDelete`",
        ),
        (
            "POST",
            "/v2/volumes/vol-staging-1/delete",
            vec![("x-api-key", "ops-key")],
            b"",
            Decision::Allow,
            "roles[3].allow[0]",
        ),
        (
            "POST",
            "/v2/volumes/vol-prod-9/delete",
            vec![("x-api-key", "ops-key")],
            b"",
            Decision::Deny,
            "proven records (volumeId)",
        ),
        // Limits.
        (
            "POST",
            "/rest/reservations",
            vec![writer],
            &[b'x'; 65],
            Decision::TooLarge,
            "limit of 64 bytes",
        ),
    ];
    let e = engine();
    for (method, path, extra, body, decision, fragment) in cases {
        let v = e.decide(headers(method, path, &extra), body, now());
        assert_eq!(v.decision(), decision, "{method} {path}: {}", v.reason());
        let text = format!("{} {}", v.reason(), v.rule.clone().unwrap_or_default());
        assert!(
            text.contains(fragment),
            "{method} {path}: `{text}` lacks `{fragment}`"
        );
        if decision != Decision::Allow {
            let body: serde_json::Value = serde_json::from_str(&v.response_body()).unwrap();
            assert_eq!(body["decision"], decision.as_str());
            assert!(body["hint"].is_string(), "{method} {path}: no hint");
            assert!(v.forward().is_none());
        }
    }
}

#[test]
fn dreamfactory_host_match() {
    let v = engine().decide(
        vec![
            (":method".into(), b"DELETE".to_vec()),
            (
                ":path".into(),
                b"/api/v2/rentals/_table/reservations/r-1".to_vec(),
            ),
            (":authority".into(), b"EU.df.test:8443".to_vec()),
            ("authorization".into(), b"Bearer reader-key".to_vec()),
        ],
        b"",
        now(),
    );
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
    assert_eq!(v.subject.service.as_deref(), Some("df"));
    let ops = &v.operations;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].records["id"], ["r-1"]);
}

#[test]
fn allow_forward_strips_credentials_and_injects_upstream_auth() {
    let v = decide(
        "GET",
        "/rest/vehicles",
        &[
            ("authorization", "Bearer reader-key"),
            ("x-scopegate-role", "admin"),
        ],
        b"",
    );
    let f = v.forward().unwrap();
    // Every credential and scopegate header the request carried is removed (those it did
    // not carry need no host call); scopegate's own are then set.
    assert_eq!(f.remove, ["authorization", "x-scopegate-role"]);
    assert_eq!(
        f.set,
        [
            ("x-scopegate-service".to_string(), "rentals".to_string()),
            ("x-scopegate-key".to_string(), "reader-1".to_string()),
            ("x-scopegate-role".to_string(), "reader".to_string()),
            (
                "authorization".to_string(),
                "Bearer upstream-secret".to_string()
            ),
        ]
    );
    assert!(v.digest.is_none(), "only challenges carry the digest");
}

#[test]
fn challenges_wait_for_the_body_and_bind_it() {
    let e = engine();
    let h = || headers("POST", "/rest/reservations", &[("x-api-key", "writer-key")]);
    // Header-only decisions never wait: a deny is immediate even with a body coming.
    match e.begin(
        headers("DELETE", "/rest/payments", &[("x-api-key", "writer-key")]),
        true,
        now(),
    ) {
        Step::Decided(v) => assert_eq!(v.decision(), Decision::Deny),
        Step::NeedBody(_) => panic!("a deny must not wait for the body"),
    }
    let Step::NeedBody(p) = e.begin(h(), true, now()) else {
        panic!("a challenge is bound to the body, so it must wait for it");
    };
    assert_eq!(p.max_body_bytes(), 64);
    let a = e.finish(p, b"{\"id\":1}");
    assert_eq!(a.decision(), Decision::Challenge);
    let Step::NeedBody(p) = e.begin(h(), true, now()) else {
        panic!()
    };
    let b = e.finish(p, b"{\"id\":2}");
    assert_ne!(a.digest, b.digest);
    let again = e.decide(h(), b"{\"id\":1}", now());
    assert_eq!(again.digest, a.digest);
    let body: serde_json::Value = serde_json::from_str(&a.response_body()).unwrap();
    assert_eq!(body["challenge"], a.digest.clone().unwrap());
    assert_eq!(body["friction"], "approval");
    assert_eq!(body["rule"], "roles[1].allow[1]");
    assert_eq!(body["operations"][0]["action"], "create");
    let Step::NeedBody(p) = e.begin(h(), true, now()) else {
        panic!()
    };
    assert_eq!(e.too_large(p).status(), Some(413));
}

#[test]
fn guard_adds_approval_to_a_granted_drop() {
    let v = decide(
        "DELETE",
        "/api/v2/rentals/_schema/vehicles",
        &[("x-api-key", "writer-key"), (":authority", "x.df.test")],
        b"",
    );
    // The df service does not let writer drop anything: scope before friction.
    assert_eq!(v.decision(), Decision::Deny);
    let e = Engine::from_json(
        bundle()
            .replace(r#""resources": ["vehicles"], "actions": ["drop"]"#, r#""resources": ["vehicles"], "actions": ["drop"]}, {"service": "df", "resources": ["vehicles"], "actions": ["drop"]"#)
            .as_bytes(),
        &Secrets::Unchecked,
    )
    .unwrap();
    let mut h = headers(
        "DELETE",
        "/api/v2/rentals/_schema/vehicles",
        &[("x-api-key", "writer-key")],
    );
    h[2].1 = b"x.df.test".to_vec();
    let v = e.decide(h, b"", now());
    assert_eq!(v.decision(), Decision::Challenge, "{}", v.reason());
    assert_eq!(v.rule.as_deref(), Some("guards[1]"));
    assert_eq!(v.operations[0].action.as_str(), "drop");
}

#[test]
fn malformed_heads_are_denied() {
    let e = engine();
    let v = e.decide(
        vec![(":path".into(), b"/rest/vehicles".to_vec())],
        b"",
        now(),
    );
    assert_eq!(v.decision(), Decision::Deny);
    assert!(v.reason().contains("missing :method"));
    let v = e.decide(
        vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), b"/rest/vehicles".to_vec()),
            (":path".into(), b"/rest/payments".to_vec()),
        ],
        b"",
        now(),
    );
    assert_eq!(v.decision(), Decision::Deny);
    assert!(v.reason().contains("repeated :path"));
}

#[test]
fn headers_that_matter_may_not_repeat() {
    let e = engine();
    let reader = ("authorization", "Bearer reader-key");
    let once = e.decide(
        headers(
            "GET",
            "/rest/vehicles",
            &[reader, ("x-scopegate-confirm", "x")],
        ),
        b"",
        now(),
    );
    assert_eq!(once.decision(), Decision::Allow, "{}", once.reason());
    for name in [
        "x-scopegate-confirm",
        "x-scopegate-approval",
        "x-scopegate-role",
        "content-type",
        "content-encoding",
        "accept-profile",
        "mcp-method",
    ] {
        let v = e.decide(
            headers("GET", "/rest/vehicles", &[reader, (name, "a"), (name, "a")]),
            b"",
            now(),
        );
        assert_eq!(v.decision(), Decision::Deny, "{name}: {}", v.reason());
        assert!(
            v.reason().contains(&format!("repeated {name} header")),
            "{}",
            v.reason()
        );
    }
}

#[test]
fn sql_sources() {
    let bundle = format!(
        r#"{{"bundle": "s", "version": 1, "environment": "production",
        "services": [
          {{"name": "neon", "protocol": "sql", "match": {{"path_prefix": "/sql"}},
            "sql": {{"dialect": "postgres", "statement": {{"json_pointer": "/sql"}}, "params": {{"json_pointer": "/params"}}}}}},
          {{"name": "hasura", "protocol": "sql", "match": {{"path_prefix": "/v2/query"}},
            "sql": {{"dialect": "postgres", "statement": {{"json_pointer": "/args/sql"}}, "body_members": ["/args/read_only"], "body_values": {{"/type": "run_sql"}}}}}},
          {{"name": "duck", "protocol": "sql", "match": {{"path_prefix": "/duck"}},
            "sql": {{"dialect": "generic", "default_schema": "main", "statement": {{"raw": true}}}}}},
          {{"name": "ch", "protocol": "sql", "match": {{"path_prefix": "/ch"}},
            "sql": {{"dialect": "generic", "default_schema": "default", "statement": {{"query_param": "query"}}}}}}],
        "roles": [{{"name": "r", "allow": [
          {{"service": "neon", "resources": ["public.reservations"], "actions": ["read", "update"], "records": {{"tenant_id": ["acme"]}}}},
          {{"service": "hasura", "resources": ["public.*"], "actions": ["read"]}},
          {{"service": "duck", "resources": ["main.*"], "actions": ["read"]}},
          {{"service": "ch", "resources": ["default.*"], "actions": ["read"]}}]}}],
        "keys": [{{"id": "k", "sha256": "{}", "role": "r"}}]}}"#,
        hex(&sha256(b"key"))
    );
    let e = Engine::from_json(bundle.as_bytes(), &Secrets::Unchecked).unwrap();
    let auth = ("authorization", "Bearer key");
    let cases: Vec<(&str, &str, &[u8], Decision, &str)> = vec![
        ("POST", "/sql", br#"{"sql": "SELECT * FROM reservations WHERE tenant_id = $1", "params": ["acme"]}"#, Decision::Allow, ""),
        ("POST", "/sql", br#"{"sql": "UPDATE reservations SET customer = 'x' WHERE tenant_id = $1", "params": ["globex"]}"#, Decision::Deny, "proven records"),
        ("POST", "/sql", br#"{"sql": "SELECT * FROM reservations WHERE tenant_id = $1", "params": "acme"}"#, Decision::Deny, "not an array"),
        ("POST", "/sql", br#"{"query": "SELECT 1"}"#, Decision::Deny, "unexpected member `query`"),
        ("POST", "/sql", br#"{"params": []}"#, Decision::Deny, "no SQL string at `/sql`"),
        ("POST", "/sql", br#"{"sql": 42}"#, Decision::Deny, "no SQL string"),
        ("POST", "/sql", b"SELECT 1", Decision::Deny, "not strict JSON"),
        ("POST", "/sql", b"[]", Decision::Deny, "not a JSON object"),
        ("POST", "/sql", b"", Decision::Deny, "not strict JSON"),
        ("POST", "/v2/query", br#"{"type": "run_sql", "args": {"sql": "SELECT * FROM vehicles"}}"#, Decision::Allow, ""),
        ("POST", "/v2/query", br#"{"type": "run_sql", "args": {"sql": "DROP TABLE vehicles"}}"#, Decision::Deny, "grants no drop"),
        ("POST", "/duck", b"SELECT * FROM trips", Decision::Allow, ""),
        ("POST", "/duck", b"SELECT * FROM trips; DELETE FROM trips", Decision::Deny, "grants no delete"),
        ("POST", "/duck", &[0xff, 0xfe], Decision::Deny, "not UTF-8"),
        ("GET", "/ch?query=SELECT%20*%20FROM%20hits", b"", Decision::Allow, ""),
        ("POST", "/ch?query=SELECT%20*%20FROM%20hits", b"; DROP TABLE hits", Decision::Deny, "ambiguous"),
        ("GET", "/ch?query=SELECT%201&query=DROP%20TABLE%20hits", b"", Decision::Deny, "repeated"),
        ("GET", "/ch", b"", Decision::Deny, "no `query` query parameter"),
        // One reading of the request only (the adversarial suite has more).
        ("POST", "/sql?sql=DROP%20TABLE%20payments", br#"{"sql": "SELECT * FROM reservations WHERE tenant_id = 'acme'"}"#, Decision::Deny, "beside a SQL body"),
        ("GET", "/sql", br#"{"sql": "SELECT * FROM reservations WHERE tenant_id = 'acme'"}"#, Decision::Deny, "POSTed (not GET)"),
        ("POST", "/sql", br#"{"sql": "SELECT * FROM reservations WHERE tenant_id = 'acme'", "query": "DROP TABLE payments"}"#, Decision::Deny, "unexpected member `query`"),
        ("POST", "/v2/query", br#"{"type": "run_sql", "args": {"sql": "SELECT * FROM vehicles"}, "sql": "DROP TABLE x"}"#, Decision::Deny, "unexpected member `sql`"),
        ("POST", "/duck?q=1", b"SELECT * FROM trips", Decision::Deny, "beside a SQL body"),
        // Issue 18, class 3: every parameter source decided or refused.
        ("POST", "/v2/query", br#"{"type": "run_sql", "args": {"sql": "SELECT * FROM vehicles", "source": "other_db"}}"#, Decision::Deny, "unexpected member `/args/source`"),
        ("POST", "/v2/query", br#"{"type": "citus_run_sql", "args": {"sql": "SELECT * FROM vehicles"}}"#, Decision::Deny, "`/type` is not \"run_sql\""),
        ("POST", "/v2/query", br#"{"args": {"sql": "SELECT * FROM vehicles"}}"#, Decision::Deny, "`/type` is not"),
        ("POST", "/v2/query", br#"{"type": "run_sql", "args": {"sql": "SELECT * FROM vehicles", "read_only": true}}"#, Decision::Allow, ""),
        ("GET", "/ch?query=SELECT%20*%20FROM%20hits&database=system", b"", Decision::Deny, "query parameter `database` beside the SQL"),
        ("GET", "/ch?query=SELECT%20*%20FROM%20hits&readonly=0", b"", Decision::Deny, "query parameter `readonly`"),
    ];
    for (method, path, body, decision, fragment) in cases {
        let json = path.starts_with("/sql") || path.starts_with("/v2");
        let mut extra = vec![auth];
        if json && method == "POST" {
            extra.push(("content-type", "application/json"));
        }
        let v = e.decide(headers(method, path, &extra), body, now());
        assert_eq!(v.decision(), decision, "{method} {path}: {}", v.reason());
        assert!(
            v.reason().contains(fragment),
            "{method} {path}: `{}` lacks `{fragment}`",
            v.reason()
        );
    }
    let select = br#"{"sql": "SELECT * FROM reservations WHERE tenant_id = 'acme'"}"#;
    for (ct, decision, fragment) in [
        (vec!["application/json; charset=utf-8"], Decision::Allow, ""),
        (vec![], Decision::Deny, "without content-type"),
        (
            vec!["text/plain"],
            Decision::Deny,
            "POSTed as application/json",
        ),
        (
            vec!["application/x-www-form-urlencoded"],
            Decision::Deny,
            "POSTed as application/json",
        ),
        (
            vec!["application/json", "text/plain"],
            Decision::Deny,
            "repeated content-type",
        ),
    ] {
        let mut h = vec![auth];
        h.extend(ct.iter().map(|c| ("content-type", *c)));
        let v = e.decide(headers("POST", "/sql", &h), select, now());
        assert_eq!(v.decision(), decision, "{ct:?}: {}", v.reason());
        assert!(v.reason().contains(fragment), "{ct:?}: {}", v.reason());
    }
    // ClickHouse reads the database and user from its headers: refused, not guessed.
    let v = e.decide(
        headers(
            "GET",
            "/ch?query=SELECT%20*%20FROM%20hits",
            &[auth, ("x-clickhouse-database", "system")],
        ),
        b"",
        now(),
    );
    assert_eq!(v.decision(), Decision::Deny, "{}", v.reason());
    assert!(
        v.reason().contains("x-clickhouse-database"),
        "{}",
        v.reason()
    );
    for (ct, decision) in [
        ("text/plain", Decision::Allow),
        ("application/sql", Decision::Allow),
        ("application/x-www-form-urlencoded", Decision::Deny),
        ("multipart/form-data; boundary=x", Decision::Deny),
    ] {
        let v = e.decide(
            headers("POST", "/duck", &[auth, ("content-type", ct)]),
            b"SELECT * FROM trips",
            now(),
        );
        assert_eq!(v.decision(), decision, "{ct}: {}", v.reason());
    }
    // A body the upstream is told to decode first is not decided on as sent.
    for (encoding, decision) in [
        ("gzip", Decision::Deny),
        ("identity, gzip", Decision::Deny),
        ("br", Decision::Deny),
        ("identity", Decision::Allow),
    ] {
        let h = [
            auth,
            ("content-type", "application/json"),
            ("content-encoding", encoding),
        ];
        let v = e.decide(headers("POST", "/sql", &h), select, now());
        assert_eq!(v.decision(), decision, "{encoding}: {}", v.reason());
        if decision == Decision::Deny {
            assert!(v.reason().contains("content-encoding"), "{}", v.reason());
        }
    }
}

#[test]
fn json_depth_and_sql_recursion_are_bundle_limits() {
    let bundle = format!(
        r#"{{"bundle": "s", "version": 1, "environment": "production",
        "services": [
          {{"name": "neon", "protocol": "sql", "match": {{"path_prefix": "/sql"}}, "limits": {{"max_json_depth": 4}},
            "sql": {{"dialect": "postgres", "statement": {{"json_pointer": "/sql"}}, "params": {{"json_pointer": "/params"}}, "max_recursion": 10}}}}],
        "roles": [{{"name": "r", "allow": [{{"service": "neon", "resources": ["public.*"], "actions": ["read"]}}]}}],
        "keys": [{{"id": "k", "sha256": "{}", "role": "r"}}]}}"#,
        hex(&sha256(b"key"))
    );
    let e = Engine::from_json(bundle.as_bytes(), &Secrets::Unchecked).unwrap();
    let h = || {
        headers(
            "POST",
            "/sql",
            &[
                ("authorization", "Bearer key"),
                ("content-type", "application/json"),
            ],
        )
    };
    let ok = br#"{"sql": "SELECT * FROM t", "params": [[[1]]]}"#;
    assert_eq!(e.decide(h(), ok, now()).decision(), Decision::Allow);
    let deep = br#"{"sql": "SELECT * FROM t", "params": [[[[1]]]]}"#;
    let v = e.decide(h(), deep, now());
    assert_eq!(v.decision(), Decision::Deny);
    assert!(v.reason().contains("max_json_depth of 4"), "{}", v.reason());
    let nested = format!(
        r#"{{"sql": "SELECT {}1{} FROM t"}}"#,
        "(".repeat(12),
        ")".repeat(12)
    );
    let v = e.decide(h(), nested.as_bytes(), now());
    assert_eq!(v.decision(), Decision::Deny);
    assert!(v.reason().contains("max_recursion of 10"), "{}", v.reason());
    let b = bundle.replace(
        r#""limits": {"max_json_depth": 4}"#,
        r#""limits": {"max_json_depth": 129}"#,
    );
    let err = format!(
        "{:?}",
        Engine::from_json(b.as_bytes(), &Secrets::Unchecked).err()
    );
    assert!(err.contains("max_json_depth"), "{err}");
    let b = bundle.replace(r#""max_recursion": 10"#, r#""max_recursion": 51"#);
    let err = format!(
        "{:?}",
        Engine::from_json(b.as_bytes(), &Secrets::Unchecked).err()
    );
    assert!(err.contains("max_recursion"), "{err}");
}

#[test]
fn an_undecodable_request_says_what_kind_of_problem_it_was() {
    let reader = ("authorization", "Bearer reader-key");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        ("/rest/../rest/payments", vec![reader], "ambiguous"),
        (
            "/rest/vehicles",
            vec![
                reader,
                ("accept-profile", "public"),
                ("accept-profile", "api"),
            ],
            "ambiguous",
        ),
        ("/rest/vehicles?id=zz.1", vec![reader], "unmodelled"),
        ("/rest/vehicles?id=in.(1", vec![reader], "malformed"),
    ];
    for (path, extra, kind) in cases {
        let v = decide("GET", path, &extra, b"");
        let body: serde_json::Value = serde_json::from_str(&v.response_body()).unwrap();
        assert_eq!(body["decision"], "deny", "{path}: {body}");
        assert_eq!(body["undecodable"], kind, "{path}: {body}");
    }
    // Other refusals carry no such member.
    let v = decide("DELETE", "/rest/reservations?id=eq.r-1", &[reader], b"");
    let body: serde_json::Value = serde_json::from_str(&v.response_body()).unwrap();
    assert!(body.get("undecodable").is_none(), "{body}");
}

/// Credentials an upstream style accepts never travel with the agent's request: Supabase's
/// `apikey`, Hasura's admin secret and session variables, DreamFactory's session token,
/// Railway's project token, cookies — whichever header carries the agent's scopegate key.
#[test]
fn upstream_credential_headers_are_stripped_unless_kept() {
    let sent = [
        ("x-api-key", "reader-key"),
        ("apikey", "supabase-service-role-jwt"),
        ("cookie", "sb-access-token=eyJ"),
        ("x-hasura-admin-secret", "hasura"),
        ("x-hasura-role", "admin"),
        ("x-hasura-user-id", "1"),
        ("x-dreamfactory-session-token", "df"),
        ("project-access-token", "railway"),
        ("proxy-authorization", "Basic eA=="),
        // `_` for `-`: what PHP and WSGI upstreams read as the dashed header.
        ("x_hasura_admin_secret", "hasura"),
        ("x_scopegate_role", "admin"),
        ("x_dreamfactory_api_key", "df"),
        ("accept", "application/json"),
    ];
    let v = decide("GET", "/rest/reservations", &sent, b"");
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
    let f = v.forward().unwrap();
    for (h, _) in sent.iter().filter(|(h, _)| *h != "accept") {
        assert!(
            f.remove.iter().any(|r| r == h),
            "{h} not removed: {:?}",
            f.remove
        );
    }
    assert!(!f.remove.iter().any(|r| r == "accept"));
    // An upstream that needs cookies keeps them, and only them; a service cannot keep the
    // agent's key or scopegate's headers, nor a header scopegate does not strip.
    let kept = bundle().replacen(
        r#""rest": {"style": "postgrest"}, "limits""#,
        r#""keep_headers": ["cookie"], "rest": {"style": "postgrest"}, "limits""#,
        1,
    );
    let env = |n: &str| match n {
        "TOKEN" => Some("upstream-secret".to_string()),
        "SCOPEGATE_APPROVAL_KEY" => Some("approval-key-for-tests-0123456789abcdef".to_string()),
        _ => None,
    };
    let e = Engine::from_json(kept.as_bytes(), &Secrets::Env(&env)).unwrap();
    let v = e.decide(headers("GET", "/rest/reservations", &sent), b"", now());
    let f = v.forward().unwrap();
    assert!(!f.remove.iter().any(|r| r == "cookie"));
    assert!(f.remove.iter().any(|r| r == "apikey"));
    for (keep, says) in [
        ("x-api-key", "carries the agent's scopegate key"),
        ("x-scopegate-role", "scopegate's own"),
        ("accept", "not a header scopegate strips"),
    ] {
        let b = bundle().replacen(
            r#""rest": {"style": "postgrest"}, "limits""#,
            &format!(r#""keep_headers": ["{keep}"], "rest": {{"style": "postgrest"}}, "limits""#),
            1,
        );
        let err = Engine::from_json(b.as_bytes(), &Secrets::Env(&env)).unwrap_err();
        assert!(err.to_string().contains(says), "{keep}: {err}");
    }
}
