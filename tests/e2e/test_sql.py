"""SQL over HTTP through a real Envoy: scopegate in front of a Neon-style `POST /sql`
service that executes on the real PostgreSQL. Every denied attempt is followed by a
direct look at PostgreSQL: nothing changed."""

import json

import pytest

import harness
from clients import H2, http1

TOKEN = "sql-upstream-" + harness.new_key("")

EXTRA_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS private;
CREATE TABLE IF NOT EXISTS private.secrets (id int PRIMARY KEY, value text);
INSERT INTO private.secrets VALUES (1, 'root password') ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION public.wipe_payments() RETURNS void LANGUAGE sql AS 'DELETE FROM payments';
"""

# What PostgreSQL holds, compared before and after every denied attempt.
SNAPSHOT = """
SELECT json_build_object(
  'tables', (SELECT json_agg(n ORDER BY n) FROM (
      SELECT table_schema || '.' || table_name AS n FROM information_schema.tables
      WHERE table_schema IN ('public', 'private')) t),
  'reservations', (SELECT json_agg(r ORDER BY r.id) FROM reservations r),
  'vehicles', (SELECT json_agg(v ORDER BY v.id) FROM vehicles v),
  'payments', (SELECT json_agg(p ORDER BY p.id) FROM payments p),
  'secrets', (SELECT json_agg(s ORDER BY s.id) FROM private.secrets s),
  'roles', (SELECT json_agg(rolname ORDER BY rolname) FROM pg_roles))
