-- Installing pg_consistency in database "shop"
CREATE EXTENSION pg_consistency;
\pset footer off
SELECT consistency.version() AS version;
-- The worker for "shop" starts once the database and the extension exist.
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM consistency.worker_status()
                       WHERE database = 'shop' AND state = 'running');
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT kind, database, pid, state FROM consistency.worker_status() ORDER BY kind DESC, database;
SELECT backend_type, datname FROM pg_stat_activity WHERE backend_type LIKE 'pg_consistency%' ORDER BY 1;
