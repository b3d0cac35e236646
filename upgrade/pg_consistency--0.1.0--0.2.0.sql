-- pg_consistency 0.1.0 -> 0.2.0. Every change to src/sql since 0.1.0, in the same order
-- (docs/development.md, "Changing the schema"); test/t/700_upgrade.t checks that a
-- database updated with this script has the same catalog as a fresh 0.2.0 install.
-- Brought up to date with src/sql of sha256 622a6ca20a65e23b768fa2de57d982e8e0dc78ba3a3e5274e2ad1b80ed286df1

\echo Use "ALTER EXTENSION pg_consistency UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------
-- Event store: snapshots say whether aggregate_state folded them. Snapshots of 0.1.0
-- are not known to be folds run as the aggregate's registrant, so they count as saved
-- by save_snapshot: aggregate_state folds the stream again (and saves a folded one).
-- ---------------------------------------------------------------------------------
ALTER TABLE consistency.snapshots ADD COLUMN folded boolean NOT NULL DEFAULT false;

-- ---------------------------------------------------------------------------------
-- Outbox: pg_dump's copy of relay_stats overwrites the row the install made.
-- ---------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------
-- Sagas: the starter is recorded. 0.1.0 did not record it: older sagas get 0 (no
-- role), so only members of the defining role and of consistency_admin may answer
-- them. The column comes last here and before created_at in a fresh install; the
-- extension names its columns everywhere.
-- ---------------------------------------------------------------------------------
ALTER TABLE consistency.saga_instances ADD COLUMN started_by oid NOT NULL DEFAULT 0;
ALTER TABLE consistency.saga_instances ALTER COLUMN started_by DROP DEFAULT;
SELECT pg_catalog.pg_extension_config_dump('consistency.saga_worker_stats', '');

-- A step function is called by the OID in `compiled`, which pg_dump's copy of the row
-- cannot carry to another database; the schema-qualified name beside it can. Every row
-- written (by define_saga, or by a restore) gets the OIDs its names resolve to now: the
-- same ones for define_saga, the restored functions after a restore; 0 when a function
-- is missing (its step then fails and asks for the saga to be defined again).
CREATE FUNCTION consistency._saga_definition_oids() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  steps jsonb := '[]'::pg_catalog.jsonb;
  step jsonb;
  part text;
  fn regprocedure;
BEGIN
  IF pg_catalog.jsonb_typeof(NEW.compiled OPERATOR(pg_catalog.->) 'steps'::pg_catalog.text)
       IS DISTINCT FROM 'array' THEN
    RETURN NEW;
  END IF;
  FOR step IN SELECT s FROM pg_catalog.jsonb_array_elements(NEW.compiled OPERATOR(pg_catalog.->) 'steps'::pg_catalog.text) s
  LOOP
    FOREACH part IN ARRAY ARRAY['action', 'compensation']::pg_catalog.text[] LOOP
      IF pg_catalog.jsonb_typeof(step OPERATOR(pg_catalog.->) part) OPERATOR(pg_catalog.=) 'object'::pg_catalog.text
         AND (step OPERATOR(pg_catalog.->) part) OPERATOR(pg_catalog.?) 'function'::pg_catalog.text THEN
        fn := pg_catalog.to_regprocedure(((step OPERATOR(pg_catalog.->) part) OPERATOR(pg_catalog.->>) 'function'::pg_catalog.text)
                                         OPERATOR(pg_catalog.||) '(pg_catalog.uuid, pg_catalog.jsonb)'::pg_catalog.text);
        step := pg_catalog.jsonb_set(step, ARRAY[part, 'oid']::pg_catalog.text[],
                                     pg_catalog.to_jsonb(coalesce(fn::pg_catalog.oid::pg_catalog.int8, 0::pg_catalog.int8)));
      END IF;
    END LOOP;
    steps := steps OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(step);
  END LOOP;
  NEW.compiled := pg_catalog.jsonb_set(NEW.compiled, '{steps}'::pg_catalog.text[], steps);
  RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION consistency._saga_definition_oids() FROM PUBLIC;
CREATE TRIGGER saga_definition_oids BEFORE INSERT OR UPDATE OF compiled ON consistency.saga_definitions
  FOR EACH ROW EXECUTE FUNCTION consistency._saga_definition_oids();
-- Definitions compiled by 0.1.0 have no OIDs: the trigger gives them theirs, so sagas
-- started under 0.1.0 go on.
UPDATE consistency.saga_definitions SET compiled = compiled;

-- The reply and operator functions run as their caller and check its rights themselves.
CREATE OR REPLACE FUNCTION consistency.start_saga(name text, input jsonb, idempotency_key text DEFAULT NULL)
  RETURNS uuid
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_start_saga';

CREATE OR REPLACE FUNCTION consistency.complete_step(saga_id uuid, step text, output jsonb DEFAULT '{}')
  RETURNS void
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_complete_step';

CREATE OR REPLACE FUNCTION consistency.fail_step(saga_id uuid, step text, reason text) RETURNS void
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_fail_step';

CREATE OR REPLACE FUNCTION consistency.retry_saga(saga_id uuid) RETURNS void
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_retry_saga';

CREATE OR REPLACE FUNCTION consistency.abort_saga(saga_id uuid, reason text) RETURNS void
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_abort_saga';

CREATE OR REPLACE FUNCTION consistency.saga_status(saga_id uuid)
  RETURNS TABLE(status text, current_step text, attempts int, data jsonb, last_error text,
                updated_at timestamptz)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS $$
BEGIN
  IF saga_id IS NULL THEN
    RAISE EXCEPTION 'saga id must not be NULL' USING ERRCODE = 'CS002';
  END IF;
  -- Readers read every saga (as they read every event stream, saga-<id> included).
  RETURN QUERY
    SELECT s.status, s.current_step, s.attempts, s.data, s.last_error, s.updated_at
      FROM consistency.saga_instances s
     WHERE s.id OPERATOR(pg_catalog.=) saga_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'saga % does not exist', saga_id USING ERRCODE = 'CS004';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION consistency._advance_sagas(max_sagas int DEFAULT 100) RETURNS int
  LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'pgc_advance_sagas';

-- ---------------------------------------------------------------------------------
-- Two-phase commit: participants granted to roles.
-- ---------------------------------------------------------------------------------
CREATE TABLE consistency.twopc_participant_grants (
  participant_id integer NOT NULL
    REFERENCES consistency.twopc_participants (id) ON DELETE CASCADE,
  role           regrole NOT NULL,
  granted_at     timestamptz NOT NULL DEFAULT now(),
  granted_by     name NOT NULL DEFAULT session_user,
  PRIMARY KEY (participant_id, role)
);
SELECT pg_catalog.pg_extension_config_dump('consistency.twopc_participant_grants', '');
REVOKE ALL ON consistency.twopc_participant_grants FROM PUBLIC;
GRANT SELECT ON consistency.twopc_participant_grants TO consistency_admin;

