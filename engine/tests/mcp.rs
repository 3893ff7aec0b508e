//! MCP through the whole engine, table-driven, on the shipped policies/mcp.json: both wire
//! generations, tool rules and records, SQL tools, headers that must agree with the body,
//! disguises, JSON-RPC errors, and list answers filtered per role (JSON and SSE).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::answer::{Answer, EventStream};
use scopegate_engine::verdict::ListFilter;
use scopegate_engine::{Decision, Engine, Secrets, Verdict};
use serde_json::{json, Value};

mod common;
use common::{root, NOW};

fn engine() -> Engine {
    let json = std::fs::read(root().join("policies/mcp.json")).unwrap();
    Engine::from_json(&json, &Secrets::Unchecked).unwrap_or_else(|e| panic!("{e}"))
}

fn key(id: &str) -> String {
    let keys = std::fs::read_to_string(root().join("policies/mcp.keys")).unwrap();
    keys.lines()
        .find_map(|l| l.strip_prefix(&format!("{id}=")))
        .unwrap()
        .to_string()
}

fn raw(e: &Engine, who: &str, method: &str, headers: &[(&str, &str)], body: &str) -> Verdict {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), b"/mcp".to_vec()),
        (":authority".to_string(), b"gw.test".to_vec()),
        (
            "authorization".to_string(),
            format!("Bearer {}", key(who)).into_bytes(),
        ),
    ];
    if method == "POST" {
        h.push(("content-type".into(), b"application/json".to_vec()));
    }
    for (n, v) in headers {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    e.decide(h, body.as_bytes(), NOW)
}

fn call(e: &Engine, who: &str, tool: &str, args: Value) -> Verdict {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    raw(e, who, "POST", &[], &body.to_string())
}

fn ops(v: &Verdict) -> Vec<String> {
    v.operations
        .iter()
        .map(|o| format!("{} {} {}", o.service, o.action, o.resource))
        .collect()
}

#[test]
fn tool_calls_by_role() {
    let e = engine();
    // (key, tool, arguments, decision, operations)
    let cases: &[(&str, &str, Value, Decision, &[&str])] = &[
        (
            "mcp-reader",
            "list_reservations",
            json!({"status": "open"}),
            Decision::Allow,
            &["tools read list_reservations"],
        ),
        (
            "mcp-reader",
            "get_vehicle",
            json!({"vehicle_id": "v-1"}),
            Decision::Allow,
            &["tools read get_vehicle"],
        ),
        (
            "mcp-reader",
            "delete_reservation",
            json!({"reservation_id": "r-1"}),
            Decision::Deny,
            &["tools delete delete_reservation"],
        ),
        (
            "mcp-reader",
            "create_reservation",
            json!({"vehicle_id": "v-1"}),
            Decision::Deny,
            &["tools create create_reservation"],
        ),
        // A generic tool constrained by its arguments.
        (
            "mcp-reader",
            "run_query",
            json!({"table": "reservations"}),
            Decision::Allow,
            &["tools read run_query"],
        ),
        (
            "mcp-reader",
            "run_query",
            json!({"table": "payments"}),
            Decision::Deny,
            &["tools read run_query"],
        ),
        (
            "mcp-reader",
            "run_query",
            json!({}),
            Decision::Deny,
            &["tools read run_query"],
        ),
        (
            "mcp-reader",
            "run_query",
            json!({"table": ["vehicles", "payments"]}),
            Decision::Deny,
            &["tools read run_query"],
        ),
        // The SQL tool is scoped as the SQL service, statement by statement.
        (
            "mcp-reader",
            "execute_sql",
            json!({"sql": "SELECT r.id FROM reservations r JOIN vehicles v ON v.id = r.vehicle_id"}),
            Decision::Allow,
            &[
                "rentals-sql read public.reservations",
                "rentals-sql read public.vehicles",
            ],
        ),
        (
            "mcp-reader",
            "execute_sql",
            json!({"sql": "DELETE FROM reservations WHERE id = 'r-1'"}),
            Decision::Deny,
            &["rentals-sql delete public.reservations"],
        ),
        (
            "mcp-reader",
            "execute_sql",
            json!({"sql": "SELECT 1; DROP TABLE reservations"}),
            Decision::Deny,
            &[],
        ),
        (
            "mcp-reader",
            "execute_sql",
            json!({"query": "SELECT 1"}),
            Decision::Deny,
            &[],
        ),
        (
            "mcp-agent",
            "execute_sql",
            json!({"sql": "UPDATE reservations SET customer = 'x' WHERE id = 'r-1'"}),
            Decision::Allow,
            &["rentals-sql update public.reservations"],
        ),
        (
            "mcp-agent",
            "delete_reservation",
            json!({"reservation_id": "r-1"}),
            Decision::Challenge,
            &["tools delete delete_reservation"],
        ),
        (
            "mcp-agent",
            "create_reservation",
            json!({"vehicle_id": "v-1", "customer": "Ada"}),
            Decision::Allow,
            &["tools create create_reservation"],
        ),
        (
            "mcp-analyst",
            "list_reservations",
            json!({}),
            Decision::Allow,
            &["tools read list_reservations"],
        ),
        (
            "mcp-analyst",
            "purge_reservations",
            json!({}),
            Decision::Deny,
            &["tools delete purge_reservations"],
        ),
    ];
    for (who, tool, args, decision, want) in cases {
        let v = call(&e, who, tool, args.clone());
        assert_eq!(
            v.decision(),
            *decision,
            "{who} {tool} {args}: {}",
            v.reason()
        );
        if !want.is_empty() {
            assert_eq!(ops(&v), *want, "{who} {tool} {args}");
        }
    }
}

