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

-- The most rows one integrity check reads from a table that grows with traffic
-- (pg_consistency.integrity_max_rows): _integrity_<pillar>() checks the most recent rows
-- up to this many, through an index, and says so in its detail (docs/operations.md).
CREATE FUNCTION consistency._check_scan_limit() RETURNS bigint
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  AS $$ SELECT GREATEST(1, COALESCE(NULLIF(pg_catalog.current_setting('pg_consistency.integrity_max_rows', true),
                                             '')::pg_catalog.int8, 10000)) $$;

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
