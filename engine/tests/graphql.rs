//! The GraphQL decoder, table-driven: transports, documents, disguises, limits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::bundle::GraphqlConfig;
use scopegate_engine::decode::graphql::GraphqlDecoder;
use scopegate_engine::decode::{Decode, Input};
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::operation::Operation;
use scopegate_engine::request::{RequestHead, Target};
use serde_json::{json, Value};

const VOLUME_DELETE: &str =
    "mutation VolumeDelete($id: String!) {\n  volumeDelete(volumeId: $id)\n}";

fn decoder(cfg: Value) -> GraphqlDecoder {
    let cfg: GraphqlConfig = serde_json::from_value(cfg).unwrap();
    let mut errs = scopegate_engine::bundle::Problems::default();
    let d = GraphqlDecoder::compile(Some(&cfg), &["graphql".to_string()], "graphql", &mut errs)
        .unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    d
}

fn show(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .map(|o| {
            let mut s = format!("{} {}", o.action, o.resource);
            for (k, v) in &o.records {
                s.push_str(&format!(" {k}={}", v.join("|")));
            }
            s
        })
        .collect()
}

fn request(
    d: &GraphqlDecoder,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Result<Vec<String>, String> {
    let mut headers = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
    ];
    if let Some(ct) = content_type {
        headers.push(("content-type".to_string(), ct.as_bytes().to_vec()));
    }
    let head = RequestHead::from_headers(headers).unwrap();
    let target = Target::parse(path).map_err(|e| e.0)?;
    d.decode(&input(&head, &target, body.as_bytes()))
        .ops
        .map(|ops| show(&ops))
        .map_err(|e| e.0)
}

fn post(d: &GraphqlDecoder, body: &Value) -> Result<Vec<String>, String> {
    request(
        d,
        "POST",
        "/graphql",
        Some("application/json"),
        &body.to_string(),
    )
}

