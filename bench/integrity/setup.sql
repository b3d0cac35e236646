\set ON_ERROR_STOP on
CREATE EXTENSION pg_consistency;
CREATE FUNCTION public.bench_step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION public.bench_handler(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT consistency.define_saga('bench', '{"steps": [{"name": "one", "action": {"function": "public.bench_step"}}]}');
INSERT INTO consistency.consumer_state (name, topics, handler, raw_value, owner, start_from)
VALUES ('bench-in', ARRAY['bench.topic'],
        -- The signature schema-qualified, as create_consumer records it: the binding trigger
        -- resolves it with search_path = pg_catalog (a regprocedure cast would drop public.).
        'public.bench_handler(text,integer,bigint,text,jsonb,jsonb)', false, 10, 'earliest');
INSERT INTO consistency.consumer_offsets (consumer, topic, partition, next_offset) VALUES ('bench-in', 'bench.topic', 0, 0);
