-- Two-phase commit: participants, validation, CS002/CS004/CS005, permissions, and remote
-- statements against a loopback participant (this very database): commit, rollback,
-- savepoints, exception blocks, timeouts, the in_doubt view, drop_participant.
-- The regression database has no worker: decision rows stay until drop_participant.
\i sql/include/helpers.sql
\getenv pghost PGHOST
\getenv pgport PGPORT
SELECT format('host=%s port=%s dbname=%s user=%s', :'pghost', :'pgport', current_database(), current_user) AS self_conninfo \gset

-- add_participant: validation (CS002); a bad conninfo is never echoed. The remote role
-- must be named (user=, the last four): otherwise every writer would act on the
-- participant as whatever role libpq derives from this server's OS user.
SELECT args, pg_temp.error_of('SELECT consistency.add_participant(' || args || ')') FROM (VALUES
  ($$NULL, 'host=x'$$),
  ($$'', 'host=x'$$),
  ($$'has space', 'host=x'$$),
  ($$repeat('x', 64), 'host=x'$$),
  ($$'p', NULL$$),
  ($$'p', '   '$$),
  ($$'p', 'password=hunter2 dangling'$$),
  ($$'p', 'no_such_option=1'$$),
  ($$'p', 'postgresql://u:hunter2@[::1'$$),
  ($$'p', 'host=h dbname=d password=x'$$),
  ($$'p', 'host=h dbname=d user='''' password=x'$$),
  ($$'p', 'postgresql://h:5432/d'$$),
  ($$'p', 'postgresql://h/d?password=x'$$)
) AS v(args);

-- add_participant: success, and a duplicate name.
SELECT consistency.add_participant('self', :'self_conninfo');
SELECT consistency.add_participant('down', 'host=127.0.0.1 port=1 dbname=nowhere user=nobody');
SELECT consistency.add_participant('uri', 'postgresql://app@127.0.0.1:1/nowhere');
-- A conninfo without user= that reached the catalog another way (an old dump) is
-- reported, and never used.
UPDATE consistency.twopc_participants SET conninfo = 'host=127.0.0.1 port=1 dbname=x' WHERE name = 'uri';
SELECT check_name, ok, detail FROM consistency._integrity_twopc() WHERE check_name = 'twopc_participant_conninfo';
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('uri', 'SELECT 1')$$);
SELECT consistency.drop_participant('uri', force => true);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('self', 'host=elsewhere user=u')$$);
SELECT name, trusted, created_by = session_user AS added_by_me FROM consistency.participants ORDER BY name;

-- Unknown participants (CS004).
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('nobody', 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.remote_query('bad name!', 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('nobody')$$);
-- A huge name is shown clipped to 200 bytes, on a character boundary.
SELECT pg_temp.error_of(format('SELECT consistency.remote_exec(%L, %L)', repeat('é', 50000), 'SELECT 1'));
SELECT pg_temp.error_of(format('SELECT consistency.add_participant(%L, %L)', repeat('é', 50000), 'host=h user=u'));

-- Refused statements (CS002): nothing reaches the participant. The lexer's corners (the
-- last four): the server drops empty statements (";COMMIT" is COMMIT), and ends a --
-- comment at a carriage return as well as at a newline.
SELECT args, pg_temp.error_of('SELECT consistency.remote_exec(' || args || ')') FROM (VALUES
  ($$NULL, 'SELECT 1'$$),
  ($$'self', NULL$$),
  ($$'self', ' -- nothing'$$),
  ($$'self', 'COMMIT'$$),
  ($$'self', '/* x */ savepoint a'$$),
  ($$'self', 'PREPARE TRANSACTION ''x'''$$),
  ($$'self', ';COMMIT'$$),
  ($$'self', ' ; /* x */ ; end'$$),
  ($$'self', '--x' || chr(13) || 'COMMIT'$$),
  ($$'self', 'PREPARE --x' || chr(13) || 'TRANSACTION ''x'''$$)
) AS v(args);

-- Connection failure (CS005), with libpq's reason and without the conninfo.
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('down', 'SELECT 1')$$);

-- Work on the participant commits with the local transaction (two-phase).
SELECT consistency.remote_exec('self', 'CREATE TABLE twopc_remote (id int PRIMARY KEY, note text)');
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (1, 'one'), (2, 'two "2"')$$);
SELECT * FROM twopc_remote ORDER BY id;
SELECT * FROM consistency.remote_query('self',
  $$SELECT id, note, id * 1.5 AS x, id = 1 AS first, NULL::text AS nothing,
           '{"a": [1]}'::jsonb AS j, 'NaN'::float8 AS nan FROM twopc_remote ORDER BY id$$);
