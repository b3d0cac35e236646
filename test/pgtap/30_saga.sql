-- Sagas: the objects and their privileges, and the semantics of the state machine run
-- through the SQL API (consistency._advance_sagas() plays the worker inside this
-- transaction): compensation in reverse order, retries and backoff, saga and step
-- timeouts, data merging, definition versions, the audit stream, operators.
BEGIN;
SELECT plan(108);
-- One step per transaction unless said otherwise (see the chaining test at the end).
SET LOCAL pg_consistency.saga_chain_steps = 1;

-- Objects.
SELECT has_table('consistency', 'saga_definitions', 'table saga_definitions');
SELECT has_table('consistency', 'saga_instances', 'table saga_instances');
SELECT has_view('consistency', 'sagas', 'view sagas');
SELECT columns_are('consistency', 'sagas',
  ARRAY['id', 'name', 'definition_version', 'status', 'current_step', 'attempts', 'data',
        'last_error', 'created_at', 'updated_at'], 'view sagas has the contract''s columns');
SELECT function_returns('consistency', 'define_saga', ARRAY['text', 'jsonb'], 'integer');
SELECT function_returns('consistency', 'start_saga', ARRAY['text', 'jsonb', 'text'], 'uuid');
SELECT function_returns('consistency', 'complete_step', ARRAY['uuid', 'text', 'jsonb'], 'void');
SELECT function_returns('consistency', 'fail_step', ARRAY['uuid', 'text', 'text'], 'void');
SELECT function_returns('consistency', 'retry_saga', ARRAY['uuid'], 'void');
SELECT function_returns('consistency', 'abort_saga', ARRAY['uuid', 'text'], 'void');
SELECT function_returns('consistency', 'saga_status', ARRAY['uuid'], 'setof record');
SELECT has_function('consistency', '_metrics_saga', ARRAY[]::text[]);
SELECT has_function('consistency', '_integrity_saga', ARRAY[]::text[]);

-- Privileges: readers read, writers define/start/reply, admins operate.
SELECT ok(has_function_privilege('consistency_writer', 'consistency.start_saga(text, jsonb, text)', 'EXECUTE'), 'writer may start');
SELECT ok(has_function_privilege('consistency_writer', 'consistency.define_saga(text, jsonb)', 'EXECUTE'), 'writer may define');
SELECT ok(has_function_privilege('consistency_writer', 'consistency.complete_step(uuid, text, jsonb)', 'EXECUTE'), 'writer may reply');
SELECT ok(NOT has_function_privilege('consistency_reader', 'consistency.start_saga(text, jsonb, text)', 'EXECUTE'), 'reader may not start');
SELECT ok(has_function_privilege('consistency_reader', 'consistency.saga_status(uuid)', 'EXECUTE'), 'reader may ask status');
SELECT ok(has_table_privilege('consistency_reader', 'consistency.sagas', 'SELECT'), 'reader may read the view');
SELECT ok(NOT has_function_privilege('consistency_writer', 'consistency.abort_saga(uuid, text)', 'EXECUTE'), 'writer may not abort');
SELECT ok(has_function_privilege('consistency_admin', 'consistency.retry_saga(uuid)', 'EXECUTE'), 'admin may retry');
SELECT ok(NOT has_table_privilege('consistency_admin', 'consistency.saga_instances', 'UPDATE'), 'nobody but the extension writes saga rows');
SELECT ok(NOT has_table_privilege('consistency_admin', 'consistency.saga_definitions', 'INSERT'), 'nor definitions');
SELECT ok(NOT has_function_privilege('consistency_admin', 'consistency._advance_sagas(int)', 'EXECUTE'), '_advance_sagas is superuser-only');

