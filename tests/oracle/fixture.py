"""The oracle's fixture database: tables with text and integer keys and a `tenant_id`
column, a table without `tenant_id` (correlated subqueries bind outwards through it), a
table named like a likely CTE (`recent`), a same-named table in a second schema
(`archive.docs`), a sequence, a view, a writing (VOLATILE plpgsql) function and procedure,
two pure IMMUTABLE functions, and a case-insensitive (non-deterministic) collation.

Every generator-visible table has AFTER ROW triggers for INSERT/UPDATE/DELETE and an AFTER
TRUNCATE statement trigger that record (schema, table, action, to_jsonb(OLD), to_jsonb(NEW),
"inside the writing function") into `oracle_meta.audit`, a schema the generator never names.
The writing function and procedure also leave a `CALL` marker there.

Seed values are chosen so that value-changing casts and collations are observable: ids that
differ only by case or trailing blanks ('a', 'A', 'a '), long ids a `varchar(2)` cast
truncates ('alpha' → 'al'), prices a `numeric(3,1)` cast rounds (1.54 → 1.5), a NULL tenant.
"""

import psycopg

DB = "oracle"

# Tables the generator targets: name -> (schema, primary key column, columns).
TABLES = {
    "docs": ("public", "id", ["id", "tenant_id", "title", "body", "n"]),
    "items": ("public", "id", ["id", "tenant_id", "qty", "label", "price"]),
    "owners": ("public", "id", ["id", "doc_id", "tenant_id", "name"]),
    "notes": ("public", "id", ["id", "doc_id", "note"]),
    "recent": ("public", "id", ["id", "tenant_id", "title"]),
    "archive.docs": ("archive", "id", ["id", "tenant_id", "title", "body", "n"]),
}

# Views: qualified view -> qualified base table (their columns keep the base's names).
VIEWS = {"public.acme_docs": "public.docs"}

SEQUENCES = ["public.ticket_seq", "public.notes_id_seq"]

# Functions that write (black boxes for the comparison) and pure ones.
WRITING_FUNCTIONS = ["public.touch_doc", "public.archive_doc"]
PURE_FUNCTIONS = ["public.add_one", "public.norm"]

SCHEMA = r"""
CREATE SCHEMA oracle_meta;
CREATE TABLE oracle_meta.audit (tbl_schema text, tbl text, action text, old jsonb, new jsonb, in_fn bool);
CREATE FUNCTION oracle_meta.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO oracle_meta.audit VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP,
    CASE WHEN TG_LEVEL = 'ROW' AND TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
    CASE WHEN TG_LEVEL = 'ROW' AND TG_OP IN ('UPDATE', 'INSERT') THEN to_jsonb(NEW) END,
    coalesce(current_setting('oracle.in_fn', true), '') = 'on');
  RETURN NULL;
END $$;

CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE TABLE docs (id text PRIMARY KEY, tenant_id text, title text, body text, n int);
CREATE TABLE items (id int PRIMARY KEY, tenant_id text, qty int DEFAULT 1, label varchar(10), price numeric(8,2));
CREATE TABLE owners (id int PRIMARY KEY, doc_id text, tenant_id text DEFAULT 'acme', name text);
ALTER TABLE owners ADD CONSTRAINT owners_name UNIQUE (name);
CREATE UNIQUE INDEX owners_lower_name ON owners (lower(name));
CREATE TABLE notes (id serial PRIMARY KEY, doc_id text, note text);
CREATE TABLE recent (id int PRIMARY KEY, tenant_id text, title text);
CREATE SCHEMA archive;
CREATE TABLE archive.docs (id text PRIMARY KEY, tenant_id text, title text, body text, n int);
CREATE SEQUENCE ticket_seq;
CREATE VIEW acme_docs AS SELECT id, tenant_id, title, n FROM docs WHERE tenant_id = 'acme';

CREATE FUNCTION add_one(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
CREATE FUNCTION norm(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower(trim($1))';
CREATE FUNCTION touch_doc(p text) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
DECLARE k int;
BEGIN
  PERFORM set_config('oracle.in_fn', 'on', true);
  INSERT INTO oracle_meta.audit VALUES ('public', 'touch_doc', 'CALL', NULL, NULL, true);
  UPDATE docs SET n = coalesce(n, 0) + 1 WHERE id = p;
  GET DIAGNOSTICS k = ROW_COUNT;
  PERFORM set_config('oracle.in_fn', 'off', true);
  RETURN k;
END $$;
CREATE PROCEDURE archive_doc(p text) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('oracle.in_fn', 'on', true);
  INSERT INTO oracle_meta.audit VALUES ('public', 'archive_doc', 'CALL', NULL, NULL, true);
  INSERT INTO archive.docs SELECT * FROM docs WHERE id = p ON CONFLICT DO NOTHING;
  DELETE FROM docs WHERE id = p;
  PERFORM set_config('oracle.in_fn', 'off', true);
END $$;
"""

