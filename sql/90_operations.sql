-- Operations: Prometheus exposition and integrity checks.
SELECT consistency.metrics() ~ E'# HELP pg_consistency_worker_up [^\n]+\n# TYPE pg_consistency_worker_up gauge\n' AS has_typed_metric;
-- Every sample line is `name{labels} value` or `name value` (label values escaped, values
-- as float8 prints them: 1.5e-05 too).
SELECT bool_and(line ~ '^[a-z_]+(\{[a-z_]+="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\})? (-?[0-9.e+-]+|NaN)$') AS samples_well_formed
  FROM regexp_split_to_table(rtrim(consistency.metrics(), E'\n'), E'\n') AS line
 WHERE line NOT LIKE '#%';
-- The regression database has no worker of its own: the check says so.
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'worker_running';
SELECT count(*) = count(DISTINCT check_name) AS check_names_unique FROM consistency.check_integrity();