fn doc(query: &str) -> Result<Vec<String>, String> {
    post(&decoder(json!({})), &json!({ "query": query }))
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn the_incident_document() {
    let d = decoder(json!({}));
    let body = json!({"query": VOLUME_DELETE, "variables": {"id": "vol-prod-1"}, "operationName": "VolumeDelete"});
    assert_eq!(
        post(&d, &body).unwrap(),
        ["delete volumeDelete volumeId=vol-prod-1"]
    );
}

/// (document, operations): every root field of every operation, whatever disguise.
const DOCUMENTS: &[(&str, &[&str])] = &[
    ("{ domains(projectId: \"p\") { customDomains { id } } }", &["read domains projectId=p"]),
    ("query { me { name } project(id: \"p1\") { id } }", &["read me", "read project id=p1"]),
    ("subscription S { deploymentLogs(deploymentId: \"d\") { message } }", &["read subscription/deploymentLogs deploymentId=d"]),
    ("mutation { customDomainCreate(input: {domain: \"a.example.com\", environmentId: \"e1\"}) { id } }",
     &["create customDomainCreate input.domain=a.example.com input.environmentId=e1"]),
    // Aliases: the field counts, never the alias.
    ("mutation { customDomainCreate: volumeDelete(volumeId: \"v1\") }", &["delete volumeDelete volumeId=v1"]),
    ("mutation { a: volumeDelete(volumeId: \"v1\") b: volumeDelete(volumeId: \"v2\") }",
     &["delete volumeDelete volumeId=v1", "delete volumeDelete volumeId=v2"]),
    // Named and inline fragments on the mutation root, nested.
    ("mutation { ...F } fragment F on Mutation { volumeDelete(volumeId: \"v1\") }", &["delete volumeDelete volumeId=v1"]),
    ("mutation { ... on Mutation { ... on Mutation { volumeDelete(volumeId: \"v1\") } } }", &["delete volumeDelete volumeId=v1"]),
    ("mutation { ... { volumeDelete(volumeId: \"v1\") } }", &["delete volumeDelete volumeId=v1"]),
    ("mutation { ...A } fragment A on Mutation { ...B } fragment B on Mutation { volumeDelete(volumeId: \"v1\") }",
     &["delete volumeDelete volumeId=v1"]),
    ("mutation { ...A ...A } fragment A on Mutation { volumeDelete(volumeId: \"v1\") }", &["delete volumeDelete volumeId=v1"]),
    // @skip/@include do not hide a field from the gateway.
    ("mutation { volumeDelete(volumeId: \"v1\") @skip(if: true) }", &["delete volumeDelete volumeId=v1"]),
    ("mutation ($no: Boolean = false) { volumeDelete(volumeId: \"v1\") @include(if: $no) }", &["delete volumeDelete volumeId=v1"]),
    // Comments, commas, odd whitespace, block strings, unicode escapes.
    ("# customDomainCreate\nmutation,{,,volumeDelete # (volumeId: \"x\")\n(volumeId:\"v1\"),,}", &["delete volumeDelete volumeId=v1"]),
    ("mutation {\r\n\tvolumeDelete(volumeId: \"\"\"v1\"\"\")\u{feff}}", &["delete volumeDelete volumeId=v1"]),
    ("mutation { volumeDelete(volumeId: \"v\\u0031\") }", &["delete volumeDelete volumeId=v1"]),
    // Introspection is its own resource; __typename too.
    ("{ __schema { types { name } } __type(name: \"Volume\") { name } }", &["read __schema", "read __type name=Volume"]),
    ("mutation { __typename }", &["read __typename"]),
    // Arguments: lists, enums, ints, nested input objects, null proves nothing.
    ("mutation { volumesDelete(ids: [\"a\", \"b\", \"a\"], mode: FORCE, n: 3, opts: {x: {y: 1.5}}, z: null) }",
     &["delete volumesDelete ids=a|b mode=FORCE n=3 opts.x.y=1.5"]),
    // Mutation names without a known word are execute; both delete words win over create.
    ("mutation { volumeInstanceBackupRestore(volumeInstanceBackupId: \"b\", volumeInstanceId: \"i\") }",
     &["execute volumeInstanceBackupRestore volumeInstanceBackupId=b volumeInstanceId=i"]),
    ("mutation { createOrDeleteThing }", &["delete createOrDeleteThing"]),
];

#[test]
fn documents() {
    for (query, want) in DOCUMENTS {
        match doc(query) {
            Ok(ops) => assert_eq!(&ops, want, "{query}"),
            Err(e) => panic!("{query}: {e}"),
        }
    }
}

/// (document, part of the refusal).
const REFUSED: &[(&str, &str)] = &[
    (
        "mutation { volumeDelete(volumeId: \"v1\") ",
        "does not parse",
    ),
    (
        "mutation { volumeDelete(volumeId: \"v1\" }",
        "does not parse",
    ),
    (
        "mutation { volumeDelete(volumeId: \"\\x\") }",
        "does not parse",
    ),
    ("", "does not parse"),
    ("# only a comment", "does not parse"),
    ("type Query { a: Int }", "only operations and fragments"),
    ("mutation { ...F } fragment F on Mutation { ...F }", "cycle"),
    (
        "mutation { ...A } fragment A on Mutation { ...B } fragment B on Mutation { ...A }",
        "cycle",
    ),
    ("mutation { ...Missing }", "not defined"),
    (
        "mutation { ...F } fragment F on Mutation { a } fragment F on Mutation { b }",
        "defined twice",
    ),
    ("query A { a } query A { b }", "defined twice"),
    (
        "{ a } mutation B { volumeDelete(volumeId: \"v\") }",
        "anonymous operation beside others",
    ),
    (
        "query A { a } mutation B { volumeDelete(volumeId: \"v\") }",
        "no operationName",
    ),
    (
        "mutation { volumeDelete(volumeId: \"a\", volumeId: \"b\") }",
        "given twice",
    ),
    (
        "mutation { x(input: {id: \"a\", id: \"b\"}) }",
        "given twice",
    ),
    (
        "mutation { volumeDelete(volumeId: $id) }",
        "not defined by its operation",
    ),
    (
        "mutation ($id: String, $id: String) { volumeDelete(volumeId: $id) }",
        "defined twice",
    ),
];

#[test]
fn refused_documents() {
    for (query, why) in REFUSED {
        match doc(query) {
            Ok(ops) => panic!("{query}: allowed as {ops:?}"),
            Err(e) => assert!(e.contains(why), "{query}: {e}"),
        }
    }
}

#[test]
fn operation_name_must_select_when_several() {
    let d = decoder(json!({}));
    let two = "query A { me { id } } mutation B { volumeDelete(volumeId: \"v1\") }";
    // Selecting the harmless one does not hide the other: both count.
    let ops = post(&d, &json!({"query": two, "operationName": "A"})).unwrap();
    assert_eq!(ops, ["read me", "delete volumeDelete volumeId=v1"]);
    let e = post(&d, &json!({"query": two, "operationName": "C"})).unwrap_err();
    assert!(e.contains("names no operation"), "{e}");
    let e = post(
        &d,
        &json!({"query": "query A { me { id } }", "operationName": "B"}),
    )
    .unwrap_err();
    assert!(e.contains("names no operation"), "{e}");
}

#[test]
fn variables_resolve_into_records() {
    let d = decoder(json!({}));
    let cases = [
        (
            json!({"id": "vol-staging-1"}),
            vec!["delete volumeDelete volumeId=vol-staging-1"],
        ),
        (json!({"id": 7}), vec!["delete volumeDelete volumeId=7"]),
        // Not given: proves nothing, so a records grant cannot match.
        (json!({}), vec!["delete volumeDelete"]),
        (json!(null), vec!["delete volumeDelete"]),
    ];
    for (vars, want) in cases {
        let ops = post(&d, &json!({"query": VOLUME_DELETE, "variables": vars})).unwrap();
        assert_eq!(ops, want, "{vars}");
    }
    let with_default = "mutation ($id: String = \"vol-default\") { volumeDelete(volumeId: $id) }";
    assert_eq!(
        post(&d, &json!({"query": with_default})).unwrap(),
        ["delete volumeDelete volumeId=vol-default"]
    );
    let nested =
        "mutation ($input: CustomDomainCreateInput!) { customDomainCreate(input: $input) { id } }";
    let vars = json!({"input": {"domain": "a.example.com", "serviceId": "s1", "targetPort": 8080, "tags": ["x", "y"]}});
    assert_eq!(
        post(&d, &json!({"query": nested, "variables": vars})).unwrap(),
        ["create customDomainCreate input.domain=a.example.com input.serviceId=s1 input.tags=x|y input.targetPort=8080"]
    );
    let e = post(
        &d,
        &json!({"query": VOLUME_DELETE, "variables": "{\"id\": \"v\"}"}),
    )
    .unwrap_err();
    assert!(e.contains("`variables` is not an object"), "{e}");
}

/// (method, target, content-type, body, expectation).
type Case<'a, T> = (&'a str, String, Option<&'a str>, String, T);

#[test]
fn transports() {
    let d = decoder(json!({}));
    let json_ct = Some("application/json");
    let q = enc("{ me { id } }");
    let m = enc(VOLUME_DELETE);
    let vars = enc("{\"id\": \"v1\"}");
    let ok: Vec<Case<Vec<&str>>> = vec![
        ("GET", format!("/graphql?query={q}"), None, String::new(), vec!["read me"]),
        ("GET", format!("/graphql?query={}&variables={}", enc("query ($p: String) { project(id: $p) { id } }"), enc("{\"p\": \"p1\"}")),
         None, String::new(), vec!["read project id=p1"]),
        ("POST", "/graphql".into(), Some("application/json; charset=utf-8"), json!({"query": "{ me { id } }"}).to_string(), vec!["read me"]),
        ("POST", "/graphql".into(), Some("Application/JSON"), json!({"query": "{ me { id } }"}).to_string(), vec!["read me"]),
        ("POST", "/graphql".into(), Some("application/graphql"), VOLUME_DELETE.into(), vec!["delete volumeDelete"]),
        ("POST", format!("/graphql?variables={vars}"), Some("application/graphql"), VOLUME_DELETE.into(), vec!["delete volumeDelete volumeId=v1"]),
        // A batch: every element, in order.
        ("POST", "/graphql".into(), json_ct,
         json!([{"query": "{ me { id } }"}, {"query": VOLUME_DELETE, "variables": {"id": "v9"}}]).to_string(),
         vec!["read me", "delete volumeDelete volumeId=v9"]),
    ];
    for (method, path, ct, body, want) in ok {
        assert_eq!(
            request(&d, method, &path, ct, &body).unwrap(),
            want,
            "{method} {path} {body}"
        );
    }
    let refused: Vec<Case<&str>> = vec![
        (
            "GET",
            format!("/graphql?query={m}&variables={vars}"),
            None,
            String::new(),
            "mutation over GET",
        ),
        (
            "GET",
            format!(
                "/graphql?query={}",
                enc("query A { me { id } } mutation B { volumeDelete(volumeId: \"v\") }")
                    + "&operationName=A"
            ),
            None,
            String::new(),
            "mutation over GET",
        ),
        (
            "GET",
            format!("/graphql?query={q}&query={m}"),
            None,
            String::new(),
            "repeated",
        ),
        (
            "GET",
            format!("/graphql?query={q}&debug=1"),
            None,
            String::new(),
            "unexpected query parameter `debug`",
        ),
        (
            "GET",
            format!("/graphql?query={q}"),
            None,
            "{}".into(),
            "GET with a body",
        ),
        (
            "GET",
            "/graphql".into(),
            None,
            String::new(),
            "no GraphQL document",
        ),
        (
            "PUT",
            "/graphql".into(),
            json_ct,
            json!({"query": "{ me { id } }"}).to_string(),
            "only GET and POST",
        ),
        (
            "POST",
            "/graphql/other".into(),
            json_ct,
            json!({"query": "{ me { id } }"}).to_string(),
            "served at `/graphql` only",
        ),
        (
            "POST",
            "/graphql".into(),
            None,
            json!({"query": "{ me { id } }"}).to_string(),
            "without content-type",
        ),
        (
            "POST",
            "/graphql".into(),
            Some("text/plain"),
            json!({"query": "{ me { id } }"}).to_string(),
            "content-type `text/plain`",
        ),
        (
            "POST",
            "/graphql".into(),
            Some("application/x-www-form-urlencoded"),
            format!("query={m}"),
            "content-type",
        ),
        (
            "POST",
            "/graphql".into(),
            Some("multipart/form-data; boundary=x"),
            "--x".into(),
            "content-type",
        ),
        (
            "POST",
            "/graphql".into(),
            Some("application/json; charset=utf-16"),
            json!({"query": "{ me { id } }"}).to_string(),
            "charset",
        ),
        // Content-type mismatch: JSON sent as a document, a document sent as JSON.
        (
            "POST",
            "/graphql".into(),
            Some("application/graphql"),
            json!({"query": "{ me { id } }"}).to_string(),
            "does not parse",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            VOLUME_DELETE.into(),
            "not strict JSON",
        ),
        // The same request from two places.
        (
            "POST",
            format!("/graphql?query={m}"),
            json_ct,
            json!({"query": "{ me { id } }"}).to_string(),
            "beside a GraphQL JSON body",
        ),
        (
            "POST",
            format!("/graphql?query={m}"),
            Some("application/graphql"),
            "{ me { id } }".into(),
            "unexpected query parameter `query`",
        ),
        // Duplicate keys, including through unicode escapes.
        (
            "POST",
            "/graphql".into(),
            json_ct,
            format!(
                "{{\"query\": \"{{ me {{ id }} }}\", \"query\": {}}}",
                json!(VOLUME_DELETE)
            ),
            "duplicate key `query`",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            format!(
                "{{\"query\": \"{{ me {{ id }} }}\", \"\\u0071uery\": {}}}",
                json!(VOLUME_DELETE)
            ),
            "duplicate key `query`",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            json!({"query": VOLUME_DELETE, "variables": {"id": "a"}})
                .to_string()
                .replace("}}", ", \"id\": \"b\"}}"),
            "duplicate key `id`",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            json!({"query": "{ me { id } }", "id": "x"}).to_string(),
            "unknown GraphQL request key `id`",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            json!({"query": ["{ me { id } }"]}).to_string(),
            "`query` is not a string",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            json!("{ me { id } }").to_string(),
            "not an object or a batch",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            "[]".into(),
            "empty GraphQL batch",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            json!([{"query": "{ me { id } }"}, "mutation { x }"]).to_string(),
            "batch element 1",
        ),
        (
            "POST",
            "/graphql".into(),
            json_ct,
            json!([{"query": "{ me { id } }"}, {"query": "mutation { a } mutation { b }"}])
                .to_string(),
            "batch element 1:",
        ),
    ];
    for (method, path, ct, body, why) in refused {
        match request(&d, method, &path, ct, &body) {
            Ok(ops) => panic!("{method} {path} {body}: allowed as {ops:?}"),
            Err(e) => assert!(e.contains(why), "{method} {path} {body}: {e}"),
        }
    }
}

#[test]
fn persisted_queries() {
    let hash = hex(&sha256(VOLUME_DELETE.as_bytes()));
    let d = decoder(json!({"persisted_queries": {hash.clone(): VOLUME_DELETE}}));
    let pq = |h: &str| json!({"persistedQuery": {"version": 1, "sha256Hash": h}});
    let ops = post(
        &d,
        &json!({"extensions": pq(&hash), "variables": {"id": "v1"}}),
    )
    .unwrap();
    assert_eq!(ops, ["delete volumeDelete volumeId=v1"]);
    let other = hex(&sha256(b"{ me { id } }"));
    let e = post(&d, &json!({"extensions": pq(&other)})).unwrap_err();
    assert!(e.contains("not listed"), "{e}");
    // A document with a hash that is not its own: the upstream might run the hash's.
    let e = post(
        &d,
        &json!({"query": "{ me { id } }", "extensions": pq(&hash)}),
    )
    .unwrap_err();
    assert!(e.contains("does not match"), "{e}");
    let ok = post(
        &d,
        &json!({"query": "{ me { id } }", "extensions": pq(&other)}),
    )
    .unwrap();
    assert_eq!(ok, ["read me"]);
    let e = post(
        &d,
        &json!({"extensions": {"persistedQuery": {"version": 1}}}),
    )
    .unwrap_err();
    assert!(e.contains("no sha256Hash"), "{e}");
    // A bundle whose hash is not its document's is rejected.
    let cfg: GraphqlConfig =
        serde_json::from_value(json!({"persisted_queries": {other: VOLUME_DELETE}})).unwrap();
    let mut errs = scopegate_engine::bundle::Problems::default();
    GraphqlDecoder::compile(Some(&cfg), &[], "s", &mut errs);
    assert!(
        errs.0[0].message.contains("not the lower-case SHA-256"),
        "{errs:?}"
    );
}

#[test]
fn mutation_rules_from_the_bundle() {
    let d = decoder(json!({"mutations": {
        "customDomainIssueCertificate": "update",
        "*Restore": "delete",
        "volumeInstanceBackupRestore": "admin",
        "*": "execute"
    }}));
    let cases = [
        ("customDomainIssueCertificate", "update"),
        ("volumeInstanceBackupRestore", "admin"), // exact beats pattern
        ("volumeInstancePITRRestore", "delete"),
        ("customDomainCreate", "execute"), // a pattern beats the built-in rules
    ];
    for (name, action) in cases {
        let ops = post(&d, &json!({"query": format!("mutation {{ {name} }}")})).unwrap();
        assert_eq!(ops, [format!("{action} {name}")]);
    }
    let cfg: GraphqlConfig = serde_json::from_value(json!({"mutations": {"x": "nuke"}})).unwrap();
    let mut errs = scopegate_engine::bundle::Problems::default();
    GraphqlDecoder::compile(Some(&cfg), &[], "s", &mut errs);
    assert_eq!(errs.0[0].path, "s.mutations.x");
}

#[test]
fn schema_validates_root_fields() {
    let sdl = "schema { query: Q mutation: M }\ntype Q { me: User project(id: String!): Project }\n\
               type M { customDomainCreate(input: In!): Boolean }\nextend type M { volumeDelete(volumeId: String!): Boolean }";
    let intro = json!({"data": {"__schema": {
        "queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}, "subscriptionType": null,
        "types": [{"name": "Query", "fields": [{"name": "me"}, {"name": "project"}]},
                  {"name": "Mutation", "fields": [{"name": "customDomainCreate"}, {"name": "volumeDelete"}]}]}}});
    for d in [
        decoder(json!({"schema": {"sdl": sdl}})),
        decoder(json!({"schema": {"introspection": intro}})),
    ] {
        assert_eq!(
            post(&d, &json!({"query": "{ me __typename }"})).unwrap(),
            ["read me", "read __typename"]
        );
        assert_eq!(
            post(
                &d,
                &json!({"query": "mutation { volumeDelete(volumeId: \"v\") }"})
            )
            .unwrap(),
            ["delete volumeDelete volumeId=v"]
        );
        for (q, why) in [
            (
                "mutation { volumeDrop(volumeId: \"v\") }",
                "`volumeDrop` is not a mutation root field",
            ),
            (
                "{ volumeDelete(volumeId: \"v\") }",
                "`volumeDelete` is not a query root field",
            ),
            (
                "subscription { me { id } }",
                "not a subscription root field",
            ),
        ] {
            let e = post(&d, &json!({"query": q})).unwrap_err();
            assert!(e.contains(why), "{q}: {e}");
        }
    }
    for (schema, path) in [
        (json!({"sdl": "type Query {"}), "g.schema.sdl"),
        (json!({"sdl": "scalar X"}), "g.schema.sdl"),
        (
            json!({"introspection": {"types": []}}),
            "g.schema.introspection",
        ),
        (
            json!({"sdl": "type Query { a: Int }", "introspection": {}}),
            "g.schema",
        ),
    ] {
        let cfg: GraphqlConfig = serde_json::from_value(json!({"schema": schema})).unwrap();
        let mut errs = scopegate_engine::bundle::Problems::default();
        GraphqlDecoder::compile(Some(&cfg), &[], "g", &mut errs);
        assert_eq!(
            errs.0.first().map(|e| e.path.as_str()),
            Some(path),
            "{schema}: {errs:?}"
        );
    }
}

#[test]
fn limits() {
    let d = decoder(
        json!({"max_depth": 3, "max_root_fields": 3, "max_aliases": 2, "max_fragments": 2,
                           "max_batch": 2, "max_document_bytes": 200}),
    );
    let cases = [
        (json!({"query": "{ a { b { c } } }"}), None),
        (
            json!({"query": "{ a { b { c { d } } } }"}),
            Some("depth 4, over the service's max_depth of 3"),
        ),
        (
            json!({"query": "{ ...F } fragment F on Query { a { ...G } } fragment G on A { b { c { d } } }"}),
            Some("max_depth"),
        ),
        (
            json!({"query": "{ a b c d }"}),
            Some("max_root_fields of 3"),
        ),
        (
            json!({"query": "{ x: a y: b z: c }"}),
            Some("3 aliases, over the service's max_aliases of 2"),
        ),
        (
            json!({"query": "{ ...A } fragment A on Q { a } fragment B on Q { b } fragment C on Q { c }"}),
            Some("max_fragments of 2"),
        ),
        (
            json!([{"query": "{ a }"}, {"query": "{ a }"}, {"query": "{ a }"}]),
            Some("batch of 3 operations, over the service's max_batch of 2"),
        ),
        (
            json!({"query": format!("{{ a(x: \"{}\") }}", "y".repeat(200))}),
            Some("max_document_bytes of 200"),
        ),
    ];
    for (body, why) in cases {
        match (post(&d, &body), why) {
            (Ok(_), None) => {}
            (Err(e), Some(why)) => assert!(e.contains(why), "{body}: {e}"),
            (r, _) => panic!("{body}: {r:?}"),
        }
    }
    // Nesting past the parser's recursion limit is refused before anything walks it.
    let deep = json!({"query": format!("{}{}", "{ a ".repeat(150), "}".repeat(150))});
    let e = post(&decoder(json!({"max_depth": 100})), &deep).unwrap_err();
    assert!(e.contains("does not parse") && e.contains("limit"), "{e}");
    // A fragment bomb (each fragment spreads the next twice) is linear, not exponential.
    let mut q = String::from("{ ...F0 }");
    for i in 0..30 {
        q.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i + 1,
            i + 1
        ));
    }
    q.push_str(" fragment F30 on Query { a }");
    let bomb = decoder(json!({"max_fragments": 100}));
    assert_eq!(post(&bomb, &json!({"query": q})).unwrap(), ["read a"]);
}