-- A flow of four steps whose effects are logged; step c's failure is driven by data.
CREATE TABLE public.saga_log (seq serial, saga uuid, entry text, role name DEFAULT current_user);
CREATE FUNCTION public.saga_do(saga_id uuid, data jsonb, what text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.saga_log (saga, entry) VALUES (saga_id, what);
  IF data->'fail' ? what THEN RAISE EXCEPTION '% failed', what; END IF;
  IF data->'sleep' ? what THEN PERFORM pg_sleep(5); END IF;
  RETURN jsonb_build_object(what, true, 'last', what);
END $$;
CREATE FUNCTION public.step_a(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT public.saga_do($1, $2, 'a') $$;
CREATE FUNCTION public.step_b(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT public.saga_do($1, $2, 'b') $$;
CREATE FUNCTION public.step_c(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT public.saga_do($1, $2, 'c') $$;
CREATE FUNCTION public.step_d(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT public.saga_do($1, $2, 'd') $$;
CREATE FUNCTION public.undo_a(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT public.saga_do($1, $2, 'undo_a') $$;
CREATE FUNCTION public.undo_c(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT public.saga_do($1, $2, 'undo_c') $$;
CREATE FUNCTION public.null_step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;

SELECT is(consistency.define_saga('abcd', '{"steps": [
  {"name": "a", "action": {"function": "public.step_a"}, "compensation": {"function": "public.undo_a"}, "retry": {"max_attempts": 1}},
  {"name": "b", "action": {"function": "public.step_b"}, "retry": {"max_attempts": 1}},
  {"name": "c", "action": {"function": "public.step_c"}, "compensation": {"function": "public.undo_c"}, "retry": {"max_attempts": 1}},
  {"name": "d", "action": {"function": "public.step_d"}, "retry": {"max_attempts": 2, "backoff": "0 ms"}}]}'),
  1, 'first definition is version 1');

-- Helper: advance until nothing is due (bounded), return how many steps ran.
CREATE FUNCTION pg_temp.drain() RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int := 0; k int;
BEGIN
  FOR i IN 1 .. 50 LOOP
    k := consistency._advance_sagas();
    EXIT WHEN k = 0;
    n := n + k;
  END LOOP;
  RETURN n;
END $$;

-- Success: every step once, outputs merged (later keys win), audit stream in order.
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
INSERT INTO ids SELECT 'ok', consistency.start_saga('abcd', '{"input": 1}');
SELECT is(pg_temp.drain(), 4, 'four steps ran');
SELECT is(status, 'completed', 'saga completed') FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'ok'));
SELECT is(data, '{"a": true, "b": true, "c": true, "d": true, "last": "d", "input": 1}'::jsonb, 'outputs merged into data, later keys win')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'ok'));
SELECT results_eq($$SELECT entry FROM public.saga_log WHERE saga = (SELECT id FROM ids WHERE name = 'ok') ORDER BY seq$$,
                  ARRAY['a', 'b', 'c', 'd'], 'steps ran once each, in order');
SELECT results_eq($$SELECT type FROM consistency.read_stream('saga-' || (SELECT id FROM ids WHERE name = 'ok')) ORDER BY version$$,
                  ARRAY['SagaStarted', 'StepSucceeded', 'StepSucceeded', 'StepSucceeded', 'StepSucceeded', 'SagaCompleted'],
                  'every transition is in the audit stream, in order');
SELECT is((SELECT data -> 'output' FROM consistency.read_stream('saga-' || (SELECT id FROM ids WHERE name = 'ok')) WHERE version = 3),
          '{"b": true, "last": "b"}'::jsonb, 'a step''s output is in its audit event');
SELECT is((SELECT data -> 'input' FROM consistency.read_stream('saga-' || (SELECT id FROM ids WHERE name = 'ok')) WHERE version = 1),
          '{"input": 1}'::jsonb, 'the input is in the start event');

-- The last step fails for good: completed steps compensated in reverse order, steps
-- without compensation skipped, the failed step itself not compensated.
INSERT INTO ids SELECT 'd_fails', consistency.start_saga('abcd', '{"fail": "d"}');
SELECT is(pg_temp.drain(), 7, 'four steps, one retry, two compensations');
SELECT results_eq($$SELECT entry FROM public.saga_log WHERE saga = (SELECT id FROM ids WHERE name = 'd_fails') ORDER BY seq$$,
                  ARRAY['a', 'b', 'c', 'undo_c', 'undo_a'],
                  'compensations ran in reverse order: c, then a (b has none); d''s own attempts rolled back');
SELECT is(status || ' ' || coalesce(current_step, '-') || ' ' || last_error, 'compensated - d failed', 'compensated with the cause')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'd_fails'));
SELECT results_eq($$SELECT type || coalesce(' ' || (data->>'step'), '') FROM consistency.read_stream('saga-' || (SELECT id FROM ids WHERE name = 'd_fails')) WHERE version > 4 ORDER BY version$$,
                  ARRAY['StepFailed d', 'StepFailed d', 'CompensationStarted', 'CompensationSucceeded c',
                        'CompensationSucceeded a', 'SagaCompensated'],
                  'the audit stream tells the same story');

