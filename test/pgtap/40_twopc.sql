-- Two-phase commit: the SQL surface and the semantics of remote statements bound to the
-- local transaction, against a loopback participant (this database). The whole file runs
-- in one transaction that is rolled back: the participant's transaction goes with it.
BEGIN;
SELECT plan(57);

-- The contract's objects.
SELECT has_function('consistency', 'add_participant', ARRAY['text', 'text']);
SELECT has_function('consistency', 'drop_participant', ARRAY['text', 'boolean']);
SELECT function_returns('consistency', 'grant_participant', ARRAY['text', 'regrole'], 'void');
SELECT function_returns('consistency', 'revoke_participant', ARRAY['text', 'regrole'], 'void');
SELECT has_view('consistency', 'participant_grants', 'view consistency.participant_grants');
SELECT columns_are('consistency', 'participant_grants', ARRAY['participant', 'role', 'granted_at', 'granted_by']);
SELECT function_returns('consistency', 'remote_exec', ARRAY['text', 'text'], 'bigint');
SELECT function_returns('consistency', 'remote_query', ARRAY['text', 'text'], 'setof jsonb');
SELECT has_view('consistency', 'in_doubt', 'view consistency.in_doubt');
SELECT columns_are('consistency', 'in_doubt', ARRAY['participant', 'gid', 'prepared_at', 'decision']);
SELECT col_type_is('consistency', 'in_doubt', 'prepared_at', 'timestamp with time zone', 'in_doubt.prepared_at is timestamptz');
SELECT function_returns('consistency', '_metrics_twopc', ARRAY[]::text[], 'setof record');
SELECT function_returns('consistency', '_integrity_twopc', ARRAY[]::text[], 'setof record');
SELECT is(current_setting('pg_consistency.twopc_timeout'), '30s', 'default per-call timeout is 30 s');
SELECT is(current_setting('pg_consistency.twopc_max_result_bytes'), '64MB', 'default result cap is 64 MB');
SELECT is((SELECT context FROM pg_settings WHERE name = 'pg_consistency.twopc_max_result_bytes'), 'superuser',
          'only superusers set the result cap');

-- Who may do what.
SELECT ok(has_function_privilege('consistency_admin', 'consistency.add_participant(text, text)', 'EXECUTE')
          AND NOT has_function_privilege('consistency_writer', 'consistency.add_participant(text, text)', 'EXECUTE'),
          'only admins add participants');
SELECT ok(has_function_privilege('consistency_writer', 'consistency.remote_exec(text, text)', 'EXECUTE')
          AND NOT has_function_privilege('consistency_reader', 'consistency.remote_exec(text, text)', 'EXECUTE'),
          'writers, not readers, run remote statements');
SELECT ok(has_column_privilege('consistency_admin', 'consistency.twopc_participants', 'conninfo', 'SELECT')
          AND NOT has_column_privilege('consistency_writer', 'consistency.twopc_participants', 'conninfo', 'SELECT')
          AND has_column_privilege('consistency_reader', 'consistency.twopc_participants', 'name', 'SELECT'),
          'conninfo is readable by admins only; names by readers');
SELECT ok(NOT has_table_privilege('consistency_admin', 'consistency.twopc_decisions', 'INSERT'),
          'nobody but the extension writes decisions');
SELECT ok(has_function_privilege('consistency_admin', 'consistency.grant_participant(text, regrole)', 'EXECUTE')
          AND has_function_privilege('consistency_admin', 'consistency.revoke_participant(text, regrole)', 'EXECUTE')
          AND NOT has_function_privilege('consistency_writer', 'consistency.grant_participant(text, regrole)', 'EXECUTE')
          AND NOT has_function_privilege('consistency_writer', 'consistency.revoke_participant(text, regrole)', 'EXECUTE'),
          'only admins grant and revoke participants');
SELECT ok(has_table_privilege('consistency_admin', 'consistency.participant_grants', 'SELECT')
          AND NOT has_table_privilege('consistency_writer', 'consistency.participant_grants', 'SELECT')
          AND NOT has_table_privilege('consistency_writer', 'consistency.twopc_participant_grants', 'SELECT')
          AND NOT has_table_privilege('consistency_admin', 'consistency.twopc_participant_grants', 'INSERT'),
          'admins read the grants; only the extension writes them');

