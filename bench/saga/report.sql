-- Figures of one run (:run). Throughput: completed sagas from the first start to the last
-- completion. Pickup: from the commit of start_saga to the moment the first step ran.
-- Step latency: from the moment a step was ready - the commit of its predecessor, or,
-- for a step chained in its predecessor's transaction, the end of the predecessor's run
-- - to the commit of its outcome. Saga latency: start commit to completion commit.
WITH s AS (
  SELECT id, created_at, updated_at, status, data FROM consistency.saga_instances
   WHERE name = 'bench3' AND data->>'run' = :'run'
), ev AS (
  SELECT e.stream, e.version, e.type, e.data->>'step' AS step, e.xmin::text AS x,
         pg_xact_commit_timestamp(e.xmin) AS committed
    FROM consistency.events e JOIN s ON e.stream = 'saga-' || s.id
), seq AS (
  SELECT ev.*, lag(x) OVER w AS prev_x, lag(committed) OVER w AS prev_committed,
         lag(step) OVER w AS prev_step
    FROM ev WINDOW w AS (PARTITION BY stream ORDER BY version)
), steps AS (
  SELECT q.committed - CASE WHEN q.prev_x = q.x
                            THEN (s.data->>(CASE q.prev_step WHEN 'one' THEN 't1' ELSE 't2' END))::timestamptz
                            ELSE q.prev_committed END AS d
    FROM seq q JOIN s ON q.stream = 'saga-' || s.id
   WHERE q.type = 'StepSucceeded'
), pickup AS (
  SELECT (s.data->>'t1')::timestamptz - ev.committed AS d
    FROM s JOIN ev ON ev.stream = 'saga-' || s.id AND ev.type = 'SagaStarted'
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
