-- Event store semantics: the contract's shapes, append and read behaviour, upcasting,
-- snapshot cost, privileges, and coexistence with other AFTER INSERT triggers.
-- Everything runs in one transaction that appends, so read_all here can only show what
-- was committed before it (its own events sit above its horizon until it ends).
BEGIN;
SELECT plan(118);

-- ---------------------------------------------------------------------------------
-- Shapes of the contract
-- ---------------------------------------------------------------------------------
SELECT has_table('consistency', 'events', 'events table');
SELECT has_table('consistency', 'streams', 'streams table');
SELECT has_table('consistency', 'snapshots', 'snapshots table');
SELECT col_type_is('consistency', 'events', 'global_position', 'bigint', 'events.global_position bigint');
SELECT col_type_is('consistency', 'events', 'stream', 'text', 'events.stream text');
SELECT col_type_is('consistency', 'events', 'version', 'bigint', 'events.version bigint');
SELECT col_type_is('consistency', 'events', 'event_id', 'uuid', 'events.event_id uuid');
SELECT col_type_is('consistency', 'events', 'type', 'text', 'events.type text');
SELECT col_type_is('consistency', 'events', 'schema_version', 'integer', 'events.schema_version int');
SELECT col_type_is('consistency', 'events', 'data', 'jsonb', 'events.data jsonb');
SELECT col_type_is('consistency', 'events', 'metadata', 'jsonb', 'events.metadata jsonb');
SELECT col_type_is('consistency', 'events', 'created_at', 'timestamp with time zone', 'events.created_at timestamptz');
SELECT col_is_pk('consistency', 'events', 'global_position', 'global_position is the primary key');
SELECT index_is_unique('consistency', 'events', 'events_stream_version_key', 'one event per (stream, version)');
SELECT has_index('consistency', 'events', 'events_stream_version_key', ARRAY['stream', 'version'], 'index: a stream''s events by version');
SELECT has_index('consistency', 'events', 'events_category_position_idx', ARRAY['category', 'global_position'], 'index: a category''s events by position');
SELECT col_type_is('consistency', 'streams', 'version', 'bigint', 'streams.version bigint');
SELECT col_is_pk('consistency', 'streams', 'stream', 'one row per stream');
SELECT col_type_is('consistency', 'snapshots', 'state', 'jsonb', 'snapshots.state jsonb');

SELECT function_returns('consistency', 'append_events', ARRAY['text', 'bigint', 'jsonb'], 'bigint', 'append_events(text, bigint, jsonb) -> bigint');
SELECT function_returns('consistency', 'append_event', ARRAY['text', 'bigint', 'text', 'jsonb', 'jsonb'], 'bigint', 'append_event(...) -> bigint');
SELECT function_returns('consistency', 'stream_version', ARRAY['text'], 'bigint', 'stream_version(text) -> bigint');
SELECT function_returns('consistency', 'last_appended_position', ARRAY[]::text[], 'bigint', 'last_appended_position() -> bigint');
SELECT function_returns('consistency', 'wait_for_subscription', ARRAY['text', 'bigint', 'interval'], 'boolean', 'wait_for_subscription -> boolean');
SELECT is(pg_get_function_result('consistency.read_stream(text,bigint,int)'::regprocedure),
          'TABLE(global_position bigint, stream text, version bigint, event_id uuid, type text, schema_version integer, data jsonb, metadata jsonb, created_at timestamp with time zone)',
          'read_stream returns the contract''s columns');
SELECT is(pg_get_function_result('consistency.read_all(bigint,int,text)'::regprocedure),
          pg_get_function_result('consistency.read_stream(text,bigint,int)'::regprocedure),
          'read_all returns the same columns');
SELECT is(pg_get_function_arguments('consistency.read_all(bigint,int,text)'::regprocedure),
          'after_position bigint DEFAULT 0, max_count integer DEFAULT 1000, category text DEFAULT NULL::text',
          'read_all arguments and defaults');
