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
            "sql": {{"dialect": "postgres", "statement": {{"json_pointer": "/sql"}}, "params": {{"json_pointer": "/params"}}}}}},
          {{"name": "gql", "protocol": "graphql", "match": {{"path_prefix": "/graphql/v2"}}}},
          {{"name": "tools", "protocol": "mcp", "match": {{"path_prefix": "/mcp"}}}}],
        "roles": [{{"name": "r", "allow": [
          {{"service": "rest", "resources": ["reservations", "vehicles"], "actions": ["read"]}},
          {{"service": "sql", "resources": ["public.*"], "actions": ["read"]}},
          {{"service": "gql", "resources": ["*"], "actions": ["read"]}},
          {{"service": "gql", "resources": ["volumeDelete"], "actions": ["delete"], "records": {{"volumeId": ["vol-staging-1"]}}}},
          {{"service": "tools", "resources": ["create_*"], "actions": ["create"]}}]}}],
        "keys": [{{"id": "k", "sha256": "{}", "role": "r"}}],
        "guards": [{{"services": ["*"], "resources": ["*backup*"], "actions": ["destructive"], "effect": "deny"}},
          {{"services": ["gql"], "resources": ["*.password", "*.apiKey"], "actions": ["read"], "effect": "deny"}}]}}"#,
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
    let h = headers("POST", "/sql");
    // Each SQL bench twice: statements the VM has not seen (a counter in a trailing
    // comment makes every one new: the parse cost) and the same statement repeated
    // (`_repeat`: served by the decoded-statement memo).
    let mut seen = 0u64;
    let mut sql_bench =
        |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
         name: &str,
         sql: &str| {
            g.throughput(Throughput::Bytes(sql.len() as u64));
            g.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        seen += 1;
                        sql_body(&format!("{sql} -- {seen}"))
                    },
                    |body| e.decide(black_box(h.clone()), black_box(&body), 0),
                    criterion::BatchSize::SmallInput,
                )
            });
            let body = sql_body(sql);
            g.bench_function(format!("{name}_repeat"), |b| {
                b.iter(|| e.decide(black_box(h.clone()), black_box(&body), 0))
            });
        };
    sql_bench(&mut g, "sql_select_join_200b", select);

    let cols: Vec<String> = (0..60).map(|i| format!("r.col_{i}")).collect();
    let big = format!(
        "WITH recent AS (SELECT id, vehicle_id FROM reservations WHERE starts_at > now() - interval '7 days') \
         SELECT {} FROM reservations r JOIN recent x ON x.id = r.id JOIN vehicles v ON v.id = x.vehicle_id \
         WHERE r.tenant_id = $1 AND r.customer IN ({}) AND (r.notes ILIKE '%late%' OR r.notes IS NULL) \
         ORDER BY r.starts_at DESC LIMIT 100",
        cols.join(", "),
        (0..80).map(|i| format!("'customer-{i}'")).collect::<Vec<_>>().join(", ")
    );
    sql_bench(&mut g, "sql_select_2kb", &big);

    let batch: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "SELECT id, customer FROM reservations WHERE tenant_id = 'acme' AND id = 'r-{i}'"
            )
        })
        .collect();
    let batch = batch.join("; ");
    sql_bench(&mut g, "sql_batch_20", &batch);

    // GraphQL: the incident's document (allowed here on the one staging volume the
    // grant names), a 2 KB query with fragments, a batch of 10 operations.
    let h = headers("POST", "/graphql/v2");
    // Like SQL: documents the VM has not seen (a counter in a trailing comment) and the
    // same request repeated (`_repeat`: the decoded-request memo).
    let mut seen = 0u64;
    let mut gql_bench =
        |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
         name: &str,
         body: &dyn Fn(&str) -> Vec<u8>| {
            g.throughput(Throughput::Bytes(body("").len() as u64));
            g.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        seen += 1;
                        body(&format!("\n# {seen}"))
                    },
                    |body| e.decide(black_box(h.clone()), black_box(&body), 0),
                    criterion::BatchSize::SmallInput,
                )
            });
            let same = body("");
            g.bench_function(format!("{name}_repeat"), |b| {
                b.iter(|| e.decide(black_box(h.clone()), black_box(&same), 0))
            });
        };
    let volume_delete = |suffix: &str| {
        serde_json::to_vec(&serde_json::json!({
            "query": format!("mutation VolumeDelete($id: String!) {{\n  volumeDelete(volumeId: $id)\n}}{suffix}"),
            "variables": {"id": "vol-staging-1"}, "operationName": "VolumeDelete"}))
        .expect("json")
    };
    gql_bench(&mut g, "graphql_volume_delete", &volume_delete);
    let fields = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| format!("{prefix}Field{i}"))
            .collect::<Vec<_>>()
            .join("\n      ")
    };
    let big_query = format!(
        "query Project($id: String!, $first: Int = 50) {{\n  project(id: $id) {{\n    ...ProjectFields\n    \
         services(first: $first) {{ edges {{ node {{ ...ServiceFields instances {{ edges {{ node {{ ...InstanceFields }} }} }} }} }} }}\n  }}\n  \
         me {{ id name email }}\n}}\n\
         fragment ProjectFields on Project {{\n      {}\n}}\n\
         fragment ServiceFields on Service {{\n      {}\n}}\n\
         fragment InstanceFields on ServiceInstance {{\n      {}\n      ... on ServiceInstance {{ latestDeployment {{ id status }} }}\n}}\n",
        fields("project", 30),
        fields("service", 30),
        fields("instance", 30)
    );
    let big_body = |suffix: &str| {
        serde_json::to_vec(
            &serde_json::json!({"query": format!("{big_query}{suffix}"), "variables": {"id": "p1"}}),
        )
        .expect("json")
    };
    gql_bench(&mut g, "graphql_query_2kb_fragments", &big_body);
    let domains = "query Domains($environmentId: String!, $projectId: String!, $serviceId: String!) {\n  \
                   domains(environmentId: $environmentId, projectId: $projectId, serviceId: $serviceId) {\n    \
                   customDomains { id domain status { dnsRecords { fqdn recordType requiredValue } } }\n    \
                   serviceDomains { id domain suffix }\n  }\n}";
    let gql_batch = |suffix: &str| {
        let batch: Vec<serde_json::Value> = (0..10)
            .map(|i| serde_json::json!({"query": format!("{domains}{suffix}"),
                "variables": {"environmentId": format!("env-{i}"), "projectId": "p1", "serviceId": "s1"}}))
            .collect();
        serde_json::to_vec(&batch).expect("json")
    };
    gql_bench(&mut g, "graphql_batch_10", &gql_batch);
    // An MCP tools/call as the 2.x SDK sends it (stateless wire headers, `_meta`), with
    // 1 KB of arguments.
    let mut mcp_headers = headers("POST", "/mcp");
    for (n, v) in [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "create_reservation"),
    ] {
        mcp_headers.push((n.to_string(), v.as_bytes().to_vec()));
    }
    let notes: Vec<String> = (0..12)
        .map(|i| format!("note {i}: the customer asked for a child seat and a late return"))
        .collect();
    let mcp_call = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "create_reservation",
                   "arguments": {"reservation_id": "r-1001", "vehicle_id": "v-2", "customer": "Ada Lovelace",
                                 "tenant_id": "acme", "from": "2026-12-01", "to": "2026-12-04", "notes": notes},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": {}}}}))
    .expect("json");
    g.throughput(Throughput::Bytes(mcp_call.len() as u64));
    g.bench_function("mcp_tools_call_1kb", |b| {
        b.iter(|| e.decide(black_box(mcp_headers.clone()), black_box(&mcp_call), 0))
    });
    g.finish();
    let v = e.decide(mcp_headers, &mcp_call, 0);
    assert_eq!(v.decision().as_str(), "allow", "{}", v.reason());

    // Sanity: the benches measure allowed decisions, not early refusals.
    for (path, body) in [
        ("/sql", sql_body(select)),
        ("/sql", sql_body(&big)),
        ("/sql", sql_body(&batch)),
        ("/graphql/v2", volume_delete("")),
        ("/graphql/v2", big_body("")),
        ("/graphql/v2", gql_batch("")),
    ] {
        let v = e.decide(headers("POST", path), &body, 0);
        assert_eq!(v.decision().as_str(), "allow", "{}", v.reason());
    }
    println!(
        "sizes: select {} B, big {} B, batch {} B; graphql: volumeDelete body {} B, query {} B, batch body {} B; mcp tools/call body {} B",
        select.len(),
        big.len(),
        batch.len(),
        volume_delete("").len(),
        big_query.len(),
        gql_batch("").len(),
        mcp_call.len()
    );
}