-- The first step failing leaves nothing to compensate.
INSERT INTO ids SELECT 'a_fails', consistency.start_saga('abcd', '{"fail": "a"}');
SELECT is(pg_temp.drain(), 1, 'one attempt');
SELECT is(status, 'compensated', 'nothing to undo: compensated at once') FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'a_fails'));
SELECT is((SELECT count(*)::int FROM public.saga_log WHERE saga = (SELECT id FROM ids WHERE name = 'a_fails')), 0,
          'the failed attempt left no effect');

-- A compensation that fails is retried; when it cannot finish the saga is failed.
SELECT is(consistency.define_saga('undo_breaks', '{"steps": [
  {"name": "a", "action": {"function": "public.step_a"}, "compensation": {"function": "public.undo_a"}, "retry": {"max_attempts": 2, "backoff": "0 ms"}},
  {"name": "c", "action": {"function": "public.step_c"}, "retry": {"max_attempts": 1}}]}'), 1, 'another saga, version 1');
INSERT INTO ids SELECT 'undo_breaks', consistency.start_saga('undo_breaks', '{"fail": ["c", "undo_a"]}');
SELECT is(pg_temp.drain(), 4, 'a, c fails, two compensation attempts');
SELECT is(status || ' ' || current_step || ' ' || attempts, 'failed a 2', 'compensation exhausted: failed')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'undo_breaks'));
SELECT throws_ok(format('SELECT consistency.complete_step(%L, %L)', (SELECT id FROM ids WHERE name = 'undo_breaks'), 'a'),
                 'CS003', NULL, 'no reply accepted by a failed saga');
-- An operator may give up on it.
SELECT lives_ok(format('SELECT consistency.abort_saga(%L, %L)', (SELECT id FROM ids WHERE name = 'undo_breaks'), 'refunded by hand'),
                'a failed saga can be aborted');
SELECT is(status || ' ' || last_error, 'aborted aborted: refunded by hand', 'aborted, with the reason')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'undo_breaks'));

-- Retries back off exponentially with jitter: 1 s, then 2 s (+/- 20 %).
SELECT is(consistency.define_saga('backoff', '{"steps": [
  {"name": "a", "action": {"function": "public.step_a"}, "retry": {"max_attempts": 4, "backoff": "1 second", "max_backoff": "1 minute"}}]}'), 1, 'backoff saga');
INSERT INTO ids SELECT 'backoff', consistency.start_saga('backoff', '{"fail": "a"}');
SELECT is(consistency._advance_sagas(), 1, 'attempt 1');
SELECT ok((SELECT next_run_at - clock_timestamp() BETWEEN interval '700 ms' AND interval '1200 ms'
             FROM consistency.saga_instances WHERE id = (SELECT id FROM ids WHERE name = 'backoff')),
          'next attempt in about 1 s');
SELECT is(consistency._advance_sagas(), 0, 'nothing due while backing off');
SELECT lives_ok(format('SELECT consistency.retry_saga(%L)', (SELECT id FROM ids WHERE name = 'backoff')), 'retry_saga cuts the wait');
SELECT is(consistency._advance_sagas(), 1, 'attempt 2 at once');
SELECT ok((SELECT next_run_at - clock_timestamp() BETWEEN interval '1500 ms' AND interval '2400 ms'
             FROM consistency.saga_instances WHERE id = (SELECT id FROM ids WHERE name = 'backoff')),
          'next attempt in about 2 s');
SELECT results_eq($$SELECT (data->>'retry_in_ms')::int BETWEEN 800 AND 1200 FROM consistency.read_stream('saga-' || (SELECT id FROM ids WHERE name = 'backoff')) WHERE type = 'StepFailed' AND (data->>'attempt')::int = 1$$,
                  ARRAY[true], 'the audit event records the chosen delay');
SELECT is(attempts, 2, 'two attempts so far') FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'backoff'));

-- A step timeout cancels a function step that runs too long.
SELECT is(consistency.define_saga('slow', '{"steps": [
  {"name": "a", "action": {"function": "public.step_a"}, "compensation": {"function": "public.undo_a"}},
  {"name": "b", "action": {"function": "public.step_b"}, "timeout": "100 ms", "retry": {"max_attempts": 1}}]}'), 1, 'slow saga');
INSERT INTO ids SELECT 'slow', consistency.start_saga('slow', '{"sleep": "b"}');
SELECT is(pg_temp.drain(), 3, 'a, b (timed out), undo_a');
SELECT is(status || ' ' || last_error, 'compensated step function public.step_b ran past its time limit of 100 ms: canceling statement due to statement timeout', 'the step was cancelled by its timeout')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'slow'));
SELECT lives_ok('SELECT pg_sleep(0.2)', 'the session goes on afterwards, uncancelled');

