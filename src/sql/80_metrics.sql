-- pg_consistency: latency histograms, saga counters and subscription lag in seconds
-- (src/metrics). The histograms and counters live in shared memory, fed by the relay and
-- the saga code as they work; reading them scans no table.

-- Rows for consistency.metrics(): the histograms' samples (kind 'histogram', named
-- <family>_bucket / _sum / _count, `le` among the labels of buckets),
-- pg_consistency_sagas_total{saga,status} and the label tables' overflow counters.
CREATE FUNCTION consistency._metrics_latency()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_metrics_latency';

-- One row per histogram series: cumulative counts per upper bound (the +Inf bucket is
-- `count`), the shape of postgres_exporter's HISTOGRAM columns
-- (docs/monitoring/postgres_exporter.yml).
CREATE FUNCTION consistency._latency_histograms(
    OUT metric text, OUT saga text, OUT step text, OUT outcome text,
    OUT bounds double precision[], OUT buckets bigint[], OUT sum double precision, OUT count bigint)
  RETURNS SETOF record
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_latency_histograms';

-- pg_consistency_sagas_total as rows: sagas of each definition that reached each status
-- since the server started.
CREATE FUNCTION consistency._saga_counts(OUT saga text, OUT status text, OUT total bigint)
  RETURNS SETOF record
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_saga_counts';

-- How old the first event a subscription has still to handle is (0 when it is caught up):
-- one probe of the events' primary key per subscription, computed at scrape time so that
-- a stalled or parked subscription's lag keeps growing.
CREATE FUNCTION consistency._metrics_subscription_lag()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'pg_consistency_subscription_lag_seconds', 'gauge',
         'Age of the oldest event the subscription has still to handle (0 when caught up).',
         jsonb_build_object('subscription', s.name),
         coalesce((SELECT greatest(extract(epoch FROM now() - e.created_at), 0)
                     FROM consistency.events e
                    WHERE e.global_position > s.position
                      AND (s.categories IS NULL OR e.category = ANY (s.categories))
                      AND (s.event_types IS NULL OR e.type = ANY (s.event_types))
                    ORDER BY e.global_position LIMIT 1), 0)::float8
    FROM consistency.subscription_state s
$$;

REVOKE ALL ON FUNCTION consistency._metrics_latency(), consistency._latency_histograms(),
  consistency._saga_counts(), consistency._metrics_subscription_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency._metrics_latency(), consistency._latency_histograms(),
  consistency._saga_counts(), consistency._metrics_subscription_lag() TO consistency_reader;
