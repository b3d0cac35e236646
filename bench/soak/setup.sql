-- The soak's application: what the load writes to, the subscription, the saga and the
-- inbox consumer. Every table here stays bounded (counters and upserts), so any growth
-- seen in the samples is pg_consistency's own.
CREATE EXTENSION IF NOT EXISTS pg_consistency;
CREATE SCHEMA soak;

-- Units of work done per load kind, bumped in the transaction that does the work
-- (one pgbench client per kind, so no two writers share a row).
CREATE TABLE soak.done (kind text PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
INSERT INTO soak.done (kind) VALUES ('append'), ('publish'), ('saga'), ('twopc'), ('inbox'), ('projected');

-- Subscription: a projection of the account-* streams.
CREATE TABLE soak.balances (account text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL);
CREATE FUNCTION soak.project(global_position bigint, stream text, version bigint, type text,
                             data jsonb, metadata jsonb) RETURNS void LANGUAGE sql AS $$
  INSERT INTO soak.balances VALUES (stream, (data->>'amount')::bigint, 1)
  ON CONFLICT (account) DO UPDATE SET total = balances.total + excluded.total, events = balances.events + 1;
  UPDATE soak.done SET n = n + 1 WHERE kind = 'projected';
$$;
SELECT consistency.create_subscription('soak_balances', 'soak.project(bigint,text,bigint,text,jsonb,jsonb)',
                                       ARRAY['account']);

-- Saga: reserve -> charge -> confirm. Orders flagged "fail" are refused by charge on every
-- attempt, so reserve is compensated and the saga ends compensated.
CREATE TABLE soak.stock (sku text PRIMARY KEY, reserved bigint NOT NULL DEFAULT 0);
INSERT INTO soak.stock SELECT 'sku-' || g, 0 FROM generate_series(0, 99) g;
CREATE FUNCTION soak.reserve(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  UPDATE soak.stock SET reserved = reserved + 1 WHERE sku = data->>'sku';
  SELECT jsonb_build_object('reserved', true);
$$;
CREATE FUNCTION soak.release(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  UPDATE soak.stock SET reserved = reserved - 1 WHERE sku = data->>'sku';
  SELECT jsonb_build_object('reserved', false);
$$;
CREATE FUNCTION soak.charge(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  IF (data->>'fail')::boolean THEN
    RAISE EXCEPTION 'card declined for %', data->>'sku';
  END IF;
  RETURN jsonb_build_object('charged', true);
END $$;
CREATE FUNCTION soak.confirm(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('confirmed', true);
$$;
SELECT consistency.define_saga('soak_order', $${"steps": [
  {"name": "reserve", "action": {"function": "soak.reserve"}, "compensation": {"function": "soak.release"},
   "retry": {"max_attempts": 3, "backoff": "100 milliseconds"}},
  {"name": "charge", "action": {"function": "soak.charge"}, "compensation": null,
   "retry": {"max_attempts": 2, "backoff": "100 milliseconds"}},
  {"name": "confirm", "action": {"function": "soak.confirm"}, "compensation": null}],
  "timeout": "5 minutes"}$$);

-- Inbox: a consumer of the topic the publish load writes (delivered by the relay).
CREATE FUNCTION soak.consume(topic text, partition int, "offset" bigint, key text, value jsonb,
                             headers jsonb) RETURNS void LANGUAGE sql AS $$
  UPDATE soak.done SET n = n + 1 WHERE kind = 'inbox';
$$;