-- The saga's own timeout: the current step fails for good, compensation follows.
SELECT is(consistency.define_saga('deadline', '{"steps": [
  {"name": "a", "action": {"function": "public.step_a"}, "compensation": {"function": "public.undo_a"}},
  {"name": "b", "action": {"function": "public.step_b"}, "retry": {"max_attempts": 5, "backoff": "10 s"}}], "timeout": "300 ms"}'), 1, 'deadline saga');
INSERT INTO ids SELECT 'deadline', consistency.start_saga('deadline', '{"fail": "b"}');
SELECT is(consistency._advance_sagas(), 1, 'a');
SELECT is(consistency._advance_sagas(), 1, 'b attempt 1');
SELECT ok((SELECT next_run_at <= created_at + interval '300 ms' FROM consistency.saga_instances
            WHERE id = (SELECT id FROM ids WHERE name = 'deadline')), 'a retry after the deadline is due at the deadline');
-- Deliberate: the saga's 300 ms deadline passes (the clock, not another process).
SELECT pg_sleep(0.35);
SELECT is(pg_temp.drain(), 2, 'timeout, then undo_a');
SELECT is(status || ' ' || last_error, 'compensated saga timed out after 300 ms in step "b"', 'timed out in step b')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'deadline'));
SELECT ok(EXISTS (SELECT 1 FROM consistency.read_stream('saga-' || (SELECT id FROM ids WHERE name = 'deadline')) WHERE type = 'SagaTimedOut'),
          'the timeout is in the audit stream');

-- A step returning NULL merges nothing.
SELECT is(consistency.define_saga('nulls', '{"steps": [{"name": "n", "action": {"function": "public.null_step"}}]}'), 1, 'nulls saga');
INSERT INTO ids SELECT 'nulls', consistency.start_saga('nulls', '{"keep": "me"}');
SELECT is(pg_temp.drain(), 1, 'one step');
SELECT is(status || ' ' || data::text, 'completed {"keep": "me"}', 'data unchanged by a NULL result')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'nulls'));

-- Definition versions: new versions for new sagas, running sagas keep theirs.
INSERT INTO ids SELECT 'v1', consistency.start_saga('abcd', '{}');
SELECT is(consistency.define_saga('abcd', '{"steps": [{"name": "only", "action": {"function": "public.step_d"}}]}'), 2, 'changed definition: version 2');
SELECT is(consistency.define_saga('abcd', '{"steps": [{"name": "only", "action": {"function": "public.step_d"}}]}'), 2, 'same again: still version 2');
INSERT INTO ids SELECT 'v2', consistency.start_saga('abcd', '{}');
SELECT is(pg_temp.drain(), 5, 'v1 saga: 4 steps, v2 saga: 1 step');
SELECT results_eq($$SELECT definition_version || ' ' || status FROM consistency.sagas WHERE id IN (SELECT id FROM ids WHERE name IN ('v1', 'v2')) ORDER BY definition_version$$,
                  ARRAY['1 completed', '2 completed'], 'each saga ran the version it started with');

-- Idempotent start.
SELECT is(consistency.start_saga('abcd', '{"x": 1}', 'key-1'), consistency.start_saga('abcd', '{"x": 1}', 'key-1'),
          'same key: same saga');
SELECT isnt(consistency.start_saga('abcd', '{"x": 1}', 'key-2'), consistency.start_saga('abcd', '{"x": 1}', 'key-3'),
            'different keys: different sagas');
SELECT throws_ok($$SELECT consistency.start_saga('abcd', '{"x": 2}', 'key-1')$$, 'CS002', NULL, 'same key, other input: refused');

-- Steps run as the role that defined the saga.
CREATE ROLE saga_pgtap_writer IN ROLE consistency_writer;
GRANT INSERT, SELECT ON public.saga_log TO saga_pgtap_writer;
GRANT USAGE ON SEQUENCE public.saga_log_seq_seq TO saga_pgtap_writer;
GRANT INSERT, SELECT ON ids TO saga_pgtap_writer;
SET LOCAL ROLE saga_pgtap_writer;
SELECT is(consistency.define_saga('as_writer', '{"steps": [{"name": "a", "action": {"function": "public.step_a"}}]}'), 1, 'a writer defines a saga');
INSERT INTO ids SELECT 'as_writer', consistency.start_saga('as_writer', '{}');
RESET ROLE;
SELECT is(pg_temp.drain(), 4, 'the writer''s saga and the three keyed ones ran');
SELECT is((SELECT role::text FROM public.saga_log WHERE saga = (SELECT id FROM ids WHERE name = 'as_writer')),
          'saga_pgtap_writer', 'the step ran as the defining writer');

