-- pg_consistency: foundation (schema, roles, version, worker status)

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- Roles are cluster-wide and may exist from an earlier install in another database.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'consistency_reader') THEN
    CREATE ROLE consistency_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'consistency_writer') THEN
    CREATE ROLE consistency_writer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'consistency_admin') THEN
    CREATE ROLE consistency_admin NOLOGIN;
  END IF;
END
$roles$;

-- A writer can read; an admin can write.
GRANT consistency_reader TO consistency_writer;
GRANT consistency_writer TO consistency_admin;

GRANT USAGE ON SCHEMA consistency TO consistency_reader;
REVOKE ALL ON SCHEMA consistency FROM PUBLIC;

CREATE FUNCTION consistency.version() RETURNS text
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'pgc_version';

CREATE FUNCTION consistency.worker_status(
    OUT kind text, OUT database text, OUT pid int, OUT state text,
    OUT started_at timestamptz, OUT last_tick_at timestamptz,
    OUT ticks bigint, OUT errors bigint, OUT last_error text)
  RETURNS SETOF record
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_worker_status';

CREATE VIEW consistency.workers AS SELECT * FROM consistency.worker_status();

GRANT EXECUTE ON FUNCTION consistency.version() TO PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.worker_status() TO consistency_reader;
GRANT SELECT ON consistency.workers TO consistency_reader;

-- Diagnostics for the C++/PostgreSQL boundary and the worker's error handling.
CREATE FUNCTION consistency._test_raise(kind text) RETURNS text
  LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'pgc_test_raise';
CREATE FUNCTION consistency._test_guarded_errors(iterations int) RETURNS bigint
  LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'pgc_test_guarded_errors';
CREATE FUNCTION consistency._test_backend_memory() RETURNS bigint
  LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'pgc_test_backend_memory';
CREATE FUNCTION consistency._debug_fail_worker_ticks(n int) RETURNS boolean
  LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'pgc_debug_fail_worker_ticks';
REVOKE ALL ON FUNCTION consistency._test_raise(text), consistency._test_guarded_errors(int),
  consistency._test_backend_memory(), consistency._debug_fail_worker_ticks(int) FROM PUBLIC;
-- pg_consistency: event store (streams, events, upcasting, snapshots and aggregates,
-- subscriptions). The hot paths are C++ functions with cached plans; see docs/eventstore.md.

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- Global positions. CACHE 1 is part of the gap-safety method: the reader's horizon reads
-- the sequence's next value, which must never lie above a position a backend holds
-- in a private cache (check_integrity reports a changed cache).
CREATE SEQUENCE consistency.event_position_seq AS bigint
  START WITH 1 MINVALUE 1 NO MAXVALUE CACHE 1 NO CYCLE;

-- The default of events.global_position: publishes this transaction's lower bound for
-- the read horizon, then takes the next position (so even a direct INSERT is gap-safe).
CREATE FUNCTION consistency._next_position() RETURNS bigint
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_next_position';

CREATE TABLE consistency.streams (
  stream     text PRIMARY KEY,
  category   text GENERATED ALWAYS AS (pg_catalog.split_part(stream, '-', 1)) STORED,
  version    bigint NOT NULL CHECK (version >= 0),
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
) WITH (fillfactor = 80);  -- room for HOT updates of the version
COMMENT ON TABLE consistency.streams IS 'One row per stream: its current version (= number of events).';

CREATE TABLE consistency.events (
  global_position bigint NOT NULL DEFAULT consistency._next_position(),
  stream          text NOT NULL,
  version         bigint NOT NULL CHECK (version >= 1),
  event_id        uuid NOT NULL,
  type            text NOT NULL,
  schema_version  int NOT NULL DEFAULT 1 CHECK (schema_version >= 1),
  data            jsonb NOT NULL,
  metadata        jsonb NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
  category        text GENERATED ALWAYS AS (pg_catalog.split_part(stream, '-', 1)) STORED,
  CONSTRAINT events_pkey PRIMARY KEY (global_position),
  CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);
CREATE INDEX events_category_position_idx ON consistency.events (category, global_position);
CREATE INDEX events_event_id_idx ON consistency.events (event_id);
COMMENT ON TABLE consistency.events IS 'Append-only event log; write with consistency.append_events.';

-- Events are immutable: UPDATE, DELETE and TRUNCATE are refused by this trigger (for
-- every role, also in replica mode) on top of the missing privileges.
CREATE FUNCTION consistency._events_immutable() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'consistency.events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Events are immutable; append a compensating event instead.';
END
$$;
CREATE TRIGGER events_immutable
  BEFORE UPDATE OR DELETE OR TRUNCATE ON consistency.events
  FOR EACH STATEMENT EXECUTE FUNCTION consistency._events_immutable();
ALTER TABLE consistency.events ENABLE ALWAYS TRIGGER events_immutable;

CREATE TABLE consistency.snapshots (
  stream     text NOT NULL,
  version    bigint NOT NULL CHECK (version >= 1),
  state      jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (stream, version)
);

CREATE TABLE consistency.upcasters (
  event_type          text NOT NULL,
  from_schema_version int NOT NULL CHECK (from_schema_version >= 1),
  fn                  regprocedure NOT NULL,
  registered_by       oid NOT NULL,
  registered_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (event_type, from_schema_version)
);

