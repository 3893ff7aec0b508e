"""Ground truth for the SQL classifier: every entry of tests/sql_corpus/postgres.sql is run
on the real PostgreSQL inside a transaction that is rolled back, and what it really did is
measured. The test fails if the classifier calls any entry a pure read (every operation
`read`) while PostgreSQL says it wrote something. Over-denial (a harmless entry that is
not classified as a pure read) is reported, not failed.

"Wrote" means any of:
* a transaction id was assigned in our transaction (`txid_current_if_assigned()`): rows,
  catalog, large objects, sequences created… anything transactional;
* session state changed: settings set in the session, `current_user`/`session_user`,
  advisory locks held, channels listened to;
* the database fingerprint (taken from another connection before and after, after the
  rollback) changed: table contents, catalog objects, roles, sequence positions — this also
  catches non-transactional effects (`nextval`, `setval`) and writes that escaped the
  rollback because the entry itself committed.
An entry that errors is "error" (PostgreSQL rolled it back); an entry that ends our
transaction itself (`COMMIT`, `ROLLBACK`) is judged by the fingerprint alone. Whenever an
entry left anything behind, the database is recreated before the next one.
"""

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CORPUS = ROOT / "tests" / "sql_corpus" / "postgres.sql"
CLI = os.environ.get("SCOPEGATE_CLI", str(ROOT / "target" / "release" / "scopegate"))
DB = "groundtruth"

SCHEMA = """
CREATE TABLE vehicles (id text PRIMARY KEY, model text NOT NULL);
CREATE TABLE reservations (id text PRIMARY KEY, tenant_id text NOT NULL,
    vehicle_id text REFERENCES vehicles(id), customer text NOT NULL, starts_at date);
CREATE TABLE payments (id text PRIMARY KEY, reservation_id text, amount_cents int NOT NULL);
CREATE TABLE "Reservations" (id text PRIMARY KEY);
CREATE SCHEMA private;
CREATE TABLE private.secrets (id int PRIMARY KEY, value text);
CREATE SEQUENCE res_seq;
CREATE VIEW acme_reservations AS SELECT * FROM reservations WHERE tenant_id = 'acme';
CREATE FUNCTION add_one(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
CREATE FUNCTION wipe_payments() RETURNS void LANGUAGE plpgsql AS 'BEGIN DELETE FROM payments; END';
CREATE PROCEDURE touch_vehicle(text) LANGUAGE sql AS $$UPDATE vehicles SET model = model || '.' WHERE id = $1$$;
INSERT INTO vehicles VALUES ('v-1', 'Model 3'), ('v-2', 'Zoe'), ('v-3', 'Transit');
INSERT INTO reservations VALUES ('r-1', 'acme', 'v-1', 'Ada', '2026-01-01'),
    ('r-2', 'acme', 'v-2', 'Grace', NULL), ('r-3', 'globex', 'v-3', 'Linus', '2025-06-01');
INSERT INTO payments VALUES ('p-1', 'r-1', 12900), ('p-2', 'r-3', 4500);
INSERT INTO "Reservations" VALUES ('R-1');
INSERT INTO private.secrets VALUES (1, 'root password');
"""

FINGERPRINT = """
SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
  SELECT 'row:' || t::text AS x FROM vehicles t UNION ALL
  SELECT 'row:' || t::text FROM reservations t UNION ALL
  SELECT 'row:' || t::text FROM payments t UNION ALL
  SELECT 'row:' || t::text FROM "Reservations" t UNION ALL
  SELECT 'row:' || t::text FROM private.secrets t UNION ALL
  SELECT 'seq:' || last_value || is_called::text FROM res_seq UNION ALL
  SELECT 'class:' || oid || relname || relkind::text || relnatts FROM pg_class WHERE relnamespace > 16384 OR relname !~ '^pg_' UNION ALL
  SELECT 'proc:' || oid || proname || md5(prosrc) FROM pg_proc WHERE pronamespace NOT IN
      ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) UNION ALL
  SELECT 'ns:' || nspname FROM pg_namespace UNION ALL
  SELECT 'role:' || rolname || rolsuper::text FROM pg_roles UNION ALL
  SELECT 'lo:' || oid FROM pg_largeobject_metadata UNION ALL
  SELECT 'acl:' || relname || coalesce(relacl::text, '') FROM pg_class WHERE relacl IS NOT NULL
) f
"""

SESSION = """
SELECT json_build_object(
  'xid', txid_current_if_assigned(),
  'user', current_user, 'session_user', session_user,
  'settings', (SELECT json_agg(name || '=' || setting ORDER BY name) FROM pg_settings WHERE source = 'session'),
  'advisory', (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
  'listening', (SELECT json_agg(c) FROM pg_listening_channels() c))
"""


def entries():
    text = CORPUS.read_text()
    blocks = [b.strip() for b in text.split("\n-- ;;\n")[1:]]
    return [b for b in blocks if b]


def classify_all(sqls):
    out = subprocess.run([CLI, "sql", "--dialect", "postgres", "--default-schema", "public", "--batch"],
                         input="\n".join(json.dumps(s) for s in sqls), capture_output=True, text=True, check=True)
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == len(sqls)
    return results


