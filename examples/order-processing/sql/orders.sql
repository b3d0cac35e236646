-- The orders service (database `orders`). It owns the orders: placement (idempotent per
-- key), the order aggregate in the event store, the order_fulfilment saga that drives the
-- other services over Kafka (orchestrated style) or the reactions to their events
-- (choreographed style), and a read model kept by a subscription.
CREATE SCHEMA orders;

-- Which saga style this run uses: 'orchestrated' or 'choreographed'.
CREATE TABLE orders.settings (
  one   boolean PRIMARY KEY DEFAULT true CHECK (one),
  style text NOT NULL CHECK (style IN ('orchestrated', 'choreographed'))
);
INSERT INTO orders.settings (style) VALUES ('orchestrated');

CREATE SEQUENCE orders.order_seq;
CREATE TABLE orders.orders (
  id              text PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  customer        text NOT NULL,
  sku             text NOT NULL,
  qty             int NOT NULL CHECK (qty > 0),
  amount          numeric(12,2) NOT NULL CHECK (amount > 0),
  region          text NOT NULL,
  status          text NOT NULL DEFAULT 'placed'
                  CHECK (status IN ('placed', 'reserved', 'paid', 'shipped', 'compensating',
                                    'completed', 'cancelled', 'failed', 'aborted')),
  reason          text,
  saga_id         uuid UNIQUE,
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at     timestamptz
);

