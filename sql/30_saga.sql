-- Sagas: definitions and their validation, start and idempotency, replies, operator
-- functions, status, view, privileges. The regression database has no worker:
-- consistency._advance_sagas() advances due sagas inside this session's transactions,
-- exactly as a saga worker does.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_consistency;
DROP SCHEMA IF EXISTS shop CASCADE;
DROP ROLE IF EXISTS saga_alice;
DROP ROLE IF EXISTS saga_bob;
DROP ROLE IF EXISTS saga_reader;
DROP ROLE IF EXISTS saga_operator;
DROP SCHEMA IF EXISTS saga_mallory CASCADE;
DROP SCHEMA IF EXISTS saga_fn CASCADE;
DROP SCHEMA IF EXISTS saga_fn_early CASCADE;
DROP ROLE IF EXISTS saga_mallory;
DROP ROLE IF EXISTS saga_alice_app;
DROP FUNCTION IF EXISTS public.refuse_progress() CASCADE;
RESET client_min_messages;
-- One step per transaction (per _advance_sagas call), to follow each step; chaining is
-- shown at the end.
SET pg_consistency.saga_chain_steps = 1;

\i sql/include/helpers.sql

-- The example: an order flow whose steps leave rows in shop.effects.
CREATE SCHEMA shop;
CREATE TABLE shop.stock (sku text PRIMARY KEY, available int NOT NULL CHECK (available >= 0));
CREATE TABLE shop.effects (seq bigserial PRIMARY KEY, saga_id uuid NOT NULL, effect text NOT NULL,
                           role name NOT NULL DEFAULT current_user);
CREATE SEQUENCE shop.release_calls;
INSERT INTO shop.stock VALUES ('apple', 10);

