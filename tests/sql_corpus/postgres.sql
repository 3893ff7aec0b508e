-- Ground-truth corpus for the SQL classifier (tests/e2e/test_sql_ground_truth.py).
-- One entry per block, blocks separated by a line holding only `-- ;;`.
-- No expectations here: what each entry does is measured on PostgreSQL.
-- ;;
SELECT * FROM reservations
-- ;;
select count(*) from reservations
-- ;;
SELECT * FROM reservations LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM RESERVATIONS
-- ;;
select count(*) from RESERVATIONS
-- ;;
SELECT * FROM RESERVATIONS LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM "reservations"
-- ;;
select count(*) from "reservations"
-- ;;
SELECT * FROM "reservations" LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM public.reservations
-- ;;
select count(*) from public.reservations
-- ;;
SELECT * FROM public.reservations LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM PUBLIC.Reservations
-- ;;
select count(*) from PUBLIC.Reservations
-- ;;
SELECT * FROM PUBLIC.Reservations LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM "public"."reservations"
-- ;;
select count(*) from "public"."reservations"
-- ;;
SELECT * FROM "public"."reservations" LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM "Reservations"
-- ;;
select count(*) from "Reservations"
-- ;;
SELECT * FROM "Reservations" LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM vehicles
-- ;;
select count(*) from vehicles
-- ;;
SELECT * FROM vehicles LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM payments
-- ;;
select count(*) from payments
-- ;;
SELECT * FROM payments LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM private.secrets
-- ;;
select count(*) from private.secrets
-- ;;
SELECT * FROM private.secrets LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM acme_reservations
-- ;;
select count(*) from acme_reservations
-- ;;
SELECT * FROM acme_reservations LIMIT 1 OFFSET 0
-- ;;
SELECT * FROM Public.Vehicles
-- ;;
select count(*) from Public.Vehicles
-- ;;
SELECT * FROM Public.Vehicles LIMIT 1 OFFSET 0
-- ;;
SELECT 1
-- ;;
SELECT now()
-- ;;
select 1 + 1 as two
-- ;;
SELECT 'a' || 'b'
-- ;;
VALUES (1, 'a'), (2, 'b')
-- ;;
SELECT lower('ABC'), upper('abc'), length('abc'), coalesce(null, 1), nullif(1, 1)
-- ;;
SELECT date_trunc('day', now()), extract(year from now()), now() - interval '1 day'
-- ;;
SELECT jsonb_build_object('a', 1, 'b', array[1,2,3])
-- ;;
SELECT * FROM generate_series(1, 5) g
-- ;;
SELECT generate_series(1, 3)
-- ;;
SELECT md5('x'), encode('x'::bytea, 'hex')
-- ;;
SELECT version()
-- ;;
SELECT r.id, v.model FROM reservations r JOIN vehicles v ON v.id = r.vehicle_id
-- ;;
SELECT r.id, v.model FROM reservations r LEFT JOIN vehicles v ON v.id = r.vehicle_id WHERE v.id IS NULL
-- ;;
SELECT * FROM reservations r, vehicles v WHERE r.vehicle_id = v.id
-- ;;
SELECT * FROM reservations NATURAL JOIN payments
-- ;;
SELECT * FROM reservations r FULL OUTER JOIN payments p ON p.reservation_id = r.id
-- ;;
SELECT * FROM reservations CROSS JOIN vehicles
-- ;;
SELECT (SELECT count(*) FROM payments) AS n, (SELECT max(model) FROM vehicles)
-- ;;
SELECT * FROM reservations WHERE vehicle_id IN (SELECT id FROM vehicles WHERE model = 'Zoe')
-- ;;
SELECT * FROM reservations WHERE EXISTS (SELECT 1 FROM payments p WHERE p.reservation_id = reservations.id)
-- ;;
SELECT * FROM reservations WHERE NOT EXISTS (SELECT 1 FROM private.secrets)
-- ;;
SELECT * FROM (SELECT id, tenant_id FROM reservations) sub WHERE tenant_id = 'acme'
-- ;;
SELECT * FROM vehicles v, LATERAL (SELECT count(*) FROM reservations r WHERE r.vehicle_id = v.id) c
-- ;;
SELECT * FROM vehicles v CROSS JOIN LATERAL (SELECT * FROM payments LIMIT 1) p
-- ;;
WITH acme AS (SELECT * FROM reservations WHERE tenant_id = 'acme') SELECT * FROM acme
-- ;;
WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT * FROM b
-- ;;
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT sum(n) FROM t
-- ;;
WITH v AS MATERIALIZED (SELECT * FROM vehicles) SELECT * FROM v
-- ;;
WITH payments AS (SELECT 1 AS id) SELECT * FROM payments
-- ;;
WITH x AS (SELECT * FROM payments) SELECT * FROM x
-- ;;
SELECT id FROM reservations UNION SELECT id FROM vehicles
-- ;;
SELECT id FROM reservations UNION ALL SELECT reservation_id FROM payments
-- ;;
SELECT id FROM reservations INTERSECT SELECT reservation_id FROM payments
-- ;;
SELECT id FROM reservations EXCEPT SELECT reservation_id FROM payments
-- ;;
(SELECT id FROM reservations ORDER BY id LIMIT 1) UNION (SELECT id FROM vehicles ORDER BY id LIMIT 1)
-- ;;
SELECT tenant_id, count(*) FROM reservations GROUP BY tenant_id HAVING count(*) > 1
-- ;;
SELECT id, row_number() OVER (PARTITION BY tenant_id ORDER BY id) FROM reservations
-- ;;
SELECT id, lag(id) OVER w FROM reservations WINDOW w AS (ORDER BY id)
-- ;;
SELECT DISTINCT ON (tenant_id) tenant_id, id FROM reservations ORDER BY tenant_id, id
-- ;;
SELECT string_agg(id, ',') FROM reservations
-- ;;
SELECT array_agg(model ORDER BY model) FROM vehicles
-- ;;
SELECT json_agg(r) FROM reservations r
-- ;;
SELECT * FROM reservations WHERE customer ILIKE 'a%' AND starts_at IS NULL
-- ;;
SELECT * FROM reservations WHERE id = ANY(ARRAY['r-1','r-2'])
-- ;;
SELECT CASE WHEN tenant_id = 'acme' THEN 1 ELSE 0 END FROM reservations
-- ;;
SELECT * FROM reservations ORDER BY starts_at NULLS LAST FETCH FIRST 2 ROWS ONLY
-- ;;
SELECT * FROM reservations TABLESAMPLE SYSTEM (50)
-- ;;
SELECT /* comment */ * FROM reservations -- trailing
-- ;;
SELECT * FROM reservations /* DELETE FROM payments */
-- ;;
-- DELETE FROM payments
SELECT 1
-- ;;
SELECT 'DELETE FROM payments'
-- ;;
SELECT $$DROP TABLE payments$$
-- ;;
SELECT $tag$ ; DROP TABLE payments; $tag$
-- ;;
SELECT E'\' ; DROP TABLE payments; --'
-- ;;
SELECT 1 /* nested /* comment */ ; DROP TABLE payments; */
-- ;;
SELECT * FROM reservations; SELECT * FROM vehicles
-- ;;
SELECT 1;
-- ;;
;SELECT 1
-- ;;
SELECT add_one(1)
-- ;;
SELECT public.add_one(41)
-- ;;
SELECT current_user, session_user
-- ;;
SELECT current_setting('search_path')
-- ;;
SELECT pg_backend_pid()
-- ;;
SELECT txid_current_if_assigned()
-- ;;
SELECT * FROM pg_stat_activity
-- ;;
SELECT * FROM pg_tables WHERE schemaname = 'public'
-- ;;
SELECT * FROM information_schema.tables
-- ;;
SELECT relname FROM pg_class LIMIT 5
-- ;;
SHOW search_path
-- ;;
SHOW ALL
-- ;;
SHOW server_version
-- ;;
EXPLAIN SELECT * FROM reservations
-- ;;
EXPLAIN (COSTS OFF) SELECT * FROM payments
-- ;;
EXPLAIN ANALYZE SELECT * FROM reservations
-- ;;
EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM vehicles
-- ;;
EXPLAIN DELETE FROM payments
-- ;;
EXPLAIN UPDATE vehicles SET model = 'x'
-- ;;
EXPLAIN INSERT INTO vehicles VALUES ('v-9', 'x')
-- ;;
SELECT * FROM reservations FOR UPDATE
-- ;;
SELECT * FROM reservations FOR SHARE
-- ;;
SELECT * FROM vehicles FOR NO KEY UPDATE SKIP LOCKED
-- ;;
SELECT * FROM reservations r JOIN vehicles v ON v.id = r.vehicle_id FOR UPDATE OF r
-- ;;
TABLE reservations
-- ;;
TABLE payments
-- ;;
DELETE FROM payments
-- ;;
DELETE FROM payments WHERE id = 'p-1'
-- ;;
TRUNCATE payments
-- ;;
DELETE FROM PAYMENTS
-- ;;
DELETE FROM PAYMENTS WHERE id = 'p-1'
-- ;;
TRUNCATE PAYMENTS
-- ;;
DELETE FROM "payments"
-- ;;
DELETE FROM "payments" WHERE id = 'p-1'
-- ;;
TRUNCATE "payments"
-- ;;
DELETE FROM public.payments
-- ;;
DELETE FROM public.payments WHERE id = 'p-1'
-- ;;
TRUNCATE public.payments
-- ;;
DELETE FROM "public"."payments"
-- ;;
DELETE FROM "public"."payments" WHERE id = 'p-1'
-- ;;
TRUNCATE "public"."payments"
-- ;;
DELETE FROM reservations WHERE true
-- ;;
DELETE FROM reservations WHERE 1=1
-- ;;
DELETE FROM reservations WHERE 'a'='a'
-- ;;
DELETE FROM reservations WHERE id = 'r-1' OR true
-- ;;
DELETE FROM reservations WHERE id = 'nobody'
-- ;;
DELETE FROM reservations WHERE false
-- ;;
DELETE FROM reservations WHERE id IN (SELECT reservation_id FROM payments)
-- ;;
DELETE FROM payments p USING reservations r WHERE p.reservation_id = r.id AND r.tenant_id = 'acme'
-- ;;
DELETE FROM payments WHERE id = 'p-1' RETURNING *
-- ;;
DELETE FROM "Reservations"
-- ;;
delete from private.secrets
-- ;;
UPDATE vehicles SET model = 'x'
-- ;;
UPDATE vehicles SET model = 'x' WHERE id = 'v-1'
-- ;;
UPDATE vehicles SET model = model WHERE id = 'v-1'
-- ;;
UPDATE vehicles SET model = 'x' WHERE false
-- ;;
UPDATE reservations SET customer = 'x' FROM vehicles v WHERE v.id = reservations.vehicle_id
-- ;;
UPDATE reservations SET customer = upper(customer) WHERE tenant_id = 'acme' RETURNING id
-- ;;
UPDATE private.secrets SET value = 'pwned'
-- ;;
INSERT INTO vehicles VALUES ('v-9', 'Kona')
-- ;;
INSERT INTO vehicles (id, model) VALUES ('v-9', 'Kona'), ('v-10', 'Ioniq')
-- ;;
INSERT INTO vehicles (id, model) VALUES ('v-9', 'Kona') RETURNING *
-- ;;
INSERT INTO vehicles (id, model) SELECT 'v-' || id, model FROM vehicles
-- ;;
INSERT INTO vehicles (id, model) VALUES ('v-1', 'x') ON CONFLICT DO NOTHING
-- ;;
INSERT INTO vehicles (id, model) VALUES ('v-1', 'x') ON CONFLICT (id) DO UPDATE SET model = excluded.model
-- ;;
INSERT INTO vehicles (id, model) VALUES ('v-1', 'x') ON CONFLICT (id) DO NOTHING
-- ;;
INSERT INTO payments (id, amount_cents) SELECT 'p-' || g, g FROM generate_series(10, 20) g
-- ;;
INSERT INTO "Reservations" VALUES ('x')
-- ;;
INSERT INTO private.secrets VALUES (99, 'x')
-- ;;
MERGE INTO vehicles v USING (SELECT 'v-1' AS id) s ON v.id = s.id WHEN MATCHED THEN DELETE
-- ;;
MERGE INTO vehicles v USING (SELECT 'v-9' AS id, 'x' AS model) s ON v.id = s.id WHEN NOT MATCHED THEN INSERT (id, model) VALUES (s.id, s.model)
-- ;;
MERGE INTO vehicles v USING (SELECT 'v-1' AS id) s ON v.id = s.id WHEN MATCHED THEN UPDATE SET model = 'x'
-- ;;
MERGE INTO vehicles v USING (SELECT 'zz' AS id) s ON v.id = s.id WHEN MATCHED THEN DO NOTHING
-- ;;
TRUNCATE reservations, payments
-- ;;
TRUNCATE TABLE payments RESTART IDENTITY
-- ;;
TRUNCATE reservations CASCADE
-- ;;
WITH d AS (DELETE FROM payments RETURNING *) SELECT * FROM d
-- ;;
WITH d AS (DELETE FROM payments RETURNING *) SELECT 1
-- ;;
WITH u AS (UPDATE vehicles SET model = 'x' RETURNING id) SELECT count(*) FROM u
-- ;;
WITH i AS (INSERT INTO vehicles VALUES ('v-9', 'x') RETURNING id) SELECT * FROM i
-- ;;
WITH a AS (SELECT 1), d AS (DELETE FROM payments WHERE id = 'p-1' RETURNING id) SELECT * FROM a
-- ;;
SELECT * FROM (WITH d AS (DELETE FROM payments RETURNING id) SELECT * FROM d) s
-- ;;
SELECT * INTO stolen FROM payments
-- ;;
SELECT id INTO TEMP t1 FROM reservations
-- ;;
CREATE TABLE stolen AS SELECT * FROM private.secrets
-- ;;
CREATE TEMP TABLE t2 AS SELECT 1 AS x
-- ;;
CREATE TABLE t3 (LIKE reservations)
-- ;;
EXPLAIN ANALYZE DELETE FROM payments
-- ;;
EXPLAIN (ANALYZE) DELETE FROM payments
-- ;;
EXPLAIN (ANALYZE true, COSTS false) UPDATE vehicles SET model = 'x'
-- ;;
EXPLAIN ANALYZE INSERT INTO vehicles VALUES ('v-9', 'x')
-- ;;
EXPLAIN (ANALYZE, FORMAT JSON) WITH d AS (DELETE FROM payments RETURNING 1) SELECT * FROM d
-- ;;
SELECT 1; DELETE FROM payments
-- ;;
SELECT * FROM reservations; DROP TABLE vehicles
-- ;;
SELECT 1; /* ok */ UPDATE vehicles SET model = 'x' -- bye
-- ;;
BEGIN; DELETE FROM payments; COMMIT
-- ;;
BEGIN; DELETE FROM payments; ROLLBACK
-- ;;
SELECT 1; COMMIT; DELETE FROM payments
-- ;;
SAVEPOINT s1; DELETE FROM payments; ROLLBACK TO SAVEPOINT s1
-- ;;
SELECT wipe_payments()
-- ;;
SELECT * FROM reservations WHERE wipe_payments() IS NULL
-- ;;
SELECT public.wipe_payments() FROM vehicles LIMIT 1
-- ;;
SELECT count(*) FROM reservations WHERE id = (SELECT id FROM reservations LIMIT 1) AND wipe_payments() IS NULL
-- ;;
CALL touch_vehicle('v-1')
-- ;;
call public.touch_vehicle('v-2')
-- ;;
DO $$ BEGIN DELETE FROM payments; END $$
-- ;;
DO 'BEGIN DELETE FROM payments; END'
-- ;;
PREPARE p1 AS DELETE FROM payments; EXECUTE p1
-- ;;
PREPARE p2 AS SELECT 1; EXECUTE p2
-- ;;
PREPARE p3(text) AS SELECT * FROM vehicles WHERE id = $1; EXECUTE p3('v-1'); DEALLOCATE p3
-- ;;
SELECT query_to_xml('delete from payments returning 1', true, true, '')
-- ;;
SELECT query_to_xml('select 1', true, true, '')
-- ;;
SELECT nextval('res_seq')
-- ;;
SELECT setval('res_seq', 100)
-- ;;
SELECT currval('res_seq')
-- ;;
SELECT last_value FROM res_seq
-- ;;
SELECT set_config('search_path', 'private', false)
-- ;;
SELECT set_config('work_mem', '8MB', true)
-- ;;
SELECT lo_create(0)
-- ;;
SELECT lo_unlink(424242)
-- ;;
SELECT pg_advisory_lock(1)
-- ;;
SELECT pg_advisory_xact_lock(2)
-- ;;
SELECT pg_try_advisory_lock(3)
-- ;;
SELECT pg_sleep(0)
-- ;;
SELECT pg_cancel_backend(0)
-- ;;
SELECT pg_terminate_backend(0)
-- ;;
SELECT pg_read_file('postgresql.conf', 0, 10)
-- ;;
SELECT pg_ls_dir('.') LIMIT 1
-- ;;
SELECT pg_reload_conf()
-- ;;
SELECT txid_current()
-- ;;
SELECT pg_current_xact_id()
-- ;;
SELECT pg_notify('ch', 'x')
-- ;;
SELECT pg_stat_reset()
-- ;;
DROP TABLE payments
-- ;;
DROP TABLE IF EXISTS payments
-- ;;
drop table "Reservations"
-- ;;
DROP TABLE payments CASCADE
-- ;;
DROP VIEW acme_reservations
-- ;;
DROP SEQUENCE res_seq
-- ;;
DROP FUNCTION add_one(int)
-- ;;
DROP PROCEDURE touch_vehicle(text)
-- ;;
DROP SCHEMA private CASCADE
-- ;;
DROP INDEX IF EXISTS nope_idx
-- ;;
CREATE TABLE notes (id int)
-- ;;
CREATE TABLE IF NOT EXISTS vehicles (id text)
-- ;;
CREATE INDEX ON reservations (tenant_id)
-- ;;
CREATE UNIQUE INDEX r_cust ON reservations (customer, id)
-- ;;
CREATE VIEW v1 AS SELECT * FROM private.secrets
-- ;;
CREATE OR REPLACE VIEW acme_reservations AS SELECT * FROM reservations
-- ;;
CREATE MATERIALIZED VIEW mv AS SELECT * FROM vehicles
-- ;;
CREATE SCHEMA audit
-- ;;
CREATE SEQUENCE s2
-- ;;
CREATE FUNCTION f1() RETURNS int LANGUAGE sql AS 'SELECT 1'
-- ;;
CREATE OR REPLACE FUNCTION add_one(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 100'
-- ;;
CREATE TYPE mood AS ENUM ('ok')
-- ;;
CREATE DOMAIN posint AS int CHECK (VALUE > 0)
-- ;;
ALTER TABLE reservations ADD COLUMN notes text
-- ;;
ALTER TABLE reservations DROP COLUMN customer
-- ;;
ALTER TABLE reservations RENAME TO res2
-- ;;
ALTER TABLE vehicles ALTER COLUMN model DROP NOT NULL
-- ;;
ALTER TABLE payments DISABLE TRIGGER ALL
-- ;;
ALTER INDEX reservations_pkey RENAME TO rp
-- ;;
ALTER VIEW acme_reservations RENAME TO ar
-- ;;
ALTER SEQUENCE res_seq RESTART WITH 5
-- ;;
ALTER SCHEMA private RENAME TO priv
-- ;;
COMMENT ON TABLE reservations IS 'x'
-- ;;
COMMENT ON COLUMN reservations.customer IS 'pii'
-- ;;
REFRESH MATERIALIZED VIEW acme_reservations
-- ;;
GRANT SELECT ON private.secrets TO PUBLIC
-- ;;
REVOKE ALL ON reservations FROM PUBLIC
-- ;;
CREATE ROLE intruder
-- ;;
CREATE ROLE intruder2 SUPERUSER LOGIN PASSWORD 'x'
-- ;;
ALTER ROLE postgres NOSUPERUSER
-- ;;
DROP ROLE IF EXISTS nobody
-- ;;
GRANT pg_read_server_files TO PUBLIC
-- ;;
SET ROLE pg_read_all_data
-- ;;
RESET ROLE
-- ;;
SET search_path TO private
-- ;;
SET LOCAL search_path TO private
-- ;;
SET work_mem = '64MB'
-- ;;
SET SESSION AUTHORIZATION DEFAULT
-- ;;
RESET ALL
-- ;;
RESET search_path
-- ;;
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE
-- ;;
SET statement_timeout = 0
-- ;;
SET search_path TO private; SELECT * FROM secrets
-- ;;
VACUUM reservations
-- ;;
VACUUM FULL
-- ;;
ANALYZE reservations
-- ;;
ANALYZE
-- ;;
LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE
-- ;;
LOCK reservations
-- ;;
COPY reservations TO STDOUT
-- ;;
COPY (SELECT * FROM private.secrets) TO STDOUT
-- ;;
COPY reservations FROM STDIN
-- ;;
COPY vehicles TO PROGRAM 'cat > /dev/null'
-- ;;
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'
-- ;;
COPY vehicles FROM PROGRAM 'echo v-9,x' WITH (FORMAT csv)
-- ;;
LISTEN ch
-- ;;
UNLISTEN *
-- ;;
NOTIFY ch, 'x'
-- ;;
DISCARD ALL
-- ;;
DISCARD TEMP
-- ;;
CLUSTER reservations USING reservations_pkey
-- ;;
REINDEX TABLE reservations
-- ;;
CHECKPOINT
-- ;;
CREATE EXTENSION IF NOT EXISTS pgcrypto
-- ;;
DROP EXTENSION IF EXISTS pgcrypto
-- ;;
CREATE DATABASE other
-- ;;
DROP DATABASE IF EXISTS other
-- ;;
ALTER SYSTEM SET work_mem = '8MB'
-- ;;
DECLARE c CURSOR FOR SELECT * FROM reservations
-- ;;
BEGIN; DECLARE c CURSOR FOR SELECT * FROM payments; FETCH c; CLOSE c; COMMIT
-- ;;
BEGIN
-- ;;
COMMIT
-- ;;
ROLLBACK
-- ;;
START TRANSACTION READ ONLY
-- ;;
BEGIN; SELECT 1; COMMIT
-- ;;
PREPARE TRANSACTION 'x'
-- ;;
SECURITY LABEL ON TABLE reservations IS 'x'
-- ;;
IMPORT FOREIGN SCHEMA public FROM SERVER nope INTO private
-- ;;
SELECT * FROM `reservations`
-- ;;
REPLACE INTO vehicles VALUES ('v-1', 'x')
-- ;;
INSERT IGNORE INTO vehicles VALUES ('v-1', 'x')
-- ;;
SELECT * FROM [reservations]
-- ;;
DELETE FROM payments LIMIT 1
-- ;;
SELECT TOP 1 * FROM reservations
-- ;;
SHOW TABLES
-- ;;
DESCRIBE reservations
-- ;;
USE private
-- ;;
PRAGMA table_info(reservations)
-- ;;
SELECT * FROM reservations WHERE id = ?
-- ;;
INSERT OR REPLACE INTO vehicles VALUES ('v-1','x')
-- ;;
UPDATE reservations r JOIN vehicles v ON v.id = r.vehicle_id SET r.customer = 'x'
-- ;;
SELECT * FROM reservations WHERE id = 'x' UNION SELECT value, null, null, null, null FROM private.secrets
-- ;;
SELECT (SELECT value FROM private.secrets LIMIT 1)
-- ;;
SELECT * FROM reservations r WHERE r.customer = (SELECT value FROM private.secrets WHERE id = 1)
-- ;;
SELECT * FROM reservations WHERE id IN (TABLE payments)
-- ;;
SELECT to_jsonb(s) FROM private.secrets s
-- ;;
SELECT * FROM ONLY reservations
-- ;;
SELECT * FROM reservations AS "R" WHERE "R".id = 'r-1'
-- ;;
SELECT * FROM pg_catalog.pg_roles
-- ;;
SELECT pg_catalog.lower('X')
-- ;;
SELECT public.lower('X')
-- ;;
SELECT row_to_json(t) FROM (SELECT * FROM vehicles) t
-- ;;
SELECT * FROM unnest(ARRAY[1,2]) AS u(x)
-- ;;
SELECT * FROM json_each('{"a":1}')
-- ;;
SELECT * FROM vehicles WHERE model SIMILAR TO 'Z%'
-- ;;
SELECT * FROM vehicles WHERE model ~ '^Z'
-- ;;
SELECT 1 WHERE 1 BETWEEN 0 AND 2
-- ;;
SELECT * FROM reservations WHERE (tenant_id, id) = ('acme', 'r-1')
-- ;;
SELECT cast(1 AS text), 1::text, text '1'
-- ;;
SELECT ARRAY(SELECT id FROM vehicles)
-- ;;
SELECT * FROM reservations r WHERE r.starts_at AT TIME ZONE 'UTC' > now()
-- ;;
SELECT count(*) FILTER (WHERE tenant_id = 'acme') FROM reservations
-- ;;
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount_cents) FROM payments
-- ;;
SELECT * FROM vehicles ORDER BY random() LIMIT 1
-- ;;
SELECT gen_random_uuid()
-- ;;
SELECT * FROM reservations WHERE customer LIKE '%a%' ESCAPE '\'
-- ;;
SELECT pg_size_pretty(pg_total_relation_size('reservations'))