"""


class SqlKeys:
    def __init__(self):
        self.reader = harness.new_key()
        self.writer = harness.new_key()


def sql_bundle(keys, max_body=65536):
    return {
        "bundle": "e2e-sql",
        "version": 1,
        "environment": "production",
        "services": [{
            "name": "rentals-sql", "protocol": "sql", "match": {"path_prefix": "/sql"},
            "sql": {"dialect": "postgres", "default_schema": "public",
                    "statement": {"json_pointer": "/sql"}, "params": {"json_pointer": "/params"}},
            "limits": {"max_body_bytes": max_body},
            "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "SQL_UPSTREAM_TOKEN"},
        }],
        "roles": [
            {"name": "reader", "allow": [
                {"service": "rentals-sql", "resources": ["public.reservations", "public.vehicles"], "actions": ["read"]}]},
            {"name": "writer", "allow": [
                {"service": "rentals-sql", "resources": ["public.reservations"], "actions": ["read", "create", "update"],
                 "records": {"tenant_id": ["acme"]}},
                {"service": "rentals-sql", "resources": ["public.reservations"], "actions": ["delete"], "friction": "approval"}]},
        ],
        "keys": [
            {"id": "sql-reader", "sha256": harness.sha256_hex(keys.reader), "role": "reader"},
            {"id": "sql-writer", "sha256": harness.sha256_hex(keys.writer), "role": "writer"},
        ],
        "guards": [{"services": ["*"], "resources": ["private.*"], "actions": ["*"], "effect": "deny"}],
    }


@pytest.fixture(scope="module")
def sql_keys():
    return SqlKeys()


@pytest.fixture(scope="module")
def sql_upstream(pg):
    pg.execute(EXTRA_SCHEMA)
    u = harness.Upstream(pg.dsn, TOKEN, script="sql_api.py").start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def sql_gateway(sql_upstream, sql_keys):
    e = harness.Envoy(sql_bundle(sql_keys), sql_upstream.port, env={"SQL_UPSTREAM_TOKEN": TOKEN}).start()
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def clean(pg, sql_upstream):
    pg.seed()
    sql_upstream.reset()


def post_sql(port, key, sql, params=None, raw_body=None):
    body = raw_body if raw_body is not None else json.dumps({"sql": sql, **({"params": params} if params is not None else {})})
    return http1(port, "POST", "/sql", {"authorization": f"Bearer {key}", "content-type": "application/json"}, body)


def snapshot(pg):
    return pg.execute(SNAPSHOT)[0][0]


def test_reader_reads_rows(sql_gateway, sql_upstream, sql_keys):
    r = post_sql(sql_gateway.port, sql_keys.reader,
                 "SELECT r.id, v.model FROM reservations r JOIN vehicles v ON v.id = r.vehicle_id WHERE r.tenant_id = $1 ORDER BY r.id",
                 ["acme"])
    assert r.status == 200, r
    assert [row["id"] for row in r.json()["rows"]] == ["r-1", "r-17", "r-2"]
    seen = sql_upstream.seen()
    assert len(seen) == 1
    headers = dict(seen[0]["headers"])
    assert headers["authorization"] == f"Bearer {TOKEN}" and sql_keys.reader not in json.dumps(seen)


# Each a write, or a read of something not granted, in a different disguise.
DENIED = [
    "DELETE FROM reservations WHERE id = 'r-1'",
    "delete from RESERVATIONS",
    'DELETE FROM "public"."reservations" WHERE true',
    "SELECT * FROM reservations; DELETE FROM reservations",
    "SELECT 1; /* harmless */ DROP TABLE vehicles -- bye",
    "UPDATE vehicles SET model = 'x'",
    "TRUNCATE payments",
    "DROP TABLE payments",
    "WITH d AS (DELETE FROM reservations RETURNING *) SELECT * FROM d",
    "WITH u AS (UPDATE vehicles SET model = 'pwned' RETURNING id) SELECT * FROM reservations",
    "EXPLAIN ANALYZE DELETE FROM reservations",
    "EXPLAIN (ANALYZE, COSTS OFF) UPDATE vehicles SET model = 'x'",
    "SELECT * INTO stolen FROM reservations",
    "CREATE TABLE stolen AS SELECT * FROM reservations",
    "SELECT wipe_payments()",
    "SELECT * FROM reservations WHERE wipe_payments() IS NULL",
    "SELECT query_to_xml('delete from payments returning 1', true, true, '')",
    "COPY reservations TO PROGRAM 'cat > /dev/null'",
    "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'",
    "DO $$ BEGIN DELETE FROM payments; END $$",
    "SELECT * FROM private.secrets",
    "SELECT * FROM reservations WHERE id IN (SELECT value FROM private.secrets)",
    "SELECT * FROM payments",
    "SELECT * FROM reservations UNION ALL SELECT id, reservation_id, null, null FROM payments",
    "SET search_path TO private; SELECT * FROM secrets",
    "CREATE ROLE intruder SUPERUSER",
    "GRANT ALL ON private.secrets TO PUBLIC",
    "PREPARE p AS DELETE FROM payments; EXECUTE p",
    "SELECT * FROM reservations FOR UPDATE",
    "TABLE payments",
    "SELECT 1 WHERE " + " AND ".join(["1 = 1"] * 600),
]


@pytest.mark.parametrize("sql", DENIED)
def test_denied_statements_leave_postgres_unchanged(sql_gateway, sql_upstream, pg, sql_keys, sql):
    before = snapshot(pg)
    r = post_sql(sql_gateway.port, sql_keys.reader, sql)
    assert r.status == 403, r
    body = r.json()
    assert body["decision"] == "deny" and body["reason"] and body["hint"]
    assert snapshot(pg) == before
    assert sql_upstream.seen() == []


def test_duplicate_sql_keys_are_refused(sql_gateway, sql_upstream, pg, sql_keys):
    before = snapshot(pg)
    raw = '{"sql": "SELECT * FROM vehicles", "sql": "DROP TABLE vehicles"}'
    r = post_sql(sql_gateway.port, sql_keys.reader, None, raw_body=raw)
    assert r.status == 403, r
    assert "duplicate key `sql`" in r.json()["reason"]
    assert snapshot(pg) == before and sql_upstream.seen() == []


def test_record_scoped_writer(sql_gateway, sql_upstream, pg, sql_keys):
    ok = post_sql(sql_gateway.port, sql_keys.writer,
                  "UPDATE reservations SET customer = 'Ada L.' WHERE tenant_id = $1 AND id = $2", ["acme", "r-1"])
    assert ok.status == 200, ok
    assert pg.execute("SELECT customer FROM reservations WHERE id = 'r-1'") == [("Ada L.",)]
    before = snapshot(pg)
    for sql, params in [
        ("UPDATE reservations SET customer = 'x' WHERE tenant_id = $1", ["globex"]),
        ("UPDATE reservations SET customer = 'x' WHERE id = 'r-3'", None),
        ("UPDATE reservations SET customer = 'x' WHERE tenant_id = 'acme' OR tenant_id = 'globex'", None),
        ("INSERT INTO reservations (id, tenant_id, customer) VALUES ('r-99', 'globex', 'x')", None),
    ]:
        r = post_sql(sql_gateway.port, sql_keys.writer, sql, params)
        assert r.status == 403, (sql, r)
        assert "proven records" in r.json()["reason"]
    assert snapshot(pg) == before
    ins = post_sql(sql_gateway.port, sql_keys.writer,
                   "INSERT INTO reservations (id, tenant_id, vehicle_id, customer) VALUES ('r-99', 'acme', 'v-1', 'Q')")
    assert ins.status == 200, ins
    assert pg.execute("SELECT tenant_id FROM reservations WHERE id = 'r-99'") == [("acme",)]


def test_delete_owes_approval_and_the_row_stays(sql_gateway, sql_upstream, pg, sql_keys):
    r = post_sql(sql_gateway.port, sql_keys.writer, "DELETE FROM reservations WHERE id = $1", ["r-17"])
    assert r.status == 428, r
    assert r.json()["challenge"].startswith("sha256:")
    assert ("r-17",) in pg.execute("SELECT id FROM reservations")
    assert sql_upstream.seen() == []


def test_h2_sql_with_trailers_is_decided_on_the_whole_body(sql_gateway, sql_upstream, pg, sql_keys):
    before = snapshot(pg)
    c = H2(sql_gateway.port)
    try:
        sid = c.start("POST", "/sql", {"authorization": f"Bearer {sql_keys.reader}", "content-type": "application/json"})
        c.data(sid, b'{"sql": "SELECT * FROM vehicles; ')
        c.data(sid, b'DELETE FROM vehicles"}')
        c.pump(0.5)
        assert not c.answered(sid) and sql_upstream.seen() == []
        c.trailers(sid, {"x-t": "1"})
        r = c.response(sid)
    finally:
        c.close()
    assert r.status == 403, r
    assert snapshot(pg) == before and sql_upstream.seen() == []


def test_body_over_limit_is_413(sql_gateway, sql_upstream, sql_keys):
    r = post_sql(sql_gateway.port, sql_keys.reader, "SELECT * FROM vehicles WHERE model = '" + "x" * 70000 + "'")
    assert r.status == 413, r
    assert sql_upstream.seen() == []


@pytest.mark.parametrize("sql", [
    # At the decoder's limits: parsing and walking must not overflow the Wasm stack.
    "SELECT " + "(" * 40 + "1" + ")" * 40,
    "SELECT * FROM reservations WHERE " + " OR ".join(["id = 'r-1'"] * 499),
    "SELECT 1" + "::int" * 990,
    " UNION ".join(["SELECT id FROM vehicles"] * 900),
    "SELECT * FROM " + "(SELECT * FROM " * 24 + "vehicles" + ") x" * 24,
    # Beyond them: refused, and the VM keeps serving.
    "SELECT " + "(" * 400 + "1" + ")" * 400,
    "SELECT * FROM " + "(SELECT * FROM " * 200 + "vehicles" + ") x" * 200,
    "SELECT 1 WHERE " + " AND ".join(["true"] * 3000),
])
def test_deep_statements_never_crash_the_vm(sql_gateway, sql_upstream, sql_keys, sql):
    r = post_sql(sql_gateway.port, sql_keys.reader, sql)
    assert r.status in (200, 400, 403), r
    after = post_sql(sql_gateway.port, sql_keys.reader, "SELECT count(*) AS n FROM vehicles")
    assert after.status == 200 and after.json()["rows"] == [{"n": 3}], after