CREATE FUNCTION shop.reserve(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  UPDATE shop.stock SET available = available - (data->>'qty')::int WHERE sku = data->>'sku';
  INSERT INTO shop.effects (saga_id, effect) VALUES (saga_id, 'reserve');
  RETURN jsonb_build_object('reserved', (data->>'qty')::int);
END $$;
-- Fails its first (data->>'release_failures') calls, counted by a sequence (which
-- a rolled-back attempt does not reset).
CREATE FUNCTION shop.release(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('shop.release_calls') <= coalesce((data->>'release_failures')::int, 0) THEN
    RAISE EXCEPTION 'warehouse unavailable';
  END IF;
  UPDATE shop.stock SET available = available + (data->>'reserved')::int WHERE sku = data->>'sku';
  INSERT INTO shop.effects (saga_id, effect) VALUES (saga_id, 'release');
  RETURN '{"released": true}';
END $$;
CREATE FUNCTION shop.pay(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO shop.effects (saga_id, effect) VALUES (saga_id, 'pay');
  IF data->>'card' = 'declined' THEN
    RAISE EXCEPTION 'card declined' USING DETAIL = 'issuer said no';
  END IF;
  RETURN '{"payment": "p-1"}';
END $$;
CREATE FUNCTION shop.refund(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO shop.effects (saga_id, effect) VALUES (saga_id, 'refund');
  RETURN NULL;  -- nothing to merge
END $$;
CREATE FUNCTION shop.complete(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO shop.effects (saga_id, effect) VALUES (saga_id, 'complete');
  RETURN '{"status": "completed"}';
END $$;
-- Wrong shapes, for validation.
CREATE FUNCTION shop.returns_int(saga_id uuid, data jsonb) RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION shop.returns_set(saga_id uuid, data jsonb) RETURNS SETOF jsonb LANGUAGE sql AS 'SELECT $2';
CREATE PROCEDURE shop.a_procedure(saga_id uuid, data jsonb) LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION shop.returns_array(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT ''[1]''::jsonb';

\set flow '{"steps": [{"name": "reserve_inventory", "action": {"function": "shop.reserve"}, "compensation": {"function": "shop.release"}, "retry": {"max_attempts": 3, "backoff": "0 ms"}}, {"name": "process_payment", "action": {"function": "shop.pay"}, "compensation": {"function": "shop.refund"}, "retry": {"max_attempts": 2, "backoff": "0 ms"}}, {"name": "complete_order", "action": {"function": "shop.complete"}}], "timeout": "5 minutes"}'

-- Definitions: versions start at 1; the same definition again is the same version.
SELECT consistency.define_saga('order', :'flow') AS v1;
SELECT consistency.define_saga('order', :'flow') AS same_again;
SELECT name, version, (compiled -> 'steps' -> 0 -> 'action') - 'oid' AS action,
       (compiled #>> '{steps,0,action,oid}')::oid = 'shop.reserve(uuid, jsonb)'::regprocedure AS stored_by_oid,
       compiled -> 'steps' -> 0 -> 'retry' AS retry, compiled -> 'timeout_ms' AS timeout_ms,
       owner::regrole = current_user::regrole AS owned_by_definer
  FROM consistency.saga_definitions ORDER BY name, version;
-- Unqualified names are resolved with the definer's search_path and stored qualified.
SET search_path = shop, public;
SELECT consistency.define_saga('short', '{"steps": [{"name": "s", "action": {"function": "complete"}}]}');
RESET search_path;
SELECT compiled -> 'steps' -> 0 -> 'action' ->> 'function' AS stored_as,
       compiled -> 'steps' -> 0 -> 'retry' AS default_retry,
       compiled -> 'steps' -> 0 -> 'timeout_ms' AS default_timeout
  FROM consistency.saga_definitions WHERE name = 'short';
-- Durations take PostgreSQL interval syntax.
SELECT consistency.define_saga('durations', '{"steps": [{"name": "s", "action": {"function": "shop.complete"}, "timeout": "1 min 30 s", "retry": {"backoff": "00:00:00.25", "max_backoff": "1 hour"}}], "timeout": "2 days"}');
SELECT compiled -> 'steps' -> 0 -> 'timeout_ms' AS step_ms, compiled -> 'steps' -> 0 -> 'retry' AS retry,
       compiled -> 'timeout_ms' AS saga_ms
  FROM consistency.saga_definitions WHERE name = 'durations';
-- Command steps need only a valid topic and command name to be defined.
SELECT consistency.define_saga('with_command', '{"steps": [{"name": "ship", "action": {"topic": "shipping.commands", "command": "CreateShipment"}, "compensation": {"topic": "shipping.commands", "command": "CancelShipment"}, "timeout": "30 seconds"}]}');

-- Invalid definitions: CS002 naming the saga, the step and the cause.
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '[]')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": []}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": "reserve"}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}}], "retries": 3}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"action": {"function": "shop.complete"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}}, {"name": "a", "action": {"function": "shop.complete"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "compensate": null}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a"}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.nope"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "nope.complete"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.returns_int"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.returns_set"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.a_procedure"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.stock"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "a.b.c.d"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete", "topic": "t", "command": "C"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"topic": "no spaces allowed", "command": "C"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"topic": "shipping"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "compensation": {"function": "shop.returns_array", "x": 1}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "timeout": "soon"}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "timeout": 30}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "timeout": "-1 second"}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}}], "timeout": "2 years"}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"max_attempts": 0}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"max_attempts": 1.5}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"max_attempts": 5000}}]}')$$);
-- Numbers are read from jsonb's numeric: an integral 3.0 is an integer, 2^63 and a number
-- past a double's range are shown; nesting has no depth limit of its own; names keep
-- their characters.
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"max_attempts": 3.0, "backoff": "soon"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"max_attempts": 9223372036854775808}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"max_attempts": 1e400}}]}')$$);
SELECT pg_temp.err(format('SELECT consistency.define_saga(%L, %L)', 'bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}}], "x": ' || repeat('[', 1000) || repeat(']', 1000) || '}'));
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "é\"", "action": {"function": "shop.complete"}}, {"name": "é\"", "action": {"function": "shop.complete"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"backoff": "10 s", "max_backoff": "1 s"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"backoff": "-5 ms"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}, "retry": {"tries": 2}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}}]}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga(NULL, '{}')$$);
SELECT pg_temp.err($$SELECT consistency.define_saga('bad', NULL)$$);
SELECT count(*) AS bad_definitions_stored FROM consistency.saga_definitions WHERE name = 'bad';

-- Start: unknown definition, input checks, idempotency keys.
SELECT pg_temp.err($$SELECT consistency.start_saga('no_such_saga', '{}')$$);
SELECT pg_temp.err($$SELECT consistency.start_saga(NULL, '{}')$$);
SELECT pg_temp.err($$SELECT consistency.start_saga('order', '[1, 2]')$$);
SELECT pg_temp.err($$SELECT consistency.start_saga('order', '"text"')$$);
SELECT pg_temp.err($$SELECT consistency.start_saga('order', '{}', '')$$);
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 3}', 'order-1') AS ok1 \gset
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 3}', 'order-1') = :'ok1' AS same_key_same_saga;
SELECT pg_temp.err($$SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 4}', 'order-1')$$);
SELECT count(*) AS sagas_with_key FROM consistency.sagas WHERE name = 'order';
-- A start rolled back leaves nothing behind, and the key can be used again.
BEGIN;
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 1}', 'order-rolled-back') IS NOT NULL AS started;
ROLLBACK;
SELECT count(*) AS after_rollback FROM consistency.saga_instances WHERE idempotency_key = 'order-rolled-back';
SELECT status, current_step, attempts, data, last_error FROM consistency.saga_status(:'ok1');
SELECT pg_temp.err($$SELECT * FROM consistency.saga_status('00000000-0000-0000-0000-000000000001')$$);
SELECT pg_temp.err($$SELECT * FROM consistency.saga_status(NULL)$$);

