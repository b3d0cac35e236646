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
-- An upcaster that raises: its error reaches the reader as raised (SQLSTATE, message),
-- with a context line naming the event type and the link.
CREATE FUNCTION public.es_refuses(d jsonb) RETURNS jsonb LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'refusing %', d->>'sku' USING ERRCODE = 'P0042'; END $$;
CREATE FUNCTION pg_temp.error_and_context(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; ctx text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
  -- the lines our code adds, not PL/pgSQL's own or this function's
  RETURN st || ' | ' || msg || ' | ' || coalesce((SELECT string_agg(l, ' / ') FROM regexp_split_to_table(ctx, E'\n') l
                                                   WHERE l !~ '^(PL/pgSQL|SQL statement)'), '-');
END $$;
SELECT consistency.register_upcaster('ItemAdded', 2, 'public.es_refuses(jsonb)');
SELECT pg_temp.error_and_context($$SELECT * FROM consistency.read_stream('item-1')$$);
SELECT pg_temp.error_and_context($$SELECT * FROM consistency.read_all(0, 10, 'item')$$);
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
-- An apply function or an upcaster that raises during a fold: the error as raised, with
-- context lines naming the event and the stream.
CREATE FUNCTION public.es_apply_refuses(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  IF (data->>'amount')::int > 1 THEN RAISE EXCEPTION 'too much: %', data->>'amount' USING ERRCODE = 'P0043'; END IF;
  RETURN state;
END $$;
SELECT consistency.register_aggregate('refusing', 'public.es_apply_refuses(jsonb,text,jsonb)');
SELECT consistency.append_events('refusing-1', NULL, '[{"type": "Deposited", "data": {"amount": 1}},
                                                      {"type": "Deposited", "data": {"amount": 5}}]') AS v;
SELECT pg_temp.error_and_context($$SELECT * FROM consistency.aggregate_state('refusing-1')$$);
SELECT consistency.append_event('refusing-2', NULL, 'Refusable', '{"sku": "Z", "amount": 1}') AS v;
SELECT consistency.register_upcaster('Refusable', 1, 'public.es_refuses(jsonb)');
SELECT pg_temp.error_and_context($$SELECT * FROM consistency.aggregate_state('refusing-2')$$);
SELECT consistency.register_upcaster('Refusable', 1, 'public.es_v2_to_v3(jsonb)');
SELECT * FROM consistency.aggregate_state('refusing-2') AS folds_again;

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
