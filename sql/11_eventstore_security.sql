-- Event store, continued: what runs as whom, EXECUTE rights, the reserved category,
-- hostile callers; then operations and the clean-up. Runs after 10_eventstore in the same
-- database (pg_regress runs the suites in name order there) and uses what it left.
\i sql/include/helpers.sql

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
-- An upcaster that changes search_path at session level (set_config(..., false)) to a
-- schema with mallory's + first, and that anyone may use, and work_mem too. A fold calls
-- the upcasters and the apply function in one scope; what each call sets is rolled back
-- when it returns, so the apply function (parsed after the upcaster ran) still adds with
-- pg_catalog's +. A subscription handler called after the same upcaster sees the pinned
-- path and the session's work_mem too.
SET ROLE regress_es_mallory;
GRANT USAGE ON SCHEMA regress_es_mallory TO PUBLIC;
RESET ROLE;
CREATE FUNCTION public.es_escape_up(d jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('search_path', 'regress_es_mallory, pg_catalog', false);
  PERFORM set_config('work_mem', '77MB', false);
  RETURN d;
END $$;
SELECT consistency.append_events('vault-2', 0, '[{"type": "EscapeDeposit", "data": {"amount": 10}},
                                                {"type": "Deposited", "data": {"amount": 5}},
                                                {"type": "EscapeDeposit", "data": {"amount": 1}}]') AS v;
-- Registered after the events were written at schema version 1, so they are upcast.
SELECT consistency.register_upcaster('EscapeDeposit', 1, 'public.es_escape_up(jsonb)');
SELECT * FROM consistency.aggregate_state('vault-2') AS fold_after_a_path_changing_upcaster;
SHOW search_path;
CREATE TABLE public.es_path_log (type text, run_as text, search_path text, work_mem text);
GRANT INSERT ON public.es_path_log TO regress_es_writer;
CREATE FUNCTION public.es_path_seen(global_position bigint, stream text, version bigint, type text,
                                    data jsonb, metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.es_path_log VALUES (type, current_user, current_setting('search_path'), current_setting('work_mem'));
END $$;
SET ROLE regress_es_writer;
SELECT consistency.create_subscription('path_seen', 'public.es_path_seen(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['vault']);
RESET ROLE;
SELECT consistency._subscription_step('path_seen') AS handled;
SELECT type, run_as, search_path, work_mem, count(*) FROM public.es_path_log GROUP BY 1, 2, 3, 4 ORDER BY 1;
SELECT consistency.drop_subscription('path_seen');
SET ROLE regress_es_mallory;
REVOKE USAGE ON SCHEMA regress_es_mallory FROM PUBLIC;
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
DROP TABLE public.es_projection, public.es_seen, public.es_path_log;
DROP FUNCTION public.es_project(bigint,text,bigint,text,jsonb,jsonb), public.es_wrong_handler(bigint,text),
  public.es_v1_to_v2(jsonb), public.es_v2_to_v3(jsonb), public.es_returns_null(jsonb), public.es_wrong_args(text),
  public.es_wrong_result(jsonb), public.es_apply_account(jsonb,text,jsonb), public.es_apply_null(jsonb,text,jsonb),
  public.es_apply_wrong(jsonb,jsonb), public.es_secret_up(jsonb), public.es_secret_apply(jsonb,text,jsonb),
  public.es_secret_handler(bigint,text,bigint,text,jsonb,jsonb), public.es_apply_balance(jsonb,text,jsonb),
  public.es_meddle(bigint,text,bigint,text,jsonb,jsonb), public.es_fee_up(jsonb),
  public.es_escape_up(jsonb), public.es_path_seen(bigint,text,bigint,text,jsonb,jsonb);
DROP EXTENSION pg_consistency;
CREATE EXTENSION pg_consistency;
