//! REST writes checked on their post-image: when a grant of the caller's role checks
//! record values, a write's body is read (what a create makes, what an update assigns);
//! otherwise the request is decided on its head, as before.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::{Decision, Engine, Secrets, Step};

const NOW: i64 = 1_790_000_000_000;

fn bundle() -> String {
    let sha = |k: &str| hex(&sha256(k.as_bytes()));
    format!(
        r#"{{
      "bundle": "rest-writes", "version": 1, "environment": "production",
      "services": [
        {{"name": "rentals", "protocol": "rest", "match": {{"path_prefix": "/rest"}},
          "rest": {{"style": "postgrest"}}, "limits": {{"max_body_bytes": 256, "max_json_depth": 4}}}},
        {{"name": "df", "protocol": "rest", "match": {{"path_prefix": "/api/v2/rentals"}},
          "rest": {{"style": "dreamfactory"}}}}
      ],
      "roles": [
        {{"name": "tenant", "allow": [
          {{"service": "rentals", "resources": ["reservations"], "actions": ["read", "create", "update"], "records": {{"tenant_id": ["acme"]}}}},
          {{"service": "rentals", "resources": ["notes"], "actions": ["update"], "records": {{"tenant_id": ["acme"]}}, "friction": "approval"}},
          {{"service": "df", "resources": ["reservations"], "actions": ["read", "create", "update"], "records": {{"tenant_id": ["acme"]}}}}]}},
        {{"name": "plain", "allow": [
          {{"service": "rentals", "resources": ["reservations"], "actions": ["read", "create", "update"]}},
          {{"service": "df", "resources": ["reservations"], "actions": ["create", "update"], "unbounded": true}}]}}
      ],
      "keys": [
        {{"id": "tenant-1", "sha256": "{}", "role": "tenant"}},
        {{"id": "plain-1", "sha256": "{}", "role": "plain"}}
      ]
    }}"#,
        sha("tenant-key"),
        sha("plain-key"),
    )
}

fn engine() -> Engine {
    let env = |n: &str| match n {
        "SCOPEGATE_APPROVAL_KEY" => Some("approval-key-for-tests-0123456789abcdef".to_string()),
        _ => None,
    };
    Engine::from_json(bundle().as_bytes(), &Secrets::Env(&env)).unwrap()
}

