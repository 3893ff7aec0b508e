//! `explain` never reports less than the filter allows: over every shipped bundle
//! (policies/*.json and the adversarial bundle), for every role, requests that act on
//! every name the bundle mentions — qualified and not, as agents write them — are decided
//! by the engine, and each operation eval lets through must be in explain's reach with the
//! same friction; what explain says a role reaches without record limits, eval allows.
//! GraphQL services are driven over their schema's root fields where a schema is present
//! (Railway's, from ../shared/fixtures; skipped, and said, when absent).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::bundle::{self, Bundle, GraphqlSchema};
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::explain::{explain, universe, KeyReport};
use scopegate_engine::operation::Action;
use scopegate_engine::policy::compile;
use scopegate_engine::verdict::Proof;
use scopegate_engine::{Decision, Engine, Secrets, Verdict};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

mod common;
use common::{root, NOW};

/// The bundle with one key per role (`secret-<role>`), valid everywhere, never expiring.
fn with_keys(mut b: Bundle) -> Bundle {
    let keys: Vec<Value> = b
        .roles
        .iter()
        .map(|r| {
            json!({"id": format!("t-{}", r.name), "role": r.name,
                   "sha256": hex(&sha256(format!("secret-{}", r.name).as_bytes()))})
        })
        .collect();
    b.keys = serde_json::from_value(Value::Array(keys)).unwrap();
    b
}

/// Every name the bundle's grants and guards mention (no pattern), with and without a
/// schema (only without when `bare`: what a table list of unqualified names gives
/// explain), and one no rule names.
fn names(raw: &Value, bare: bool) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut add = |v: &Value| {
        for r in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
            if r.contains(['*', '?', '/', ':']) {
                continue;
            }
            match r.split_once('.') {
                Some((_, unqualified)) => {
                    out.insert(unqualified.to_string());
                    if !bare {
                        out.insert(r.to_string());
                    }
                }
                None => {
                    out.insert(r.to_string());
                }
            }
        }
    };
    for role in raw["roles"].as_array().into_iter().flatten() {
        for g in role["allow"].as_array().into_iter().flatten() {
            add(&g["resources"]);
        }
    }
    for g in raw["guards"].as_array().into_iter().flatten() {
        add(&g["resources"]);
    }
    out.insert("zz_other".into());
    out.into_iter().collect()
}

/// Headers and body.
type Request = (Vec<(String, Vec<u8>)>, Vec<u8>);

