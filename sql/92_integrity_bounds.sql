-- check_integrity() bounded on large tables (docs/operations.md): each check reads the
-- most recent rows of a table that grows with traffic, at most
-- pg_consistency.integrity_max_rows of them, through an index, and says when it was
-- capped. A corruption inside that window is found; one older than the window is not
-- (until the limit is raised). Then: the plans of the checks read those tables through
-- indexes.
SHOW pg_consistency.integrity_max_rows;
CREATE SCHEMA bounds;
CREATE FUNCTION bounds.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION bounds.gap(stream text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO consistency.streams (stream, version) VALUES (stream, 3);
  INSERT INTO consistency.events (stream, version, event_id, type, data)
  VALUES (stream, 1, gen_random_uuid(), 'X', '{}'), (stream, 3, gen_random_uuid(), 'X', '{}');
$$;

-- Event store: an old stream with a gap (version 2 missing), then five newer events.
SELECT bounds.gap('zz_bounds_old-1');
SELECT consistency.append_events('zz_bounds_new-' || i, 0, '[{"type": "X", "data": {}}]') FROM generate_series(1, 5) i;
SELECT check_name, ok, detail FROM consistency._integrity_eventstore() WHERE check_name = 'eventstore.version_gaps';
SET pg_consistency.integrity_max_rows = 3;
-- Outside the three most recent events: not found, and the detail says the check was capped.
SELECT check_name, ok, detail FROM consistency._integrity_eventstore()
 WHERE check_name IN ('eventstore.stream_versions', 'eventstore.version_gaps') ORDER BY 1;
-- A gap among the most recent events is found.
SELECT bounds.gap('zz_bounds_recent-1');
SELECT check_name, ok, detail FROM consistency._integrity_eventstore() WHERE check_name = 'eventstore.version_gaps';
RESET pg_consistency.integrity_max_rows;
ALTER TABLE consistency.events DISABLE TRIGGER events_immutable;
DELETE FROM consistency.events WHERE stream LIKE 'zz\_bounds\_%';
ALTER TABLE consistency.events ENABLE ALWAYS TRIGGER events_immutable;
DELETE FROM consistency.streams WHERE stream LIKE 'zz\_bounds\_%';
SELECT bool_and(ok) AS eventstore_ok FROM consistency._integrity_eventstore();

-- Sagas: three completed sagas; the oldest gets an impossible step.
SELECT consistency.define_saga('bounds', '{"steps": [{"name": "one", "action": {"function": "bounds.step"}}]}');
CREATE TABLE bounds.sagas AS
  SELECT i, consistency.start_saga('bounds', jsonb_build_object('i', i)) AS id FROM generate_series(1, 3) i;
DO $$ BEGIN WHILE consistency._advance_sagas() > 0 LOOP END LOOP; END $$;
SELECT count(*) FILTER (WHERE status = 'completed') AS completed FROM consistency.sagas WHERE name = 'bounds';
UPDATE consistency.saga_instances SET step_index = 42 WHERE id = (SELECT id FROM bounds.sagas WHERE i = 1);
SELECT check_name, ok FROM consistency._integrity_saga() WHERE check_name = 'saga_state_consistent';
SET pg_consistency.integrity_max_rows = 1;
SELECT check_name, ok, detail LIKE '%(capped: %' AS capped
  FROM consistency._integrity_saga() WHERE check_name = 'saga_state_consistent';
-- The most recently started saga is inside the window.
UPDATE consistency.saga_instances SET step_index = 42 WHERE id = (SELECT id FROM bounds.sagas WHERE i = 3);
SELECT check_name, ok, regexp_replace(detail, '[0-9a-f-]{36}', '<uuid>') AS detail
  FROM consistency._integrity_saga() WHERE check_name = 'saga_state_consistent';
RESET pg_consistency.integrity_max_rows;
UPDATE consistency.saga_instances SET step_index = 0 WHERE id IN (SELECT id FROM bounds.sagas);
SELECT bool_and(ok) AS saga_ok FROM consistency._integrity_saga();

-- Outbox: a row with a topic Kafka refuses, then three valid ones.
INSERT INTO consistency.outbox (topic, key, payload) VALUES ('bad topic', 'bounds', '\x00');
INSERT INTO consistency.outbox (topic, key, payload) SELECT 'bounds.ok', 'bounds', '\x00' FROM generate_series(1, 3);
SELECT check_name, ok FROM consistency._integrity_relay() WHERE check_name = 'outbox_topics_valid';
SET pg_consistency.integrity_max_rows = 2;
SELECT check_name, ok, detail FROM consistency._integrity_relay() WHERE check_name = 'outbox_topics_valid';
RESET pg_consistency.integrity_max_rows;
DELETE FROM consistency.outbox WHERE key = 'bounds';

-- The limit is a setting with bounds.
SET pg_consistency.integrity_max_rows = 0;

-- Plans: with tens of thousands of rows in each table that grows (inserted and analyzed in a
-- transaction that is rolled back), no check reads one of them with a sequential scan.
BEGIN;
INSERT INTO consistency.streams (stream, version) SELECT 'zz_plan-' || i, 2 FROM generate_series(1, 10000) i;
INSERT INTO consistency.events (stream, version, event_id, type, data)
  SELECT 'zz_plan-' || i, v, gen_random_uuid(), 'X', '{}' FROM generate_series(1, 10000) i, generate_series(1, 2) v;
INSERT INTO consistency.saga_instances (id, name, definition_version, status, input, data, started_by)
  SELECT gen_random_uuid(), 'bounds', 1, 'completed', '{}', '{}', 10 FROM generate_series(1, 20000);
INSERT INTO consistency.outbox (topic, key, payload) SELECT 'bounds.ok', 'plan', '\x00' FROM generate_series(1, 20000);
INSERT INTO consistency.dead_letters (id, topic, headers, content_type, created_at, attempts, reason)
  SELECT -i, 'bounds.ok', '{}', 'x', now(), 1, 'plan' FROM generate_series(1, 20000) i;
INSERT INTO consistency.consumer_state (name, topics, handler, raw_value, owner, start_from)
  VALUES ('zz_plan', ARRAY['t'], 'bounds.step(uuid,jsonb)'::regprocedure, false, 10, 'earliest');
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", reason)
  SELECT 'zz_plan', 't', 0, i, 'plan' FROM generate_series(1, 20000) i;
ANALYZE consistency.streams, consistency.events, consistency.saga_instances, consistency.outbox,
  consistency.dead_letters, consistency.consumer_dead_letters;
CREATE FUNCTION pg_temp.scans(fn regproc) RETURNS TABLE(relation text, scan text) LANGUAGE plpgsql AS $$
DECLARE
  plan jsonb;
BEGIN
  -- The function's own statement (LANGUAGE sql, no arguments), as it is planned.
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || (SELECT prosrc FROM pg_proc WHERE oid = fn) INTO plan;
  RETURN QUERY
    SELECT DISTINCT n ->> 'Relation Name',
           CASE WHEN n ->> 'Node Type' = 'Seq Scan' THEN 'sequential' ELSE 'index' END
      FROM jsonb_path_query(plan, 'strict $.**') AS n
     WHERE jsonb_typeof(n) = 'object'
       AND n ->> 'Relation Name' IN ('streams', 'events', 'saga_instances', 'outbox', 'dead_letters',
                                     'consumer_dead_letters');
END $$;
SET LOCAL search_path = pg_catalog, pg_temp;
SELECT f AS check_function, s.relation, s.scan
  FROM unnest(ARRAY['consistency._integrity_eventstore', 'consistency._integrity_saga',
                    'consistency._integrity_relay', 'consistency._integrity_inbox']::regproc[]) AS f,
       pg_temp.scans(f) s
 ORDER BY 1, 2, 3;
ROLLBACK;

DROP SCHEMA bounds CASCADE;
