-- Saga benchmark schema: accounts updated by three-step sagas (function steps) and, as
-- the baseline, by clients running the same three UPDATEs one transaction each.
CREATE EXTENSION IF NOT EXISTS pg_consistency;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.accounts (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0)
  WITH (fillfactor = 80);
INSERT INTO bench.accounts (id) SELECT g FROM generate_series(1, :naccounts) g;
VACUUM ANALYZE bench.accounts;

-- Each step is one small UPDATE; it returns when it ran (t1/t2/t3) for the latency figures.
CREATE FUNCTION bench.step1(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  UPDATE bench.accounts SET balance = balance + 1 WHERE id = (data->>'a')::int;
  RETURN jsonb_build_object('t1', clock_timestamp());
END $$;
CREATE FUNCTION bench.step2(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  UPDATE bench.accounts SET balance = balance + 1 WHERE id = (data->>'b')::int;
  RETURN jsonb_build_object('t2', clock_timestamp());
END $$;
CREATE FUNCTION bench.step3(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  UPDATE bench.accounts SET balance = balance + 1 WHERE id = (data->>'c')::int;
  RETURN jsonb_build_object('t3', clock_timestamp());
END $$;

SELECT consistency.define_saga('bench3', '{"steps": [
  {"name": "one", "action": {"function": "bench.step1"}},
  {"name": "two", "action": {"function": "bench.step2"}},
  {"name": "three", "action": {"function": "bench.step3"}}]}');