CREATE TABLE consistency.aggregates (
  category       text PRIMARY KEY,
  apply_fn       regprocedure NOT NULL,
  initial_state  jsonb NOT NULL,
  snapshot_every int NOT NULL CHECK (snapshot_every >= 0),
  registered_by  oid NOT NULL,
  registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE TABLE consistency.subscription_state (
  name            text PRIMARY KEY,
  handler         regprocedure NOT NULL,
  categories      text[],
  event_types     text[],
  position        bigint NOT NULL CHECK (position >= 0),
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failed')),
  attempts        int NOT NULL DEFAULT 0,
  max_attempts    int NOT NULL CHECK (max_attempts >= 1),
  last_error      text,
  next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  owner           oid NOT NULL,
  processed       bigint NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Backends cache upcasters and aggregates; any change to those tables tells them to
-- reload (a relcache invalidation, delivered at commit).
CREATE FUNCTION consistency._eventstore_invalidate() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'pgc_es_invalidate';
CREATE TRIGGER upcasters_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON consistency.upcasters FOR EACH STATEMENT EXECUTE FUNCTION consistency._eventstore_invalidate();
CREATE TRIGGER aggregates_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON consistency.aggregates FOR EACH STATEMENT EXECUTE FUNCTION consistency._eventstore_invalidate();

-- pg_dump keeps the data of these tables (the extension recreates the objects).
SELECT pg_catalog.pg_extension_config_dump('consistency.streams', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.events', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.upcasters', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.aggregates', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.subscription_state', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.event_position_seq', '');

-- ---------------------------------------------------------------------------------
-- Appending and reading
-- ---------------------------------------------------------------------------------
CREATE FUNCTION consistency.append_events(stream text, expected_version bigint, events jsonb)
  RETURNS bigint LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_append_events';

CREATE FUNCTION consistency.append_event(stream text, expected_version bigint, type text,
                                         data jsonb, metadata jsonb DEFAULT '{}')
  RETURNS bigint LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_append_event';

CREATE FUNCTION consistency.stream_version(stream text) RETURNS bigint
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_stream_version';

CREATE FUNCTION consistency.read_stream(stream text, from_version bigint DEFAULT 1,
                                        max_count int DEFAULT 1000)
  RETURNS TABLE(global_position bigint, stream text, version bigint, event_id uuid, type text,
                schema_version int, data jsonb, metadata jsonb, created_at timestamptz)
  LANGUAGE c VOLATILE ROWS 100 AS 'MODULE_PATHNAME', 'pgc_es_read_stream';

CREATE FUNCTION consistency.read_all(after_position bigint DEFAULT 0, max_count int DEFAULT 1000,
                                     category text DEFAULT NULL)
  RETURNS TABLE(global_position bigint, stream text, version bigint, event_id uuid, type text,
                schema_version int, data jsonb, metadata jsonb, created_at timestamptz)
  LANGUAGE c VOLATILE ROWS 100 AS 'MODULE_PATHNAME', 'pgc_es_read_all';

CREATE FUNCTION consistency.last_appended_position() RETURNS bigint
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_last_appended_position';

-- The current read horizon H: read_all returns positions below it.
CREATE FUNCTION consistency.read_horizon() RETURNS bigint
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_read_horizon';

-- Transactions that hold back the read horizon: each appending transaction still open,
-- with the lower bound of the positions it may hold.
CREATE FUNCTION consistency._open_writers(OUT pid int, OUT lower_bound bigint,
                                          OUT since timestamptz, OUT prepared_xid xid)
  RETURNS SETOF record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_open_writers';

CREATE VIEW consistency.open_writers AS
  SELECT w.pid, w.lower_bound,
         coalesce(w.since, a.xact_start, p.prepared) AS since,
         pg_catalog.now() - coalesce(w.since, a.xact_start, p.prepared) AS age,
         p.gid AS prepared_gid,
         a.state, a.query
    FROM consistency._open_writers() w
    LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = w.pid
    LEFT JOIN pg_catalog.pg_prepared_xacts p ON p.transaction = w.prepared_xid;

-- ---------------------------------------------------------------------------------
-- Event versioning, snapshots and aggregates
-- ---------------------------------------------------------------------------------
CREATE FUNCTION consistency.register_upcaster(event_type text, from_schema_version int,
                                              fn regprocedure)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_register_upcaster';

CREATE FUNCTION consistency.save_snapshot(stream text, version bigint, state jsonb)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_save_snapshot';

CREATE FUNCTION consistency.load_snapshot(stream text)
  RETURNS TABLE(version bigint, state jsonb)
  LANGUAGE c VOLATILE ROWS 1 AS 'MODULE_PATHNAME', 'pgc_es_load_snapshot';

CREATE FUNCTION consistency.register_aggregate(category text, apply_fn regprocedure,
                                               initial_state jsonb DEFAULT '{}',
                                               snapshot_every int DEFAULT 100)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_register_aggregate';

CREATE FUNCTION consistency.aggregate_state(stream text)
  RETURNS TABLE(version bigint, state jsonb)
  LANGUAGE c VOLATILE ROWS 1 AS 'MODULE_PATHNAME', 'pgc_es_aggregate_state';

-- ---------------------------------------------------------------------------------
-- Subscriptions
-- ---------------------------------------------------------------------------------
CREATE FUNCTION consistency.create_subscription(name text, handler regprocedure,
                                                categories text[] DEFAULT NULL,
                                                event_types text[] DEFAULT NULL,
                                                from_position bigint DEFAULT 0)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_create_subscription';

CREATE FUNCTION consistency.drop_subscription(name text)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_drop_subscription';

CREATE FUNCTION consistency.reset_subscription(name text, to_position bigint DEFAULT 0)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_reset_subscription';

CREATE FUNCTION consistency.wait_for_subscription(name text, "position" bigint,
                                                  timeout interval DEFAULT '5 seconds')
  RETURNS boolean LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_wait_for_subscription';

-- Runs one batch of a subscription in the caller's transaction, as the worker would
-- (ignoring the retry schedule). For tests and operators; superuser only.
CREATE FUNCTION consistency._subscription_step(name text) RETURNS int
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_es_subscription_step';

-- Matching events behind the checkpoint.
CREATE FUNCTION consistency._subscription_lag(s consistency.subscription_state) RETURNS bigint
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT count(*) FROM consistency.events e
   WHERE e.global_position > s.position
     AND (s.categories IS NULL OR e.category = ANY (s.categories))
     AND (s.event_types IS NULL OR e.type = ANY (s.event_types))
$$;

CREATE VIEW consistency.subscriptions AS
  SELECT s.name, s.position, s.status, s.last_error,
         consistency._subscription_lag(s) AS lag,
         s.handler, s.owner::regrole AS owner, s.categories, s.event_types,
         s.attempts, s.max_attempts, s.next_attempt_at, s.processed,
         s.created_at, s.updated_at
    FROM consistency.subscription_state s;

-- ---------------------------------------------------------------------------------
-- Operations: metrics and integrity checks, aggregated by consistency.metrics() and
-- consistency.check_integrity().
-- ---------------------------------------------------------------------------------
CREATE FUNCTION consistency._metrics_eventstore()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'pg_consistency_events_total', 'counter', 'Events stored in the event store.',
         '{}'::jsonb, coalesce(sum(version), 0)::float8 FROM consistency.streams
  UNION ALL
  SELECT 'pg_consistency_streams_total', 'gauge', 'Streams in the event store.',
         '{}'::jsonb, count(*)::float8 FROM consistency.streams
  UNION ALL
  SELECT 'pg_consistency_events_last_position', 'gauge', 'Highest global position stored.',
         '{}'::jsonb, coalesce(max(global_position), 0)::float8 FROM consistency.events
  UNION ALL
  SELECT 'pg_consistency_events_read_horizon', 'gauge',
         'read_all returns positions below this value (gap safety).',
         '{}'::jsonb, consistency.read_horizon()::float8
   WHERE NOT pg_is_in_recovery()  -- the horizon is only known on the primary
  UNION ALL
  SELECT 'pg_consistency_open_writers', 'gauge',
         'Open transactions that appended events and hold back the read horizon.',
         '{}'::jsonb, count(*)::float8 FROM consistency.open_writers
  UNION ALL
  SELECT 'pg_consistency_oldest_open_writer_age_seconds', 'gauge',
         'Age of the oldest open appending transaction (0 when none).',
         '{}'::jsonb, coalesce(extract(epoch FROM max(age)), 0)::float8 FROM consistency.open_writers
  UNION ALL
  SELECT 'pg_consistency_subscription_lag_events', 'gauge',
         'Matching events behind the subscription checkpoint.',
         jsonb_build_object('subscription', name), lag::float8 FROM consistency.subscriptions
  UNION ALL
  SELECT 'pg_consistency_subscription_position', 'gauge',
         'Global position up to which the subscription has processed events.',
         jsonb_build_object('subscription', name), position::float8 FROM consistency.subscriptions
  UNION ALL
  SELECT 'pg_consistency_subscription_failed', 'gauge',
         '1 when the subscription is parked after max_attempts failures.',
         jsonb_build_object('subscription', name), (status = 'failed')::int::float8
    FROM consistency.subscriptions
  UNION ALL
  SELECT 'pg_consistency_subscription_processed_total', 'counter',
         'Events handled by the subscription since it was created.',
         jsonb_build_object('subscription', name), processed::float8 FROM consistency.subscriptions
$$;

CREATE FUNCTION consistency._integrity_eventstore()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH per_stream AS (
    SELECT e.stream, count(*) AS n, min(e.version) AS lo, max(e.version) AS hi
      FROM consistency.events e GROUP BY e.stream
  ),
  versions AS (
    SELECT coalesce(s.stream, p.stream) AS stream, coalesce(s.version, 0) AS version,
           coalesce(p.n, 0) AS n, p.lo, p.hi
      FROM consistency.streams s FULL JOIN per_stream p ON p.stream = s.stream
  ),
  bad_versions AS (
    SELECT * FROM versions WHERE version <> n OR (n > 0 AND hi <> version)
  ),
  gaps AS (
    SELECT * FROM per_stream WHERE lo <> 1 OR hi - lo + 1 <> n
  ),
  chains AS (
    SELECT event_type, count(*) AS n, max(from_schema_version) AS hi
      FROM consistency.upcasters GROUP BY event_type
  ),
  bad_chains AS (SELECT * FROM chains WHERE hi <> n)
  SELECT 'eventstore.stream_versions',
         NOT EXISTS (SELECT 1 FROM bad_versions),
         CASE WHEN NOT EXISTS (SELECT 1 FROM bad_versions)
              THEN 'every stream version equals its number of events'
              ELSE (SELECT count(*) || ' stream(s) whose version differs from their events, e.g. '
                           || string_agg(format('%s: version %s, %s events', stream, version, n), '; ')
                      FROM (SELECT * FROM bad_versions ORDER BY stream LIMIT 5) b) END
  UNION ALL
  SELECT 'eventstore.version_gaps',
         NOT EXISTS (SELECT 1 FROM gaps),
         CASE WHEN NOT EXISTS (SELECT 1 FROM gaps)
              THEN 'every stream has versions 1..n without gaps'
              ELSE (SELECT count(*) || ' stream(s) with missing versions, e.g. '
                           || string_agg(format('%s: %s events over versions %s..%s', stream, n, lo, hi), '; ')
                      FROM (SELECT * FROM gaps ORDER BY stream LIMIT 5) g) END
  UNION ALL
  SELECT 'eventstore.position_sequence',
         (SELECT seqcache = 1 AND seqincrement = 1 FROM pg_sequence
           WHERE seqrelid = 'consistency.event_position_seq'::regclass)
         AND coalesce((SELECT max(global_position) FROM consistency.events), 0)
             <= (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
                   FROM consistency.event_position_seq),
         'the position sequence must have CACHE 1 and INCREMENT 1 and lie at or above every stored position'
  UNION ALL
  SELECT 'eventstore.immutability_trigger',
         EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'consistency.events'::regclass
                    AND tgname = 'events_immutable' AND tgenabled = 'A'),
         'trigger events_immutable on consistency.events must be enabled ALWAYS'
  UNION ALL
  SELECT 'eventstore.upcaster_chains',
         NOT EXISTS (SELECT 1 FROM bad_chains),
         CASE WHEN NOT EXISTS (SELECT 1 FROM bad_chains)
              THEN 'every upcaster chain starts at schema version 1 without gaps'
              ELSE (SELECT 'broken chains: ' || string_agg(event_type, ', ') FROM bad_chains) END
  UNION ALL
  SELECT 'eventstore.subscription_positions',
         NOT EXISTS (SELECT 1 FROM consistency.subscription_state s
                      WHERE s.position > (SELECT last_value FROM consistency.event_position_seq)),
         'no subscription checkpoint lies beyond the last position handed out'
$$;

-- ---------------------------------------------------------------------------------
-- Privileges: readers read, writers append and subscribe, admins define.
-- The C functions run as the caller and switch to the extension owner only for their
-- own fixed, schema-qualified statements (see docs/eventstore.md, "Security").
-- ---------------------------------------------------------------------------------
REVOKE ALL ON consistency.streams, consistency.events, consistency.snapshots,
  consistency.upcasters, consistency.aggregates, consistency.subscription_state,
  consistency.subscriptions, consistency.open_writers FROM PUBLIC;
REVOKE ALL ON SEQUENCE consistency.event_position_seq FROM PUBLIC;
GRANT SELECT ON consistency.streams, consistency.events, consistency.snapshots,
  consistency.upcasters, consistency.aggregates, consistency.subscriptions,
  consistency.open_writers TO consistency_reader;
GRANT SELECT ON SEQUENCE consistency.event_position_seq TO consistency_reader;

REVOKE ALL ON FUNCTION
  consistency._next_position(), consistency._events_immutable(), consistency._eventstore_invalidate(),
  consistency.append_events(text, bigint, jsonb),
  consistency.append_event(text, bigint, text, jsonb, jsonb),
  consistency.stream_version(text), consistency.read_stream(text, bigint, int),
  consistency.read_all(bigint, int, text), consistency.last_appended_position(),
  consistency.read_horizon(), consistency._open_writers(),
  consistency.register_upcaster(text, int, regprocedure),
  consistency.save_snapshot(text, bigint, jsonb), consistency.load_snapshot(text),
  consistency.register_aggregate(text, regprocedure, jsonb, int),
  consistency.aggregate_state(text),
  consistency.create_subscription(text, regprocedure, text[], text[], bigint),
  consistency.drop_subscription(text), consistency.reset_subscription(text, bigint),
  consistency.wait_for_subscription(text, bigint, interval),
  consistency._subscription_step(text),
  consistency._subscription_lag(consistency.subscription_state),
  consistency._metrics_eventstore(), consistency._integrity_eventstore()
  FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
  consistency.stream_version(text), consistency.read_stream(text, bigint, int),
  consistency.read_all(bigint, int, text), consistency.last_appended_position(),
  consistency.read_horizon(), consistency._open_writers(),
  consistency.load_snapshot(text), consistency.aggregate_state(text),
  consistency.wait_for_subscription(text, bigint, interval),
  consistency._subscription_lag(consistency.subscription_state),
  consistency._metrics_eventstore(), consistency._integrity_eventstore()
  TO consistency_reader;
GRANT EXECUTE ON FUNCTION
  consistency.append_events(text, bigint, jsonb),
  consistency.append_event(text, bigint, text, jsonb, jsonb),
  consistency.save_snapshot(text, bigint, jsonb),
  consistency.create_subscription(text, regprocedure, text[], text[], bigint),
  consistency.drop_subscription(text), consistency.reset_subscription(text, bigint)
  TO consistency_writer;
GRANT EXECUTE ON FUNCTION
  consistency.register_upcaster(text, int, regprocedure),
  consistency.register_aggregate(text, regprocedure, jsonb, int)
  TO consistency_admin;
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
CREATE FUNCTION consistency._route_events_trigger() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  n bigint;
BEGIN
  INSERT INTO consistency.outbox (topic, key, payload, headers, content_type, created_at)
  SELECT r.topic, e.stream, convert_to(e.data::text, 'UTF8'),
         jsonb_build_object('ce_id', e.event_id::text, 'ce_type', e.type, 'ce_subject', e.stream,
                            'stream_version', e.version::text, 'global_position', e.global_position::text,
                            'schema_version', e.schema_version::text),
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
  SELECT 'outbox_ids_not_dead_lettered',
         count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'no outbox id is also in dead_letters'
              ELSE count(*) || ' outbox ids are also in dead_letters (e.g. ' || min(o.id) || ')' END
    FROM consistency.outbox o JOIN consistency.dead_letters d USING (id)
  UNION ALL
  SELECT 'outbox_topics_valid',
         count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every outbox topic is a valid Kafka topic name'
              ELSE count(*) || ' outbox rows have an invalid topic (e.g. id ' || min(id) || ')' END
    FROM consistency.outbox
   WHERE topic !~ '^[a-zA-Z0-9._-]{1,249}$' OR topic IN ('.', '..')
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
-- pg_consistency: sagas (orchestration)

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- Every version of every definition. `definition` is what the user gave; `compiled`
-- is the validated form the worker runs (defaults applied, durations in milliseconds,
-- function names schema-qualified). Steps run as `owner`, the role that defined it.
CREATE TABLE consistency.saga_definitions (
  name        text        NOT NULL,
  version     int         NOT NULL CHECK (version > 0),
  definition  jsonb       NOT NULL,
  compiled    jsonb       NOT NULL,
  owner       oid         NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version)
);

-- One row per saga. The worker claims rows whose next_run_at has come with
-- FOR UPDATE SKIP LOCKED; replies and operators lock the row the same way. Only the
-- extension writes these rows; instead of CHECK and FOREIGN KEY constraints (which cost
-- every step a re-parse or a lookup) consistency._integrity_saga() verifies them.
CREATE TABLE consistency.saga_instances (
  id                 uuid        PRIMARY KEY,
  name               text        NOT NULL,
  definition_version int         NOT NULL,
  status             text        NOT NULL,  -- running compensating completed compensated failed aborted
  step_index         int         NOT NULL DEFAULT 0,   -- 0-based index of current_step
  current_step       text,
  failed_step        int,                              -- the step whose failure started compensation
  phase              text        NOT NULL DEFAULT 'ready',  -- ready, or waiting for a reply
  attempts           int         NOT NULL DEFAULT 0,
  next_run_at        timestamptz,                      -- due time, reply deadline; NULL = nothing scheduled
  deadline           timestamptz,                      -- the saga's own timeout; NULL = none
  input              jsonb       NOT NULL,
  data               jsonb       NOT NULL,
  last_error         text,
  idempotency_key    text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX saga_instances_idempotency ON consistency.saga_instances (name, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX saga_instances_due ON consistency.saga_instances (next_run_at)
  WHERE status IN ('running', 'compensating');

-- Work done by the saga workers, one row per worker slot (0 = the per-database worker
-- itself), updated once per batch in the batch's transaction: counts committed work only.
CREATE TABLE consistency.saga_worker_stats (
  worker                int         PRIMARY KEY,
  steps_executed        bigint      NOT NULL DEFAULT 0,  -- step attempts run or sent
  step_failures         bigint      NOT NULL DEFAULT 0,
  retries               bigint      NOT NULL DEFAULT 0,  -- attempts after the first (steps and compensations)
  compensations         bigint      NOT NULL DEFAULT 0,  -- compensation attempts run or sent
  compensation_failures bigint      NOT NULL DEFAULT 0,
  timeouts              bigint      NOT NULL DEFAULT 0,  -- reply and saga timeouts
  conflicts             bigint      NOT NULL DEFAULT 0,  -- attempts deferred after a deadlock or serialization failure
  updated_at            timestamptz NOT NULL DEFAULT now()
);

SELECT pg_catalog.pg_extension_config_dump('consistency.saga_definitions', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.saga_instances', '');

CREATE VIEW consistency.sagas AS
  SELECT id, name, definition_version, status, current_step, attempts, data, last_error,
         created_at, updated_at
    FROM consistency.saga_instances;

-- define_saga runs as the caller (it records the caller as the steps' role) and takes
-- the extension's rights itself, with a fixed search_path, only to write the catalog.
CREATE FUNCTION consistency.define_saga(name text, definition jsonb) RETURNS int
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_define_saga';

CREATE FUNCTION consistency.start_saga(name text, input jsonb, idempotency_key text DEFAULT NULL)
  RETURNS uuid
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'pgc_start_saga';

CREATE FUNCTION consistency.complete_step(saga_id uuid, step text, output jsonb DEFAULT '{}')
  RETURNS void
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'pgc_complete_step';

CREATE FUNCTION consistency.fail_step(saga_id uuid, step text, reason text) RETURNS void
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'pgc_fail_step';

CREATE FUNCTION consistency.retry_saga(saga_id uuid) RETURNS void
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'pgc_retry_saga';

CREATE FUNCTION consistency.abort_saga(saga_id uuid, reason text) RETURNS void
  LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'pgc_abort_saga';

CREATE FUNCTION consistency.saga_status(saga_id uuid)
  RETURNS TABLE(status text, current_step text, attempts int, data jsonb, last_error text,
                updated_at timestamptz)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF saga_id IS NULL THEN
    RAISE EXCEPTION 'saga id must not be NULL' USING ERRCODE = 'CS002';
  END IF;
  RETURN QUERY
    SELECT s.status, s.current_step, s.attempts, s.data, s.last_error, s.updated_at
      FROM consistency.saga_instances s
     WHERE s.id = saga_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'saga % does not exist', saga_id USING ERRCODE = 'CS004';
  END IF;
END
$$;

-- Operations: the lead's consistency.metrics() and check_integrity() aggregate these.
CREATE FUNCTION consistency._metrics_saga()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS $$
  SELECT 'pg_consistency_sagas', 'gauge', 'Sagas by status.', jsonb_build_object('status', st.status),
         count(s.id)::double precision
    FROM unnest(ARRAY['running', 'compensating', 'completed', 'compensated', 'failed', 'aborted'])
         AS st(status)
    LEFT JOIN consistency.saga_instances s ON s.status = st.status
   GROUP BY st.status
  UNION ALL
  SELECT 'pg_consistency_saga_waiting_replies', 'gauge', 'Sagas waiting for a reply to a command.',
         '{}'::jsonb, count(*)::double precision
    FROM consistency.saga_instances
   WHERE status IN ('running', 'compensating') AND phase = 'waiting'
  UNION ALL
  SELECT 'pg_consistency_saga_overdue_seconds', 'gauge',
         'How long the most overdue ready saga step has been waiting for the worker.',
         '{}'::jsonb,
         coalesce(extract(epoch FROM clock_timestamp() - min(next_run_at)), 0)::double precision
    FROM consistency.saga_instances
   WHERE status IN ('running', 'compensating') AND phase = 'ready'
     AND next_run_at <= clock_timestamp()
  UNION ALL
  SELECT m.metric, 'counter', m.help, '{}'::jsonb, m.value
    FROM (SELECT coalesce(sum(steps_executed), 0) AS steps_executed,
                 coalesce(sum(step_failures), 0) AS step_failures,
                 coalesce(sum(retries), 0) AS retries,
                 coalesce(sum(compensations), 0) AS compensations,
                 coalesce(sum(compensation_failures), 0) AS compensation_failures,
                 coalesce(sum(timeouts), 0) AS timeouts,
                 coalesce(sum(conflicts), 0) AS conflicts
            FROM consistency.saga_worker_stats) t,
         LATERAL (VALUES
           ('pg_consistency_saga_steps_executed_total', 'Saga step attempts run or sent by the worker.', t.steps_executed::double precision),
           ('pg_consistency_saga_step_failures_total', 'Saga step attempts that failed.', t.step_failures::double precision),
           ('pg_consistency_saga_retries_total', 'Saga step and compensation attempts after the first.', t.retries::double precision),
           ('pg_consistency_saga_compensations_total', 'Compensation attempts run or sent.', t.compensations::double precision),
           ('pg_consistency_saga_compensation_failures_total', 'Compensation attempts that failed.', t.compensation_failures::double precision),
           ('pg_consistency_saga_timeouts_total', 'Reply timeouts and saga timeouts.', t.timeouts::double precision),
           ('pg_consistency_saga_conflicts_total', 'Step attempts deferred after a deadlock or serialization failure.', t.conflicts::double precision)
         ) AS m(metric, help, value);
$$;

CREATE FUNCTION consistency._integrity_saga()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS $$
  WITH bad_state AS (
    SELECT s.id
      FROM consistency.saga_instances s
      LEFT JOIN consistency.saga_definitions d ON d.name = s.name AND d.version = s.definition_version
     WHERE d.name IS NULL
        OR s.status NOT IN ('running', 'compensating', 'completed', 'compensated', 'failed', 'aborted')
        OR s.phase NOT IN ('ready', 'waiting')
        OR s.step_index < 0
        OR s.step_index >= jsonb_array_length(d.compiled -> 'steps')
        OR s.attempts < 0
        OR (s.status IN ('compensating', 'compensated', 'failed') AND s.failed_step IS NULL)
        OR (s.failed_step IS NOT NULL AND (s.failed_step < 0 OR s.failed_step >= jsonb_array_length(d.compiled -> 'steps')))
        OR (s.status = 'compensating' AND s.step_index >= s.failed_step)
        OR (s.status IN ('completed', 'compensated', 'failed', 'aborted') AND s.next_run_at IS NOT NULL)
        OR (s.status IN ('running', 'compensating') AND s.phase = 'ready' AND s.next_run_at IS NULL)
        OR (s.status = 'running' AND s.failed_step IS NOT NULL)
        OR jsonb_typeof(s.data) <> 'object'
  ), no_audit AS (
    SELECT s.id
      FROM consistency.saga_instances s
     WHERE NOT EXISTS (SELECT 1 FROM consistency.streams st
                        WHERE st.stream = 'saga-' || s.id::text AND st.version > 0)
  ), orphan_owner AS (
    SELECT d.name, d.version
      FROM consistency.saga_definitions d
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = d.owner)
  )
  SELECT 'saga_state_consistent',
         NOT EXISTS (SELECT 1 FROM bad_state),
         CASE WHEN EXISTS (SELECT 1 FROM bad_state)
              THEN (SELECT count(*) FROM bad_state) || ' saga(s) with an impossible state or no definition, e.g. '
                   || (SELECT min(id::text) FROM bad_state)
              ELSE (SELECT count(*) FROM consistency.saga_instances) || ' sagas checked' END
  UNION ALL
  SELECT 'saga_audit_trail',
         NOT EXISTS (SELECT 1 FROM no_audit),
         CASE WHEN EXISTS (SELECT 1 FROM no_audit)
              THEN (SELECT count(*) FROM no_audit) || ' saga(s) without events in their stream saga-<id>, e.g. '
                   || (SELECT min(id::text) FROM no_audit)
              ELSE 'every saga has its audit stream' END
  UNION ALL
  SELECT 'saga_definition_owners_exist',
         NOT EXISTS (SELECT 1 FROM orphan_owner),
         CASE WHEN EXISTS (SELECT 1 FROM orphan_owner)
              THEN (SELECT string_agg(format('%s v%s', name, version), ', ') FROM orphan_owner)
                   || ': the defining role was dropped; their steps fail until redefined'
              ELSE 'every definition''s role exists' END;
$$;

REVOKE ALL ON consistency.saga_definitions, consistency.saga_instances,
  consistency.saga_worker_stats FROM PUBLIC;
GRANT SELECT ON consistency.saga_definitions, consistency.sagas TO consistency_reader;

REVOKE ALL ON FUNCTION consistency.define_saga(text, jsonb),
  consistency.start_saga(text, jsonb, text), consistency.complete_step(uuid, text, jsonb),
  consistency.fail_step(uuid, text, text), consistency.retry_saga(uuid),
  consistency.abort_saga(uuid, text), consistency.saga_status(uuid),
  consistency._metrics_saga(), consistency._integrity_saga() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.saga_status(uuid), consistency._metrics_saga(),
  consistency._integrity_saga() TO consistency_reader;
GRANT EXECUTE ON FUNCTION consistency.define_saga(text, jsonb),
  consistency.start_saga(text, jsonb, text), consistency.complete_step(uuid, text, jsonb),
  consistency.fail_step(uuid, text, text) TO consistency_writer;
GRANT EXECUTE ON FUNCTION consistency.retry_saga(uuid), consistency.abort_saga(uuid, text)
  TO consistency_admin;

-- Advances up to max_sagas due sagas by one step in the caller's transaction, as a saga
-- worker would (steps still run as their saga's role). For tests and for databases the
-- worker does not serve. Superuser only.
CREATE FUNCTION consistency._advance_sagas(max_sagas int DEFAULT 100) RETURNS int
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_advance_sagas';
REVOKE ALL ON FUNCTION consistency._advance_sagas(int) FROM PUBLIC;
-- pg_consistency: two-phase commit across PostgreSQL databases (src/twopc)

-- Participants. conninfo may hold a password: only consistency_admin and superusers can
-- read it; readers see the other columns (and the consistency.participants view).
CREATE SEQUENCE consistency.twopc_participant_id_seq AS integer;
CREATE TABLE consistency.twopc_participants (
  id         integer PRIMARY KEY DEFAULT nextval('consistency.twopc_participant_id_seq'),
  name       text NOT NULL UNIQUE,
  conninfo   text NOT NULL,
  trusted    boolean NOT NULL,   -- added by a superuser: may connect without a password
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by name NOT NULL DEFAULT session_user
);
ALTER SEQUENCE consistency.twopc_participant_id_seq OWNED BY consistency.twopc_participants.id;
SELECT pg_catalog.pg_extension_config_dump('consistency.twopc_participants', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.twopc_participant_id_seq', '');

-- Decisions: one row per participant of every distributed transaction, inserted inside
-- the local transaction at PRE_COMMIT (so it exists exactly when that transaction
-- committed), deleted by the worker's recovery once the participant has committed.
CREATE TABLE consistency.twopc_decisions (
  participant_id integer NOT NULL,
  xid            xid8 NOT NULL,
  decided_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
  PRIMARY KEY (participant_id, xid)
);

REVOKE ALL ON consistency.twopc_participants, consistency.twopc_decisions,
  consistency.twopc_participant_id_seq FROM PUBLIC;
GRANT SELECT ON consistency.twopc_participants TO consistency_admin;
GRANT SELECT (id, name, trusted, created_at, created_by) ON consistency.twopc_participants
  TO consistency_reader;
GRANT SELECT ON consistency.twopc_decisions TO consistency_reader;

CREATE VIEW consistency.participants AS
  SELECT id, name, trusted, created_at, created_by FROM consistency.twopc_participants;
GRANT SELECT ON consistency.participants TO consistency_reader;

CREATE FUNCTION consistency.add_participant(name text, conninfo text) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_add_participant';
CREATE FUNCTION consistency.drop_participant(name text, force boolean DEFAULT false) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_drop_participant';

CREATE FUNCTION consistency.remote_exec(participant text, sql text) RETURNS bigint
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'pgc_twopc_remote_exec';
CREATE FUNCTION consistency.remote_query(participant text, sql text) RETURNS SETOF jsonb
  LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100 AS 'MODULE_PATHNAME', 'pgc_twopc_remote_query';

CREATE FUNCTION consistency._twopc_in_doubt(
    OUT participant text, OUT gid text, OUT prepared_at timestamptz, OUT decision text)
  RETURNS SETOF record
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'pgc_twopc_in_doubt';
CREATE VIEW consistency.in_doubt AS SELECT * FROM consistency._twopc_in_doubt();

CREATE FUNCTION consistency._metrics_twopc()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_metrics';
CREATE FUNCTION consistency._integrity_twopc()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_integrity';

REVOKE ALL ON FUNCTION consistency.add_participant(text, text),
  consistency.drop_participant(text, boolean),
  consistency.remote_exec(text, text), consistency.remote_query(text, text),
  consistency._twopc_in_doubt(), consistency._metrics_twopc(), consistency._integrity_twopc()
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.add_participant(text, text),
  consistency.drop_participant(text, boolean) TO consistency_admin;
GRANT EXECUTE ON FUNCTION consistency.remote_exec(text, text),
  consistency.remote_query(text, text) TO consistency_writer;
GRANT EXECUTE ON FUNCTION consistency._twopc_in_doubt(), consistency._metrics_twopc(),
  consistency._integrity_twopc() TO consistency_reader;
GRANT SELECT ON consistency.in_doubt TO consistency_reader;
-- pg_consistency: operations (Prometheus metrics and integrity checks across pillars)

-- Each pillar contributes consistency._metrics_<pillar>() and consistency._integrity_<pillar>();
-- these two functions gather whatever pillars are installed.

CREATE FUNCTION consistency._metrics_worker()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'pg_consistency_worker_up', 'gauge', 'Whether the background worker of a database runs (1) or not (0).',
         jsonb_build_object('database', w.database), (w.pid IS NOT NULL AND w.state <> 'stopped')::int::float8
    FROM consistency.worker_status() w WHERE w.kind = 'worker'
  UNION ALL
  SELECT 'pg_consistency_worker_errors_total', 'counter', 'Errors raised inside worker ticks since the worker started.',
         jsonb_build_object('database', w.database), w.errors::float8
    FROM consistency.worker_status() w WHERE w.kind = 'worker' AND w.pid IS NOT NULL
$$;

CREATE FUNCTION consistency.metrics() RETURNS text
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  sources text;
  out text := '';
  last_metric text := NULL;
  r record;
BEGIN
  SELECT string_agg(format('SELECT * FROM %s', p.oid::regprocedure), ' UNION ALL ' ORDER BY p.proname)
    INTO sources
    FROM pg_proc p
   WHERE p.pronamespace = 'consistency'::regnamespace AND p.proname LIKE '\_metrics\_%' AND p.pronargs = 0;
  FOR r IN EXECUTE 'SELECT * FROM (' || sources || ') m ORDER BY metric, labels::text' LOOP
    IF last_metric IS DISTINCT FROM r.metric THEN
      out := out || format(E'# HELP %s %s\n# TYPE %s %s\n', r.metric, r.help, r.metric, r.kind);
      last_metric := r.metric;
    END IF;
    out := out || r.metric
       || CASE WHEN r.labels IS NULL OR r.labels = '{}'::jsonb THEN ''
               ELSE '{' || (SELECT string_agg(format('%s="%s"', key,
                                   replace(replace(replace(value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')), ',' ORDER BY key)
                              FROM jsonb_each_text(r.labels)) || '}' END
       || ' ' || CASE WHEN r.value IS NULL THEN 'NaN' ELSE r.value::text END || E'\n';
  END LOOP;
  RETURN out;
END
$$;

CREATE FUNCTION consistency.check_integrity() RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fn regprocedure;
BEGIN
  check_name := 'worker_running';
  SELECT count(*) > 0, CASE WHEN count(*) > 0 THEN 'worker runs in this database'
                            ELSE 'no running pg_consistency worker for this database (rows wait until one runs)' END
    INTO ok, detail
    FROM consistency.worker_status() w
   WHERE w.kind = 'worker' AND w.database = current_database() AND w.pid IS NOT NULL;
  RETURN NEXT;
  FOR fn IN
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'consistency'::regnamespace AND p.proname LIKE '\_integrity\_%' AND p.pronargs = 0
     ORDER BY p.proname
  LOOP
    RETURN QUERY EXECUTE format('SELECT check_name, ok, detail FROM %s', fn);
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION consistency.metrics(), consistency.check_integrity() TO consistency_reader;
GRANT EXECUTE ON FUNCTION consistency._metrics_worker() TO consistency_reader;