/// "Staging only" for an API whose mutation carries just an opaque id: the grant's
/// records admit `volumeDelete` on the one volume it names, in every spelling.
#[test]
fn records_grant_admits_one_volume() {
    use scopegate_engine::{Decision, Engine, Secrets};
    let key = "sgk_staging_ops_key_0123456789";
    let bundle = json!({
        "bundle": "t", "version": 1, "environment": "production",
        "services": [{"name": "railway", "protocol": "graphql", "match": {"path_prefix": "/graphql/v2"}}],
        "roles": [{"name": "staging-ops", "allow": [
            {"service": "railway", "resources": ["volumeDelete"], "actions": ["delete"],
             "records": {"volumeId": ["vol-staging-1"]}}]}],
        "keys": [{"id": "k", "sha256": hex(&sha256(key.as_bytes())), "role": "staging-ops"}]
    });
    let engine = Engine::from_json(bundle.to_string().as_bytes(), &Secrets::Unchecked).unwrap();
    let decide = |body: Value| {
        let headers = vec![
            (":method".to_string(), b"POST".to_vec()),
            (":path".to_string(), b"/graphql/v2".to_vec()),
            ("content-type".to_string(), b"application/json".to_vec()),
            (
                "authorization".to_string(),
                format!("Bearer {key}").into_bytes(),
            ),
        ];
        engine.decide(headers, body.to_string().as_bytes(), 0)
    };
    let cases = [
        (
            json!({"query": VOLUME_DELETE, "variables": {"id": "vol-staging-1"}}),
            true,
        ),
        (
            json!({"query": "mutation { volumeDelete(volumeId: \"vol-staging-1\") }"}),
            true,
        ),
        (
            json!({"query": "mutation ($id: String = \"vol-staging-1\") { volumeDelete(volumeId: $id) }"}),
            true,
        ),
        (
            json!({"query": VOLUME_DELETE, "variables": {"id": "vol-prod-1"}}),
            false,
        ),
        (json!({"query": VOLUME_DELETE}), false),
        (
            json!({"query": "mutation { a: volumeDelete(volumeId: \"vol-staging-1\") b: volumeDelete(volumeId: \"vol-prod-1\") }"}),
            false,
        ),
        (
            json!([{"query": VOLUME_DELETE, "variables": {"id": "vol-staging-1"}},
                {"query": VOLUME_DELETE, "variables": {"id": "vol-prod-1"}}]),
            false,
        ),
        (
            json!({"query": "mutation { volumeDelete(volumeId: [\"vol-staging-1\", \"vol-prod-1\"]) }"}),
            false,
        ),
    ];
    for (body, allowed) in cases {
        let v = decide(body.clone());
        assert_eq!(
            v.decision() == Decision::Allow,
            allowed,
            "{body}: {}",
            v.reason()
        );
        if !allowed {
            assert!(
                v.reason().contains("only for proven records (volumeId)"),
                "{body}: {}",
                v.reason()
            );
        }
    }
}

