-- Consistency levels: objects and shapes, who may call what, token comparisons and
-- combination, errors (CS002, CS004) and the waits on the primary.
BEGIN;
SELECT plan(27);

SELECT has_function('consistency', 'session_token', ARRAY[]::text[], 'session_token()');
SELECT function_returns('consistency', 'session_token', ARRAY[]::text[], 'text');
SELECT volatility_is('consistency', 'session_token', ARRAY[]::text[], 'volatile', 'session_token is volatile');
SELECT function_returns('consistency', 'max_token', ARRAY['text', 'text'], 'text');
SELECT volatility_is('consistency', 'max_token', ARRAY['text', 'text'], 'stable',
  'max_token is stable (it refuses tokens of other clusters and databases)');
SELECT function_returns('consistency', 'wait_for_token', ARRAY['text', 'interval', 'text'], 'boolean');
SELECT is((SELECT prokind::text || ':' || pg_get_function_arguments(oid) FROM pg_proc
            WHERE oid = 'consistency.await_token(text,interval,text,boolean)'::regprocedure),
  'p:IN token text, IN timeout interval DEFAULT ''00:00:05''::interval, IN subscription text DEFAULT NULL::text, INOUT reached boolean DEFAULT NULL::boolean',
  'await_token is a procedure with the contract''s arguments and defaults');
SELECT is((SELECT pg_get_function_arguments('consistency.wait_for_token(text,interval,text)'::regprocedure)),
  'token text, timeout interval DEFAULT ''00:00:05''::interval, subscription text DEFAULT NULL::text',
  'wait_for_token has the contract''s arguments and defaults');
SELECT has_table('consistency', 'published_horizon', 'the published read horizon');
SELECT is((SELECT count(*)::int FROM consistency.published_horizon), 1, 'one row');
SELECT is(current_setting('pg_consistency.replay_poll_interval'), '1ms', 'replay_poll_interval defaults to 1 ms');
SELECT is(current_setting('pg_consistency.horizon_publish_interval'), '100ms',
  'horizon_publish_interval defaults to 100 ms');

-- Privileges: readers (and so writers and admins) may take and wait for tokens; PUBLIC not.
CREATE ROLE pt_cs_reader IN ROLE consistency_reader;
CREATE ROLE pt_cs_nobody;
SELECT ok(has_function_privilege('pt_cs_reader', 'consistency.session_token()', 'EXECUTE')
          AND has_function_privilege('pt_cs_reader', 'consistency.max_token(text,text)', 'EXECUTE')
          AND has_function_privilege('pt_cs_reader', 'consistency.wait_for_token(text,interval,text)', 'EXECUTE')
          AND has_function_privilege('pt_cs_reader', 'consistency.await_token(text,interval,text,boolean)', 'EXECUTE')
          AND has_table_privilege('pt_cs_reader', 'consistency.published_horizon', 'SELECT'),
  'consistency_reader may call every function and read the horizon');
SELECT ok(NOT has_function_privilege('pt_cs_nobody', 'consistency.session_token()', 'EXECUTE')
          AND NOT has_function_privilege('pt_cs_nobody', 'consistency.wait_for_token(text,interval,text)', 'EXECUTE')
          AND NOT has_function_privilege('pt_cs_nobody', 'consistency.await_token(text,interval,text,boolean)', 'EXECUTE')
          AND NOT has_table_privilege('pt_cs_nobody', 'consistency.published_horizon', 'SELECT'),
  'a role outside the extension''s roles may not');
SELECT ok(NOT has_table_privilege('pt_cs_reader', 'consistency.published_horizon', 'UPDATE'),
  'nobody but the worker advances the horizon');

SET LOCAL ROLE pt_cs_reader;
SELECT matches(consistency.session_token(), '^pgc1-[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{16}-[0-9a-f]{16}$',
  'a reader takes a token');
SELECT is(consistency.wait_for_token(consistency.session_token(), '0'), true,
  'a token of this primary is reached at once');
RESET ROLE;
SET LOCAL ROLE pt_cs_nobody;
SELECT throws_ok('SELECT consistency.session_token()', '42501', NULL, 'a role without rights may not take a token');
RESET ROLE;

-- Comparisons: a token taken after an append covers the one before it.
CREATE TEMP TABLE toks AS SELECT consistency.session_token() AS before;
SELECT consistency.append_event('pgtapcs-1', NULL, 'E', '{}');
ALTER TABLE toks ADD COLUMN after text;
UPDATE toks SET after = consistency.session_token();
SELECT is((SELECT consistency.max_token(before, after) FROM toks), (SELECT after FROM toks),
  'max_token(earlier, later) is the later token');
SELECT is((SELECT consistency.max_token(after, before) FROM toks), (SELECT after FROM toks),
  'in either order');
SELECT isnt((SELECT before FROM toks), (SELECT after FROM toks), 'the append moved the token');
SELECT is(consistency.max_token(NULL, NULL), NULL, 'no token and no token: no token');

-- Errors.
SELECT throws_ok($$SELECT consistency.wait_for_token('pgc1-x')$$, 'CS002', NULL, 'malformed token: CS002');
SELECT throws_ok($$SELECT consistency.max_token('a', NULL)$$, 'CS002', NULL, 'max_token of a malformed token: CS002');
SELECT throws_ok($$SELECT consistency.wait_for_token(consistency.session_token(), '1 s', 'pgtap_no_such_sub')$$,
  'CS004', 'subscription "pgtap_no_such_sub" does not exist', 'unknown subscription: CS004');
SELECT throws_ok($$SELECT consistency.wait_for_token(consistency.session_token(), NULL)$$, 'CS002',
  'timeout must not be NULL', 'NULL timeout: CS002');
SELECT throws_ok($$CALL consistency.await_token('junk')$$, 'CS002', NULL, 'await_token: malformed token, CS002');

SELECT * FROM finish();
ROLLBACK;
