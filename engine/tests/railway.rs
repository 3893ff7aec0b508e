//! policies/railway.json against Railway's real API: its introspection schema (230
//! mutations) and every operation document the Railway CLI sends, read from
//! ../shared/fixtures/railway/ (third-party data, never copied into the project).
//! Without that folder these tests say they were skipped and pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::bundle::{self, GraphqlSchema};
use scopegate_engine::policy::compile;
use scopegate_engine::{Decision, Engine, Secrets, Verdict};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;
use common::{root, NOW};

fn fixtures() -> Option<PathBuf> {
    let dir = root().join("../shared/fixtures/railway");
    if dir.join("schema.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (Railway's schema and CLI documents are third-party fixtures)",
            dir.display()
        );
        None
    }
}

fn demo_key(id: &str) -> String {
    let keys = std::fs::read_to_string(root().join("policies/railway.keys")).unwrap();
    keys.lines()
        .find_map(|l| l.strip_prefix(&format!("{id}=")))
        .unwrap()
        .to_string()
}

/// policies/railway.json with Railway's schema attached, as `scopegate --schema` does.
fn engine(schema: &Value) -> Engine {
    let mut b =
        bundle::parse(&std::fs::read(root().join("policies/railway.json")).unwrap()).unwrap();
    b.services[0].graphql.as_mut().unwrap().schema = Some(GraphqlSchema {
        sdl: None,
        introspection: Some(schema.clone()),
    });
    Engine::new(compile(&b, &Secrets::Unchecked).unwrap_or_else(|e| panic!("{e}")))
}

/// policies/railway.json as the filter loads it: no schema, nested fields named by path.
fn plain_engine() -> Engine {
    let b = bundle::parse(&std::fs::read(root().join("policies/railway.json")).unwrap()).unwrap();
    assert!(b.services[0].graphql.as_ref().unwrap().schema.is_none());
    Engine::new(compile(&b, &Secrets::Unchecked).unwrap_or_else(|e| panic!("{e}")))
}

fn decide(engine: &Engine, key: &str, body: &Value) -> Verdict {
    let body = body.to_string();
    let headers = vec![
        (":method".to_string(), b"POST".to_vec()),
        (":path".to_string(), b"/graphql/v2".to_vec()),
        (":authority".to_string(), b"backboard.railway.com".to_vec()),
        ("content-type".to_string(), b"application/json".to_vec()),
        (
            "authorization".to_string(),
            format!("Bearer {key}").into_bytes(),
        ),
    ];
    engine.decide(headers, body.as_bytes(), NOW)
}