-- Who may answer a saga: the role that started it, roles with the privileges of the role
-- that defined it (a reply consumer created by a member) or started it, members of
-- consistency_admin; everyone else gets 42501. Every reader may read every saga.
CREATE ROLE saga_pgtap_other IN ROLE consistency_writer;
CREATE ROLE saga_pgtap_member IN ROLE saga_pgtap_writer;
CREATE ROLE saga_pgtap_admin IN ROLE consistency_admin;
CREATE ROLE saga_pgtap_reader IN ROLE consistency_reader;
GRANT SELECT, INSERT ON ids TO saga_pgtap_other, saga_pgtap_member, saga_pgtap_admin, saga_pgtap_reader;
SET LOCAL ROLE saga_pgtap_writer;
SELECT is(consistency.define_saga('cmd', '{"steps": [
  {"name": "ship", "action": {"topic": "t.commands", "command": "Ship"}, "timeout": "1 hour"},
  {"name": "bill", "action": {"topic": "t.commands", "command": "Bill"}, "timeout": "1 hour"}]}'), 1, 'a writer defines a saga of commands');
INSERT INTO ids SELECT 'cmd_writer', consistency.start_saga('cmd', '{}');
SET LOCAL ROLE saga_pgtap_other;
INSERT INTO ids SELECT 'cmd_other', consistency.start_saga('cmd', '{}');
RESET ROLE;
SELECT is(pg_temp.drain(), 2, 'both sagas sent their first command');
SELECT results_eq($$SELECT s.started_by::regrole::text FROM consistency.saga_instances s JOIN ids USING (id)
                    WHERE ids.name IN ('cmd_writer', 'cmd_other') ORDER BY ids.name$$,
                  ARRAY['saga_pgtap_other', 'saga_pgtap_writer'], 'the starter is recorded');
SET LOCAL ROLE saga_pgtap_other;
SELECT throws_ok(format('SELECT consistency.complete_step(%L, %L)', (SELECT id FROM ids WHERE name = 'cmd_writer'), 'ship'),
                 '42501', NULL, 'another writer may not answer a saga');
SELECT throws_ok(format('SELECT consistency.fail_step(%L, %L, %L)', (SELECT id FROM ids WHERE name = 'cmd_writer'), 'ship', 'x'),
                 '42501', NULL, 'nor fail its step');
SELECT lives_ok(format('SELECT consistency.complete_step(%L, %L)', (SELECT id FROM ids WHERE name = 'cmd_other'), 'ship'),
                'the starter answers its own saga of another role''s definition');
SELECT is(status, 'running', 'and reads any saga') FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'cmd_writer'));
SET LOCAL ROLE saga_pgtap_member;
SELECT lives_ok(format('SELECT consistency.complete_step(%L, %L)', (SELECT id FROM ids WHERE name = 'cmd_writer'), 'ship'),
                'a member of the defining role answers');
RESET ROLE;
SELECT is(pg_temp.drain(), 2, 'both sent their second command');
SET LOCAL ROLE saga_pgtap_reader;
SELECT throws_ok(format('SELECT consistency.complete_step(%L, %L)', (SELECT id FROM ids WHERE name = 'cmd_writer'), 'bill'),
                 '42501', NULL, 'a reader may not answer');
SET LOCAL ROLE saga_pgtap_admin;
SELECT lives_ok(format('SELECT consistency.complete_step(%L, %L)', (SELECT id FROM ids WHERE name = 'cmd_writer'), 'bill'),
                'an admin answers any saga');
SELECT lives_ok(format('SELECT consistency.abort_saga(%L, %L)', (SELECT id FROM ids WHERE name = 'cmd_other'), 'stop'),
                'and aborts any saga');
RESET ROLE;
SELECT results_eq($$SELECT s.status FROM consistency.sagas s JOIN ids USING (id)
                    WHERE ids.name IN ('cmd_writer', 'cmd_other') ORDER BY ids.name$$,
                  ARRAY['aborted', 'completed'], 'the answers that were allowed took effect');