/// The walk below root fields measures depth and aliases itself (one pass); without it
/// `Walk` does. Both must accept and refuse the same documents, with the same limits.
#[test]
fn depth_and_aliases_agree_with_and_without_the_walk_below() {
    let limited = json!({"max_depth": 4, "max_aliases": 3});
    let extra: &[&str] = &[
        "{ a { b { c } } }",
        "{ a { b { c { d } } } }",
        "{ a { ...F } } fragment F on A { b { c } }",
        "{ a { ...F } } fragment F on A { b { c { d } } }",
        "{ a { ... on A { b { ... on B { c } } } } }",
        "{ a { ... on A { b { ... on B { c { d } } } } } }",
        "{ x: a { y: b { z: c } } }",
        "{ x: a { y: b { z: c w: c } } }",
        "{ a { ...F ...F } } fragment F on A { y: b z: c }",
        "{ x: a { ...F } } fragment F on A { y: b }",
        "{ a { __typename t: __typename } }",
        "{ __schema { ...T } } fragment T on __Schema { types { name } }",
        "{ __type(name: \"A\") { fields { type { ofType { name } } } } }",
        "{ a { ...F } } fragment F on A { ...G } fragment G on A { ...F }",
        "{ a { ...F } } fragment F on A { b }  fragment G on A { ...G }",
        "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
    ];
    let docs = DOCUMENTS
        .iter()
        .map(|(q, _)| *q)
        .chain(REFUSED.iter().map(|(q, _)| *q))
        .chain(extra.iter().copied());
    for cfg in [json!({}), limited] {
        let below = decoder(cfg.clone());
        let mut flat = decoder(cfg);
        flat.set_nested(false);
        for query in docs.clone() {
            let body = json!({ "query": query });
            let (a, b) = (post(&below, &body), post(&flat, &body));
            assert_eq!(a.is_ok(), b.is_ok(), "{query}: {a:?} / {b:?}");
            if let (Err(a), Err(b)) = (&a, &b) {
                for limit in ["max_depth", "max_aliases"] {
                    assert_eq!(a.contains(limit), b.contains(limit), "{query}: {a} / {b}");
                }
            }
        }
    }
}

