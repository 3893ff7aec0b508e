//! The stream's state machine, natively, against an in-memory host.

use super::*;
use crate::host::memory::MemoryHost;
use crate::host::Level;
use std::cell::RefCell;

const APPROVAL_KEY: &str = "approval-key-for-filter-tests-0123456789";

// sha256("reader-key") and sha256("writer-key").
const BUNDLE: &str = r#"{
  "bundle": "t", "version": 1, "environment": "production",
  "services": [{"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"},
    "rest": {"style": "postgrest"}, "limits": {"max_body_bytes": 16},
    "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "UPSTREAM_TOKEN"}}],
  "roles": [
    {"name": "reader", "allow": [{"service": "rentals", "resources": ["reservations"], "actions": ["read"]}]},
    {"name": "writer", "budget": {"destructive": 1, "per": "1h"}, "allow": [{"service": "rentals", "resources": ["reservations"], "actions": ["read", "create", "delete"], "friction": "approval"}]}],
  "keys": [
    {"id": "reader-1", "sha256": "SHA_READER", "role": "reader"},
    {"id": "writer-1", "sha256": "SHA_WRITER", "role": "writer"}]
}"#;

fn fake(method: &str, path: &str, key: &str, body: &[u8]) -> MemoryHost {
    let sha =
        |k: &str| scopegate_engine::digest::hex(&scopegate_engine::digest::sha256(k.as_bytes()));
    let h = |n: &str, v: &str| (n.to_string(), v.as_bytes().to_vec());
    MemoryHost {
        config: BUNDLE
            .replace("SHA_READER", &sha("reader-key"))
            .replace("SHA_WRITER", &sha("writer-key")),
        headers: RefCell::new(vec![
            h(":method", method),
            h(":path", path),
            h(":authority", "api.test"),
            h("authorization", &format!("Bearer {key}")),
            h("x-scopegate-role", "admin"),
            h("x-request-id", "req-1"),
        ]),
        body: body.to_vec(),
        env: [
            ("UPSTREAM_TOKEN", "upstream-secret"),
            ("SCOPEGATE_APPROVAL_KEY", APPROVAL_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        now_ms: 1_795_543_200_000,
        ..MemoryHost::default()
    }
}

fn stream(f: &MemoryHost) -> Stream<&MemoryHost> {
    Stream::new(configure(&f).map(Rc::new), f)
}

/// A shared-key approval token by alice for the writer's challenge (a 428 body).
fn alice_token(challenge: &str, nonce: &str) -> String {
    use scopegate_engine::approval::{issue, ApprovalKey, Claims};
    let body: serde_json::Value = serde_json::from_str(challenge).unwrap();
    issue(
        &ApprovalKey::new(APPROVAL_KEY.as_bytes()).unwrap(),
        &Claims {
            v: 1,
            digest: body["challenge"].as_str().unwrap().to_string(),
            key: "writer-1".into(),
            exp: 1_795_543_200 + 300,
            approver: "alice".into(),
            nonce: nonce.into(),
        },
    )
}

fn header(f: &MemoryHost, name: &str) -> Option<String> {
    f.header(name)
}

fn audit_line(f: &MemoryHost) -> serde_json::Value {
    let logs = f.logs.borrow();
    let (_, line) = logs.last().unwrap();
    serde_json::from_str(line).unwrap()
}

#[test]
fn allowed_get_forwards_with_upstream_auth_and_identity() {
    let f = fake("GET", "/rest/reservations?id=eq.1", "reader-key", b"");
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(true), Flow::Continue);
    assert_eq!(
        header(&f, "authorization").unwrap(),
        "Bearer upstream-secret"
    );
    assert_eq!(header(&f, "x-scopegate-key").unwrap(), "reader-1");
    assert_eq!(header(&f, "x-scopegate-role").unwrap(), "reader");
    assert!(f.sent.borrow().is_none());
    s.on_log();
    let rec = audit_line(&f);
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["key"], "reader-1");
    assert_eq!(rec["ts"], "2026-11-24T18:00:00.000Z");
    assert!(!rec.to_string().contains("reader-key"));
    assert!(!rec.to_string().contains("upstream-secret"));
}

#[test]
fn denied_delete_replies_locally() {
    let f = fake("DELETE", "/rest/reservations?id=eq.1", "reader-key", b"");
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    let (status, body) = f.sent.borrow().clone().unwrap();
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["request_id"], "req-1");
    s.on_log();
    assert_eq!(audit_line(&f)["status"], 403);
}