SELECT is(pg_get_function_arguments('consistency.read_stream(text,bigint,int)'::regprocedure),
          'stream text, from_version bigint DEFAULT 1, max_count integer DEFAULT 1000',
          'read_stream arguments and defaults');
SELECT is(pg_get_function_arguments('consistency.register_aggregate(text,regprocedure,jsonb,int)'::regprocedure),
          'category text, apply_fn regprocedure, initial_state jsonb DEFAULT ''{}''::jsonb, snapshot_every integer DEFAULT 100',
          'register_aggregate arguments and defaults');
SELECT is(pg_get_function_arguments('consistency.create_subscription(text,regprocedure,text[],text[],bigint)'::regprocedure),
          'name text, handler regprocedure, categories text[] DEFAULT NULL::text[], event_types text[] DEFAULT NULL::text[], from_position bigint DEFAULT 0',
          'create_subscription arguments and defaults');
SELECT is(pg_get_function_result('consistency.aggregate_state(text)'::regprocedure), 'TABLE(version bigint, state jsonb)',
          'aggregate_state returns (version, state)');
SELECT is(pg_get_function_result('consistency.load_snapshot(text)'::regprocedure), 'TABLE(version bigint, state jsonb)',
          'load_snapshot returns (version, state)');
SELECT columns_are('consistency', 'subscriptions',
                   ARRAY['name', 'position', 'status', 'last_error', 'lag', 'handler', 'owner', 'categories',
                         'event_types', 'attempts', 'max_attempts', 'next_attempt_at', 'processed',
                         'created_at', 'updated_at'],
                   'view subscriptions: name, position, status, last_error, lag first');

-- ---------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------
SELECT table_privs_are('consistency', 'events', 'consistency_reader', ARRAY['SELECT'], 'readers may only read events');
SELECT table_privs_are('consistency', 'events', 'consistency_writer', ARRAY['SELECT'], 'writers read (as readers) but cannot write events directly');
SELECT table_privs_are('consistency', 'events', 'public', ARRAY[]::text[], 'PUBLIC has nothing on events');
SELECT function_privs_are('consistency', 'append_events', ARRAY['text', 'bigint', 'jsonb'], 'consistency_writer', ARRAY['EXECUTE'], 'writers may append');
SELECT function_privs_are('consistency', 'append_events', ARRAY['text', 'bigint', 'jsonb'], 'consistency_reader', ARRAY[]::text[], 'readers may not append');
SELECT function_privs_are('consistency', 'read_all', ARRAY['bigint', 'int', 'text'], 'consistency_reader', ARRAY['EXECUTE'], 'readers may read_all');
SELECT function_privs_are('consistency', 'register_upcaster', ARRAY['text', 'int', 'regprocedure'], 'consistency_writer', ARRAY[]::text[], 'writers may not register upcasters');
SELECT function_privs_are('consistency', '_subscription_step', ARRAY['text'], 'consistency_admin', ARRAY[]::text[], '_subscription_step is superuser only');

-- ---------------------------------------------------------------------------------
-- Appends
-- ---------------------------------------------------------------------------------
CREATE TEMP TABLE t_before AS SELECT coalesce(max(global_position), 0) AS p FROM consistency.events;
SELECT is(consistency.append_events('tap-1', 0, '[{"type": "A", "data": {"n": 1}}, {"type": "B", "data": {"n": 2}},
                                                  {"type": "C", "data": {"n": 3}}]'), 3::bigint,
          'append_events returns the new version');
SELECT is(consistency.append_event('tap-1', 3, 'D', '{"n": 4}'), 4::bigint, 'append_event with the right expected version');
SELECT is(consistency.append_event('tap-1', NULL, 'E', '{"n": 5}'), 5::bigint, 'append_event with any version');
SELECT results_eq($$SELECT version, type FROM consistency.read_stream('tap-1')$$,
                  $$VALUES (1::bigint, 'A'), (2, 'B'), (3, 'C'), (4, 'D'), (5, 'E')$$,
                  'versions are consecutive from 1 in append order');