-- The happy path, one step per _advance_sagas call (one worker batch each).
SELECT consistency._advance_sagas() AS advanced;
SELECT status, current_step, attempts, data FROM consistency.saga_status(:'ok1');
SELECT consistency._advance_sagas() AS advanced;
SELECT consistency._advance_sagas() AS advanced;
SELECT status, current_step, attempts, data, last_error FROM consistency.saga_status(:'ok1');
SELECT consistency._advance_sagas() AS nothing_left;
SELECT effect, role = current_user AS as_definer FROM shop.effects ORDER BY seq;
SELECT available FROM shop.stock;

-- Payment declined twice (max_attempts 2): inventory released, saga compensated.
TRUNCATE shop.effects;
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 2, "card": "declined"}') AS declined \gset
SELECT consistency._advance_sagas() AS reserve;
SELECT consistency._advance_sagas() AS pay_attempt_1;
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'declined');
SELECT consistency._advance_sagas() AS pay_attempt_2;
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'declined');
SELECT consistency._advance_sagas() AS release;
SELECT status, current_step, attempts, data, last_error FROM consistency.saga_status(:'declined');
-- Every transition is in the event store, in stream saga-<id>.
SELECT version, type, data FROM consistency.read_stream('saga-' || :'declined') ORDER BY version;
-- The failed attempts' own effects were rolled back with them.
SELECT effect FROM shop.effects ORDER BY seq;
SELECT available FROM shop.stock;

-- A compensation that fails twice, then succeeds (max_attempts 3).
TRUNCATE shop.effects;
SELECT setval('shop.release_calls', 1, false);
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 1, "card": "declined", "release_failures": 2}') AS flaky \gset
SELECT consistency._advance_sagas() FROM generate_series(1, 3);
SELECT status, current_step, attempts FROM consistency.saga_status(:'flaky');
SELECT consistency._advance_sagas() AS release_attempt_1;
SELECT consistency._advance_sagas() AS release_attempt_2;
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'flaky');
SELECT consistency._advance_sagas() AS release_attempt_3;
SELECT status, current_step, attempts FROM consistency.saga_status(:'flaky');
SELECT effect FROM shop.effects ORDER BY seq;

-- A compensation that never succeeds: failed, then an operator retries it.
SELECT setval('shop.release_calls', 1, false);
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 1, "card": "declined", "release_failures": 1000}') AS stuck \gset
SELECT consistency._advance_sagas() FROM generate_series(1, 6);
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'stuck');
SELECT consistency._advance_sagas() AS failed_sagas_are_not_run;
SELECT pg_temp.err(format('SELECT consistency.complete_step(%L, %L)', :'stuck', 'reserve_inventory'));
UPDATE consistency.saga_instances SET data = data || '{"release_failures": 0}' WHERE id = :'stuck';
SELECT consistency.retry_saga(:'stuck');
SELECT status, current_step, attempts FROM consistency.saga_status(:'stuck');
SELECT consistency._advance_sagas() AS release_after_fix;
SELECT version, type, data - 'error' AS data FROM consistency.read_stream('saga-' || :'stuck', 8) ORDER BY version;
SELECT status, current_step, attempts FROM consistency.saga_status(:'stuck');

-- Operators: abort and retry.
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 1}') AS to_abort \gset
SELECT consistency.abort_saga(:'to_abort', 'customer called');
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'to_abort');
SELECT type, data FROM consistency.read_stream('saga-' || :'to_abort') ORDER BY version;
SELECT consistency._advance_sagas() AS aborted_sagas_do_not_run;
SELECT pg_temp.err(format('SELECT consistency.abort_saga(%L, %L)', :'to_abort', 'again'));
SELECT pg_temp.err(format('SELECT consistency.retry_saga(%L)', :'to_abort'));
SELECT pg_temp.err(format('SELECT consistency.retry_saga(%L)', :'ok1'));
SELECT pg_temp.err(format('SELECT consistency.abort_saga(%L, NULL)', :'ok1'));
SELECT pg_temp.err($$SELECT consistency.retry_saga('00000000-0000-0000-0000-000000000001')$$);
SELECT pg_temp.err($$SELECT consistency.abort_saga('00000000-0000-0000-0000-000000000001', 'x')$$);
SELECT pg_temp.err($$SELECT consistency.retry_saga(NULL)$$);
-- Retry cuts a backoff short.
SELECT consistency.define_saga('slow_retry', '{"steps": [{"name": "pay", "action": {"function": "shop.pay"}, "retry": {"max_attempts": 2, "backoff": "1 hour"}}]}');
SELECT consistency.start_saga('slow_retry', '{"card": "declined"}') AS slow \gset
SELECT consistency._advance_sagas() AS attempt_1;
SELECT consistency._advance_sagas() AS backing_off;
SELECT consistency.retry_saga(:'slow');
SELECT consistency._advance_sagas() AS attempt_2_now;
SELECT status, attempts, last_error FROM consistency.saga_status(:'slow');