-- Names and values are escaped by PostgreSQL (quotes, backslashes, control characters);
-- numbers of any size stay numbers, NaN and infinities become strings.
SELECT * FROM consistency.remote_query('self',
  $$SELECT E'q"b\\s/\n\t\r\b\f\x01\x1f' || 'é' AS "odd ""name""", 9223372036854775807::int8 AS big,
           1.50 AS dec, ('1' || repeat('0', 30))::numeric AS huge, '-Infinity'::float8 AS minf,
           'NaN'::numeric AS nan, 1e100::float8 AS f, '[true]'::json AS js, '{1,2}'::int[] AS arr,
           ''::text AS empty$$);
SELECT consistency.remote_exec('self', 'UPDATE twopc_remote SET note = note WHERE id > 0') AS updated;
SELECT consistency.remote_exec('self', 'SELECT * FROM twopc_remote') AS selected;
SELECT consistency.remote_exec('self', 'CREATE INDEX ON twopc_remote (note)') AS utility;
SELECT count(*) AS rows_without_result FROM consistency.remote_query('self', 'UPDATE twopc_remote SET note = note');
SELECT * FROM consistency.remote_query('self', $$UPDATE twopc_remote SET note = 'one!' WHERE id = 1 RETURNING id, note$$);
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
SELECT count(*) > 0 AS decisions_recorded FROM consistency.twopc_decisions;

-- COPY to or from the client is refused (it used to make the backend spin, deaf to
-- pg_terminate_backend); nothing is written.
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'COPY twopc_remote FROM STDIN')$$);
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'COPY twopc_remote TO STDOUT')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.remote_query('self', 'COPY (SELECT 1) TO STDOUT')$$);
SELECT count(*) AS rows_after_copy FROM twopc_remote;

