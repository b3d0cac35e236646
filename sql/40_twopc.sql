-- Two-phase commit: participants, validation, CS002/CS004/CS005, permissions, and remote
-- statements against a loopback participant (this very database): commit, rollback,
-- savepoints, exception blocks, timeouts, the in_doubt view, drop_participant.
-- The regression database has no worker: decision rows stay until drop_participant.
CREATE FUNCTION pg_temp.error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hnt text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN st || ' | ' || msg || ' | ' || coalesce(nullif(det, ''), '-') || ' | ' || coalesce(nullif(hnt, ''), '-');
END $$;
\getenv pghost PGHOST
\getenv pgport PGPORT
SELECT format('host=%s port=%s dbname=%s', :'pghost', :'pgport', current_database()) AS self_conninfo \gset

-- add_participant: validation (CS002); a bad conninfo is never echoed.
SELECT pg_temp.error_of($$SELECT consistency.add_participant(NULL, 'host=x')$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('', 'host=x')$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('has space', 'host=x')$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant(repeat('x', 64), 'host=x')$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('p', NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('p', '   ')$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('p', 'password=hunter2 dangling')$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('p', 'no_such_option=1')$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('p', 'postgresql://u:hunter2@[::1')$$);

-- add_participant: success, and a duplicate name.
SELECT consistency.add_participant('self', :'self_conninfo');
SELECT consistency.add_participant('down', 'host=127.0.0.1 port=1 dbname=nowhere');
SELECT pg_temp.error_of($$SELECT consistency.add_participant('self', 'host=elsewhere')$$);
SELECT name, trusted, created_by = session_user AS added_by_me FROM consistency.participants ORDER BY name;

-- Unknown participants (CS004).
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('nobody', 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.remote_query('bad name!', 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('nobody')$$);

-- Refused statements (CS002): nothing reaches the participant.
SELECT pg_temp.error_of($$SELECT consistency.remote_exec(NULL, 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', ' -- nothing')$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'COMMIT')$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', '/* x */ savepoint a')$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'PREPARE TRANSACTION ''x''')$$);

-- Connection failure (CS005), with libpq's reason and without the conninfo.
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('down', 'SELECT 1')$$);

-- Work on the participant commits with the local transaction (two-phase).
SELECT consistency.remote_exec('self', 'CREATE TABLE twopc_remote (id int PRIMARY KEY, note text)');
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (1, 'one'), (2, 'two "2"')$$);
SELECT * FROM twopc_remote ORDER BY id;
SELECT * FROM consistency.remote_query('self',
  $$SELECT id, note, id * 1.5 AS x, id = 1 AS first, NULL::text AS nothing,
           '{"a": [1]}'::jsonb AS j, 'NaN'::float8 AS nan FROM twopc_remote ORDER BY id$$);
SELECT consistency.remote_exec('self', 'UPDATE twopc_remote SET note = note WHERE id > 0') AS updated;
SELECT consistency.remote_exec('self', 'SELECT * FROM twopc_remote') AS selected;
SELECT consistency.remote_exec('self', 'CREATE INDEX ON twopc_remote (note)') AS utility;
SELECT count(*) AS rows_without_result FROM consistency.remote_query('self', 'UPDATE twopc_remote SET note = note');
SELECT * FROM consistency.remote_query('self', $$UPDATE twopc_remote SET note = 'one!' WHERE id = 1 RETURNING id, note$$);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
SELECT count(*) > 0 AS decisions_recorded FROM consistency.twopc_decisions;

-- A local rollback rolls the participant back.
BEGIN;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (3, 'three')$$);
SELECT * FROM consistency.remote_query('self', 'SELECT count(*) AS n FROM twopc_remote');
SELECT count(*) AS locally_visible FROM twopc_remote;
ROLLBACK;
SELECT count(*) AS after_rollback FROM twopc_remote;

-- A failing remote statement raises CS005 with the remote message in DETAIL.
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'SELECT * FROM no_such_table')$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', $q$INSERT INTO twopc_remote VALUES (1, 'dup')$q$)$$);
BEGIN;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (4, 'four')$$);
SELECT consistency.remote_exec('self', 'SELECT 1/0');
COMMIT;
SELECT count(*) AS aborted_work_left FROM twopc_remote WHERE id = 4;

-- Savepoints are mirrored on the participant.
BEGIN;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (10, 'kept')$$);
SAVEPOINT s1;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (11, 'undone')$$);
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (10, 'duplicate')$$);
ROLLBACK TO SAVEPOINT s2;
SAVEPOINT s3;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (12, 'released')$$);
RELEASE SAVEPOINT s3;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (13, 'after the error')$$);
COMMIT;
SELECT * FROM twopc_remote WHERE id >= 10 ORDER BY id;

