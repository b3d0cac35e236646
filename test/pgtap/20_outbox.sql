-- Outbox semantics: shapes of the contract's objects, what publish stores, ordering,
-- transactional behaviour, dead-letter retry, status and the security settings.
BEGIN;
SELECT plan(64);

-- The contract's objects and shapes.
SELECT has_table('consistency', 'outbox', 'outbox table');
SELECT has_table('consistency', 'dead_letters', 'dead_letters table');
SELECT has_view('consistency', 'outbox_status', 'outbox_status view');
SELECT has_function('consistency', 'publish', ARRAY['text', 'text', 'jsonb', 'jsonb'], 'publish(jsonb)');
SELECT has_function('consistency', 'publish', ARRAY['text', 'text', 'bytea', 'jsonb'], 'publish(bytea)');
SELECT function_returns('consistency', 'publish', ARRAY['text', 'text', 'jsonb', 'jsonb'], 'bigint');
SELECT function_returns('consistency', 'publish', ARRAY['text', 'text', 'bytea', 'jsonb'], 'bigint');
SELECT has_function('consistency', 'route_events', ARRAY['text', 'text'], 'route_events(category, topic)');
SELECT function_returns('consistency', 'retry_dead_letters', ARRAY['text'], 'integer');
SELECT columns_are('consistency', 'outbox_status',
  ARRAY['pending', 'oldest_pending_age', 'delivered_total', 'dead_lettered', 'relay_state', 'last_error', 'last_delivery_at'],
  'outbox_status has exactly the contract''s columns');
SELECT col_type_is('consistency', 'outbox_status', 'pending', 'bigint', 'pending is bigint');
SELECT col_type_is('consistency', 'outbox_status', 'oldest_pending_age', 'interval', 'oldest_pending_age is an interval');
SELECT col_type_is('consistency', 'outbox_status', 'last_delivery_at', 'timestamp with time zone', 'last_delivery_at is timestamptz');
SELECT has_function('consistency', '_metrics_relay', ARRAY[]::text[], 'metrics part for the lead');
SELECT has_function('consistency', '_integrity_relay', ARRAY[]::text[], 'integrity part for the lead');
SELECT is((SELECT pg_get_function_arguments('consistency.publish(text,text,jsonb,jsonb)'::regprocedure)),
          'topic text, key text, payload jsonb, headers jsonb DEFAULT ''{}''::jsonb', 'publish argument names and default');

-- SECURITY DEFINER functions pin their search_path (publish in its C code, see below).
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'consistency' AND p.prosecdef
              AND p.proname IN ('route_events', 'unroute_events', 'retry_dead_letters', '_route_events_trigger',
                                '_metrics_relay', '_integrity_relay')
              AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)),
          0, 'every SECURITY DEFINER function of the outbox sets search_path');
SELECT ok((SELECT bool_and(prosecdef) FROM pg_proc WHERE oid IN ('consistency.publish(text,text,jsonb,jsonb)'::regprocedure,
           'consistency.publish(text,text,bytea,jsonb)'::regprocedure, 'consistency.retry_dead_letters(text)'::regprocedure)),
          'publish and retry_dead_letters run as the extension owner');
-- publish runs its statement with only pg_catalog on the search path, and gives the
-- caller's search path back: a table named like the outbox first on the caller's path
-- is not used, and the caller's path is intact afterwards, also after a failed call.
CREATE TEMP TABLE outbox (LIKE consistency.outbox);
SET LOCAL search_path = pg_temp, public;
CREATE TEMP TABLE path_before AS SELECT current_schemas(true) AS s;
SELECT consistency.publish('tap.path', 'k', '{"p": 1}'::jsonb);
CREATE FUNCTION public.tap_refuse() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN RAISE EXCEPTION 'refused by the test trigger' USING ERRCODE = 'P0001'; END $f$;
CREATE TRIGGER tap_refuse BEFORE INSERT ON consistency.outbox FOR EACH ROW
  WHEN (NEW.topic = 'tap.refused') EXECUTE FUNCTION public.tap_refuse();
SELECT throws_ok($$SELECT consistency.publish('tap.refused', 'k', '{}'::jsonb)$$, 'P0001',
                 'refused by the test trigger', 'an error inside the insert reaches the caller');