-- Replies: function steps take none; unknown steps and sagas are refused.
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 1}') AS live \gset
SELECT pg_temp.err(format('SELECT consistency.complete_step(%L, %L)', :'live', 'reserve_inventory'));
SELECT pg_temp.err(format('SELECT consistency.fail_step(%L, %L, %L)', :'live', 'process_payment', 'no'));
SELECT pg_temp.err(format('SELECT consistency.complete_step(%L, %L)', :'live', 'ship_it'));
SELECT pg_temp.err(format('SELECT consistency.complete_step(%L, %L, %L)', :'live', 'reserve_inventory', '[1]'));
SELECT pg_temp.err(format('SELECT consistency.fail_step(%L, %L, NULL)', :'live', 'reserve_inventory'));
SELECT pg_temp.err($$SELECT consistency.complete_step('00000000-0000-0000-0000-000000000001', 'a')$$);
SELECT pg_temp.err($$SELECT consistency.fail_step('00000000-0000-0000-0000-000000000001', 'a', 'r')$$);
SELECT pg_temp.err($$SELECT consistency.complete_step(NULL, 'a')$$);
SELECT pg_temp.err(format('SELECT consistency.complete_step(%L, NULL)', :'live'));

-- A step function returning a non-object is a failed attempt.
SELECT consistency.define_saga('bad_output', '{"steps": [{"name": "a", "action": {"function": "shop.returns_array"}, "retry": {"max_attempts": 1}}]}');
SELECT consistency.start_saga('bad_output', '{}') AS bad_output \gset
SELECT consistency._advance_sagas() > 0 AS advanced;
SELECT status, last_error FROM consistency.saga_status(:'bad_output');

-- Running sagas keep the definition version they started with.
SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 1}') AS on_v1 \gset
SELECT consistency.define_saga('order', '{"steps": [{"name": "only_step", "action": {"function": "shop.complete"}}]}') AS v2;
SELECT consistency.start_saga('order', '{}') AS on_v2 \gset
SELECT id = :'on_v1' AS first, definition_version, current_step FROM consistency.sagas
 WHERE id IN (:'on_v1', :'on_v2') ORDER BY definition_version;
SELECT consistency._advance_sagas() > 0 AS advanced;
SELECT status, current_step FROM consistency.saga_status(:'on_v1');
SELECT status, current_step FROM consistency.saga_status(:'on_v2');

