-- pg_consistency: sagas (orchestration)

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- Every version of every definition. `definition` is what the user gave; `compiled`
-- is the validated form the worker runs (defaults applied, durations in milliseconds,
-- functions schema-qualified and with the OID the worker calls). Steps run as `owner`,
-- the role that defined it.
CREATE TABLE consistency.saga_definitions (
  name        text        NOT NULL,
  version     int         NOT NULL CHECK (version > 0),
  definition  jsonb       NOT NULL,
  compiled    jsonb       NOT NULL,
  owner       regrole     NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  bound_cluster bigint    NOT NULL,  -- the cluster whose OIDs `compiled` holds (00_base.sql)
  PRIMARY KEY (name, version)
);

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
CREATE FUNCTION consistency._saga_definition_oids() RETURNS trigger
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
CREATE TRIGGER saga_definition_oids BEFORE INSERT OR UPDATE OF compiled, bound_cluster
  ON consistency.saga_definitions FOR EACH ROW EXECUTE FUNCTION consistency._saga_definition_oids();

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
  started_by         regrole     NOT NULL,             -- the role that called start_saga
  correlation_id     text,                             -- in effect at start_saga; NULL = none (docs/correlation.md)
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX saga_instances_idempotency ON consistency.saga_instances (name, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX saga_instances_due ON consistency.saga_instances (next_run_at)
  WHERE status IN ('running', 'compensating');
-- The most recently started sagas, for the bounded integrity check (created_at never
-- changes, so this index costs one insert per saga and keeps step updates HOT).
CREATE INDEX saga_instances_created ON consistency.saga_instances (created_at);

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
SELECT pg_catalog.pg_extension_config_dump('consistency.saga_worker_stats', '');

CREATE VIEW consistency.sagas AS
  SELECT id, name, definition_version, status, current_step, attempts, data, last_error,
         created_at, updated_at
    FROM consistency.saga_instances;

-- The C functions run as their caller: define_saga records the caller as the steps'
-- role, start_saga the caller as the saga's starter, and the replies and operator
-- functions check the caller's rights on the saga (src/saga/pg_saga.cpp,
-- require_saga_rights). Each takes the extension owner's rights itself, under a
-- catalog-only search path, only for its own catalog statements (pgc::pg::OwnerScope):
-- no SET clause, so no GUC round trip per call.
CREATE FUNCTION consistency.define_saga(name text, definition jsonb) RETURNS int
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_define_saga';

CREATE FUNCTION consistency.start_saga(name text, input jsonb, idempotency_key text DEFAULT NULL)
  RETURNS uuid
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_start_saga';

CREATE FUNCTION consistency.complete_step(saga_id uuid, step text, output jsonb DEFAULT '{}')
  RETURNS void
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_complete_step';

CREATE FUNCTION consistency.fail_step(saga_id uuid, step text, reason text) RETURNS void
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_fail_step';

CREATE FUNCTION consistency.retry_saga(saga_id uuid) RETURNS void
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_retry_saga';

CREATE FUNCTION consistency.abort_saga(saga_id uuid, reason text) RETURNS void
  LANGUAGE c VOLATILE
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
-- worker would (steps still run as their saga's role), each saga in a subtransaction of
-- its own. For tests and for databases the worker does not serve. Superuser only; its
-- own statements run with the search path a saga worker pins.
CREATE FUNCTION consistency._advance_sagas(max_sagas int DEFAULT 100) RETURNS int
  LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
  AS 'MODULE_PATHNAME', 'pgc_advance_sagas';
REVOKE ALL ON FUNCTION consistency._advance_sagas(int) FROM PUBLIC;