-- Every submission, first or repeated, and the order it got: duplicates must get the same.
CREATE TABLE orders.submissions (
  id              bigserial PRIMARY KEY,
  idempotency_key text NOT NULL,
  order_id        text NOT NULL REFERENCES orders.orders,
  duplicate       boolean NOT NULL,
  at              timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- What clients saw when they read their order back (read-your-writes through the pooler).
CREATE TABLE orders.read_checks (
  order_id text NOT NULL,
  reached  boolean NOT NULL,
  seen     boolean NOT NULL,
  at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The order aggregate: a fold of the order's events.
CREATE FUNCTION orders.apply_order(state jsonb, type text, data jsonb) RETURNS jsonb
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE type
    WHEN 'OrderCreated'      THEN data || jsonb_build_object('status', 'placed')
    WHEN 'InventoryReserved' THEN state || jsonb_build_object('status', 'reserved')
    WHEN 'PaymentProcessed'  THEN state || jsonb_build_object('status', 'paid', 'payment', data->'payment')
    WHEN 'OrderShipped'      THEN state || jsonb_build_object('status', 'shipped', 'tracking', data->'tracking')
    WHEN 'OrderCompleted'    THEN state || jsonb_build_object('status', 'completed')
    WHEN 'InventoryReleased' THEN state || jsonb_build_object('released', true)
    WHEN 'PaymentRefunded'   THEN state || jsonb_build_object('refunded', true)
    WHEN 'OrderCancelled'    THEN state || jsonb_build_object('status', 'cancelled', 'reason', data->'reason')
    WHEN 'OrderFailed'       THEN state || jsonb_build_object('status', 'failed', 'reason', data->'reason')
    ELSE state END;
$$;

-- OrderCreated evolved: schema 1 carried `total_cents` (integer cents, euros implied);
-- schema 2 carries `amount` (decimal) and `currency`. Old events are read upcast.
CREATE FUNCTION orders.order_created_v1_to_v2(data jsonb) RETURNS jsonb
  LANGUAGE sql IMMUTABLE AS $$
  SELECT (data - 'total_cents')
         || jsonb_build_object('amount', round((data->>'total_cents')::numeric / 100, 2), 'currency', 'EUR');
$$;

-- The read model, kept by the subscription `order-view` (exactly once per event).
CREATE TABLE orders.order_view (
  order_id   text PRIMARY KEY,
  customer   text NOT NULL,
  amount     numeric(12,2) NOT NULL,
  currency   text NOT NULL,
  status     text NOT NULL,
  events     int NOT NULL,
  last_event text NOT NULL,
  position   bigint NOT NULL
);
CREATE FUNCTION orders.project(global_position bigint, stream text, version bigint, type text,
                               data jsonb, metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF type = 'OrderCreated' THEN
    INSERT INTO orders.order_view VALUES (data->>'order_id', data->>'customer', (data->>'amount')::numeric,
                                          data->>'currency', 'placed', 1, type, global_position);
  ELSE
    UPDATE orders.order_view
       SET events = events + 1, last_event = type, position = global_position,
           status = CASE type WHEN 'InventoryReserved' THEN 'reserved' WHEN 'PaymentProcessed' THEN 'paid'
                              WHEN 'OrderShipped' THEN 'shipped' WHEN 'OrderCompleted' THEN 'completed'
                              WHEN 'OrderCancelled' THEN 'cancelled' WHEN 'OrderFailed' THEN 'failed'
                              ELSE status END
     WHERE order_id = data->>'order_id';
  END IF;
END $$;

-- Appends one event to the order's stream (the route publishes it to orders.events in the
-- same transaction) and moves the order's status.
CREATE FUNCTION orders.record(p_order text, p_type text, p_data jsonb, p_status text, p_reason text DEFAULT NULL)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM consistency.append_event('order-' || p_order, NULL, p_type, p_data || jsonb_build_object('order_id', p_order));
  UPDATE orders.orders
     SET status = p_status, reason = coalesce(p_reason, reason),
         finished_at = CASE WHEN p_status IN ('completed', 'cancelled', 'failed', 'aborted')
                            THEN clock_timestamp() END
   WHERE id = p_order;
END $$;

-- Placement: the order, its OrderCreated event (routed to Kafka) and, orchestrated, its saga
-- commit together. The same idempotency key returns the same order; the same key with a
-- different order is refused.
CREATE FUNCTION orders.place_order(p_key text, p_customer text, p_sku text, p_qty int,
                                   p_amount numeric, p_region text) RETURNS text
  LANGUAGE plpgsql AS $$
DECLARE
  o orders.orders;
  data jsonb;
BEGIN
  INSERT INTO orders.orders (id, idempotency_key, customer, sku, qty, amount, region)
  VALUES ('o' || nextval('orders.order_seq'), p_key, p_customer, p_sku, p_qty, p_amount, p_region)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING * INTO o;
  IF o.id IS NULL THEN
    SELECT * INTO STRICT o FROM orders.orders WHERE idempotency_key = p_key;
    IF (o.customer, o.sku, o.qty, o.amount, o.region) IS DISTINCT FROM (p_customer, p_sku, p_qty, p_amount, p_region) THEN
      RAISE EXCEPTION 'idempotency key "%" was used for another order (%)', p_key, o.id USING ERRCODE = '22023';
    END IF;
    INSERT INTO orders.submissions (idempotency_key, order_id, duplicate) VALUES (p_key, o.id, true);
    RETURN o.id;
  END IF;
  INSERT INTO orders.submissions (idempotency_key, order_id, duplicate) VALUES (p_key, o.id, false);
  data := jsonb_build_object('order_id', o.id, 'customer', p_customer, 'sku', p_sku, 'qty', p_qty,
                             'amount', p_amount, 'currency', 'EUR', 'region', p_region);
  PERFORM consistency.append_event('order-' || o.id, 0, 'OrderCreated', data);
  IF (SELECT style FROM orders.settings) = 'orchestrated' THEN
    UPDATE orders.orders SET saga_id = consistency.start_saga('order_fulfilment', data, 'order/' || o.id)
     WHERE id = o.id;
  END IF;
  RETURN o.id;
END $$;

-- A client's read back of its own order, recorded for the report.
CREATE FUNCTION orders.record_read(p_order text, p_reached boolean, p_seen boolean) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO orders.read_checks (order_id, reached, seen) VALUES (p_order, p_reached, p_seen) $$;

------------------------------------------------------------------------------------------
-- Orchestrated: the order_fulfilment saga. Every step is a command to another service over
-- Kafka; the answers come back on saga.replies through consistency.handle_saga_reply.
-- Shipping gets a short timeout: a carrier that does not answer fails the order.
SELECT consistency.define_saga('order_fulfilment', $${
  "steps": [
    {"name": "reserve_inventory",
     "action": {"topic": "inventory.commands", "command": "ReserveInventory"},
     "compensation": {"topic": "inventory.commands", "command": "ReleaseInventory"},
     "timeout": "30 seconds", "retry": {"max_attempts": 2, "backoff": "200 milliseconds"}},
    {"name": "process_payment",
     "action": {"topic": "payment.commands", "command": "ChargePayment"},
     "compensation": {"topic": "payment.commands", "command": "RefundPayment"},
     "timeout": "30 seconds", "retry": {"max_attempts": 2, "backoff": "200 milliseconds"}},
    {"name": "create_shipment",
     "action": {"topic": "shipping.commands", "command": "CreateShipment"},
     "compensation": {"topic": "shipping.commands", "command": "CancelShipment"},
     "timeout": "8 seconds", "retry": {"max_attempts": 2, "backoff": "200 milliseconds"}}
  ],
  "timeout": "10 minutes"}$$);

-- The saga's audit stream (category `saga`) turned into the order's own events: the
-- subscription `order-lifecycle` runs this exactly once per saga event, in order.
CREATE FUNCTION orders.on_saga_event(global_position bigint, stream text, version bigint, type text,
                                     data jsonb, metadata jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  o orders.orders;
BEGIN
  SELECT * INTO o FROM orders.orders WHERE saga_id = substr(stream, 6)::uuid;
  IF o.id IS NULL THEN
    RETURN;
  END IF;
  CASE type
    WHEN 'StepSucceeded' THEN
      CASE data->>'step'
        WHEN 'reserve_inventory' THEN PERFORM orders.record(o.id, 'InventoryReserved', jsonb_build_object('sku', o.sku, 'qty', o.qty), 'reserved');
        WHEN 'process_payment'   THEN PERFORM orders.record(o.id, 'PaymentProcessed', jsonb_build_object('amount', o.amount, 'payment', data->'output'->'payment'), 'paid');
        WHEN 'create_shipment'   THEN PERFORM orders.record(o.id, 'OrderShipped', jsonb_build_object('tracking', data->'output'->'tracking'), 'shipped');
        ELSE NULL;
      END CASE;
    WHEN 'StepFailed' THEN
      -- The step failed for good (no retry left): why the order will be cancelled.
      IF data->'retry_in_ms' = 'null'::jsonb THEN
        UPDATE orders.orders SET reason = (data->>'step') || ': ' || left(coalesce(data->>'error', ''), 200)
         WHERE id = o.id;
      END IF;
    WHEN 'CompensationStarted' THEN
      UPDATE orders.orders SET status = 'compensating',
             reason = coalesce(reason, (data->>'failed_step') || ': ' || left(coalesce(data->>'error', ''), 200))
       WHERE id = o.id;
    WHEN 'CompensationSucceeded' THEN
      CASE data->>'step'
        WHEN 'reserve_inventory' THEN PERFORM orders.record(o.id, 'InventoryReleased', '{}', 'compensating');
        WHEN 'process_payment'   THEN PERFORM orders.record(o.id, 'PaymentRefunded', '{}', 'compensating');
        ELSE NULL;
      END CASE;
    WHEN 'SagaCompleted' THEN
      PERFORM orders.record(o.id, 'OrderCompleted', '{}', 'completed');
    WHEN 'SagaCompensated' THEN
      PERFORM orders.record(o.id, 'OrderCancelled',
        jsonb_build_object('reason', (SELECT reason FROM orders.orders WHERE id = o.id)), 'cancelled');
    WHEN 'SagaFailed' THEN
      PERFORM orders.record(o.id, 'OrderFailed', jsonb_build_object('reason', data->>'error'), 'failed', data->>'error');
    WHEN 'SagaAborted' THEN
      PERFORM orders.record(o.id, 'OrderFailed', jsonb_build_object('reason', data->>'reason'), 'aborted', data->>'reason');
    ELSE NULL;
  END CASE;
END $$;

------------------------------------------------------------------------------------------
-- Choreographed: no saga; the order follows the other services' events, and cancels itself
-- (OrderCancelled, which inventory and payment undo their part on) when one says no.
CREATE FUNCTION orders.cancel(p_order text, p_reason text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM orders.orders WHERE id = p_order AND finished_at IS NULL) THEN
    PERFORM orders.record(p_order, 'OrderCancelled', jsonb_build_object('reason', p_reason), 'cancelled', p_reason);
  END IF;
END $$;

CREATE FUNCTION orders.on_service_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  o orders.orders;
BEGIN
  SELECT * INTO o FROM orders.orders WHERE id = v->>'order_id' FOR UPDATE;
  IF o.id IS NULL OR o.finished_at IS NOT NULL THEN
    RETURN;  -- an answer after the order ended: the cancellation already undoes it
  END IF;
  CASE h->>'ce_type'
    WHEN 'InventoryReserved' THEN PERFORM orders.record(o.id, 'InventoryReserved', jsonb_build_object('sku', o.sku, 'qty', o.qty), 'reserved');
    WHEN 'OutOfStock'        THEN PERFORM orders.cancel(o.id, 'reserve_inventory: out of stock');
    WHEN 'PaymentProcessed'  THEN PERFORM orders.record(o.id, 'PaymentProcessed', jsonb_build_object('amount', o.amount, 'payment', v->'payment'), 'paid');
    WHEN 'PaymentDeclined'   THEN PERFORM orders.cancel(o.id, 'process_payment: ' || (v->>'reason'));
    WHEN 'ShipmentCreated'   THEN
      PERFORM orders.record(o.id, 'OrderShipped', jsonb_build_object('tracking', v->'tracking'), 'shipped');
      PERFORM orders.record(o.id, 'OrderCompleted', '{}', 'completed');
    WHEN 'ShipmentFailed'    THEN PERFORM orders.cancel(o.id, 'create_shipment: ' || (v->>'reason'));
    ELSE NULL;
  END CASE;
END $$;

------------------------------------------------------------------------------------------
-- Wiring. History from before OrderCreated evolved: three orders written with schema 1,
-- before the upcaster exists (and before the route, so they stay out of Kafka).
SELECT consistency.append_event('order-legacy' || i, 0, 'OrderCreated',
         jsonb_build_object('order_id', 'legacy' || i, 'customer', 'archive', 'sku', 'book', 'qty', 1,
                            'total_cents', 1990 + i))
  FROM generate_series(1, 3) i;
SELECT consistency.register_upcaster('OrderCreated', 1, 'orders.order_created_v1_to_v2(jsonb)');
SELECT consistency.register_aggregate('order', 'orders.apply_order(jsonb,text,jsonb)', '{}', 10);
SELECT consistency.route_events('order', 'orders.events');
SELECT consistency.create_subscription('order-view', 'orders.project(bigint,text,bigint,text,jsonb,jsonb)',
                                       ARRAY['order']);
SELECT consistency.create_subscription('order-lifecycle', 'orders.on_saga_event(bigint,text,bigint,text,jsonb,jsonb)',
                                       ARRAY['saga']);
SELECT consistency.create_consumer('saga-replies', ARRAY['saga.replies'],
                                   'consistency.handle_saga_reply(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('orders-from-services', ARRAY['inventory.events', 'payment.events', 'shipping.events'],
                                   'orders.on_service_event(text,int,bigint,text,jsonb,jsonb)');