#[test]
fn challenge_waits_for_body_and_trailers() {
    let f = fake("POST", "/rest/reservations", "writer-key", b"{\"id\":1}");
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(false), Flow::Pause);
    assert!(f.sent.borrow().is_none());
    assert_eq!(s.on_request_body(4, false), Flow::Pause);
    assert_eq!(s.on_request_body(8, false), Flow::Pause);
    assert!(
        f.sent.borrow().is_none(),
        "no decision before the body ends"
    );
    assert_eq!(s.on_request_trailers(), Flow::Pause);
    let (status, body) = f.sent.borrow().clone().unwrap();
    assert_eq!(status, 428);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["friction"], "approval");
    assert!(body["challenge"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn oversized_body_is_413() {
    let f = fake("POST", "/rest/reservations", "writer-key", &[b'x'; 40]);
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(false), Flow::Pause);
    assert_eq!(s.on_request_body(17, false), Flow::Pause);
    assert_eq!(f.sent.borrow().as_ref().unwrap().0, 413);
    s.on_log();
    assert_eq!(audit_line(&f)["decision"], "too_large");
}

#[test]
fn reset_mid_body_is_audited_incomplete() {
    let f = fake("POST", "/rest/reservations", "writer-key", b"{}");
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(false), Flow::Pause);
    s.on_log();
    assert_eq!(audit_line(&f)["decision"], "incomplete");
}

#[test]
fn bad_bundle_refuses_configuration_and_traffic() {
    let mut f = fake("GET", "/rest/reservations", "reader-key", b"");
    f.config = f
        .config
        .replace("\"role\": \"writer\"}]", "\"role\": \"ghost\"}]");
    assert!(configure(&&f).is_none());
    let logs = f.logs.borrow().clone();
    assert!(
        logs.iter()
            .any(|(l, m)| *l == Level::Critical
                && m.contains("keys[1].role: unknown role `ghost`")),
        "{logs:?}"
    );
    let mut s = Stream::new(None, &f);
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    assert_eq!(f.sent.borrow().as_ref().unwrap().0, 503);
}

const MCP_BUNDLE: &str = r#"{"bundle": "m", "version": 1, "environment": "production",
  "services": [{"name": "tools", "protocol": "mcp", "match": {"path_prefix": "/mcp"}}],
  "roles": [{"name": "reader", "allow": [{"service": "tools", "resources": ["get_*"], "actions": ["read"]}]}],
  "keys": [{"id": "reader-1", "sha256": "SHA_READER", "role": "reader"}]}"#;

const TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_vehicle"},{"name":"delete_reservation"}]}}"#;

fn mcp_list() -> MemoryHost {
    let mut f = fake("POST", "/mcp", "reader-key", b"");
    let sha = scopegate_engine::digest::hex(&scopegate_engine::digest::sha256(b"reader-key"));
    f.config = MCP_BUNDLE.replace("SHA_READER", &sha);
    f.body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec();
    f.headers.borrow_mut().extend([
        ("content-type".to_string(), b"application/json".to_vec()),
        ("accept-encoding".to_string(), b"gzip".to_vec()),
    ]);
    f
}

fn respond(f: &MemoryHost, content_type: &str, body: &str) {
    *f.resp_headers.borrow_mut() = vec![
        ("content-type".into(), content_type.into()),
        ("content-length".into(), body.len().to_string()),
    ];
    *f.resp_body.borrow_mut() = body.as_bytes().to_vec();
}

#[test]
fn mcp_json_list_answer_is_filtered_with_its_length() {
    let f = mcp_list();
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(false), Flow::Pause);
    assert_eq!(s.on_request_body(f.body.len(), true), Flow::Continue);
    assert!(
        header(&f, "accept-encoding").is_none(),
        "answers are asked for uncompressed"
    );
    respond(&f, "application/json", TOOLS);
    assert_eq!(
        s.on_response_headers(false),
        Flow::Pause,
        "headers wait for the length"
    );
    assert_eq!(s.on_response_body(10, false), Flow::Pause);
    assert_eq!(s.on_response_body(TOOLS.len(), true), Flow::Continue);
    let body = String::from_utf8(f.resp_body.borrow().clone()).unwrap();
    assert!(
        body.contains("get_vehicle") && !body.contains("delete_reservation"),
        "{body}"
    );
    assert_eq!(
        (&f).response_header("content-length").unwrap(),
        body.len().to_string()
    );
}