DROP TRIGGER tap_refuse ON consistency.outbox;
DROP FUNCTION public.tap_refuse();
SELECT is(current_schemas(true), (SELECT s FROM path_before), 'the caller''s search path is intact after publish');
SELECT is((SELECT count(*)::int FROM pg_temp.outbox), 0, 'a look-alike outbox on the caller''s path is not used');
RESET search_path;
SELECT is((SELECT count(*)::int FROM consistency.outbox WHERE topic = 'tap.path'), 1, 'the row went to consistency.outbox');
DROP TABLE pg_temp.outbox, pg_temp.path_before;

-- What publish stores: the exact Kafka value bytes, in the caller's transaction, in call order.
CREATE TEMP TABLE ids AS
SELECT consistency.publish('tap.orders', 'order-' || (g % 3), jsonb_build_object('n', g, 'note', 'é')) AS id, g
  FROM generate_series(1, 30) g;
SELECT is((SELECT count(DISTINCT id)::int FROM ids), 30, 'thirty distinct ids');
SELECT ok((SELECT bool_and(a.id < b.id) FROM ids a JOIN ids b ON b.g = a.g + 1), 'ids grow in call order');
SELECT is((SELECT count(*)::int FROM consistency.outbox o JOIN ids USING (id)), 30, 'rows visible in the same transaction');
SELECT is((SELECT payload FROM consistency.outbox WHERE id = (SELECT id FROM ids WHERE g = 7)),
          convert_to(jsonb_build_object('n', 7, 'note', 'é')::text, 'UTF8'), 'jsonb payload stored as its UTF-8 text');
SELECT is((SELECT content_type FROM consistency.outbox WHERE id = (SELECT id FROM ids WHERE g = 7)),
          'application/json', 'jsonb payload marked application/json');
SELECT ok(consistency.publish('tap.bin', 'k', '\x000102ff'::bytea) > (SELECT max(id) FROM ids), 'bytea publish after the jsonb ones');
SELECT is((SELECT payload FROM consistency.outbox WHERE key = 'k' AND topic = 'tap.bin'), '\x000102ff'::bytea,
          'bytea payload stored byte for byte');
SELECT is((SELECT content_type FROM consistency.outbox WHERE key = 'k' AND topic = 'tap.bin'),
          'application/octet-stream', 'bytea payload marked application/octet-stream');
SELECT lives_ok($$SELECT consistency.publish('tap.lit', 'k', '{"a": 1}')$$, 'an untyped literal payload is not ambiguous');
SELECT is((SELECT convert_from(payload, 'UTF8') FROM consistency.outbox WHERE topic = 'tap.lit'), '{"a": 1}',
          'untyped literal stored as JSON');
SELECT is((SELECT headers FROM consistency.outbox WHERE id = (SELECT max(id) FROM consistency.outbox)), '{}'::jsonb,
          'headers default to an empty object');
SELECT is((SELECT attempts FROM consistency.outbox WHERE topic = 'tap.lit'), 0, 'no attempt yet');

-- A rolled-back subtransaction takes its rows; the surrounding transaction keeps its own.
SAVEPOINT before_sub;
SELECT consistency.publish('tap.sub', 'inner', '{}'::jsonb);
ROLLBACK TO SAVEPOINT before_sub;
SELECT is((SELECT count(*)::int FROM consistency.outbox WHERE topic = 'tap.sub'), 0, 'rolled-back savepoint leaves no row');
SELECT is((SELECT count(*)::int FROM consistency.outbox WHERE topic = 'tap.orders'), 30, 'outer rows survive it');

-- Errors are CS002 and leave nothing behind.
SELECT throws_ok($$SELECT consistency.publish('bad topic', 'k', '{}'::jsonb)$$, 'CS002', NULL, 'space in topic');
SELECT throws_ok($$SELECT consistency.publish(repeat('x', 250), 'k', '{}'::jsonb)$$, 'CS002', NULL, '250-char topic');
SELECT throws_ok($$SELECT consistency.publish('t', 'k', '{}'::jsonb, '{"h": {"nested": true}}')$$, 'CS002', NULL, 'nested header');
SELECT throws_ok($$SELECT consistency.publish('t', 'k', 'nope'::text)$$, 'CS002', NULL, 'text payload that is not JSON');
SELECT throws_ok($$SELECT consistency.route_events('a-b', 'orders')$$, 'CS002', NULL, 'category with a dash');
SELECT throws_ok($$SELECT consistency.retry_dead_letters('no/slash')$$, 'CS002', NULL, 'retry with an invalid topic');
SELECT throws_ok($$SELECT consistency.kafka_partition('k', -1)$$, 'CS002', NULL, 'negative partition count');
SELECT is((SELECT count(*)::int FROM consistency.outbox WHERE topic IN ('t', 'bad topic')), 0, 'refused calls left no row');

