-- Correlation and causation ids: what publish and append add from the context in effect
-- (pg_consistency.correlation_id outside handlers; the handled message, event or saga
-- inside them), explicit values winning, a malformed setting refused with CS002, and the
-- context gone once a handler returns or fails. No worker here: _subscription_step,
-- _advance_sagas and retry_consumer_dead_letters run the handlers as the worker would.
-- Nearly everything runs in transactions that roll back, and the outbox id sequence is put
-- back at the end: later suites count outbox ids from where they find them.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_consistency;
DROP SCHEMA IF EXISTS corr CASCADE;
RESET client_min_messages;
SELECT last_value AS outbox_seq_last, is_called AS outbox_seq_called FROM consistency.outbox_id_seq \gset

\i sql/include/helpers.sql
-- The ids of a jsonb object (headers or metadata): "correlation / causation", '-' for none.
CREATE FUNCTION pg_temp.ids(j jsonb) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(j->>'correlation_id', '-') || ' / ' || coalesce(j->>'causation_id', '-')
$$;
-- Publishes an empty message to `topic` and returns the headers its outbox row got.
CREATE FUNCTION pg_temp.publish_headers(topic text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  i bigint;
  h jsonb;
BEGIN
  i := consistency.publish(topic, 'k', '{}'::jsonb);
  SELECT o.headers INTO h FROM consistency.outbox o WHERE o.id = i;
  RETURN h;
END $$;

CREATE SCHEMA corr;
-- A saga step, a subscription handler and a consumer handler that each publish and append.
CREATE FUNCTION corr.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM consistency.publish('corr.fromstep', saga_id::text, '{}'::jsonb);
  PERFORM consistency.append_event('corrstep-' || saga_id, NULL, 'StepRan', '{}');
  RETURN '{}';
END $$;
CREATE FUNCTION corr.on_event(global_position bigint, stream text, version bigint, type text,
                              data jsonb, metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM consistency.publish('corr.fromsub', stream, data);
  PERFORM consistency.append_event('corrderived-' || stream, NULL, 'Derived', '{}');
  IF data ? 'fail' THEN RAISE EXCEPTION 'handler fails'; END IF;
END $$;
CREATE FUNCTION corr.on_message(topic text, partition int, "offset" bigint, key text, value jsonb,
                                headers jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM consistency.publish('corr.fromin', key, value,
                              CASE WHEN value ? 'explicit' THEN '{"causation_id": "forced"}' ELSE '{}' END::jsonb);
  PERFORM consistency.append_event('corrin-' || key, NULL, 'Handled', '{}');
  IF value ? 'saga' THEN PERFORM consistency.start_saga('corr_saga', '{}'); END IF;
  IF value ? 'fail' THEN RAISE EXCEPTION 'handler fails'; END IF;
END $$;

-- ---------------------------------------------------------------------------------
-- Outside handlers: nothing in effect, then the setting
-- ---------------------------------------------------------------------------------
BEGIN;
SELECT current_setting('pg_consistency.correlation_id') AS unset;
SELECT consistency.publish('corr.out', 'none', '{}'::jsonb) > 0 AS published;
SELECT consistency.append_event('corrout-1', NULL, 'Nothing', '{}') AS v;
SET LOCAL pg_consistency.correlation_id = 'req-1';
SELECT consistency.publish('corr.out', 'guc', '{}'::jsonb) > 0 AS published;
SELECT consistency.publish('corr.out', 'guc-bytea', '\x00'::bytea, '{"x": "y"}') > 0 AS published;
SELECT consistency.append_event('corrout-1', NULL, 'Appended', '{}', '{"by": "test"}') AS v;
SELECT consistency.append_events('corrout-1', NULL,
  '[{"type": "A", "data": {}}, {"type": "B", "data": {}, "metadata": {"k": 1}}]') AS v;
-- Explicit values win, a JSON null included.
SELECT consistency.publish('corr.out', 'explicit', '{}'::jsonb, '{"correlation_id": "mine"}') > 0 AS published;
SELECT consistency.publish('corr.out', 'explicit-null', '{}'::jsonb, '{"correlation_id": null}') > 0 AS published;
SELECT consistency.append_event('corrout-1', NULL, 'Explicit', '{}', '{"correlation_id": "mine", "causation_id": "c-1"}') AS v;
SELECT consistency.append_events('corrout-1', NULL, '[{"type": "E", "data": {}, "metadata": {"correlation_id": null}}]') AS v;
SELECT key, headers, pg_temp.ids(headers) FROM consistency.outbox WHERE topic = 'corr.out' ORDER BY id;
SELECT version, type, metadata FROM consistency.events WHERE stream = 'corrout-1' ORDER BY version;
-- Routed events carry the event's ids as headers.
SELECT consistency.route_events('corrroute', 'corr.routed');
SELECT consistency.append_event('corrroute-1', NULL, 'Routed', '{}') AS v;
SELECT consistency.append_event('corrroute-1', NULL, 'Routed', '{}', '{"causation_id": "c-2"}') AS v;
SELECT consistency.append_event('corrroute-1', NULL, 'Routed', '{}', '{"correlation_id": 5}') AS v;
SELECT o.headers->>'stream_version' AS version, pg_temp.ids(o.headers) AS header_ids
  FROM consistency.outbox o WHERE o.topic = 'corr.routed' ORDER BY o.id;
ROLLBACK;

-- SET LOCAL ends with its transaction.
BEGIN;
SET LOCAL pg_consistency.correlation_id = 'req-2';
SELECT pg_temp.ids(pg_temp.publish_headers('corr.out')) AS same_transaction;
COMMIT;
BEGIN;
SELECT pg_temp.ids(pg_temp.publish_headers('corr.out')) AS next_transaction;
DELETE FROM consistency.outbox WHERE topic = 'corr.out';
COMMIT;

-- A malformed setting: CS002 where it is used, nothing written.
BEGIN;
SELECT consistency.define_saga('corr_saga', '{"steps": [{"name": "work", "action": {"function": "corr.step"}}]}') AS v;
CREATE FUNCTION pg_temp.err_with(val text, stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('pg_consistency.correlation_id', val, true);
  RETURN pg_temp.err_brief(stmt);
END $$;
SELECT label, split_part(stmt, '(', 1) AS call, pg_temp.err_with(val, stmt)
  FROM (VALUES (1, 'space', 'has space'), (2, 'tab', E'a\tb'), (3, 'non-ASCII', 'café'),
               (4, '321 bytes', repeat('x', 321))) AS g(n, label, val),
       (VALUES ($$SELECT consistency.publish('corr.bad', 'k', '{}'::jsonb)$$),
               ($$SELECT consistency.append_event('corrbad-1', NULL, 'X', '{}')$$),
               ($$SELECT consistency.append_events('corrbad-1', NULL, '[{"type": "X", "data": {}}]')$$),
               ($$SELECT consistency.start_saga('corr_saga', '{}')$$)) AS q(stmt)
 ORDER BY n, stmt;
SELECT set_config('pg_consistency.correlation_id', 'x y', true) IS NOT NULL AS set;
SELECT pg_temp.err($$SELECT consistency.publish('corr.bad', 'k', '{}'::jsonb)$$) AS with_hint;
SELECT set_config('pg_consistency.correlation_id', repeat('x', 320), true) IS NOT NULL AS longest_accepted;
SELECT length(pg_temp.publish_headers('corr.bad')->>'correlation_id') AS header_length;
SELECT set_config('pg_consistency.correlation_id', '', true) = '' AS empty_is_none;
SELECT pg_temp.publish_headers('corr.bad') AS headers;
SELECT count(*) AS bad_events FROM consistency.events WHERE stream = 'corrbad-1';
ROLLBACK;

-- ---------------------------------------------------------------------------------
-- Sagas: the correlation id in effect at start goes to every step
-- ---------------------------------------------------------------------------------
BEGIN;
SET LOCAL pg_consistency.saga_chain_steps = 5;
SELECT consistency.define_saga('corr_saga', '{"steps": [
  {"name": "work", "action": {"function": "corr.step"}},
  {"name": "ask", "action": {"topic": "corr.commands", "command": "DoIt"}, "timeout": "1 hour"}]}') AS v;
SET LOCAL pg_consistency.correlation_id = 'req-saga';
SELECT consistency.start_saga('corr_saga', '{}') AS s1 \gset
SET LOCAL pg_consistency.correlation_id = '';
SELECT consistency.start_saga('corr_saga', '{}') AS s2 \gset
-- The setting at advance time does not matter: the saga's own ids do.
SET LOCAL pg_consistency.correlation_id = 'req-other';
SELECT consistency._advance_sagas() AS advanced;
SELECT id = :'s1' AS first, correlation_id FROM consistency.saga_instances WHERE id IN (:'s1', :'s2') ORDER BY 1 DESC;
SELECT o.topic, o.key = :'s1' AS first,
       replace(replace(pg_temp.ids(o.headers), :'s1', '<saga 1>'), :'s2', '<saga 2>') AS ids
  FROM consistency.outbox o WHERE o.key IN (:'s1', :'s2') ORDER BY 2 DESC, 1;
SELECT e.stream = 'corrstep-' || :'s1' AS first,
       replace(replace(pg_temp.ids(e.metadata), :'s1', '<saga 1>'), :'s2', '<saga 2>') AS ids
  FROM consistency.events e WHERE e.stream IN ('corrstep-' || :'s1', 'corrstep-' || :'s2') ORDER BY 1 DESC;
-- The audit trail's first event carries the ids in effect at start.
SELECT e.stream = 'saga-' || :'s1' AS first, pg_temp.ids(e.metadata)
  FROM consistency.events e WHERE e.stream IN ('saga-' || :'s1', 'saga-' || :'s2') AND e.version = 1 ORDER BY 1 DESC;
ROLLBACK;

-- ---------------------------------------------------------------------------------
-- Subscription handlers: the handled event's ids
-- ---------------------------------------------------------------------------------
-- (The events are committed first: a subscription sees only committed events. Events are
-- immutable; categories corrsub and corrderived are this suite's alone.)
SELECT consistency.create_subscription('corr_sub', 'corr.on_event(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['corrsub']);
SELECT consistency.append_event('corrsub-1', NULL, 'Happened', '{}', '{"correlation_id": "req-sub"}') AS v;
SELECT consistency.append_event('corrsub-2', NULL, 'Happened', '{}') AS v;
SELECT consistency.append_event('corrsub-3', NULL, 'Happened', '{"fail": true}', '{"correlation_id": "req-fail"}') AS v;
BEGIN;
SELECT consistency._subscription_step('corr_sub') AS handled;
SELECT e.stream,
       o.headers->>'correlation_id' = coalesce(e.metadata->>'correlation_id', e.event_id::text) AS correlation_ok,
       o.headers->>'causation_id' = e.event_id::text AS causation_is_event_id,
       coalesce(o.headers->>'correlation_id', '-') = 'req-sub' AS inherited
  FROM consistency.events e JOIN consistency.outbox o ON o.topic = 'corr.fromsub' AND o.key = e.stream
 ORDER BY e.stream;
SELECT e.stream, d.metadata->>'correlation_id' = coalesce(e.metadata->>'correlation_id', e.event_id::text) AS correlation_ok,
       d.metadata->>'causation_id' = e.event_id::text AS causation_is_event_id
  FROM consistency.events e JOIN consistency.events d ON d.stream = 'corrderived-' || e.stream
 ORDER BY e.stream;
SELECT status, attempts, last_error LIKE '%handler fails%' AS failed_on_third FROM consistency.subscriptions WHERE name = 'corr_sub';
-- The failed handler's context is gone: a write after it carries nothing.
SELECT pg_temp.publish_headers('corr.after') AS after_failed_handler;
ROLLBACK;
SELECT consistency.drop_subscription('corr_sub');

-- ---------------------------------------------------------------------------------
-- Consumer handlers: the handled message's ids (dead letters re-run in this transaction)
-- ---------------------------------------------------------------------------------
BEGIN;
SELECT consistency.define_saga('corr_saga', '{"steps": [{"name": "ask", "action": {"topic": "corr.commands", "command": "DoIt"}}]}') AS v;
SELECT consistency.create_consumer('corr-in', ARRAY['corr.in'], 'corr.on_message(text,int,bigint,text,jsonb,jsonb)');
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", key, value, headers, reason) VALUES
  ('corr-in', 'corr.in', 0, 1, 'inherits', convert_to('{}', 'UTF8'), '{"ce_id": "m-1", "correlation_id": "req-in"}', 'x'),
  ('corr-in', 'corr.in', 0, 2, 'starts', convert_to('{}', 'UTF8'), '{"ce_id": "m-2"}', 'x'),
  ('corr-in', 'corr.in', 0, 3, 'fails', convert_to('{"fail": 1}', 'UTF8'), '{"ce_id": "m-3", "correlation_id": "req-fail"}', 'x'),
  ('corr-in', 'corr.in', 1, 4, 'no-ce-id', convert_to('{}', 'UTF8'), '{}', 'x'),
  ('corr-in', 'corr.in', 1, 5, 'bad-ids', convert_to('{}', 'UTF8'), '{"ce_id": "has space", "correlation_id": ""}', 'x'),
  ('corr-in', 'corr.in', 1, 6, 'explicit', convert_to('{"explicit": 1}', 'UTF8'), '{"ce_id": "m-6"}', 'x'),
  ('corr-in', 'corr.in', 1, 7, 'saga', convert_to('{"saga": 1}', 'UTF8'), '{"ce_id": "m-7", "correlation_id": "req-saga-in"}', 'x');
SELECT consistency.retry_consumer_dead_letters('corr-in') AS applied;
SELECT key, pg_temp.ids(headers) FROM consistency.outbox WHERE topic = 'corr.fromin' ORDER BY id;
SELECT stream, pg_temp.ids(metadata) FROM consistency.events WHERE stream LIKE 'corrin-%' ORDER BY global_position;
SELECT "offset", reason LIKE '%handler fails%' AS failed FROM consistency.consumer_dead_letters WHERE consumer = 'corr-in';
-- A saga started by a handler keeps the message's correlation id for its commands.
SELECT correlation_id FROM consistency.saga_instances WHERE name = 'corr_saga';
SELECT consistency._advance_sagas() AS advanced;
SELECT o.headers->>'correlation_id' AS command_correlation, o.headers->>'causation_id' = s.id::text AS caused_by_saga
  FROM consistency.outbox o JOIN consistency.saga_instances s ON o.key = s.id::text WHERE o.topic = 'corr.commands';
SELECT pg_temp.publish_headers('corr.after') AS after_handlers;
ROLLBACK;

DROP SCHEMA corr CASCADE;
SELECT setval('consistency.outbox_id_seq', :outbox_seq_last, :'outbox_seq_called') IS NOT NULL AS outbox_ids_restored;
SELECT count(*) AS outbox_rows_left FROM consistency.outbox WHERE topic LIKE 'corr.%';