fn headers(method: &str, path: &str, key: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gw.test".to_vec()),
        ("x-api-key".to_string(), key.as_bytes().to_vec()),
    ];
    for (n, v) in extra {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    h
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn writes_are_checked_on_what_they_write() {
    let acme = "/rest/reservations?tenant_id=eq.acme";
    let merge = ("prefer", "resolution=merge-duplicates");
    let large = format!(r#"{{"tenant_id":"acme","x":"{}"}}"#, "y".repeat(256));
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a str,
        Decision,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        // PATCH: the filter proves acme's rows, the body says what they become.
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"{"tenant_id":"globex"}"#,
            Decision::Deny,
            "assigns `tenant_id` a value the grant does not allow",
        ),
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"{"tenant_id":"acme","customer":"Ada"}"#,
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"{"customer":"Ada"}"#,
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        // PostgREST reads a body without content-type as JSON, and so does the decoder.
        (
            "PATCH",
            acme,
            vec![],
            r#"{"customer":"Ada"}"#,
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"{"tenant_id":null}"#,
            Decision::Deny,
            "cannot be known",
        ),
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"[{"customer":"Ada"},{"tenant_id":"globex"}]"#,
            Decision::Deny,
            "assigns `tenant_id`",
        ),
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"{"tenant_id":{"x":"acme"}}"#,
            Decision::Deny,
            "assigns `tenant_id`",
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.r-1",
            vec![JSON],
            r#"{"tenant_id":"acme"}"#,
            Decision::Deny,
            "proven records",
        ),
        // `columns=` writes the listed keys only: a listed key the body lacks is NULL/default.
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme&columns=customer",
            vec![JSON],
            r#"{"customer":"Ada","tenant_id":"globex"}"#,
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme&columns=customer,tenant_id",
            vec![JSON],
            r#"{"customer":"Ada"}"#,
            Decision::Deny,
            "cannot be known",
        ),
        // POST: every row created must be acme's.
        (
            "POST",
            "/rest/reservations",
            vec![JSON],
            r#"[{"id":"r-1","tenant_id":"acme"},{"id":"r-2","tenant_id":"acme"}]"#,
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        (
            "POST",
            "/rest/reservations",
            vec![JSON],
            r#"[{"id":"r-1","tenant_id":"acme"},{"id":"r-2","tenant_id":"globex"}]"#,
            Decision::Deny,
            "proven records",
        ),
        (
            "POST",
            "/rest/reservations",
            vec![JSON],
            r#"{"id":"r-1"}"#,
            Decision::Deny,
            "proven records",
        ),
        (
            "POST",
            "/rest/reservations",
            vec![JSON],
            "[]",
            Decision::Deny,
            "proven records",
        ),
        // PUT: the row must satisfy the filter, and is written with the body's values.
        (
            "PUT",
            "/rest/reservations?id=eq.r-1&tenant_id=eq.acme",
            vec![JSON],
            r#"{"id":"r-1","tenant_id":"acme","customer":"Ada"}"#,
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        (
            "PUT",
            "/rest/reservations?id=eq.r-1&tenant_id=eq.acme",
            vec![JSON],
            r#"{"id":"r-1","tenant_id":"globex"}"#,
            Decision::Deny,
            "proven records",
        ),
        // Upsert: the update half reaches the rows whose conflict key equals the new row's.
        (
            "POST",
            "/rest/reservations?on_conflict=id,tenant_id",
            vec![JSON, merge],
            r#"{"id":"r-1","tenant_id":"acme","customer":"Ada"}"#,
            Decision::Allow,
            "roles[0].allow[0]",
        ),
        (
            "POST",
            "/rest/reservations?on_conflict=id,tenant_id",
            vec![JSON, merge],
            r#"{"id":"r-1","tenant_id":"globex"}"#,
            Decision::Deny,
            "proven records",
        ),
        (
            "POST",
            "/rest/reservations?on_conflict=id",
            vec![JSON, merge],
            r#"{"id":"r-1","tenant_id":"acme"}"#,
            Decision::Deny,
            "update on `reservations` (service rentals) only for proven records",
        ),
        // Bodies the decoder does not model are refused, not ignored.
        (
            "PATCH",
            acme,
            vec![("content-type", "application/x-www-form-urlencoded")],
            "tenant_id=globex",
            Decision::Deny,
            "not decoded",
        ),
        (
            "POST",
            "/rest/reservations",
            vec![("content-type", "text/csv")],
            "id,tenant_id\nr-1,globex",
            Decision::Deny,
            "not decoded",
        ),
        (
            "POST",
            "/rest/reservations",
            vec![JSON],
            "",
            Decision::Deny,
            "no body",
        ),
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"{"tenant_id":"acme","tenant_id":"globex"}"#,
            Decision::Deny,
            "duplicate key",
        ),
        (
            "PATCH",
            acme,
            vec![JSON, ("content-encoding", "gzip")],
            r#"{"customer":"Ada"}"#,
            Decision::Deny,
            "content-encoding",
        ),
        (
            "PATCH",
            acme,
            vec![JSON],
            r#"{"a":[[[[["deep"]]]]]}"#,
            Decision::Deny,
            "max_json_depth of 4",
        ),
        (
            "POST",
            "/rest/reservations",
            vec![JSON],
            &large,
            Decision::TooLarge,
            "limit of 256 bytes",
        ),
        // DreamFactory record bodies.
        (
            "PATCH",
            "/api/v2/rentals/_table/reservations?filter=tenant_id%3D'acme'",
            vec![JSON],
            r#"{"resource":[{"id":1,"tenant_id":"globex"}]}"#,
            Decision::Deny,
            "assigns `tenant_id`",
        ),
        (
            "PATCH",
            "/api/v2/rentals/_table/reservations?filter=tenant_id%3D'acme'",
            vec![JSON],
            r#"{"resource":[{"id":1,"tenant_id":"acme"}]}"#,
            Decision::Allow,
            "roles[0].allow[2]",
        ),
        // DreamFactory matches keys to columns case-insensitively.
        (
            "PATCH",
            "/api/v2/rentals/_table/reservations?filter=tenant_id%3D'acme'",
            vec![JSON],
            r#"[{"TENANT_ID":"globex"}]"#,
            Decision::Deny,
            "assigns `tenant_id`",
        ),
        (
            "PATCH",
            "/api/v2/rentals/_table/reservations",
            vec![JSON],
            r#"{"resource":[{"id":1,"tenant_id":"globex"}]}"#,
            Decision::Deny,
            "scope all",
        ),
        (
            "POST",
            "/api/v2/rentals/_table/reservations",
            vec![JSON],
            r#"{"resource":[{"tenant_id":"acme"},{"tenant_id":"acme","customer":"Ada"}]}"#,
            Decision::Allow,
            "roles[0].allow[2]",
        ),
        (
            "POST",
            "/api/v2/rentals/_table/reservations",
            vec![JSON],
            r#"{"resource":[{"tenant_id":"acme"},{"tenant_id":"globex"}]}"#,
            Decision::Deny,
            "proven records",
        ),
        (
            "PUT",
            "/api/v2/rentals/_table/reservations/7",
            vec![JSON],
            r#"{"tenant_id":"acme"}"#,
            Decision::Deny,
            "use PATCH",
        ),
    ];
    let e = engine();
    for (method, path, extra, body, decision, fragment) in cases {
        let v = e.decide(
            headers(method, path, "tenant-key", &extra),
            body.as_bytes(),
            NOW,
        );
        assert_eq!(
            v.decision(),
            decision,
            "{method} {path} {body}: {}",
            v.reason()
        );
        let text = format!("{} {}", v.reason(), v.rule.clone().unwrap_or_default());
        assert!(
            text.contains(fragment),
            "{method} {path} {body}: `{text}` lacks `{fragment}`"
        );
    }
}

