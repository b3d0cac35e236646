-- Figures of one run (:'run'): throughput from first start to last completion; step
-- latency = from the commit that made a step ready (the saga's start, or the previous
-- step) to the commit of the step; pickup = from that commit until the step function ran.
WITH s AS (
  SELECT id, created_at, updated_at, status, data FROM consistency.saga_instances
   WHERE name = 'bench3' AND data->>'run' = :'run'
), ev AS (
  SELECT e.stream, e.version, e.type, pg_xact_commit_timestamp(e.xmin) AS committed
    FROM consistency.events e JOIN s ON e.stream = 'saga-' || s.id
), steps AS (
  SELECT type, committed - lag(committed) OVER (PARTITION BY stream ORDER BY version) AS d FROM ev
), pickup AS (
  SELECT (s.data->>'t1')::timestamptz - ev.committed AS d
    FROM s JOIN ev ON ev.stream = 'saga-' || s.id AND ev.type = 'SagaStarted'
)
SELECT (SELECT count(*) FROM s) AS sagas,
       (SELECT count(*) FROM s WHERE status = 'completed') AS completed,
       round(((SELECT count(*) FROM s WHERE status = 'completed')
              / extract(epoch FROM (SELECT max(updated_at) - min(created_at) FROM s)))::numeric, 1) AS sagas_per_s,
       round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000)
                FROM steps WHERE type = 'StepSucceeded')::numeric, 2) AS step_p50_ms,
       round((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000)
                FROM steps WHERE type = 'StepSucceeded')::numeric, 2) AS step_p99_ms,
       round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM pickup)::numeric, 2) AS pickup_p50_ms,
       round((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d) * 1000) FROM pickup)::numeric, 2) AS pickup_p99_ms;
