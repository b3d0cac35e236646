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

-- `folded`: saved by aggregate_state from a fold run as the aggregate's registrant (the
-- only snapshots aggregate_state starts from); false for save_snapshot's.
CREATE TABLE consistency.snapshots (
  stream     text NOT NULL,
  version    bigint NOT NULL CHECK (version >= 1),
  state      jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  folded     boolean NOT NULL DEFAULT false,
  PRIMARY KEY (stream, version)
);

-- The roles that code runs as (registered_by, owner, and in other files started_by) are
-- regrole, not oid: pg_dump writes them as role names, so a restore into another cluster
-- names the same roles there (whose OIDs differ). pg_upgrade keeps role OIDs, and accepts
-- regrole columns.
CREATE TABLE consistency.upcasters (
  event_type          text NOT NULL,
  from_schema_version int NOT NULL CHECK (from_schema_version >= 1),
  fn                  text NOT NULL,    -- a function reference (00_base.sql)
  fn_oid              oid NOT NULL,
  bound_cluster       bigint NOT NULL,
  registered_by       regrole NOT NULL,
  registered_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (event_type, from_schema_version)
);

CREATE TABLE consistency.aggregates (
  category       text PRIMARY KEY,
  apply_fn       text NOT NULL,       -- a function reference (00_base.sql)
  apply_fn_oid   oid NOT NULL,
  bound_cluster  bigint NOT NULL,
  initial_state  jsonb NOT NULL,
  snapshot_every int NOT NULL CHECK (snapshot_every >= 0),
  registered_by  regrole NOT NULL,
  registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE TABLE consistency.subscription_state (
  name            text PRIMARY KEY,
  handler         text NOT NULL,      -- a function reference (00_base.sql)
  handler_oid     oid NOT NULL,
  bound_cluster   bigint NOT NULL,
  categories      text[],
  event_types     text[],
  position        bigint NOT NULL CHECK (position >= 0),
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failed')),
  attempts        int NOT NULL DEFAULT 0,
  max_attempts    int NOT NULL CHECK (max_attempts >= 1),
  last_error      text,
  next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  owner           regrole NOT NULL,
  processed       bigint NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE TRIGGER upcasters_bind_fn BEFORE INSERT OR UPDATE OF fn, fn_oid, bound_cluster
  ON consistency.upcasters FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('fn');
CREATE TRIGGER aggregates_bind_fn BEFORE INSERT OR UPDATE OF apply_fn, apply_fn_oid, bound_cluster
  ON consistency.aggregates FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('apply_fn');
CREATE TRIGGER subscription_state_bind_fn BEFORE INSERT OR UPDATE OF handler, handler_oid, bound_cluster
  ON consistency.subscription_state FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('handler');

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

-- The highest global position this session appended (in the current transaction too).
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

-- True once the subscription's checkpoint reaches "position"; false when it is parked or
-- the timeout passes first.
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
         consistency._bound_function(s.handler, s.handler_oid, s.bound_cluster)::regprocedure AS handler,
         s.owner::regrole AS owner, s.categories, s.event_types,
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
  SELECT 'pg_consistency_streams', 'gauge', 'Streams in the event store.',
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

-- The event store's checks for consistency.check_integrity (stream versions, version gaps,
-- upcaster chains, ...): one row per check.
CREATE FUNCTION consistency._integrity_eventstore()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- Bounded (docs/operations.md): the most recent events by position (primary key, read
  -- backwards), their streams and the first streams by name (primary key), each stream
  -- probed through its (stream, version) index. On a table within the limit that is every event and stream.
  WITH recent AS (
    SELECT e.stream, e.version FROM consistency.events e
     ORDER BY e.global_position DESC LIMIT consistency._check_scan_limit()
  ),
  capped AS (
    SELECT count(*) >= consistency._check_scan_limit() AS capped,
           format(' (capped: the %s most recent events and their streams, pg_consistency.integrity_max_rows)',
                  count(*)) AS note
      FROM recent
  ),
  scope AS (
    SELECT r.stream FROM recent r
    UNION
    SELECT s.stream FROM (SELECT s.stream FROM consistency.streams s
                           ORDER BY s.stream LIMIT consistency._check_scan_limit()) s
  ),
  -- Correlated subqueries, not joins: index probes per stream, whatever the planner
  -- thinks of the tables' sizes.
  per_stream AS (
    SELECT sc.stream,
           coalesce((SELECT s.version FROM consistency.streams s WHERE s.stream = sc.stream), 0) AS version,
           coalesce(b.hi, 0) AS hi, b.lo
      FROM scope sc
      CROSS JOIN LATERAL (SELECT min(e.version) AS lo, max(e.version) AS hi
                            FROM consistency.events e WHERE e.stream = sc.stream) b
  ),
  bad_versions AS (
    SELECT * FROM per_stream WHERE version <> hi
  ),
  gaps AS (
    SELECT p.stream, p.lo, p.hi FROM per_stream p WHERE p.lo <> 1
    UNION
    SELECT p.stream, p.lo, p.hi
      FROM recent r JOIN per_stream p ON p.stream = r.stream
     WHERE r.version > 1
       AND (SELECT true FROM consistency.events e
             WHERE e.stream = r.stream AND e.version = r.version - 1) IS NULL
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
                           || string_agg(format('%s: version %s, last event version %s', stream, version, hi), '; ')
                      FROM (SELECT * FROM bad_versions ORDER BY stream LIMIT 5) b) END
         || CASE WHEN (SELECT capped FROM capped) THEN (SELECT note FROM capped) ELSE '' END
  UNION ALL
  SELECT 'eventstore.version_gaps',
         NOT EXISTS (SELECT 1 FROM gaps),
         CASE WHEN NOT EXISTS (SELECT 1 FROM gaps)
              THEN 'every stream has versions 1..n without gaps'
              ELSE (SELECT count(*) || ' stream(s) with missing versions, e.g. '
                           || string_agg(format('%s: versions %s..%s with a gap', stream, lo, hi), '; ')
                      FROM (SELECT * FROM gaps ORDER BY stream LIMIT 5) g) END
         || CASE WHEN (SELECT capped FROM capped) THEN (SELECT note FROM capped) ELSE '' END
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
-- own fixed, schema-qualified statements, with only pg_catalog on the search path; user
-- code (upcasters, apply functions, handlers) never runs there (see docs/eventstore.md,
-- "Security model").
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
