"""The effect oracle: what PostgreSQL really did with a statement, against what the SQL
decoder (`scopegate sql --batch`) claims it does.

* `decode(sqls)`: every statement through one CLI process.
* `Lab(admin_dsn).measure(sql)`: runs the statement on the fixture database inside a
  transaction that is rolled back and returns its `Effect`: rows written (from the audit
  triggers: table, action, OLD, NEW, whether inside the writing function), sequences
  advanced, writing functions called, and the relations PostgreSQL reads (from
  `EXPLAIN (VERBOSE, FORMAT JSON)`, views mapped back to their base tables).
* `judge(sql, verdict, effect, counts)`: the under-claims, each a dict
  {kind, table, why, class} (see `judge` for the rules).
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import psycopg

from . import fixture, sqltok

ROOT = Path(__file__).resolve().parent.parent.parent


def cli_path():
    return os.environ.get("SCOPEGATE_CLI", str(ROOT / "target" / "release" / "scopegate"))


# ---------------------------------------------------------------------------------------
# The decoder


def _decode_run(sqls):
    out = subprocess.run([cli_path(), "sql", "--dialect", "postgres", "--default-schema", "public", "--batch"],
                         input="\n".join(json.dumps(s) for s in sqls) + "\n", capture_output=True, text=True)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) != len(sqls):
        raise RuntimeError(f"decoder exit {out.returncode}, {len(lines)} answers for {len(sqls)}: {out.stderr[-500:]}")
    return [json.loads(line) for line in lines]


def decode(sqls):
    """The decoder's verdict for each statement, in one process call. Should the decoder
    die on some input, the batch is bisected and that input gets {"ok": false, "crash": …}
    (a crash refuses the request: not an under-claim, but reported)."""
    if not sqls:
        return []
    try:
        return _decode_run(sqls)
    except RuntimeError as e:
        if len(sqls) == 1:
            return [{"ok": False, "operations": [], "error": str(e), "crash": True}]
        mid = len(sqls) // 2
        return decode(sqls[:mid]) + decode(sqls[mid:])


# ---------------------------------------------------------------------------------------
# PostgreSQL


def _json(text):
    return json.loads(text, parse_float=Decimal) if text is not None else None


SEQ_STATE = ("SELECT coalesce(json_object_agg(schemaname || '.' || sequencename, last_value), '{}')::text "
             "FROM pg_sequences WHERE schemaname IN ('public', 'archive')")
AFTER = ("SELECT txid_current_if_assigned() IS NOT NULL, (SELECT coalesce(json_agg(json_build_object('schema', tbl_schema, 'table', tbl, 'action', action, "
         "'old', old, 'new', new, 'in_fn', in_fn)), '[]') FROM oracle_meta.audit)::text, (" + SEQ_STATE + ")")
PLANNABLE = {"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE", "("}
# An EXPLAIN that executed prints actual row counts, in every format.
EXECUTED = re.compile(r"actual (time=[^)]*?)?rows|Actual[ -]Rows", re.I)


@dataclass
class Effect:
    sql: str
    status: str = "ok"            # ok | error | ended (the statement ended our transaction)
    error: str = ""
    writes: list = field(default_factory=list)   # {schema, table, action, old, new, in_fn}
    calls: list = field(default_factory=list)    # writing functions/procedures that ran
    sequences: list = field(default_factory=list)  # sequences that moved
    xid: bool = False                            # a transaction id was assigned: it wrote something
    reads: set = field(default_factory=set)      # {"schema.table"} PostgreSQL's plans read
    read_rows: dict = field(default_factory=dict)  # {"schema.table": [row]} read by a SELECT, or by the
                                                   # FROM/USING items of an UPDATE/DELETE
    explain_errors: list = field(default_factory=list)

    def summary(self):
        parts = []
        by = {}
        for w in self.writes:
            key = f"{w['action']} {w['schema']}.{w['table']}" + (" (in function)" if w["in_fn"] else "")
            by[key] = by.get(key, 0) + 1
        parts += [f"{k} x{n}" for k, n in sorted(by.items())]
        parts += [f"called {c}" for c in self.calls]
        parts += [f"sequence {s} moved" for s in self.sequences]
        if self.xid and not self.writes:
            parts.append("transaction id assigned")
        if self.reads:
            parts.append("reads " + ", ".join(sorted(self.reads)))
        for t, rows in sorted(self.read_rows.items()):
            parts.append(f"{len(rows)} rows of {t} selected")
        return "; ".join(parts) or "(no effect)"


def plan_relations(plan):
    """Every (schema.relation) a JSON plan scans or modifies, InitPlans and SubPlans included."""
    found = set()

    def walk(x):
        if isinstance(x, dict):
            if "Relation Name" in x:
                found.add(f"{x.get('Schema', 'public')}.{x['Relation Name']}")
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(plan)
    return found


class Lab:
    """The fixture database and one connection to it."""

    def __init__(self, admin_dsn, db=fixture.DB, statement_timeout="2s"):
        self.admin_dsn, self.db, self.timeout = admin_dsn, db, statement_timeout
        self.conn = None
        self.resets = 0
        self.reset()

    def reset(self):
        if self.conn is not None:
            self.conn.close()
        self.dsn = fixture.create(self.admin_dsn, self.db)
        self.conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)  # DEALLOCATE ALL is run
        self.conn.execute(f"SET statement_timeout = '{self.timeout}'")
        self.conn.execute("SET lock_timeout = '1s'")
        self.counts = fixture.row_counts(self.conn)
        self.resets += 1

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _rollback(self):
        try:
            self.conn.execute("ROLLBACK")
        except psycopg.Error:
            self.reset()

    def measure(self, sql):
        eff = Effect(sql)
        c = self.conn
        c.execute("BEGIN")
        before = _json(c.execute(SEQ_STATE).fetchone()[0])
        outputs = []
        try:
            cur = c.cursor()
            cur.execute(sql)  # no parameters: the simple protocol (several statements run)
            while True:
                outputs.append(cur.fetchall() if cur.description else None)
                if not cur.nextset():
                    break
        except psycopg.Error as e:
            eff.status, eff.error = "error", (str(e).strip().splitlines() or [type(e).__name__])[0]
            self._rollback()
            if "PREPARE" in sql.upper():
                c.execute("DEALLOCATE ALL")
            return eff
        if c.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
            eff.status, eff.error = "ended", "the statement ended the oracle's transaction"
            self.reset()
            return eff
        eff.xid, audit, after = c.execute(AFTER).fetchone()
        self._rollback()
        if "PREPARE" in sql.upper():
            c.execute("DEALLOCATE ALL")  # prepared statements outlive the transaction
        after = _json(after)
        for w in _json(audit):
            if w["action"] == "CALL":
                eff.calls.append(f"{w['schema']}.{w['table']}")
            else:
                eff.writes.append(w)
        eff.sequences = sorted(s for s in set(before) | set(after) if before.get(s) != after.get(s))
        self._learn_reads(eff, outputs)
        return eff

    def _learn_reads(self, eff, outputs):
        parts = sqltok.split_statements(eff.sql)
        for i, toks in enumerate(parts):
            word = sqltok.first_word(toks)
            target = toks
            if word == "EXPLAIN":
                stripped = sqltok.strip_explain(toks)
                out = outputs[i] if i < len(outputs) else None
                text = "\n".join(str(v) for row in (out or []) for v in row)
                if stripped is None or not EXECUTED.search(text):
                    continue  # a plan-only EXPLAIN reads no rows
                target = stripped[1]
                word = sqltok.first_word(target)
            if word not in PLANNABLE:
                continue
            if len(parts) == 1:
                for probe in sqltok.probes(target):
                    self._read_rows(eff, probe)
            c = self.conn
            c.execute("BEGIN")
            try:
                plan = c.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + sqltok.render(target)).fetchone()[0]
                eff.reads |= plan_relations(plan if not isinstance(plan, str) else json.loads(plan))
            except psycopg.Error as e:
                eff.explain_errors.append(str(e).strip().splitlines()[0])
            self._rollback()


    def _read_rows(self, eff, probe):
        """Adds the rows a probe (sqltok.probes: each plain FROM table's tableoid and ctid)
        finds, under their real column names, to eff.read_rows; rolled back."""
        c = self.conn
        c.execute("BEGIN")
        try:
            found = c.execute(probe).fetchall()
            by = {}
            for row in found:
                for rel, ctid in zip(row[0::2], row[1::2]):
                    if rel is not None and ctid is not None:
                        by.setdefault(rel, set()).add(str(ctid))
            for rel, ctids in by.items():
                name = rel if "." in rel else "public." + rel
                if name not in {f"{v[0]}.{k.split('.')[-1]}" for k, v in fixture.TABLES.items()}:
                    continue
                rows = c.execute(f"SELECT to_jsonb(t)::text FROM {rel} t WHERE ctid = ANY(%s::tid[])",
                                 [sorted(ctids)]).fetchall()
                have = eff.read_rows.setdefault(name, [])
                for r in rows:
                    row = _json(r[0])
                    if row not in have:
                        have.append(row)
        except psycopg.Error:
            pass  # not a query the probe could rewrite (GROUP BY, a view, …): no row check
        self._rollback()


# ---------------------------------------------------------------------------------------
# The comparison

# The actions that cover a row write (the write's own action or a more destructive one).
COVERS = {
    "INSERT": {"create", "update", "delete", "drop", "alter", "admin"},
    "UPDATE": {"update", "delete", "drop", "alter", "admin"},
    "DELETE": {"delete", "drop", "admin"},
}
_MISSING = object()
# A record column an UPDATE changes while the operation says sets[col] = null: by rule 5 the
# post-image is then declared unknown and no grant with records on that column is satisfied,
# so it is no under-claim. ORACLE_STRICT_NULL_SETS=1 counts it as one anyway (the letter of
# the oracle's brief: "when sets[col] is null, any change of that column is an under-claim").
STRICT_NULL_SETS = os.environ.get("ORACLE_STRICT_NULL_SETS", "") not in ("", "0")


def same_value(v, claim):
    """A row value against a claimed value: as text; a JSON number compares numerically."""
    if v is _MISSING:
        return False
    if v is None or claim is None:
        return v is None and claim is None
    if isinstance(v, bool):
        return str(claim).lower() in (("true", "t") if v else ("false", "f"))
    if isinstance(v, (int, float, Decimal)):
        try:
            return Decimal(str(claim)) == Decimal(str(v))
        except (InvalidOperation, ValueError):
            return False
    if not isinstance(v, str):
        v = json.dumps(v, sort_keys=True)
    return (claim if isinstance(claim, str) else json.dumps(claim)) == v


def value_in(v, claims):
    return any(same_value(v, c) for c in claims)


def _fmt(v):
    return "<no such column>" if v is _MISSING else json.dumps(v, default=str)


def why_not(op, action, old, new):
    """None when the operation `op` claims this row write, else (kind, reason)."""
    records = op.get("records") or {}
    sets = op.get("sets")
    for col, allowed in records.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        image = new if action == "INSERT" else old
        v = image.get(col, _MISSING)
        if not value_in(v, allowed):
            which = "NEW" if action == "INSERT" else "OLD"
            return "records", f"{which}.{col} = {_fmt(v)} not in records {json.dumps(allowed)}"
        if action == "UPDATE":
            nv = new.get(col, _MISSING)
            assigned = sets.get(col, _MISSING) if isinstance(sets, dict) else _MISSING
            if isinstance(assigned, list):
                if not value_in(nv, allowed + assigned):
                    return "post-image", (f"NEW.{col} = {_fmt(nv)} not in records {json.dumps(allowed)} "
                                          f"or sets {json.dumps(assigned)}")
            elif assigned is None and not STRICT_NULL_SETS:
                pass  # sets[col] null: the post-image is declared unknown (rule 5: no grant on col is satisfied)
            elif not same_value(nv, old.get(col, _MISSING)):
                what = "null" if assigned is None else "absent"
                return "post-image", (f"{col} changed {_fmt(old.get(col, _MISSING))} -> {_fmt(nv)} "
                                      f"but sets.{col} is {what} (records {json.dumps(allowed)})")
    if action == "UPDATE" and isinstance(sets, dict):
        for col, nv in new.items():
            if same_value(nv, old.get(col, _MISSING)):
                continue
            if col not in sets:
                return "sets", f"{col} changed {_fmt(old.get(col))} -> {_fmt(nv)} but is not in sets {json.dumps(sets)}"
            if isinstance(sets[col], list) and not value_in(nv, sets[col]):
                return "sets", f"NEW.{col} = {_fmt(nv)} not in sets.{col} {json.dumps(sets[col])}"
    return None


def _op_text(op):
    s = f"{op['action']} {op['resource']} scope={op.get('scope')}"
    if op.get("records"):
        s += " records=" + json.dumps(op["records"])
    if "sets" in op:
        s += " sets=" + json.dumps(op["sets"])
    return s


def judge(sql, verdict, eff, counts):
    """The under-claims of `verdict` (the decoder's answer) against `eff` (PostgreSQL's):

    * a refused request (`ok: false`), or a statement PostgreSQL rejected, has none;
    * every row written (audit) needs an operation on its table (or on a view over it)
      whose action covers the write (COVERS; TRUNCATE: `delete` with scope all, `drop`,
      `admin`) — rows written inside a writing function are covered by any execute/admin
      operation — and, if that operation has `records`, the row's OLD (DELETE, UPDATE) or
      NEW (INSERT) value of each record column must be in records[col]; for an UPDATE the
      NEW value must be in records[col] ∪ sets[col] when sets[col] is a list, and equal to
      OLD otherwise (sets[col] null or absent). When an operation carries `sets`, every
      column an UPDATE changed must be in it, and in its list when it is one;
    * an UPDATE/DELETE that touched every row of a table needs a covering operation with
      scope `all` or with `records` (a `scope: some` without records is an under-claim);
    * every relation PostgreSQL's plan reads needs some operation on it (any action);
    * the rows a SELECT reads from its plain FROM tables (and an UPDATE/DELETE from its
      FROM/USING tables): inside the records of an operation on that table (when every
      operation on it has records);
    * a sequence that moved, a writing function that ran, or a transaction id assigned
      (rows written or locked, DDL): the operations are not all `read`.
    """
    if eff.status != "ok" or not verdict.get("ok"):
        return []
    ops = verdict.get("operations") or []
    found = []

    def under(kind, table, why):
        found.append({"kind": kind, "table": table, "why": why, "class": guess_class(sql, kind, why)})

    def ops_on(table):
        return [o for o in ops if o.get("resource") == table or fixture.VIEWS.get(o.get("resource")) == table]

    fn_ops = [o for o in ops if o.get("action") in ("execute", "admin")]
    groups = {}
    for w in eff.writes:
        groups.setdefault(f"{w['schema']}.{w['table']}", []).append(w)
    for table, ws in groups.items():
        on = ops_on(table)
        claimed = "; ".join(_op_text(o) for o in on) or "no operation on it"
        if any(w["action"] == "TRUNCATE" for w in ws):
            covered = any(o["action"] in ("drop", "admin") or (o["action"] == "delete" and o.get("scope") == "all")
                          for o in on)
            if not covered and not (all(w["in_fn"] for w in ws if w["action"] == "TRUNCATE") and fn_ops):
                under("truncate", table, f"TRUNCATE {table}, claimed: {claimed}")
        bad = {}
        for w in ws:
            action = w["action"]
            if action == "TRUNCATE" or (w["in_fn"] and fn_ops):
                continue
            cands = [o for o in on if o.get("action") in COVERS[action]]
            if not cands:
                bad.setdefault(("write", action), []).append(f"{action} {table} unclaimed")
                continue
            reasons = [why_not(o, action, w["old"] or {}, w["new"] or {}) for o in cands]
            if any(r is None for r in reasons):
                continue
            kind, why = reasons[0]
            bad.setdefault((kind, action), []).append(why)
        for (kind, action), whys in bad.items():
            uniq = list(dict.fromkeys(whys))
            extra = f" (+{len(uniq) - 3} more)" if len(uniq) > 3 else ""
            under(kind, table, f"{action} x{len(whys)}: " + " | ".join(uniq[:3]) + extra + f"; claimed: {claimed}")
        # Scope: every row of the table updated or deleted under a bounded claim.
        pk = "id"
        touched = {json.dumps((w["old"] or {}).get(pk)) for w in ws
                   if w["action"] in ("UPDATE", "DELETE") and not (w["in_fn"] and fn_ops)}
        if counts.get(table) and len(touched) >= counts[table]:
            cands = [o for o in on if o.get("action") in COVERS["UPDATE"]]
            if cands and not any(o.get("scope") == "all" or o.get("records") or o["action"] in ("drop", "admin")
                                 for o in cands):
                under("scope", table, f"all {counts[table]} rows updated/deleted; claimed: {claimed}")
    # Rows a SELECT (or an UPDATE/DELETE's FROM/USING items) reads: inside the records of
    # some operation on the table, unless one of them has no records.
    for table, rows in eff.read_rows.items():
        on = ops_on(table)
        if not on or any(not o.get("records") for o in on):
            continue
        whys = []
        for row in rows:
            reasons = [why_not(o, "DELETE", row, {}) for o in on]
            if all(r is not None for r in reasons):
                whys.append(reasons[0][1])
        if whys:
            uniq = list(dict.fromkeys(whys))
            under("read-records", table, f"SELECT x{len(whys)}: " + " | ".join(uniq[:3]) +
                  (f" (+{len(uniq) - 3} more)" if len(uniq) > 3 else "") +
                  "; claimed: " + "; ".join(_op_text(o) for o in on))
    for rel in sorted(eff.reads):
        schema = rel.split(".", 1)[0]
        if schema in ("pg_catalog", "information_schema"):
            if any(o.get("resource") == rel or str(o.get("resource", "")).startswith("sql:catalog") for o in ops):
                continue
        elif ops_on(rel):
            continue
        under("read", rel, f"PostgreSQL reads {rel}; operations: " +
              ("; ".join(_op_text(o) for o in ops) or "none"))
    if (eff.sequences or eff.calls or eff.xid) and all(o.get("action") == "read" for o in ops):
        what = ", ".join([f"sequence {s} moved" for s in eff.sequences] + [f"{c} ran" for c in eff.calls] +
                         (["a transaction id was assigned (rows locked or written, DDL)"] if eff.xid else []))
        under("effect", ",".join(eff.sequences + eff.calls) or "xid",
              f"{what}; operations: " + ("; ".join(_op_text(o) for o in ops) or "none"))
    return found


_CAST = re.compile(r"::|\bCAST\s*\(|\bCOLLATE\b", re.I)
_FUNC = re.compile(r"\b(?!IN\b|EXISTS\b|VALUES\b|AND\b|OR\b|NOT\b|ANY\b|ALL\b)[A-Za-z_][A-Za-z_0-9]*\s*\(", re.I)


def guess_class(sql, kind, why=None):
    """The rule of /tmp/sql-rules.md an under-claim most likely breaks (a heuristic for the
    summary; regressions.sql carries a hand-checked class)."""
    toks = sqltok.tokenize(sql)
    first = sqltok.first_word(toks)
    if first == "EXPLAIN":
        return 1
    if kind in ("post-image", "sets"):
        return 5
    if kind in ("scope", "truncate"):
        return 4
    if kind == "effect":
        return 6
    if kind in ("records", "read-records"):
        if why and "<no such column>" in why:
            return 2  # a column of another FROM item (or outer query) taken for the target's
        if why and "not in records []" in why:
            return 3  # literals intersected as text: two spellings of one value make an empty list
        if why and why.split(": ", 1)[-1].startswith("NEW."):
            return 3  # an INSERT value PostgreSQL coerced (assignment cast) to something else
        if _CAST.search(sql) or _FUNC.search(sql.split("WHERE", 1)[-1] if "WHERE" in sql.upper() else ""):
            return 3
        return 2
    return 2


# ---------------------------------------------------------------------------------------
# Running many


@dataclass
class Report:
    statements: int = 0
    valid: int = 0
    refused: int = 0
    compared: int = 0
    crashes: list = field(default_factory=list)
    under: list = field(default_factory=list)     # (sql, verdict, effect, [under-claims])
    errors: dict = field(default_factory=dict)    # PostgreSQL error message -> count
    invalid: list = field(default_factory=list)   # (sql, PostgreSQL's error)
    explain_errors: int = 0
    seconds: float = 0.0

    def add(self, sql, verdict, eff, found):
        self.statements += 1
        if eff.status == "ok":
            self.valid += 1
        else:
            self.invalid.append((sql, eff.error))
            key = re.sub(r'"[^"]*"|\d+', "…", eff.error)[:80]
            self.errors[key] = self.errors.get(key, 0) + 1
        if verdict.get("crash"):
            self.crashes.append(sql)
        if not verdict.get("ok"):
            self.refused += 1
        elif eff.status == "ok":
            self.compared += 1
        if eff.explain_errors:
            self.explain_errors += 1
        if found:
            self.under.append((sql, verdict, eff, found))

    def by_class(self):
        out = {}
        for _, _, _, found in self.under:
            for cls in sorted({f["class"] for f in found}):
                out[cls] = out.get(cls, 0) + 1
        return dict(sorted(out.items()))

    def by_kind(self):
        out = {}
        for _, _, _, found in self.under:
            for kind in sorted({f["kind"] for f in found}):
                out[kind] = out.get(kind, 0) + 1
        return dict(sorted(out.items()))

    def summary(self):
        pct = 100.0 * self.valid / self.statements if self.statements else 0.0
        s = (f"statements {self.statements}, valid in PostgreSQL {self.valid} ({pct:.1f}%), "
             f"refused by decoder {self.refused}, compared {self.compared}, "
             f"under-claims {len(self.under)}")
        if self.under:
            s += f" (by class {self.by_class()}, by kind {self.by_kind()})"
        if self.crashes:
            s += f", decoder crashes {len(self.crashes)}"
        if self.explain_errors:
            s += f", EXPLAIN failures {self.explain_errors}"
        return s + f", {self.seconds:.1f} s"

    def top_errors(self, n=8):
        return sorted(self.errors.items(), key=lambda kv: -kv[1])[:n]


def describe(sql, verdict, eff, found):
    lines = [f"  SQL:    {sql}"]
    for f in found:
        lines.append(f"  under-claim [class {f['class']}, {f['kind']}] {f['table']}: {f['why']}")
    lines.append(f"  effect: {eff.summary()}")
    lines.append("  claim:  " + ("; ".join(_op_text(o) for o in verdict.get("operations") or []) or "(none)"))
    return "\n".join(lines)


def run(lab, sqls, report=None, verdicts=None):
    """Decodes `sqls` in one batch, measures each on `lab`, judges; returns the Report."""
    import time
    t0 = time.monotonic()
    report = report or Report()
    verdicts = verdicts if verdicts is not None else decode(sqls)
    start = len(report.under)
    for sql, verdict in zip(sqls, verdicts):
        eff = lab.measure(sql)
        report.add(sql, verdict, eff, judge(sql, verdict, eff, lab.counts))
    refine_explain_classes(report.under[start:], lab.counts)
    report.seconds += time.monotonic() - t0
    return report


def refine_explain_classes(under, counts):
    """An executing EXPLAIN whose under-claim the inner statement alone also has is the
    inner statement's bug (its class), not rule 1's."""
    todo = []
    for sql, verdict, eff, found in under:
        toks = sqltok.split_statements(sql)
        if len(toks) == 1 and sqltok.first_word(toks[0]) == "EXPLAIN":
            stripped = sqltok.strip_explain(toks[0])
            if stripped and stripped[1]:
                todo.append((sqltok.render(stripped[1]), eff, found))
    if not todo:
        return
    for (inner, eff, found), v in zip(todo, decode([t[0] for t in todo])):
        inner_eff = Effect(inner, writes=eff.writes, calls=eff.calls, sequences=eff.sequences, xid=eff.xid)
        again = {(f["kind"], f["table"]): f for f in judge(inner, v, inner_eff, counts)}
        for f in found:
            g = again.get((f["kind"], f["table"]))
            if g is not None:
                f["class"] = g["class"]