#[test]
fn mcp_event_stream_and_encoded_answers() {
    let f = mcp_list();
    let mut s = stream(&f);
    s.on_request_headers(false);
    s.on_request_body(f.body.len(), true);
    let events = format!("event: message\ndata: {TOOLS}\n\n");
    respond(&f, "text/event-stream", &events);
    assert_eq!(s.on_response_headers(false), Flow::Continue);
    assert!((&f).response_header("content-length").is_none());
    assert_eq!(s.on_response_body(events.len(), true), Flow::Continue);
    let body = String::from_utf8(f.resp_body.borrow().clone()).unwrap();
    assert!(body.starts_with("event: message\ndata: {"), "{body}");
    assert!(!body.contains("delete_reservation"), "{body}");

    // A compressed answer cannot be read: withheld, never passed.
    let f = mcp_list();
    let mut s = stream(&f);
    s.on_request_headers(false);
    s.on_request_body(f.body.len(), true);
    respond(&f, "application/json", "\u{1f}\u{8b}gzip");
    (&f).set_response_header("content-encoding", "gzip");
    assert_eq!(s.on_response_headers(false), Flow::Pause);
    assert_eq!(s.on_response_body(6, true), Flow::Continue);
    let body = String::from_utf8(f.resp_body.borrow().clone()).unwrap();
    assert!(body.contains("withheld"), "{body}");
    assert!((&f).response_header("content-encoding").is_none());
}

#[test]
fn approval_tokens_are_single_use_and_budgets_count() {
    let f = fake("DELETE", "/rest/reservations?id=eq.1", "writer-key", b"");
    let original = f.headers.borrow().clone();
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    let (status, body) = f.sent.borrow().clone().unwrap();
    assert_eq!(status, 428);
    let token = |nonce: &str| alice_token(&body, nonce);
    // The same filter VM (shared data) sees three retries.
    let retry = |t: &str| {
        let mut h = original.clone();
        h.push(("x-scopegate-approval".to_string(), t.as_bytes().to_vec()));
        *f.headers.borrow_mut() = h;
        *f.sent.borrow_mut() = None;
        let mut s = stream(&f);
        let flow = s.on_request_headers(true);
        s.on_log();
        (flow, f.sent.borrow().clone())
    };
    let (flow, sent) = retry(&token("n-1"));
    assert_eq!((flow, sent), (Flow::Continue, None), "approved: forwarded");
    assert!(
        header(&f, "x-scopegate-approval").is_none(),
        "the token is not forwarded"
    );
    assert_eq!(audit_line(&f)["approval"], "alice");
    let (flow, sent) = retry(&token("n-1"));
    assert_eq!(flow, Flow::Pause);
    let (status, body) = sent.unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("already used"), "{body}");
    let (_, sent) = retry(&token("n-2"));
    let (status, body) = sent.unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("budget of 1 destructive operations per 1h"),
        "{body}"
    );
    assert_eq!(audit_line(&f)["decision"], "over_budget");
}

fn with_bundle(mut f: MemoryHost, edit: impl Fn(&mut serde_json::Value)) -> MemoryHost {
    let mut b: serde_json::Value = serde_json::from_str(&f.config).unwrap();
    edit(&mut b);
    f.config = b.to_string();
    f
}

/// A stream sharing the VM's recorder, as the root context makes it.
fn shared(f: &MemoryHost, recorder: Rc<RefCell<Recorder>>) -> Stream<&MemoryHost> {
    Stream::shared(configure(&f).map(Rc::new), f, recorder)
}

/// The VM's recorder, as the root context makes it.
fn recorder_of(f: &MemoryHost) -> Rc<RefCell<Recorder>> {
    let engine = configure(&f);
    Rc::new(RefCell::new(Recorder::new(
        engine.as_ref().map(Engine::policy),
        &f,
    )))
}