/// Found by `cargo fuzz` (target `decide`): the fragment-cycle error named whichever
/// fragment the hash map gave first, so the same request got different reasons (the CLI
/// and the filter could disagree). Fragments are now checked in document order.
#[test]
fn fragment_cycle_reason_is_deterministic() {
    let query = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    for _ in 0..32 {
        let err = doc(query).unwrap_err();
        assert!(err.contains("fragment `A` spreads itself"), "{err}");
    }
}

/// Nested fields of each operation: `resource k=v|v ?unknown`, in the decoder's order.
/// The decoder's input for service `api`.
fn input<'a>(head: &'a RequestHead, target: &'a Target, body: &'a [u8]) -> Input<'a> {
    Input {
        service: "api",
        prefix: &[],
        head,
        target,
        body: Some(body),
    }
}

fn nested(d: &GraphqlDecoder, body: &Value) -> Result<Vec<Vec<String>>, String> {
    let head = RequestHead::from_headers(vec![
        (":method".to_string(), b"POST".to_vec()),
        (":path".to_string(), b"/graphql".to_vec()),
        ("content-type".to_string(), b"application/json".to_vec()),
    ])
    .unwrap();
    let target = Target::parse("/graphql").unwrap();
    let body = body.to_string();
    let ops = d
        .decode(&input(&head, &target, body.as_bytes()))
        .ops
        .map_err(|e| e.0)?;
    Ok(ops
        .iter()
        .map(|o| {
            o.fields
                .iter()
                .map(|f| {
                    let mut s = f.resource.clone();
                    for (k, v) in &f.records {
                        s.push_str(&format!(" {k}={}", v.join("|")));
                    }
                    for u in &f.unknown {
                        s.push_str(&format!(" ?{u}"));
                    }
                    s
                })
                .collect()
        })
        .collect())
}

