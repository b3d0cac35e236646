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

-- One row per pg_consistency background process (the launcher, each database's worker):
-- its state and counters. consistency.workers shows it.
CREATE FUNCTION consistency.worker_status(
    OUT kind text, OUT database text, OUT pid int, OUT state text,
    OUT started_at timestamptz, OUT last_tick_at timestamptz,
    OUT ticks bigint, OUT errors bigint, OUT last_error text)
  RETURNS SETOF record
  LANGUAGE c VOLATILE
  AS 'MODULE_PATHNAME', 'pgc_worker_status';

CREATE VIEW consistency.workers AS SELECT * FROM consistency.worker_status();

-- The most rows one integrity check reads from a table that grows with traffic
-- (pg_consistency.integrity_max_rows): _integrity_<pillar>() checks the most recent rows
-- up to this many, through an index, and says so in its detail (docs/operations.md).
CREATE FUNCTION consistency._check_scan_limit() RETURNS bigint
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  AS $$ SELECT GREATEST(1, COALESCE(NULLIF(pg_catalog.current_setting('pg_consistency.integrity_max_rows', true),
                                             '')::pg_catalog.int8, 10000)) $$;

GRANT EXECUTE ON FUNCTION consistency.version() TO PUBLIC;
GRANT EXECUTE ON FUNCTION consistency._check_scan_limit() TO PUBLIC;
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