-- The result of remote_query is capped (pg_consistency.twopc_max_result_bytes, 54000);
-- rows are read one at a time, the statement is cancelled at the cap.
SHOW pg_consistency.twopc_max_result_bytes;
SET pg_consistency.twopc_max_result_bytes = '1kB';
SELECT count(*) AS under_the_cap FROM consistency.remote_query('self', 'SELECT g FROM generate_series(1, 50) g');
SELECT pg_temp.error_of($$SELECT count(*) FROM consistency.remote_query('self', 'SELECT g, pg_catalog.repeat(''x'', 100) AS pad FROM generate_series(1, 100000) g')$$);
BEGIN;
SELECT consistency.remote_exec('self', $$INSERT INTO twopc_remote VALUES (5, 'kept')$$);
SAVEPOINT before_big;
SELECT count(*) FROM consistency.remote_query('self', 'SELECT g, pg_catalog.repeat(''x'', 100) AS pad FROM generate_series(1, 100000) g');
ROLLBACK TO SAVEPOINT before_big;
SELECT * FROM consistency.remote_query('self', 'SELECT id, note FROM twopc_remote WHERE id = 5');
ROLLBACK;
-- remote_exec reads a SELECT's rows one at a time too, and only counts them.
SELECT consistency.remote_exec('self', 'SELECT g FROM generate_series(1, 100000) g') AS counted;
RESET pg_consistency.twopc_max_result_bytes;

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
-- A writer uses only the participants an admin granted it (42501, no conninfo shown).
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.remote_query('self', 'SELECT 1')$$);
SELECT pg_temp.error_of($$SELECT consistency.grant_participant('self', 'twopc_writer_role')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.participant_grants$$);
RESET ROLE;
SELECT consistency.grant_participant('self', 'twopc_writer_role');
SELECT consistency.grant_participant('self', 'twopc_writer_role');  -- again: no change
SELECT participant, role, granted_by = session_user AS by_me FROM consistency.participant_grants;
SET ROLE twopc_writer_role;
SELECT consistency.remote_exec('self', 'SELECT 1') AS writer_may_run;
-- The result cap is the administrator's: a writer cannot raise it.
SELECT pg_temp.error_of($$SET pg_consistency.twopc_max_result_bytes = '1GB'$$);
SELECT pg_temp.error_of($$SELECT conninfo FROM consistency.twopc_participants$$);
SELECT pg_temp.error_of($$SELECT consistency.add_participant('x', 'host=h password=p')$$);
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('down')$$);
SELECT pg_temp.error_of($$DELETE FROM consistency.twopc_decisions$$);
RESET ROLE;
SET ROLE twopc_admin_role;
SELECT pg_temp.error_of($$SELECT consistency.add_participant('by_admin', 'host=127.0.0.1 port=1 dbname=x user=app')$$);
SELECT consistency.add_participant('by_admin', 'host=127.0.0.1 port=1 dbname=x user=app password=hunter2');
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
-- Admins use every participant without a grant (they could grant themselves), and
-- manage grants.
SELECT consistency.remote_exec('self', 'SELECT 1') AS admin_may_run;
SELECT pg_temp.error_of($$SELECT consistency.grant_participant('nobody', 'twopc_reader_role')$$);
SELECT pg_temp.error_of($$SELECT consistency.grant_participant('self', NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.grant_participant('self', '-')$$);
SELECT pg_temp.error_of($$SELECT consistency.revoke_participant('nobody', 'twopc_reader_role')$$);
SELECT count(*) AS grants_seen_by_admin FROM consistency.participant_grants;
RESET ROLE;

-- Grants to a group role reach its members; the check runs at every call, also when the
-- participant is already part of the transaction; revoking takes the right away.
CREATE ROLE twopc_group;
CREATE ROLE twopc_member IN ROLE twopc_group, consistency_writer;
CREATE ROLE twopc_other IN ROLE consistency_writer;
SELECT consistency.grant_participant('self', 'twopc_group');
SET ROLE twopc_member;
SELECT consistency.remote_exec('self', 'SELECT 1') AS member_may_run;
RESET ROLE;
BEGIN;
SET LOCAL ROLE twopc_member;
SELECT consistency.remote_exec('self', 'SELECT 1') AS member_opens_it;
SET LOCAL ROLE twopc_other;
SELECT consistency.remote_exec('self', 'SELECT 1');
ROLLBACK;
SELECT consistency.revoke_participant('self', 'twopc_group');
SELECT consistency.revoke_participant('self', 'twopc_group');  -- nothing left: a NOTICE
SET ROLE twopc_member;
SELECT pg_temp.error_of($$SELECT consistency.remote_exec('self', 'SELECT 1')$$);
RESET ROLE;
-- A grant to a role that is dropped is reported by the integrity check and removed at
-- the next change of grants.
CREATE ROLE twopc_gone;
SELECT consistency.grant_participant('self', 'twopc_gone');
DROP ROLE twopc_gone;
SELECT check_name, ok, detail FROM consistency._integrity_twopc() WHERE check_name = 'twopc_participant_grants';
SELECT consistency.revoke_participant('self', 'twopc_other');
SELECT check_name, ok FROM consistency._integrity_twopc() WHERE check_name = 'twopc_participant_grants';
SELECT participant, role FROM consistency.participant_grants ORDER BY role::text;

-- Finding 2: a reader with only the default TEMP privilege plants pg_temp types that
-- shadow the ones the extension's statements name (pg_temp is searched first for types).
-- None of them is ever resolved inside: the reader stays a reader, and evil() never runs
-- as another role.
CREATE TABLE public.twopc_evil_log (who name, what text);
GRANT INSERT, SELECT ON public.twopc_evil_log TO PUBLIC;
-- What the current role plants: pg_temp.evil(), which logs its call and tries to make the
-- planting role a superuser, and pg_temp domains checked by it; and their removal.
CREATE FUNCTION pg_temp.plant_evil() RETURNS void LANGUAGE plpgsql AS $p$
BEGIN
  EXECUTE pg_catalog.format($f$
    CREATE FUNCTION pg_temp.evil(v anyelement) RETURNS boolean LANGUAGE plpgsql AS $e$
    BEGIN
      INSERT INTO public.twopc_evil_log VALUES (current_user, 'pg_temp domain check');
      BEGIN
        EXECUTE 'ALTER ROLE %I SUPERUSER';
      EXCEPTION WHEN others THEN NULL;
      END;
      RETURN true;
    END $e$$f$, current_user);
  PERFORM pg_temp.shadow_types('float8', 'int4', 'int8', 'oid', 'xid8', 'name', 'bool', 'timestamptz', 'regrole',
                               'jsonb');
END $p$;
CREATE FUNCTION pg_temp.remove_evil() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_temp.unshadow_types();
  DROP FUNCTION pg_temp.evil(anyelement);
END $$;
CREATE ROLE twopc_rita IN ROLE consistency_reader;
SET ROLE twopc_rita;
SELECT pg_temp.plant_evil();
SELECT pg_catalog.count(*) > 0 AS metrics FROM consistency._metrics_twopc();
SELECT pg_catalog.count(*) > 0 AS integrity FROM consistency._integrity_twopc();
SELECT pg_catalog.length(consistency.metrics()) > 0 AS all_metrics;
SELECT pg_catalog.count(*) > 0 AS all_integrity FROM consistency.check_integrity();
SELECT pg_catalog.count(*) AS in_doubt FROM consistency.in_doubt;
SELECT pg_catalog.count(*) AS participants FROM consistency.participants;
-- The functions a reader may not call refuse it before anything runs.
SELECT consistency.remote_exec('self', 'SELECT 1');
SELECT consistency.remote_query('self', 'SELECT 1');
SELECT consistency.add_participant('x', 'host=h user=u password=p');
SELECT consistency.drop_participant('self');
SELECT consistency.grant_participant('self', 'twopc_rita');
SELECT consistency.revoke_participant('self', 'twopc_rita');
SELECT pg_temp.remove_evil();
RESET ROLE;
SELECT rolsuper AS rita_is_superuser FROM pg_roles WHERE rolname = 'twopc_rita';
SELECT count(*) AS evil_ran_as_another_role FROM public.twopc_evil_log WHERE who <> 'twopc_rita';

-- The same pg_temp types planted by a writer that uses a participant (remote statements,
-- the commit with its decision rows, the abort): evil() never runs as another role.
CREATE ROLE twopc_walt IN ROLE consistency_writer;
SELECT consistency.grant_participant('self', 'twopc_walt');
SET ROLE twopc_walt;
SELECT pg_temp.plant_evil();
\i sql/include/twopc_commit_and_abort.sql
SELECT pg_catalog.count(*) AS in_doubt FROM consistency.in_doubt;
SELECT pg_temp.remove_evil();
RESET ROLE;
SELECT rolsuper AS walt_is_superuser FROM pg_roles WHERE rolname = 'twopc_walt';
SELECT count(*) AS evil_ran_as_another_role FROM public.twopc_evil_log
 WHERE who NOT IN ('twopc_rita', 'twopc_walt');

-- The variant: operators mallory.= on mallory's search_path (ahead of pg_catalog), for
-- every type the extension compares, while mallory runs remote statements, commits and
-- reads the operations hooks. Her operators never run as the extension's owner.
CREATE ROLE twopc_mallory IN ROLE consistency_writer;
CREATE SCHEMA twopc_mallory AUTHORIZATION twopc_mallory;
SELECT consistency.grant_participant('self', 'twopc_mallory');
SET ROLE twopc_mallory;
CREATE FUNCTION twopc_mallory.log_eq(a anyelement, b anyelement) RETURNS boolean
  LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.twopc_evil_log VALUES (current_user, 'mallory.=');
  BEGIN
    EXECUTE 'ALTER ROLE twopc_mallory SUPERUSER';
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN a OPERATOR(pg_catalog.=) b;
END $f$;
CREATE FUNCTION twopc_mallory.eq_text(text, text) RETURNS boolean LANGUAGE sql
  AS 'SELECT twopc_mallory.log_eq($1, $2)';
CREATE FUNCTION twopc_mallory.eq_int4(int4, int4) RETURNS boolean LANGUAGE sql
  AS 'SELECT twopc_mallory.log_eq($1, $2)';
CREATE FUNCTION twopc_mallory.eq_xid8(xid8, xid8) RETURNS boolean LANGUAGE sql
  AS 'SELECT twopc_mallory.log_eq($1, $2)';
CREATE FUNCTION twopc_mallory.eq_oid(oid, oid) RETURNS boolean LANGUAGE sql
  AS 'SELECT twopc_mallory.log_eq($1, $2)';
CREATE OPERATOR twopc_mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = twopc_mallory.eq_text);
CREATE OPERATOR twopc_mallory.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = twopc_mallory.eq_int4);
CREATE OPERATOR twopc_mallory.= (LEFTARG = xid8, RIGHTARG = xid8, FUNCTION = twopc_mallory.eq_xid8);
CREATE OPERATOR twopc_mallory.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = twopc_mallory.eq_oid);
SET search_path = twopc_mallory, pg_catalog;
\i sql/include/twopc_commit_and_abort.sql
SELECT pg_catalog.count(*) AS in_doubt FROM consistency.in_doubt;
SELECT pg_catalog.count(*) > 0 AS metrics FROM consistency._metrics_twopc();
SELECT pg_catalog.count(*) > 0 AS integrity FROM consistency._integrity_twopc();
RESET search_path;
RESET ROLE;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'twopc_mallory';
SELECT count(*) AS evil_ran_as_another_role FROM public.twopc_evil_log
 WHERE who NOT IN ('twopc_rita', 'twopc_walt', 'twopc_mallory');
DROP SCHEMA twopc_mallory CASCADE;
DROP TABLE public.twopc_evil_log;

-- drop_participant: a reachable participant with nothing in doubt goes with its decision
-- rows; an unreachable one needs force.
SELECT consistency.drop_participant('self');
SELECT count(*) AS decisions_left FROM consistency.twopc_decisions;
SELECT pg_temp.error_of($$SELECT consistency.drop_participant('down')$$);
SELECT consistency.drop_participant('down', force => true);
SELECT count(*) AS participants_left FROM consistency.participants;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

DROP TABLE twopc_remote;
SELECT count(*) AS grants_left FROM consistency.twopc_participant_grants;
DROP ROLE twopc_reader_role, twopc_writer_role, twopc_admin_role, twopc_group, twopc_member,
  twopc_other, twopc_rita, twopc_walt, twopc_mallory;