const NESTED_SDL: &str = r#"
type Query { project(id: String!): Project, node(id: ID!): Node }
interface Node { id: ID! }
type Project implements Node { id: ID!, name: String, environments: [Environment!]! }
type Environment implements Node {
  id: ID!
  name: String
  config(decryptVariables: Boolean): String
  variables: [Variable!]
}
type Variable { name: String }
"#;

const SECRET_QUERY: &str = r#"query Q($d: Boolean, $e: Boolean) {
  project(id: "p-1") {
    name
    envs: environments {
      __typename
      ...Env
      ... on Environment { config(decryptVariables: $d) }
    }
  }
  other: project(id: "p-2") { environments { config(decryptVariables: $e) } }
}
fragment Env on Environment { id cfg: config(decryptVariables: true) variables { name } }"#;

#[test]
fn nested_fields_without_schema_are_paths() {
    let d = decoder(json!({}));
    let got = nested(
        &d,
        &json!({"query": SECRET_QUERY, "variables": {"d": false}}),
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            // In the order selected, a field before the fields below it.
            vec![
                "project.name",
                "project.environments",
                "project.environments.id",
                "project.environments.config decryptVariables=true",
                "project.environments.variables",
                "project.environments.variables.name",
                "project.environments.config decryptVariables=false",
            ],
            // `$e` is neither given nor defaulted: unknown.
            vec![
                "project.environments",
                "project.environments.config ?decryptVariables",
            ],
        ]
    );
}

