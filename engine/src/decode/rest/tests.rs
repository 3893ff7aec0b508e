use super::*;
use crate::bundle::Route as RouteCfg;

fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"api.test".to_vec()),
    ];
    for (n, v) in headers {
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
    RequestHead::from_headers(h).unwrap()
}

fn decoder(style: RestStyle, prefix: &str, routes: Option<Vec<RouteCfg>>) -> RestDecoder {
    let cfg = RestConfig {
        style,
        base_path: None,
        id_field: None,
        default_schema: None,
        routes,
    };
    let mut errs = crate::bundle::Problems::default();
    let prefix = config_segments(prefix).unwrap();
    let d = RestDecoder::compile(&cfg, &prefix, "services[0].rest", &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    d.unwrap()
}

/// Renders ops compactly: `action resource scope {records}`.
fn show(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .map(|o| {
            let mut s = format!(
                "{} {} {}",
                o.action,
                o.resource,
                if o.scope == Scope::All { "all" } else { "some" }
            );
            if !o.records.is_empty() {
                s.push_str(&format!(" {:?}", o.records));
            }
            if !o.sets.is_empty() {
                s.push_str(&format!(" sets {:?}", o.sets));
            }
            s
        })
        .collect()
}

fn run(
    d: &RestDecoder,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Vec<String>, String> {
    run_body(d, method, path, headers, None)
}

/// `run` with the body the pipeline hands over when a grant checks record values.
fn run_body(
    d: &RestDecoder,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Vec<String>, String> {
    let h = head(method, path, headers);
    let t = Target::parse(&h.path).map_err(|e| e.0)?;
    let input = Input {
        service: "svc",
        prefix: &[],
        head: &h,
        target: &t,
        body: body.map(str::as_bytes),
    };
    d.decode(&input).ops.map(|ops| show(&ops)).map_err(|e| e.0)
}

#[test]
fn dreamfactory_table() {
    let d = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
    let ok: &[(&str, &str, &[&str])] = &[
        ("GET", "/api/v2/rentals/_table/reservations", &["read reservations some"]),
        ("GET", "/api/v2/rentals/_table/reservations?limit=5&fields=id", &["read reservations some"]),
        ("DELETE", "/api/v2/rentals/_table/reservations", &["delete reservations all"]),
        ("PATCH", "/api/v2/rentals/_table/reservations", &["update reservations all"]),
        ("POST", "/api/v2/rentals/_table/reservations", &["create reservations some"]),
        ("DELETE", "/api/v2/rentals/_table/reservations?ids=r-2,r-1", &[r#"delete reservations some {"id": ["r-1", "r-2"]}"#]),
        ("DELETE", "/api/v2/rentals/_table/reservations?ids=7&id_field=vehicle_id", &[r#"delete reservations some {"vehicle_id": ["7"]}"#]),
        ("DELETE", "/api/v2/rentals/_table/reservations/r-17", &[r#"delete reservations some {"id": ["r-17"]}"#]),
        ("GET", "/api/v2/rentals/_table/reservations/r%2017", &[r#"read reservations some {"id": ["r 17"]}"#]),
        ("DELETE", "/api/v2/rentals/_table/reservations?filter=(tenant_id%3D'acme')%20and%20(starts_at<'2024-01-01')", &[r#"delete reservations some {"tenant_id": ["acme"]}"#]),
        ("DELETE", "/api/v2/rentals/_table/reservations?filter=id%20IN%20('a','b')", &[r#"delete reservations some {"id": ["a", "b"]}"#]),
        ("DELETE", "/api/v2/rentals/_table/reservations?filter=id!%3D'x'", &["delete reservations all"]),
        ("DELETE", "/api/v2/rentals/_table/reservations?filter=name%20like%20'%25'", &["delete reservations all"]),
        ("DELETE", "/api/v2/rentals/_table/reservations?filter=(id%3D1)%20or%20(name%20is%20not%20null)", &["delete reservations all"]),
        ("DELETE", "/api/v2/rentals/_table/reservations?filter=(id%3D1)%20or%20(id%3D2)", &[r#"delete reservations some {"id": ["1", "2"]}"#]),
        ("GET", "/api/v2/rentals/_table", &["read _table some"]),
        ("GET", "/api/v2/rentals", &["read _service some"]),
        ("DELETE", "/api/v2/rentals/_schema/reservations", &["drop reservations some"]),
        ("PATCH", "/api/v2/rentals/_schema/reservations", &["alter reservations some"]),
        ("DELETE", "/api/v2/rentals/_schema/reservations/_field/notes", &["alter reservations some"]),
        ("POST", "/api/v2/rentals/_schema", &["alter _schema some"]),
        ("GET", "/api/v2/rentals/_schema/reservations", &["read _schema/reservations some"]),
        ("POST", "/api/v2/rentals/_proc/cleanup", &["execute _proc/cleanup some"]),
        ("GET", "/api/v2/rentals/_func/total", &["execute _func/total some"]),
    ];
    for (m, p, want) in ok {
        assert_eq!(run(&d, m, p, &[]).unwrap(), *want, "{m} {p}");
    }
    let denied: &[(&str, &str, &str)] = &[
        (
            "GET",
            "/api/v2/rentals/_table/reservations?related=vehicle_by_vehicle_id",
            "related",
        ),
        (
            "GET",
            "/api/v2/rentals/_table/reservations?foo=1",
            "unknown DreamFactory query parameter",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?ids=1&ids=2",
            "repeated",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?ids=1&filter=id%3D1",
            "both",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?ids=1,,2",
            "empty id",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?ids=1,%202",
            "surrounding spaces",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations/1,2",
            "one id",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?filter=1%3D1",
            "column name",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?filter=id%3Did",
            "not a literal",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?filter=id%3D'1'%20--",
            "bad number",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?filter=id%3D'1'%3B",
            "unexpected `;`",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?filter=id%3D'a\\'",
            "backslash",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations/1?ids=2",
            "record path",
        ),
        (
            "POST",
            "/api/v2/rentals/_table/reservations/1",
            "DreamFactory record",
        ),
        (
            "DELETE",
            "/api/v2/rentals/_table/reservations?_method=GET",
            "unknown DreamFactory query parameter",
        ),
        (
            "GET",
            "/api/v2/rentals/_user/session",
            "not a DreamFactory resource path",
        ),
        (
            "GET",
            "/api/v2/rentalsx/_table/reservations",
            "outside the service's base path",
        ),
        (
            "TRACE",
            "/api/v2/rentals/_table/reservations",
            "method TRACE",
        ),
        ("DELETE", "/api/v2/rentals/_schema", "method DELETE"),
    ];
    for (m, p, why) in denied {
        let err = run(&d, m, p, &[]).unwrap_err();
        assert!(err.contains(why), "{m} {p}: {err}");
    }
}

type Headers<'a> = &'a [(&'a str, &'a str)];

#[test]
fn postgrest_table() {
    let d = decoder(RestStyle::Postgrest, "/rest", None);
    let ok: &[(&str, &str, Headers, &[&str])] = &[
        (
            "GET",
            "/rest/reservations?select=id,customer&id=eq.r-1",
            &[],
            &[r#"read reservations some {"id": ["r-1"]}"#],
        ),
        (
            "GET",
            "/rest/reservations?select=*,vehicles(*)",
            &[],
            &["read reservations some", "read vehicles some"],
        ),
        (
            "GET",
            "/rest/reservations?select=id,car:vehicles!fk_vehicle(model,owners(name))",
            &[],
            &[
                "read reservations some",
                "read vehicles some",
                "read owners some",
            ],
        ),
        (
            "GET",
            "/rest/reservations?select=count(),amount.sum()",
            &[],
            &["read reservations some"],
        ),
        (
            "DELETE",
            "/rest/reservations",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?limit=1&order=id",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?id=eq.r-17",
            &[],
            &[r#"delete reservations some {"id": ["r-17"]}"#],
        ),
        (
            "DELETE",
            "/rest/reservations?id=in.(r-1,\"r,2\")",
            &[],
            &[r#"delete reservations some {"id": ["r,2", "r-1"]}"#],
        ),
        (
            "DELETE",
            "/rest/reservations?id=eq.%22r-1%22",
            &[],
            &[r#"delete reservations some {"id": ["\"r-1\""]}"#],
        ),
        (
            "DELETE",
            "/rest/reservations?or=(id.eq.%22r-1%22)",
            &[],
            &[r#"delete reservations some {"id": ["r-1"]}"#],
        ),
        (
            "DELETE",
            "/rest/reservations?id=not.eq.r-17",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?id=neq.r-17",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?customer=like.*",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?customer=like.A*",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?starts_at=lt.2024-01-01",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?vehicles.id=eq.1",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?or=(id.eq.a,id.eq.b)",
            &[],
            &[r#"delete reservations some {"id": ["a", "b"]}"#],
        ),
        (
            "DELETE",
            "/rest/reservations?or=(id.eq.a,customer.not.is.null)",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?not.or=(id.eq.a,id.eq.b)",
            &[],
            &["delete reservations all"],
        ),
        (
            "DELETE",
            "/rest/reservations?and=(tenant_id.eq.acme,or(id.eq.1,id.eq.2))",
            &[],
            &[r#"delete reservations some {"id": ["1", "2"], "tenant_id": ["acme"]}"#],
        ),
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme&tenant_id=eq.globex",
            &[],
            &["update reservations all"],
        ),
        (
            "PATCH",
            "/rest/reservations",
            &[],
            &["update reservations all"],
        ),
        (
            "POST",
            "/rest/reservations",
            &[],
            &["create reservations some"],
        ),
        (
            "POST",
            "/rest/reservations?on_conflict=id",
            &[("prefer", "return=minimal, resolution=merge-duplicates")],
            &["create reservations some", "update reservations some"],
        ),
        (
            "PUT",
            "/rest/reservations?id=eq.r-1",
            &[],
            &[
                r#"create reservations some {"id": ["r-1"]}"#,
                r#"update reservations some {"id": ["r-1"]}"#,
            ],
        ),
        (
            "GET",
            "/rest/reservations",
            &[("accept-profile", "private")],
            &["read private.reservations some"],
        ),
        (
            "GET",
            "/rest/reservations",
            &[("accept-profile", "public")],
            &["read reservations some"],
        ),
        (
            "DELETE",
            "/rest/reservations?id=eq.1",
            &[("content-profile", "audit")],
            &[r#"delete audit.reservations some {"id": ["1"]}"#],
        ),
        (
            "POST",
            "/rest/rpc/purge_old",
            &[],
            &["execute rpc/purge_old some"],
        ),
        ("GET", "/rest/", &[], &["read _openapi some"]),
    ];
    for (m, p, h, want) in ok {
        assert_eq!(run(&d, m, p, h).unwrap(), *want, "{m} {p}");
    }
    let denied: &[(&str, &str, Headers, &str)] = &[
        (
            "DELETE",
            "/rest/reservations?id=bogus.1",
            &[],
            "unknown PostgREST operator",
        ),
        ("DELETE", "/rest/reservations?id=1", &[], "no operator"),
        (
            "POST",
            "/rest/reservations",
            &[("prefer", "resolution=Merge-Duplicates")],
            "unrecognised Prefer",
        ),
        (
            "DELETE",
            "/rest/reservations/1",
            &[],
            "not a PostgREST resource path",
        ),
        (
            "DELETE",
            "/rest/reservations?or=(id.eq.a",
            &[],
            "parenthesised",
        ),
        ("DELETE", "/rest/reservations?or=()", &[], "not a filter"),
        (
            "GET",
            "/rest/reservations?select=*,bad%20name(*)",
            &[],
            "not a resource name",
        ),
        (
            "GET",
            "/rest/reservations",
            &[("accept-profile", "a"), ("content-profile", "b")],
            "would ignore it",
        ),
        // Issue 18, class 3: the header the method does not use is refused.
        (
            "GET",
            "/rest/reservations",
            &[("content-profile", "private")],
            "`content-profile` on a GET request",
        ),
        (
            "DELETE",
            "/rest/reservations?id=eq.1",
            &[("accept-profile", "audit")],
            "`accept-profile` on a DELETE request",
        ),
        (
            "POST",
            "/rest/rpc/purge_old",
            &[("accept-profile", "audit")],
            "`accept-profile` on a POST request",
        ),
        (
            "GET",
            "/rest/reservations",
            &[("accept-profile", "a"), ("accept-profile", "b")],
            "repeated",
        ),
        (
            "GET",
            "/rest/reservations",
            &[("accept-profile", "a b")],
            "one schema",
        ),
        (
            "POST",
            "/rest/reservations",
            &[("prefer", "a"), ("prefer", "b")],
            "repeated",
        ),
        ("DELETE", "/rest/", &[], "root"),
    ];
    for (m, p, h, why) in denied {
        let err = run(&d, m, p, h).unwrap_err();
        assert!(err.contains(why), "{m} {p}: {err}");
    }
}

#[test]
fn route_templates() {
    let r = |methods: &[&str],
             path: &str,
             resource: &str,
             action: Option<&str>,
             scope: Option<&str>| RouteCfg {
        methods: methods.iter().map(|s| s.to_string()).collect(),
        path: path.to_string(),
        resource: resource.to_string(),
        action: action.map(str::to_string),
        scope: scope.map(str::to_string),
        query: None,
    };
    let d = decoder(
        RestStyle::Routes,
        "/v1",
        Some(vec![
            r(&["GET"], "/reservations", "reservations", None, None),
            r(
                &["DELETE"],
                "/reservations",
                "reservations",
                None,
                Some("all"),
            ),
            r(
                &["GET", "DELETE"],
                "/reservations/{id}",
                "reservations",
                None,
                None,
            ),
            r(
                &["POST"],
                "/reservations/{id}/cancel",
                "reservations",
                Some("update"),
                None,
            ),
            r(&["GET"], "/tables/{table}/rows", "db.{table}", None, None),
            RouteCfg {
                query: Some(vec!["limit".into(), "tenant".into()]),
                ..r(&["GET"], "/orders", "orders", None, None)
            },
        ]),
    );
    let ok: &[(&str, &str, &[&str])] = &[
        ("GET", "/v1/reservations", &["read reservations some"]),
        ("DELETE", "/v1/reservations", &["delete reservations all"]),
        (
            "DELETE",
            "/v1/reservations/r-1",
            &[r#"delete reservations some {"id": ["r-1"]}"#],
        ),
        (
            "POST",
            "/v1/reservations/r-1/cancel",
            &[r#"update reservations some {"id": ["r-1"]}"#],
        ),
        (
            "GET",
            "/v1/tables/payments/rows",
            &[r#"read db.payments some {"table": ["payments"]}"#],
        ),
        // Declared query parameters are records.
        (
            "GET",
            "/v1/orders?tenant=acme&limit=5",
            &[r#"read orders some {"limit": ["5"], "tenant": ["acme"]}"#],
        ),
    ];
    for (m, p, want) in ok {
        assert_eq!(run(&d, m, p, &[]).unwrap(), *want, "{m} {p}");
    }
    // Issue 18, class 3: a query parameter the route does not declare is refused (a
    // framework may merge `?id=` into the path's `{id}`, `?force=true` changes an action).
    for (m, p, want) in [
        (
            "DELETE",
            "/v1/reservations/r-1?id=r-2",
            "`id` is not declared",
        ),
        (
            "POST",
            "/v1/reservations/r-1/cancel?force=true",
            "`force` is not declared",
        ),
        ("GET", "/v1/orders?tenant=acme&tenant=globex", "repeated"),
    ] {
        let e = run(&d, m, p, &[]).unwrap_err();
        assert!(e.contains(want), "{m} {p}: {e}");
    }
    for (m, p) in [
        ("PUT", "/v1/reservations/r-1"),
        ("GET", "/v1/reservations/r-1/x"),
        ("GET", "/v1/other"),
    ] {
        assert!(
            run(&d, m, p, &[]).unwrap_err().contains("no route"),
            "{m} {p}"
        );
    }
    let mut errs = crate::bundle::Problems::default();
    let bad = RestConfig {
        style: RestStyle::Routes,
        base_path: None,
        id_field: Some("x".into()),
        default_schema: None,
        routes: Some(vec![
            r(&["GET"], "/a/{b c}", "x", None, None),
            r(&["BREW"], "/a", "x", None, None),
            r(
                &["GET"],
                "/a/{id}",
                "{nope}",
                Some("obliterate"),
                Some("most"),
            ),
        ]),
    };
    RestDecoder::compile(&bad, &[], "services[2].rest", &mut errs);
    let paths: Vec<String> = errs.0.iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "services[2].rest.id_field",
            "services[2].rest.routes[0].path",
            "services[2].rest.routes[1].methods[0]",
            "services[2].rest.routes[2].resource",
            "services[2].rest.routes[2].action",
            "services[2].rest.routes[2].scope",
        ]
    );
}
const JSON_CT: (&str, &str) = ("content-type", "application/json");

#[test]
fn postgrest_write_bodies() {
    let d = decoder(RestStyle::Postgrest, "/rest", None);
    let json: Headers = &[JSON_CT];
    let ok: &[(&str, &str, Headers, &str, &[&str])] = &[
        // PATCH: the filter says which rows, the body what they become.
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme",
            json,
            r#"{"tenant_id":"globex"}"#,
            &[
                r#"update reservations some {"tenant_id": ["acme"]} sets {"tenant_id": Some(["globex"])}"#,
            ],
        ),
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme",
            json,
            r#"{"customer":"Ada"}"#,
            &[
                r#"update reservations some {"tenant_id": ["acme"]} sets {"customer": Some(["Ada"])}"#,
            ],
        ),
        (
            "PATCH",
            "/rest/reservations?tenant_id=eq.acme",
            json,
            r#"{"tenant_id":null}"#,
            &[r#"update reservations some {"tenant_id": ["acme"]} sets {"tenant_id": None}"#],
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            &[("content-type", "application/json; charset=utf-8")],
            r#"{"meta":{"a":1},"tags":["x"],"n":1.5,"e":1e2,"ok":true,"seats":7,"big":-9}"#,
            &[
                r#"update reservations some {"id": ["1"]} sets {"big": Some(["-9"]), "e": None, "meta": None, "n": None, "ok": Some(["true"]), "seats": Some(["7"]), "tags": None}"#,
            ],
        ),
        // No content-type: PostgREST reads the body as JSON.
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            &[],
            r#"{"tenant_id":"acme"}"#,
            &[r#"update reservations some {"id": ["1"]} sets {"tenant_id": Some(["acme"])}"#],
        ),
        // `{}` assigns nothing (PostgREST runs no UPDATE).
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            json,
            "{}",
            &[r#"update reservations some {"id": ["1"]}"#],
        ),
        // Several rows: any of them may be the one applied.
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            json,
            r#"[{"tenant_id":"acme"},{"tenant_id":"globex"}]"#,
            &[
                r#"update reservations some {"id": ["1"]} sets {"tenant_id": Some(["acme", "globex"])}"#,
            ],
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            json,
            r#"[{"a":"1"},{"b":"2"}]"#,
            &[r#"update reservations some {"id": ["1"]} sets {"a": None, "b": None}"#],
        ),
        // `columns=`: only the listed keys are written; a listed key a row lacks is
        // NULL or its default.
        (
            "PATCH",
            "/rest/reservations?id=eq.1&columns=customer,tenant_id",
            json,
            r#"{"customer":"Ada","id":"9"}"#,
            &[
                r#"update reservations some {"id": ["1"]} sets {"customer": Some(["Ada"]), "tenant_id": None}"#,
            ],
        ),
        // POST: the rows created prove their values, as INSERT … VALUES does.
        (
            "POST",
            "/rest/reservations",
            json,
            r#"[{"id":"r-1","tenant_id":"acme"},{"id":"r-2","tenant_id":"acme"}]"#,
            &[r#"create reservations some {"id": ["r-1", "r-2"], "tenant_id": ["acme"]}"#],
        ),
        (
            "POST",
            "/rest/reservations",
            json,
            r#"[{"id":"r-1","tenant_id":"acme"},{"id":"r-2"}]"#,
            &[r#"create reservations some {"id": ["r-1", "r-2"]}"#],
        ),
        (
            "POST",
            "/rest/reservations",
            json,
            r#"{"id":"r-1","tenant_id":null,"meta":{"a":"acme"}}"#,
            &[r#"create reservations some {"id": ["r-1"]}"#],
        ),
        (
            "POST",
            "/rest/reservations",
            json,
            "[]",
            &["create reservations some"],
        ),
        (
            "POST",
            "/rest/reservations?columns=id,tenant_id",
            json,
            r#"[{"id":"r-1","tenant_id":"acme","customer":"Ada"}]"#,
            &[r#"create reservations some {"id": ["r-1"], "tenant_id": ["acme"]}"#],
        ),
        (
            "POST",
            "/rest/reservations?columns=id,tenant_id",
            json,
            r#"{"id":"r-1"}"#,
            &[r#"create reservations some {"id": ["r-1"]}"#],
        ),
        // Upsert: the update half assigns every column written, to the rows whose
        // conflict key equals a new row's.
        (
            "POST",
            "/rest/reservations?on_conflict=id,tenant_id",
            &[JSON_CT, ("prefer", "resolution=merge-duplicates")],
            r#"{"id":"r-1","tenant_id":"acme","customer":"Ada"}"#,
            &[
                r#"create reservations some {"customer": ["Ada"], "id": ["r-1"], "tenant_id": ["acme"]}"#,
                r#"update reservations some {"id": ["r-1"], "tenant_id": ["acme"]} sets {"customer": Some(["Ada"]), "id": Some(["r-1"]), "tenant_id": Some(["acme"])}"#,
            ],
        ),
        (
            "POST",
            "/rest/reservations",
            &[JSON_CT, ("prefer", "resolution=merge-duplicates")],
            r#"{"id":"r-1","tenant_id":"globex"}"#,
            &[
                r#"create reservations some {"id": ["r-1"], "tenant_id": ["globex"]}"#,
                r#"update reservations all sets {"id": Some(["r-1"]), "tenant_id": Some(["globex"])}"#,
            ],
        ),
        // PUT: the row is written only if it satisfies the filter.
        (
            "PUT",
            "/rest/reservations?id=eq.r-1",
            json,
            r#"{"id":"r-1","tenant_id":"acme"}"#,
            &[
                r#"create reservations some {"id": ["r-1"], "tenant_id": ["acme"]}"#,
                r#"update reservations some {"id": ["r-1"]} sets {"id": Some(["r-1"]), "tenant_id": Some(["acme"])}"#,
            ],
        ),
        (
            "PUT",
            "/rest/reservations?id=eq.r-1",
            json,
            r#"{"id":"r-2"}"#,
            &[
                r#"create reservations some {"id": []}"#,
                r#"update reservations some {"id": ["r-1"]} sets {"id": Some(["r-2"])}"#,
            ],
        ),
        // Bodies of other methods are not rows.
        (
            "DELETE",
            "/rest/reservations?id=eq.1",
            &[],
            "anything",
            &[r#"delete reservations some {"id": ["1"]}"#],
        ),
    ];
    for (m, p, h, body, want) in ok {
        assert_eq!(
            run_body(&d, m, p, h, Some(body)).unwrap(),
            *want,
            "{m} {p} {body}"
        );
    }
    let denied: &[(&str, &str, Headers, &str, &str)] = &[
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            &[("content-type", "application/x-www-form-urlencoded")],
            "tenant_id=globex",
            "not decoded",
        ),
        (
            "POST",
            "/rest/reservations",
            &[("content-type", "text/csv")],
            "id,tenant_id\nr-1,globex",
            "not decoded",
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            &[("content-type", "text/plain")],
            "{}",
            "application/json only",
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            &[("content-type", "application/json; charset=latin1")],
            "{}",
            "charset",
        ),
        ("PATCH", "/rest/reservations?id=eq.1", json, "", "no body"),
        ("POST", "/rest/reservations", &[], "", "no body"),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            json,
            "tenant_id",
            "not strict JSON",
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            json,
            r#"{"tenant_id":"acme","tenant_id":"globex"}"#,
            "duplicate key",
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            json,
            r#"{"tenant id":"globex"}"#,
            "not a plain column name",
        ),
        (
            "PATCH",
            "/rest/reservations?id=eq.1",
            json,
            r#"{"tenant_id":"acme","Tenant_Id":"globex"}"#,
            "differ only in case",
        ),
        ("POST", "/rest/reservations", json, "[1]", "objects only"),
        (
            "POST",
            "/rest/reservations",
            json,
            r#""r-1""#,
            "object or an array",
        ),
        (
            "POST",
            "/rest/reservations?columns=id,bad-col",
            json,
            "{}",
            "not a plain column name",
        ),
        (
            "POST",
            "/rest/reservations?columns=id&columns=tenant_id",
            json,
            "{}",
            "repeated",
        ),
        (
            "PUT",
            "/rest/reservations?id=eq.r-1&columns=id",
            json,
            r#"{"id":"r-1"}"#,
            "`columns` on a PUT",
        ),
        (
            "POST",
            "/rest/reservations?on_conflict=id,%22x%22",
            &[JSON_CT, ("prefer", "resolution=merge-duplicates")],
            r#"{"id":"r-1"}"#,
            "not a plain column name",
        ),
    ];
    for (m, p, h, body, why) in denied {
        let err = run_body(&d, m, p, h, Some(body)).unwrap_err();
        assert!(err.contains(why), "{m} {p} {body}: {err}");
    }
}

#[test]
fn dreamfactory_reads_and_deletes_with_a_body_are_refused() {
    // Issue 18, class 3: DreamFactory copies options missing from the URL from a JSON
    // body and acts on its records; for a DELETE, body `ids` win over a URL filter.
    let d = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
    let t = "/api/v2/rentals/_table/reservations";
    assert!(d.reads_body_options());
    for (m, path, body) in [
        (
            "DELETE",
            format!("{t}?filter=id%3D'r-1'"),
            r#"{"ids":"r-2,r-3"}"#,
        ),
        ("GET", format!("{t}?ids=r-1"), r#"{"filter":"1=1"}"#),
        (
            "DELETE",
            format!("{t}/r-1"),
            r#"{"resource":[{"id":"r-9"}]}"#,
        ),
    ] {
        let err = run_body(
            &d,
            m,
            &path,
            &[("content-type", "application/json")],
            Some(body),
        )
        .unwrap_err();
        assert!(err.contains("with a body"), "{m} {path}: {err}");
    }
    // An empty body is no body.
    assert_eq!(
        run_body(&d, "DELETE", &format!("{t}/r-1"), &[], Some("")).unwrap(),
        [r#"delete reservations some {"id": ["r-1"]}"#]
    );
    let pg = decoder(RestStyle::Postgrest, "/rest", None);
    assert!(!pg.reads_body_options());
}

#[test]
fn dreamfactory_write_bodies() {
    let d = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
    let t = "/api/v2/rentals/_table/reservations";
    let acme = format!("{t}?filter=tenant_id%3D'acme'");
    let ok: &[(&str, &str, &str, &[&str])] = &[
        (
            "PATCH",
            &acme,
            r#"{"resource":[{"id":1,"tenant_id":"globex"}]}"#,
            &[
                r#"update reservations some {"tenant_id": ["acme"]} sets {"id": Some(["1"]), "tenant_id": Some(["globex"])}"#,
            ],
        ),
        (
            "PATCH",
            &acme,
            r#"[{"customer":"Ada"}]"#,
            &[
                r#"update reservations some {"tenant_id": ["acme"]} sets {"customer": Some(["Ada"])}"#,
            ],
        ),
        // A lookup (`{…}`) is replaced server-side: its value is not known.
        (
            "PATCH",
            &acme,
            r#"{"resource":[{"tenant_id":"{user.tenant}"}]}"#,
            &[r#"update reservations some {"tenant_id": ["acme"]} sets {"tenant_id": None}"#],
        ),
        (
            "PATCH",
            "/api/v2/rentals/_table/reservations/r-1",
            r#"{"customer":"Ada","tenant_id":null}"#,
            &[
                r#"update reservations some {"id": ["r-1"]} sets {"customer": Some(["Ada"]), "tenant_id": None}"#,
            ],
        ),
        (
            "PATCH",
            t,
            r#"{"resource":[{"id":1,"tenant_id":"acme"}]}"#,
            &[r#"update reservations all sets {"id": Some(["1"]), "tenant_id": Some(["acme"])}"#],
        ),
        // A create proves what it writes; `ids`/`filter` select no row of a create.
        (
            "POST",
            t,
            r#"{"resource":[{"tenant_id":"acme"},{"tenant_id":"acme","id":2}]}"#,
            &[r#"create reservations some {"tenant_id": ["acme"]}"#],
        ),
        (
            "POST",
            &format!("{t}?ids=x"),
            r#"[{"tenant_id":"acme"}]"#,
            &[r#"create reservations some {"tenant_id": ["acme"]}"#],
        ),
        (
            "POST",
            t,
            r#"{"tenant_id":"acme"}"#,
            &[r#"create reservations some {"tenant_id": ["acme"]}"#],
        ),
    ];
    for (m, p, body, want) in ok {
        assert_eq!(
            run_body(&d, m, p, &[JSON_CT], Some(body)).unwrap(),
            *want,
            "{m} {p} {body}"
        );
    }
    let denied: &[(&str, &str, Headers, &str, &str)] = &[
        (
            "PUT",
            "/api/v2/rentals/_table/reservations/r-1",
            &[JSON_CT],
            r#"{"tenant_id":"acme"}"#,
            "use PATCH",
        ),
        (
            "PUT",
            t,
            &[JSON_CT],
            r#"[{"tenant_id":"acme"}]"#,
            "use PATCH",
        ),
        (
            "PATCH",
            "/api/v2/rentals/_table/reservations/r-1",
            &[JSON_CT],
            r#"[{"customer":"Ada"}]"#,
            "one record object",
        ),
        (
            "PATCH",
            &acme,
            &[JSON_CT],
            r#"{"resource":[{"customer":"Ada"}],"ids":"1"}"#,
            "beside `resource`",
        ),
        (
            "PATCH",
            &acme,
            &[JSON_CT],
            r#"{"resource":{"customer":"Ada"}}"#,
            "not an array",
        ),
        (
            "POST",
            t,
            &[JSON_CT],
            r#"{"resource":[{"id":1,"vehicle_by_vehicle_id":{"id":9}}]}"#,
            "nested value",
        ),
        (
            "PATCH",
            "/api/v2/rentals/_table/reservations/r-1",
            &[JSON_CT],
            r#"{"resource":[{"tenant_id":"globex"}]}"#,
            "nested value",
        ),
        (
            "PATCH",
            &acme,
            &[JSON_CT],
            r#"[{"tenant_id":"acme","TENANT_ID":"globex"}]"#,
            "differ only in case",
        ),
        (
            "PATCH",
            &acme,
            &[JSON_CT],
            r#"[{"$set":{"tenant_id":"globex"}}]"#,
            "not a plain column name",
        ),
        (
            "POST",
            t,
            &[],
            r#"[{"tenant_id":"acme"}]"#,
            "without content-type",
        ),
        (
            "POST",
            t,
            &[("content-type", "application/xml")],
            "<resource/>",
            "application/json only",
        ),
        ("POST", t, &[JSON_CT], "", "no body"),
        ("POST", t, &[JSON_CT], "true", "a record, a list of records"),
    ];
    for (m, p, h, body, why) in denied {
        let err = run_body(&d, m, p, h, Some(body)).unwrap_err();
        assert!(err.contains(why), "{m} {p} {body}: {err}");
    }
}

#[test]
fn which_bodies_hold_rows() {
    let pg = decoder(RestStyle::Postgrest, "/rest", None);
    let df = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
    let routes = decoder(
        RestStyle::Routes,
        "/v1",
        Some(vec![RouteCfg {
            methods: vec!["POST".into()],
            path: "/reservations".into(),
            resource: "reservations".into(),
            action: None,
            scope: None,
            query: None,
        }]),
    );
    let cases: &[(&RestDecoder, &str, &str, bool)] = &[
        (&pg, "POST", "/rest/reservations", true),
        (&pg, "PATCH", "/rest/reservations?id=eq.1", true),
        (&pg, "PUT", "/rest/reservations?id=eq.1", true),
        (&pg, "GET", "/rest/reservations", false),
        (&pg, "DELETE", "/rest/reservations", false),
        // A function's arguments (held when a grant or guard needs them).
        (&pg, "POST", "/rest/rpc/purge", true),
        (&pg, "GET", "/rest/rpc/purge", false),
        (&pg, "POST", "/rest/rpc", true), // a table named `rpc`
        (&pg, "POST", "/other/reservations", false),
        (&df, "POST", "/api/v2/rentals/_table/reservations", true),
        (
            &df,
            "PATCH",
            "/api/v2/rentals/_table/reservations/r-1",
            true,
        ),
        (&df, "PUT", "/api/v2/rentals/_table/reservations", true),
        (&df, "DELETE", "/api/v2/rentals/_table/reservations", false),
        (&df, "POST", "/api/v2/rentals/_proc/cleanup", false),
        (&df, "PATCH", "/api/v2/rentals/_schema/reservations", false),
        (&routes, "POST", "/v1/reservations", false),
    ];
    for (d, m, p, want) in cases {
        let t = Target::parse(p).unwrap();
        assert_eq!(d.body_holds_rows(m, &t), *want, "{m} {p}");
        assert_eq!(
            d.body_holds_arguments(m, &t),
            *want && p.contains("/rpc/"),
            "arguments: {m} {p}"
        );
    }
}

/// A route's body is held only where a member could shadow a parameter: routes without
/// parameters stream their bodies (uploads of any size), those with a `{param}` or a
/// declared query parameter hold them.
#[test]
fn which_route_bodies_are_read() {
    let route = |path: &str, query: Option<Vec<String>>| RouteCfg {
        methods: vec!["POST".into()],
        path: path.into(),
        resource: "r".into(),
        action: None,
        scope: None,
        query,
    };
    let routes = decoder(
        RestStyle::Routes,
        "/v1",
        Some(vec![
            route("/uploads", None),
            route("/items/{id}", None),
            route("/search", Some(vec!["tenant".into()])),
        ]),
    );
    for (method, path, want) in [
        ("POST", "/v1/uploads", false),
        ("POST", "/v1/items/7", true),
        ("POST", "/v1/search", true),
        ("GET", "/v1/items/7", false),
        ("POST", "/v1/nothing", false),
        ("POST", "/other/items/7", false),
    ] {
        let t = Target::parse(path).unwrap();
        assert_eq!(routes.reads_route_body(method, &t), want, "{method} {path}");
    }
    let pg = decoder(RestStyle::Postgrest, "/rest", None);
    assert!(!pg.reads_route_body("POST", &Target::parse("/rest/items").unwrap()));
}
