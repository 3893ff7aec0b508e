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

const NOW: i64 = 1_795_000_000_000; // 2026-11

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

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
    let engine = engine(&schema);
    let key = demo_key("railway-domains");
    let mut allowed = BTreeSet::new();
    let mut counted = 0;
    for kind in ["mutations", "queries", "subscriptions"] {
        for (name, doc) in documents(&dir, kind) {
            let v = decide(&engine, &key, &json!({"query": doc}));
            assert!(!v.operations.is_empty(), "{kind}/{name}: {}", v.reason);
            // Every root field of every CLI document is in Railway's schema.
            assert!(
                !v.reason.contains("root field"),
                "{kind}/{name}: {}",
                v.reason
            );
            let expected = match kind {
                "mutations" => name.starts_with("CustomDomain"),
                "queries" => v
                    .operations
                    .iter()
                    .all(|o| DOMAIN_READS.contains(&o.resource.as_str())),
                _ => false,
            };
            let is_allowed = v.decision == Decision::Allow;
            assert_eq!(
                is_allowed, expected,
                "{kind}/{name}: {} {:?}",
                v.reason, v.operations
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
            d.decision == Decision::Allow,
            m.starts_with("customDomain"),
            "domains {m}: {}",
            d.reason
        );
        let r = decide(&engine, &readonly, &body);
        assert_eq!(r.status(), Some(403), "readonly {m}: {}", r.reason);
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
            (o.status(), o.decision),
            (Some(428), Decision::Challenge),
            "{m}: {}",
            o.reason
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
        assert_eq!(v.status(), Some(403), "{body}: {}", v.reason);
        assert!(
            v.operations.iter().any(|o| o.resource == "volumeDelete")
                || v.reason.contains("volumeDelete"),
            "{body}: {} {:?}",
            v.reason,
            v.operations
        );
    }
    let ok = decide(
        &engine,
        &key,
        &json!({"query": create, "variables": {"input": {"domain": "a.example.com"}}}),
    );
    assert_eq!(ok.decision, Decision::Allow, "{}", ok.reason);
}
