use super::headers::decode_header_value;
use super::message::{check_uri, records_of};
use super::*;

#[test]
fn resource_uris_that_resolve_elsewhere_are_refused() {
    for ok in [
        "shop://catalog/p-1",
        "file:///srv/docs/readme.md",
        "postgres://db/reservations?limit=5",
        "shop://catalog/v1.2/notes..txt",
    ] {
        assert!(check_uri(ok).is_ok(), "{ok}");
    }
    for bad in [
        "shop://catalog/../admin/secrets",
        "shop://catalog/./p-1",
        "file:///srv/docs/..",
        "shop://catalog/%2e%2e/admin",
        "shop://catalog/%2E%2e/admin",
        "shop://catalog%2fadmin",
        "shop://catalog\\admin",
        "shop://catalog/p-1\n",
        "shop://catalog/%00",
    ] {
        assert!(check_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn builtin_tool_rules() {
    let cases = [
        ("list_reservations", Action::Read),
        ("get_vehicle", Action::Read),
        ("searchDocs", Action::Read),
        ("query_db", Action::Read),
        ("create_reservation", Action::Create),
        ("add_note", Action::Create),
        ("update_reservation", Action::Update),
        // `set` and `patch` are as often nouns: no verb (the bundle names them).
        ("set_status", Action::Execute),
        ("patch_record", Action::Execute),
        ("edit_user", Action::Update),
        ("delete_reservation", Action::Delete),
        ("drop_table", Action::Delete),
        ("remove_user", Action::Delete),
        ("purge_cache", Action::Delete),
        ("get_and_delete_rows", Action::Delete),
        ("list_then_update", Action::Update),
        ("get_or_create_user", Action::Create),
        ("execute_sql", Action::Execute),
        ("run_query", Action::Execute),
        ("send_email", Action::Execute),
        ("get_settings", Action::Read),
        ("reset_password", Action::Execute),
        // Issue 18, class 2: several verbs take the most destructive one.
        ("get_and_cancel_order", Action::Delete),
        ("list_and_revoke_tokens", Action::Delete),
        ("getAndTerminateSession", Action::Delete),
        ("get_and_frobnicate_order", Action::Execute),
        ("list_then_get_rows", Action::Read),
        ("find_and_read_docs", Action::Read),
        ("create_or_replace_order", Action::Delete),
        ("create_and_frobnicate_order", Action::Execute),
        ("update_then_frobnicate", Action::Execute),
        ("get_or_create_user", Action::Create),
    ];
    for (name, action) in cases {
        assert_eq!(builtin_tool_action(name), action, "{name}");
    }
}

#[test]
fn header_values() {
    assert_eq!(
        decode_header_value(b"get_vehicle").as_deref(),
        Some("get_vehicle")
    );
    assert_eq!(
        decode_header_value(b"=?base64?Z2V0X3ZlaGljbGU=?=").as_deref(),
        Some("get_vehicle")
    );
    // Non-canonical base64 and bad UTF-8 match nothing.
    assert_eq!(decode_header_value(b"=?base64?Z2V0X3ZlaGljbGV=?="), None);
    assert_eq!(decode_header_value(b"=?base64?/w==?="), None);
}

#[test]
fn records_flatten() {
    let v: Json = serde_json::from_str(
        r#"{"table": "reservations", "ids": [1, 2, 2], "filter": {"status": "open", "x": null}, "dry": true}"#,
    )
    .unwrap();
    let r = records_of(&v);
    assert_eq!(r["table"], ["reservations"]);
    assert_eq!(r["ids"], ["1", "2"]);
    assert_eq!(r["filter.status"], ["open"]);
    assert_eq!(r["dry"], ["true"]);
    assert!(!r.contains_key("filter.x"));
}

#[test]
fn lists_are_filtered_by_shape() {
    let mut msg: Json = serde_json::from_str(
        r#"[{"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, {"name": "b"}, {"title": "no name"}], "nextCursor": "c"}},
            {"jsonrpc": "2.0", "id": 2, "result": {"resources": [{"uri": "x://1"}], "resourceTemplates": "oops"}}]"#,
    )
    .unwrap();
    let removed = filter_lists(&mut msg, &mut |kind, n| kind == Listed::Tool && n == "a");
    assert_eq!(removed, 4);
    assert_eq!(
        msg[0]["result"]["tools"],
        serde_json::json!([{"name": "a"}])
    );
    assert_eq!(msg[0]["result"]["nextCursor"], "c");
    assert_eq!(msg[1]["result"]["resources"], serde_json::json!([]));
    assert_eq!(msg[1]["result"]["resourceTemplates"], serde_json::json!([]));
}
