-- pg_consistency: transactional outbox and the Kafka relay

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- Messages waiting for the relay. A row leaves only once Kafka acknowledged it (or it is
-- moved to dead_letters); payload holds the exact bytes of the Kafka value.
CREATE TABLE consistency.outbox (
  id           bigserial PRIMARY KEY,
  topic        text NOT NULL,
  key          text,
  payload      bytea,
  headers      jsonb NOT NULL DEFAULT '{}',
  content_type text NOT NULL DEFAULT 'application/octet-stream',
  created_at   timestamptz NOT NULL DEFAULT now(),
  attempts     int NOT NULL DEFAULT 0,
  last_error   text
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.05);

COMMENT ON TABLE consistency.outbox IS
  'pg_consistency: messages waiting for the Kafka relay (rows leave once the broker acknowledged them)';

-- Messages Kafka refused for good, after pg_consistency.relay_max_attempts attempts.
CREATE TABLE consistency.dead_letters (
  id               bigint PRIMARY KEY,  -- the outbox id it had (kept when re-queued)
  topic            text NOT NULL,
  key              text,
  payload          bytea,
  headers          jsonb NOT NULL,
  content_type     text NOT NULL,
  created_at       timestamptz NOT NULL,
  attempts         int NOT NULL,
  reason           text NOT NULL,
  dead_lettered_at timestamptz NOT NULL DEFAULT now()
);

-- Categories of the event store whose appends are published (route_events).
CREATE TABLE consistency.event_routes (
  category   text NOT NULL,
  topic      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (category, topic)
);

