-- Foundation: install, version, roles, and the C++/PostgreSQL error boundary.
CREATE EXTENSION pg_consistency;

SELECT consistency.version() ~ '^[0-9]+\.[0-9]+\.[0-9]+$' AS version_is_semver;
SELECT extversion = consistency.version() AS library_matches_sql
  FROM pg_extension WHERE extname = 'pg_consistency';

SELECT rolname FROM pg_roles WHERE rolname LIKE 'consistency\_%' ORDER BY 1;
SELECT pg_has_role('consistency_admin', 'consistency_writer', 'MEMBER') AS admin_is_writer,
       pg_has_role('consistency_writer', 'consistency_reader', 'MEMBER') AS writer_is_reader,
       pg_has_role('consistency_reader', 'consistency_writer', 'MEMBER') AS reader_is_not_writer;

-- Reports SQLSTATE, message, detail and hint of a statement's error.
\i sql/include/helpers.sql

-- Each C++ failure becomes an ERROR with its SQLSTATE; none crashes the backend.
SELECT pg_temp.error_of($$SELECT consistency._test_raise('contract')$$);
SELECT pg_temp.error_of($$SELECT consistency._test_raise('std')$$);
SELECT pg_temp.error_of($$SELECT consistency._test_raise('bad_alloc')$$);
SELECT pg_temp.error_of($$SELECT consistency._test_raise('unknown')$$);
SELECT pg_temp.error_of($$SELECT consistency._test_raise('pg')$$);
SELECT consistency._test_raise('none');

-- The error reaches the client as a plain ERROR and the session goes on.
\set VERBOSITY terse
SELECT consistency._test_raise('contract');
SELECT 1 AS still_working;

-- PostgreSQL errors caught inside C++ are counted, not leaked.
SELECT consistency._test_guarded_errors(100) AS caught;

-- Without a worker serving this database, the status says what the worker does.
SELECT count(*) >= 1 AS has_rows FROM consistency.worker_status();
