-- Function references in the extension's tables (src/sql/00_base.sql): stored as
-- signature, OID and the cluster that bound them, never as a reg* type pg_upgrade refuses.
-- In the cluster that bound a row its OID is followed (a function dropped and created again
-- is not called); a row bound in another cluster (after pg_upgrade; simulated here with the
-- binding trigger off) is resolved by signature at use and bound again by
-- _rebind_function_refs. Everything rolls back.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_consistency;
RESET client_min_messages;
BEGIN;
-- No column of a type pg_upgrade refuses (its check.c), also as an array or domain.
SELECT count(*) AS refused_columns
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_type t ON t.oid = a.atttypid
 WHERE c.relnamespace = 'consistency'::regnamespace AND c.relkind IN ('r', 'p', 'm', 'i')
   AND a.attnum > 0 AND NOT a.attisdropped
   AND ARRAY[t.oid, t.typelem, t.typbasetype]::oid[] && ARRAY['regproc', 'regprocedure', 'regoper', 'regoperator',
        'regconfig', 'regdictionary', 'regnamespace', 'regcollation']::regtype[]::oid[];

CREATE SCHEMA fr;
CREATE FUNCTION fr.h(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION fr.up(d jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT d $$;
CREATE FUNCTION fr.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION fr.msg(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT consistency.create_subscription('fr-sub', 'fr.h(bigint,text,bigint,text,jsonb,jsonb)');
SELECT consistency.register_upcaster('FrEvent', 1, 'fr.up(jsonb)');
SELECT consistency.create_consumer('fr-in', ARRAY['fr.topic'], 'fr.msg(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.define_saga('fr-saga', '{"steps": [{"name": "s", "action": {"function": "fr.step"}}]}');
-- Bound here, by the OID the caller named, with the signature beside it.
SELECT handler, handler_oid = 'fr.h(bigint,text,bigint,text,jsonb,jsonb)'::regprocedure AS oid_named,
       bound_cluster = consistency._system_identifier() AS bound_here
  FROM consistency.subscription_state WHERE name = 'fr-sub';
SELECT fn, fn_oid = 'fr.up(jsonb)'::regprocedure AS oid_named, bound_cluster = consistency._system_identifier() AS bound_here
  FROM consistency.upcasters WHERE event_type = 'FrEvent';
SELECT handler, handler_oid = 'fr.msg(text,int,bigint,text,jsonb,jsonb)'::regprocedure AS oid_named,
       bound_cluster = consistency._system_identifier() AS bound_here
  FROM consistency.consumer_state WHERE name = 'fr-in';
SELECT (compiled->'steps'->0->'action'->>'oid')::oid = 'fr.step(uuid,jsonb)'::regprocedure AS oid_named,
       bound_cluster = consistency._system_identifier() AS bound_here
  FROM consistency.saga_definitions WHERE name = 'fr-saga';
SELECT handler FROM consistency.subscriptions WHERE name = 'fr-sub';

-- Dropped and created again under the same name: the row keeps the old OID, here; binding
-- again changes nothing for rows bound in this cluster.
SELECT handler_oid AS old_h FROM consistency.subscription_state WHERE name = 'fr-sub' \gset
DROP FUNCTION fr.h(bigint, text, bigint, text, jsonb, jsonb);
CREATE FUNCTION fr.h(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT consistency._rebind_function_refs() AS rebound;
SELECT consistency._bound_function(handler, handler_oid, bound_cluster) = :old_h AS still_old_oid,
       consistency._bound_function(handler, handler_oid, bound_cluster)
         <> 'fr.h(bigint,text,bigint,text,jsonb,jsonb)'::regprocedure AS new_function_not_called
  FROM consistency.subscription_state WHERE name = 'fr-sub';
-- An UPDATE that does not name the reference keeps it.
UPDATE consistency.subscription_state SET position = position WHERE name = 'fr-sub';
SELECT handler_oid = :old_h AS still_old_oid FROM consistency.subscription_state WHERE name = 'fr-sub';

-- As after pg_upgrade: the rows carry another cluster's identifier and stale OIDs.
ALTER TABLE consistency.subscription_state DISABLE TRIGGER subscription_state_bind_fn;
ALTER TABLE consistency.upcasters DISABLE TRIGGER upcasters_bind_fn;
ALTER TABLE consistency.consumer_state DISABLE TRIGGER consumer_state_bind_fn;
ALTER TABLE consistency.saga_definitions DISABLE TRIGGER saga_definition_oids;
UPDATE consistency.subscription_state SET bound_cluster = 1 WHERE name = 'fr-sub';
UPDATE consistency.upcasters SET bound_cluster = 1, fn_oid = 1 WHERE event_type = 'FrEvent';
UPDATE consistency.consumer_state SET bound_cluster = 1, handler_oid = 1 WHERE name = 'fr-in';
UPDATE consistency.saga_definitions
   SET bound_cluster = 1, compiled = jsonb_set(compiled, '{steps,0,action,oid}', '1') WHERE name = 'fr-saga';
ALTER TABLE consistency.subscription_state ENABLE TRIGGER subscription_state_bind_fn;
ALTER TABLE consistency.upcasters ENABLE TRIGGER upcasters_bind_fn;
ALTER TABLE consistency.consumer_state ENABLE TRIGGER consumer_state_bind_fn;
ALTER TABLE consistency.saga_definitions ENABLE TRIGGER saga_definition_oids;
-- Each use resolves the signature (the old OID is another cluster's), before binding again.
SELECT consistency._bound_function(handler, handler_oid, bound_cluster)
         = 'fr.h(bigint,text,bigint,text,jsonb,jsonb)'::regprocedure AS resolved_by_signature
  FROM consistency.subscription_state WHERE name = 'fr-sub';
SELECT consistency._bound_function(fn, fn_oid, bound_cluster) = 'fr.up(jsonb)'::regprocedure AS resolved_by_signature
  FROM consistency.upcasters WHERE event_type = 'FrEvent';
SELECT (consistency._saga_bound_steps(compiled, bound_cluster)->'steps'->0->'action'->>'oid')::oid
         = 'fr.step(uuid,jsonb)'::regprocedure AS resolved_by_signature
  FROM consistency.saga_definitions WHERE name = 'fr-saga';
SELECT handler FROM consistency.consumers WHERE name = 'fr-in';
SELECT consistency._rebind_function_refs() AS rebound;
SELECT handler_oid = 'fr.h(bigint,text,bigint,text,jsonb,jsonb)'::regprocedure AS bound_to_new,
       bound_cluster = consistency._system_identifier() AS bound_here
  FROM consistency.subscription_state WHERE name = 'fr-sub';
SELECT fn_oid = 'fr.up(jsonb)'::regprocedure AS bound_to_new FROM consistency.upcasters WHERE event_type = 'FrEvent';
SELECT handler_oid = 'fr.msg(text,int,bigint,text,jsonb,jsonb)'::regprocedure AS bound_to_new
  FROM consistency.consumer_state WHERE name = 'fr-in';
SELECT (compiled->'steps'->0->'action'->>'oid')::oid = 'fr.step(uuid,jsonb)'::regprocedure AS bound_to_new,
       bound_cluster = consistency._system_identifier() AS bound_here
  FROM consistency.saga_definitions WHERE name = 'fr-saga';
SELECT consistency._rebind_function_refs() AS rebound_again;

-- A restored row (signature only, or another database's OID): bound by its signature; one
-- whose signature names nothing, or is no signature at all, gets 0.
INSERT INTO consistency.upcasters (event_type, from_schema_version, fn, fn_oid, bound_cluster, registered_by)
VALUES ('FrEvent', 2, 'fr.up(jsonb)', 1, consistency._system_identifier(), 10),
       ('FrEvent', 3, 'fr.missing(jsonb)', 1, 1, 10),
       ('FrEvent', 4, '12345', 1, 1, 10);
INSERT INTO consistency.upcasters (event_type, from_schema_version, fn, registered_by) VALUES ('FrEvent', 5, 'fr.up(jsonb)', 10);
SELECT from_schema_version, fn, CASE WHEN fn_oid = 0 THEN '0' WHEN fn_oid = 'fr.up(jsonb)'::regprocedure THEN 'fr.up' END AS oid
  FROM consistency.upcasters WHERE event_type = 'FrEvent' ORDER BY 1;
-- A consumer whose handler is gone is reported.
ALTER TABLE consistency.consumer_state DISABLE TRIGGER consumer_state_bind_fn;
UPDATE consistency.consumer_state SET bound_cluster = 1 WHERE name = 'fr-in';
ALTER TABLE consistency.consumer_state ENABLE TRIGGER consumer_state_bind_fn;
DROP FUNCTION fr.msg(text, int, bigint, text, jsonb, jsonb);
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'inbox_handlers_exist';
ROLLBACK;
