-- Benchmark schema: the extension's store, plus two baselines with the same table shape
-- (same columns, generated category, indexes): the physical limit and the usual PL/pgSQL
-- event store function.
CREATE EXTENSION IF NOT EXISTS pg_consistency;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

-- Physical limit: the same row INSERT + per-stream version UPDATE, in one statement.
CREATE SEQUENCE bench.limit_seq;
CREATE TABLE bench.limit_streams (LIKE consistency.streams INCLUDING ALL) WITH (fillfactor = 80);
CREATE TABLE bench.limit_events (LIKE consistency.events INCLUDING ALL);
ALTER TABLE bench.limit_events ALTER global_position SET DEFAULT nextval('bench.limit_seq');

-- The usual PL/pgSQL shape: lock the stream row, check, insert, update.
CREATE SEQUENCE bench.pl_seq;
CREATE TABLE bench.pl_streams (LIKE consistency.streams INCLUDING ALL) WITH (fillfactor = 80);
CREATE TABLE bench.pl_events (LIKE consistency.events INCLUDING ALL);
ALTER TABLE bench.pl_events ALTER global_position SET DEFAULT nextval('bench.pl_seq');
CREATE FUNCTION bench.pl_append_event(p_stream text, p_expected bigint, p_type text, p_data jsonb,
                                      p_metadata jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v bigint;
BEGIN
  IF p_stream IS NULL OR p_stream = '' THEN RAISE EXCEPTION 'invalid stream' USING ERRCODE = 'CS002'; END IF;
  IF p_type IS NULL OR p_type = '' THEN RAISE EXCEPTION 'invalid type' USING ERRCODE = 'CS002'; END IF;
  IF jsonb_typeof(p_data) IS DISTINCT FROM 'object' THEN RAISE EXCEPTION 'invalid data' USING ERRCODE = 'CS002'; END IF;
  SELECT version INTO v FROM bench.pl_streams WHERE stream = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    v := 0;
    INSERT INTO bench.pl_streams (stream, version) VALUES (p_stream, 0);
  END IF;
  IF p_expected IS NOT NULL AND p_expected <> v THEN
    RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'CS001';
  END IF;
  INSERT INTO bench.pl_events (stream, version, event_id, type, data, metadata)
    VALUES (p_stream, v + 1, gen_random_uuid(), p_type, p_data, coalesce(p_metadata, '{}'));
  UPDATE bench.pl_streams SET version = v + 1, updated_at = now() WHERE stream = p_stream;
  RETURN v + 1;
END $$;

-- 10,000 existing streams for the single-event appends, in every store.
INSERT INTO consistency.streams (stream, version) SELECT 'acct-' || i, 0 FROM generate_series(1, 10000) i;
INSERT INTO bench.limit_streams (stream, version) SELECT 'acct-' || i, 0 FROM generate_series(1, 10000) i;
INSERT INTO bench.pl_streams (stream, version) SELECT 'acct-' || i, 0 FROM generate_series(1, 10000) i;

-- A 1,000-event stream to read.
SELECT consistency.append_events('read-1', 0,
  (SELECT jsonb_agg(jsonb_build_object('type', 'Bench', 'data', jsonb_build_object('amount', 42, 'sku', 'ABC-123', 'i', i)))
     FROM generate_series(1, 1000) i));

-- Aggregates over streams of 1k, 10k and 100k events, with and without snapshots.
CREATE FUNCTION bench.apply_sum(state jsonb, type text, data jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('sum', (state->>'sum')::bigint + (data->>'n')::bigint,
                            'count', (state->>'count')::bigint + 1)
$$;
SELECT consistency.register_aggregate('aggsnap', 'bench.apply_sum(jsonb,text,jsonb)', '{"sum": 0, "count": 0}', 100);
SELECT consistency.register_aggregate('aggnosnap', 'bench.apply_sum(jsonb,text,jsonb)', '{"sum": 0, "count": 0}', 0);
DO $$
DECLARE len int; cat text; b int;
BEGIN
  FOREACH cat IN ARRAY ARRAY['aggsnap', 'aggnosnap'] LOOP
    FOREACH len IN ARRAY ARRAY[1000, 10000, 100000] LOOP
      FOR b IN 0 .. len / 1000 - 1 LOOP
        PERFORM consistency.append_events(cat || '-' || len, NULL,
          (SELECT jsonb_agg(jsonb_build_object('type', 'Add', 'data', jsonb_build_object('n', 1)))
             FROM generate_series(1, 1000)));
      END LOOP;
    END LOOP;
  END LOOP;
END $$;
VACUUM ANALYZE;
CHECKPOINT;
