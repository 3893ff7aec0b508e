//! Native decision time (decode + evaluate), per protocol. `make bench`.
//! Reported in README.md's performance section.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::{Engine, HeaderList, Secrets};
use std::hint::black_box;

const KEY: &str = "sgk_bench_0123456789abcdefghijklmnopqrstuvwxyzAB";

fn engine() -> Engine {
    let bundle = format!(
        r#"{{"bundle": "bench", "version": 1, "environment": "production",
        "services": [
          {{"name": "rest", "protocol": "rest", "match": {{"path_prefix": "/rest"}}, "rest": {{"style": "postgrest"}}}},
          {{"name": "sql", "protocol": "sql", "match": {{"path_prefix": "/sql"}},
            "sql": {{"dialect": "postgres", "statement": {{"json_pointer": "/sql"}}, "params": {{"json_pointer": "/params"}}}}}}],
        "roles": [{{"name": "r", "allow": [
          {{"service": "rest", "resources": ["reservations", "vehicles"], "actions": ["read"]}},
          {{"service": "sql", "resources": ["public.*"], "actions": ["read"]}}]}}],
        "keys": [{{"id": "k", "sha256": "{}", "role": "r"}}],
        "guards": [{{"services": ["*"], "resources": ["*backup*"], "actions": ["destructive"], "effect": "deny"}}]}}"#,
        hex(&sha256(KEY.as_bytes()))
    );
    Engine::from_json(bundle.as_bytes(), &Secrets::Unchecked).expect("bench bundle")
}

fn headers(method: &str, path: &str) -> HeaderList {
    [
        (":method", method),
        (":path", path),
        (":authority", "gw.internal:10000"),
        (":scheme", "http"),
        ("authorization", &format!("Bearer {KEY}")),
        ("content-type", "application/json"),
        ("user-agent", "agent/1.0"),
        ("x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
    .collect()
}

fn sql_body(sql: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"sql": sql, "params": ["acme"]})).expect("json")
}

fn bench(c: &mut Criterion) {
    let e = engine();
    let mut g = c.benchmark_group("decide");

    let h = headers(
        "GET",
        "/rest/reservations?select=id,customer&tenant_id=eq.acme&order=id",
    );
    g.bench_function("rest_get", |b| {
        b.iter(|| e.decide(black_box(h.clone()), b"", 0))
    });

    let select = "SELECT r.id, r.customer, v.model FROM reservations r \
                  JOIN vehicles v ON v.id = r.vehicle_id WHERE r.tenant_id = $1 \
                  AND r.starts_at > now() - interval '30 days' ORDER BY r.id LIMIT 50";
    let body = sql_body(select);
    let h = headers("POST", "/sql");
    g.throughput(Throughput::Bytes(select.len() as u64));
    g.bench_function("sql_select_join_200b", |b| {
        b.iter(|| e.decide(black_box(h.clone()), black_box(&body), 0))
    });

    let cols: Vec<String> = (0..60).map(|i| format!("r.col_{i}")).collect();
    let big = format!(
        "WITH recent AS (SELECT id, vehicle_id FROM reservations WHERE starts_at > now() - interval '7 days') \
         SELECT {} FROM reservations r JOIN recent x ON x.id = r.id JOIN vehicles v ON v.id = x.vehicle_id \
         WHERE r.tenant_id = $1 AND r.customer IN ({}) AND (r.notes ILIKE '%late%' OR r.notes IS NULL) \
         ORDER BY r.starts_at DESC LIMIT 100",
        cols.join(", "),
        (0..80).map(|i| format!("'customer-{i}'")).collect::<Vec<_>>().join(", ")
    );
    let body = sql_body(&big);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("sql_select_2kb", |b| {
        b.iter(|| e.decide(black_box(h.clone()), black_box(&body), 0))
    });

    let batch: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "SELECT id, customer FROM reservations WHERE tenant_id = 'acme' AND id = 'r-{i}'"
            )
        })
        .collect();
    let batch = batch.join("; ");
    let body = sql_body(&batch);
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("sql_batch_20", |b| {
        b.iter(|| e.decide(black_box(h.clone()), black_box(&body), 0))
    });
    g.finish();

    // Sanity: the benches measure allowed decisions, not early refusals.
    for (path, body) in [
        ("/sql", sql_body(select)),
        ("/sql", sql_body(&big)),
        ("/sql", sql_body(&batch)),
    ] {
        let v = e.decide(headers("POST", path), &body, 0);
        assert_eq!(v.decision.as_str(), "allow", "{}", v.reason);
    }
    println!(
        "sizes: select {} B, big {} B, batch {} B",
        select.len(),
        big.len(),
        batch.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
