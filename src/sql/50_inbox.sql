-- pg_consistency: the inbox (Kafka into PostgreSQL exactly once). See docs/inbox.md.

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- One row per consumer. handler is a function reference (00_base.sql), called by its OID; owner is
-- the role that created the consumer, as whom the handler runs. generation is bumped by
-- reset_consumer: the worker then re-reads the stored offsets.
CREATE TABLE consistency.consumer_state (
  name          text PRIMARY KEY,
  topics        text[] NOT NULL,
  handler       text NOT NULL,
  handler_oid   oid NOT NULL,
  bound_cluster bigint NOT NULL,
  raw_value     boolean NOT NULL,           -- the handler takes bytea (else jsonb)
  owner         regrole NOT NULL,
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

CREATE TRIGGER consumer_state_bind_fn BEFORE INSERT OR UPDATE OF handler, handler_oid, bound_cluster
  ON consistency.consumer_state FOR EACH ROW EXECUTE FUNCTION consistency._bind_function_ref('handler');

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

-- Records a saga reply handle_saga_reply could not apply. Writers may call it, so a
-- result outside the four the log knows is refused with CS002 (not a NOT NULL violation).
CREATE FUNCTION consistency._record_saga_reply(saga_id text, step text, attempt text, outcome text,
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
       consistency._bound_function(c.handler, c.handler_oid, c.bound_cluster)::regprocedure AS handler,
       pg_catalog.pg_get_userbyid(c.owner) AS owner, c.start_from,
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