-- exactly_once: the batches the relay recorded before producing them (at most two open:
-- the one at Kafka and the next, read meanwhile).
CREATE TABLE consistency.relay_batches (
  batch      bigint PRIMARY KEY,
  ids        bigint[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- Written once per batch and read only at recovery: not worth compressing.
ALTER TABLE consistency.relay_batches ALTER COLUMN ids SET STORAGE EXTERNAL;

-- Durable relay counters (one row).
CREATE TABLE consistency.relay_stats (
  singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  delivered_total     bigint NOT NULL DEFAULT 0,
  dead_lettered_total bigint NOT NULL DEFAULT 0,
  batches_total       bigint NOT NULL DEFAULT 0,
  last_batch          bigint NOT NULL DEFAULT 0,
  last_delivery_at    timestamptz
);
INSERT INTO consistency.relay_stats DEFAULT VALUES;

-- The row above exists from CREATE EXTENSION on, so a restore of pg_dump's copy of it
-- would collide with it: an insert of the singleton overwrites the counters instead
-- (the relay itself only updates the row).
CREATE FUNCTION consistency._relay_stats_restore() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  UPDATE consistency.relay_stats
     SET delivered_total = NEW.delivered_total, dead_lettered_total = NEW.dead_lettered_total,
         batches_total = NEW.batches_total, last_batch = NEW.last_batch,
         last_delivery_at = NEW.last_delivery_at
   WHERE singleton;
  IF FOUND THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION consistency._relay_stats_restore() FROM PUBLIC;
CREATE TRIGGER relay_stats_restore BEFORE INSERT ON consistency.relay_stats
  FOR EACH ROW EXECUTE FUNCTION consistency._relay_stats_restore();

-- pg_dump keeps the data of these tables.
SELECT pg_catalog.pg_extension_config_dump('consistency.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.event_routes', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.relay_batches', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.relay_stats', '');

-- publish: one outbox row in the caller's transaction; the relay is woken at commit.
-- SECURITY DEFINER without a SET clause: the C code runs its one statement with only
-- pg_catalog on the search path (a SET clause would cost about a tenth of the call).
CREATE FUNCTION consistency.publish(topic text, key text, payload jsonb, headers jsonb DEFAULT '{}')
  RETURNS bigint LANGUAGE c VOLATILE SECURITY DEFINER
  AS 'MODULE_PATHNAME', 'pgc_publish_jsonb';
CREATE FUNCTION consistency.publish(topic text, key text, payload bytea, headers jsonb DEFAULT '{}')
  RETURNS bigint LANGUAGE c VOLATILE SECURITY DEFINER
  AS 'MODULE_PATHNAME', 'pgc_publish_bytea';
-- An untyped literal or a text value is taken as JSON text (validated), so that
-- publish('t', 'k', '{"a":1}') is not ambiguous between the two overloads above.
CREATE FUNCTION consistency.publish(topic text, key text, payload text, headers jsonb DEFAULT '{}')
  RETURNS bigint LANGUAGE c VOLATILE SECURITY DEFINER
  AS 'MODULE_PATHNAME', 'pgc_publish_text';

-- Internal helpers (C): name checks that raise CS002, and the commit-time wake-up.
CREATE FUNCTION consistency._check_topic(topic text) RETURNS void
  LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'pgc_check_topic';
CREATE FUNCTION consistency._check_category(category text) RETURNS void
  LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'pgc_check_category';
CREATE FUNCTION consistency._outbox_wake() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_outbox_wake';

-- The partition a Java client (and this relay) sends `key` to on a topic with n partitions.
CREATE FUNCTION consistency.kafka_partition(key text, partitions int) RETURNS int
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgc_kafka_partition';

-- Routed events: one outbox row per (event, route), in global order, same transaction.
-- The event's correlation_id and causation_id (metadata, string values) become headers.
CREATE FUNCTION consistency._route_events_trigger() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  n bigint;
BEGIN
  INSERT INTO consistency.outbox (topic, key, payload, headers, content_type, created_at)
  SELECT r.topic, e.stream, convert_to(e.data::text, 'UTF8'),
         jsonb_build_object('ce_id', e.event_id::text, 'ce_type', e.type, 'ce_subject', e.stream,
                            'stream_version', e.version::text, 'global_position', e.global_position::text,
                            'schema_version', e.schema_version::text)
         || jsonb_strip_nulls(jsonb_build_object(
              'correlation_id', CASE WHEN jsonb_typeof(e.metadata -> 'correlation_id') = 'string'
                                     THEN e.metadata ->> 'correlation_id' END,
              'causation_id', CASE WHEN jsonb_typeof(e.metadata -> 'causation_id') = 'string'
                                   THEN e.metadata ->> 'causation_id' END)),
         'application/json', e.created_at
    FROM new_events e
    JOIN consistency.event_routes r ON r.category = split_part(e.stream, '-', 1)
   ORDER BY e.global_position, r.topic;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM consistency._outbox_wake();
  END IF;
  RETURN NULL;
END
$fn$;

-- Publishes every event appended to `category` from now on to `topic`.
CREATE FUNCTION consistency.route_events(category text, topic text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM consistency._check_category(category);
  PERFORM consistency._check_topic(topic);
  IF pg_catalog.to_regclass('consistency.events') IS NULL THEN
    RAISE EXCEPTION 'cannot route category "%": the event store table consistency.events does not exist', category
      USING ERRCODE = '55000';
  END IF;
  INSERT INTO consistency.event_routes (category, topic) VALUES (category, topic)
    ON CONFLICT DO NOTHING;
  -- The trigger exists only while routes do: appends pay for it only when used.
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                  WHERE tgrelid = 'consistency.events'::regclass AND tgname = 'pgc_route_events') THEN
    CREATE TRIGGER pgc_route_events AFTER INSERT ON consistency.events
      REFERENCING NEW TABLE AS new_events
      FOR EACH STATEMENT EXECUTE FUNCTION consistency._route_events_trigger();
  END IF;
END
$fn$;

-- Stops publishing `category` to `topic` (every topic when NULL); returns the routes removed.
CREATE FUNCTION consistency.unroute_events(category text, topic text DEFAULT NULL) RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  n int;
BEGIN
  PERFORM consistency._check_category(category);
  IF topic IS NOT NULL THEN
    PERFORM consistency._check_topic(topic);
  END IF;
  DELETE FROM consistency.event_routes r
   WHERE r.category = unroute_events.category AND (unroute_events.topic IS NULL OR r.topic = unroute_events.topic);
  GET DIAGNOSTICS n = ROW_COUNT;
  IF NOT EXISTS (SELECT 1 FROM consistency.event_routes)
     AND pg_catalog.to_regclass('consistency.events') IS NOT NULL THEN
    DROP TRIGGER IF EXISTS pgc_route_events ON consistency.events;
  END IF;
  RETURN n;
END
$fn$;

-- Moves dead letters (of `topic`, or all) back to the outbox with their ids; returns how many.
CREATE FUNCTION consistency.retry_dead_letters(topic text DEFAULT NULL) RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  n int;
BEGIN
  IF topic IS NOT NULL THEN
    PERFORM consistency._check_topic(topic);
  END IF;
  WITH moved AS (
    DELETE FROM consistency.dead_letters d
     WHERE retry_dead_letters.topic IS NULL OR d.topic = retry_dead_letters.topic
    RETURNING d.*)
  INSERT INTO consistency.outbox (id, topic, key, payload, headers, content_type, created_at, attempts, last_error)
  SELECT m.id, m.topic, m.key, m.payload, m.headers, m.content_type, m.created_at, 0,
         'requeued from dead_letters: ' || m.reason
    FROM moved m ORDER BY m.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM consistency._outbox_wake();
  END IF;
  RETURN n;
END
$fn$;

-- What the worker's relay is doing now (shared memory; 'stopped' without a worker).
CREATE FUNCTION consistency._relay_runtime(
    OUT relay_state text, OUT relay_mode text, OUT last_error text, OUT last_error_at timestamptz,
    OUT batches bigint, OUT errors bigint, OUT in_flight bigint,
    OUT postgres_seconds double precision, OUT kafka_seconds double precision)
  RETURNS record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_relay_runtime';

CREATE VIEW consistency.outbox_status AS
SELECT o.pending,
       pg_catalog.now() - o.oldest AS oldest_pending_age,
       s.delivered_total,
       (SELECT count(*) FROM consistency.dead_letters) AS dead_lettered,
       r.relay_state,
       r.last_error,
       s.last_delivery_at
  FROM (SELECT count(*) AS pending, min(created_at) AS oldest FROM consistency.outbox) o,
       consistency.relay_stats s, consistency._relay_runtime() r;

-- Counters and gauges for consistency.metrics().
CREATE FUNCTION consistency._metrics_relay()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  WITH o AS (SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age
               FROM consistency.outbox),
       s AS (SELECT * FROM consistency.relay_stats),
       r AS (SELECT * FROM consistency._relay_runtime())
  SELECT 'pg_consistency_outbox_pending', 'gauge', 'Outbox messages not yet acknowledged by Kafka', '{}'::jsonb, o.pending::float8 FROM o
  UNION ALL
  SELECT 'pg_consistency_outbox_oldest_pending_age_seconds', 'gauge', 'Age of the oldest pending outbox message', '{}', o.age::float8 FROM o
  UNION ALL
  SELECT 'pg_consistency_outbox_delivered_total', 'counter', 'Outbox messages acknowledged by Kafka', '{}', s.delivered_total::float8 FROM s
  UNION ALL
  SELECT 'pg_consistency_outbox_dead_letters', 'gauge', 'Messages now in consistency.dead_letters', '{}',
         (SELECT count(*) FROM consistency.dead_letters)::float8
  UNION ALL
  SELECT 'pg_consistency_outbox_dead_lettered_total', 'counter', 'Messages ever moved to dead_letters', '{}', s.dead_lettered_total::float8 FROM s
  UNION ALL
  SELECT 'pg_consistency_relay_batches_total', 'counter', 'Relay batches finished', '{}', s.batches_total::float8 FROM s
  UNION ALL
  SELECT 'pg_consistency_relay_errors_total', 'counter', 'Relay errors since the worker started', '{}', r.errors::float8 FROM r
  UNION ALL
  SELECT 'pg_consistency_relay_postgres_seconds_total', 'counter', 'Relay time spent in PostgreSQL work since the worker started', '{}', r.postgres_seconds FROM r
  UNION ALL
  SELECT 'pg_consistency_relay_kafka_seconds_total', 'counter', 'Relay time spent producing to and waiting for Kafka since the worker started', '{}', r.kafka_seconds FROM r
  UNION ALL
  SELECT 'pg_consistency_relay_state', 'gauge', 'Relay state (1 = current)', jsonb_build_object('state', st), (r.relay_state = st)::int::float8
    FROM r, unnest(ARRAY['stopped', 'running', 'broker_unavailable']) AS st
  UNION ALL
  SELECT 'pg_consistency_relay_last_delivery_timestamp_seconds', 'gauge', 'When Kafka last acknowledged a batch', '{}',
         coalesce(extract(epoch FROM s.last_delivery_at), 0)::float8 FROM s
$fn$;

-- Checks for consistency.check_integrity().
CREATE FUNCTION consistency._integrity_relay()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  -- Bounded (docs/operations.md): the most recent dead letters and outbox rows by id
  -- (primary keys, read backwards), the other table probed by id.
  SELECT 'outbox_ids_not_dead_lettered',
         count(*) FILTER (WHERE d.queued) = 0,
         CASE WHEN count(*) FILTER (WHERE d.queued) = 0 THEN 'no outbox id is also in dead_letters'
              ELSE count(*) FILTER (WHERE d.queued) || ' outbox ids are also in dead_letters (e.g. '
                   || min(d.id) FILTER (WHERE d.queued) || ')' END
         || CASE WHEN count(*) >= consistency._check_scan_limit()
                 THEN format(' (capped: the %s most recent dead letters, pg_consistency.integrity_max_rows)', count(*))
                 ELSE '' END
    FROM (SELECT d.id, (SELECT true FROM consistency.outbox o WHERE o.id = d.id) IS NOT NULL AS queued
            FROM (SELECT d.id FROM consistency.dead_letters d
                   ORDER BY d.id DESC LIMIT consistency._check_scan_limit()) d
          OFFSET 0) d  -- one probe per dead letter, not one per use of `queued`
  UNION ALL
  SELECT 'outbox_topics_valid',
         count(*) FILTER (WHERE bad) = 0,
         CASE WHEN count(*) FILTER (WHERE bad) = 0 THEN 'every outbox topic is a valid Kafka topic name'
              ELSE count(*) FILTER (WHERE bad) || ' outbox rows have an invalid topic (e.g. id '
                   || min(id) FILTER (WHERE bad) || ')' END
         || CASE WHEN count(*) >= consistency._check_scan_limit()
                 THEN format(' (capped: the %s most recent outbox rows, pg_consistency.integrity_max_rows)', count(*))
                 ELSE '' END
    -- Kafka's rule, as a character class and a length (a bounded repetition {1,249} in
    -- the pattern costs far more per row).
    FROM (SELECT o.id, o.topic ~ '[^a-zA-Z0-9._-]' OR length(o.topic) NOT BETWEEN 1 AND 249
                       OR o.topic IN ('.', '..') AS bad
            FROM consistency.outbox o ORDER BY o.id DESC LIMIT consistency._check_scan_limit()) o
  UNION ALL
  SELECT 'relay_open_batches',
         count(b.batch) <= 2 AND coalesce(bool_and(b.batch > s.last_batch), true),
         count(b.batch) || ' open exactly-once batch(es); last finished batch ' || max(s.last_batch)
    FROM consistency.relay_stats s LEFT JOIN consistency.relay_batches b ON true
  UNION ALL
  SELECT 'event_routes_trigger',
         NOT EXISTS (SELECT 1 FROM consistency.event_routes)
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                       WHERE tgname = 'pgc_route_events' AND tgenabled <> 'D'
                         AND tgrelid = pg_catalog.to_regclass('consistency.events')),
         CASE WHEN NOT EXISTS (SELECT 1 FROM consistency.event_routes) THEN 'no event routes'
              WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                            WHERE tgname = 'pgc_route_events' AND tgenabled <> 'D'
                              AND tgrelid = pg_catalog.to_regclass('consistency.events'))
                THEN (SELECT count(*) FROM consistency.event_routes) || ' event route(s), trigger enabled'
              ELSE 'event routes exist but the routing trigger on consistency.events is missing or disabled; '
                   'run SELECT consistency.route_events(category, topic) FROM consistency.event_routes' END
