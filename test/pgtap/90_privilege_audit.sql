-- Privilege audit: as a reader with only the default TEMP right, a writer owning a
-- schema, a role outside the extension's roles owning a schema, and a role with nothing
-- but the default TEMP right, call every function of the extension
-- (and read every view and table) with hostile objects in place: pg_temp domains and
-- views shadowing the names our code uses, and operators and functions shadowing
-- pg_catalog's on the role's search_path. Every trap records, in a sequence (nextval
-- survives the rollback of a failed call), whenever it runs as a superuser on behalf of
-- one of these roles, and then tries to make that role a superuser. None may gain rights.
BEGIN;
SELECT plan(15);

SET LOCAL client_min_messages = warning;

CREATE ROLE audit_reader IN ROLE consistency_reader;
CREATE ROLE audit_writer IN ROLE consistency_writer;
CREATE ROLE audit_outsider;
CREATE ROLE audit_temp_only;  -- no role of the extension, no schema: the default TEMP right alone
CREATE SCHEMA audit_writer AUTHORIZATION audit_writer;
CREATE SCHEMA audit_outsider AUTHORIZATION audit_outsider;

-- The traps, reachable by everyone.
CREATE SCHEMA audit_trap;
GRANT USAGE ON SCHEMA audit_trap TO PUBLIC;
CREATE SEQUENCE audit_trap.escalations;
CREATE SEQUENCE audit_trap.trap_runs;
GRANT USAGE, SELECT ON SEQUENCE audit_trap.escalations, audit_trap.trap_runs TO PUBLIC;