-- Privileges: writers define, start and reply; readers read; admins operate.
CREATE ROLE saga_alice LOGIN IN ROLE consistency_writer;
CREATE ROLE saga_bob LOGIN IN ROLE consistency_writer;
CREATE ROLE saga_reader IN ROLE consistency_reader;
CREATE ROLE saga_operator IN ROLE consistency_admin;
GRANT USAGE ON SCHEMA shop TO consistency_writer;
CREATE FUNCTION public.saga_alice_step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT jsonb_build_object('ran_as', current_user) $$;
REVOKE ALL ON FUNCTION public.saga_alice_step(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.saga_alice_step(uuid, jsonb) TO saga_alice;
SET ROLE saga_bob;
SELECT pg_temp.err($$SELECT consistency.define_saga('alice_flow', '{"steps": [{"name": "a", "action": {"function": "public.saga_alice_step"}}]}')$$);
SET ROLE saga_alice;
SELECT consistency.define_saga('alice_flow', '{"steps": [{"name": "a", "action": {"function": "public.saga_alice_step"}}]}');
SELECT consistency.start_saga('alice_flow', '{}') AS alice_saga \gset
SELECT pg_temp.err(format('SELECT consistency.abort_saga(%L, %L)', :'alice_saga', 'no'));
SELECT pg_temp.err($$SELECT count(*) FROM consistency.saga_instances$$);
SELECT pg_temp.err($$UPDATE consistency.saga_definitions SET owner = 10$$);
SET ROLE saga_bob;
-- Bob may not redefine Alice's saga (his steps would run for her sagas).
SELECT pg_temp.err($$SELECT consistency.define_saga('alice_flow', '{"steps": [{"name": "a", "action": {"function": "shop.complete"}}]}')$$);
SET ROLE saga_reader;
SELECT status FROM consistency.saga_status(:'alice_saga');
SELECT count(*) > 0 AS reader_sees_sagas FROM consistency.sagas;
SELECT pg_temp.err($$SELECT consistency.start_saga('alice_flow', '{}')$$);
SELECT pg_temp.err($$SELECT consistency._advance_sagas()$$);
SET ROLE saga_operator;
SELECT consistency.abort_saga(:'on_v1', 'operator test');
RESET ROLE;
SELECT status, last_error FROM consistency.saga_status(:'on_v1');
SELECT consistency._advance_sagas() > 0 AS advanced;
SELECT status, data FROM consistency.saga_status(:'alice_saga');

-- Operations.
SELECT metric, kind, labels, value FROM consistency._metrics_saga() WHERE metric = 'pg_consistency_sagas' ORDER BY labels::text;
SELECT metric, value > 0 AS nonzero FROM consistency._metrics_saga() WHERE kind = 'counter' ORDER BY metric;
SELECT * FROM consistency._integrity_saga();
UPDATE consistency.saga_instances SET step_index = 42 WHERE id = :'ok1';
SELECT check_name, ok, regexp_replace(detail, '[0-9a-f-]{36}', '<uuid>') AS detail
  FROM consistency._integrity_saga() WHERE NOT ok;
UPDATE consistency.saga_instances SET step_index = 2 WHERE id = :'ok1';

-- Chained steps: a saga goes on with its next due step in the same transaction (up to
-- saga_chain_steps); its row and audit stream are written once for the chain.
DO $$ BEGIN WHILE consistency._advance_sagas() > 0 LOOP END LOOP; END $$;
SELECT count(*) AS still_running FROM consistency.sagas WHERE status IN ('running', 'compensating');
SET pg_consistency.saga_chain_steps = 4;
SELECT consistency.define_saga('chained', '{"steps": [{"name": "a", "action": {"function": "shop.reserve"}}, {"name": "b", "action": {"function": "shop.pay"}}, {"name": "c", "action": {"function": "shop.complete"}}]}');
SELECT consistency.start_saga('chained', '{"sku": "apple", "qty": 1}') AS chained \gset
SELECT consistency._advance_sagas() AS one_call;
SELECT status, data FROM consistency.saga_status(:'chained');
SELECT effect FROM shop.effects WHERE saga_id = :'chained' ORDER BY seq;
SELECT version, type, data->>'step' AS step, data->'output' AS output
  FROM consistency.read_stream('saga-' || :'chained') ORDER BY version;
SELECT count(DISTINCT xmin::text) AS transactions_after_start
  FROM consistency.events WHERE stream = 'saga-' || :'chained' AND version > 1;
SET pg_consistency.saga_chain_steps = 2;
SELECT consistency.start_saga('chained', '{"sku": "apple", "qty": 1}') AS chained2 \gset
SELECT consistency._advance_sagas() AS two_steps;
SELECT status, current_step FROM consistency.saga_status(:'chained2');
SELECT consistency._advance_sagas() AS the_third;
SELECT status, current_step FROM consistency.saga_status(:'chained2');
SET pg_consistency.saga_chain_steps = 1;

-- Security. A step cannot change the settings of the statements that follow it: the
-- attack of a writer who plants functions and operators in its schema and points the
-- worker's search_path at it from a step (set_config(..., false) survives a plain
-- GUC nest level). The planted functions would make the writer a superuser if they
-- ever ran with a superuser's rights.
CREATE ROLE saga_mallory LOGIN IN ROLE consistency_writer;
CREATE SCHEMA saga_mallory AUTHORIZATION saga_mallory;
SET ROLE saga_mallory;
\i sql/include/planted_search_path.sql
-- The step points the search path at the planted objects, with SET LOCAL as well, and
-- uses one of them itself (that call runs as mallory: the plant works).
CREATE FUNCTION saga_mallory.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'saga_mallory, pg_catalog', false);
  PERFORM pg_catalog.set_config('work_mem', '77kB', false);
  SET LOCAL lock_timeout = '7s';
  PERFORM now();
  RETURN pg_catalog.jsonb_build_object('path_in_step', pg_catalog.current_setting('search_path'));
END $$;
SELECT consistency.define_saga('mallory_flow', '{"steps": [{"name": "a", "action": {"function": "saga_mallory.step"}}, {"name": "b", "action": {"function": "saga_mallory.step"}}]}') AS mallory_v1;
SELECT consistency.start_saga('mallory_flow', '{}') AS mallory_saga \gset
RESET ROLE;
SHOW search_path;
SELECT consistency._advance_sagas() AS advanced;
SELECT consistency._advance_sagas() AS advanced;
SHOW search_path;
SHOW work_mem;
SHOW lock_timeout;
SELECT status, data FROM consistency.saga_status(:'mallory_saga');
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'saga_mallory';
SELECT fn, ran_as, count(*) FROM saga_mallory.calls GROUP BY fn, ran_as ORDER BY fn;