#[test]
fn shadow_mode_records_the_refusal_and_forwards() {
    let f = with_bundle(
        fake("DELETE", "/rest/reservations?id=eq.1", "reader-key", b""),
        |b| {
            b["mode"] = "shadow".into();
        },
    );
    let mut s = stream(&f);
    assert_eq!(
        s.on_request_headers(true),
        Flow::Continue,
        "shadow forwards"
    );
    assert!(f.sent.borrow().is_none());
    assert_eq!(
        header(&f, "authorization").unwrap(),
        "Bearer upstream-secret"
    );
    s.on_log();
    let rec = audit_line(&f);
    assert_eq!(
        (rec["decision"].as_str(), rec["enforced"].as_bool()),
        (Some("deny"), Some(false))
    );
    let state: serde_json::Value = serde_json::from_str(&f.props.borrow()["scopegate"]).unwrap();
    assert_eq!(state["enforced"], false);
    assert_eq!(f.metrics.borrow()["scopegate_shadow_not_enforced"], 1);
    // Per role: only the shadowed role's refusals pass.
    let f = with_bundle(
        fake("DELETE", "/rest/reservations?id=eq.1", "reader-key", b""),
        |b| {
            b["roles"][1]["mode"] = "shadow".into();
        },
    );
    let mut s = stream(&f);
    assert_eq!(
        s.on_request_headers(true),
        Flow::Pause,
        "the reader role enforces"
    );
}

#[test]
fn metrics_and_access_log_properties() {
    let f = fake("DELETE", "/rest/reservations?id=eq.1", "reader-key", b"");
    let mut s = stream(&f);
    s.on_request_headers(true);
    s.on_log();
    let m = f.metrics.borrow();
    assert_eq!(
        (m["scopegate_requests_total"], m["scopegate_requests_deny"]),
        (1, 1)
    );
    assert_eq!(
        m["scopegate_decisions.decision.deny.service.rentals.role.reader"],
        1
    );
    // The default `"filter_state": "json"`: one property.
    let p = f.props.borrow();
    assert_eq!(p.len(), 1, "{p:?}");
    // The audit record itself, the very line the log (and the sink) got: the operations
    // with their records, the final status.
    let state: serde_json::Value = serde_json::from_str(&p["scopegate"]).unwrap();
    assert_eq!(
        (&state["decision"], &state["key"], &state["operations"]),
        (
            &serde_json::json!("deny"),
            &serde_json::json!("reader-1"),
            &serde_json::json!([{"service": "rentals", "action": "delete",
                "resource": "reservations", "scope": "some", "records": {"id": ["1"]}}])
        )
    );
    assert_eq!(state["status"], 403);
    assert_eq!(f.logs.borrow().last().unwrap().1, p["scopegate"]);
    drop(p);

    // `"fields"`: eight properties; `"off"`: none. The same counters and record.
    for (form, props) in [("fields", 8), ("off", 0)] {
        for (method, path) in [
            ("DELETE", "/rest/reservations?id=eq.1"),
            ("GET", "/rest/reservations?id=eq.1"),
        ] {
            let f = with_bundle(fake(method, path, "reader-key", b""), |b| {
                b["filter_state"] = serde_json::json!(form);
            });
            let mut s = stream(&f);
            s.on_request_headers(true);
            s.on_log();
            let p = f.props.borrow();
            assert_eq!(p.len(), props, "{form}: {p:?}");
            if form == "fields" {
                assert_eq!(p["scopegate_key"], "reader-1");
                assert!(!p["scopegate_rule"].is_empty());
            }
            assert_eq!(f.metrics.borrow()["scopegate_requests_total"], 1);
            assert!(audit_line(&f)["decision"].is_string());
        }
    }
}

fn sink_bundle(mode: &str) -> impl Fn(&mut serde_json::Value) + '_ {
    move |b: &mut serde_json::Value| {
        b["audit"] =
            serde_json::json!({"mode": mode, "sink": {"cluster": "collector", "batch": 2}});
    }
}

#[test]
fn best_effort_sink_batches_and_counts_what_is_lost() {
    let f = with_bundle(
        fake("GET", "/rest/reservations", "reader-key", b""),
        sink_bundle("best_effort"),
    );
    let rec = recorder_of(&f);
    let original = f.headers.borrow().clone();
    for _ in 0..3 {
        *f.headers.borrow_mut() = original.clone();
        let mut s = shared(&f, rec.clone());
        assert_eq!(
            s.on_request_headers(true),
            Flow::Continue,
            "{:?}",
            f.sent.borrow()
        );
        s.on_log();
    }
    let mut r = rec.borrow_mut();
    let sink = r.sink.as_mut().unwrap();
    assert_eq!(sink.queued(), 3);
    sink.flush(&&f);
    let calls = f.dispatched.borrow().clone();
    assert_eq!(calls.len(), 2, "batches of 2");
    assert_eq!(calls[0].1.lines().count(), 2);
    f.call_status.set(Some(200));
    sink.answered(&&f, 1);
    f.call_status.set(Some(500));
    sink.answered(&&f, 2);
    let m = f.metrics.borrow();
    assert_eq!(
        (
            m["scopegate_audit_records_sent"],
            m["scopegate_audit_records_dropped"]
        ),
        (2, 1)
    );
}