CREATE VIEW consistency.participant_grants AS
  SELECT p.name AS participant, g.role, g.granted_at, g.granted_by
    FROM consistency.twopc_participant_grants g
    JOIN consistency.twopc_participants p ON p.id OPERATOR(pg_catalog.=) g.participant_id;
REVOKE ALL ON consistency.participant_grants FROM PUBLIC;
GRANT SELECT ON consistency.participant_grants TO consistency_admin;

CREATE FUNCTION consistency.grant_participant(participant text, role regrole) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_grant_participant';
CREATE FUNCTION consistency.revoke_participant(participant text, role regrole) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_revoke_participant';
REVOKE ALL ON FUNCTION consistency.grant_participant(text, regrole),
  consistency.revoke_participant(text, regrole) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.grant_participant(text, regrole),
  consistency.revoke_participant(text, regrole) TO consistency_admin;

-- ---------------------------------------------------------------------------------
-- The inbox (new in 0.2.0): src/sql/50_inbox.sql as it is.
-- ---------------------------------------------------------------------------------

-- One row per consumer. handler is stored by OID (regprocedure) and called by it; owner is
-- the role that created the consumer, as whom the handler runs. generation is bumped by
-- reset_consumer: the worker then re-reads the stored offsets.
CREATE TABLE consistency.consumer_state (
  name          text PRIMARY KEY,
  topics        text[] NOT NULL,
  handler       regprocedure NOT NULL,
  raw_value     boolean NOT NULL,           -- the handler takes bytea (else jsonb)
  owner         oid NOT NULL,
  start_from    text NOT NULL CHECK (start_from IN ('earliest', 'latest')),
  status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'paused')),
  generation    bigint NOT NULL DEFAULT 0,
  consumed      bigint NOT NULL DEFAULT 0,  -- messages that took effect
  failed        bigint NOT NULL DEFAULT 0,  -- handler attempts that failed
  dead_lettered bigint NOT NULL DEFAULT 0,
  deduplicated  bigint NOT NULL DEFAULT 0,  -- skipped as a re-delivered ce_id
  topic_error   text,                       -- a topic that does not exist (set by the worker)
  last_error    text,
  last_error_at timestamptz,
  seen_at       timestamptz,                -- the worker's last heartbeat for this consumer
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- The position of each (consumer, topic, partition): the next offset to apply. Advanced in
-- the transaction that applies the messages before it.
CREATE TABLE consistency.consumer_offsets (
  consumer       text NOT NULL REFERENCES consistency.consumer_state (name) ON DELETE CASCADE,
  topic          text NOT NULL,
  partition      int NOT NULL CHECK (partition >= 0),
  next_offset    bigint NOT NULL CHECK (next_offset >= 0),
  high_watermark bigint,                    -- as last seen by the worker (for lag)
  attempts       int NOT NULL DEFAULT 0,    -- failed attempts of the message at next_offset
  last_error     text,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, partition)
);

-- Messages whose handler failed consumer_max_attempts times, or that cannot be given to it.
CREATE TABLE consistency.consumer_dead_letters (
  id        bigserial PRIMARY KEY,
  consumer  text NOT NULL REFERENCES consistency.consumer_state (name) ON DELETE CASCADE,
  topic     text NOT NULL,
  partition int NOT NULL,
  "offset"  bigint NOT NULL,
  key       text,
  value     bytea,
  headers   jsonb NOT NULL DEFAULT '{}',
  reason    text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (consumer, topic, partition, "offset")
);

-- ce_id values handled per consumer within pg_consistency.consumer_dedupe_window; rows
-- older than the window are deleted by the worker.
CREATE TABLE consistency.consumer_dedupe (
  consumer text NOT NULL REFERENCES consistency.consumer_state (name) ON DELETE CASCADE,
  ce_id    text NOT NULL,
  seen_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, ce_id)
);
CREATE INDEX consumer_dedupe_seen_at ON consistency.consumer_dedupe (seen_at);

-- Saga replies handle_saga_reply could not apply (unknown saga, late or duplicate reply).
CREATE TABLE consistency.saga_reply_log (
  id          bigserial PRIMARY KEY,
  saga_id     text,
  step        text,
  attempt     text,
  outcome     text,
  result      text NOT NULL,   -- 'unknown_saga', 'not_awaited', 'stale_attempt', 'invalid'
  detail      text,
  received_at timestamptz NOT NULL DEFAULT now()
);

SELECT pg_catalog.pg_extension_config_dump('consistency.consumer_state', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.consumer_offsets', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.consumer_dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.consumer_dead_letters_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.consumer_dedupe', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.saga_reply_log', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.saga_reply_log_id_seq', '');

-- The API (C, src/inbox/api.cpp): runs as the caller, who is checked, and writes the
-- catalog with the extension owner's rights.
CREATE FUNCTION consistency.create_consumer(name text, topics text[], handler regprocedure,
                                            start_from text DEFAULT 'earliest')
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_create_consumer';
CREATE FUNCTION consistency.drop_consumer(name text)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_drop_consumer';
CREATE FUNCTION consistency.pause_consumer(name text)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_pause_consumer';
CREATE FUNCTION consistency.resume_consumer(name text)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_resume_consumer';
CREATE FUNCTION consistency.reset_consumer(name text, topic text, partition int, "offset" bigint)
  RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_reset_consumer';
CREATE FUNCTION consistency.retry_consumer_dead_letters(consumer text)
  RETURNS int LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_retry_consumer_dead_letters';

-- Records a saga reply handle_saga_reply could not apply.
CREATE FUNCTION consistency._record_saga_reply(saga_id text, step text, attempt text, outcome text,
                                               result text, detail text)
  RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  INSERT INTO consistency.saga_reply_log (saga_id, step, attempt, outcome, result, detail)
  VALUES ($1, $2, $3, $4, $5, pg_catalog.left($6, 2000))
$fn$;

-- The built-in handler for saga replies (headers saga_id, step, attempt, outcome). Runs as
-- the consumer's owner, who must have the right to answer the saga (complete_step and
-- fail_step check it). A reply that cannot apply is recorded in saga_reply_log.
CREATE FUNCTION consistency.handle_saga_reply(topic text, partition int, "offset" bigint, key text,
                                              value jsonb, headers jsonb)
  RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_saga text := headers OPERATOR(pg_catalog.->>) 'saga_id';
  v_step text := headers OPERATOR(pg_catalog.->>) 'step';
  v_attempt text := headers OPERATOR(pg_catalog.->>) 'attempt';
  v_outcome text := headers OPERATOR(pg_catalog.->>) 'outcome';
  v_id uuid;
  v_current int;
  v_state text;
  v_status text;