-- Step functions are stored and called by OID. A function dropped and created again
-- under the same name, or one created later in a schema earlier on the definer's path,
-- is not called in its place; a dropped function is a failed attempt with the reason.
CREATE SCHEMA saga_fn;
CREATE SCHEMA saga_fn_early;
CREATE TABLE saga_fn.ran (fn text);
CREATE FUNCTION saga_fn.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ INSERT INTO saga_fn.ran VALUES ('saga_fn.step v1') RETURNING '{"v": 1}'::jsonb $$;
SET search_path = saga_fn_early, saga_fn;
SELECT consistency.define_saga('by_oid', '{"steps": [{"name": "s", "action": {"function": "step"}, "retry": {"max_attempts": 1}}]}') AS by_oid_v1;
RESET search_path;
SELECT compiled #>> '{steps,0,action,function}' AS stored_as,
       (compiled #>> '{steps,0,action,oid}')::oid = 'saga_fn.step(uuid, jsonb)'::regprocedure AS its_oid
  FROM consistency.saga_definitions WHERE name = 'by_oid';
CREATE FUNCTION saga_fn_early.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ INSERT INTO saga_fn.ran VALUES ('saga_fn_early.step') RETURNING '{"v": "early"}'::jsonb $$;
SELECT consistency.start_saga('by_oid', '{}') AS by_oid_1 \gset
SET search_path = saga_fn_early, saga_fn;
SELECT consistency._advance_sagas() AS advanced;
RESET search_path;
SELECT status, data FROM consistency.saga_status(:'by_oid_1');
DROP FUNCTION saga_fn.step(uuid, jsonb);
CREATE FUNCTION saga_fn.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ INSERT INTO saga_fn.ran VALUES ('saga_fn.step v2') RETURNING '{"v": 2}'::jsonb $$;
SELECT consistency.start_saga('by_oid', '{}') AS by_oid_2 \gset
SELECT consistency._advance_sagas() AS advanced;
SELECT status, regexp_replace(last_error, 'OID [0-9]+', 'OID <n>') AS last_error
  FROM consistency.saga_status(:'by_oid_2');
SELECT fn, count(*) FROM saga_fn.ran GROUP BY fn ORDER BY fn;
-- Defining it again takes the new function (a new version: the OID changed).
SELECT consistency.define_saga('by_oid', '{"steps": [{"name": "s", "action": {"function": "saga_fn.step"}, "retry": {"max_attempts": 1}}]}') AS by_oid_v2;
SELECT consistency.start_saga('by_oid', '{}') AS by_oid_3 \gset
SELECT consistency._advance_sagas() AS advanced;
SELECT status, data FROM consistency.saga_status(:'by_oid_3');
-- EXECUTE is checked for the definer when the saga is defined and before every run.
GRANT USAGE ON SCHEMA saga_fn TO saga_alice;
GRANT INSERT ON saga_fn.ran TO saga_alice;
REVOKE EXECUTE ON FUNCTION saga_fn.step(uuid, jsonb) FROM PUBLIC;
SET ROLE saga_alice;
SELECT pg_temp.err($$SELECT consistency.define_saga('alice_by_oid', '{"steps": [{"name": "s", "action": {"function": "saga_fn.step"}}]}')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION saga_fn.step(uuid, jsonb) TO saga_alice;
SET ROLE saga_alice;
SELECT consistency.define_saga('alice_by_oid', '{"steps": [{"name": "s", "action": {"function": "saga_fn.step"}, "retry": {"max_attempts": 1}}]}') AS alice_by_oid;
SELECT consistency.start_saga('alice_by_oid', '{}') AS alice_by_oid \gset
RESET ROLE;
REVOKE EXECUTE ON FUNCTION saga_fn.step(uuid, jsonb) FROM saga_alice;
SELECT consistency._advance_sagas() AS advanced;
SELECT status, last_error FROM consistency.saga_status(:'alice_by_oid');
-- A temporary function cannot become a step (it would vanish with the session).
CREATE FUNCTION pg_temp.temp_step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT $2';
SELECT regexp_replace(pg_temp.err($$SELECT consistency.define_saga('temp_step', '{"steps": [{"name": "s", "action": {"function": "pg_temp.temp_step"}}]}')$$),
                      'pg_temp_[0-9]+', 'pg_temp_N', 'g') AS temp_step;

-- Function steps have a time limit: their "timeout", else pg_consistency.saga_step_timeout
-- (superusers only may change it). A step past it is a failed attempt; the other sagas
-- advanced with it go on.
SHOW pg_consistency.saga_step_timeout;
CREATE FUNCTION shop.sleepy(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_catalog.pg_sleep(30); RETURN '{}'; END $$;
SELECT consistency.define_saga('sleepy', '{"steps": [{"name": "nap", "action": {"function": "shop.sleepy"}, "retry": {"max_attempts": 1}}]}') AS sleepy_v1;
-- The other sagas: two steps that leave a row each.
SELECT consistency.define_saga('beside', '{"steps": [{"name": "one", "action": {"function": "shop.complete"}, "retry": {"max_attempts": 1}}, {"name": "two", "action": {"function": "shop.complete"}}]}') AS beside_v1;
SELECT consistency.start_saga('sleepy', '{}') AS sleepy \gset
SELECT consistency.start_saga('beside', '{}') AS beside_sleepy \gset
SET pg_consistency.saga_step_timeout = '200ms';
SELECT consistency._advance_sagas() AS advanced;
RESET pg_consistency.saga_step_timeout;
SELECT status, last_error FROM consistency.saga_status(:'sleepy');
SELECT status, current_step FROM consistency.saga_status(:'beside_sleepy');
SET ROLE saga_bob;
SELECT pg_temp.err($$SET pg_consistency.saga_step_timeout = 0$$);
RESET ROLE;
-- A step's own timeout cannot lift the limit: it is capped by saga_step_timeout.
SELECT consistency.define_saga('sleepy_long', '{"steps": [{"name": "nap", "action": {"function": "shop.sleepy"}, "timeout": "1 hour", "retry": {"max_attempts": 1}}]}') AS sleepy_long_v1;
SELECT consistency.start_saga('sleepy_long', '{}') AS sleepy_long \gset
SET pg_consistency.saga_step_timeout = '200ms';
SELECT consistency._advance_sagas() AS advanced;
RESET pg_consistency.saga_step_timeout;
SELECT status, last_error FROM consistency.saga_status(:'sleepy_long');

-- A step whose output is too large for its audit event is a failed attempt, not an
-- error of the whole batch; a saga whose outcome cannot be stored for another reason
-- (here: a trigger that refuses its progress) has that failure recorded as a failed
-- attempt, and the sagas advanced with it go on.
CREATE FUNCTION shop.big(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT pg_catalog.jsonb_build_object('blob', pg_catalog.repeat('x', 5000)) $$;
SELECT consistency.define_saga('big_output', '{"steps": [{"name": "big", "action": {"function": "shop.big"}, "retry": {"max_attempts": 2, "backoff": "0 ms"}}]}') AS big_v1;
SET pg_consistency.max_event_bytes = 4096;
SELECT consistency.start_saga('big_output', '{}') AS big \gset
SELECT consistency.start_saga('beside', '{}') AS beside_big \gset
SELECT consistency._advance_sagas() AS advanced;
SELECT consistency._advance_sagas() AS advanced;
RESET pg_consistency.max_event_bytes;
SELECT status, last_error FROM consistency.saga_status(:'big');
SELECT status FROM consistency.saga_status(:'beside_big');
\i sql/include/refuse_progress.sql
SELECT consistency.start_saga('beside', '{"refuse": true}') AS refused \gset
SELECT consistency.start_saga('beside', '{}') AS beside_refused \gset
SET pg_consistency.saga_chain_steps = 4;
SELECT consistency._advance_sagas() AS advanced;
SET pg_consistency.saga_chain_steps = 1;
DROP TRIGGER refuse_progress ON consistency.saga_instances;
DROP FUNCTION public.refuse_progress();
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'refused');
SELECT type, data->>'step' AS step, data->>'error' AS error FROM consistency.read_stream('saga-' || :'refused') ORDER BY version;
SELECT status FROM consistency.saga_status(:'beside_refused');

-- Who may answer a saga: the role that started it, roles with the rights of the role
-- that defined it or started it, consistency_admin members; everyone else gets 42501.
-- Everyone with consistency_reader may read every saga.
CREATE ROLE saga_alice_app IN ROLE saga_alice;
SET ROLE saga_alice;
SELECT consistency.define_saga('alice_cmd', '{"steps": [{"name": "ship", "action": {"topic": "shipping.commands", "command": "Ship"}, "timeout": "1 hour"}, {"name": "bill", "action": {"topic": "billing.commands", "command": "Bill"}, "timeout": "1 hour"}]}') AS alice_cmd_v1;
SELECT consistency.start_saga('alice_cmd', '{}') AS by_alice \gset
SET ROLE saga_bob;
SELECT consistency.start_saga('alice_cmd', '{}') AS by_bob \gset
RESET ROLE;
SELECT consistency._advance_sagas() AS advanced;
SELECT s.id = :'by_alice' AS alice_started, r.rolname AS started_by
  FROM consistency.saga_instances s JOIN pg_roles r ON r.oid = s.started_by
 WHERE s.id IN (:'by_alice', :'by_bob') ORDER BY 1 DESC;
SET ROLE saga_bob;
SELECT pg_temp.err(format('SELECT consistency.complete_step(%L, %L)', :'by_alice', 'ship'));
SELECT pg_temp.err(format('SELECT consistency.fail_step(%L, %L, %L)', :'by_alice', 'ship', 'forged'));
SELECT pg_temp.err(format('SELECT consistency.abort_saga(%L, %L)', :'by_alice', 'forged'));
SELECT status, current_step FROM consistency.saga_status(:'by_alice');
-- The stream saga-<id> is written by the extension only (the event store refuses it).
SELECT pg_temp.err(format('SELECT consistency.append_events(%L, NULL, %L)', 'saga-' || :'by_alice',
                          '[{"type": "SagaCompleted", "data": {"steps": 2}}]'));
-- Bob started the other one: he may answer it.
SELECT consistency.complete_step(:'by_bob', 'ship', '{"by": "bob"}');
SET ROLE saga_alice_app;
SELECT consistency.complete_step(:'by_alice', 'ship', '{"by": "alice_app"}');
SET ROLE saga_alice;
SELECT pg_temp.err(format('SELECT consistency.append_events(%L, NULL, %L)', 'saga-' || :'by_alice',
                          '[{"type": "SagaCompleted", "data": {"steps": 2}}]'));
SET ROLE saga_reader;
SELECT status, data FROM consistency.saga_status(:'by_alice');
SELECT pg_temp.err(format('SELECT consistency.complete_step(%L, %L)', :'by_alice', 'bill'));
RESET ROLE;
SELECT consistency._advance_sagas() AS advanced;
SET ROLE saga_operator;
SELECT consistency.complete_step(:'by_alice', 'bill');
SELECT consistency.abort_saga(:'by_bob', 'operator stops it');
RESET ROLE;
SELECT id = :'by_alice' AS alice_started, status, data FROM consistency.sagas
 WHERE id IN (:'by_alice', :'by_bob') ORDER BY 1 DESC;
-- An operator function granted to a writer works on its own sagas only.
GRANT EXECUTE ON FUNCTION consistency.retry_saga(uuid), consistency.abort_saga(uuid, text) TO saga_bob;
SET ROLE saga_operator;
SELECT consistency.start_saga('alice_cmd', '{}') AS by_operator \gset
SET ROLE saga_bob;
SELECT consistency.start_saga('alice_cmd', '{}') AS by_bob2 \gset
SELECT pg_temp.err(format('SELECT consistency.abort_saga(%L, %L)', :'by_operator', 'not mine'));
SELECT pg_temp.err(format('SELECT consistency.retry_saga(%L)', :'by_operator'));
SELECT consistency.abort_saga(:'by_bob2', 'mine');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION consistency.retry_saga(uuid), consistency.abort_saga(uuid, text) FROM saga_bob;
SELECT consistency.abort_saga(:'by_operator', 'clean up');

-- Hostile pg_temp objects: a writer's domains over the types the extension uses, first on
-- its search path, never run with another role's rights.
SET ROLE saga_bob;
CREATE TABLE pg_temp.evil_calls (ran_as name);
CREATE FUNCTION pg_temp.evil(v anyelement) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pg_temp.evil_calls VALUES (current_user);
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE saga_bob SUPERUSER';
  END IF;
  RETURN true;
END $$;
SELECT pg_temp.shadow_types('jsonb', 'text', 'uuid', 'int4', 'oid', 'timestamptz', 'interval');
SET search_path = pg_temp, pg_catalog;
SELECT consistency.define_saga('bob_cmd', '{"steps": [{"name": "ship", "action": {"topic": "shipping.commands", "command": "Ship"}, "timeout": "1 hour"}]}') AS bob_cmd_v1;
SELECT consistency.start_saga('bob_cmd', '{"n": 1}', 'bob-1') AS bob_cmd \gset
SELECT consistency.start_saga('bob_cmd', '{"n": 1}', 'bob-1') = :'bob_cmd' AS same_saga;
SELECT consistency.start_saga('bob_cmd', '{"n": 2}', 'bob-2') AS bob_cmd2 \gset
RESET ROLE;
SELECT consistency._advance_sagas() AS advanced;
SET ROLE saga_bob;
SELECT consistency.complete_step(:'bob_cmd', 'ship', '{"ok": true}');
SELECT consistency.fail_step(:'bob_cmd2', 'ship', 'no truck');
SELECT status, attempts, data, last_error FROM consistency.saga_status(:'bob_cmd');
SELECT status, attempts, data, last_error FROM consistency.saga_status(:'bob_cmd2');
SELECT count(*) > 0 AS reads_the_view FROM consistency.sagas;
RESET ROLE;
SELECT count(*) FILTER (WHERE ran_as <> 'saga_bob') AS evil_ran_as_another_role,
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = 'saga_bob') AS bob_is_superuser
  FROM pg_temp.evil_calls;
SELECT pg_temp.unshadow_types();
RESET search_path;

-- Clean up the cluster-wide roles.
DROP FUNCTION public.saga_alice_step(uuid, jsonb);
SELECT count(*) AS sagas_left_running FROM consistency.sagas WHERE status IN ('running', 'compensating') AND name <> 'bob_cmd';
DELETE FROM consistency.saga_instances WHERE name IN ('alice_flow', 'mallory_flow', 'alice_by_oid', 'alice_cmd', 'bob_cmd');
DELETE FROM consistency.saga_definitions WHERE name IN ('alice_flow', 'mallory_flow', 'alice_by_oid', 'alice_cmd', 'bob_cmd');
DROP SCHEMA saga_mallory CASCADE;
DROP SCHEMA saga_fn, saga_fn_early CASCADE;
DROP ROLE saga_alice_app;
DROP OWNED BY saga_alice, saga_bob, saga_mallory;
DROP ROLE saga_alice, saga_bob, saga_reader, saga_operator, saga_mallory;
