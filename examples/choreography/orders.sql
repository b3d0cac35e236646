-- The orders service (its own database). It owns the orders and reacts to what inventory
-- and payment publish; it publishes OrderCreated and OrderFailed through its outbox.
CREATE SCHEMA orders;
CREATE TABLE orders.orders (
  id         text PRIMARY KEY,
  customer   text NOT NULL,
  sku        text NOT NULL,
  qty        int NOT NULL CHECK (qty > 0),
  amount     numeric(12,2) NOT NULL CHECK (amount > 0),
  status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'reserved', 'completed', 'failed')),
  reason     text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The order and its OrderCreated event commit together, or neither does.
CREATE FUNCTION orders.place_order(p_id text, p_customer text, p_sku text, p_qty int, p_amount numeric)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO orders.orders (id, customer, sku, qty, amount) VALUES (p_id, p_customer, p_sku, p_qty, p_amount);
  PERFORM consistency.publish('orders.events', p_id,
    jsonb_build_object('order_id', p_id, 'customer', p_customer, 'sku', p_sku, 'qty', p_qty, 'amount', p_amount),
    jsonb_build_object('ce_type', 'OrderCreated', 'ce_id', 'OrderCreated/' || p_id));
END $$;

-- A pending or reserved order fails once; OrderFailed tells inventory to release its
-- reservation.
CREATE FUNCTION orders.fail(p_id text, p_reason text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE orders.orders SET status = 'failed', reason = p_reason, updated_at = now()
   WHERE id = p_id AND status IN ('pending', 'reserved');
  IF FOUND THEN
    PERFORM consistency.publish('orders.events', p_id, jsonb_build_object('order_id', p_id, 'reason', p_reason),
      jsonb_build_object('ce_type', 'OrderFailed', 'ce_id', 'OrderFailed/' || p_id));
  END IF;
END $$;

-- Handlers run as the role that created the consumer, with search_path = pg_catalog,
-- pg_temp: every name of ours is schema-qualified. Events of other types are ignored.
CREATE FUNCTION orders.on_inventory_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CASE h->>'ce_type'
    WHEN 'InventoryReserved' THEN
      -- Payment may have answered first (another topic): only a pending order moves.
      UPDATE orders.orders SET status = 'reserved', updated_at = now()
       WHERE id = v->>'order_id' AND status = 'pending';
    WHEN 'OutOfStock' THEN
      PERFORM orders.fail(v->>'order_id', 'out of stock');
    ELSE NULL;
  END CASE;
END $$;

CREATE FUNCTION orders.on_payment_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CASE h->>'ce_type'
    WHEN 'PaymentProcessed' THEN
      UPDATE orders.orders SET status = 'completed', updated_at = now()
       WHERE id = v->>'order_id' AND status IN ('pending', 'reserved');
    WHEN 'PaymentDeclined' THEN
      PERFORM orders.fail(v->>'order_id', 'payment declined: ' || (v->>'reason'));
    ELSE NULL;
  END CASE;
END $$;

-- One consumer per source: the ce_id dedupe is per consumer.
SELECT consistency.create_consumer('orders-from-inventory', ARRAY['inventory.events'],
  'orders.on_inventory_event(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('orders-from-payment', ARRAY['payment.events'],
  'orders.on_payment_event(text,int,bigint,text,jsonb,jsonb)');
