"""The SQL decoder's effect oracle (tests/oracle/): statements run on the real PostgreSQL
inside rolled-back transactions, and what they really did (audit triggers on every table,
sequences, writing functions, transaction ids, EXPLAIN plans, the rows a SELECT — or an
UPDATE/DELETE's FROM/USING items — reads) is held against the operations
`scopegate sql --batch` claims. Anything PostgreSQL did that the operations do not say is
an under-claim, and fails the test.

* the regressions (tests/oracle/regressions.sql): every under-claim ever found, minimised;
* generated statements (fixed seeds; `make oracle` runs more with a new seed);
* the self-test: deliberately wrong claims are caught, right ones are not flagged, and the
  minimiser shrinks a failing statement.
"""

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oracle import generator, minimise, regressions, runner  # noqa: E402

SEEDS = [17001, 17002, 17003, 17004, 17005]
PER_SEED = 1200
SHOW = 20


@pytest.fixture(scope="module")
def lab(pg):
    lab = runner.Lab(pg.dsn)
    yield lab
    lab.close()


def failure(report, title):
    """The first SHOW under-claims, spread over the (class, kind) groups, readable."""
    groups = {(item[3][0]["class"], item[3][0]["kind"]) for item in report.under}
    cap = max(3, SHOW // max(1, len(groups)))
    shown, per = [], {}
    for item in report.under:
        key = (item[3][0]["class"], item[3][0]["kind"])
        if per.get(key, 0) < cap:
            per[key] = per.get(key, 0) + 1
            shown.append(item)
        if len(shown) >= SHOW:
            break
    return (f"{title}: {report.summary()}\n"
            f"under-claims by class {report.by_class()}, by kind {report.by_kind()}; the first {len(shown)}:\n\n"
            + "\n\n".join(runner.describe(*item) for item in shown))


def test_regressions_have_no_under_claim(lab):
    entries = regressions.load()
    assert len(entries) >= 5, "tests/oracle/regressions.sql is empty"
    sqls = [e.sql for e in entries]
    report = runner.run(lab, sqls)
    classes = {e.sql: e.cls for e in entries}
    for sql, _, _, found in report.under:  # the file's hand-checked class, not the guess
        for f in found:
            f["class"] = int(classes[sql]) if classes.get(sql, "").isdigit() else f["class"]
    print(f"\nSQL oracle, regressions: {report.summary()}")
    # Every entry must run: an entry PostgreSQL rejects judges nothing.
    assert not report.invalid, "regression entries PostgreSQL rejects:\n" + "\n".join(
        f"  {sql!r}: {err}" for sql, err in report.invalid)
    if report.under:
        pytest.fail(failure(report, "tests/oracle/regressions.sql"), pytrace=False)


def test_generated_statements_have_no_under_claim(lab):
    sqls = [sql for seed in SEEDS for sql in generator.Generator(seed).statements(PER_SEED)]
    report = runner.run(lab, sqls)  # one decoder process for all of them
    print(f"\nSQL oracle, generated (seeds {SEEDS}): {report.summary()}")
    print("  most frequent PostgreSQL errors: " + "; ".join(f"{k} x{v}" for k, v in report.top_errors(5)))
    assert report.statements >= 5000
    # The instrument itself: mostly valid SQL, mostly compared, decoder never crashing.
    assert report.valid >= 0.7 * report.statements, report.summary()
    assert report.compared >= 0.6 * report.statements, report.summary()
    assert not report.crashes, f"the decoder crashed on: {report.crashes[:5]}"
    if report.under:
        pytest.fail(failure(report, f"generated statements (seeds {SEEDS})"), pytrace=False)


# --- the self-test: the instrument catches under-claims and flags nothing right ---------

def op(action, resource, scope="some", records=None, sets=None):
    o = {"service": "sql", "action": action, "resource": resource, "scope": scope, "detail": ""}
    if records is not None:
        o["records"] = records
    if sets is not None:
        o["sets"] = sets
    return o


def claim(*ops):
    return {"ok": True, "operations": list(ops), "error": None}


DOCS = "public.docs"
# (statement, a right claim, a wrong claim, the kind of under-claim the wrong one is)
CASES = [
    ("DELETE FROM docs WHERE id = 'a'",
     claim(op("delete", DOCS, records={"id": ["a"]})),
     claim(op("read", DOCS, records={"id": ["a"]})), "write"),
    ("DELETE FROM docs WHERE tenant_id = 'acme'",
     claim(op("delete", DOCS, records={"tenant_id": ["acme"]})),
     claim(op("delete", DOCS, records={"tenant_id": ["globex"]})), "records"),
    ("DELETE FROM docs WHERE id::varchar(2) = 'al'",
     claim(op("delete", DOCS, "all")),
     claim(op("delete", DOCS, records={"id": ["al"]})), "records"),
    ("UPDATE docs SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
     claim(op("update", DOCS, records={"tenant_id": ["acme"]}, sets={"tenant_id": ["globex"]})),
     claim(op("update", DOCS, records={"tenant_id": ["acme"]})), "post-image"),
    ("UPDATE docs SET title = 'x', n = 0 WHERE id = 'a'",
     claim(op("update", DOCS, records={"id": ["a"]}, sets={"title": ["x"], "n": ["0"]})),
     claim(op("update", DOCS, records={"id": ["a"]}, sets={"title": ["x"]})), "sets"),
    ("DELETE FROM docs WHERE id > ''",
     claim(op("delete", DOCS, "all")),
     claim(op("delete", DOCS, "some")), "scope"),
    ("TRUNCATE recent",
     claim(op("delete", "public.recent", "all")),
     claim(op("delete", "public.recent", "some")), "truncate"),
    ("SELECT d.title FROM docs d JOIN owners o ON o.doc_id = d.id",
     claim(op("read", DOCS), op("read", "public.owners")),
     claim(op("read", DOCS)), "read"),
    ("SELECT * FROM acme_docs",
     claim(op("read", "public.acme_docs")),
     claim(op("read", "public.owners")), "read"),
    ("SELECT * FROM docs WHERE tenant_id = 'acme'",
     claim(op("read", DOCS, records={"tenant_id": ["acme"]})),
     claim(op("read", DOCS, records={"tenant_id": ["globex"]})), "read-records"),
    ("SELECT o.name FROM owners o JOIN docs d ON d.id = o.doc_id WHERE d.tenant_id = 'acme'",
     claim(op("read", "public.owners"), op("read", DOCS, records={"tenant_id": ["acme"]})),
     claim(op("read", "public.owners"), op("read", DOCS, records={"tenant_id": ["globex"]})), "read-records"),
    ("DELETE FROM notes USING docs WHERE docs.id = 'a' AND notes.doc_id = docs.id",
     claim(op("delete", "public.notes", "all"), op("read", DOCS, records={"id": ["a"]})),
     claim(op("delete", "public.notes", "all"), op("read", DOCS, records={"id": ["b"]})), "read-records"),
    ("SELECT nextval('ticket_seq')",
     claim(op("admin", "public.nextval")),
     claim(op("read", "sql:constant")), "effect"),
    ("SELECT touch_doc('a')",
     claim(op("execute", "public.touch_doc")),
     claim(op("read", DOCS)), "write"),
    ("SELECT * FROM docs WHERE id = 'b' FOR UPDATE",
     claim(op("update", DOCS, records={"id": ["b"]})),
     claim(op("read", DOCS, records={"id": ["b"]})), "effect"),
    ("EXPLAIN (ANALYZE 1) DELETE FROM docs WHERE id = 'b'",
     claim(op("delete", DOCS, records={"id": ["b"]})),
     claim(op("read", DOCS, records={"id": ["b"]})), "write"),
    ("INSERT INTO docs (id, tenant_id) VALUES ('s1', 'acme')",
     claim(op("create", DOCS, records={"id": ["s1"], "tenant_id": ["acme"]})),
     claim(op("create", DOCS, records={"id": ["s1"], "tenant_id": ["globex"]})), "records"),
    ("INSERT INTO items (id, qty) VALUES (700, 2.6)",
     claim(op("create", "public.items", records={"id": ["700"]})),
     claim(op("create", "public.items", records={"id": ["700"], "qty": ["2.6"]})), "records"),
    ("WITH d AS (DELETE FROM notes RETURNING *) SELECT count(*) FROM d",
     claim(op("delete", "public.notes", "all")),
     claim(op("read", "public.notes")), "write"),
    ("UPDATE acme_docs SET title = 'v' WHERE id = 'a'",
     claim(op("update", "public.acme_docs", records={"id": ["a"]}, sets={"title": ["v"]})),
     claim(op("update", "public.acme_docs", records={"id": ["A"]}, sets={"title": ["v"]})), "records"),
]


@pytest.mark.parametrize("sql,right,wrong,kind", CASES, ids=[c[0][:50] for c in CASES])
def test_oracle_catches_a_wrong_claim(lab, sql, right, wrong, kind):
    eff = lab.measure(sql)
    assert eff.status == "ok", eff.error
    assert runner.judge(sql, right, eff, lab.counts) == [], "a right claim flagged"
    found = runner.judge(sql, wrong, eff, lab.counts)
    assert kind in {f["kind"] for f in found}, (kind, found, eff.summary())


def test_oracle_catches_the_decoder_output_made_wrong(lab):
    """The decoder's own answer for a real DELETE, with the action changed to read, or the
    records narrowed, is an under-claim."""
    sql = "DELETE FROM docs WHERE tenant_id IN ('acme', 'globex')"
    verdict = runner.decode([sql])[0]
    assert verdict["ok"], verdict
    eff = lab.measure(sql)
    assert len(eff.writes) == 7 and {w["action"] for w in eff.writes} == {"DELETE"}, eff.summary()
    as_read = copy.deepcopy(verdict)
    for o in as_read["operations"]:
        o["action"] = "read"
    assert {"write"} <= {f["kind"] for f in runner.judge(sql, as_read, eff, lab.counts)}
    narrowed = copy.deepcopy(verdict)
    for o in narrowed["operations"]:
        o["scope"] = "some"
        o["records"] = {"tenant_id": ["acme"]}
    assert "records" in {f["kind"] for f in runner.judge(sql, narrowed, eff, lab.counts)}


def test_minimiser_shrinks_a_failing_statement(lab):
    """With a decoder that calls everything a read, a long DELETE shrinks to a short one
    that still deletes."""
    def all_read(sqls):
        return [claim(op("read", DOCS)) for _ in sqls]
    big = ("DELETE FROM docs AS d WHERE (d.tenant_id = 'acme' OR d.n > 100) AND d.title <> 'zzz' "
           "AND EXISTS (SELECT 1 FROM owners o WHERE o.doc_id = d.id) RETURNING d.id, d.title")
    small, found = minimise.minimise(lab, big, decoder=all_read)
    assert found and found[0]["kind"] == "write", found
    assert len(small) < len(big) // 2, small
    assert lab.measure(small).writes, small