#[test]
fn records_come_from_arguments() {
    let e = engine();
    let v = call(
        &e,
        "mcp-reader",
        "list_reservations",
        json!({"filter": {"status": "open", "ids": ["r-1", "r-2"]}, "limit": 5, "dry": false, "x": null}),
    );
    let r = &v.operations[0].records;
    assert_eq!(r["filter.status"], ["open"]);
    assert_eq!(r["filter.ids"], ["r-1", "r-2"]);
    assert_eq!(r["limit"], ["5"]);
    assert_eq!(r["dry"], ["false"]);
    assert!(!r.contains_key("x"));
}

#[test]
fn plumbing_resources_and_prompts() {
    let e = engine();
    let msg = |id: u32, method: &str, params: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
    };
    let cases: &[(&str, String, Decision, &str)] = &[
        (
            "mcp-reader",
            msg(
                1,
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
            ),
            Decision::Allow,
            "read mcp:initialize",
        ),
        (
            "mcp-reader",
            msg(1, "server/discover", json!({})),
            Decision::Allow,
            "read mcp:server/discover",
        ),
        (
            "mcp-reader",
            msg(1, "ping", json!({})),
            Decision::Allow,
            "read mcp:ping",
        ),
        (
            "mcp-reader",
            msg(1, "tools/list", json!({})),
            Decision::Allow,
            "read mcp:tools/list",
        ),
        (
            "mcp-reader",
            msg(1, "resources/templates/list", json!({})),
            Decision::Allow,
            "read mcp:resources/templates/list",
        ),
        (
            "mcp-reader",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
            Decision::Allow,
            "read mcp:notifications/initialized",
        ),
        (
            "mcp-reader",
            json!({"jsonrpc": "2.0", "id": "s-1", "result": {"roots": []}}).to_string(),
            Decision::Allow,
            "read mcp:response",
        ),
        (
            "mcp-reader",
            msg(
                1,
                "resources/read",
                json!({"uri": "rentals://fleet/summary"}),
            ),
            Decision::Allow,
            "read rentals://fleet/summary",
        ),
        (
            "mcp-reader",
            msg(
                1,
                "resources/read",
                json!({"uri": "rentals://vehicles/v-1"}),
            ),
            Decision::Allow,
            "read rentals://vehicles/v-1",
        ),
        (
            "mcp-reader",
            msg(1, "resources/read", json!({"uri": "rentals://admin/audit"})),
            Decision::Deny,
            "read rentals://admin/audit",
        ),
        (
            "mcp-reader",
            msg(
                1,
                "prompts/get",
                json!({"name": "summarise_reservation", "arguments": {"id": "r-1"}}),
            ),
            Decision::Allow,
            "read summarise_reservation",
        ),
        (
            "mcp-reader",
            msg(1, "prompts/get", json!({"name": "draft_refund_email"})),
            Decision::Deny,
            "read draft_refund_email",
        ),
        (
            "mcp-reader",
            msg(1, "logging/setLevel", json!({"level": "debug"})),
            Decision::Deny,
            "update mcp:logging/setLevel",
        ),
        (
            "mcp-reader",
            msg(1, "completion/complete", json!({})),
            Decision::Deny,
            "read mcp:completion/complete",
        ),
    ];
    for (who, body, decision, want) in cases {
        let v = raw(&e, who, "POST", &[], body);
        assert_eq!(v.decision(), *decision, "{body}: {}", v.reason());
        let got: Vec<String> = v
            .operations
            .iter()
            .map(|o| format!("{} {}", o.action, o.resource))
            .collect();
        assert_eq!(got, [want.to_string()], "{body}");
    }
    // The session's stream and its end.
    for (method, want) in [("GET", "mcp:stream"), ("DELETE", "mcp:session/delete")] {
        let v = raw(&e, "mcp-reader", method, &[("mcp-session-id", "abc")], "");
        assert_eq!(v.decision(), Decision::Allow, "{method}: {}", v.reason());
        assert_eq!(v.operations[0].resource, want);
    }
    // Plumbing is granted only to roles with a grant on the service; `"plumbing": false`
    // takes it away.
    let mut b: Value =
        serde_json::from_slice(&std::fs::read(root().join("policies/mcp.json")).unwrap()).unwrap();
    b["services"][0]["mcp"]["plumbing"] = json!(false);
    let e2 = Engine::from_json(b.to_string().as_bytes(), &Secrets::Unchecked).unwrap();
    let v = raw(
        &e2,
        "mcp-reader",
        "POST",
        &[],
        &msg(1, "tools/list", json!({})),
    );
    assert_eq!(v.decision(), Decision::Deny, "{}", v.reason());
}