#[test]
fn nested_fields_with_schema_are_type_fields() {
    let d = decoder(json!({"schema": {"sdl": NESTED_SDL}}));
    let got = nested(
        &d,
        &json!({"query": SECRET_QUERY, "variables": {"d": false, "e": true}}),
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            vec![
                "Project.name",
                "Project.environments",
                "Environment.id",
                "Environment.config decryptVariables=true",
                "Environment.variables",
                "Variable.name",
                "Environment.config decryptVariables=false",
            ],
            vec![
                "Project.environments",
                "Environment.config decryptVariables=true",
            ],
        ]
    );
    // An inline fragment's type condition types the fields below an interface.
    let got = nested(
        &d,
        &json!({"query": "query($v: Boolean = true) { node(id: \"e\") { id ... on Environment { config(decryptVariables: $v) } } }"}),
    )
    .unwrap();
    assert_eq!(
        got,
        vec![vec!["Node.id", "Environment.config decryptVariables=true"]]
    );
    // A field the type does not have is refused (fail closed), as is a meta field below
    // the root.
    let e = nested(
        &d,
        &json!({"query": "{ node(id: \"e\") { config(decryptVariables: true) } }"}),
    )
    .unwrap_err();
    assert!(e.contains("`config` is not a field of `Node`"), "{e}");
    let e = nested(
        &d,
        &json!({"query": "{ project(id: \"p\") { __schema { types { name } } } }"}),
    )
    .unwrap_err();
    assert!(e.contains("`__schema` below the root"), "{e}");
}