-- Runs wherever a hostile object is resolved. As a superuser acting for an attacker it
-- counts an escalation and tries to keep it.
CREATE FUNCTION audit_trap.evil() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  attacker pg_catalog.text := pg_catalog.current_setting('audit.attacker', true);
BEGIN
  PERFORM pg_catalog.nextval('audit_trap.trap_runs');
  IF attacker IS NOT NULL AND attacker OPERATOR(pg_catalog.<>) ''
     AND (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
    PERFORM pg_catalog.nextval('audit_trap.escalations');
    EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', attacker);
  END IF;
  RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION audit_trap.evil() TO PUBLIC;

-- Functions an attacker hands to the extension to run later (upcaster, fold, handler,
-- saga step): each is a trap too.
CREATE FUNCTION audit_trap.upcast(d jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT CASE WHEN audit_trap.evil() THEN d END $$;
CREATE FUNCTION audit_trap.apply(s jsonb, t text, d jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT CASE WHEN audit_trap.evil() THEN s END $$;
CREATE FUNCTION audit_trap.handler(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
  LANGUAGE sql AS $$ SELECT audit_trap.evil(); SELECT $$;
CREATE FUNCTION audit_trap.step(id uuid, d jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT CASE WHEN audit_trap.evil() THEN '{}'::jsonb END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA audit_trap TO PUBLIC;

-- Shadows, created by the attacker itself: pg_temp domains over the types our code
-- names, pg_temp views over the names of our tables, and (where the role has a schema)
-- operators and functions over pg_catalog's, first on its search_path.
CREATE FUNCTION audit_trap.plant(has_schema boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  t pg_catalog.text;
  o record;
  me pg_catalog.text := CURRENT_USER;
BEGIN
  FOREACH t IN ARRAY ARRAY['float8', 'int8', 'int4', 'text', 'jsonb', 'uuid', 'bool', 'timestamptz',
                           'interval', 'numeric', 'name', 'oid', 'regclass', 'regprocedure', 'bytea'] LOOP
    EXECUTE pg_catalog.format('CREATE DOMAIN pg_temp.%I AS pg_catalog.%I CHECK (audit_trap.evil())', t, t);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['streams', 'events', 'snapshots', 'upcasters', 'aggregates', 'subscriptions',
                           'outbox', 'dead_letters', 'event_routes', 'relay_stats', 'relay_batches',
                           'saga_definitions', 'saga_instances', 'sagas', 'twopc_participants',
                           'twopc_decisions', 'participants', 'in_doubt', 'workers', 'pg_roles',
                           'pg_proc', 'pg_class', 'pg_namespace', 'pg_authid', 'pg_settings',
                           'pg_stat_activity', 'pg_prepared_xacts'] LOOP
    EXECUTE pg_catalog.format('CREATE TEMP VIEW %I AS SELECT audit_trap.evil() AS trap', t);
  END LOOP;
  IF has_schema AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.proname OPERATOR(pg_catalog.=) 'eq_text'
                                   AND p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace(me)) THEN
    -- Operators: the function behind it, the operator, its operand types and result type.
    FOR o IN SELECT * FROM (VALUES ('eq_text', '=', 'text', 'text', 'bool'), ('eq_int8', '=', 'int8', 'int8', 'bool'),
                                   ('eq_int4', '=', 'int4', 'int4', 'bool'), ('eq_uuid', '=', 'uuid', 'uuid', 'bool'),
                                   ('gt_int8', '>', 'int8', 'int8', 'bool'), ('lt_int8', '<', 'int8', 'int8', 'bool'),
                                   ('plus_int8', '+', 'int8', 'int8', 'int8'), ('cat_text', '||', 'text', 'text', 'text'),
                                   ('field', '->>', 'jsonb', 'text', 'text')) AS v(fn, op, l, r, result) LOOP
      EXECUTE pg_catalog.format($f$
        CREATE FUNCTION %1$I.%2$I(a pg_catalog.%4$I, b pg_catalog.%5$I) RETURNS pg_catalog.%6$I
          LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN a OPERATOR(pg_catalog.%3$s) b END';
        CREATE OPERATOR %1$I.%3$s (LEFTARG = pg_catalog.%4$I, RIGHTARG = pg_catalog.%5$I, FUNCTION = %1$I.%2$I);
        $f$, me, o.fn, o.op, o.l, o.r, o.result);
    END LOOP;
    EXECUTE pg_catalog.format($f$
      CREATE FUNCTION %1$I.now() RETURNS pg_catalog.timestamptz
        LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN pg_catalog.now() END';
      CREATE FUNCTION %1$I.clock_timestamp() RETURNS pg_catalog.timestamptz
        LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN pg_catalog.clock_timestamp() END';
      CREATE FUNCTION %1$I.lower(a pg_catalog.text) RETURNS pg_catalog.text
        LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN pg_catalog.lower(a) END';
      CREATE FUNCTION %1$I.length(a pg_catalog.text) RETURNS pg_catalog.int4
        LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN pg_catalog.length(a) END';
      CREATE FUNCTION %1$I.split_part(a pg_catalog.text, b pg_catalog.text, n pg_catalog.int4)
        RETURNS pg_catalog.text
        LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN pg_catalog.split_part(a, b, n) END';
      CREATE FUNCTION %1$I.jsonb_build_object(a pg_catalog.text, b pg_catalog.text) RETURNS pg_catalog.jsonb
        LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN pg_catalog.jsonb_build_object(a, b) END';
      CREATE FUNCTION %1$I.format(a pg_catalog.text, b pg_catalog.text) RETURNS pg_catalog.text
        LANGUAGE sql AS 'SELECT CASE WHEN audit_trap.evil() THEN pg_catalog.format(a, b) END';
      $f$, me);
  END IF;
  IF has_schema THEN
    PERFORM pg_catalog.set_config('search_path', pg_catalog.quote_ident(me) || ', pg_temp, pg_catalog, public', false);
  ELSE
    PERFORM pg_catalog.set_config('search_path', 'pg_temp, pg_catalog, public', false);
  END IF;
END $$;
GRANT EXECUTE ON FUNCTION audit_trap.plant(boolean) TO PUBLIC;

-- Removes the shadows (owned by the attacker, in this session's pg_temp or its schema).
CREATE FUNCTION audit_trap.unplant() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog', false);
  FOR r IN SELECT c.relname FROM pg_catalog.pg_class c
            WHERE c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema() AND c.relkind OPERATOR(pg_catalog.=) 'v' LOOP
    EXECUTE pg_catalog.format('DROP VIEW pg_temp.%I', r.relname);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_catalog.pg_type t
            WHERE t.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema() AND t.typtype OPERATOR(pg_catalog.=) 'd' LOOP
    EXECUTE pg_catalog.format('DROP DOMAIN pg_temp.%I', r.typname);
  END LOOP;
  PERFORM pg_catalog.set_config('search_path', '"$user", public', false);
END $$;
GRANT EXECUTE ON FUNCTION audit_trap.unplant() TO PUBLIC;

-- One call per function of the extension: a realistic call where the function needs
-- shaped arguments to get past its checks, else typed sample values (NULL for types
-- without one). Built before any shadow exists.
CREATE TABLE audit_trap.calls (ord serial, fn regprocedure, sql text);
GRANT SELECT ON audit_trap.calls TO PUBLIC;
INSERT INTO audit_trap.calls (fn, sql)
SELECT p.oid::regprocedure,
       CASE p.oid::regprocedure::text
         WHEN 'consistency.append_events(text,bigint,jsonb)' THEN
           $q$SELECT consistency.append_events('audit-1'::pg_catalog.text, NULL::pg_catalog.int8, '[{"type":"AuditT","data":{"a":1}},{"type":"AuditT","data":{"a":2},"id":"00000000-0000-4000-8000-000000000001"}]'::pg_catalog.jsonb)$q$
         WHEN 'consistency.append_event(text,bigint,text,jsonb,jsonb)' THEN
           $q$SELECT consistency.append_event('audit-1'::pg_catalog.text, NULL::pg_catalog.int8, 'AuditT'::pg_catalog.text, '{"a":3}'::pg_catalog.jsonb, '{}'::pg_catalog.jsonb)$q$
         WHEN 'consistency.register_upcaster(text,integer,regprocedure)' THEN
           $q$SELECT consistency.register_upcaster('AuditT'::pg_catalog.text, 1, 'audit_trap.upcast(pg_catalog.jsonb)'::pg_catalog.regprocedure)$q$
         WHEN 'consistency.register_aggregate(text,regprocedure,jsonb,integer)' THEN
           $q$SELECT consistency.register_aggregate('audit'::pg_catalog.text, 'audit_trap.apply(pg_catalog.jsonb,pg_catalog.text,pg_catalog.jsonb)'::pg_catalog.regprocedure, '{}'::pg_catalog.jsonb, 1)$q$
         WHEN 'consistency.create_subscription(text,regprocedure,text[],text[],bigint)' THEN
           $q$SELECT consistency.create_subscription('audit_sub'::pg_catalog.text, 'audit_trap.handler(pg_catalog.int8,pg_catalog.text,pg_catalog.int8,pg_catalog.text,pg_catalog.jsonb,pg_catalog.jsonb)'::pg_catalog.regprocedure, NULL::pg_catalog.text[], NULL::pg_catalog.text[], 0::pg_catalog.int8)$q$
         WHEN 'consistency.save_snapshot(text,bigint,jsonb)' THEN
           $q$SELECT consistency.save_snapshot('audit-1'::pg_catalog.text, 1::pg_catalog.int8, '{"s":1}'::pg_catalog.jsonb)$q$
         WHEN 'consistency.wait_for_subscription(text,bigint,interval)' THEN
           $q$SELECT consistency.wait_for_subscription('audit_sub'::pg_catalog.text, 1::pg_catalog.int8, '10 milliseconds'::pg_catalog.interval)$q$
         WHEN 'consistency.define_saga(text,jsonb)' THEN
           $q$SELECT consistency.define_saga('audit_saga'::pg_catalog.text, '{"steps":[{"name":"s1","action":{"function":"audit_trap.step"},"compensation":{"function":"audit_trap.step"}},{"name":"s2","action":{"topic":"audit.commands","command":"Do"}}]}'::pg_catalog.jsonb)$q$
         WHEN 'consistency.saga_definition_diagram(text)' THEN
           $q$SELECT consistency.saga_definition_diagram('audit_saga'::pg_catalog.text)$q$
         WHEN 'consistency.start_saga(text,jsonb,text)' THEN
           $q$SELECT consistency.start_saga('audit_saga'::pg_catalog.text, '{"x":1}'::pg_catalog.jsonb, 'audit-key'::pg_catalog.text)$q$
         WHEN 'consistency.wait_for_token(text,interval,text)' THEN
           $q$SELECT consistency.wait_for_token(consistency.session_token(), '10 milliseconds'::pg_catalog.interval, 'audit_sub'::pg_catalog.text)$q$
         WHEN 'consistency.max_token(text,text)' THEN
           $q$SELECT consistency.max_token(consistency.session_token(), consistency.session_token())$q$
         WHEN 'consistency.await_token(text,interval,text,boolean)' THEN
           $q$CALL consistency.await_token(consistency.session_token(), '10 milliseconds'::pg_catalog.interval, 'audit_sub'::pg_catalog.text, NULL)$q$
         WHEN 'consistency.add_participant(text,text)' THEN
           $q$SELECT consistency.add_participant('audit_p'::pg_catalog.text, 'host=127.0.0.1 port=1 dbname=x user=nobody connect_timeout=1'::pg_catalog.text)$q$
         ELSE
           'SELECT * FROM ' || p.oid::regproc::text || '(' ||
           coalesce((SELECT string_agg(
                       CASE a.t
                         WHEN 'text'::regtype THEN '''audit-1''::pg_catalog.text'
                         WHEN 'bigint'::regtype THEN '1::pg_catalog.int8'
                         WHEN 'integer'::regtype THEN '1::pg_catalog.int4'
                         WHEN 'boolean'::regtype THEN 'false'
                         WHEN 'jsonb'::regtype THEN '''{}''::pg_catalog.jsonb'
                         WHEN 'bytea'::regtype THEN '''\x00''::pg_catalog.bytea'
                         WHEN 'uuid'::regtype THEN '''00000000-0000-4000-8000-000000000001''::pg_catalog.uuid'
                         WHEN 'interval'::regtype THEN '''10 milliseconds''::pg_catalog.interval'
                         WHEN 'text[]'::regtype THEN '''{audit}''::pg_catalog.text[]'
                         ELSE 'NULL::' || a.t::regtype::text
                       END, ', ' ORDER BY a.n)
                     FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n)), '') || ')'
       END
  FROM pg_proc p
 WHERE p.pronamespace = 'consistency'::regnamespace
   AND p.prorettype <> 'trigger'::regtype
   AND p.proname NOT IN ('_test_guarded_errors', '_debug_fail_worker_ticks')
 ORDER BY p.proname, p.oid;
-- Replies and operator calls on the audit saga, then every view and table.
INSERT INTO audit_trap.calls (fn, sql) VALUES
  (NULL, $q$SELECT consistency.complete_step((SELECT s.id FROM consistency.saga_instances s WHERE s.idempotency_key OPERATOR(pg_catalog.=) 'audit-key'), 's2', '{}'::pg_catalog.jsonb)$q$),
  (NULL, $q$SELECT consistency.saga_diagram((SELECT s.id FROM consistency.saga_instances s WHERE s.idempotency_key OPERATOR(pg_catalog.=) 'audit-key'))$q$),
  (NULL, $q$SELECT consistency.retry_saga((SELECT s.id FROM consistency.saga_instances s WHERE s.idempotency_key OPERATOR(pg_catalog.=) 'audit-key'))$q$),
  (NULL, $q$SELECT consistency.abort_saga((SELECT s.id FROM consistency.saga_instances s WHERE s.idempotency_key OPERATOR(pg_catalog.=) 'audit-key'), 'audit')$q$),
  (NULL, $q$SELECT * FROM consistency.aggregate_state('audit-1'::pg_catalog.text)$q$),
  (NULL, $q$SELECT * FROM consistency.read_stream('audit-1'::pg_catalog.text, 1::pg_catalog.int8, 10)$q$);
INSERT INTO audit_trap.calls (fn, sql)
SELECT NULL, 'SELECT * FROM ' || c.oid::regclass::text || ' LIMIT 5'
  FROM pg_class c
 WHERE c.relnamespace = 'consistency'::regnamespace AND c.relkind IN ('r', 'v', 'p')
 ORDER BY c.relname;

-- Calls everything as `attacker` with its shadows planted; returns how many calls ran
-- and how many ended in an error (refusals are fine: the audit is about rights).
CREATE FUNCTION audit_trap.attack(attacker text, has_schema boolean, OUT calls int, OUT errors int,
                                  OUT internal_errors text, OUT escalating_calls text) LANGUAGE plpgsql AS $$
DECLARE
  c record;
  code pg_catalog.text;
  msg pg_catalog.text;
  seen pg_catalog.int8;
  now_seen pg_catalog.int8;
BEGIN
  calls := 0; errors := 0; internal_errors := ''; escalating_calls := '';
  PERFORM pg_catalog.set_config('audit.attacker', attacker, false);
  EXECUTE pg_catalog.format('SET ROLE %I', attacker);
  PERFORM audit_trap.plant(has_schema);
  FOR c IN SELECT k.sql FROM audit_trap.calls k ORDER BY k.ord LOOP
    SELECT CASE WHEN e.is_called THEN e.last_value ELSE 0 END INTO seen FROM audit_trap.escalations e;
    BEGIN
      calls := calls OPERATOR(pg_catalog.+) 1;
      EXECUTE c.sql;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
      errors := errors OPERATOR(pg_catalog.+) 1;
      IF code OPERATOR(pg_catalog.=) 'XX000' THEN
        internal_errors := internal_errors OPERATOR(pg_catalog.||) c.sql OPERATOR(pg_catalog.||) ': '
                           OPERATOR(pg_catalog.||) msg OPERATOR(pg_catalog.||) E'\n';
      END IF;
    END;
    SELECT CASE WHEN e.is_called THEN e.last_value ELSE 0 END INTO now_seen FROM audit_trap.escalations e;
    IF now_seen OPERATOR(pg_catalog.<>) seen THEN
      escalating_calls := escalating_calls OPERATOR(pg_catalog.||) c.sql OPERATOR(pg_catalog.||) E'\n';
    END IF;
  END LOOP;
  PERFORM audit_trap.unplant();
  RESET ROLE;
  PERFORM pg_catalog.set_config('audit.attacker', '', false);
END $$;

-- The audit can fail: a SECURITY DEFINER function without a pinned search_path resolves
-- the reader's pg_temp domain and the trap counts the escalation.
CREATE FUNCTION audit_trap.unsafe_definer() RETURNS float8 LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT 1::float8 $$;
GRANT EXECUTE ON FUNCTION audit_trap.unsafe_definer() TO PUBLIC;
SELECT set_config('audit.attacker', 'audit_reader', false);
SET ROLE audit_reader;
SELECT audit_trap.plant(false);
SELECT audit_trap.unsafe_definer();
SELECT audit_trap.unplant();
RESET ROLE;
SELECT set_config('audit.attacker', '', false);
SELECT ok((SELECT is_called FROM audit_trap.escalations), 'control: an unpinned definer is caught by the trap');
ALTER ROLE audit_reader NOSUPERUSER;
SELECT setval('audit_trap.escalations', 1, false);

SELECT cmp_ok((SELECT count(*)::int FROM audit_trap.calls WHERE fn IS NOT NULL), '>=', 50,
              'the audit calls every function of the extension');

-- The attacks.
CREATE TEMP TABLE audit_result AS
SELECT 'audit_reader' AS attacker, * FROM audit_trap.attack('audit_reader', false);
INSERT INTO audit_result SELECT 'audit_writer', * FROM audit_trap.attack('audit_writer', true);
INSERT INTO audit_result SELECT 'audit_outsider', * FROM audit_trap.attack('audit_outsider', true);
INSERT INTO audit_result SELECT 'audit_temp_only', * FROM audit_trap.attack('audit_temp_only', false);
-- The writer again after the reader and outsider planted theirs: its own saga, upcaster,
-- aggregate and subscription now exist and the replies reach them.
INSERT INTO audit_result SELECT 'audit_writer', * FROM audit_trap.attack('audit_writer', true);

SELECT is((SELECT count(*)::int FROM audit_result WHERE calls = (SELECT count(*) FROM audit_trap.calls)), 5,
          'every call was made in every round');
SELECT ok((SELECT sum(calls - errors) FROM audit_result WHERE attacker = 'audit_writer') > 0,
          'some of the writer''s calls succeed (the audit reaches past the privilege checks)');
SELECT is((SELECT string_agg(attacker || ': ' || escalating_calls, '') FROM audit_result WHERE escalating_calls <> ''),
          NULL, 'no call ran a trap as a superuser on behalf of an attacker');
SELECT is((SELECT is_called FROM audit_trap.escalations), false,
          'no trap ever ran as a superuser on behalf of an attacker');
SELECT ok((SELECT is_called FROM audit_trap.trap_runs),
          'the traps were reached (as the attackers themselves)');
SELECT is((SELECT string_agg(internal_errors, '') FROM audit_result), '',
          'no call ended in an internal error (XX000)');
SELECT is((SELECT count(*)::int FROM pg_roles WHERE rolname LIKE 'audit\_%' AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication)),
          0, 'no attacker holds an elevated attribute');
SELECT is((SELECT count(*)::int FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
            WHERE r.rolname LIKE 'audit\_%'), 2, 'no attacker gained a role membership');
SELECT ok(NOT pg_has_role('audit_reader', 'consistency_writer', 'MEMBER'), 'the reader did not become a writer');
SELECT ok(NOT pg_has_role('audit_writer', 'consistency_admin', 'MEMBER'), 'the writer did not become an admin');

-- Catalog rows written by attackers carry their own identity, not the owner's.
SELECT is((SELECT count(*)::int FROM consistency.saga_definitions d
            WHERE d.name = 'audit_saga' AND d.owner <> 'audit_writer'::regrole), 0,
          'the audit saga is owned by the writer that defined it');
SELECT is((SELECT count(*)::int FROM consistency.upcasters u
            WHERE u.event_type = 'AuditT' AND u.fn_oid <> 'audit_trap.upcast(jsonb)'::regprocedure), 0,
          'the upcaster registered is the function named, by OID');
SELECT ok(NOT EXISTS (SELECT 1 FROM consistency.twopc_participants WHERE name = 'audit_p'),
          'no participant was added by a non-admin');

SELECT * FROM finish();
ROLLBACK;
