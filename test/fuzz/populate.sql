-- Fills every pillar of pg_consistency with data through its public API, so that
-- scripts/sqlsmith and scripts/sqlfuzz meet a database in use: events, snapshots,
-- aggregates, upcasters, subscriptions, routes, outbox rows and dead letters, sagas in
-- every state, 2PC participants and decisions, inbox consumers and dead letters.
-- Run as a superuser with psql -v remote_conninfo='host=… dbname=… user=…' (a second
-- database of the same cluster that plays the 2PC participant). No broker is needed:
-- rows the relay or the inbox would write after a broker's refusal are written here the
-- way the relay and the consumer write them.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pg_consistency;

CREATE SCHEMA fuzz_app;
CREATE TABLE fuzz_app.seen (pos bigint, stream text, type text);
CREATE TABLE fuzz_app.inbox_seen (topic text, part int, off bigint, value jsonb);
CREATE TABLE fuzz_app.saga_log (saga uuid, entry text);

-- Event store: streams in several categories, upcasters, aggregates, snapshots.
-- Upcasters run as the reader with the reader's settings (docs/eventstore.md), so this one
-- pins its own path like any function meant to be called by others.
CREATE FUNCTION fuzz_app.upcast_v1(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
  AS $$ SELECT data || '{"upcast": 1}'::jsonb $$;
CREATE FUNCTION fuzz_app.apply_order(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE
  AS $$ SELECT state || jsonb_build_object('last', type, 'n', coalesce((state->>'n')::int, 0) + 1) $$;
SELECT consistency.register_upcaster('OrderPlaced', 1, 'fuzz_app.upcast_v1(jsonb)');
SELECT consistency.register_aggregate('order', 'fuzz_app.apply_order(jsonb,text,jsonb)', '{"n": 0}', 5);
SELECT consistency.append_events('order-' || i, 0,
         jsonb_build_array(jsonb_build_object('type', 'OrderPlaced', 'data', jsonb_build_object('qty', i)),
                           jsonb_build_object('type', 'OrderPaid', 'data', jsonb_build_object('amount', i * 10),
                                              'metadata', '{"source": "populate"}'::jsonb)))
  FROM generate_series(1, 40) i;
SELECT consistency.append_event('customer-' || i, NULL, 'CustomerRegistered',
                                jsonb_build_object('name', 'c' || i, 'tags', jsonb_build_array('a', 'ü', '東京')))
  FROM generate_series(1, 20) i;
SELECT consistency.append_event('lonely', 0, 'Ping', '{}');
SELECT consistency.save_snapshot('order-' || i, 2, jsonb_build_object('n', 2, 'last', 'OrderPaid'))
  FROM generate_series(1, 10) i;
SELECT * FROM consistency.aggregate_state('order-11');

-- Subscriptions: one that works, one whose handler fails (parks after its attempts).
CREATE FUNCTION fuzz_app.on_event(global_position bigint, stream text, version bigint, type text, data jsonb,
                                  metadata jsonb) RETURNS void LANGUAGE sql
  AS $$ INSERT INTO fuzz_app.seen VALUES (global_position, stream, type) $$;
CREATE FUNCTION fuzz_app.on_event_fails(global_position bigint, stream text, version bigint, type text, data jsonb,
                                        metadata jsonb) RETURNS void LANGUAGE plpgsql
  AS $$ BEGIN RAISE EXCEPTION 'handler refuses %', stream; END $$;
SELECT consistency.create_subscription('orders_projection',
         'fuzz_app.on_event(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['order']);
SELECT consistency.create_subscription('customers_broken',
         'fuzz_app.on_event_fails(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['customer'], ARRAY['CustomerRegistered']);
SELECT consistency.create_subscription('everything', 'fuzz_app.on_event(bigint,text,bigint,text,jsonb,jsonb)');

-- Outbox: routed events, jsonb, text and bytea messages; two moved to dead_letters the way
-- the relay moves a message Kafka refused for good.
SELECT consistency.route_events('customer', 'customers.events');
SELECT consistency.append_event('customer-routed', 0, 'CustomerRegistered', '{"name": "routed"}');
SELECT consistency.publish('orders.commands', 'order-' || i, jsonb_build_object('cmd', 'ship', 'n', i),
                           jsonb_build_object('trace', 't' || i))
  FROM generate_series(1, 15) i;
SELECT consistency.publish('blobs', NULL, '\x00ff10'::bytea);
SELECT consistency.publish('texts', 'k', '{"sent": "as text"}'::text);
WITH moved AS (
  DELETE FROM consistency.outbox WHERE id IN (SELECT id FROM consistency.outbox WHERE topic = 'orders.commands'
                                              ORDER BY id LIMIT 2)
  RETURNING *)
INSERT INTO consistency.dead_letters (id, topic, key, payload, headers, content_type, created_at, attempts, reason)
  SELECT id, topic, key, payload, headers, content_type, created_at, 5, 'Broker: Message size too large' FROM moved;

-- Sagas: completed, compensated, failed, aborted, compensating (compensation backing off)
-- and running (a command step waiting for its reply, another waiting on a function retry).
CREATE FUNCTION fuzz_app.saga_do(saga_id uuid, data jsonb, what text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO fuzz_app.saga_log VALUES (saga_id, what);
  IF data->'fail' ? what THEN RAISE EXCEPTION '% failed', what; END IF;
  RETURN jsonb_build_object(what, true);
END $$;
CREATE FUNCTION fuzz_app.step_a(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT fuzz_app.saga_do($1, $2, 'a') $$;
CREATE FUNCTION fuzz_app.step_b(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT fuzz_app.saga_do($1, $2, 'b') $$;
CREATE FUNCTION fuzz_app.undo_a(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT fuzz_app.saga_do($1, $2, 'undo_a') $$;
SELECT consistency.define_saga('order_flow', '{"steps": [
  {"name": "a", "action": {"function": "fuzz_app.step_a"}, "compensation": {"function": "fuzz_app.undo_a"},
   "retry": {"max_attempts": 2, "backoff": "0 ms"}},
  {"name": "b", "action": {"function": "fuzz_app.step_b"}, "retry": {"max_attempts": 1}}], "timeout": "1 hour"}');
SELECT consistency.define_saga('slow_undo', '{"steps": [
  {"name": "a", "action": {"function": "fuzz_app.step_a"}, "compensation": {"function": "fuzz_app.undo_a"},
   "retry": {"max_attempts": 5, "backoff": "1 hour", "max_backoff": "1 hour"}},
  {"name": "b", "action": {"function": "fuzz_app.step_b"}, "retry": {"max_attempts": 1}}]}');
SELECT consistency.define_saga('shipping', '{"steps": [
  {"name": "reserve", "action": {"function": "fuzz_app.step_a"}, "compensation": null},
  {"name": "ship", "action": {"topic": "shipping.commands", "command": "Ship"},
   "compensation": {"topic": "shipping.commands", "command": "CancelShipment"}, "timeout": "1 hour"}]}');
SELECT consistency.define_saga('flaky', '{"steps": [
  {"name": "a", "action": {"function": "fuzz_app.step_a"},
   "retry": {"max_attempts": 10, "backoff": "1 hour", "max_backoff": "1 hour"}}]}');
-- A second version of a definition: running sagas keep version 1.
SELECT consistency.define_saga('order_flow', '{"steps": [
  {"name": "a", "action": {"function": "fuzz_app.step_a"}, "compensation": {"function": "fuzz_app.undo_a"}},
  {"name": "b", "action": {"function": "fuzz_app.step_b"}}]}');

CREATE TABLE fuzz_app.sagas (label text PRIMARY KEY, id uuid);
INSERT INTO fuzz_app.sagas VALUES
  ('completed',    consistency.start_saga('order_flow', '{}', 'populate-completed')),
  ('compensated',  consistency.start_saga('order_flow', '{"fail": ["b"]}', 'populate-compensated')),
  ('failed',       consistency.start_saga('order_flow', '{"fail": ["b", "undo_a"]}', 'populate-failed')),
  ('aborted',      consistency.start_saga('order_flow', '{"fail": ["b", "undo_a"]}', 'populate-aborted')),
  ('compensating', consistency.start_saga('slow_undo', '{"fail": ["b", "undo_a"]}', 'populate-compensating')),
  ('awaiting',     consistency.start_saga('shipping', '{"order": 7}', 'populate-awaiting')),
  ('replied',      consistency.start_saga('shipping', '{"order": 8}', 'populate-replied')),
  ('retrying',     consistency.start_saga('flaky', '{"fail": ["a"]}', 'populate-retrying'));
-- Plays the worker until only backing-off or waiting sagas are left (retry pauses of a
-- few hundred milliseconds are waited out).
CREATE FUNCTION fuzz_app.drain() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. 60 LOOP
    IF consistency._advance_sagas() = 0 THEN
      EXIT WHEN NOT EXISTS (SELECT FROM consistency.sagas s JOIN fuzz_app.sagas f ON f.id = s.id
                            WHERE s.name = 'order_flow' AND s.status IN ('running', 'compensating'));
      PERFORM pg_sleep(0.1);
    END IF;
  END LOOP;
END $$;
SELECT fuzz_app.drain();
SELECT consistency.abort_saga((SELECT id FROM fuzz_app.sagas WHERE label = 'aborted'), 'given up by the operator');
SELECT consistency.complete_step((SELECT id FROM fuzz_app.sagas WHERE label = 'replied'), 'ship', '{"tracking": "T1"}');
SELECT fuzz_app.drain();
SELECT s.label, st.status FROM fuzz_app.sagas s, consistency.saga_status(s.id) st ORDER BY 1;

-- 2PC: a reachable participant (another database of this cluster) with committed
-- distributed transactions, an unreachable one, and a grant.
SELECT consistency.add_participant('remote', :'remote_conninfo');
SELECT consistency.add_participant('down', 'host=127.0.0.1 port=1 dbname=nowhere user=nobody');
SELECT consistency.grant_participant('remote', 'consistency_writer');
SELECT consistency.remote_exec('remote', 'CREATE TABLE IF NOT EXISTS fuzz_remote_t (id int, note text)');
BEGIN;
SELECT consistency.remote_exec('remote', 'INSERT INTO fuzz_remote_t VALUES (1, ''one'')');
SELECT consistency.append_event('transfer-1', 0, 'TransferBooked', '{"amount": 5}');
COMMIT;
BEGIN;
SELECT consistency.remote_exec('remote', 'INSERT INTO fuzz_remote_t SELECT g, ''n'' FROM generate_series(2, 5) g');
SELECT * FROM consistency.remote_query('remote', 'SELECT count(*) AS n FROM fuzz_remote_t');
COMMIT;

-- Inbox: consumers (a jsonb handler, a bytea handler, the saga reply handler), one
-- paused; dead letters the way the consumer process writes them.
CREATE FUNCTION fuzz_app.on_message(topic text, part int, off bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ INSERT INTO fuzz_app.inbox_seen VALUES (topic, part, off, value) $$;
CREATE FUNCTION fuzz_app.on_raw(topic text, part int, off bigint, key text, value bytea, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT NULL $$;
SELECT consistency.create_consumer('payments', ARRAY['payments.events', 'refunds'],
                                   'fuzz_app.on_message(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('raw', ARRAY['raw.bytes'], 'fuzz_app.on_raw(text,int,bigint,text,bytea,jsonb)',
                                   'latest');
SELECT consistency.create_consumer('saga_replies', ARRAY['shipping.replies'],
                                   'consistency.handle_saga_reply(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.pause_consumer('raw');
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", key, value, headers, reason) VALUES
  ('payments', 'payments.events', 0, 17, 'k1', convert_to('{"amount": 3}', 'UTF8'), '{"ce_id": "x1"}', 'handler: boom'),
  ('payments', 'refunds', 2, 4, NULL, convert_to('{not json', 'UTF8'), '{}', 'CS002: value is not valid JSON'),
  ('raw', 'raw.bytes', 1, 99, 'k', '\xdeadbeef', '{}', 'handler: refused');

-- User code that misbehaves, for the fuzzers to register as upcasters, folds and handlers:
-- NULL or the wrong JSON, an error, an attempt to leave the security-restricted context.
CREATE FUNCTION fuzz_app.hostile_upcast_null(data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION fuzz_app.hostile_upcast_array(data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '[1, 2]'::jsonb $$;
CREATE FUNCTION fuzz_app.hostile_upcast_raise(data jsonb) RETURNS jsonb LANGUAGE plpgsql
  AS $$ BEGIN RAISE EXCEPTION 'upcaster refuses %', data; END $$;
CREATE FUNCTION fuzz_app.hostile_upcast_escape(data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'fuzz_hostile, pg_catalog', false);
  BEGIN
    EXECUTE 'RESET ROLE';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RETURN data;
END $$;
CREATE FUNCTION fuzz_app.hostile_apply_null(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION fuzz_app.hostile_apply_scalar(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT to_jsonb(type) $$;
CREATE FUNCTION fuzz_app.hostile_handler(global_position bigint, stream text, version bigint, type text, data jsonb,
                                         metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'fuzz_hostile, pg_catalog', false);
  PERFORM pg_catalog.set_config('statement_timeout', '1', false);
  IF version OPERATOR(pg_catalog.%) 3 OPERATOR(pg_catalog.=) 0 THEN RAISE EXCEPTION 'handler refuses %', stream; END IF;
END $$;

-- The roles the fuzzers use: non-superusers holding the extension's admin role, or its
-- reader role alone.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fuzz_admin') THEN
    CREATE ROLE fuzz_admin LOGIN;
  END IF;
END $$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fuzz_reader') THEN
    CREATE ROLE fuzz_reader LOGIN;
  END IF;
END $$;
SET client_min_messages = warning;
GRANT consistency_admin, consistency_writer, consistency_reader TO fuzz_admin;
GRANT consistency_reader TO fuzz_reader;
GRANT USAGE ON SCHEMA fuzz_app TO fuzz_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA fuzz_app TO fuzz_admin;

SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE NOT ok;