/// (what, extra headers, body, reason fragment)
type Disguise<'a> = (&'a str, &'a [(&'a str, &'a str)], String, &'a str);

#[test]
fn disguises_are_refused() {
    let e = engine();
    let del = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "delete_reservation", "arguments": {"reservation_id": "r-1"}}});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "list_reservations", "arguments": {}}});
    // (what, extra headers, body, reason fragment)
    let cases: &[Disguise] = &[
        ("batch with one forbidden call", &[], json!([list, del]).to_string(), "delete_reservation"),
        ("tools/call as a notification", &[],
         r#"{"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_reservation", "arguments": {"reservation_id": "r-1"}}}"#.into(),
         "sent as a notification"),
        ("unicode-escaped method", &[],
         r#"{"jsonrpc": "2.0", "id": 1, "method": "\u0074ools/call", "params": {"name": "delete_\u0072eservation", "arguments": {}}}"#.into(),
         "delete_reservation"),
        ("duplicate method key", &[],
         r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "method": "tools/call", "params": {"name": "delete_reservation"}}"#.into(),
         "duplicate key"),
        ("duplicate name via escape", &[],
         r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_reservations", "n\u0061me": "delete_reservation"}}"#.into(),
         "duplicate key"),
        ("mcp-name differs from the body", &[("mcp-method", "tools/call"), ("mcp-name", "list_reservations")],
         del.to_string(), "mcp-name header"),
        ("mcp-name base64 differs", &[("mcp-name", "=?base64?bGlzdF9yZXNlcnZhdGlvbnM=?=")],
         del.to_string(), "mcp-name header"),
        ("mcp-method differs from the body", &[("mcp-method", "tools/list")], del.to_string(), "mcp-method header"),
        ("mcp-method on a batch", &[("mcp-method", "tools/call")],
         json!([list, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}]).to_string(), "mcp-method header"),
        ("repeated mcp-method", &[("mcp-method", "tools/call"), ("mcp-method", "tools/call")], list.to_string(), "repeated mcp-method"),
        ("protocol version header disagrees", &[("mcp-protocol-version", "2026-07-28")],
         json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2025-11-25"}}}).to_string(),
         "mcp-protocol-version"),
        ("param header matches no argument", &[("mcp-param-table", "payments")],
         json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "run_query", "arguments": {"table": "vehicles"}}}).to_string(),
         "mcp-param-table"),
        ("duplicate ids in a batch", &[], json!([list, list.clone()]).to_string(), "used twice"),
        ("unknown method", &[], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/execute", "params": {}}).to_string(), "unknown MCP method"),
        ("server-side method from a client", &[], json!({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage", "params": {}}).to_string(), "unknown MCP method"),
        ("notification with an id", &[], json!({"jsonrpc": "2.0", "id": 1, "method": "notifications/initialized"}).to_string(), "carries an `id`"),
        ("extra member", &[], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "tool": "delete_reservation"}).to_string(), "unexpected member"),
        ("wrong jsonrpc", &[], json!({"jsonrpc": "1.0", "id": 1, "method": "tools/list"}).to_string(), "2.0"),
        ("null id", &[], json!({"jsonrpc": "2.0", "id": null, "method": "tools/list"}).to_string(), "`id`"),
        ("arguments not an object", &[], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_vehicle", "arguments": "v-1"}}).to_string(), "must be an object"),
        ("oversized arguments", &[],
         json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_vehicle", "arguments": {"pad": "x".repeat(70_000)}}}).to_string(),
         "max_params_bytes"),
        ("empty batch", &[], "[]".into(), "empty batch"),
        ("trailing data", &[], format!("{list}{del}"), "strict JSON"),
    ];
    for (what, headers, body, why) in cases {
        let v = raw(&e, "mcp-reader", "POST", headers, body);
        assert_eq!(v.decision(), Decision::Deny, "{what}: {}", v.reason());
        assert!(v.reason().contains(why), "{what}: {}", v.reason());
    }
    // Envelope: other methods, content types, a query string, a body on GET.
    let v = raw(&e, "mcp-agent", "PUT", &[], &list.to_string());
    assert_eq!(v.decision(), Decision::Deny);
    let mut h = vec![
        (":method".to_string(), b"POST".to_vec()),
        (":path".to_string(), b"/mcp?name=x".to_vec()),
        (
            "authorization".to_string(),
            format!("Bearer {}", key("mcp-agent")).into_bytes(),
        ),
        ("content-type".to_string(), b"application/json".to_vec()),
    ];
    assert_eq!(
        e.decide(h.clone(), list.to_string().as_bytes(), NOW)
            .decision(),
        Decision::Deny
    );
    h[1].1 = b"/mcp".to_vec();
    h[3].1 = b"text/plain".to_vec();
    assert_eq!(
        e.decide(h, list.to_string().as_bytes(), NOW).decision(),
        Decision::Deny
    );
}

#[test]
fn headers_that_agree_are_accepted() {
    let e = engine();
    // As the 2.x SDK sends a 2026-07-28 request.
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "run_query", "arguments": {"table": "vehicles", "limit": 2},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?cnVuX3F1ZXJ5?="),
        ("mcp-param-table", "vehicles"),
        ("mcp-param-limit", "2"),
    ];
    let v = raw(&e, "mcp-reader", "POST", &headers, &body.to_string());
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
}

