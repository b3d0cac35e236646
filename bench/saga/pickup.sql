-- Idle pickup measured from the client's side: from the moment start_saga's commit was
-- acknowledged to pgbench (its per-transaction log, read from standard input) to the
-- moment the first step ran. Both clocks are this machine's. A negative value: the worker
-- was already running the step when the acknowledgement reached the client.
CREATE TEMP TABLE acks (client int, tx int, latency_us bigint, script int, sec bigint, usec bigint,
                        lag_us bigint);
\copy acks FROM pstdin WITH (FORMAT text, DELIMITER ' ')
WITH a AS (
  SELECT row_number() OVER (ORDER BY sec, usec) AS n, to_timestamp(sec + usec / 1e6) AS acked FROM acks
), s AS (
  SELECT row_number() OVER (ORDER BY created_at) AS n, (data->>'t1')::timestamptz AS t1
    FROM consistency.saga_instances WHERE name = 'bench3' AND data->>'run' = :'run'
)
SELECT count(*),
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t1 - acked) * 1000))::numeric, 2),
       round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM t1 - acked) * 1000))::numeric, 2)
  FROM a JOIN s USING (n);
