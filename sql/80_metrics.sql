-- Latency metrics: saga counters and histograms fed as sagas change (in shared memory,
-- applied at commit: nothing for rolled-back transactions or subtransactions), and their
-- exposition in consistency.metrics(). The regression database has no worker:
-- consistency._advance_sagas() runs the steps as a saga worker would.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_consistency;
DROP SCHEMA IF EXISTS probe CASCADE;
RESET client_min_messages;
CREATE SCHEMA probe;
CREATE FUNCTION probe.ok(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION probe.no(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused'; END $$;
SELECT consistency.define_saga('metrics_probe', '{"steps": [
  {"name": "first", "action": {"function": "probe.ok"}, "compensation": {"function": "probe.ok"}},
  {"name": "second", "action": {"function": "probe.no"}, "retry": {"max_attempts": 2, "backoff": "0 ms"}}]}') AS version;
SELECT consistency.define_saga('metrics_done', '{"steps": [{"name": "only", "action": {"function": "probe.ok"}}]}') AS version;

-- Starts: committed ones count, a rolled-back transaction's and subtransaction's do not.
SELECT consistency.start_saga('metrics_probe', '{}') IS NOT NULL AS started;
BEGIN;
SELECT consistency.start_saga('metrics_probe', '{"n": 2}') IS NOT NULL AS started_then_rolled_back;
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT consistency.start_saga('metrics_done', '{"n": 3}') IS NOT NULL AS started_in_rolled_back_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT consistency.start_saga('metrics_done', '{"n": 4}') IS NOT NULL AS started_in_kept_transaction;
COMMIT;
SELECT saga, status, total FROM consistency._saga_counts() WHERE saga LIKE 'metrics\_%' AND total > 0 ORDER BY 1, 2;

-- Run both to their end: metrics_probe fails its second step twice and compensates.
SELECT consistency._advance_sagas() AS advanced \gset
SELECT consistency._advance_sagas() AS advanced \gset
SELECT consistency._advance_sagas() AS advanced \gset
SELECT consistency._advance_sagas() AS advanced \gset
SELECT consistency._advance_sagas() AS advanced \gset
SELECT consistency._advance_sagas() AS advanced \gset
SELECT consistency._advance_sagas() AS advanced \gset
SELECT consistency._advance_sagas() AS advanced \gset
SELECT name, status FROM consistency.sagas WHERE name LIKE 'metrics\_%' ORDER BY name;
SELECT saga, status, total FROM consistency._saga_counts() WHERE saga LIKE 'metrics\_%' AND total > 0 ORDER BY 1, 2;
SELECT metric, saga, step, outcome, count, buckets[array_upper(buckets, 1)] = count AS last_bound_holds_all
  FROM consistency._latency_histograms() WHERE saga LIKE 'metrics\_%' ORDER BY 1, 2, 3, 4;
SELECT array_length(bounds, 1) AS bounds, bounds[1] AS first_bound, bounds[16] AS last_bound
  FROM consistency._latency_histograms() WHERE metric = 'pg_consistency_relay_commit_to_ack_seconds';

-- In metrics(): one HELP and TYPE per histogram family; per series the buckets by
-- ascending le, +Inf last, then _sum and _count.
SELECT count(*) AS type_lines FROM regexp_split_to_table(consistency.metrics(), E'\n') l
 WHERE l = '# TYPE pg_consistency_saga_step_seconds histogram';
SELECT regexp_replace(l, ' [0-9.e+-]+$', '') AS series_lines
  FROM regexp_split_to_table(consistency.metrics(), E'\n') WITH ORDINALITY AS t(l, n)
 WHERE l LIKE 'pg_consistency_saga_duration_seconds%saga="metrics_done"%'
   AND (l NOT LIKE '%_bucket%' OR l ~ 'le="(0\.001|300|\+Inf)"')
 ORDER BY n;
SELECT l AS counter_lines FROM regexp_split_to_table(consistency.metrics(), E'\n') l
 WHERE l LIKE 'pg_consistency_sagas_total{saga="metrics_done"%' OR l LIKE '# TYPE pg_consistency_sagas_total %';

-- Privileges: readers may read the figures.
SELECT has_function_privilege('consistency_reader', 'consistency._latency_histograms()', 'EXECUTE') AS reader_histograms,
       has_function_privilege('consistency_reader', 'consistency._saga_counts()', 'EXECUTE') AS reader_counts,
       has_function_privilege('public', 'consistency._metrics_latency()', 'EXECUTE') AS public_latency;
