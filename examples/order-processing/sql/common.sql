-- Run in every service database after CREATE EXTENSION pg_consistency, before the service's
-- own file. It counts what the outbox accepted, per topic, in the transaction that
-- accepted it, so that the report can compare it with what Kafka holds.
CREATE SCHEMA ops;
CREATE TABLE ops.outbox_accepted (
  topic    text PRIMARY KEY,
  messages bigint NOT NULL
);
CREATE FUNCTION ops.count_outbox() RETURNS trigger LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO ops.outbox_accepted AS a VALUES (NEW.topic, 1)
    ON CONFLICT (topic) DO UPDATE SET messages = a.messages + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER count_outbox AFTER INSERT ON consistency.outbox
  FOR EACH ROW EXECUTE FUNCTION ops.count_outbox();

-- A service answers a saga command on the one reply topic. The ce_id names the answer
-- (service, saga, step, phase, attempt): the orchestrator's reply consumer reads answers of
-- three databases, whose outbox ids would collide in its dedupe.
CREATE FUNCTION ops.reply(service text, h jsonb, outcome text, body jsonb) RETURNS void
  LANGUAGE sql AS $$
  SELECT consistency.publish('saga.replies', h->>'saga_id', body,
    jsonb_build_object('saga_id', h->>'saga_id', 'step', h->>'step', 'attempt', h->>'attempt',
                       'outcome', outcome, 'ce_type', 'SagaReply',
                       'ce_id', service || '/' || (h->>'saga_id') || '/' || (h->>'step') || '/'
                                || coalesce(h->>'phase', 'action') || '/' || (h->>'attempt')));
$$;

-- A service's own event, on its own topic, keyed by order (one order's events stay in order).
CREATE FUNCTION ops.emit(topic text, type text, order_id text, body jsonb) RETURNS void
  LANGUAGE sql AS $$
  SELECT consistency.publish(topic, order_id, body || jsonb_build_object('order_id', order_id),
    jsonb_build_object('ce_type', type, 'ce_id', type || '/' || order_id));
$$;