fn documents(dir: &Path, kind: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir.join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn schema_mutations(schema: &Value) -> Vec<String> {
    let types = schema["data"]["__schema"]["types"].as_array().unwrap();
    let m = types.iter().find(|t| t["name"] == "Mutation").unwrap();
    m["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// Reads the domains role is given, for `railway domain`.
const DOMAIN_READS: [&str; 5] = ["domains", "domainStatus", "project", "projects", "me"];

#[test]
fn every_cli_document_for_the_domains_key() {
    let Some(dir) = fixtures() else { return };
    let schema: Value =
        serde_json::from_slice(&std::fs::read(dir.join("schema.json")).unwrap()).unwrap();
    // With Railway's schema attached (nested fields as `Type.field`) and without it (as
    // the filter runs the bundle: nested fields by path), the same documents pass.
    for engine in [engine(&schema), plain_engine()] {
        every_cli_document(&dir, &engine);
    }
}

fn every_cli_document(dir: &Path, engine: &Engine) {
    let key = demo_key("railway-domains");
    let mut allowed = BTreeSet::new();
    let mut counted = 0;
    for kind in ["mutations", "queries", "subscriptions"] {
        for (name, doc) in documents(dir, kind) {
            let v = decide(engine, &key, &json!({"query": doc}));
            assert!(!v.operations.is_empty(), "{kind}/{name}: {}", v.reason());
            // Every root field of every CLI document is in Railway's schema.
            assert!(
                !v.reason().contains("root field"),
                "{kind}/{name}: {}",
                v.reason()
            );
            let expected = match kind {
                "mutations" => name.starts_with("CustomDomain"),
                "queries" => v
                    .operations
                    .iter()
                    .all(|o| DOMAIN_READS.contains(&o.resource.as_str())),
                _ => false,
            };
            let is_allowed = v.decision() == Decision::Allow;
            assert_eq!(
                is_allowed,
                expected,
                "{kind}/{name}: {} {:?}",
                v.reason(),
                v.operations
            );
            if is_allowed {
                allowed.insert(format!("{kind}/{name}"));
            } else {
                assert_eq!(v.status(), Some(403), "{kind}/{name}");
            }
            counted += 1;
        }
    }
    assert_eq!(counted, 78 + 56 + 6);
    let want: BTreeSet<String> = [
        "mutations/CustomDomainCreate",
        "mutations/CustomDomainDelete",
        "mutations/CustomDomainIssueCertificate",
        "mutations/CustomDomainUpdate",
        "queries/CloudAgentAccess", // selects only `me`
        "queries/Domains",
        "queries/Project",
        "queries/Projects",
        "queries/UserMeta",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(allowed, want);
}

#[test]
fn every_schema_mutation_by_role() {
    let Some(dir) = fixtures() else { return };
    let schema: Value =
        serde_json::from_slice(&std::fs::read(dir.join("schema.json")).unwrap()).unwrap();
    let engine = engine(&schema);
    let mutations = schema_mutations(&schema);
    assert_eq!(mutations.len(), 230);
    let (domains, readonly, operator) = (
        demo_key("railway-domains"),
        demo_key("railway-readonly"),
        demo_key("railway-operator"),
    );
    let mut guarded = BTreeSet::new();
    for m in &mutations {
        let body = json!({"query": format!("mutation {{ {m} }}")});
        let d = decide(&engine, &domains, &body);
        assert_eq!(
            d.decision() == Decision::Allow,
            m.starts_with("customDomain"),
            "domains {m}: {}",
            d.reason()
        );
        let r = decide(&engine, &readonly, &body);
        assert_eq!(r.status(), Some(403), "readonly {m}: {}", r.reason());
        let o = decide(&engine, &operator, &body);
        if o.rule.as_deref() == Some("guards[0]") {
            assert_eq!(o.status(), Some(403), "operator {m}");
            guarded.insert(m.clone());
        }
    }
    // The destructive mutations of the incident class: refused to every role, the
    // operator (who may do anything else with approval) included, by the guard.
    let incident = [
        "volumeDelete",
        "volumeInstanceBackupDelete",
        "volumeInstancePITRRestore",
        "enablePitrForHaCluster",
        "disablePitrForHaCluster",
        "cancelPitrHaWorkflow",
        "clearPitrHaWorkflowProgress",
        "projectDelete",
        "projectScheduleDeleteForce",
        "environmentDelete",
        "workspaceDelete",
    ];
    for m in incident {
        assert!(
            guarded.contains(m),
            "{m} is not refused by the guard: {guarded:?}"
        );
    }
    // Other destructive mutations owe the operator a human's approval (428).
    for m in [
        "serviceDelete",
        "customDomainDelete",
        "deploymentRemove",
        "sandboxDestroy",
    ] {
        let o = decide(
            &engine,
            &operator,
            &json!({"query": format!("mutation {{ {m} }}")}),
        );
        assert_eq!(
            (o.status(), o.decision()),
            (Some(428), Decision::Challenge),
            "{m}: {}",
            o.reason()
        );
    }
}

#[test]
fn the_incident_in_every_disguise() {
    let Some(dir) = fixtures() else { return };
    let schema: Value =
        serde_json::from_slice(&std::fs::read(dir.join("schema.json")).unwrap()).unwrap();
    let engine = engine(&schema);
    let key = demo_key("railway-domains");
    let incident = std::fs::read_to_string(dir.join("mutations/VolumeDelete.graphql")).unwrap();
    let create = std::fs::read_to_string(dir.join("mutations/CustomDomainCreate.graphql")).unwrap();
    let disguises = [
        json!({"query": incident, "variables": {"id": "vol-prod-1"}}),
        json!({"query": "mutation { customDomainCreate: volumeDelete(volumeId: \"v\") }"}),
        json!({"query": "mutation { ...D } fragment D on Mutation { volumeDelete(volumeId: \"v\") }"}),
        json!({"query": "mutation { ... on Mutation { volumeDelete(volumeId: \"v\") } }"}),
        json!({"query": format!("{create}\n{incident}"), "operationName": "CustomDomainCreate",
               "variables": {"id": "v", "input": {"domain": "a.example.com"}}}),
        json!([{"query": create, "variables": {"input": {"domain": "a.example.com"}}},
               {"query": incident, "variables": {"id": "v"}}]),
        json!({"query": "mutation { customDomainCreate(input: {domain: \"x\"}) { id } volumeDelete(volumeId: \"v\") @skip(if: true) }"}),
    ];
    for body in disguises {
        let v = decide(&engine, &key, &body);
        assert_eq!(v.status(), Some(403), "{body}: {}", v.reason());
        assert!(
            v.operations.iter().any(|o| o.resource == "volumeDelete")
                || v.reason().contains("volumeDelete"),
            "{body}: {} {:?}",
            v.reason(),
            v.operations
        );
    }
    let ok = decide(
        &engine,
        &key,
        &json!({"query": create, "variables": {"input": {"domain": "a.example.com"}}}),
    );
    assert_eq!(ok.decision(), Decision::Allow, "{}", ok.reason());
}

/// The incident's second half: under a granted root field, an environment's decrypted
/// variables. Refused to the domains and readonly keys, with the schema or without.
#[test]
fn secrets_below_granted_roots() {
    let Some(dir) = fixtures() else { return };
    let schema: Value =
        serde_json::from_slice(&std::fs::read(dir.join("schema.json")).unwrap()).unwrap();
    let query = r#"query($id: String!) { project(id: $id) { environments { edges { node {
        id name config(decryptVariables: true) } } } } }"#;
    let snapshot = r#"{ project(id: "p") { environments { edges { node { deployments { edges {
        node { id } } } } } } } }"#;
    let variables = r#"{ project(id: "p") { environments { edges { node { variables { edges {
        node { name } } } } } } } }"#;
    let fragments = r#"query($d: Boolean) { me { id } project(id: "p") { ...P } }
        fragment P on Project { environments { edges { node { ... on Environment { c: config(decryptVariables: $d) } } } } }"#;
    for (name, engine) in [("schema", engine(&schema)), ("plain", plain_engine())] {
        for key in ["railway-domains", "railway-readonly"] {
            let key = demo_key(key);
            for (body, rule, what) in [
                (
                    json!({"query": query, "variables": {"id": "p"}}),
                    "guards[2]",
                    "config` (decryptVariables)",
                ),
                (json!({"query": variables}), "guards[1]", "variables`"),
                (
                    json!({"query": fragments}),
                    "guards[2]",
                    "config` (decryptVariables)",
                ),
            ] {
                let v = decide(&engine, &key, &body);
                assert_eq!(
                    (v.status(), v.rule.as_deref()),
                    (Some(403), Some(rule)),
                    "{name} {body}: {}",
                    v.reason()
                );
                assert!(v.reason().contains(what), "{name}: {}", v.reason());
            }
            // Without the flag, or with it false, the config is masked: allowed.
            for body in [
                json!({"query": query.replace("decryptVariables: true", "decryptVariables: false"), "variables": {"id": "p"}}),
                json!({"query": fragments, "variables": {"d": false}}),
                json!({"query": snapshot}),
            ] {
                let v = decide(&engine, &key, &body);
                assert_eq!(
                    v.decision(),
                    Decision::Allow,
                    "{name} {body}: {}",
                    v.reason()
                );
            }
        }
    }
}

