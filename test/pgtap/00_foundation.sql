-- Foundation: schema, roles, grants, and the boundary's memory behaviour.
BEGIN;
SELECT plan(13);

SELECT has_schema('consistency');
SELECT has_function('consistency', 'version', ARRAY[]::text[]);
SELECT has_role('consistency_admin');
SELECT has_role('consistency_writer');
SELECT has_role('consistency_reader');
SELECT is(consistency.version(), (SELECT extversion FROM pg_extension WHERE extname = 'pg_consistency'),
          'library version matches the installed SQL version');
SELECT ok(has_schema_privilege('consistency_reader', 'consistency', 'USAGE'), 'reader may use the schema');
SELECT ok(NOT has_schema_privilege('public', 'consistency', 'USAGE'), 'PUBLIC may not use the schema');
SELECT ok(NOT has_function_privilege('consistency_writer', 'consistency._test_raise(text)', 'EXECUTE'),
          'diagnostic functions are not granted to writers');

SELECT throws_ok($$SELECT consistency._test_raise('contract')$$, 'CS002',
                 'test: invalid argument from C++', 'our C++ error keeps its SQLSTATE');

-- 20,000 PostgreSQL errors caught in C++ frames that own heap memory: if a longjmp
-- skipped a destructor, each would leak ~5 kB (100 MB in all).
SELECT is(consistency._test_guarded_errors(2000), 2000::bigint, 'warm-up round caught');
CREATE TEMP TABLE mem AS SELECT consistency._test_backend_memory() AS before_bytes;
SELECT is(consistency._test_guarded_errors(20000), 20000::bigint, 'every guarded error is caught');
SELECT cmp_ok(consistency._test_backend_memory() - (SELECT before_bytes FROM mem), '<', 1048576::bigint,
              'backend memory grows by less than 1 MB over 20,000 guarded errors');

SELECT * FROM finish();
ROLLBACK;