#[test]
fn required_audit_forwards_only_what_the_collector_took() {
    let f = with_bundle(
        fake("GET", "/rest/reservations", "reader-key", b""),
        sink_bundle("required"),
    );
    let rec = recorder_of(&f);
    let mut s = shared(&f, rec.clone());
    assert_eq!(
        s.on_request_headers(true),
        Flow::Pause,
        "held until the record is taken"
    );
    assert!(
        header(&f, "x-scopegate-key").is_none(),
        "nothing applied yet"
    );
    f.call_status.set(Some(204));
    s.on_call_answer(1, 0);
    assert!(f.resumed.get());
    assert_eq!(header(&f, "x-scopegate-key").unwrap(), "reader-1");
    s.on_log();
    assert_eq!(
        rec.borrow().sink.as_ref().unwrap().queued(),
        0,
        "not sent twice"
    );

    // The collector fails: 503, not forwarded.
    let f = with_bundle(
        fake("GET", "/rest/reservations", "reader-key", b""),
        sink_bundle("required"),
    );
    let mut s = shared(&f, recorder_of(&f));
    s.on_request_headers(true);
    f.call_status.set(Some(500));
    s.on_call_answer(1, 0);
    assert!(!f.resumed.get());
    let (status, body) = f.sent.borrow().clone().unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("audit is required"), "{body}");
    assert_eq!(f.metrics.borrow()["scopegate_audit_records_dropped"], 1);

    // The call cannot even be made: 503 at once.
    let mut f = with_bundle(
        fake("GET", "/rest/reservations", "reader-key", b""),
        sink_bundle("required"),
    );
    f.refuse_calls = true;
    let mut s = shared(&f, recorder_of(&f));
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    assert_eq!(f.sent.borrow().as_ref().unwrap().0, 503);
}

#[test]
fn undecodable_requests_are_counted_by_kind() {
    let f = fake("GET", "/rest/../rest/reservations", "reader-key", b"");
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    s.on_log();
    let m = f.metrics.borrow();
    assert_eq!(m.get("scopegate_decode_failures"), Some(&1));
    assert_eq!(m.get("scopegate_decode_failures_ambiguous"), Some(&1));
    assert_eq!(m.get("scopegate_decode_failures_malformed"), None);
}

