-- Figures of one run (:run). Throughput: completed sagas from the first start to the last
-- completion. Pickup: from the commit of start_saga to the moment the first step ran.
-- Step latency: from the moment a step was ready - the commit of its predecessor, or,
-- for a step chained in its predecessor's transaction, the end of the predecessor's run
-- - to the commit of its outcome. Saga latency: start commit to completion commit.
-- (One join of sagas to their events; every figure is derived from that row set.)
WITH s AS MATERIALIZED (
  SELECT 'saga-' || id AS stream, created_at, updated_at, status, data
    FROM consistency.saga_instances
   WHERE name = 'bench3' AND data->>'run' = :'run'
), ev AS MATERIALIZED (
  SELECT e.stream, e.type, s.data AS sdata,
         pg_xact_commit_timestamp(e.xmin) AS committed,
         e.xmin::text = lag(e.xmin::text) OVER w AS chained,
         lag(pg_xact_commit_timestamp(e.xmin)) OVER w AS prev_committed,
         lag(e.data->>'step') OVER w AS prev_step
    FROM s JOIN consistency.events e ON e.stream = s.stream
  WINDOW w AS (PARTITION BY e.stream ORDER BY e.version)
), steps AS (
  SELECT committed - CASE WHEN chained
                          THEN (sdata->>(CASE prev_step WHEN 'one' THEN 't1' ELSE 't2' END))::timestamptz
                          ELSE prev_committed END AS d
    FROM ev WHERE type = 'StepSucceeded'
), pickup AS (
  SELECT (sdata->>'t1')::timestamptz - committed AS d FROM ev WHERE type = 'SagaStarted'
), whole AS (
  SELECT max(committed) FILTER (WHERE type = 'SagaCompleted') - min(committed) FILTER (WHERE type = 'SagaStarted') AS d
    FROM ev GROUP BY stream
)
SELECT (SELECT count(*) FROM s) AS sagas,
       (SELECT count(*) FROM s WHERE status = 'completed') AS completed,
       round(((SELECT count(*) FROM s WHERE status = 'completed')
              / extract(epoch FROM (SELECT max(updated_at) - min(created_at) FROM s)))::numeric, 1) AS sagas_per_s,
       round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM steps)::numeric, 2) AS step_p50_ms,
       round((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM steps)::numeric, 2) AS step_p99_ms,
       round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM pickup)::numeric, 2) AS pickup_p50_ms,
       round((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM pickup)::numeric, 2) AS pickup_p99_ms,
       round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM whole)::numeric, 2) AS saga_p50_ms,
       round((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM whole)::numeric, 2) AS saga_p99_ms;