SELECT ok((SELECT bool_and(global_position > (SELECT p FROM t_before)) FROM consistency.events WHERE stream = 'tap-1'),
          'positions are beyond every earlier position');
SELECT ok((SELECT array_agg(global_position ORDER BY version) = array_agg(global_position ORDER BY global_position)
             FROM consistency.events WHERE stream = 'tap-1'),
          'positions increase with versions (insertion order)');
SELECT is((SELECT count(DISTINCT event_id)::int FROM consistency.events WHERE stream = 'tap-1'), 5, 'generated event ids are unique');
SELECT ok((SELECT bool_and(substr(event_id::text, 15, 1) = '4') FROM consistency.events WHERE stream = 'tap-1'),
          'generated event ids are version-4 UUIDs');
SELECT ok((SELECT bool_and(created_at = now()) FROM consistency.events WHERE stream = 'tap-1'),
          'created_at is the transaction time');
SELECT is((SELECT string_agg(DISTINCT category, ',') FROM consistency.events WHERE stream = 'tap-1'), 'tap',
          'category is the text before the first dash');
SELECT is(consistency.append_event('standalone', NULL, 'X', '{}'), 1::bigint, 'a stream without a dash is fine');
SELECT is((SELECT category FROM consistency.events WHERE stream = 'standalone'), 'standalone', '... and is its own category');
SELECT is((SELECT category FROM consistency.streams WHERE stream = 'tap-1'), 'tap', 'streams carry the category too');
SELECT is(consistency.stream_version('tap-1'), 5::bigint, 'stream_version');
SELECT is(consistency.last_appended_position(), (SELECT max(global_position) FROM consistency.events),
          'last_appended_position is this session''s latest position');
SELECT throws_ok($$SELECT consistency.append_event('tap-1', 4, 'X', '{}')$$, 'CS001', NULL, 'stale expected version: CS001');
SELECT throws_ok($$SELECT consistency.append_event('tap-1', 0, 'X', '{}')$$, 'CS001', NULL, 'expected 0 on an existing stream: CS001');
SELECT is(consistency.stream_version('tap-1'), 5::bigint, 'failed appends change nothing');

-- Given ids are kept; a repeat of the same call is a no-op.
SELECT is(consistency.append_events('tap-ids', NULL, '[{"type": "A", "data": {}, "id": "{b0000000-0000-4000-8000-00000000000a}"}]'),
          1::bigint, 'append with an explicit id (braced form)');
SELECT is((SELECT event_id FROM consistency.events WHERE stream = 'tap-ids'), 'b0000000-0000-4000-8000-00000000000a'::uuid,
          'the given id is stored');
SELECT is(consistency.append_events('tap-ids', 5, '[{"type": "A", "data": {}, "id": "B0000000-0000-4000-8000-00000000000A"}]'),
          1::bigint, 'a repeat (upper-case id) returns the original version');
SELECT is(consistency.stream_version('tap-ids'), 1::bigint, '... and appends nothing');

-- Names: Unicode allowed, the limit counts bytes, controls are refused.
SELECT is(consistency.append_event('bestellung-größe', NULL, 'X', '{}'), 1::bigint, 'Unicode stream names');
SELECT is(consistency.append_event(repeat('é', 500), NULL, 'X', '{}'), 1::bigint, '1000 bytes of two-byte characters are accepted');
SELECT throws_ok(format($$SELECT consistency.append_event(%L, NULL, 'X', '{}')$$, repeat('é', 500) || 'x'), 'CS002', NULL,
                 '1001 bytes are refused');
SELECT throws_ok(format($$SELECT consistency.append_event(%L, NULL, 'X', '{}')$$, 'a' || chr(133) || 'b'), 'CS002', NULL,
                 'a C1 control character (U+0085) is refused');