\getenv pghost PGHOST
\getenv pgport PGPORT
SELECT lives_ok(format($$SELECT consistency.add_participant('self', 'host=%s port=%s dbname=%s user=%s')$$,
                       :'pghost', :'pgport', current_database(), current_user), 'loopback participant added');
SELECT lives_ok($$SELECT consistency.add_participant('down', 'host=127.0.0.1 port=1 dbname=x user=nobody')$$,
                'unreachable participant added (nothing is checked at add time)');
SELECT throws_ok($$SELECT consistency.add_participant('nouser', 'host=127.0.0.1 port=1 dbname=x')$$, 'CS002',
                 'conninfo of participant "nouser" names no remote role', 'a conninfo without user= is refused: CS002');

-- Errors carry the contract's SQLSTATEs.
SELECT throws_ok($$SELECT consistency.remote_exec('ghost', 'SELECT 1')$$, 'CS004',
                 'participant "ghost" does not exist', 'unknown participant: CS004');
SELECT throws_ok($$SELECT consistency.drop_participant('ghost')$$, 'CS004', NULL, 'dropping an unknown participant: CS004');
SELECT throws_like($$SELECT consistency.remote_exec('down', 'SELECT 1')$$,
                   'could not connect to participant "down"%', 'connect failure is reported');
SELECT throws_ok($$SELECT consistency.remote_exec('down', 'SELECT 1')$$, 'CS005', NULL, 'connect failure: CS005');
SELECT throws_ok($$SELECT consistency.remote_exec('self', 'ROLLBACK')$$, 'CS002', NULL,
                 'transaction control is refused: CS002');
SELECT throws_ok($$SELECT consistency.add_participant('self', 'host=x user=u')$$, 'CS002', NULL, 'duplicate name: CS002');
SELECT throws_ok($$SELECT consistency.grant_participant('ghost', 'consistency_writer')$$, 'CS004', NULL,
                 'granting an unknown participant: CS004');
SELECT throws_ok($$SELECT consistency.revoke_participant('ghost', 'consistency_writer')$$, 'CS004', NULL,
                 'revoking an unknown participant: CS004');
SELECT throws_ok($$SELECT consistency.remote_exec('self', ';COMMIT')$$, 'CS002', NULL,
                 'transaction control behind an empty statement is refused: CS002');

-- Remote statements run in the participant's transaction bound to this one.
SELECT is(consistency.remote_exec('self', 'CREATE TABLE twopc_tap (id int PRIMARY KEY, v text)'), 0::bigint,
          'DDL on the participant');
SELECT is(consistency.remote_exec('self', $$INSERT INTO twopc_tap SELECT g, 'v' || g FROM generate_series(1, 5) g$$),
          5::bigint, 'remote_exec returns the rows affected');
SELECT results_eq($$SELECT * FROM consistency.remote_query('self', 'SELECT id, v FROM twopc_tap WHERE id <= 2 ORDER BY id')$$,
                  $$VALUES ('{"id": 1, "v": "v1"}'::jsonb), ('{"id": 2, "v": "v2"}'::jsonb)$$,
                  'remote_query returns one jsonb object per row');
SELECT is((SELECT count(*) FROM pg_class WHERE relname = 'twopc_tap'), 0::bigint,
          'the participant''s uncommitted work is not visible locally');
SELECT is((SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_consistency' AND datname = current_database()
            AND state = 'idle in transaction'), 1::bigint,
          'one participant connection, idle in its transaction');

-- A failing statement caught in a subtransaction: the participant goes back to the savepoint.
SELECT throws_ok($$SELECT consistency.remote_exec('self', 'INSERT INTO twopc_tap VALUES (1, ''dup'')')$$, 'CS005',
                 'statement failed on participant "self"', 'remote unique violation: CS005');
SELECT is(consistency.remote_exec('self', 'UPDATE twopc_tap SET v = v || ''!'''), 5::bigint,
          'the participant''s transaction goes on after the caught error, earlier work intact');