#[test]
fn refusals_are_jsonrpc_errors_with_the_request_ids() {
    let e = engine();
    let v = call(
        &e,
        "mcp-reader",
        "delete_reservation",
        json!({"reservation_id": "r-1"}),
    );
    // The session wire (no protocol-version header, or a handshake-era one): the error in
    // a 200, which is what its clients read. The 2026-07-28 wire: the real status.
    assert_eq!(v.status(), Some(200));
    for (version, status) in [("2025-06-18", 200), ("2026-07-28", 403)] {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                          "params": {"name": "delete_reservation"}});
        let v = raw(
            &e,
            "mcp-reader",
            "POST",
            &[("mcp-protocol-version", version)],
            &body.to_string(),
        );
        assert_eq!(v.status(), Some(status), "{version}");
    }
    let body: Value = serde_json::from_str(&v.response_body()).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32003);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("delete_reservation"));
    assert_eq!(body["error"]["data"]["decision"], "deny");
    // A batch: one error per request.
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "delete_reservation"}}]);
    let v = raw(&e, "mcp-reader", "POST", &[], &batch.to_string());
    let body: Value = serde_json::from_str(&v.response_body()).unwrap();
    let ids: Vec<&Value> = body.as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, [&json!("a"), &json!("b")]);
    // Undecodable: id null. Challenge: its own code, the challenge in data.
    let v = raw(&e, "mcp-reader", "POST", &[], "{");
    assert_eq!(v.status(), Some(403), "nothing to answer in band");
    let body: Value = serde_json::from_str(&v.response_body()).unwrap();
    assert_eq!(body["id"], Value::Null);
    let v = call(
        &e,
        "mcp-agent",
        "delete_reservation",
        json!({"reservation_id": "r-1"}),
    );
    let body: Value = serde_json::from_str(&v.response_body()).unwrap();
    assert_eq!(body["error"]["code"], -32028);
    assert!(body["error"]["data"]["challenge"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
}

const TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
  {"name":"list_reservations","inputSchema":{}},{"name":"get_vehicle","inputSchema":{}},
  {"name":"create_reservation","inputSchema":{}},{"name":"delete_reservation","inputSchema":{}},
  {"name":"purge_reservations","inputSchema":{}},{"name":"execute_sql","inputSchema":{}},
  {"name":"run_query","inputSchema":{}}],"nextCursor":"n"}}"#;