$fn$;

-- Privileges: readers read, writers publish, admins administer.
REVOKE ALL ON FUNCTION
  consistency.publish(text, text, jsonb, jsonb), consistency.publish(text, text, bytea, jsonb),
  consistency.publish(text, text, text, jsonb), consistency.route_events(text, text),
  consistency.unroute_events(text, text), consistency.retry_dead_letters(text),
  consistency._outbox_wake(), consistency._route_events_trigger(), consistency._relay_runtime(),
  consistency._metrics_relay(), consistency._integrity_relay(),
  consistency._check_topic(text), consistency._check_category(text), consistency.kafka_partition(text, int)
  FROM PUBLIC;
GRANT SELECT ON consistency.outbox, consistency.dead_letters, consistency.event_routes,
  consistency.outbox_status, consistency.relay_stats TO consistency_reader;
GRANT EXECUTE ON FUNCTION consistency._relay_runtime(), consistency._metrics_relay(),
  consistency._integrity_relay(), consistency.kafka_partition(text, int),
  consistency._check_topic(text), consistency._check_category(text) TO consistency_reader;
GRANT EXECUTE ON FUNCTION consistency.publish(text, text, jsonb, jsonb),
  consistency.publish(text, text, bytea, jsonb), consistency.publish(text, text, text, jsonb)
  TO consistency_writer;
GRANT EXECUTE ON FUNCTION consistency.route_events(text, text), consistency.unroute_events(text, text),
  consistency.retry_dead_letters(text) TO consistency_admin;
GRANT DELETE ON consistency.dead_letters TO consistency_admin;
