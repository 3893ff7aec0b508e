#!/usr/bin/env python3
"""What PostgreSQL really does with the SQL soundness cases of tests/adversarial/cases.jsonl.

Not part of the pytest suite: a reviewer runs it by hand to see that every `deny` case of
classes 1-5 (issue 17: EXPLAIN, name binding, proofs, bounds, post-images; names starting
`sql class 1` ... `sql class 5`) really does something its key's grants do not allow.

    python3 tests/adversarial/sql_effects.py [NAME-SUBSTRING]

It starts a throw-away PostgreSQL cluster (the newest /usr/lib/postgresql/*/bin, or
$PG_BINDIR) on a loopback port in a temporary directory, run as `postgres` (through
`runuser`) when started as root, creates a small schema with the bundle's table names
(below), and then, per case, runs the case's statement (with its `params`, if any) in a
transaction that is rolled back, and prints what changed:

- rows deleted, inserted or updated (before/after images, matched on a hidden `rk` column),
- relations created, rows left locked (`FOR UPDATE`), the sequence `audit_seq` advanced
  (sequences are not transactional: it is reset after each case),
- rows returned whose `secret` the key may not read (every row carries a unique one).

Each effect is then judged against the key's `shop-sql` grants in tests/adversarial/
bundle.json, independently of scopegate: a deleted/inserted row needs a `delete`/`create`
grant whose `records` match it, an updated row an `update` grant matching both its before
and after image (the contract's post-image rule), a statement that touched every row of a
table a grant marked `unbounded`, a returned secret a `read` grant matching its row, a new
relation an `alter` grant, a function run (the sequence moved) an `execute` grant.

A `deny` case passes when its effect lies outside the grant; the few cases whose refusal is
the contract's own rule and not an effect (listed in CONTRACT_ONLY) are reported as such.
`allow` cases of classes 1-5 are run too, and must stay inside the grant; class 6 cases are
only checked to be valid PostgreSQL. Exit status 1 when any check fails. The cluster is
stopped (by its postmaster PID) and its directory removed at the end.
"""

import fnmatch
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "adversarial"

try:
    import psycopg
    from psycopg import pq
except ImportError:  # re-run under the project's virtualenv (`make venv`)
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.exists() and not os.environ.get("SQL_EFFECTS_REEXEC"):
        os.environ["SQL_EFFECTS_REEXEC"] = "1"
        os.execv(str(venv), [str(venv), __file__, *sys.argv[1:]])
    sys.exit("sql_effects.py needs psycopg: run `make venv` (it installs it into .venv)")

TABLES = ["products", "orders", "carts", "notes", "payments"]

# Every table has a hidden row key `rk` (to match a row before and after an UPDATE that
# changes its id) and a unique `secret` (to see which rows a read returned).
SCHEMA = r"""
CREATE TABLE products (id text PRIMARY KEY, name text NOT NULL, price int NOT NULL DEFAULT 0,
    secret text, rk int GENERATED ALWAYS AS IDENTITY);
CREATE TABLE orders (id text PRIMARY KEY, tenant_id text NOT NULL DEFAULT 'unassigned',
    status text, total int NOT NULL DEFAULT 0, note text, product_id text, secret text,
    created_at timestamptz NOT NULL DEFAULT now() - interval '1 day',
    rk int GENERATED ALWAYS AS IDENTITY, UNIQUE (tenant_id, id));
CREATE TABLE carts (id text PRIMARY KEY, tenant_id text NOT NULL DEFAULT 'unassigned', note text,
    secret text, rk int GENERATED ALWAYS AS IDENTITY);
CREATE TABLE notes (id int PRIMARY KEY, body text, secret text, rk int GENERATED ALWAYS AS IDENTITY);
CREATE TABLE payments (id text PRIMARY KEY, order_id text, amount_cents int NOT NULL, secret text,
    rk int GENERATED ALWAYS AS IDENTITY);
-- A function wrongly declared IMMUTABLE: the planner runs it while planning, even for a
-- plan-only EXPLAIN (its side effect: the sequence moves).
CREATE SEQUENCE audit_seq;
CREATE FUNCTION bump() RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN RETURN nextval('audit_seq'); END $$;
-- A non-deterministic collation: 'c-1' = 'C-1' under it.
CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

INSERT INTO products (id, name, price, secret) VALUES
    ('pr-1', 'acme', 100, 'SECRET[products pr-1]'), ('pr-2', 'Zoe', 200, 'SECRET[products pr-2]');
INSERT INTO orders (id, tenant_id, status, total, note, product_id, secret) VALUES
    ('o-1', 'acme',    'new',  10, 'first', 'pr-1', 'SECRET[orders o-1]'),
    ('o-2', 'acme',    'new',  20, NULL,    'pr-2', 'SECRET[orders o-2]'),
    ('o-3', 'globex',  'new',  30, 'rush',  'pr-1', 'SECRET[orders o-3]'),
    ('o-4', 'globex',  'paid', 40, 'acme',  'pr-2', 'SECRET[orders o-4]'),
    ('o-5', 'initech', 'new',  50, 'o-1',   'pr-1', 'SECRET[orders o-5]'),
    ('o-6', 'acme-eu', 'new',  60, NULL,    'pr-2', 'SECRET[orders o-6]');
INSERT INTO carts (id, tenant_id, note, secret) VALUES
    ('c-1', 'acme', 'x', 'SECRET[carts c-1]'), ('c-2', 'acme', NULL, 'SECRET[carts c-2]'),
    ('c-3', 'globex', 'y', 'SECRET[carts c-3]'), ('c-9', 'globex', NULL, 'SECRET[carts c-9]'),
    ('c-10', 'acme', NULL, 'SECRET[carts c-10]'), ('C-1', 'globex', NULL, 'SECRET[carts C-1]');
INSERT INTO notes (id, body, secret) SELECT g, 'note ' || g, 'SECRET[notes ' || g || ']' FROM generate_series(1, 13) g;
INSERT INTO payments (id, order_id, amount_cents, secret) VALUES
    ('p-1', 'o-1', 1000, 'SECRET[payments p-1]'), ('p-2', 'o-3', 3000, 'SECRET[payments p-2]');
"""

