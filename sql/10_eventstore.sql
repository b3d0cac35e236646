-- Event store: every function's success and error paths (CS001, CS002, CS004 and the
-- standard codes used), in a database without a worker.
-- A fresh install, so positions start at 1.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_consistency;
RESET client_min_messages;
CREATE EXTENSION pg_consistency;

-- Reports SQLSTATE, message, detail and hint of a statement's error.
\i sql/include/helpers.sql

-- ---------------------------------------------------------------------------------
-- Appends: expected-version semantics
-- ---------------------------------------------------------------------------------
SELECT consistency.stream_version('order-1') AS absent_is_zero;
SELECT consistency.append_event('order-1', 0, 'OrderPlaced', '{"sku": "A", "qty": 2}') AS v;
SELECT consistency.append_event('order-1', 1, 'OrderPaid', '{"amount": 20}', '{"user": "u1"}') AS v;
SELECT consistency.append_event('order-1', NULL, 'OrderShipped', '{}') AS v;
SELECT consistency.stream_version('order-1') AS v;
SELECT pg_temp.error_of($$SELECT consistency.append_event('order-1', 0, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('order-1', 2, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('order-1', 4, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('order-404', 1, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('order-1', -1, 'X', '{}')$$);
-- A failed append leaves nothing behind.
SELECT consistency.stream_version('order-1') AS still_3, consistency.stream_version('order-404') AS still_0;

-- Multi-event appends: consecutive versions, one call = one atomic unit.
SELECT consistency.append_events('order-2', 0, '[
  {"type": "OrderPlaced", "data": {"sku": "B"}},
  {"type": "OrderPaid", "data": {"amount": 5}, "metadata": {"trace": "t1"}},
  {"type": "OrderShipped", "data": {}, "metadata": null}
]') AS v;
SELECT consistency.append_events('order-2', 3, '[{"type": "OrderClosed", "data": {}}]') AS v;
SELECT pg_temp.error_of($$SELECT consistency.append_events('order-2', 3, '[{"type": "X", "data": {}}]')$$);
SELECT global_position, stream, version, type, schema_version, data, metadata
  FROM consistency.read_stream('order-2');
-- An invalid event in the middle of a call: nothing of the call is stored.
SELECT pg_temp.error_of($$SELECT consistency.append_events('order-3', NULL,
  '[{"type": "A", "data": {}}, {"type": "B", "data": 7}]')$$);
SELECT count(*) AS nothing_stored FROM consistency.events WHERE stream = 'order-3';

-- ---------------------------------------------------------------------------------
-- Validation (CS002)
-- ---------------------------------------------------------------------------------
SELECT pg_temp.error_of($$SELECT consistency.append_event(NULL, NULL, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('', NULL, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event(E'bad\nname', NULL, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event(E'tab\there', NULL, 'X', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event(repeat('s', 1001), NULL, 'X', '{}')$$);
SELECT consistency.append_event(repeat('s', 1000), NULL, 'X', '{}') AS thousand_bytes_ok;
SELECT pg_temp.error_of($$SELECT consistency.append_event('v-1', NULL, NULL, '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('v-1', NULL, '', '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('v-1', NULL, 'X', NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('v-1', NULL, 'X', '[1, 2]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('v-1', NULL, 'X', '"text"')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_event('v-1', NULL, 'X', '{}', '[]')$$);
SELECT consistency.append_event('v-1', NULL, 'X', '{}', NULL) AS null_metadata_is_empty;
SELECT metadata FROM consistency.read_stream('v-1');
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '{"type": "X", "data": {}}')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '"X"')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[42]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[{"data": {}}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[{"type": 5, "data": {}}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[{"type": "X"}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[{"type": "X", "data": null}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[{"type": "X", "data": {}, "metadata": "m"}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[{"type": "X", "data": {}, "id": 12}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[{"type": "X", "data": {}, "id": "not-a-uuid"}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('v-2', NULL, '[
  {"type": "X", "data": {}, "id": "11111111-1111-4111-8111-111111111111"},
  {"type": "Y", "data": {}, "id": "11111111-1111-4111-8111-111111111111"}]')$$);
SELECT count(*) AS nothing_stored FROM consistency.events WHERE stream LIKE 'v-2%';

-- Event size limit (data + metadata in jsonb format).
SET pg_consistency.max_event_bytes = 200;
SELECT pg_temp.error_of($$SELECT consistency.append_event('big-1', NULL, 'X', jsonb_build_object('blob', repeat('x', 300)))$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('big-1', NULL,
  jsonb_build_array(jsonb_build_object('type', 'X', 'data', '{}'::jsonb),
                    jsonb_build_object('type', 'X', 'data', '{}'::jsonb, 'metadata', jsonb_build_object('m', repeat('m', 300)))))$$);
SELECT consistency.append_event('big-1', NULL, 'X', jsonb_build_object('blob', repeat('x', 100))) AS under_limit;
RESET pg_consistency.max_event_bytes;
SHOW pg_consistency.max_event_bytes;

-- ---------------------------------------------------------------------------------
-- Idempotent re-append by event id
-- ---------------------------------------------------------------------------------
SELECT consistency.append_events('pay-1', 0, '[
  {"type": "Authorized", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000001"},
  {"type": "Captured", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000002"}]') AS first;
-- Same ids, same order, same content: a no-op returning the version they were written at,
-- even though the expected version no longer matches.
SELECT consistency.append_events('pay-1', 0, '[
  {"type": "Authorized", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000001"},
  {"type": "Captured", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000002"}]') AS repeat;
SELECT consistency.append_events('pay-1', 2, '[{"type": "Refunded", "data": {}, "id": "a0000000-0000-4000-8000-000000000003"}]') AS v3;
SELECT consistency.append_events('pay-1', NULL, '[
  {"type": "Authorized", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000001"},
  {"type": "Captured", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000002"}]') AS repeat_after_more;
SELECT pg_temp.error_of($$SELECT consistency.append_events('pay-1', 3, '[
  {"type": "Authorized", "data": {"amount": 99}, "id": "a0000000-0000-4000-8000-000000000001"}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('pay-1', 3, '[
  {"type": "Captured", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000002"},
  {"type": "Authorized", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000001"}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('pay-1', 3, '[
  {"type": "Authorized", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000001"},
  {"type": "Settled", "data": {}, "id": "a0000000-0000-4000-8000-000000000009"}]')$$);
SELECT pg_temp.error_of($$SELECT consistency.append_events('pay-1', 3, '[
  {"type": "Captured", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000002"},
  {"type": "Settled", "data": {}}]')$$);
-- An id used in another stream is not a repeat there.
SELECT consistency.append_events('pay-2', 0, '[{"type": "Authorized", "data": {"amount": 10}, "id": "a0000000-0000-4000-8000-000000000001"}]') AS other_stream;
SELECT stream, version, event_id, type FROM consistency.events WHERE stream LIKE 'pay-%' ORDER BY global_position;

-- ---------------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------------
SELECT global_position, version, type FROM consistency.read_stream('order-1');
SELECT global_position, version, type FROM consistency.read_stream('order-1', 2);
SELECT global_position, version, type FROM consistency.read_stream('order-1', 2, 1);
SELECT global_position, version, type FROM consistency.read_stream('order-1', 0, 2);
SELECT count(*) AS absent_stream FROM consistency.read_stream('nobody-1');
SELECT pg_temp.error_of($$SELECT consistency.stream_version(NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.stream_version(E'x\ry')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_stream('order-1', -1)$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_stream('order-1', 1, 0)$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_stream('order-1', NULL)$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_stream('', 1)$$);
SELECT global_position, stream, version FROM consistency.read_all() ORDER BY global_position LIMIT 5;
SELECT global_position, stream, version FROM consistency.read_all(3, 4);
SELECT global_position, stream, version FROM consistency.read_all(0, 100, 'order');
SELECT global_position, stream, version FROM consistency.read_all(5, 2, 'order');
SELECT count(*) AS no_such_category FROM consistency.read_all(0, 100, 'nothing');
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_all(-1)$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_all(0, 0)$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_all(NULL)$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_all(0, 10, 'order-1')$$);
-- read_all ends below the horizon; with nothing open the horizon is the next position.
SELECT consistency.read_horizon() = (SELECT max(global_position) + 1 FROM consistency.events) AS horizon_is_next;
SELECT max(global_position) = (SELECT max(global_position) FROM consistency.events) AS read_all_reaches_the_end
  FROM consistency.read_all(0, 1000);
-- An open appending transaction holds the horizon at its first position; its own
-- events are not returned by read_all before it commits.
BEGIN;
SELECT consistency.append_event('open-1', NULL, 'X', '{}') AS v;
SELECT consistency.read_horizon() = consistency.last_appended_position() AS horizon_held_at_own_position;
SELECT count(*) AS own_event_not_in_read_all FROM consistency.read_all(0, 1000) WHERE stream = 'open-1';
SELECT count(*) AS own_event_in_read_stream FROM consistency.read_stream('open-1');
SELECT pid = pg_backend_pid() AS me, lower_bound = consistency.last_appended_position() AS bound,
       since IS NOT NULL AS has_since
  FROM consistency.open_writers;
COMMIT;
SELECT count(*) AS open_writers_after_commit FROM consistency.open_writers;
SELECT count(*) AS visible_after_commit FROM consistency.read_all(0, 1000) WHERE stream = 'open-1';
-- last_appended_position: a rolled-back append does not count.
SELECT consistency.last_appended_position() = (SELECT max(global_position) FROM consistency.events) AS token;
BEGIN;
SELECT consistency.append_event('open-2', NULL, 'X', '{}') > 0 AS appended;
ROLLBACK;
SELECT consistency.last_appended_position() = (SELECT max(global_position) FROM consistency.events) AS token_unchanged;

-- ---------------------------------------------------------------------------------
-- Immutability and privileges
-- ---------------------------------------------------------------------------------
SELECT pg_temp.error_of($$UPDATE consistency.events SET type = 'Hacked'$$);
SELECT pg_temp.error_of($$DELETE FROM consistency.events WHERE stream = 'order-1'$$);
SELECT pg_temp.error_of($$DELETE FROM consistency.events WHERE false$$);
SELECT pg_temp.error_of($$TRUNCATE consistency.events$$);
SET session_replication_role = replica;
SELECT pg_temp.error_of($$DELETE FROM consistency.events$$);
RESET session_replication_role;
SELECT count(*) AS events_intact FROM consistency.events WHERE stream = 'order-1';

CREATE ROLE regress_es_reader LOGIN IN ROLE consistency_reader;
CREATE ROLE regress_es_writer LOGIN IN ROLE consistency_writer;
CREATE ROLE regress_es_outsider LOGIN;
SET ROLE regress_es_reader;
SELECT count(*) > 0 AS reader_reads FROM consistency.read_stream('order-1');
SELECT count(*) > 0 AS reader_reads_all FROM consistency.read_all();
SELECT consistency.stream_version('order-1') AS reader_version;
SELECT pg_temp.error_of($$SELECT consistency.append_event('order-1', NULL, 'X', '{}')$$);
SELECT pg_temp.error_of($$INSERT INTO consistency.events (stream, version, event_id, type, data) VALUES ('x', 1, gen_random_uuid(), 'X', '{}')$$);
RESET ROLE;
SET ROLE regress_es_writer;
SELECT consistency.append_event('order-1', 3, 'OrderClosed', '{}') AS writer_appends;
SELECT pg_temp.error_of($$INSERT INTO consistency.events (stream, version, event_id, type, data) VALUES ('x', 1, gen_random_uuid(), 'X', '{}')$$);
SELECT pg_temp.error_of($$UPDATE consistency.streams SET version = 100$$);
SELECT pg_temp.error_of($$DELETE FROM consistency.events$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('X', 1, 'jsonb_strip_nulls(jsonb)')$$);
RESET ROLE;
SET ROLE regress_es_outsider;
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_stream('order-1')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.events$$);
RESET ROLE;

-- ---------------------------------------------------------------------------------
-- Upcasting
-- ---------------------------------------------------------------------------------
CREATE FUNCTION public.es_v1_to_v2(d jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ SELECT (d - 'qty') || jsonb_build_object('quantity', d->'qty') $$;
CREATE FUNCTION public.es_v2_to_v3(d jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ SELECT d || '{"currency": "EUR"}' $$;
CREATE FUNCTION public.es_returns_null(d jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION public.es_wrong_args(d text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION public.es_wrong_result(d jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
SELECT consistency.append_event('item-1', NULL, 'ItemAdded', '{"sku": "A", "qty": 1}') AS v1_event;
SELECT consistency.register_upcaster('ItemAdded', 1, 'public.es_v1_to_v2(jsonb)');
SELECT consistency.append_event('item-1', NULL, 'ItemAdded', '{"sku": "B", "quantity": 2}') AS v2_event;
SELECT consistency.register_upcaster('ItemAdded', 2, 'public.es_v2_to_v3(jsonb)');
SELECT consistency.append_event('item-1', NULL, 'ItemAdded', '{"sku": "C", "quantity": 3, "currency": "USD"}') AS v3_event;
-- Stored as appended, each stamped with the latest schema version at the time:
SELECT version, schema_version, data FROM consistency.events WHERE stream = 'item-1' ORDER BY version;
-- Read upcast to the latest version, chains applied in order:
SELECT version, schema_version, data FROM consistency.read_stream('item-1');
SELECT version, schema_version, data FROM consistency.read_all(0, 1000, 'item');
SELECT event_type, from_schema_version, fn FROM consistency.upcasters ORDER BY 1, 2;
-- Chain rules and validation:
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('ItemAdded', 4, 'public.es_v2_to_v3(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('ItemAdded', 0, 'public.es_v2_to_v3(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('Other', 2, 'public.es_v2_to_v3(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('ItemAdded', 3, 'public.es_wrong_args(text)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('ItemAdded', 3, 'public.es_wrong_result(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('', 1, 'public.es_v2_to_v3(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster(NULL, 1, 'public.es_v2_to_v3(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('ItemAdded', NULL, 'public.es_v2_to_v3(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('ItemAdded', 1, NULL)$$);
-- Replacing a link is allowed; an upcaster returning NULL fails the read with CS002.
SELECT consistency.register_upcaster('ItemAdded', 2, 'public.es_returns_null(jsonb)');
SELECT pg_temp.error_of($$SELECT * FROM consistency.read_stream('item-1')$$);
SELECT consistency.register_upcaster('ItemAdded', 2, 'public.es_v2_to_v3(jsonb)');
SELECT count(*) AS readable_again FROM consistency.read_stream('item-1');

-- ---------------------------------------------------------------------------------
-- Snapshots and aggregates
-- ---------------------------------------------------------------------------------
CREATE FUNCTION public.es_apply_account(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'balance', (state->>'balance')::numeric + CASE type WHEN 'Deposited' THEN (data->>'amount')::numeric
                                                        WHEN 'Withdrawn' THEN -(data->>'amount')::numeric ELSE 0 END,
    'events', coalesce((state->>'events')::int, 0) + 1)
$$;
CREATE FUNCTION public.es_apply_null(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION public.es_apply_wrong(state jsonb, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT state $$;
SELECT pg_temp.error_of($$SELECT * FROM consistency.aggregate_state('account-1')$$);
SELECT consistency.register_aggregate('account', 'public.es_apply_account(jsonb,text,jsonb)', '{"balance": 0}', 3);
SELECT category, apply_fn, initial_state, snapshot_every FROM consistency.aggregates;
SELECT * FROM consistency.aggregate_state('account-1') AS absent_stream;
SELECT consistency.append_events('account-1', 0, '[
  {"type": "Deposited", "data": {"amount": 100}},
  {"type": "Withdrawn", "data": {"amount": 30}}]') AS v;
SELECT * FROM consistency.aggregate_state('account-1') AS below_snapshot_every;
SELECT count(*) AS no_snapshot_yet FROM consistency.snapshots;
SELECT consistency.append_events('account-1', 2, '[
  {"type": "Deposited", "data": {"amount": 5}},
  {"type": "Deposited", "data": {"amount": 7}}]') AS v;
SELECT * FROM consistency.aggregate_state('account-1') AS folded_four;
SELECT stream, version, state FROM consistency.snapshots;
SELECT * FROM consistency.load_snapshot('account-1');
SELECT stream, version, folded FROM consistency.snapshots;
-- A snapshot saved by hand (save_snapshot) serves load_snapshot only: aggregate_state
-- starts only from snapshots its own folds saved, so a planted state never reaches a
-- reader. Here the hand-saved one replaced the folded one at version 4, so the next fold
-- starts from the initial state, and its snapshot replaces the planted one.
SELECT consistency.save_snapshot('account-1', 4, '{"balance": 1000, "events": 4}');
SELECT * FROM consistency.load_snapshot('account-1') AS hand_saved;
SELECT consistency.append_event('account-1', 4, 'Withdrawn', '{"amount": 1}') AS v;
SELECT * FROM consistency.aggregate_state('account-1') AS true_fold_not_the_planted_state;
SELECT stream, version, state, folded FROM consistency.snapshots;
SELECT count(*) AS no_rows FROM consistency.load_snapshot('account-404');
-- Snapshot validation.
SELECT pg_temp.error_of($$SELECT consistency.save_snapshot('account-1', 6, '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.save_snapshot('account-404', 1, '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.save_snapshot('account-1', 0, '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.save_snapshot('account-1', NULL, '{}')$$);
SELECT pg_temp.error_of($$SELECT consistency.save_snapshot('account-1', 1, NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.save_snapshot('', 1, '{}')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.load_snapshot(E'a\tb')$$);
-- Re-registering with another initial state drops the category's snapshots.
SELECT consistency.register_aggregate('account', 'public.es_apply_account(jsonb,text,jsonb)', '{"balance": 1}', 3);
SELECT count(*) AS snapshots_dropped FROM consistency.snapshots;
SELECT * FROM consistency.aggregate_state('account-1') AS refolded;
-- snapshot_every = 0 never saves.
SELECT consistency.register_aggregate('account', 'public.es_apply_account(jsonb,text,jsonb)', '{"balance": 1}', 0);
SELECT count(*) AS kept FROM consistency.snapshots;
SELECT consistency.append_events('account-1', 5, '[{"type": "Deposited", "data": {"amount": 1}},
  {"type": "Deposited", "data": {"amount": 1}}, {"type": "Deposited", "data": {"amount": 1}},
  {"type": "Deposited", "data": {"amount": 1}}]') AS v;
SELECT * FROM consistency.aggregate_state('account-1') AS no_new_snapshot;
SELECT max(version) AS latest_snapshot_still FROM consistency.snapshots;
-- Aggregate validation and failures.
SELECT pg_temp.error_of($$SELECT consistency.register_aggregate('account', 'public.es_apply_wrong(jsonb,jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_aggregate('account-1', 'public.es_apply_account(jsonb,text,jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_aggregate('', 'public.es_apply_account(jsonb,text,jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_aggregate('account', 'public.es_apply_account(jsonb,text,jsonb)', '{}', -1)$$);
SELECT pg_temp.error_of($$SELECT consistency.register_aggregate('account', 'public.es_apply_account(jsonb,text,jsonb)', NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.register_aggregate(NULL, 'public.es_apply_account(jsonb,text,jsonb)')$$);
SELECT consistency.register_aggregate('nullacct', 'public.es_apply_null(jsonb,text,jsonb)');
SELECT consistency.append_event('nullacct-1', NULL, 'Deposited', '{"amount": 1}') AS v;
SELECT pg_temp.error_of($$SELECT * FROM consistency.aggregate_state('nullacct-1')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.aggregate_state('nobody-1')$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.aggregate_state(NULL)$$);

-- ---------------------------------------------------------------------------------
-- Subscriptions (no worker here: _subscription_step runs one batch as the worker would)
-- ---------------------------------------------------------------------------------
CREATE TABLE public.es_projection (global_position bigint PRIMARY KEY, stream text, type text, run_as text);
GRANT SELECT, INSERT ON public.es_projection TO regress_es_writer;
CREATE FUNCTION public.es_project(global_position bigint, stream text, version bigint, type text,
                                  data jsonb, metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF data ? 'poison' THEN
    RAISE EXCEPTION 'cannot project event % of %', version, stream USING DETAIL = 'poisoned payload';
  END IF;
  INSERT INTO public.es_projection VALUES (global_position, stream, type, current_user);
END $$;
CREATE FUNCTION public.es_wrong_handler(p bigint, s text) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SET ROLE regress_es_writer;
SET pg_consistency.subscription_max_attempts = 2;
SELECT consistency.create_subscription('orders', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)',
                                       ARRAY['order'], NULL, 0);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('orders', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('bad', 'public.es_wrong_handler(bigint,text)')$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('bad', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)', ARRAY[]::text[])$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('bad', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['a-b'])$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('bad', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)', NULL, ARRAY[NULL])$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('bad', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)', NULL, NULL, -5)$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription(NULL, 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('bad', NULL)$$);
RESET ROLE;
SELECT name, position, status, last_error, lag, owner, categories, event_types, attempts, max_attempts
  FROM consistency.subscriptions;
-- The handler runs as the subscription's owner, in global order, for matching events.
SELECT consistency._subscription_step('orders') AS handled;
SELECT global_position, stream, type, run_as FROM public.es_projection ORDER BY global_position;
SELECT name, position = (SELECT max(global_position) FROM consistency.events) AS caught_up, status, lag
  FROM consistency.subscriptions;
SELECT consistency.wait_for_subscription('orders', (SELECT max(global_position) FROM consistency.events), '0 s') AS reached;
SELECT consistency.wait_for_subscription('orders', (SELECT max(global_position) + 1 FROM consistency.events), '10 ms') AS not_yet;
SELECT consistency._subscription_step('orders') AS nothing_new;
-- A failing handler: the event is retried, never skipped; parked after max_attempts.
SELECT consistency.append_event('order-7', NULL, 'OrderPlaced', '{}') AS v;
SELECT consistency.append_event('order-7', NULL, 'OrderPlaced', '{"poison": true}') AS v;
SELECT consistency.append_event('order-8', NULL, 'OrderPlaced', '{}') AS v;
SELECT consistency._subscription_step('orders') AS handled_before_failure;
SELECT position = (SELECT global_position FROM consistency.events WHERE stream = 'order-7' AND version = 1) AS stops_before_poison,
       status, attempts, last_error
  FROM consistency.subscriptions;
SELECT consistency._subscription_step('orders') AS second_attempt;
SELECT status, attempts, last_error FROM consistency.subscriptions;
SELECT consistency._subscription_step('orders') AS parked_does_nothing;
SELECT consistency.wait_for_subscription('orders', (SELECT max(global_position) FROM consistency.events), '1 s') AS parked_returns_false;
SELECT count(*) AS only_first_order7_event FROM public.es_projection WHERE stream = 'order-7';
-- Metrics show the parked subscription and its lag.
SELECT metric, labels, value FROM consistency._metrics_eventstore() WHERE metric LIKE '%subscription%' ORDER BY metric;
-- reset_subscription replays from a position and reactivates.
CREATE OR REPLACE FUNCTION public.es_project(global_position bigint, stream text, version bigint, type text,
                                             data jsonb, metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.es_projection VALUES (global_position, stream, type, current_user) ON CONFLICT DO NOTHING;
END $$;
SELECT consistency.reset_subscription('orders', 0);
SELECT name, position, status, attempts, last_error FROM consistency.subscriptions;
SELECT consistency._subscription_step('orders') AS replayed;
SELECT status, attempts, last_error, lag FROM consistency.subscriptions;
SELECT count(*) AS order_events, (SELECT count(*) FROM public.es_projection) AS projected
  FROM consistency.events WHERE category = 'order';
-- Event-type filters; a subscription starting at a position.
SET ROLE regress_es_writer;
SELECT consistency.create_subscription('placed', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)',
                                       NULL, ARRAY['OrderPlaced'], (SELECT max(global_position) FROM consistency.events));
SELECT consistency.append_event('order-9', NULL, 'OrderPaid', '{}') AS v;
SELECT consistency.append_event('order-9', NULL, 'OrderPlaced', '{}') AS v;
RESET ROLE;
SELECT consistency._subscription_step('placed') AS handled_only_placed;
SELECT stream, type FROM public.es_projection WHERE stream = 'order-9';
-- Management rights: only the owner or consistency_admin; unknown names are CS004.
SET ROLE regress_es_reader;
SELECT pg_temp.error_of($$SELECT consistency.drop_subscription('orders')$$);
RESET ROLE;
CREATE ROLE regress_es_writer2 LOGIN IN ROLE consistency_writer;
SET ROLE regress_es_writer2;
SELECT pg_temp.error_of($$SELECT consistency.reset_subscription('orders', 0)$$);
SELECT pg_temp.error_of($$SELECT consistency.drop_subscription('orders')$$);
RESET ROLE;
SELECT pg_temp.error_of($$SELECT consistency.drop_subscription('nope')$$);
SELECT pg_temp.error_of($$SELECT consistency.reset_subscription('nope', 0)$$);
SELECT pg_temp.error_of($$SELECT consistency.reset_subscription('orders', -1)$$);
SELECT pg_temp.error_of($$SELECT consistency.reset_subscription('orders', NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_subscription('nope', 1)$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_subscription('orders', NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_subscription('orders', 1, '-1 s')$$);
SELECT pg_temp.error_of($$SELECT consistency._subscription_step('nope')$$);
-- A handler the owner may no longer execute: counted as a failure, nothing skipped.
REVOKE EXECUTE ON FUNCTION public.es_project(bigint,text,bigint,text,jsonb,jsonb) FROM PUBLIC;
SELECT consistency.append_event('order-10', NULL, 'OrderPlaced', '{}') AS v;
SELECT consistency._subscription_step('orders') AS handled_without_privilege;
SELECT status, attempts, last_error,
       position < (SELECT global_position FROM consistency.events WHERE stream = 'order-10') AS stops_before_it
  FROM consistency.subscriptions WHERE name = 'orders';
GRANT EXECUTE ON FUNCTION public.es_project(bigint,text,bigint,text,jsonb,jsonb) TO regress_es_writer;
SELECT consistency._subscription_step('orders') AS handled_with_privilege;
SELECT status, attempts, last_error, lag FROM consistency.subscriptions WHERE name = 'orders';
SET ROLE regress_es_writer;
SELECT consistency.drop_subscription('placed');
RESET ROLE;
SELECT consistency.drop_subscription('orders');
SELECT count(*) AS no_subscriptions FROM consistency.subscriptions;

-- ---------------------------------------------------------------------------------
-- Security: what runs as whom, EXECUTE rights, the reserved category, hostile callers.
-- regress_es_mallory: a writer owning schema regress_es_mallory; regress_es_rita: a reader
-- with nothing but the default TEMP right; regress_es_admin: consistency_admin.
-- ---------------------------------------------------------------------------------
CREATE ROLE regress_es_admin LOGIN IN ROLE consistency_admin;
CREATE ROLE regress_es_mallory LOGIN IN ROLE consistency_writer;
CREATE ROLE regress_es_rita LOGIN IN ROLE consistency_reader;
CREATE SCHEMA regress_es_mallory AUTHORIZATION regress_es_mallory;
-- Valid UTF-8 (convert_from checks it), else an error.
CREATE FUNCTION pg_temp.utf8_ok(t text) RETURNS boolean LANGUAGE sql AS
  $$ SELECT convert_from(convert_to(t, 'UTF8'), 'UTF8') = t $$;

-- Reserved streams: category "saga" holds the sagas' audit trails, which only the
-- extension appends to (through its C entry points, as start_saga does here). The SQL
-- functions refuse them for every role, the superuser included.
SELECT consistency.define_saga('es_audit', '{"steps": [{"name": "ship", "action": {"topic": "es.commands", "command": "Ship"}}]}') AS defined;
SELECT consistency.start_saga('es_audit', '{}') AS saga_id \gset
SELECT count(*) > 0 AS audit_trail_written_by_the_extension FROM consistency.read_stream('saga-' || :'saga_id');
SELECT consistency.stream_version('saga-' || :'saga_id') AS audit_version \gset
SET ROLE regress_es_mallory;
SELECT regexp_replace(pg_temp.error_of(format($$SELECT consistency.append_event(%L, NULL, 'SagaCompleted', '{}')$$, 'saga-' || :'saga_id')),
                      '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>') AS forged_audit_event;
SELECT regexp_replace(pg_temp.error_of(format($$SELECT consistency.append_events(%L, NULL, '[{"type": "SagaCompleted", "data": {}}]')$$, 'saga-' || :'saga_id')),
                      '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>') AS forged_audit_events;
SELECT regexp_replace(pg_temp.error_of(format($$SELECT consistency.save_snapshot(%L, 1, '{}')$$, 'saga-' || :'saga_id')),
                      '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>') AS forged_audit_snapshot;
SELECT pg_temp.error_of($$SELECT consistency.append_event('saga', NULL, 'X', '{}')$$) AS the_bare_category;
SELECT pg_temp.error_of($$SELECT consistency.append_events('saga-new', 0, '[{"type": "SagaStarted", "data": {}}]')$$) AS a_new_saga_stream;
SELECT consistency.append_event('sagas-1', NULL, 'X', '{}') AS other_categories_are_free;
RESET ROLE;
SELECT pg_temp.error_of($$SELECT consistency.append_event('saga-1', NULL, 'X', '{}')$$) AS not_even_the_superuser;
SELECT consistency.stream_version('saga-' || :'saga_id') = :audit_version AS audit_trail_untouched,
       (SELECT count(*) FROM consistency.snapshots WHERE stream LIKE 'saga%') AS no_snapshots;

-- The nil UUID is an event id like any other. (It used to stand for "no id" in the
-- idempotency check, so a later call mixing events with and without ids failed with CS001.)
SELECT consistency.append_events('nil-1', 0, '[{"type": "A", "data": {}, "id": "00000000-0000-0000-0000-000000000000"}]') AS v;
SELECT consistency.append_events('nil-1', 1, '[{"type": "B", "data": {}, "id": "c0000000-0000-4000-8000-000000000001"},
                                              {"type": "C", "data": {}}]') AS mixed_call_after_nil;
SELECT consistency.append_events('nil-1', 0, '[{"type": "A", "data": {}, "id": "00000000-0000-0000-0000-000000000000"}]') AS nil_repeat_is_a_no_op;
SELECT pg_temp.error_of($$SELECT consistency.append_events('nil-1', NULL, '[{"type": "A", "data": {"other": 1}, "id": "00000000-0000-0000-0000-000000000000"}]')$$) AS nil_clash;
SELECT version, CASE WHEN type = 'C' THEN 'generated' ELSE event_id::text END AS event_id, type
  FROM consistency.read_stream('nil-1');

-- Huge names are never echoed whole: messages clip them (on a character boundary).
CREATE TEMP TABLE es_huge (call text, err text);
INSERT INTO es_huge SELECT c, pg_temp.error_of(s) FROM (VALUES
  ('append_event stream', format($$SELECT consistency.append_event(%L, NULL, 'X', '{}')$$, repeat('s', 100000))),
  ('append_event multibyte stream', format($$SELECT consistency.append_event(%L, NULL, 'X', '{}')$$, 'x' || repeat('é', 50000))),
  ('append_event type', format($$SELECT consistency.append_event('huge-1', NULL, %L, '{}')$$, repeat('t', 100000))),
  ('append_events type', format($$SELECT consistency.append_events('huge-1', NULL, %L)$$,
                                jsonb_build_array(jsonb_build_object('type', repeat('t', 100000), 'data', '{}'::jsonb)))),
  ('read_stream', format($$SELECT * FROM consistency.read_stream(%L)$$, repeat('s', 100000))),
  ('read_all category', format($$SELECT * FROM consistency.read_all(0, 10, %L)$$, repeat('c', 100000))),
  ('read_all multibyte category', format($$SELECT * FROM consistency.read_all(0, 10, %L)$$, 'x' || repeat('é', 50000) || '-')),
  ('aggregate_state', format($$SELECT * FROM consistency.aggregate_state(%L)$$, repeat('s', 100000))),
  ('register_aggregate', format($$SELECT consistency.register_aggregate(%L, 'public.es_apply_account(jsonb,text,jsonb)')$$, repeat('c', 100000))),
  ('register_upcaster', format($$SELECT consistency.register_upcaster(%L, 1, 'public.es_v1_to_v2(jsonb)')$$, repeat('t', 100000))),
  ('create_subscription', format($$SELECT consistency.create_subscription(%L, 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)')$$, repeat('n', 100000))),
  ('create_subscription filter', format($$SELECT consistency.create_subscription('huge', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)', ARRAY[%L])$$, repeat('c', 100000))),
  ('drop_subscription', format($$SELECT consistency.drop_subscription(%L)$$, repeat('n', 100000))),
  ('wait_for_subscription', format($$SELECT consistency.wait_for_subscription(%L, 1)$$, repeat('n', 100000)))
) AS t(c, s);
SELECT call, split_part(err, ' | ', 1) AS sqlstate, octet_length(err) < 400 AS clipped, pg_temp.utf8_ok(err) AS valid
  FROM es_huge;
-- A 1,000-byte category (the longest a stream allows) is clipped to about 200 bytes.
SELECT octet_length(e) < 400 AS unknown_category_clipped, e LIKE '%é...%' AS marked, pg_temp.utf8_ok(e) AS valid
  FROM pg_temp.error_of(format($$SELECT * FROM consistency.aggregate_state(%L)$$, repeat('é', 499) || 'x')) AS e;

-- EXECUTE rights. A role registers only functions it may call itself; at run time the
-- role that runs a function must (still) be allowed to: upcasters on reads run as the
-- reader, folds as the aggregate's registrant, handlers as the subscription's owner.
CREATE FUNCTION public.es_secret_up(d jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT d || '{"upcast": true}' $$;
CREATE FUNCTION public.es_secret_apply(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT state || data $$;
CREATE FUNCTION public.es_secret_handler(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
  LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON FUNCTION public.es_secret_up(jsonb), public.es_secret_apply(jsonb,text,jsonb),
  public.es_secret_handler(bigint,text,bigint,text,jsonb,jsonb) FROM PUBLIC;
SELECT consistency.append_event('secret-1', NULL, 'Secret', '{"n": 1}') AS v;
SET ROLE regress_es_admin;
SELECT pg_temp.error_of($$SELECT consistency.register_upcaster('Secret', 1, 'public.es_secret_up(jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.register_aggregate('secret', 'public.es_secret_apply(jsonb,text,jsonb)')$$);
SELECT pg_temp.error_of($$SELECT consistency.create_subscription('secret', 'public.es_secret_handler(bigint,text,bigint,text,jsonb,jsonb)')$$);
RESET ROLE;
SELECT (SELECT count(*) FROM consistency.upcasters WHERE event_type = 'Secret') AS upcasters,
       (SELECT count(*) FROM consistency.aggregates WHERE category = 'secret') AS aggregates,
       (SELECT count(*) FROM consistency.subscription_state WHERE name = 'secret') AS subscriptions;
GRANT EXECUTE ON FUNCTION public.es_secret_up(jsonb), public.es_secret_apply(jsonb,text,jsonb) TO regress_es_admin;
SET ROLE regress_es_admin;
SELECT consistency.register_upcaster('Secret', 1, 'public.es_secret_up(jsonb)');
SELECT consistency.register_aggregate('secret', 'public.es_secret_apply(jsonb,text,jsonb)', '{}', 0);
RESET ROLE;
SET ROLE regress_es_rita;
SELECT pg_temp.error_of($$SELECT data FROM consistency.read_stream('secret-1')$$) AS reader_without_execute;
SELECT * FROM consistency.aggregate_state('secret-1') AS folded_as_the_registrant;
RESET ROLE;
GRANT EXECUTE ON FUNCTION public.es_secret_up(jsonb) TO regress_es_rita;
SET ROLE regress_es_rita;
SELECT data FROM consistency.read_stream('secret-1') AS reader_with_execute;
RESET ROLE;
-- Revoked after registration: refused when the fold runs.
REVOKE EXECUTE ON FUNCTION public.es_secret_apply(jsonb,text,jsonb) FROM regress_es_admin;
SET ROLE regress_es_rita;
SELECT pg_temp.error_of($$SELECT * FROM consistency.aggregate_state('secret-1')$$) AS registrant_lost_the_apply_function;
RESET ROLE;
GRANT EXECUTE ON FUNCTION public.es_secret_apply(jsonb,text,jsonb) TO regress_es_admin;
REVOKE EXECUTE ON FUNCTION public.es_secret_up(jsonb) FROM regress_es_admin;
SET ROLE regress_es_rita;
SELECT pg_temp.error_of($$SELECT * FROM consistency.aggregate_state('secret-1')$$) AS registrant_lost_the_upcaster;
RESET ROLE;
-- A handler's owner needs EXECUTE on the upcasters of the events it handles, too.
SET ROLE regress_es_writer;
SELECT consistency.create_subscription('secret_sub', 'public.es_project(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['secret']);
RESET ROLE;
SELECT consistency._subscription_step('secret_sub') AS handled;
SELECT status, attempts, regexp_replace(last_error, 'position [0-9]+', 'position N') AS last_error
  FROM consistency.subscriptions WHERE name = 'secret_sub';
SELECT consistency.drop_subscription('secret_sub');

-- A reader used to plant a false aggregate snapshot: the fold ran the apply function in
-- the caller's context (an operator of its own first on its search path) and saved the
-- result with the owner's rights. The fold now runs as the registering role with
-- search_path = pg_catalog, pg_temp, and only such folds save snapshots.
CREATE FUNCTION public.es_apply_balance(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT ('{"balance": ' || ((state->>'balance')::numeric + (data->>'amount')::numeric)::text || '}')::jsonb
$$;
SET ROLE regress_es_admin;
SELECT consistency.register_aggregate('vault', 'public.es_apply_balance(jsonb,text,jsonb)', '{"balance": 0}', 1);
RESET ROLE;
SELECT consistency.append_events('vault-1', 0, '[{"type": "Deposited", "data": {"amount": 10}},
                                                {"type": "Deposited", "data": {"amount": 5}}]') AS v;
SET ROLE regress_es_mallory;
CREATE FUNCTION regress_es_mallory.forged_add(a numeric, b numeric) RETURNS numeric LANGUAGE sql
  AS $$ SELECT 1000000::pg_catalog.numeric $$;
CREATE OPERATOR regress_es_mallory.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = regress_es_mallory.forged_add);
SET search_path = regress_es_mallory, pg_catalog;
SELECT 1::numeric + 1::numeric AS shadowed_for_mallory;
SELECT * FROM consistency.aggregate_state('vault-1') AS true_fold_for_mallory;
RESET search_path;
RESET ROLE;
SELECT consistency.append_event('vault-1', 2, 'Deposited', '{"amount": 7}') AS v;
-- rita, with only TEMP: domains over text and jsonb in pg_temp (searched first for types
-- on an ordinary path) whose check would run any code in the fold.
SET ROLE regress_es_rita;
CREATE FUNCTION pg_temp.evil(v anyelement) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'pg_temp.evil ran as %', current_user;
END $$;
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (pg_temp.evil(VALUE));
CREATE DOMAIN pg_temp.jsonb AS pg_catalog.jsonb CHECK (pg_temp.evil(VALUE));
SELECT pg_temp.error_of($$SELECT '{}'::jsonb$$) AS the_trap_is_armed;
SELECT * FROM consistency.aggregate_state('vault-1') AS true_fold_for_rita;
DROP DOMAIN pg_temp.text, pg_temp.jsonb;
DROP FUNCTION pg_temp.evil(anyelement);
RESET ROLE;
-- An upcaster called first in mallory's own context (where her operator applies) and
-- then by the fold, in one transaction: the fold does not reuse what her call parsed.
CREATE FUNCTION public.es_fee_up(d jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ SELECT jsonb_build_object('amount', (d->>'amount')::numeric + 1) $$;
SELECT consistency.append_event('vault-1', 3, 'Fee', '{"amount": 2}') AS v;
SELECT consistency.register_upcaster('Fee', 1, 'public.es_fee_up(jsonb)');
SET ROLE regress_es_mallory;
BEGIN;
SET LOCAL search_path = regress_es_mallory, pg_catalog;
SELECT version, data FROM consistency.read_stream('vault-1', 4) AS upcast_in_mallorys_own_context;
SELECT * FROM consistency.aggregate_state('vault-1') AS true_fold_in_the_same_transaction;
COMMIT;
RESET ROLE;
-- What later readers get, and what was saved.
SET ROLE regress_es_reader;
SELECT * FROM consistency.aggregate_state('vault-1') AS later_reader;
SELECT * FROM consistency.load_snapshot('vault-1') AS saved;
RESET ROLE;
SELECT stream, version, state, folded FROM consistency.snapshots WHERE stream = 'vault-1';
-- The registering role must still exist.
CREATE ROLE regress_es_gone IN ROLE consistency_admin;
GRANT EXECUTE ON FUNCTION public.es_secret_apply(jsonb,text,jsonb) TO regress_es_gone;
SET ROLE regress_es_gone;
SELECT consistency.register_aggregate('orphan', 'public.es_secret_apply(jsonb,text,jsonb)', '{}', 0);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION public.es_secret_apply(jsonb,text,jsonb) FROM regress_es_gone;
DROP ROLE regress_es_gone;
SELECT pg_temp.error_of($$SELECT * FROM consistency.aggregate_state('orphan-1')$$) AS registrant_dropped;

-- Subscription handlers run as their owner with search_path = pg_catalog, pg_temp, as a
-- security-restricted operation with a time limit; nothing they change outlives the call.
CREATE TABLE public.es_seen (global_position bigint, run_as text, search_path text);
GRANT INSERT ON public.es_seen TO regress_es_writer;
CREATE FUNCTION public.es_meddle(global_position bigint, stream text, version bigint, type text,
                                 data jsonb, metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.es_seen VALUES (global_position, current_user, current_setting('search_path'));
  PERFORM set_config('search_path', 'regress_es_mallory, pg_catalog', false);
  PERFORM set_config('work_mem', '77MB', false);
  IF data ? 'slow' THEN
    PERFORM pg_sleep(30);
  END IF;
END $$;
SET ROLE regress_es_writer;
SELECT consistency.create_subscription('meddler', 'public.es_meddle(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['meddle']);
RESET ROLE;
SELECT consistency.append_event('meddle-1', NULL, 'Touched', '{}') AS v;
SELECT consistency._subscription_step('meddler') AS handled;
SELECT run_as, search_path FROM public.es_seen;
SHOW search_path;
SHOW work_mem;
-- A handler that runs longer than pg_consistency.subscription_handler_timeout is
-- cancelled: a failed attempt with its reason (the worker retries it with backoff and
-- parks it after max_attempts).
SET pg_consistency.subscription_handler_timeout = '200ms';
SELECT consistency.append_event('meddle-1', NULL, 'Touched', '{"slow": true}') AS v;
SELECT clock_timestamp() AS t0 \gset
SELECT consistency._subscription_step('meddler') AS handled;
SELECT clock_timestamp() - :'t0' < interval '10 s' AS cancelled_in_time;
SELECT status, attempts, regexp_replace(last_error, 'position [0-9]+', 'position N') AS last_error
  FROM consistency.subscriptions WHERE name = 'meddler';
SELECT pg_sleep(0.3), 'the session''s own statements are not cancelled afterwards' AS note;
RESET pg_consistency.subscription_handler_timeout;
SET ROLE regress_es_writer;
SELECT pg_temp.error_of($$SET pg_consistency.subscription_handler_timeout = '1h'$$) AS tenants_cannot_raise_it;
SELECT consistency.drop_subscription('meddler');
RESET ROLE;

-- Hostile callers around every entry point: pg_temp domains over the types our
-- statements use, and operators and functions of their own first on the search path.
-- Our statements run as the owner with only pg_catalog on the path, so none of it runs
-- with raised rights (each trap raises if it runs as anyone but its creator).
CREATE TEMP TABLE es_hostile (call text, result text);
GRANT INSERT ON es_hostile TO regress_es_mallory;
SET ROLE regress_es_mallory;
CREATE TEMP TABLE pg_trigger (tgrelid oid, tgname name, tgenabled "char");
CREATE TEMP TABLE pg_sequence (seqrelid oid, seqcache int8, seqincrement int8);
CREATE FUNCTION regress_es_mallory.trap() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF current_user OPERATOR(pg_catalog.<>) 'regress_es_mallory' THEN
    RAISE EXCEPTION 'mallory''s trap ran as %', current_user;
  END IF;
END $$;
CREATE FUNCTION regress_es_mallory.eq_text(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM regress_es_mallory.trap(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION regress_es_mallory.eq_uuid(a uuid, b uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM regress_es_mallory.trap(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION regress_es_mallory.eq_jsonb(a jsonb, b jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM regress_es_mallory.trap(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION regress_es_mallory.add_int8(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM regress_es_mallory.trap(); RETURN a OPERATOR(pg_catalog.+) b; END $$;
CREATE FUNCTION regress_es_mallory.gt_int8(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM regress_es_mallory.trap(); RETURN a OPERATOR(pg_catalog.>) b; END $$;
CREATE FUNCTION regress_es_mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM regress_es_mallory.trap(); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION regress_es_mallory.split_part(a text, b text, n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM regress_es_mallory.trap(); RETURN pg_catalog.split_part(a, b, n); END $$;
CREATE OPERATOR regress_es_mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_es_mallory.eq_text);
CREATE OPERATOR regress_es_mallory.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = regress_es_mallory.eq_uuid);
CREATE OPERATOR regress_es_mallory.= (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = regress_es_mallory.eq_jsonb);
CREATE OPERATOR regress_es_mallory.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_es_mallory.add_int8);
CREATE OPERATOR regress_es_mallory.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_es_mallory.gt_int8);
CREATE FUNCTION pg_temp.evil(v anyelement) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_user OPERATOR(pg_catalog.<>) 'regress_es_mallory' THEN
    RAISE EXCEPTION 'pg_temp.evil ran as %', current_user;
  END IF;
  RETURN true;
END $$;
SELECT pg_temp.shadow_types('int8', 'int4', 'text', 'jsonb', 'uuid', 'oid', 'float8', 'bool', 'timestamptz',
                            'regprocedure');
SET search_path = regress_es_mallory, pg_catalog;
INSERT INTO pg_temp.es_hostile SELECT c, pg_temp.error_of(s) FROM (VALUES
  ('append_event', $$SELECT consistency.append_event('hostile-1', NULL, 'X', '{"a": 1}')$$),
  ('append_event expected', $$SELECT consistency.append_event('hostile-1', 1, 'X', '{"a": 2}', '{"m": 1}')$$),
  ('append_event stale', $$SELECT consistency.append_event('hostile-1', 1, 'X', '{}')$$),
  ('append_events new', $$SELECT consistency.append_events('hostile-2', 0, '[{"type": "X", "data": {}}, {"type": "Y", "data": {}}]')$$),
  ('append_events ids', $$SELECT consistency.append_events('hostile-2', 2, '[{"type": "X", "data": {}, "id": "d0000000-0000-4000-8000-000000000001"}]')$$),
  ('append_events ids repeat', $$SELECT consistency.append_events('hostile-2', 2, '[{"type": "X", "data": {}, "id": "d0000000-0000-4000-8000-000000000001"}]')$$),
  ('stream_version', $$SELECT consistency.stream_version('hostile-2')$$),
  ('read_stream', $$SELECT count(*) FROM consistency.read_stream('hostile-2')$$),
  ('read_stream upcast', $$SELECT count(*) FROM consistency.read_stream('item-1')$$),
  ('read_all', $$SELECT count(*) FROM consistency.read_all(0, 10, 'hostile')$$),
  ('read_horizon', $$SELECT consistency.read_horizon() > 0$$),
  ('last_appended_position', $$SELECT consistency.last_appended_position() > 0$$),
  ('save_snapshot', $$SELECT consistency.save_snapshot('hostile-2', 1, '{"s": 1}')$$),
  ('load_snapshot', $$SELECT count(*) FROM consistency.load_snapshot('hostile-2')$$),
  ('aggregate_state', $$SELECT version FROM consistency.aggregate_state('vault-1')$$),
  ('create_subscription', $$SELECT consistency.create_subscription('hostile', 'public.es_meddle(pg_catalog.int8,pg_catalog.text,pg_catalog.int8,pg_catalog.text,pg_catalog.jsonb,pg_catalog.jsonb)', ARRAY['hostile'], ARRAY['X'])$$),
  ('reset_subscription', $$SELECT consistency.reset_subscription('hostile', 1)$$),
  ('wait_for_subscription', $$SELECT consistency.wait_for_subscription('hostile', 1, '0 s')$$),
  ('subscriptions view', $$SELECT count(*) FROM consistency.subscriptions$$),
  ('open_writers view', $$SELECT count(*) FROM consistency.open_writers$$),
  ('drop_subscription', $$SELECT consistency.drop_subscription('hostile')$$)
) AS t(c, s);
RESET search_path;
RESET ROLE;
SELECT call, result FROM es_hostile;
-- The metrics and integrity functions (SECURITY DEFINER) with the same traps in place.
SET ROLE regress_es_mallory;
SET search_path = regress_es_mallory, pg_catalog;
SELECT count(*) > 0 AS metrics_ok FROM consistency._metrics_eventstore();
SELECT bool_and(ok) AS integrity_ok FROM consistency._integrity_eventstore();
RESET search_path;
DROP TABLE pg_temp.pg_trigger, pg_temp.pg_sequence;
SELECT pg_temp.unshadow_types();
RESET ROLE;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname IN ('regress_es_mallory', 'regress_es_rita') ORDER BY rolname;

-- ---------------------------------------------------------------------------------
-- Operations
-- ---------------------------------------------------------------------------------
SELECT check_name, ok FROM consistency._integrity_eventstore() ORDER BY check_name;
SELECT metric, kind, labels, value > 0 AS positive FROM consistency._metrics_eventstore() ORDER BY metric;
SELECT value = (SELECT count(*) FROM consistency.events) AS events_total_exact
  FROM consistency._metrics_eventstore() WHERE metric = 'pg_consistency_events_total';

-- Clean up and leave a fresh install for later suites.
DROP OWNED BY regress_es_reader, regress_es_writer, regress_es_writer2, regress_es_outsider,
  regress_es_admin, regress_es_mallory, regress_es_rita;
DROP ROLE regress_es_reader, regress_es_writer, regress_es_writer2, regress_es_outsider,
  regress_es_admin, regress_es_mallory, regress_es_rita;
DROP TABLE public.es_projection, public.es_seen;
DROP FUNCTION public.es_project(bigint,text,bigint,text,jsonb,jsonb), public.es_wrong_handler(bigint,text),
  public.es_v1_to_v2(jsonb), public.es_v2_to_v3(jsonb), public.es_returns_null(jsonb), public.es_wrong_args(text),
  public.es_wrong_result(jsonb), public.es_apply_account(jsonb,text,jsonb), public.es_apply_null(jsonb,text,jsonb),
  public.es_apply_wrong(jsonb,jsonb), public.es_secret_up(jsonb), public.es_secret_apply(jsonb,text,jsonb),
  public.es_secret_handler(bigint,text,bigint,text,jsonb,jsonb), public.es_apply_balance(jsonb,text,jsonb),
  public.es_meddle(bigint,text,bigint,text,jsonb,jsonb), public.es_fee_up(jsonb);
DROP EXTENSION pg_consistency;
CREATE EXTENSION pg_consistency;