BEGIN
  IF v_saga IS NULL OR v_step IS NULL OR v_outcome IS NULL
     OR v_outcome NOT IN ('completed', 'failed')
     OR v_saga !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
     OR (v_attempt IS NOT NULL AND v_attempt !~ '^[0-9]{1,9}$') THEN
    PERFORM consistency._record_saga_reply(v_saga, v_step, v_attempt, v_outcome, 'invalid',
      pg_catalog.format('topic %s partition %s offset %s: headers saga_id, step and outcome '
                        '(completed|failed) are required', topic, partition, "offset"));
    RETURN;
  END IF;
  v_id := v_saga::uuid;
  SELECT s.attempts, s.current_step, s.status INTO v_current, v_state, v_status FROM consistency.saga_status(v_id) s;
  -- A reply for a step the saga no longer waits on (late, or a duplicate of one applied):
  -- recorded, not applied (complete_step would take a repeat as a no-op).
  IF v_status NOT IN ('running', 'compensating') OR v_state IS DISTINCT FROM v_step THEN
    PERFORM consistency._record_saga_reply(v_saga, v_step, v_attempt, v_outcome, 'not_awaited',
      pg_catalog.format('the saga is %s at step %s', v_status, v_state));
    RETURN;
  END IF;
  IF v_attempt IS NOT NULL AND v_state OPERATOR(pg_catalog.=) v_step
     AND v_attempt::int OPERATOR(pg_catalog.<) v_current THEN
    PERFORM consistency._record_saga_reply(v_saga, v_step, v_attempt, v_outcome, 'stale_attempt',
      pg_catalog.format('the step is at attempt %s', v_current));
    RETURN;
  END IF;
  BEGIN
    IF v_outcome OPERATOR(pg_catalog.=) 'completed' THEN
      PERFORM consistency.complete_step(v_id, v_step, CASE WHEN pg_catalog.jsonb_typeof(value) = 'object'
                                                           THEN value ELSE '{}'::jsonb END);
    ELSE
      PERFORM consistency.fail_step(v_id, v_step,
        COALESCE(value OPERATOR(pg_catalog.->>) 'reason', 'failed (no reason given)'));
    END IF;
  EXCEPTION WHEN SQLSTATE 'CS003' OR SQLSTATE 'CS004' THEN
    PERFORM consistency._record_saga_reply(v_saga, v_step, v_attempt, v_outcome,
      CASE WHEN SQLSTATE = 'CS004' THEN 'unknown_saga' ELSE 'not_awaited' END, SQLERRM);
  END;
EXCEPTION WHEN SQLSTATE 'CS004' THEN
  PERFORM consistency._record_saga_reply(v_saga, v_step, v_attempt, v_outcome, 'unknown_saga', SQLERRM);
END
$fn$;

-- The contract's status of a consumer: paused by an operator, failed (a topic is missing
-- or the last batch failed), stopped (no worker has served it for 30 s), else running.
CREATE VIEW consistency.consumers AS
SELECT c.name, c.topics,
       CASE WHEN c.status = 'paused' THEN 'paused'
            WHEN c.topic_error IS NOT NULL THEN 'failed'
            WHEN c.seen_at IS NULL OR c.seen_at < pg_catalog.now() - interval '30 seconds' THEN 'stopped'
            ELSE 'running' END AS status,
       (SELECT COALESCE(pg_catalog.sum(GREATEST(o.high_watermark - o.next_offset, 0)), 0)::bigint
          FROM consistency.consumer_offsets o WHERE o.consumer = c.name) AS lag,
       COALESCE(c.topic_error, c.last_error) AS last_error,
       c.handler, pg_catalog.pg_get_userbyid(c.owner) AS owner, c.start_from,
       c.consumed, c.failed, c.dead_lettered, c.deduplicated, c.created_at
  FROM consistency.consumer_state c;

CREATE FUNCTION consistency._metrics_inbox()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT m.metric, m.kind, m.help, jsonb_build_object('consumer', c.name), m.value
    FROM consistency.consumers c,
         LATERAL (VALUES
           ('pg_consistency_consumer_consumed_total', 'counter', 'Messages a consumer applied (handler ran and committed).', c.consumed::float8),
           ('pg_consistency_consumer_failed_total', 'counter', 'Handler attempts that failed (each retried or dead-lettered).', c.failed::float8),
           ('pg_consistency_consumer_dead_lettered_total', 'counter', 'Messages a consumer moved to consumer_dead_letters.', c.dead_lettered::float8),
           ('pg_consistency_consumer_deduplicated_total', 'counter', 'Messages skipped as a re-delivered ce_id.', c.deduplicated::float8),
           ('pg_consistency_consumer_lag_messages', 'gauge', 'Messages behind the high watermark, summed over partitions.', c.lag::float8),
           ('pg_consistency_consumer_running', 'gauge', '1 while the consumer status is running.', (c.status = 'running')::int::float8)
         ) AS m(metric, kind, help, value)
$fn$;

CREATE FUNCTION consistency._integrity_inbox()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT 'inbox_handlers_exist', count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every consumer handler and owner exists'
              ELSE count(*) || ' consumer(s) whose handler function or owner role is gone (e.g. '
                   || min(c.name) || ')' END
    FROM consistency.consumer_state c
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.oid = c.handler::oid)
      OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = c.owner)
  UNION ALL
  SELECT 'inbox_offsets_topics', count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every stored offset belongs to a topic of its consumer'
              ELSE count(*) || ' offset row(s) for topics their consumer no longer reads' END
    FROM consistency.consumer_offsets o JOIN consistency.consumer_state c ON c.name = o.consumer
   WHERE NOT (o.topic = ANY (c.topics))
  UNION ALL
  SELECT 'inbox_dead_letters_behind_offsets', count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every dead letter lies before its partition''s stored offset'
              ELSE count(*) || ' dead letter(s) at or after the stored offset of their partition' END
    FROM consistency.consumer_dead_letters d
    JOIN consistency.consumer_offsets o
      ON o.consumer = d.consumer AND o.topic = d.topic AND o.partition = d.partition
   WHERE d."offset" >= o.next_offset
$fn$;

REVOKE ALL ON FUNCTION
  consistency.create_consumer(text, text[], regprocedure, text), consistency.drop_consumer(text),
  consistency.pause_consumer(text), consistency.resume_consumer(text),
  consistency.reset_consumer(text, text, int, bigint), consistency.retry_consumer_dead_letters(text),
  consistency._record_saga_reply(text, text, text, text, text, text),
  consistency.handle_saga_reply(text, int, bigint, text, jsonb, jsonb),
  consistency._metrics_inbox(), consistency._integrity_inbox()
  FROM PUBLIC;
REVOKE ALL ON consistency.consumer_state, consistency.consumer_offsets, consistency.consumer_dead_letters,
  consistency.consumer_dedupe, consistency.saga_reply_log, consistency.consumers FROM PUBLIC;
GRANT SELECT ON consistency.consumers, consistency.consumer_offsets, consistency.consumer_dead_letters,
  consistency.saga_reply_log TO consistency_reader;