#[test]
fn fleet_state_is_asked_before_forwarding_and_fails_closed() {
    let etcd = |b: &mut serde_json::Value| {
        b["state"] = serde_json::json!({"store": "etcd", "cluster": "etcd", "timeout_ms": 200});
    };
    // A request that needs no state makes no call.
    let f = with_bundle(
        fake("GET", "/rest/reservations?id=eq.1", "reader-key", b""),
        etcd,
    );
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(true), Flow::Continue);
    assert!(f.dispatched.borrow().is_empty());

    let f = with_bundle(
        fake("DELETE", "/rest/reservations?id=eq.1", "writer-key", b""),
        etcd,
    );
    let original = f.headers.borrow().clone();
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    let (status, body) = f.sent.borrow().clone().unwrap();
    assert_eq!(status, 428, "a challenge needs no state");
    assert!(f.dispatched.borrow().is_empty());
    let token = alice_token(&body, "n-1");
    let used = serde_json::json!({"responses": [
        {"response_range": {"kvs": [{"key": "x", "value": "MQ==", "mod_revision": "9"}]}},
        {"response_range": {}}]})
    .to_string();
    let cases: [(Option<u16>, &str, Option<u16>, &str); 5] = [
        (
            Some(200),
            r#"{"header":{},"succeeded":true}"#,
            None,
            "allow",
        ),
        (
            Some(503),
            r#"{"error":"etcdserver: request timed out","code":14}"#,
            Some(503),
            "unavailable",
        ),
        (None, "", Some(503), "unavailable"),
        (Some(200), "<html>", Some(503), "unavailable"),
        (Some(200), &used, Some(403), "deny"),
    ];
    for (answer, answer_body, reply, decision) in cases {
        let mut h = original.clone();
        h.push((
            "x-scopegate-approval".to_string(),
            token.as_bytes().to_vec(),
        ));
        *f.headers.borrow_mut() = h;
        *f.sent.borrow_mut() = None;
        f.resumed.set(false);
        let mut s = stream(&f);
        assert_eq!(
            s.on_request_headers(true),
            Flow::Pause,
            "held for the store"
        );
        let call = f.dispatched.borrow().len() as u32;
        let (cluster, txn) = f.dispatched.borrow().last().cloned().unwrap();
        assert_eq!(cluster, "etcd");
        let txn: serde_json::Value = serde_json::from_str(&txn).unwrap();
        assert_eq!(
            txn["compare"].as_array().unwrap().len(),
            2,
            "nonce and budget: {txn}"
        );
        assert!(
            header(&f, "x-scopegate-key").is_none(),
            "nothing is forwarded before the store answers"
        );
        f.call_status.set(answer);
        *f.call_body.borrow_mut() = answer_body.as_bytes().to_vec();
        // Answered until the stream makes no new call (no answer at all is repeated).
        let mut token = call;
        loop {
            s.on_call_answer(token, answer_body.len());
            let now = f.dispatched.borrow().len() as u32;
            if now == token {
                break;
            }
            token = now;
        }
        assert_eq!(
            token - call,
            if answer.is_none() { 2 } else { 0 },
            "repeats"
        );
        s.on_log();
        let sent = f.sent.borrow().clone();
        assert_eq!(
            sent.as_ref().map(|s| s.0),
            reply,
            "{answer:?} {answer_body}"
        );
        assert_eq!(
            f.resumed.get(),
            reply.is_none(),
            "resumed only when allowed"
        );
        let rec = audit_line(&f);
        assert_eq!(rec["decision"], decision, "{rec}");
        if decision == "unavailable" {
            assert!(rec["reason"].as_str().unwrap().contains("etcd"), "{rec}");
        }
    }
    assert_eq!(f.metrics.borrow()["scopegate_state_unavailable"], 3);

    // A cluster the host will not call: refused at once.
    let mut f = with_bundle(
        fake("DELETE", "/rest/reservations?id=eq.1", "writer-key", b""),
        etcd,
    );
    f.refuse_calls = true;
    f.headers.borrow_mut().push((
        "x-scopegate-approval".to_string(),
        token.as_bytes().to_vec(),
    ));
    let mut s = stream(&f);
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    assert_eq!(f.sent.borrow().as_ref().map(|s| s.0), Some(503));
}

#[test]
fn records_name_the_rows_the_query_the_client_and_any_key() {
    let mut f = fake("DELETE", "/rest/reservations?id=eq.r-2", "reader-key", b"");
    f.client = Some("10.1.2.3:40000".into());
    f.headers
        .borrow_mut()
        .push(("user-agent".into(), b"agent-sdk/2.1".to_vec()));
    let mut s = stream(&f);
    s.on_request_headers(true);
    s.on_log();
    let rec = audit_line(&f);
    assert_eq!(rec["client"], "10.1.2.3:40000");
    assert_eq!(rec["user_agent"], "agent-sdk/2.1");
    assert_eq!(rec["query"], "id=eq.r-2");
    assert_eq!(
        rec["operations"][0]["records"]["id"],
        serde_json::json!(["r-2"])
    );

    // An expired key is named; an unknown one is fingerprinted, never written out.
    let f = with_bundle(fake("GET", "/rest/reservations", "reader-key", b""), |b| {
        b["keys"][0]["expires"] = "2020-01-01T00:00:00Z".into();
    });
    let mut s = stream(&f);
    s.on_request_headers(true);
    s.on_log();
    let rec = audit_line(&f);
    assert_eq!(
        (rec["decision"].as_str(), rec["key"].as_str()),
        (Some("unauthenticated"), Some("reader-1"))
    );
    let f = fake("GET", "/rest/reservations", "not-a-key-at-all", b"");
    let mut s = stream(&f);
    s.on_request_headers(true);
    s.on_log();
    let line = f.logs.borrow().last().unwrap().1.clone();
    assert!(!line.contains("not-a-key-at-all"), "{line}");
    let rec = audit_line(&f);
    let sha = scopegate_engine::digest::hex(&scopegate_engine::digest::sha256(b"not-a-key-at-all"));
    assert_eq!(rec["credential"], format!("sha256:{}", &sha[..8]));
    assert_eq!(rec["key"], serde_json::Value::Null);
}