-- So are PL/pgSQL exception blocks; a participant first used inside one is rolled back whole.
DO $$
BEGIN
  PERFORM consistency.remote_exec('self', $q$INSERT INTO twopc_remote VALUES (20, 'kept')$q$);
  BEGIN
    PERFORM consistency.remote_exec('self', $q$INSERT INTO twopc_remote VALUES (21, 'undone')$q$);
    PERFORM consistency.remote_exec('self', $q$INSERT INTO twopc_remote VALUES (20, 'dup')$q$);
  EXCEPTION WHEN sqlstate 'CS005' THEN
    RAISE NOTICE 'caught: %', SQLERRM;
  END;
  PERFORM consistency.remote_exec('self', $q$INSERT INTO twopc_remote VALUES (22, 'kept too')$q$);
END $$;
SELECT * FROM twopc_remote WHERE id >= 20 ORDER BY id;

-- The outcome is recorded locally: a read-only transaction cannot use participants.
BEGIN READ ONLY;
SELECT consistency.remote_exec('self', 'SELECT 1');
ROLLBACK;

-- A transaction with remote work cannot be prepared locally.
BEGIN;
SELECT consistency.remote_exec('self', 'SELECT 1');
PREPARE TRANSACTION 'local_gid';
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

-- The per-call timeout cancels a slow participant (CS005).
SET pg_consistency.twopc_timeout = '200ms';
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'SELECT pg_sleep(5)')$$);
RESET pg_consistency.twopc_timeout;
SELECT consistency.remote_exec('self', 'SELECT 1') AS works_after_timeout;

-- in_doubt: a prepared transaction named like ours whose local transaction is over
-- without a decision (presumed abort: decision 'rollback'); drop_participant refuses.
BEGIN;
SELECT pg_current_xact_id() AS dead_xid \gset
ROLLBACK;
SELECT format('pgc_%s_%s_%s_%s', c.system_identifier, d.oid, :'dead_xid', p.id) AS orphan_gid
  FROM pg_control_system() c, pg_database d, consistency.twopc_participants p
 WHERE d.datname = current_database() AND p.name = 'self' \gset
BEGIN;
INSERT INTO twopc_remote VALUES (99, 'orphan');
PREPARE TRANSACTION :'orphan_gid';
SELECT participant, gid = :'orphan_gid' AS our_gid, prepared_at IS NOT NULL AS has_time, decision
  FROM consistency.in_doubt;
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('self')$$);
ROLLBACK PREPARED :'orphan_gid';
SELECT count(*) AS in_doubt FROM consistency.in_doubt WHERE participant = 'self';

-- Operations hooks.
SELECT metric, kind FROM consistency._metrics_twopc() ORDER BY metric;
SELECT check_name, ok FROM consistency._integrity_twopc() ORDER BY check_name;

-- Permissions: readers read, writers run remote statements, admins administer;
-- conninfo is readable only by admins and superusers.
CREATE ROLE twopc_reader_role;
CREATE ROLE twopc_writer_role;
CREATE ROLE twopc_admin_role;
GRANT consistency_reader TO twopc_reader_role;
GRANT consistency_writer TO twopc_writer_role;
GRANT consistency_admin TO twopc_admin_role;
SET ROLE twopc_reader_role;
SELECT name FROM consistency.participants ORDER BY name;
SELECT count(*) AS in_doubt FROM consistency.in_doubt WHERE participant = 'self';
SELECT pg_temp.error_of($$SELECT conninfo FROM consistency.twopc_participants$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'SELECT 1')$$);
RESET ROLE;
SET ROLE twopc_writer_role;
SELECT consistency.remote_exec('self', 'SELECT 1') AS writer_may_run;
SELECT pg_temp.error_of($$SELECT conninfo FROM consistency.twopc_participants$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('x', 'host=h password=p')$$);
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('down')$$);
SELECT pg_temp.error_of($$DELETE FROM consistency.twopc_decisions$$);
RESET ROLE;
SET ROLE twopc_admin_role;
SELECT pg_temp.error_of($$SELECT consistency.add_participant('by_admin', 'host=127.0.0.1 port=1 dbname=x')$$);
SELECT consistency.add_participant('by_admin', 'host=127.0.0.1 port=1 dbname=x password=hunter2');
SELECT consistency.add_participant('self_nopw', :'self_conninfo' || ' password=unused');
SELECT name, trusted, conninfo LIKE '%hunter2%' AS admin_reads_conninfo
  FROM consistency.twopc_participants WHERE name IN ('by_admin', 'self_nopw') ORDER BY name;
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('by_admin', 'SELECT 1')$$) AS err \gset
SELECT :'err' LIKE 'CS005 | could not connect to participant "by_admin"%' AS cs005,
       :'err' NOT LIKE '%hunter2%' AS no_password_in_error;
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self_nopw', 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('by_admin')$$);
SELECT consistency.drop_participant('by_admin', force => true);
SELECT consistency.drop_participant('self_nopw', force => true);
RESET ROLE;

-- drop_participant: a reachable participant with nothing in doubt goes with its decision
-- rows; an unreachable one needs force.
SELECT consistency.drop_participant('self');
SELECT count(*) AS decisions_left FROM consistency.twopc_decisions;
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('down')$$);
SELECT consistency.drop_participant('down', force => true);
SELECT count(*) AS participants_left FROM consistency.participants;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

DROP TABLE twopc_remote;
DROP ROLE twopc_reader_role, twopc_writer_role, twopc_admin_role;