-- Dead letters: retry re-queues with the same id, filtered by topic, attempts reset.
INSERT INTO consistency.dead_letters (id, topic, key, payload, headers, content_type, created_at, attempts, reason)
SELECT 900000000 + g, CASE WHEN g <= 2 THEN 'tap.a' ELSE 'tap.b' END, 'dk', '\x01', '{"x": "1"}', 'application/octet-stream',
       now() - interval '1 hour', 5, 'Broker: Message size too large'
  FROM generate_series(1, 5) g;
SELECT is(consistency.retry_dead_letters('tap.a'), 2, 'two dead letters of tap.a re-queued');
SELECT is((SELECT count(*)::int FROM consistency.dead_letters WHERE topic = 'tap.b'), 3, 'tap.b left alone');
SELECT is((SELECT array_agg(id ORDER BY id) FROM consistency.outbox WHERE topic = 'tap.a'),
          ARRAY[900000001, 900000002]::bigint[], 're-queued rows keep their outbox ids');
SELECT is((SELECT sum(attempts)::int FROM consistency.outbox WHERE topic = 'tap.a'), 0, 'attempts reset');
SELECT ok((SELECT bool_and(headers = '{"x": "1"}' AND created_at < now()) FROM consistency.outbox WHERE topic = 'tap.a'),
          'headers and creation time kept');
SELECT is(consistency.retry_dead_letters(), 3, 'the rest re-queued');
SELECT is(consistency.retry_dead_letters(), 0, 'nothing left to re-queue');

-- Status reflects the rows.
SELECT is((SELECT pending FROM consistency.outbox_status), (SELECT count(*) FROM consistency.outbox), 'pending counts outbox rows');
SELECT ok((SELECT oldest_pending_age >= interval '59 minutes' FROM consistency.outbox_status),
          'oldest_pending_age follows the oldest row (re-queued an hour ago)');
SELECT is((SELECT relay_state FROM consistency.outbox_status), 'stopped', 'no relay in this database');
SELECT is((SELECT count(*)::int FROM consistency._metrics_relay() WHERE kind NOT IN ('gauge', 'counter')), 0,
          'metrics are gauges or counters');
SELECT is((SELECT value FROM consistency._metrics_relay() WHERE metric = 'pg_consistency_outbox_pending'),
          (SELECT count(*)::float8 FROM consistency.outbox), 'pending metric matches');
SELECT ok((SELECT bool_and(ok) FROM consistency._integrity_relay()), 'integrity checks pass');

-- Routed events: same transaction, one row per event and route, key = stream, value = data.
SELECT lives_ok($$SELECT consistency.route_events('taporder', 'tap.events')$$, 'route a category');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'consistency.events'::regclass
             AND tgname = 'pgc_route_events' AND tgenabled = 'O'), 1, 'one statement trigger on the event table');
SELECT consistency.append_events('taporder-1', 0, '[{"type": "A", "data": {"i": 1}}, {"type": "B", "data": {"i": 2}}, {"type": "C", "data": {"i": 3}}]');
SELECT consistency.append_event('tapother-1', 0, 'X', '{}');
SELECT is((SELECT array_agg(headers->>'ce_type' ORDER BY id) FROM consistency.outbox WHERE topic = 'tap.events'),
          ARRAY['A', 'B', 'C'], 'three routed events in global order');
SELECT is((SELECT count(*)::int FROM consistency.outbox WHERE key = 'tapother-1'), 0, 'the other category is not routed');
SELECT ok((SELECT bool_and(key = 'taporder-1' AND topic = 'tap.events') FROM consistency.outbox WHERE topic = 'tap.events'),
          'key is the stream, topic the route''s');
SELECT is((SELECT array_agg(convert_from(o.payload, 'UTF8')::jsonb ORDER BY o.id) FROM consistency.outbox o WHERE o.topic = 'tap.events'),
          (SELECT array_agg(data ORDER BY global_position) FROM consistency.events WHERE stream = 'taporder-1'),
          'values are the events'' data');
SELECT is((SELECT array_agg(headers->>'ce_id' ORDER BY id) FROM consistency.outbox WHERE topic = 'tap.events'),
          (SELECT array_agg(event_id::text ORDER BY global_position) FROM consistency.events WHERE stream = 'taporder-1'),
          'ce_id is the event id');

SELECT * FROM finish();
ROLLBACK;