/// Secret-bearing fields of Railway's schema, derived from it: a field (on any object or
/// interface type, the query root included) with a `decrypt*` argument (secret with that
/// flag set), or whose name or return type names variables, tokens, credentials,
/// passwords, secrets, private keys or invite codes — except counts and flags (`Int`,
/// `Float`, `Boolean`) and DNS verification tokens (published in public DNS records by
/// design, and what `railway domain` shows).
fn secret_fields(types: &[Value]) -> BTreeSet<(String, String, Option<String>)> {
    use scopegate_engine::decode::name_words;
    const WORDS: [&str; 10] = [
        "variable",
        "variables",
        "token",
        "tokens",
        "credential",
        "credentials",
        "password",
        "passwords",
        "secret",
        "secrets",
    ];
    let mut out = BTreeSet::new();
    for t in types {
        let tname = t["name"].as_str().unwrap();
        if !matches!(t["kind"].as_str(), Some("OBJECT" | "INTERFACE"))
            || tname.starts_with("__")
            || tname == "Mutation"
            || tname == "Subscription"
        {
            continue;
        }
        for f in t["fields"].as_array().into_iter().flatten() {
            let fname = f["name"].as_str().unwrap();
            let decrypt = f["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["name"].as_str())
                .find(|a| a.to_lowercase().starts_with("decrypt"));
            if let Some(arg) = decrypt {
                out.insert((tname.to_string(), fname.to_string(), Some(arg.to_string())));
                continue;
            }
            let ret = named_type(&f["type"]);
            if matches!(ret, "Int" | "Float" | "Boolean") {
                continue;
            }
            let words: BTreeSet<String> = name_words(fname)
                .into_iter()
                .chain(name_words(ret))
                .collect();
            let has = |w: &str| words.contains(w);
            if name_words(tname).iter().any(|w| w == "verification") || has("verification") {
                continue;
            }
            if WORDS.iter().any(|w| has(w))
                || (has("private") && has("key"))
                || (has("invite") && has("code"))
            {
                out.insert((tname.to_string(), fname.to_string(), None));
            }
        }
    }
    out
}

fn named_type(t: &Value) -> &str {
    let mut t = t;
    while !t["ofType"].is_null() {
        t = &t["ofType"];
    }
    t["name"].as_str().unwrap()
}

/// One step of a path from the root: a field, or an inline fragment on a type.
#[derive(Clone, Debug)]
enum Step {
    Field(String),
    On(String),
}

/// The query document selecting `path`, its last field with `args` and, when that field
/// returns an object, `{ __typename }`.
fn document(path: &[Step], args: &str, leaf_object: bool) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for (i, step) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match step {
            Step::Field(f) if last => {
                open.push_str(&format!("{f}{args}"));
                if leaf_object {
                    open.push_str(" { __typename }");
                }
            }
            Step::Field(f) => {
                open.push_str(&format!("{f} {{ "));
                close.push_str(" }");
            }
            Step::On(t) => {
                open.push_str(&format!("... on {t} {{ "));
                close.push_str(" }");
            }
        }
    }
    format!("{{ {open}{close} }}")
}