SELECT throws_ok(format($$SELECT consistency.append_event(%L, NULL, 'X', '{}')$$, 'a' || chr(127)), 'CS002', NULL,
                 'DEL is refused');

-- The size limit is exact: the bytes of data plus metadata in jsonb format (headers not
-- counted; pg_column_size of a fresh value includes its 4-byte header).
CREATE TEMP TABLE t_size AS
  SELECT pg_column_size(jsonb_build_object('blob', repeat('x', 500))) - 4
       + pg_column_size('{"m": 1}'::jsonb) - 4 AS bytes;
DO $$ BEGIN PERFORM set_config('pg_consistency.max_event_bytes', (SELECT bytes FROM t_size)::text, true); END $$;
SELECT lives_ok($$SELECT consistency.append_event('tap-size', NULL, 'X', jsonb_build_object('blob', repeat('x', 500)), '{"m": 1}')$$,
                'an event of exactly max_event_bytes is accepted');
DO $$ BEGIN PERFORM set_config('pg_consistency.max_event_bytes', ((SELECT bytes FROM t_size) - 1)::text, true); END $$;
SELECT throws_ok($$SELECT consistency.append_event('tap-size', NULL, 'X', jsonb_build_object('blob', repeat('x', 500)), '{"m": 1}')$$,
                 'CS002', NULL, 'one byte more is refused');
RESET pg_consistency.max_event_bytes;

-- Direct INSERTs by the owner also take gap-safe positions.
INSERT INTO consistency.events (stream, version, event_id, type, data) VALUES ('tap-direct', 1, gen_random_uuid(), 'X', '{}');
SELECT ok((SELECT global_position FROM consistency.events WHERE stream = 'tap-direct') > (SELECT p FROM t_before),
          'a direct insert gets a position from the same sequence');

-- ---------------------------------------------------------------------------------
-- The read horizon inside an appending transaction
-- ---------------------------------------------------------------------------------
SELECT is(consistency.read_horizon(),
          (SELECT min(global_position) FROM consistency.events WHERE global_position > (SELECT p FROM t_before)),
          'the horizon stays at this transaction''s first position');
SELECT is((SELECT count(*)::int FROM consistency.read_all((SELECT p FROM t_before), 1000)), 0,
          'read_all does not return this transaction''s own uncommitted events');
SELECT is((SELECT count(*)::int FROM consistency.open_writers WHERE pid = pg_backend_pid()), 1,
          'open_writers lists this transaction');
SELECT is((SELECT lower_bound FROM consistency.open_writers WHERE pid = pg_backend_pid()), consistency.read_horizon(),
          '... with its lower bound, which is the horizon');
SELECT ok((SELECT max(global_position) FROM consistency.read_all(0, 100000)) IS NOT DISTINCT FROM
          (SELECT max(global_position) FROM consistency.events WHERE global_position <= (SELECT p FROM t_before)),
          'read_all still reaches every event committed before');

-- ---------------------------------------------------------------------------------
-- Other AFTER INSERT triggers on events keep working (the outbox routes events so)
-- ---------------------------------------------------------------------------------
-- Triggers on the event store's tables fire inside the owner scope: as the extension
-- owner, with only pg_catalog on the search path, so they name everything with its schema.
CREATE TEMP TABLE t_routed (stream text, version bigint);
CREATE FUNCTION pg_temp.route() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pg_temp.t_routed SELECT stream, version FROM new_events;
  RETURN NULL;
END $$;
CREATE TRIGGER tap_route AFTER INSERT ON consistency.events REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.route();
SELECT is(consistency.append_events('tap-route', NULL, '[{"type": "A", "data": {}}, {"type": "B", "data": {}}]'), 2::bigint,
          'append with an AFTER INSERT transition-table trigger present');
SELECT results_eq($$SELECT stream, version FROM t_routed ORDER BY version$$,
                  $$VALUES ('tap-route', 1::bigint), ('tap-route', 2::bigint)$$,
                  'the statement trigger saw both events of the call');