#[test]
fn the_post_image_is_in_the_verdict() {
    let v = engine().decide(
        headers(
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme",
            "tenant-key",
            &[JSON],
        ),
        br#"{"tenant_id":"globex","notes":null}"#,
        NOW,
    );
    assert_eq!(v.decision(), Decision::Deny);
    let op = &v.operations[0];
    assert_eq!(op.records["tenant_id"], ["acme"]);
    assert_eq!(op.sets["tenant_id"], Some(vec!["globex".to_string()]));
    assert_eq!(op.sets["notes"], None);
    let body: serde_json::Value = serde_json::from_str(&v.response_body()).unwrap();
    assert_eq!(body["operations"][0]["sets"]["tenant_id"][0], "globex");
}

#[test]
fn the_body_is_held_only_when_a_grant_checks_records() {
    let e = engine();
    let begin = |method: &str, path: &str, key: &str| {
        e.begin(headers(method, path, key, &[JSON]), true, NOW)
    };
    // No grant of the role checks records: decided on the head, the body streams through.
    for (m, p) in [
        ("POST", "/rest/reservations"),
        ("PATCH", "/rest/reservations?id=eq.r-1"),
        ("PUT", "/rest/reservations?id=eq.r-1"),
    ] {
        match begin(m, p, "plain-key") {
            Step::Decided(v) => {
                assert_eq!(v.decision(), Decision::Allow, "{m} {p}: {}", v.reason())
            }
            Step::NeedBody(_) => panic!("{m} {p}: a role without records grants must not wait"),
        }
    }
    // DreamFactory reads request options from any body (issue 18, class 3): its bodies are
    // read for every role, and an option at the body's top level is refused.
    let df = "/api/v2/rentals/_table/reservations?filter=tenant_id%3D'acme'";
    let Step::NeedBody(p) = begin("PATCH", df, "plain-key") else {
        panic!("a DreamFactory body is always read");
    };
    let v = e.finish(p, br#"{"ids":"9","note":"x"}"#);
    assert_eq!(v.decision(), Decision::Deny, "{}", v.reason());
    assert!(
        v.reason()
            .contains("`ids` at the top of a DreamFactory body"),
        "{}",
        v.reason()
    );
    let v = e.decide(
        headers("PATCH", df, "plain-key", &[JSON]),
        br#"{"resource":[{"ids":"a column named ids","note":"x"}]}"#,
        NOW,
    );
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
    // A records grant on the service: writes wait for their rows ...
    for (m, p) in [
        ("POST", "/rest/reservations"),
        ("PATCH", "/rest/reservations?tenant_id=eq.acme"),
        ("PUT", "/rest/reservations?id=eq.r-1"),
        ("PATCH", "/api/v2/rentals/_table/reservations/7"),
    ] {
        let Step::NeedBody(p) = begin(m, p, "tenant-key") else {
            panic!("{m} {p}: a write a records grant checks must wait for its body");
        };
        assert!(p.max_body_bytes() > 0);
    }
    // ... reads and deletes do not.
    for (m, p) in [
        ("GET", "/rest/reservations?tenant_id=eq.acme"),
        ("DELETE", "/rest/reservations?tenant_id=eq.acme"),
    ] {
        assert!(
            matches!(begin(m, p, "tenant-key"), Step::Decided(_)),
            "{m} {p}"
        );
    }
    // A body-less write a records grant checks has no rows to prove anything: refused
    // (PostgREST refuses an empty body too).
    match e.begin(
        headers(
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme",
            "tenant-key",
            &[JSON],
        ),
        false,
        NOW,
    ) {
        Step::Decided(v) => {
            assert_eq!(v.decision(), Decision::Deny);
            assert!(v.reason().contains("no body"), "{}", v.reason());
        }
        Step::NeedBody(_) => panic!("no body is coming"),
    }
}

#[test]
fn a_challenge_binds_the_body_it_was_decided_on() {
    let e = engine();
    let h = || {
        headers(
            "PATCH",
            "/rest/notes?tenant_id=eq.acme",
            "tenant-key",
            &[JSON],
        )
    };
    let Step::NeedBody(p) = e.begin(h(), true, NOW) else {
        panic!("held for its rows");
    };
    let a = e.finish(p, br#"{"text":"hello"}"#);
    assert_eq!(a.decision(), Decision::Challenge, "{}", a.reason());
    let b = e.decide(h(), br#"{"text":"bye"}"#, NOW);
    assert_eq!(b.decision(), Decision::Challenge);
    assert_ne!(a.digest, b.digest);
    // Moving the note to another tenant is not covered: no approval can unlock it.
    let c = e.decide(h(), br#"{"tenant_id":"globex"}"#, NOW);
    assert_eq!(c.decision(), Decision::Deny, "{}", c.reason());
}