fn list_filter(e: &Engine, who: &str) -> ListFilter {
    let v = raw(
        e,
        who,
        "POST",
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    );
    assert_eq!(v.decision(), Decision::Allow, "{}", v.reason());
    v.allowed()
        .and_then(|a| a.list_filter)
        .expect("tools/list answers are filtered")
}

fn names(body: &[u8], key: &str, field: &str) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["result"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[field].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_answers_show_only_what_the_role_may_reach() {
    let e = engine();
    let cases: &[(&str, &[&str])] = &[
        (
            "mcp-reader",
            &[
                "list_reservations",
                "get_vehicle",
                "execute_sql",
                "run_query",
            ],
        ),
        // delete_reservation needs approval: shown, since it can be called with it.
        (
            "mcp-agent",
            &[
                "list_reservations",
                "get_vehicle",
                "create_reservation",
                "delete_reservation",
                "execute_sql",
            ],
        ),
        // purge_* is denied by a guard for everyone.
        (
            "mcp-analyst",
            &["list_reservations", "get_vehicle", "execute_sql"],
        ),
    ];
    for (who, want) in cases {
        let f = list_filter(&e, who);
        let Answer::Replaced(body) = e.filter_answer(&f, TOOLS.as_bytes()) else {
            panic!("{who}: nothing removed");
        };
        assert_eq!(names(&body, "tools", "name"), *want, "{who}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"]["nextCursor"], "n");
    }
    let f = list_filter(&e, "mcp-reader");
    let resources = r#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"rentals://fleet/summary","name":"a"},{"uri":"rentals://admin/audit","name":"b"}]}}"#;
    let Answer::Replaced(body) = e.filter_answer(&f, resources.as_bytes()) else {
        panic!()
    };
    assert_eq!(
        names(&body, "resources", "uri"),
        ["rentals://fleet/summary"]
    );
    let prompts =
        r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"summarise_reservation"}]}}"#;
    assert_eq!(e.filter_answer(&f, prompts.as_bytes()), Answer::Unchanged);
    // An answer that is not strict JSON is withheld, not passed.
    let dup = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"delete_reservation"}]}}"#;
    let Answer::Replaced(body) = e.filter_answer(&f, dup.as_bytes()) else {
        panic!()
    };
    assert!(String::from_utf8(body).unwrap().contains("withheld"));
    // Calls are not filtered.
    let v = call(
        &e,
        "mcp-reader",
        "get_vehicle",
        json!({"vehicle_id": "v-1"}),
    );
    assert!(v.allowed().and_then(|a| a.list_filter).is_none());
}

#[test]
fn event_stream_answers_are_filtered_across_chunks() {
    let e = engine();
    let f = list_filter(&e, "mcp-reader");
    let tools = TOOLS.replace('\n', "");
    let stream = format!(": keepalive\n\nevent: message\nid: 1\ndata: {tools}\n\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\r\n\r\n");
    // Every cut of the stream into two chunks gives the same output.
    let mut outputs = std::collections::BTreeSet::new();
    for cut in (0..stream.len()).step_by(7) {
        let mut st = EventStream::default();
        let (a, b) = stream.as_bytes().split_at(cut);
        let mut out = e.filter_events(&f, &mut st, a, false);
        out.extend(e.filter_events(&f, &mut st, b, true));
        outputs.insert(String::from_utf8(out).unwrap());
    }
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let out = outputs.into_iter().next().unwrap();
    assert!(
        out.starts_with(": keepalive\n\nevent: message\nid: 1\ndata: "),
        "{out}"
    );
    assert!(
        !out.contains("delete_reservation") && !out.contains("create_reservation"),
        "{out}"
    );
    assert!(
        out.contains("\"run_query\"") && out.contains("notifications/progress"),
        "{out}"
    );
    // A data line hidden behind a bare CR is still seen.
    let mut st = EventStream::default();
    let sneaky = format!("data: {{}}\rdata: {tools}\n\n");
    let out = e.filter_events(&f, &mut st, sneaky.as_bytes(), true);
    assert!(!String::from_utf8_lossy(&out).contains("delete_reservation"));
}
