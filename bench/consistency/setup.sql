-- bench/consistency: procedures the standby runs (created on the primary, replicated).
-- Each commits between looks, so none holds a snapshot that replay would have to wait for.

-- Baseline: notices replay passing `lsn` by looking every 0.2 ms.
CREATE PROCEDURE bench_spin(lsn pg_lsn, INOUT started float8 DEFAULT NULL, INOUT seen float8 DEFAULT NULL,
                            INOUT looks int DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
  started := extract(epoch FROM clock_timestamp());
  looks := 0;
  LOOP
    EXIT WHEN pg_last_wal_replay_lsn() >= lsn;
    looks := looks + 1;
    COMMIT;
    PERFORM pg_sleep(0.0002);
  END LOOP;
  seen := extract(epoch FROM clock_timestamp());
END $$;

-- The measured wait: await_token, then the time it returned.
CREATE PROCEDURE bench_wait(token text, INOUT started float8 DEFAULT NULL, INOUT seen float8 DEFAULT NULL,
                            INOUT reached boolean DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
  started := extract(epoch FROM clock_timestamp());
  CALL consistency.await_token(token, '10 s', NULL, reached);
  seen := extract(epoch FROM clock_timestamp());
END $$;

-- When read_all on the standby first returns position `pos` (looking every 1 ms).
CREATE PROCEDURE bench_read_all(pos bigint, INOUT started float8 DEFAULT NULL, INOUT seen float8 DEFAULT NULL)
  LANGUAGE plpgsql AS $$
BEGIN
  started := extract(epoch FROM clock_timestamp());
  LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM consistency.read_all(pos - 1, 1) WHERE global_position = pos);
    COMMIT;
    PERFORM pg_sleep(0.001);
  END LOOP;
  seen := extract(epoch FROM clock_timestamp());
END $$;