/// The schema walk: for the domains and readonly keys, from every root field the key may
/// read, every `Type.field` reachable through fields that are not secret (breadth first,
/// each type once: bounded by the schema's types). Every secret-bearing field reached
/// must be refused by a guard — with the schema attached (`Type.field`: one check covers
/// every path to it) and without (by path: the shortest path is checked, and the walk
/// shows no secret is reached except through a guarded name).
#[test]
fn no_granted_root_reaches_a_secret() {
    let Some(dir) = fixtures() else { return };
    let schema: Value =
        serde_json::from_slice(&std::fs::read(dir.join("schema.json")).unwrap()).unwrap();
    let types = schema["data"]["__schema"]["types"].as_array().unwrap();
    let by_name: std::collections::BTreeMap<&str, &Value> = types
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    let secrets = secret_fields(types);
    let nested_secrets = secrets.iter().filter(|(t, _, _)| t != "Query").count();
    assert!(nested_secrets >= 15, "{secrets:?}");
    let typed = engine(&schema);
    let plain = plain_engine();
    let query = by_name["Query"];
    for role in ["railway-domains", "railway-readonly"] {
        let key = demo_key(role);
        // The roots the key may read: the engine says which.
        let roots: Vec<&str> = query["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .filter(|f| {
                let q = json!({"query": format!("{{ {f} {{ __typename }} }}")});
                decide(&typed, &key, &q).decision() == Decision::Allow
            })
            .collect();
        assert!(roots.contains(&"project"), "{role}: {roots:?}");
        // No secret root field is among them.
        for (t, f, _) in &secrets {
            if t == "Query" {
                assert!(!roots.contains(&f.as_str()), "{role} may read root `{f}`");
            }
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut queue: std::collections::VecDeque<(String, Vec<Step>)> = roots
            .iter()
            .map(|r| {
                let f = query["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["name"] == *r)
                    .unwrap();
                (
                    named_type(&f["type"]).to_string(),
                    vec![Step::Field(r.to_string())],
                )
            })
            .collect();
        let mut fields_walked = 0;
        let mut secrets_reached = BTreeSet::new();
        while let Some((ty, path)) = queue.pop_front() {
            if !seen.insert(ty.clone()) {
                continue;
            }
            let t = by_name[ty.as_str()];
            for possible in t["possibleTypes"].as_array().into_iter().flatten() {
                let name = possible["name"].as_str().unwrap().to_string();
                let mut p = path.clone();
                p.push(Step::On(name.clone()));
                queue.push_back((name, p));
            }
            for f in t["fields"].as_array().into_iter().flatten() {
                fields_walked += 1;
                let fname = f["name"].as_str().unwrap();
                let ret = named_type(&f["type"]);
                let mut p = path.clone();
                p.push(Step::Field(fname.to_string()));
                let secret = secrets.iter().find(|(st, sf, _)| st == &ty && sf == fname);
                let object = matches!(
                    by_name[ret]["kind"].as_str(),
                    Some("OBJECT" | "INTERFACE" | "UNION")
                );
                let Some((_, _, flag)) = secret else {
                    queue.push_back((ret.to_string(), p));
                    continue;
                };
                secrets_reached.insert(format!("{ty}.{fname}"));
                let mut bodies = Vec::new();
                match flag {
                    None => bodies.push(json!({"query": document(&p, "", object)})),
                    Some(arg) => {
                        bodies.push(
                            json!({"query": document(&p, &format!("({arg}: true)"), object)}),
                        );
                        let q = document(&p, &format!("({arg}: $d)"), object).replacen(
                            '{',
                            "query($d: Boolean) {",
                            1,
                        );
                        bodies.push(json!({"query": q}));
                    }
                }
                for body in &bodies {
                    for (name, engine) in [("schema", &typed), ("plain", &plain)] {
                        let v = decide(engine, &key, body);
                        assert_eq!(
                            v.status(),
                            Some(403),
                            "{role} {name}: `{ty}.{fname}` reached by {body}: {}",
                            v.reason()
                        );
                        assert!(
                            v.rule.as_deref().is_some_and(|r| r.starts_with("guards[")),
                            "{role} {name}: {body}: {:?} {}",
                            v.rule,
                            v.reason()
                        );
                    }
                }
                // A flagged field without its flag is masked: the path itself is allowed.
                if let Some(arg) = flag {
                    let body = json!({"query": document(&p, &format!("({arg}: false)"), object)});
                    let v = decide(&typed, &key, &body);
                    assert_eq!(
                        v.decision(),
                        Decision::Allow,
                        "{role}: {body}: {}",
                        v.reason()
                    );
                }
            }
        }
        eprintln!(
            "{role}: {} roots, {} types, {fields_walked} fields walked, {} secret fields reached and refused: {secrets_reached:?}",
            roots.len(),
            seen.len(),
            secrets_reached.len()
        );
        assert!(
            secrets_reached.contains("Environment.config")
                && secrets_reached.contains("Environment.variables"),
            "{role}: {secrets_reached:?}"
        );
    }
}