#[test]
fn approvals_used_counts_accepted_requests_only() {
    let f = fake("DELETE", "/rest/reservations?id=eq.1", "writer-key", b"");
    let original = f.headers.borrow().clone();
    let mut s = stream(&f);
    s.on_request_headers(true);
    s.on_log();
    let token = alice_token(&f.sent.borrow().clone().unwrap().1, "n-1");
    for _ in 0..3 {
        let mut h = original.clone();
        h.push((
            "x-scopegate-approval".to_string(),
            token.as_bytes().to_vec(),
        ));
        *f.headers.borrow_mut() = h;
        let mut s = stream(&f);
        s.on_request_headers(true);
        s.on_log();
    }
    let m = f.metrics.borrow();
    assert_eq!(
        m["scopegate_approvals_used"], 1,
        "the two replays were refused"
    );
    assert_eq!(m["scopegate_challenges"], 1);
    assert_eq!(
        m["scopegate_decisions.decision.deny.service.rentals.role.writer"],
        2
    );
}

#[test]
fn the_operator_is_told_when_the_log_level_hides_records() {
    let f = fake("GET", "/rest/reservations", "reader-key", b"");
    f.level.set(Some(Level::Warn));
    let r = recorder_of(&f);
    r.borrow_mut().check_level(&&f);
    r.borrow_mut().check_level(&&f);
    {
        let logs = f.logs.borrow();
        let said: Vec<_> = logs.iter().filter(|(_, l)| l.contains("hides")).collect();
        assert_eq!(said.len(), 1, "once per level: {logs:?}");
        assert_eq!(said[0].0, Level::Warn);
        assert!(said[0].1.contains("access log") && said[0].1.contains("audit.log: warn"));
    }
    // `audit.log: warn`: the record's line survives `-l warning`, and nothing is said.
    let f = with_bundle(fake("GET", "/rest/reservations", "reader-key", b""), |b| {
        b["audit"] = serde_json::json!({"log": "warn"});
    });
    f.level.set(Some(Level::Warn));
    let r = recorder_of(&f);
    r.borrow_mut().check_level(&&f);
    assert!(f.logs.borrow().iter().all(|(_, l)| !l.contains("hides")));
    let mut s = shared(&f, r);
    s.on_request_headers(true);
    s.on_log();
    assert_eq!(f.logs.borrow().last().unwrap().0, Level::Warn);
    // No log line, no filter state, no sink: nobody gets a record, said at critical.
    let f = with_bundle(fake("GET", "/rest/reservations", "reader-key", b""), |b| {
        b["audit"] = serde_json::json!({"log": "off"});
        b["filter_state"] = "off".into();
    });
    let r = recorder_of(&f);
    r.borrow_mut().check_level(&&f);
    let logs = f.logs.borrow();
    let (level, line) = logs.last().unwrap();
    assert_eq!(*level, Level::Critical);
    assert!(line.contains("NO AUDIT RECORD REACHES ANYONE"), "{line}");
}

#[test]
fn chained_records_verify_and_show_a_gap() {
    let f = with_bundle(fake("GET", "/rest/reservations", "reader-key", b""), |b| {
        b["audit"] = serde_json::json!({"chain": true,
            "sink": {"cluster": "collector", "batch": 100}});
    });
    let r = recorder_of(&f);
    let original = f.headers.borrow().clone();
    for _ in 0..4 {
        *f.headers.borrow_mut() = original.clone();
        let mut s = shared(&f, r.clone());
        s.on_request_headers(true);
        s.on_log();
    }
    r.borrow_mut().sink.as_mut().unwrap().flush(&&f);
    let sent = f.dispatched.borrow()[0].1.clone();
    let v = scopegate_engine::audit::verify(&sent, None, false);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.streams["00000000000000aa"], (4, 1, 4));
    // The log has the same lines.
    let logged: Vec<String> = f.logs.borrow().iter().map(|(_, l)| l.clone()).collect();
    assert!(sent.lines().all(|l| logged.iter().any(|x| x == l)));
    let gap: Vec<&str> = sent
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| l)
        .collect();
    let p = scopegate_engine::audit::verify(&gap.join("\n"), None, false).problems;
    assert_eq!(p.len(), 1, "{p:?}");
}