#[test]
fn nested_fields_arguments_and_inputs() {
    let d = decoder(json!({}));
    let got = nested(
        &d,
        &json!({"query": "query($i: In) { a { b(x: 1, y: [\"u\", \"v\"], o: {p: $i, q: ENUM}) { c } } }"}),
    )
    .unwrap();
    assert_eq!(got, vec![vec!["a.b o.q=ENUM x=1 y=u|v ?o.p", "a.b.c"]]);
    let got = nested(
        &d,
        &json!({"query": "query($i: In) { a { b(o: $i) } }", "variables": {"i": {"p": true}}}),
    )
    .unwrap();
    assert_eq!(got, vec![vec!["a.b o.p=true"]]);
    // An argument given twice below the root is refused, as at the root.
    let e = nested(&d, &json!({"query": "{ a { b(x: 1, x: 2) } }"})).unwrap_err();
    assert!(e.contains("given twice"), "{e}");
}

#[test]
fn nested_walk_is_bounded() {
    // Fragments that spread the one below twice: 2^n selections once expanded.
    let mut q = String::from("{ a { ...F0 } }\nfragment F0 on T { x y }\n");
    for i in 1..20 {
        q.push_str(&format!(
            "fragment F{i} on T {{ b {{ ...F{} }} c {{ ...F{} }} }}\n",
            i - 1,
            i - 1
        ));
    }
    q = q.replace("{ a { ...F0 } }", "{ a { ...F19 } }");
    let d = decoder(json!({"max_depth": 100}));
    let e = nested(&d, &json!({ "query": q })).unwrap_err();
    assert!(e.contains("selections once fragments are expanded"), "{e}");
}