-- A function step without a timeout of its own is limited by pg_consistency.saga_step_timeout;
-- what it changes in its session (search_path included) does not outlive it.
SELECT is(current_setting('pg_consistency.saga_step_timeout'), '30s', 'the default step time limit is 30 s');
CREATE FUNCTION public.path_changer(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'public, pg_catalog', false);
  RETURN pg_catalog.jsonb_build_object('path', pg_catalog.current_setting('search_path'));
END $$;
SELECT is(consistency.define_saga('limits', '{"steps": [
  {"name": "p", "action": {"function": "public.path_changer"}},
  {"name": "b", "action": {"function": "public.step_b"}, "retry": {"max_attempts": 1}}]}'), 1, 'limits saga');
INSERT INTO ids SELECT 'limits', consistency.start_saga('limits', '{"sleep": "b"}');
SET LOCAL pg_consistency.saga_step_timeout = '150ms';
SET LOCAL search_path = pg_catalog, public;
SELECT is(pg_temp.drain(), 2, 'p, then b (timed out)');
SELECT is(current_setting('search_path'), 'pg_catalog, public', 'the session''s search_path is untouched');
SET LOCAL pg_consistency.saga_step_timeout = '30s';
SELECT is(status || ' ' || (data->>'path') || ' ' || last_error,
          'compensated public, pg_catalog step function public.step_b ran past its time limit of 150 ms: canceling statement due to statement timeout',
          'a step without a timeout is cancelled at saga_step_timeout; the path it set held inside it only')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'limits'));

-- Unknown objects and illegal transitions.
SELECT throws_ok($$SELECT consistency.start_saga('nope', '{}')$$, 'CS004', 'saga definition "nope" does not exist', 'unknown definition');
SELECT throws_ok($$SELECT * FROM consistency.saga_status(gen_random_uuid())$$, 'CS004', NULL, 'unknown saga');
SELECT throws_ok(format('SELECT consistency.retry_saga(%L)', (SELECT id FROM ids WHERE name = 'ok')), 'CS003', NULL, 'completed sagas cannot be retried');
SELECT throws_ok(format('SELECT consistency.abort_saga(%L, %L)', (SELECT id FROM ids WHERE name = 'ok'), 'x'), 'CS003', NULL, 'nor aborted');
SELECT throws_ok($$SELECT consistency.define_saga('x', '{"steps": [{"name": "a", "action": {"function": "public.step_a"}, "retry": {"max_attempts": 0}}]}')$$,
                 'CS002', NULL, 'invalid definition');

-- Chaining: with saga_chain_steps = 4 a saga runs what is due at once in one
-- transaction - a step, its immediate retry, the compensation - and its row and audit
-- stream are written once.
SET LOCAL pg_consistency.saga_chain_steps = 4;
SELECT is(consistency.define_saga('chain3', '{"steps": [
  {"name": "a", "action": {"function": "public.step_a"}, "compensation": {"function": "public.undo_a"}},
  {"name": "b", "action": {"function": "public.step_b"}, "retry": {"max_attempts": 2, "backoff": "0 ms"}}]}'), 1, 'chain3 saga');
INSERT INTO ids SELECT 'chained', consistency.start_saga('chain3', '{"fail": "b"}');
SELECT is(consistency._advance_sagas(), 1, 'one saga advanced once');
SELECT is(status || ' ' || (data->>'last'), 'compensated undo_a', 'a, b twice, undo_a: all in that call')
  FROM consistency.saga_status((SELECT id FROM ids WHERE name = 'chained'));
SELECT results_eq($$SELECT entry FROM public.saga_log WHERE saga = (SELECT id FROM ids WHERE name = 'chained') ORDER BY seq$$,
                  ARRAY['a', 'undo_a'], 'b''s failed attempts rolled back, the rest took effect');
SELECT results_eq($$SELECT type FROM consistency.read_stream('saga-' || (SELECT id FROM ids WHERE name = 'chained')) ORDER BY version$$,
                  ARRAY['SagaStarted', 'StepSucceeded', 'StepFailed', 'StepFailed', 'CompensationStarted',
                        'CompensationSucceeded', 'SagaCompensated'], 'every transition audited, in order');
SET LOCAL pg_consistency.saga_chain_steps = 1;

-- Operations.
SELECT is((SELECT count(*)::int FROM consistency._metrics_saga() WHERE metric = 'pg_consistency_sagas'), 6, 'one gauge per status');
SELECT ok((SELECT bool_and(ok) FROM consistency._integrity_saga()), 'integrity checks pass');

SELECT * FROM finish();
ROLLBACK;
