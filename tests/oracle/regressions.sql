-- Every under-claim the effect oracle (tests/oracle/) has found, minimised: one entry per
-- `;`-terminated statement (or batch), after `-- class: N` (the rule of the decoder's
-- contract it breaks, 1–6) and a note. tests/e2e/test_sql_oracle.py judges each against
-- the fixture database (tests/oracle/fixture.py) and expects no under-claim; every entry
-- must run in PostgreSQL. Add new finds at the end (`python -m oracle --minimise "SQL"`).
--
-- Found against target/release/scopegate built 2026-12-04 18:45 (the first oracle runs);
-- the build of 19:08 passes all of them.

-- class: 3
-- INSERT value coerced on assignment: 2.6 into an int column is 3, records say "2.6".
INSERT INTO docs (id, n) VALUES ('r1', 2.6);

-- class: 3
-- numeric(8,2) rounds 1.555 to 1.56; records say "1.555".
INSERT INTO items (id, price) VALUES (900, 1.555);

-- class: 3
-- varchar(10) silently drops trailing blanks beyond its length; records keep them.
INSERT INTO items (id, label) VALUES (901, 'abcdefghij  ');

-- class: 3
-- a negative fraction rounds away from zero: -4.6 is stored as -5.
INSERT INTO items (id, qty) VALUES (902, -4.6);

-- class: 3
-- the update of ON CONFLICT hits the row whose key the coerced value equals (1), records say "1.4".
INSERT INTO items (id) VALUES (1.4) ON CONFLICT (id) DO UPDATE SET tenant_id = 'globex';

-- class: 3
-- two spellings of one integer intersected as text: records {"id": []} ("no row"), row 1 deleted.
DELETE FROM items WHERE id = 1 AND id = 1.0;

-- class: 3
-- the same with a quoted literal: '01' is the integer 1.
DELETE FROM items WHERE id = '01' AND id = 1;

-- class: 3
-- numeric 1.5 = 1.50, records {"price": []}.
DELETE FROM items WHERE price = 1.5 AND price = 1.50;

-- class: 3
-- 1e1 is 10: an UPDATE claiming no row updates row 10.
UPDATE items SET qty = 0 WHERE id = 10 AND id = 1e1;

-- class: 3
-- a read claiming no row (records {"id": []}) returns row 2.
SELECT * FROM items WHERE id = 2 AND id = 2.0;

-- class: 3
-- an IN list intersected with an equality spelled differently.
SELECT * FROM recent AS r WHERE r.id IN ('01') AND r.id = 1;

-- class: 4
-- INSERT … SELECT … ON CONFLICT DO UPDATE: the update claims scope some (no records) and updates every row.
INSERT INTO recent (id, tenant_id) SELECT id, tenant_id FROM recent ON CONFLICT (id) DO UPDATE SET tenant_id = 'globex';

-- class: 4
-- the same with EXCLUDED values (and a text key).
INSERT INTO docs (id) SELECT id FROM docs ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.id;

-- class: 4
-- the same behind a WHERE that keeps every row.
INSERT INTO items (id, qty) SELECT id, qty FROM items WHERE qty IS NULL OR qty IS NOT NULL ON CONFLICT (id) DO UPDATE SET label = 'x';

-- class: 5
-- two UPDATEs with the same table and WHERE become one operation keeping the first SET only:
-- tenant_id leaves 'acme' while the claim (records tenant_id acme, sets {n}) says it stays.
UPDATE docs SET n = 0 WHERE tenant_id = 'acme'; UPDATE docs SET tenant_id = 'evil' WHERE tenant_id = 'acme';

-- class: 5
-- the same with two unbounded UPDATEs: title changes, sets lists tenant_id only.
UPDATE docs SET tenant_id = 'x'; UPDATE docs SET title = 'y';

-- class: 5
-- MERGE with two WHEN MATCHED … UPDATE clauses: sets lists the first clause's columns only.
MERGE INTO items i USING items s ON i.id = s.id WHEN MATCHED AND s.id = 1 THEN UPDATE SET qty = 5 WHEN MATCHED THEN UPDATE SET price = 1.5;

-- class: 5
-- the same on a record column: tenant_id changes, sets says only n is assigned.
MERGE INTO docs d USING docs s ON d.id = s.id WHEN MATCHED AND s.id = 'a' THEN UPDATE SET n = 0 WHEN MATCHED THEN UPDATE SET tenant_id = 'evil';

-- class: 5
-- post-image coerced: SET n = 2.6 stores 3, sets say "2.6".
UPDATE docs SET n = 2.6 WHERE id = 'a';

-- class: 5
-- SET price = 1.555 stores 1.56.
UPDATE items SET price = 1.555 WHERE id = 1;

-- class: 5
-- SET label = 'abcdefghij  ' stores 'abcdefghij'.
UPDATE items SET label = 'abcdefghij  ' WHERE id = 1;

-- class: 5
-- a record column's post-image outside records ∪ sets: 1.501 is stored as 1.50.
UPDATE items SET price = 1.501 WHERE price = 0.05;

-- class: 5
-- EXCLUDED.n carries the coerced value (3), sets say "2.6".
INSERT INTO docs (id, n) VALUES ('a', 2.6) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n;

-- class: 5
-- the same behind an executing EXPLAIN (rule 1 itself holds: the inner statement's claim is carried).
EXPLAIN (ANALYZE, COSTS off) UPDATE items SET qty = 0.4 WHERE id = 1;

-- class: 5
-- a record column's post-image coerced: n = 0.6 stores 1, outside records [10] ∪ sets [0.6].
UPDATE docs SET n = 0.6 WHERE n = 10;

-- class: 3
-- a read claiming no row: 10.25e0 and 10.25 intersected as text (records {"price": []}).
SELECT id FROM items WHERE price = 10.25e0 AND price = 10.25;

-- class: 4
-- INSERT … SELECT from another table … ON CONFLICT DO UPDATE: every row of recent updated under scope some.
INSERT INTO recent (id) SELECT id FROM owners ON CONFLICT (id) DO UPDATE SET tenant_id = 'acme';