/// A bundle with `keys` keys spread over `roles` roles (each with a few grants).
fn scaled(keys: usize, roles: usize) -> String {
    let roles_json: Vec<String> = (0..roles)
        .map(|r| {
            format!(
                r#"{{"name": "r{r}", "allow": [
                  {{"service": "rest", "resources": ["reservations", "t{r}_*"], "actions": ["read"]}},
                  {{"service": "rest", "resources": ["vehicles"], "actions": ["read", "update"], "records": {{"tenant_id": ["acme"]}}}}]}}"#
            )
        })
        .collect();
    let keys_json: Vec<String> = (0..keys)
        .map(|k| {
            let key = if k == keys / 2 { KEY.to_string() } else { format!("sgk_scale_{k}") };
            format!(
                r#"{{"id": "k{k}", "sha256": "{}", "role": "r{}", "expires": "2030-01-01T00:00:00Z"}}"#,
                hex(&sha256(key.as_bytes())),
                k % roles
            )
        })
        .collect();
    format!(
        r#"{{"bundle": "scale", "version": 1, "environment": "production",
        "services": [{{"name": "rest", "protocol": "rest", "match": {{"path_prefix": "/rest"}}, "rest": {{"style": "postgrest"}}}}],
        "roles": [{}], "keys": [{}]}}"#,
        roles_json.join(","),
        keys_json.join(",")
    )
}

/// Decision time against bundle size (it should not grow with keys: one hash lookup),
/// and the configure-time compile of a 1 000-key bundle.
fn scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("scale");
    let h = headers(
        "GET",
        "/rest/reservations?select=id,customer&tenant_id=eq.acme",
    );
    for (keys, roles) in [(10, 10), (1_000, 10), (100_000, 10), (1_000, 1_000)] {
        let json = scaled(keys, roles);
        let e = Engine::from_json(json.as_bytes(), &Secrets::Unchecked).expect("scaled bundle");
        let v = e.decide(h.clone(), b"", 0);
        assert_eq!(v.decision().as_str(), "allow", "{}", v.reason());
        g.bench_function(format!("rest_get_{keys}_keys_{roles}_roles"), |b| {
            b.iter(|| e.decide(black_box(h.clone()), b"", 0))
        });
    }
    let json = scaled(1_000, 10);
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("configure_1000_keys", |b| {
        b.iter(|| Engine::from_json(black_box(json.as_bytes()), &Secrets::Unchecked))
    });
    g.finish();
}

criterion_group!(benches, bench, scale);
criterion_main!(benches);