GRANT EXECUTE ON FUNCTION consistency._metrics_inbox(), consistency._integrity_inbox() TO consistency_reader;
GRANT EXECUTE ON FUNCTION
  consistency.create_consumer(text, text[], regprocedure, text), consistency.drop_consumer(text),
  consistency.pause_consumer(text), consistency.resume_consumer(text),
  consistency.reset_consumer(text, text, int, bigint), consistency.retry_consumer_dead_letters(text),
  consistency._record_saga_reply(text, text, text, text, text, text),
  consistency.handle_saga_reply(text, int, bigint, text, jsonb, jsonb)
  TO consistency_writer;

-- Correlation ids (docs/correlation.md): the id in effect at start_saga, passed to the
-- saga's commands (sagas started before the update have none); routed events carry the
-- event's correlation and causation ids as headers.
ALTER TABLE consistency.saga_instances ADD COLUMN correlation_id text;

CREATE OR REPLACE FUNCTION consistency._route_events_trigger() RETURNS trigger
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


-- Bounded integrity checks (docs/operations.md, "Bounded integrity checks"): each check reads
-- the most recent rows up to pg_consistency.integrity_max_rows through an index.
CREATE OR REPLACE FUNCTION consistency._check_scan_limit() RETURNS bigint
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  AS $$ SELECT GREATEST(1, COALESCE(NULLIF(pg_catalog.current_setting('pg_consistency.integrity_max_rows', true),
                                             '')::pg_catalog.int8, 10000)) $$;

GRANT EXECUTE ON FUNCTION consistency._check_scan_limit() TO PUBLIC;

CREATE INDEX saga_instances_created ON consistency.saga_instances (created_at);

CREATE OR REPLACE FUNCTION consistency._integrity_eventstore()
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

CREATE OR REPLACE FUNCTION consistency._integrity_relay()
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

CREATE OR REPLACE FUNCTION consistency._integrity_saga()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS $$
  -- Bounded (docs/operations.md): the most recently started sagas and the running or
  -- compensating ones next due (both through an index), each probed for its definition
  -- and its audit stream by primary key. On a table within the limit that is every saga.
  WITH recent AS (
    SELECT r.id, r.name, r.definition_version, r.status, r.phase, r.step_index, r.failed_step, r.attempts,
           r.next_run_at, jsonb_typeof(r.data) AS data_type
      FROM consistency.saga_instances r ORDER BY r.created_at DESC LIMIT consistency._check_scan_limit()
  ), active AS (
    SELECT a.id, a.name, a.definition_version, a.status, a.phase, a.step_index, a.failed_step, a.attempts,
           a.next_run_at, jsonb_typeof(a.data) AS data_type
      FROM consistency.saga_instances a WHERE a.status IN ('running', 'compensating')
     ORDER BY a.next_run_at LIMIT consistency._check_scan_limit()
  ), checked AS (
    SELECT DISTINCT ON (id) * FROM (SELECT * FROM recent UNION ALL SELECT * FROM active) c ORDER BY id
  ), capped AS (
    SELECT (SELECT count(*) FROM recent) >= consistency._check_scan_limit()
           OR (SELECT count(*) FROM active) >= consistency._check_scan_limit() AS capped,
           (SELECT count(*) FROM checked) AS n
  ), bad_state AS (
    -- Correlated subqueries, not joins: one index probe per checked saga, whatever the
    -- planner thinks of the tables' sizes.
    SELECT s.id
      FROM checked s
      LEFT JOIN LATERAL (SELECT jsonb_array_length(d.compiled -> 'steps') AS steps
                           FROM consistency.saga_definitions d
                          WHERE d.name = s.name AND d.version = s.definition_version) d ON true
     WHERE d.steps IS NULL
        OR s.status NOT IN ('running', 'compensating', 'completed', 'compensated', 'failed', 'aborted')
        OR s.phase NOT IN ('ready', 'waiting')
        OR s.step_index < 0
        OR s.step_index >= d.steps
        OR s.attempts < 0
        OR (s.status IN ('compensating', 'compensated', 'failed') AND s.failed_step IS NULL)
        OR (s.failed_step IS NOT NULL AND (s.failed_step < 0 OR s.failed_step >= d.steps))
        OR (s.status = 'compensating' AND s.step_index >= s.failed_step)
        OR (s.status IN ('completed', 'compensated', 'failed', 'aborted') AND s.next_run_at IS NOT NULL)
        OR (s.status IN ('running', 'compensating') AND s.phase = 'ready' AND s.next_run_at IS NULL)
        OR (s.status = 'running' AND s.failed_step IS NOT NULL)
        OR s.data_type <> 'object'
  ), no_audit AS (
    SELECT s.id
      FROM checked s
     WHERE coalesce((SELECT st.version FROM consistency.streams st
                      WHERE st.stream = 'saga-' || s.id::text), 0) = 0
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
              ELSE (SELECT n FROM capped) || ' sagas checked' END
         || CASE WHEN (SELECT capped FROM capped)
                 THEN ' (capped: the most recently started and the next due, pg_consistency.integrity_max_rows)'
                 ELSE '' END
  UNION ALL
  SELECT 'saga_audit_trail',
         NOT EXISTS (SELECT 1 FROM no_audit),
         CASE WHEN EXISTS (SELECT 1 FROM no_audit)
              THEN (SELECT count(*) FROM no_audit) || ' saga(s) without events in their stream saga-<id>, e.g. '
                   || (SELECT min(id::text) FROM no_audit)
              ELSE 'every saga has its audit stream' END
         || CASE WHEN (SELECT capped FROM capped) THEN format(' (capped: %s sagas checked)', (SELECT n FROM capped))
                 ELSE '' END
  UNION ALL
  SELECT 'saga_definition_owners_exist',
         NOT EXISTS (SELECT 1 FROM orphan_owner),
         CASE WHEN EXISTS (SELECT 1 FROM orphan_owner)
              THEN (SELECT string_agg(format('%s v%s', name, version), ', ') FROM orphan_owner)
                   || ': the defining role was dropped; their steps fail until redefined'
              ELSE 'every definition''s role exists' END;
$$;

CREATE OR REPLACE FUNCTION consistency._integrity_inbox()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT 'inbox_handlers_exist', count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every consumer handler and owner exists'
              ELSE count(*) || ' consumer(s) whose handler function or owner role is gone (e.g. '
                   || min(c.name) || ')' END
    FROM consistency.consumer_state c
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.oid = c.handler::oid)
      OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = c.owner)
  UNION ALL
  SELECT 'inbox_offsets_topics', count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every stored offset belongs to a topic of its consumer'
              ELSE count(*) || ' offset row(s) for topics their consumer no longer reads' END
    FROM consistency.consumer_offsets o JOIN consistency.consumer_state c ON c.name = o.consumer
   WHERE NOT (o.topic = ANY (c.topics))
  UNION ALL
  -- Bounded (docs/operations.md): the most recent dead letters by id (primary key, read
  -- backwards), each offset row probed by its primary key.
  SELECT 'inbox_dead_letters_behind_offsets', count(*) FILTER (WHERE d."offset" >= d.next_offset) = 0,
         CASE WHEN count(*) FILTER (WHERE d."offset" >= d.next_offset) = 0
              THEN 'every dead letter lies before its partition''s stored offset'
              ELSE count(*) FILTER (WHERE d."offset" >= d.next_offset)
                   || ' dead letter(s) at or after the stored offset of their partition' END
         || CASE WHEN count(*) >= consistency._check_scan_limit()
                 THEN format(' (capped: the %s most recent dead letters, pg_consistency.integrity_max_rows)', count(*))
                 ELSE '' END
    FROM (SELECT d."offset",
                 (SELECT o.next_offset FROM consistency.consumer_offsets o
                   WHERE o.consumer = d.consumer AND o.topic = d.topic AND o.partition = d.partition) AS next_offset
            FROM (SELECT d.consumer, d.topic, d.partition, d."offset" FROM consistency.consumer_dead_letters d
                   ORDER BY d.id DESC LIMIT consistency._check_scan_limit()) d
          OFFSET 0) d  -- one probe per dead letter
