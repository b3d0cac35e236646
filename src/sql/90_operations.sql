-- pg_consistency: operations (Prometheus metrics and integrity checks across pillars)

-- Each pillar contributes consistency._metrics_<pillar>() and consistency._integrity_<pillar>();
-- these two functions gather whatever pillars are installed.

-- The worker pillar's rows of consistency.metrics(): is each database's worker up, and
-- its tick errors.
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

-- Every _metrics_<pillar>() row in the Prometheus text format, grouped by metric. Rows of
-- kind 'histogram' are samples named <family>_bucket/_sum/_count: one HELP and TYPE for
-- the family, then per series its buckets by ascending `le`, the sum and the count.
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

-- Whether a worker runs in this database, then every _integrity_<pillar>() row.
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

-- Binds again, by signature, every function reference that another cluster bound (after
-- pg_upgrade: src/sql/00_base.sql); the triggers of each table do the binding. Each
-- database's worker runs it once when it starts. Returns the rows bound.
CREATE FUNCTION consistency._rebind_function_refs() RETURNS bigint
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
REVOKE ALL ON FUNCTION consistency._rebind_function_refs() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION consistency.metrics(), consistency.check_integrity() TO consistency_reader;
GRANT EXECUTE ON FUNCTION consistency._metrics_worker() TO consistency_reader;