TRIGGERS = """
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION oracle_meta.record();
CREATE TRIGGER audit_truncate AFTER TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION oracle_meta.record();
"""

SEED = """
INSERT INTO docs VALUES
  ('a', 'acme', 'Alpha', 'first', 1), ('A', 'acme', 'Upper A', 'case', 2), ('a ', 'globex', 'Blank', 'trailing', 3),
  ('b', 'globex', 'Beta', NULL, 4), ('alpha', 'acme', 'Long', 'long id', 5), ('al', 'initech', 'Short', 'prefix', 6),
  ('d1', 'acme', 'D1', 'x', 7), ('d2', 'globex', 'D2', 'y', NULL), ('d3', NULL, 'Orphan', 'z', 9),
  ('10', 'ACME', 'Ten', 'digits', 10), ('9', 'acme ', 'Nine', 'blank tenant', 11);
INSERT INTO items VALUES
  (1, 'acme', 5, 'abc', 1.50), (2, 'acme', 0, 'ab', 1.54), (3, 'globex', 7, 'abcdefghij', 2.00),
  (10, 'globex', 1, 'ABC', 10.25), (11, 'initech', NULL, NULL, 0.05), (20, NULL, 3, 'x', 9.99),
  (-1, 'acme', -4, 'neg', 1.45), (0, 'ACME', 2, 'zero', 0);
INSERT INTO owners VALUES
  (1, 'a', 'acme', 'Ada'), (2, 'b', 'globex', 'Bob'), (3, 'A', 'acme', 'Cy'), (4, 'alpha', 'initech', 'Di'),
  (5, NULL, NULL, 'Ed'), (6, 'd1', 'acme', 'Flo');
INSERT INTO notes (doc_id, note) VALUES ('a', 'n1'), ('a', 'n2'), ('b', 'n3'), ('alpha', 'n4'), (NULL, 'n5');
INSERT INTO recent VALUES (1, 'acme', 'r1'), (2, 'globex', 'r2'), (3, 'acme', 'r3'), (4, 'initech', 'r4');
INSERT INTO archive.docs VALUES ('a', 'acme', 'Old alpha', 'archived', 1), ('z', 'globex', 'Zed', NULL, 2),
  ('old', 'initech', 'Old', 'o', 3);
"""


def dsn_for(admin_dsn, db=DB):
    return admin_dsn.replace("dbname=postgres", f"dbname={db}")


def create(admin_dsn, db=DB):
    """(Re)creates the fixture database; returns its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")
    dsn = dsn_for(admin_dsn, db)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(SCHEMA)
        for t in TABLES:
            c.execute(TRIGGERS.format(t=t))
        c.execute(SEED)
        c.execute("TRUNCATE oracle_meta.audit")
    return dsn


def row_counts(conn):
    """{qualified table: rows}: fixed for the run, since every statement is rolled back."""
    out = {}
    for t, (schema, _, _) in TABLES.items():
        name = t.split(".")[-1]
        out[f"{schema}.{name}"] = conn.execute(f"SELECT count(*) FROM {schema}.{name}").fetchone()[0]
    return out