$fn$;

-- Saga diagrams (docs/sagas.md).
CREATE FUNCTION consistency.saga_diagram(saga_id uuid) RETURNS text
  LANGUAGE c STABLE
  AS 'MODULE_PATHNAME', 'pgc_saga_diagram';

CREATE FUNCTION consistency.saga_definition_diagram(name text) RETURNS text
  LANGUAGE c STABLE
  AS 'MODULE_PATHNAME', 'pgc_saga_definition_diagram';

REVOKE ALL ON FUNCTION consistency.saga_diagram(uuid), consistency.saga_definition_diagram(text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.saga_diagram(uuid), consistency.saga_definition_diagram(text)
  TO consistency_reader;

-- A reply result other than completed/failed is refused with CS002.
CREATE OR REPLACE FUNCTION consistency._record_saga_reply(saga_id text, step text, attempt text, outcome text,
                                               result text, detail text)
  RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF $5 IS NULL OR $5 NOT IN ('unknown_saga', 'not_awaited', 'stale_attempt', 'invalid') THEN
    RAISE EXCEPTION 'invalid saga reply result %', COALESCE(pg_catalog.quote_literal(pg_catalog.left($5, 100)), 'NULL')
      USING ERRCODE = 'CS002', HINT = 'One of unknown_saga, not_awaited, stale_attempt, invalid.';
  END IF;
  INSERT INTO consistency.saga_reply_log (saga_id, step, attempt, outcome, result, detail)
  VALUES ($1, $2, $3, $4, $5, pg_catalog.left($6, 2000));
END
$fn$;


-- Consistency levels (docs/consistency.md).

-- The read horizon the primary's worker last published: a standby caps read_all at the
-- value it has replayed (its commit record follows, in WAL order, the commits of every
-- position below it). One row, advanced by the worker when the horizon moves.
CREATE TABLE consistency.published_horizon (
  only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  horizon      bigint NOT NULL CHECK (horizon >= 1),
  published_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
INSERT INTO consistency.published_horizon (horizon) VALUES (1);
COMMENT ON TABLE consistency.published_horizon IS
  'read_all on a standby returns positions below this horizon (published by the primary''s worker).';

CREATE FUNCTION consistency.session_token() RETURNS text
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'pgc_cs_session_token';

-- NULL stands for "no token yet": max_token(NULL, t) = t. STABLE, not IMMUTABLE: it refuses
-- tokens of another cluster or database, so the same text may fail elsewhere.
CREATE FUNCTION consistency.max_token(a text, b text) RETURNS text
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'pgc_cs_max_token';

CREATE FUNCTION consistency.wait_for_token(token text, timeout interval DEFAULT '5 seconds',
                                           subscription text DEFAULT NULL)
  RETURNS boolean LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_cs_wait_for_token';

-- The same wait holding no snapshot: CALL it outside an explicit transaction block.
CREATE PROCEDURE consistency.await_token(token text, timeout interval DEFAULT '5 seconds',
                                         subscription text DEFAULT NULL,
                                         INOUT reached boolean DEFAULT NULL)
  LANGUAGE c AS 'MODULE_PATHNAME', 'pgc_cs_await_token';

REVOKE ALL ON consistency.published_horizon FROM PUBLIC;
GRANT SELECT ON consistency.published_horizon TO consistency_reader;
REVOKE ALL ON FUNCTION consistency.session_token(), consistency.max_token(text, text),
  consistency.wait_for_token(text, interval, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE consistency.await_token(text, interval, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.session_token(), consistency.max_token(text, text),
  consistency.wait_for_token(text, interval, text) TO consistency_reader;
GRANT EXECUTE ON PROCEDURE consistency.await_token(text, interval, text, boolean) TO consistency_reader;

-- Latency histograms, saga counters and subscription lag (docs/operations.md, "Scraping with
-- Prometheus"); metrics() writes histogram families; the stream count is a gauge without _total.
CREATE OR REPLACE FUNCTION consistency._metrics_eventstore()
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

CREATE OR REPLACE FUNCTION consistency.metrics() RETURNS text
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
  FOR r IN EXECUTE 'SELECT m.*, CASE WHEN m.kind = ''histogram'' '
                   '  THEN regexp_replace(m.metric, ''_(bucket|sum|count)$'', '''') ELSE m.metric END AS family '
                   'FROM (' || sources || ') m '
                   'ORDER BY family, (m.labels - ''le'')::text, m.metric LIKE ''%\_count'', m.metric LIKE ''%\_sum'', '
                   '  (m.labels ->> ''le'')::float8' LOOP
    IF last_metric IS DISTINCT FROM r.family THEN
      out := out || format(E'# HELP %s %s\n# TYPE %s %s\n', r.family, r.help, r.family, r.kind);
      last_metric := r.family;
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

CREATE FUNCTION consistency._metrics_latency()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_metrics_latency';

-- One row per histogram series: cumulative counts per upper bound (the +Inf bucket is
-- `count`), the shape of postgres_exporter's HISTOGRAM columns
-- (docs/monitoring/postgres_exporter.yml).
CREATE FUNCTION consistency._latency_histograms(
    OUT metric text, OUT saga text, OUT step text, OUT outcome text,
    OUT bounds double precision[], OUT buckets bigint[], OUT sum double precision, OUT count bigint)
  RETURNS SETOF record
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_latency_histograms';

-- pg_consistency_sagas_total as rows: sagas of each definition that reached each status
-- since the server started.
CREATE FUNCTION consistency._saga_counts(OUT saga text, OUT status text, OUT total bigint)
  RETURNS SETOF record
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_saga_counts';

-- How old the first event a subscription has still to handle is (0 when it is caught up):
-- one probe of the events' primary key per subscription, computed at scrape time so that
-- a stalled or parked subscription's lag keeps growing.
CREATE FUNCTION consistency._metrics_subscription_lag()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'pg_consistency_subscription_lag_seconds', 'gauge',
         'Age of the oldest event the subscription has still to handle (0 when caught up).',
         jsonb_build_object('subscription', s.name),
         coalesce((SELECT greatest(extract(epoch FROM now() - e.created_at), 0)
                     FROM consistency.events e
                    WHERE e.global_position > s.position
                      AND (s.categories IS NULL OR e.category = ANY (s.categories))
                      AND (s.event_types IS NULL OR e.type = ANY (s.event_types))
                    ORDER BY e.global_position LIMIT 1), 0)::float8
    FROM consistency.subscription_state s
$$;

REVOKE ALL ON FUNCTION consistency._metrics_latency(), consistency._latency_histograms(),
  consistency._saga_counts(), consistency._metrics_subscription_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency._metrics_latency(), consistency._latency_histograms(),
  consistency._saga_counts(), consistency._metrics_subscription_lag() TO consistency_reader;

-- ---------------------------------------------------------------------------------
-- Function references survive pg_upgrade (docs/operations.md, "Upgrading PostgreSQL with pg_upgrade"):
-- pg_upgrade refuses tables with regprocedure columns, and does not keep pg_proc OIDs.
-- Each reference becomes its signature, its OID and the cluster that bound them
-- (src/sql/00_base.sql); the rows of 0.1.0 were bound in this cluster, by OID, and keep
-- calling the same functions. The views over the converted columns are made again.
-- ---------------------------------------------------------------------------------
-- Function references kept in tables (upcasters, apply functions, handlers): the
-- schema-qualified signature, the OID it is called by, and the system identifier of the
-- cluster that bound the one to the other. pg_upgrade keeps rows but not pg_proc OIDs, and
-- gives the cluster a new identifier; pg_dump keeps neither. A row written here by the
-- API is bound to the OID the caller named; a row bound elsewhere (restored by COPY, or
-- carried over by pg_upgrade) is bound again by its signature, once, as a restore would.
-- Between those, the OID is followed: a function dropped and created again under the same
-- name is not called (docs/operations.md, "Upgrading PostgreSQL with pg_upgrade").
CREATE FUNCTION consistency._system_identifier() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'pgc_system_identifier';

-- The signature a function reference is restored by: schema-qualified outside pg_catalog.
CREATE FUNCTION consistency._function_signature(fn oid) RETURNS text
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  AS $$ SELECT fn::pg_catalog.regprocedure::pg_catalog.text $$;

-- The function a signature names here, 0 when none (also for what is no signature: the
-- number a function dropped before it was converted left).
CREATE FUNCTION consistency._resolve_signature(signature text) RETURNS oid
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  RETURN COALESCE(pg_catalog.to_regprocedure(signature)::pg_catalog.oid, 0::pg_catalog.oid);
EXCEPTION WHEN OTHERS THEN
  RETURN 0::pg_catalog.oid;
END
$fn$;

-- The OID to call for a reference: the stored one when this cluster bound it, else what
-- its signature names here (0: nothing), until the worker binds the row again.
CREATE FUNCTION consistency._bound_function(signature text, fn oid, bound_cluster bigint) RETURNS oid
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  AS $$ SELECT CASE WHEN bound_cluster OPERATOR(pg_catalog.=) consistency._system_identifier() THEN fn
                    ELSE consistency._resolve_signature(signature) END $$;

-- BEFORE INSERT OR UPDATE OF <col>, <col>_oid, bound_cluster (TG_ARGV[0] = <col>): the API
-- writes <col>_oid with bound_cluster NULL, and the signature is recorded; a row that comes
-- with a signature only, or bound elsewhere (a restore's COPY, even from this cluster's
-- other database, or the worker's rebinding after pg_upgrade) gets the OID its signature
-- names here, 0 when none (its use then fails as for a dropped function).
CREATE FUNCTION consistency._bind_function_ref() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  col text := TG_ARGV[0];
  here bigint := consistency._system_identifier();
  r jsonb := pg_catalog.to_jsonb(NEW);
  bound bigint := (r OPERATOR(pg_catalog.->>) 'bound_cluster'::pg_catalog.text)::pg_catalog.int8;
  fn oid;
  signature text;
BEGIN
  IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND bound OPERATOR(pg_catalog.=) here THEN
    RETURN NEW;
  END IF;
  fn := (r OPERATOR(pg_catalog.->>) (col OPERATOR(pg_catalog.||) '_oid'::pg_catalog.text))::pg_catalog.oid;
  IF bound IS NULL AND fn IS NOT NULL THEN
    signature := consistency._function_signature(fn);
  ELSE
    signature := r OPERATOR(pg_catalog.->>) col;
    fn := consistency._resolve_signature(signature);
  END IF;
  NEW := pg_catalog.jsonb_populate_record(NEW, pg_catalog.jsonb_build_object(
           col, signature, col OPERATOR(pg_catalog.||) '_oid'::pg_catalog.text, fn, 'bound_cluster', here));
  RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION consistency._system_identifier(), consistency._function_signature(oid),
  consistency._resolve_signature(text), consistency._bound_function(text, oid, bigint),
  consistency._bind_function_ref() FROM PUBLIC;
-- The views show a reference as the function it names now (consistency.subscriptions).
GRANT EXECUTE ON FUNCTION consistency._system_identifier(), consistency._resolve_signature(text),
  consistency._bound_function(text, oid, bigint) TO consistency_reader;

DROP VIEW consistency.subscriptions;
DROP VIEW consistency.consumers;
-- The roles code runs as: regrole, so that pg_dump writes role names (10_eventstore.sql).
ALTER TABLE consistency.upcasters ALTER COLUMN registered_by TYPE regrole;
ALTER TABLE consistency.aggregates ALTER COLUMN registered_by TYPE regrole;
ALTER TABLE consistency.subscription_state ALTER COLUMN owner TYPE regrole;
ALTER TABLE consistency.consumer_state ALTER COLUMN owner TYPE regrole;
ALTER TABLE consistency.saga_definitions ALTER COLUMN owner TYPE regrole;
ALTER TABLE consistency.saga_instances ALTER COLUMN started_by TYPE regrole;
ALTER TABLE consistency.upcasters ADD COLUMN fn_oid oid, ADD COLUMN bound_cluster bigint;
UPDATE consistency.upcasters SET fn_oid = fn::pg_catalog.oid, bound_cluster = consistency._system_identifier();
ALTER TABLE consistency.upcasters ALTER COLUMN fn TYPE text USING consistency._function_signature(fn::pg_catalog.oid),
  ALTER COLUMN fn_oid SET NOT NULL, ALTER COLUMN bound_cluster SET NOT NULL;
ALTER TABLE consistency.aggregates ADD COLUMN apply_fn_oid oid, ADD COLUMN bound_cluster bigint;
UPDATE consistency.aggregates SET apply_fn_oid = apply_fn::pg_catalog.oid, bound_cluster = consistency._system_identifier();
ALTER TABLE consistency.aggregates ALTER COLUMN apply_fn TYPE text USING consistency._function_signature(apply_fn::pg_catalog.oid),
  ALTER COLUMN apply_fn_oid SET NOT NULL, ALTER COLUMN bound_cluster SET NOT NULL;
ALTER TABLE consistency.subscription_state ADD COLUMN handler_oid oid, ADD COLUMN bound_cluster bigint;
UPDATE consistency.subscription_state SET handler_oid = handler::pg_catalog.oid, bound_cluster = consistency._system_identifier();
ALTER TABLE consistency.subscription_state ALTER COLUMN handler TYPE text USING consistency._function_signature(handler::pg_catalog.oid),
  ALTER COLUMN handler_oid SET NOT NULL, ALTER COLUMN bound_cluster SET NOT NULL;
ALTER TABLE consistency.consumer_state ADD COLUMN handler_oid oid, ADD COLUMN bound_cluster bigint;
UPDATE consistency.consumer_state SET handler_oid = handler::pg_catalog.oid, bound_cluster = consistency._system_identifier();
ALTER TABLE consistency.consumer_state ALTER COLUMN handler TYPE text USING consistency._function_signature(handler::pg_catalog.oid),
  ALTER COLUMN handler_oid SET NOT NULL, ALTER COLUMN bound_cluster SET NOT NULL;
CREATE TRIGGER upcasters_bind_fn BEFORE INSERT OR UPDATE OF fn, fn_oid, bound_cluster
  ON consistency.upcasters FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('fn');
CREATE TRIGGER aggregates_bind_fn BEFORE INSERT OR UPDATE OF apply_fn, apply_fn_oid, bound_cluster
  ON consistency.aggregates FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('apply_fn');
CREATE TRIGGER subscription_state_bind_fn BEFORE INSERT OR UPDATE OF handler, handler_oid, bound_cluster
  ON consistency.subscription_state FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('handler');

CREATE TRIGGER consumer_state_bind_fn BEFORE INSERT OR UPDATE OF handler, handler_oid, bound_cluster
  ON consistency.consumer_state FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('handler');

CREATE VIEW consistency.subscriptions AS
  SELECT s.name, s.position, s.status, s.last_error,
         consistency._subscription_lag(s) AS lag,
         consistency._bound_function(s.handler, s.handler_oid, s.bound_cluster)::regprocedure AS handler,
         s.owner::regrole AS owner, s.categories, s.event_types,
         s.attempts, s.max_attempts, s.next_attempt_at, s.processed,
         s.created_at, s.updated_at
    FROM consistency.subscription_state s;
REVOKE ALL ON consistency.subscriptions FROM PUBLIC;
GRANT SELECT ON consistency.subscriptions TO consistency_reader;

CREATE VIEW consistency.consumers AS
SELECT c.name, c.topics,
       CASE WHEN c.status = 'paused' THEN 'paused'
            WHEN c.topic_error IS NOT NULL THEN 'failed'
            WHEN c.seen_at IS NULL OR c.seen_at < pg_catalog.now() - interval '30 seconds' THEN 'stopped'
            ELSE 'running' END AS status,
       (SELECT COALESCE(pg_catalog.sum(GREATEST(o.high_watermark - o.next_offset, 0)), 0)::bigint
          FROM consistency.consumer_offsets o WHERE o.consumer = c.name) AS lag,
       COALESCE(c.topic_error, c.last_error) AS last_error,
       consistency._bound_function(c.handler, c.handler_oid, c.bound_cluster)::regprocedure AS handler,
       pg_catalog.pg_get_userbyid(c.owner) AS owner, c.start_from,
       c.consumed, c.failed, c.dead_lettered, c.deduplicated, c.created_at
  FROM consistency.consumer_state c;
REVOKE ALL ON consistency.consumers FROM PUBLIC;
GRANT SELECT ON consistency.consumers TO consistency_reader;

CREATE OR REPLACE FUNCTION consistency._integrity_inbox()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT 'inbox_handlers_exist', count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every consumer handler and owner exists'
              ELSE count(*) || ' consumer(s) whose handler function or owner role is gone (e.g. '
                   || min(c.name) || ')' END
    FROM consistency.consumer_state c
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                      WHERE p.oid = consistency._bound_function(c.handler, c.handler_oid, c.bound_cluster))
      OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = c.owner)
  UNION ALL
  SELECT 'inbox_offsets_topics', count(*) = 0,
         CASE WHEN count(*) = 0 THEN 'every stored offset belongs to a topic of its consumer'
              ELSE count(*) || ' offset row(s) for topics their consumer no longer reads' END
    FROM consistency.consumer_offsets o JOIN consistency.consumer_state c ON c.name = o.consumer
   WHERE NOT (o.topic = ANY (c.topics))
  UNION ALL
  -- Bounded (docs/operations.md): the most recent dead letters by id (primary key, read
  -- backwards), each offset row probed by its primary key.
  SELECT 'inbox_dead_letters_behind_offsets', count(*) FILTER (WHERE d."offset" >= d.next_offset) = 0,
         CASE WHEN count(*) FILTER (WHERE d."offset" >= d.next_offset) = 0
              THEN 'every dead letter lies before its partition''s stored offset'
              ELSE count(*) FILTER (WHERE d."offset" >= d.next_offset)
                   || ' dead letter(s) at or after the stored offset of their partition' END
         || CASE WHEN count(*) >= consistency._check_scan_limit()
                 THEN format(' (capped: the %s most recent dead letters, pg_consistency.integrity_max_rows)', count(*))
                 ELSE '' END
    FROM (SELECT d."offset",
                 (SELECT o.next_offset FROM consistency.consumer_offsets o
                   WHERE o.consumer = d.consumer AND o.topic = d.topic AND o.partition = d.partition) AS next_offset
            FROM (SELECT d.consumer, d.topic, d.partition, d."offset" FROM consistency.consumer_dead_letters d
                   ORDER BY d.id DESC LIMIT consistency._check_scan_limit()) d
          OFFSET 0) d  -- one probe per dead letter
$fn$;

-- Saga definitions: the cluster whose OIDs `compiled` holds.
ALTER TABLE consistency.saga_definitions ADD COLUMN bound_cluster bigint;
UPDATE consistency.saga_definitions SET bound_cluster = consistency._system_identifier();
ALTER TABLE consistency.saga_definitions ALTER COLUMN bound_cluster SET NOT NULL;
-- A step function is called by the OID in `compiled`, which pg_dump's copy of the row
-- cannot carry to another database, nor pg_upgrade's to another cluster; the
-- schema-qualified name beside it can. The OIDs the names resolve to now: the same ones
-- for define_saga, the restored functions after a restore; 0 when a function is missing
-- (its step then fails and asks for the saga to be defined again).
CREATE FUNCTION consistency._saga_bind_steps(compiled jsonb) RETURNS jsonb
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  steps jsonb := '[]'::pg_catalog.jsonb;
  step jsonb;
  part text;
  fn regprocedure;
BEGIN
  IF pg_catalog.jsonb_typeof(compiled OPERATOR(pg_catalog.->) 'steps'::pg_catalog.text)
       IS DISTINCT FROM 'array' THEN
    RETURN compiled;
  END IF;
  FOR step IN SELECT s FROM pg_catalog.jsonb_array_elements(compiled OPERATOR(pg_catalog.->) 'steps'::pg_catalog.text) s
  LOOP
    FOREACH part IN ARRAY ARRAY['action', 'compensation']::pg_catalog.text[] LOOP
      IF pg_catalog.jsonb_typeof(step OPERATOR(pg_catalog.->) part) OPERATOR(pg_catalog.=) 'object'::pg_catalog.text
         AND (step OPERATOR(pg_catalog.->) part) OPERATOR(pg_catalog.?) 'function'::pg_catalog.text THEN
        fn := pg_catalog.to_regprocedure(((step OPERATOR(pg_catalog.->) part) OPERATOR(pg_catalog.->>) 'function'::pg_catalog.text)
                                         OPERATOR(pg_catalog.||) '(pg_catalog.uuid, pg_catalog.jsonb)'::pg_catalog.text);
        step := pg_catalog.jsonb_set(step, ARRAY[part, 'oid']::pg_catalog.text[],
                                     pg_catalog.to_jsonb(coalesce(fn::pg_catalog.oid::pg_catalog.int8, 0::pg_catalog.int8)));
      END IF;
    END LOOP;
    steps := steps OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(step);
  END LOOP;
  RETURN pg_catalog.jsonb_set(compiled, '{steps}'::pg_catalog.text[], steps);
END
$fn$;

-- Every row written (by define_saga, a restore, or the worker binding rows again after
-- pg_upgrade, 90_operations.sql) is bound here, in this cluster (bound_cluster).
CREATE OR REPLACE FUNCTION consistency._saga_definition_oids() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  NEW.compiled := consistency._saga_bind_steps(NEW.compiled);
  NEW.bound_cluster := consistency._system_identifier();
  RETURN NEW;
END
$fn$;

-- The compiled definition to run: as stored when this cluster bound it, else with the
-- OIDs its names resolve to here (until the worker binds the row again).
CREATE FUNCTION consistency._saga_bound_steps(compiled jsonb, bound_cluster bigint) RETURNS jsonb
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  AS $$ SELECT CASE WHEN bound_cluster OPERATOR(pg_catalog.=) consistency._system_identifier() THEN compiled
                    ELSE consistency._saga_bind_steps(compiled) END $$;
REVOKE ALL ON FUNCTION consistency._saga_bind_steps(jsonb), consistency._saga_definition_oids(),
  consistency._saga_bound_steps(jsonb, bigint) FROM PUBLIC;
DROP TRIGGER saga_definition_oids ON consistency.saga_definitions;
CREATE TRIGGER saga_definition_oids BEFORE INSERT OR UPDATE OF compiled, bound_cluster
  ON consistency.saga_definitions FOR EACH ROW EXECUTE FUNCTION consistency._saga_definition_oids();

-- Binds again, by signature, every function reference that another cluster bound (after
-- pg_upgrade: src/sql/00_base.sql); the triggers of each table do the binding. Each
-- database's worker runs it once when it starts. Returns the rows bound.
CREATE FUNCTION consistency._rebind_function_refs() RETURNS bigint
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  here bigint := consistency._system_identifier();
  total bigint := 0;
  n bigint;
BEGIN
  UPDATE consistency.upcasters SET bound_cluster = bound_cluster WHERE bound_cluster OPERATOR(pg_catalog.<>) here;
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total OPERATOR(pg_catalog.+) n;
  UPDATE consistency.aggregates SET bound_cluster = bound_cluster WHERE bound_cluster OPERATOR(pg_catalog.<>) here;
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total OPERATOR(pg_catalog.+) n;
  UPDATE consistency.subscription_state SET bound_cluster = bound_cluster WHERE bound_cluster OPERATOR(pg_catalog.<>) here;
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total OPERATOR(pg_catalog.+) n;
  UPDATE consistency.consumer_state SET bound_cluster = bound_cluster WHERE bound_cluster OPERATOR(pg_catalog.<>) here;
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total OPERATOR(pg_catalog.+) n;
  UPDATE consistency.saga_definitions SET bound_cluster = bound_cluster WHERE bound_cluster OPERATOR(pg_catalog.<>) here;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN total OPERATOR(pg_catalog.+) n;
END
$fn$;
REVOKE ALL ON FUNCTION consistency._rebind_function_refs() FROM PUBLIC;


-- consistency.worker_status() and consistency.workers show when each process last read
-- the configuration (settings_loaded_at). The function's OUT columns change, so it and
-- the view over it are created again (the SQL functions that call it name it at run time).
DROP VIEW consistency.workers;
DROP FUNCTION consistency.worker_status();
-- One row per pg_consistency background process (the launcher, each database's worker):
-- its state and counters, and when it last read the configuration (at start, then at
-- each reload it applied). consistency.workers shows it.
CREATE FUNCTION consistency.worker_status(
    OUT kind text, OUT database text, OUT pid int, OUT state text,
    OUT started_at timestamptz, OUT last_tick_at timestamptz,
    OUT ticks bigint, OUT errors bigint, OUT last_error text,
    OUT settings_loaded_at timestamptz)
  RETURNS SETOF record
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_worker_status';
CREATE VIEW consistency.workers AS SELECT * FROM consistency.worker_status();
GRANT EXECUTE ON FUNCTION consistency.worker_status() TO consistency_reader;
GRANT SELECT ON consistency.workers TO consistency_reader;

-- _rebind_function_refs(): one statement run over the tables that hold function references.
CREATE OR REPLACE FUNCTION consistency._rebind_function_refs() RETURNS bigint
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  here bigint := consistency._system_identifier();
  t pg_catalog.regclass;
  total bigint := 0;
  n bigint;
BEGIN
  -- The tables that hold function references (each has the binding trigger).
  FOREACH t IN ARRAY ARRAY['consistency.upcasters', 'consistency.aggregates', 'consistency.subscription_state',
                           'consistency.consumer_state', 'consistency.saga_definitions']::pg_catalog.regclass[] LOOP
    EXECUTE pg_catalog.format('UPDATE %s SET bound_cluster = bound_cluster '
                              'WHERE bound_cluster OPERATOR(pg_catalog.<>) $1', t) USING here;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total OPERATOR(pg_catalog.+) n;
  END LOOP;
  RETURN total;
END
$fn$;