class Lab:
    """The `groundtruth` database inside the session's PostgreSQL."""

    def __init__(self, pg):
        self.admin_dsn = pg.dsn
        self.dsn = pg.dsn.replace("dbname=postgres", f"dbname={DB}")
        self.recreate()

    def recreate(self):
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {DB}")
            c.execute("DROP ROLE IF EXISTS intruder")
            c.execute("DROP ROLE IF EXISTS intruder2")
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(SCHEMA)
        self.clean = self.fingerprint()
        self.baseline = self.session_state(None)

    def fingerprint(self):
        with psycopg.connect(self.dsn, autocommit=True) as c:
            return c.execute(FINGERPRINT).fetchone()[0]

    def session_state(self, conn):
        if conn is None:
            with psycopg.connect(self.dsn) as c:
                state = c.execute(SESSION).fetchone()[0]
                c.rollback()
                return state
        return conn.execute(SESSION).fetchone()[0]

    def measure(self, sql):
        """'wrote: <evidence>', 'error: <message>' or 'clean'."""
        evidence = []
        outcome = None
        conn = psycopg.connect(self.dsn, autocommit=False)
        try:
            conn.execute("SET LOCAL statement_timeout = '5s'")
            try:
                cur = conn.cursor()
                cur.execute(sql)  # no parameters: the simple protocol, so batches run
                while cur.nextset():
                    pass
            except psycopg.Error as e:
                outcome = "error: " + str(e).strip().splitlines()[0]
            if outcome is None and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                state = self.session_state(conn)
                if state["xid"] is not None:
                    evidence.append(f"xid {state['xid']} assigned")
                for k in ("user", "session_user", "settings", "advisory", "listening"):
                    base = self.baseline[k] if k != "settings" else None
                    if k == "settings":
                        # Our own statement_timeout, and transaction characteristics that
                        # end with the transaction (BEGIN READ ONLY), are not effects.
                        extra = [s for s in (state["settings"] or [])
                                 if s != "statement_timeout=5000" and not s.startswith("transaction_")]
                        if extra:
                            evidence.append(f"session settings {extra}")
                    elif state[k] != base:
                        evidence.append(f"{k} {base!r} -> {state[k]!r}")
            elif outcome is None:
                evidence.append("(entry ended the transaction itself)")
        finally:
            try:
                conn.rollback()
            except psycopg.Error:
                pass
            conn.close()
        after = self.fingerprint()
        if after != self.clean:
            evidence.append("database fingerprint changed after rollback")
        left_behind = after != self.clean or "(entry ended the transaction itself)" in evidence
        if left_behind:
            self.recreate()
        real = [e for e in evidence if not e.startswith("(")]
        if real:
            return "wrote: " + "; ".join(real)
        return outcome or "clean"


def test_no_statement_classified_as_read_writes(pg):
    sqls = entries()
    assert len(sqls) >= 300, f"corpus has {len(sqls)} entries"
    verdicts = classify_all(sqls)
    lab = Lab(pg)
    truth = [lab.measure(s) for s in sqls]

    def pure_read(v):
        return v["ok"] and all(op["action"] == "read" for op in v["operations"])

    offenders = [(s, t, v) for s, t, v in zip(sqls, truth, verdicts) if t.startswith("wrote") and pure_read(v)]
    wrote = [t for t in truth if t.startswith("wrote")]
    errored = [t for t in truth if t.startswith("error")]
    clean = [(s, v) for s, t, v in zip(sqls, truth, verdicts) if t == "clean"]
    over_denied = [(s, v) for s, v in clean if not pure_read(v)]
    print(f"\nSQL ground truth: {len(sqls)} entries; {len(wrote)} wrote, {len(errored)} errored, "
          f"{len(clean)} clean; {len(clean) - len(over_denied)} clean and classified read; "
          f"{len(over_denied)} clean but not classified a pure read (over-denied):")
    for s, v in over_denied:
        why = v["error"] or ", ".join(sorted({f"{o['action']} {o['resource']}" for o in v["operations"] if o["action"] != "read"}))
        print(f"  over-denied: {s[:90]!r}  ({why[:90]})")
    assert not offenders, "classified as pure read, but wrote:\n" + "\n".join(
        f"  {s!r}: {t}; classifier: {v}" for s, t, v in offenders)
    # Sanity of the measurement itself: the corpus's obvious writes were seen as writes.
    by_sql = dict(zip(sqls, truth))
    for sql in ["DELETE FROM payments", "SELECT nextval('res_seq')", "SET work_mem = '64MB'",
                "SELECT pg_advisory_lock(1)", "WITH d AS (DELETE FROM payments RETURNING *) SELECT 1",
                "SELECT wipe_payments()", "BEGIN; DELETE FROM payments; COMMIT",
                "SELECT * FROM reservations FOR UPDATE"]:
        assert by_sql[sql].startswith("wrote"), (sql, by_sql[sql])
    for sql in ["SELECT * FROM reservations", "SELECT add_one(1)", "EXPLAIN DELETE FROM payments"]:
        assert by_sql[sql] == "clean", (sql, by_sql[sql])