/// A request doing `action` to table `name` on a service, as an agent sends it; `None`
/// where the test has no builder for the service's shape.
fn request(svc: &Value, name: &str, action: Action) -> Option<Request> {
    let prefix = svc["match"]["path_prefix"].as_str().unwrap_or("");
    let h = |m: &str, p: &str| {
        vec![
            (":method".to_string(), m.as_bytes().to_vec()),
            (":path".to_string(), p.as_bytes().to_vec()),
            (":authority".to_string(), b"gateway.test".to_vec()),
            ("content-type".to_string(), b"application/json".to_vec()),
        ]
    };
    match svc["protocol"].as_str()? {
        "rest" if svc["rest"]["style"] == "postgrest" => {
            let (m, q, body) = match action {
                Action::Read => ("GET", "?id=eq.1", ""),
                Action::Create => ("POST", "", r#"{"id":"1"}"#),
                Action::Update => ("PATCH", "?id=eq.1", r#"{"note":"x"}"#),
                Action::Delete => ("DELETE", "?id=eq.1", ""),
                _ => return None,
            };
            Some((
                h(m, &format!("{prefix}/{name}{q}")),
                body.as_bytes().to_vec(),
            ))
        }
        "sql" => {
            let sql = match action {
                Action::Read => format!("SELECT * FROM {name} WHERE id = 1"),
                Action::Create => format!("INSERT INTO {name} (id) VALUES (1)"),
                Action::Update => format!("UPDATE {name} SET note = 'x' WHERE id = 1"),
                Action::Delete => format!("DELETE FROM {name} WHERE id = 1"),
                Action::Drop => format!("DROP TABLE {name}"),
                Action::Alter => format!("ALTER TABLE {name} ADD COLUMN z int"),
                _ => return None,
            };
            let s = &svc["sql"];
            if s.get("body_values").is_some() {
                return None;
            }
            if let Some(p) = s["statement"]["json_pointer"].as_str() {
                let mut body = json!({});
                let key = p.strip_prefix('/')?;
                if key.contains('/') {
                    return None;
                }
                body[key] = json!(sql);
                Some((h("POST", prefix), body.to_string().into_bytes()))
            } else if let Some(q) = s["statement"]["query_param"].as_str() {
                let enc: String = sql
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                Some((h("GET", &format!("{prefix}?{q}={enc}")), Vec::new()))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A GraphQL request for one root field.
fn graphql(svc: &Value, field: &str, action: Action) -> Request {
    let prefix = svc["match"]["path_prefix"].as_str().unwrap_or("/graphql");
    let doc = match field.strip_prefix("subscription/") {
        Some(f) => format!("subscription {{ {f} }}"),
        None if action == Action::Read => format!("query {{ {field} }}"),
        None => format!("mutation {{ {field} }}"),
    };
    (
        vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), prefix.as_bytes().to_vec()),
            (":authority".into(), b"gateway.test".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ],
        json!({ "query": doc }).to_string().into_bytes(),
    )
}

/// How eval treats the request: `Some(friction word)` when covered (as explain words it),
/// `None` when no grant covers it; `Err` when the test's request is not what it meant
/// (undecodable, or not exactly one operation).
fn eval_class(v: &Verdict) -> Result<Option<&'static str>, String> {
    if v.operations.len() != 1 {
        return Err(format!("{} operations", v.operations.len()));
    }
    let reason = v.reason();
    Ok(match v.decision() {
        Decision::Allow => Some("no friction"),
        Decision::Challenge => match v.proof() {
            Some(Proof::Confirm) => Some("with confirmation"),
            _ => Some("with approval"),
        },
        Decision::Deny if v.rule.as_deref().is_some_and(|r| r.starts_with("guards")) => {
            Some("denied")
        }
        Decision::Deny if reason.starts_with("undecodable") => return Err(reason.into_owned()),
        _ => None,
    })
}

/// Explain's word for (service, resource, action): the friction it reaches it with,
/// "denied", or `None`; and whether only listed records are reached.
fn explain_class(
    r: &KeyReport,
    service: &str,
    resource: &str,
    action: Action,
) -> (Option<String>, bool) {
    let Some(reach) = r
        .services
        .iter()
        .find(|s| s.service == service)
        .and_then(|s| s.reach.as_ref())
    else {
        return (None, false);
    };
    if reach
        .denied
        .iter()
        .any(|d| *d == format!("{} {resource}", action.as_str()))
    {
        return (Some("denied".into()), false);
    }
    for line in reach.reached.iter().filter(|l| l.action == action.as_str()) {
        for n in &line.names {
            if n == resource {
                return (Some(line.friction.clone()), false);
            }
            if n.strip_suffix(" (listed records)") == Some(resource) {
                return (Some(line.friction.clone()), true);
            }
        }
    }
    (None, false)
}

struct Tally {
    compared: usize,
    skipped: usize,
}

fn check(name: &str, raw: &Value, b: Bundle, bare: bool, tally: &mut Tally) {
    let b = with_keys(b);
    let policy = compile(&b, &Secrets::Unchecked).unwrap_or_else(|e| panic!("{name}: {e}"));
    let tables: HashMap<String, Vec<String>> = raw["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["protocol"] == "sql" || s["protocol"] == "rest")
        .map(|s| (s["name"].as_str().unwrap().to_string(), names(raw, bare)))
        .collect();
    let uni = universe(&policy, &tables);
    let reports = explain(&b, &policy, &uni, None, None).unwrap();
    let engine = Engine::new(compile(&b, &Secrets::Unchecked).unwrap());
    let mut problems = Vec::new();
    for report in &reports {
        let role = &report.role;
        let secret = format!("secret-{role}");
        for svc in raw["services"].as_array().unwrap() {
            let service = svc["name"].as_str().unwrap();
            let Some((_, pairs)) = uni.get(service) else {
                continue;
            };
            for (resource_as_given, action) in pairs {
                let built = if svc["protocol"] == "graphql" {
                    Some(graphql(svc, resource_as_given, *action))
                } else {
                    // The name as the agent types it (unqualified ones too): explain's
                    // universe holds it as the decoder named it.
                    request(svc, resource_as_given, *action)
                };
                let Some((mut headers, body)) = built else {
                    tally.skipped += 1;
                    continue;
                };
                headers.push(("x-api-key".into(), secret.as_bytes().to_vec()));
                let v = engine.decide(headers, &body, NOW);
                let eval = match eval_class(&v) {
                    Ok(c) => c,
                    Err(_) => {
                        tally.skipped += 1;
                        continue;
                    }
                };
                // Compared under what the decoder read (a mutation whose rule depends on
                // arguments it was not given reads as its default action).
                let op = &v.operations[0];
                let (said, listed) = explain_class(report, service, &op.resource, op.action);
                tally.compared += 1;
                let what = format!(
                    "{name}: role {role}, {service}: {} {} (eval: {}, explain: {})",
                    op.action.as_str(),
                    op.resource,
                    eval.unwrap_or("not covered"),
                    said.as_deref().unwrap_or("nothing")
                );
                match (eval, said.as_deref()) {
                    // Never less than eval allows, and with the same friction.
                    (Some(e), Some(s)) if e == s => {}
                    (Some(_), _) => problems.push(format!("understated — {what}")),
                    // Explain claims more than eval: only where it says the grant is
                    // limited to listed records (this request names none of them).
                    (None, Some(_)) if listed => {}
                    (None, Some(_)) => problems.push(format!("overstated — {what}")),
                    (None, None) => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn shipped() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out.push(root().join("tests/adversarial/bundle.json"));
    out
}

#[test]
fn explain_never_reports_less_than_eval_allows() {
    let mut tally = Tally {
        compared: 0,
        skipped: 0,
    };
    let railway = root().join("../shared/fixtures/railway/schema.json");
    for path in shipped() {
        let text = std::fs::read(&path).unwrap();
        let raw: Value = serde_json::from_slice(&text).unwrap();
        let mut b = bundle::parse(&text).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "railway.json" {
            if !railway.is_file() {
                eprintln!("SKIPPED railway.json: {} is absent", railway.display());
                continue;
            }
            let schema: Value = serde_json::from_slice(&std::fs::read(&railway).unwrap()).unwrap();
            b.services[0].graphql.as_mut().unwrap().schema = Some(GraphqlSchema {
                sdl: None,
                introspection: Some(schema),
            });
        }
        let before = tally.compared;
        check(&name, &raw, b.clone(), true, &mut tally);
        check(&name, &raw, b, false, &mut tally);
        eprintln!("{name}: {} requests compared", tally.compared - before);
        assert!(tally.compared > before, "{name}: nothing compared");
    }
    eprintln!(
        "{} requests compared, {} without a builder or not one operation",
        tally.compared, tally.skipped
    );
}