SAVEPOINT before_six;
SELECT is(consistency.remote_exec('self', $$INSERT INTO twopc_tap VALUES (6, 'six')$$), 1::bigint, 'row 6 written');
ROLLBACK TO SAVEPOINT before_six;
SELECT results_eq($$SELECT * FROM consistency.remote_query('self', 'SELECT count(*) AS n FROM twopc_tap')$$,
                  $$VALUES ('{"n": 5}'::jsonb)$$, 'ROLLBACK TO SAVEPOINT undid row 6 on the participant');

SAVEPOINT nested_outer;
SAVEPOINT nested_inner;
SELECT is(consistency.remote_exec('self', $$INSERT INTO twopc_tap VALUES (7, 'seven')$$), 1::bigint, 'row 7 in a nested savepoint');
RELEASE SAVEPOINT nested_inner;
ROLLBACK TO SAVEPOINT nested_outer;
SELECT results_eq($$SELECT * FROM consistency.remote_query('self', 'SELECT count(*) AS n FROM twopc_tap')$$,
                  $$VALUES ('{"n": 5}'::jsonb)$$, 'rolling back the outer savepoint undid the released inner one');

-- JSON rendering of types.
SELECT is((SELECT * FROM consistency.remote_query('self',
             $$SELECT 1::int AS i, 2.50::numeric AS n, true AS b, NULL::int AS z, 'x'::text AS t, '[1,2]'::json AS j, ARRAY[1,2] AS a, 'Infinity'::float8 AS inf$$)),
          '{"i": 1, "n": 2.50, "b": true, "z": null, "t": "x", "j": [1, 2], "a": "{1,2}", "inf": "Infinity"}'::jsonb,
          'numbers, booleans, nulls and json keep their JSON type; arrays their text form');

-- The in_doubt view and the operations hooks answer.
SELECT is((SELECT count(*) FROM consistency.in_doubt WHERE participant = 'self'), 0::bigint,
          'nothing in doubt on the loopback participant');
SELECT ok((SELECT count(*) >= 3 FROM consistency._metrics_twopc()), 'metrics rows');
SELECT is((SELECT count(*) FROM consistency._integrity_twopc()), 5::bigint, 'five integrity checks');

-- Participant grants: a writer needs one; it reaches the members of the grantee.
CREATE ROLE twopc_tap_writer IN ROLE consistency_writer;
CREATE ROLE twopc_tap_team;
CREATE ROLE twopc_tap_member IN ROLE consistency_writer, twopc_tap_team;
SET LOCAL ROLE twopc_tap_writer;
SELECT throws_ok($$SELECT consistency.remote_exec('self', 'SELECT 1')$$, '42501',
                 'permission denied for participant "self"', 'a writer without a grant: 42501');
RESET ROLE;
SELECT lives_ok($$SELECT consistency.grant_participant('self', 'twopc_tap_writer')$$, 'grant to a writer');
SELECT lives_ok($$SELECT consistency.grant_participant('self', 'twopc_tap_team')$$, 'grant to a group role');
SELECT results_eq($$SELECT role::text FROM consistency.participant_grants WHERE participant = 'self' ORDER BY 1$$,
                  $$VALUES ('twopc_tap_team'), ('twopc_tap_writer')$$, 'the grants are listed');
SET LOCAL ROLE twopc_tap_writer;
SELECT is(consistency.remote_exec('self', 'SELECT 1'), 1::bigint, 'the granted writer runs statements');
RESET ROLE;
SET LOCAL ROLE twopc_tap_member;
SELECT is(consistency.remote_exec('self', 'SELECT 1'), 1::bigint, 'a member of the granted group runs statements');
RESET ROLE;
SELECT lives_ok($$SELECT consistency.revoke_participant('self', 'twopc_tap_team')$$, 'revoke from the group');
SET LOCAL ROLE twopc_tap_member;
SELECT throws_ok($$SELECT consistency.remote_exec('self', 'SELECT 1')$$, '42501', NULL,
                 'revoked: refused at the next call, in the same transaction');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