DROP TRIGGER tap_route ON consistency.events;
SELECT throws_ok($$UPDATE consistency.events SET data = '{}' WHERE stream = 'tap-route'$$, '42501', NULL, 'UPDATE refused');
SELECT throws_ok($$DELETE FROM consistency.events WHERE stream = 'tap-route'$$, '42501', NULL, 'DELETE refused');
SELECT throws_ok($$TRUNCATE consistency.events$$, '42501', NULL, 'TRUNCATE refused');

-- ---------------------------------------------------------------------------------
-- Upcasting
-- ---------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.up_1(d jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT d || '{"step1": true}' $$;
CREATE FUNCTION pg_temp.up_2(d jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT d || jsonb_build_object('after_step1', d ? 'step1') $$;
SELECT is(consistency.append_event('tap-up', NULL, 'Thing', '{"v": 1}'), 1::bigint, 'v1 event');
SELECT lives_ok($$SELECT consistency.register_upcaster('Thing', 1, 'pg_temp.up_1(jsonb)')$$, 'register 1 -> 2');
SELECT is((SELECT schema_version FROM consistency.read_stream('tap-up')), 2, 'read at version 2 at once (caches reload in the same transaction)');
SELECT lives_ok($$SELECT consistency.register_upcaster('Thing', 2, 'pg_temp.up_2(jsonb)')$$, 'register 2 -> 3');
SELECT is((SELECT data FROM consistency.read_stream('tap-up')), '{"v": 1, "step1": true, "after_step1": true}'::jsonb,
          'the chain applies in order (1 -> 2, then 2 -> 3)');
SELECT is(consistency.append_event('tap-up', NULL, 'Thing', '{"v": 3}'), 2::bigint, 'append after the upcasters');
SELECT is((SELECT schema_version FROM consistency.events WHERE stream = 'tap-up' AND version = 2), 3,
          'new appends are stamped with the latest schema version');
SELECT is((SELECT data FROM consistency.read_stream('tap-up', 2)), '{"v": 3}'::jsonb, 'latest-version events are not upcast');
SELECT is((SELECT schema_version FROM consistency.read_stream('tap-1', 1, 1)), 1, 'other types are untouched');

-- ---------------------------------------------------------------------------------
-- Snapshots make aggregate_state cost the events since the last snapshot
-- ---------------------------------------------------------------------------------
CREATE SEQUENCE pg_temp.apply_calls;
CREATE FUNCTION pg_temp.count_apply(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('sum', (state->>'sum')::bigint + (data->>'n')::bigint,
                            'calls', nextval('pg_temp.apply_calls'))
$$;
SELECT lives_ok($$SELECT consistency.register_aggregate('tapagg', 'pg_temp.count_apply(jsonb,text,jsonb)', '{"sum": 0}', 50)$$,
                'register an aggregate with snapshot_every 50');
SELECT is(consistency.append_events('tapagg-1', 0, (SELECT jsonb_agg(jsonb_build_object('type', 'Add', 'data', jsonb_build_object('n', i)))
                                                     FROM generate_series(1, 1000) i)), 1000::bigint, '1000 events');
SELECT is((SELECT state->>'sum' FROM consistency.aggregate_state('tapagg-1')), '500500', 'first fold: sum of 1..1000');
SELECT is((SELECT last_value FROM pg_temp.apply_calls), 1000::bigint, 'the first fold applied 1000 events');
SELECT is((SELECT version FROM consistency.load_snapshot('tapagg-1')), 1000::bigint, 'and saved a snapshot at version 1000');
SELECT is(consistency.append_events('tapagg-1', 1000, '[{"type": "Add", "data": {"n": 1}}, {"type": "Add", "data": {"n": 2}}]'),
          1002::bigint, 'two more events');
SELECT is((SELECT state->>'sum' FROM consistency.aggregate_state('tapagg-1')), '500503', 'fold from the snapshot is right');
SELECT is((SELECT last_value FROM pg_temp.apply_calls), 1002::bigint, 'the second fold applied only the 2 new events');
SELECT is((SELECT count(*)::int FROM consistency.snapshots WHERE stream = 'tapagg-1'), 1, 'one snapshot kept per stream');
SELECT is((SELECT version FROM consistency.aggregate_state('tapagg-404')), 0::bigint, 'an absent stream folds to version 0');
SELECT col_type_is('consistency', 'snapshots', 'folded', 'boolean', 'snapshots record whether a fold saved them');
SELECT lives_ok($$SELECT consistency.save_snapshot('tapagg-1', 1002, '{"sum": -1}')$$, 'a snapshot saved by hand');
SELECT is((SELECT state->>'sum' FROM consistency.aggregate_state('tapagg-1')), '500503',
          'aggregate_state does not start from a hand-saved snapshot, only from its own folds');

-- ---------------------------------------------------------------------------------
-- Security (the attacks themselves run in sql/11_eventstore_security.sql and test/t/103_*.t)
-- ---------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.where_am_i(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ SELECT jsonb_build_object('search_path', current_setting('search_path'), 'work_mem', current_setting('work_mem')) $$;
SELECT lives_ok($$SELECT consistency.register_aggregate('tappath', 'pg_temp.where_am_i(jsonb,text,jsonb)', '{}', 0)$$,
                'an aggregate whose apply function reports its context');
SELECT is(consistency.append_event('tappath-1', NULL, 'X', '{}'), 1::bigint, 'one event to fold');
SELECT is((SELECT state->>'search_path' FROM consistency.aggregate_state('tappath-1')), 'pg_catalog, pg_temp',
          'the fold runs with search_path = pg_catalog, pg_temp, whatever the caller''s path');
SELECT throws_ok($$SELECT consistency.append_event('saga-tap', NULL, 'X', '{}')$$, '42501', NULL,
                 'streams of category saga are reserved to the extension');
SELECT throws_ok($$SELECT consistency.append_events('saga', NULL, '[{"type": "X", "data": {}}]')$$, '42501', NULL,
                 '... the bare category too');
SELECT throws_ok($$SELECT consistency.save_snapshot('saga-tap', 1, '{}')$$, '42501', NULL, '... and their snapshots');
SELECT is((SELECT setting || '/' || unit || '/' || context FROM pg_settings WHERE name = 'pg_consistency.subscription_handler_timeout'),
          '5000/ms/superuser', 'subscription_handler_timeout: 5 s by default, set by superusers only');

-- ---------------------------------------------------------------------------------
-- Subscription management (processing is covered by the regression and TAP tests)
-- ---------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.tap_handler(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT lives_ok($$SELECT consistency.create_subscription('tap-sub', 'pg_temp.tap_handler(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['tap'], ARRAY['A'], 7)$$,
                'create a filtered subscription');
SELECT results_eq($$SELECT position, status, categories, event_types, owner = current_user::regrole
                      FROM consistency.subscriptions WHERE name = 'tap-sub'$$,
                  $$VALUES (7::bigint, 'active', ARRAY['tap'], ARRAY['A'], true)$$,
                  'it starts at from_position, active, owned by its creator');
SELECT is(consistency.wait_for_subscription('tap-sub', 7, '0 s'), true, 'a position at or below the checkpoint is reached at once');
SELECT is(consistency.wait_for_subscription('tap-sub', 8, '0 s'), false, 'a later one is not');
SELECT lives_ok($$SELECT consistency.reset_subscription('tap-sub', 3)$$, 'reset');
SELECT is((SELECT position FROM consistency.subscriptions WHERE name = 'tap-sub'), 3::bigint, 'reset moves the checkpoint');
SELECT lives_ok($$SELECT consistency.drop_subscription('tap-sub')$$, 'drop');
SELECT throws_ok($$SELECT consistency.drop_subscription('tap-sub')$$, 'CS004', NULL, 'dropping twice: CS004');

SELECT * FROM finish();
ROLLBACK;