# Deny cases whose refusal is a rule of the contract (/tmp/sql-rules.md, issue 17), not an
# effect PostgreSQL shows: they are expected to change nothing.
CONTRACT_ONLY = {
    "sql class 1 (explain): EXPLAIN (ANALYZE false) DELETE counts as executing (contract: any ANALYZE option)":
        "PostgreSQL only plans it; the contract counts any ANALYZE option as executing",
    "sql class 1 (explain): unknown EXPLAIN option is refused":
        "PostgreSQL rejects the option; the contract refuses unknown options",
}


# ------------------------------------------------------------------ the cluster

class Cluster:
    def __init__(self):
        bindirs = [os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else sorted(
            glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bindirs:
            sys.exit("no PostgreSQL found under /usr/lib/postgresql/*/bin (set PG_BINDIR)")
        self.bin = Path(bindirs[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="sql-effects-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = None
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def start(self):
        data = self.dir / "data"
        subprocess.run(self.as_user + [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres",
                                       "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                       check=True, stdout=subprocess.DEVNULL)
        self.log = open(self.dir / "postgres.log", "wb")
        self.proc = subprocess.Popen(
            self.as_user + [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                            "-c", "fsync=off", "-c", "synchronous_commit=off"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn, connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    sys.exit(f"PostgreSQL did not start; see {self.dir / 'postgres.log'}")
                time.sleep(0.1)

    def stop(self):
        """Fast shutdown of the postmaster this script started, by the PID it wrote."""
        pidfile = self.dir / "data" / "postmaster.pid"
        if self.proc is not None and self.proc.poll() is None and pidfile.exists():
            pid = int(pidfile.read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGQUIT)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ running a statement

def rows_of(res):
    return [[None if (v := res.get_value(r, c)) is None else v.decode()
             for c in range(res.nfields)] for r in range(res.ntuples)]


def q(pg, sql):
    res = pg.exec_(sql.encode())
    if res.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise RuntimeError(res.error_message.decode().strip())
    return rows_of(res)


def snapshot(pg):
    tables = {t: {int(rk): json.loads(j) for rk, j in q(pg, f"SELECT rk, row_to_json(t)::text FROM {t} t")}
              for t in TABLES}
    for rows in tables.values():
        for r in rows.values():
            r.pop("rk", None)
    rels = {r[0] for r in q(pg, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r','v','m','p','f')")}
    return tables, rels


def sequence(pg):
    return tuple(q(pg, "SELECT last_value, is_called FROM audit_seq")[0])


def locked_rows(side, before, changed):
    """Rows of `before` another session cannot lock now (the statement holds them)."""
    out = {}
    for t in TABLES:
        try:
            free = {int(r[0]) for r in q(side, f"SELECT rk FROM {t} FOR UPDATE SKIP LOCKED")}
        except RuntimeError:
            out[t] = "table"  # lock_timeout: the whole table is locked
            continue
        held = set(before[t]) - free - changed.get(t, set())
        if held:
            out[t] = held
    return out


def execute(cluster, case):
    """Runs one case's statement in a rolled-back transaction: its effects."""
    body = json.loads(case["body"])
    sql, params = body["sql"], body.get("params")
    with psycopg.connect(cluster.dsn, autocommit=True) as main, \
            psycopg.connect(cluster.dsn, autocommit=True) as side:
        pg, sp = main.pgconn, side.pgconn
        q(sp, "SET lock_timeout = '300ms'")
        seq_before = sequence(sp)
        q(pg, "BEGIN")
        before, rels_before = snapshot(pg)
        if params is None:
            res = pg.exec_(sql.encode())
        else:
            res = pg.exec_params(sql.encode(), [None if p is None else
                                                (p if isinstance(p, str) else json.dumps(p)).encode()
                                                for p in params])
        eff = {"error": None, "output": [], "deleted": {}, "inserted": {}, "updated": {},
               "relations": set(), "locked": {}, "sequence": None, "before": before}
        if res.status in (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.BAD_RESPONSE,
                          pq.ExecStatus.NONFATAL_ERROR):
            eff["error"] = res.error_message.decode().strip().splitlines()[0]
        else:
            eff["output"] = rows_of(res)
            after, rels_after = snapshot(pg)
            changed = {}
            for t in TABLES:
                b, a = before[t], after[t]
                eff["deleted"][t] = [b[k] for k in sorted(set(b) - set(a))]
                eff["inserted"][t] = [a[k] for k in sorted(set(a) - set(b))]
                eff["updated"][t] = [(b[k], a[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]]
                changed[t] = (set(b) - set(a)) | {k for k in set(a) & set(b) if a[k] != b[k]}
            eff["relations"] = rels_after - rels_before
            eff["locked"] = {t: ([before[t][k] for k in sorted(v)] if v != "table" else v)
                             for t, v in locked_rows(sp, before, changed).items()}
        q(pg, "ROLLBACK")
        seq_after = sequence(sp)
        if seq_after != seq_before:
            eff["sequence"] = (tuple(seq_before), tuple(seq_after))
            q(sp, "SELECT setval('audit_seq', 1, false)")
        return eff


# ------------------------------------------------------------------ judging against the grant

def grants_of(bundle, key_id):
    key = next(k for k in bundle["keys"] if k["id"] == key_id)
    role = next(r for r in bundle["roles"] if r["name"] == key["role"])
    return role["name"], [g for g in role["allow"] if g["service"] == "shop-sql"]


def covering(grants, action, table, row=None):
    """Grants naming `action` on public.<table> whose records (if any) match `row`."""
    out = []
    for g in grants:
        if action not in g["actions"]:
            continue
        if not any(fnmatch.fnmatchcase(f"public.{table}", r) for r in g["resources"]):
            continue
        recs = g.get("records") or {}
        if row is not None and not all(str(row.get(c)) in vals for c, vals in recs.items()):
            continue
        out.append(g)
    return out


def label(table, row):
    extra = f" ({row['tenant_id']})" if "tenant_id" in row else ""
    return f"{table} {row['id']}{extra}"


def grouped(pairs):
    """[(heading, item or None)] -> ["heading: item, item", "heading"], in first-seen order."""
    out = {}
    for head, item in pairs:
        out.setdefault(head, [])
        if item is not None:
            out[head].append(item)
    return [f"{h}: {', '.join(items)}" if items else h for h, items in out.items()]


def judge(grants, eff):
    """(what PostgreSQL did, what of it lies outside the grants), as printable lines."""
    did, outside = [], []
    before = eff["before"]
    for t in TABLES:
        for r in eff["deleted"].get(t, []):
            did.append(("deleted", label(t, r)))
            if not covering(grants, "delete", t, r):
                outside.append(("deleted rows no delete grant covers", label(t, r)))
        for r in eff["inserted"].get(t, []):
            did.append(("inserted", label(t, r)))
            if not covering(grants, "create", t, r):
                outside.append(("inserted rows no create grant covers", label(t, r)))
        for b, a in eff["updated"].get(t, []):
            change = ", ".join(f"{c}={a[c]!r}" for c in a if a[c] != b.get(c))
            did.append(("updated", f"{label(t, b)} -> {change}"))
            if not covering(grants, "update", t, b):
                outside.append(("updated rows no update grant covers (before the change)", label(t, b)))
            elif not covering(grants, "update", t, a):
                outside.append(("updated rows whose new values no update grant covers",
                                f"{label(t, b)} -> {change}"))
        touched = len(eff["deleted"].get(t, [])) + len(eff["updated"].get(t, []))
        if touched and touched == len(before[t]) > 1:
            for action, n in (("delete", len(eff["deleted"].get(t, []))),
                              ("update", len(eff["updated"].get(t, [])))):
                if n and not any(g.get("unbounded") for g in covering(grants, action, t)):
                    outside.append((f"{action} touched every row of {t} ({touched}/{len(before[t])}) "
                                    f"and no {action} grant on {t} is unbounded", None))
        locked = eff["locked"].get(t)
        if locked == "table":
            did.append((f"left table {t} locked", None))
            if not covering(grants, "update", t):
                outside.append((f"locked table {t} without an update grant on it", None))
        elif locked:
            for r in locked:
                did.append(("left rows locked (a row lock: FOR UPDATE, or an UPDATE that kept the values)", label(t, r)))
                if not covering(grants, "update", t, r):
                    outside.append(("row locks (FOR UPDATE) no update grant covers", label(t, r)))
    for rel in sorted(eff["relations"]):
        did.append(("created relation", rel))
        if not covering(grants, "alter", rel):
            outside.append(("created relations without an alter grant", f"public.{rel}"))
    if eff["sequence"]:
        b, a = eff["sequence"]
        did.append((f"ran bump(): sequence audit_seq (last_value, is_called) went from {b} to {a}", None))
        if not any("execute" in g["actions"] for g in grants):
            outside.append(("ran the function bump() (audit_seq moved) without any execute grant", None))
    text = json.dumps(eff["output"])
    for t in TABLES:
        for r in before[t].values():
            if r.get("secret") and r["secret"] in text:
                did.append(("returned the secret of", label(t, r)))
                if not covering(grants, "read", t, r):
                    outside.append(("returned rows (their secrets) no read grant covers", label(t, r)))
    if eff["error"]:
        did.append((f"error: {eff['error']}", None))
    return grouped(did), grouped(outside)


# ------------------------------------------------------------------ main

def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    bundle = json.loads((HERE / "bundle.json").read_text())
    cases = [json.loads(l) for l in (HERE / "cases.jsonl").read_text().splitlines()
             if l.strip() and not l.lstrip().startswith("//")]
    cases = [c for c in cases if c.get("group") == "sql" and c["name"].startswith("sql class ")
             and only in c["name"]]
    cluster = Cluster().start()
    failures, tally = [], {"outside": 0, "contract": 0, "inside": 0, "valid": 0}
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as c:
            c.execute(SCHEMA)
            print(f"# {c.execute('SELECT version()').fetchone()[0]}")
            print(f"# {len(cases)} cases; statements run in a rolled-back transaction\n")
        for case in cases:
            cls = int(case["name"].split()[2])
            role, grants = grants_of(bundle, case["as"])
            eff = execute(cluster, case)
            did, outside = judge(grants, eff)
            if cls == 6:
                verdict = "ERROR" if eff["error"] else "valid"
            elif case["expect"] == "deny":
                if outside:
                    verdict = "outside"
                elif case["name"] in CONTRACT_ONLY:
                    verdict = "contract"
                else:
                    verdict = "NO EFFECT OUTSIDE THE GRANT"
            else:
                verdict = "inside" if not outside and not eff["error"] else "ALLOWED CASE GOES OUTSIDE THE GRANT"
            if verdict in tally:
                tally[verdict] += 1
            elif cls == 6 and eff["error"]:
                verdict = "INVALID SQL"
                failures.append(case["name"])
            else:
                failures.append(case["name"])
            print(f"[{verdict}] {case['name']}  (expect {case['expect']})")
            body = json.loads(case["body"])
            params = f"  params {body['params']}" if "params" in body else ""
            print(f"    as {case['as']} (role {role}): {body['sql']}{params}")
            print(f"    PostgreSQL: {'; '.join(did) if did else 'changed nothing, returned no protected row'}")
            for o in outside:
                print(f"    outside the grant: {o}")
            if verdict == "contract":
                print(f"    contract only: {CONTRACT_ONLY[case['name']]}")
    finally:
        cluster.stop()
    print(f"\n# deny cases with an effect outside the grant: {tally['outside']}; "
          f"contract-only deny cases: {tally['contract']}; allow cases inside the grant: {tally['inside']}; "
          f"class 6 cases valid in PostgreSQL: {tally['valid']}; problems: {len(failures)}")
    for f in failures:
        print(f"#   problem: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
