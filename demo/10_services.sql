-- Four services share one database: orders, inventory, payment, shipping
CREATE SCHEMA orders;
CREATE SCHEMA inventory;
CREATE SCHEMA payment;
CREATE SCHEMA shipping;

CREATE TABLE inventory.stock (sku text PRIMARY KEY, on_hand int NOT NULL CHECK (on_hand >= 0));
CREATE TABLE inventory.reservations (saga_id uuid PRIMARY KEY, sku text NOT NULL, qty int NOT NULL);
CREATE TABLE payment.accounts (customer text PRIMARY KEY, balance numeric NOT NULL CHECK (balance >= 0));
CREATE TABLE payment.charges (saga_id uuid PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL,
                              refunded boolean NOT NULL DEFAULT false);
CREATE TABLE orders.orders (id uuid PRIMARY KEY, customer text NOT NULL, sku text NOT NULL, qty int NOT NULL,
                            amount numeric NOT NULL, status text NOT NULL DEFAULT 'pending');
CREATE TABLE orders.totals (customer text PRIMARY KEY, orders int NOT NULL, amount numeric NOT NULL);

INSERT INTO inventory.stock VALUES ('book', 10), ('lamp', 1);
INSERT INTO payment.accounts VALUES ('alice', 500), ('bob', 20), ('carol', 300);

-- Saga steps: fn(saga_id uuid, data jsonb) RETURNS jsonb, run by the worker in the transaction
-- that records the step's outcome.
CREATE FUNCTION inventory.reserve(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  UPDATE inventory.stock SET on_hand = on_hand - (data->>'qty')::int WHERE sku = data->>'sku';
  INSERT INTO inventory.reservations VALUES (saga_id, data->>'sku', (data->>'qty')::int);
  RETURN jsonb_build_object('reserved', true);
END $$;
-- A compensation may run more than once: the reservation goes with the stock it returns.
CREATE FUNCTION inventory.release(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  WITH released AS (DELETE FROM inventory.reservations r WHERE r.saga_id = release.saga_id RETURNING r.sku, r.qty)
  UPDATE inventory.stock s SET on_hand = on_hand + released.qty FROM released WHERE s.sku = released.sku;
  SELECT jsonb_build_object('reserved', false);
$$;
CREATE FUNCTION payment.charge(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  UPDATE payment.accounts SET balance = balance - (data->>'amount')::numeric
   WHERE customer = data->>'customer';   -- the CHECK refuses an overdraft: a failed attempt
  INSERT INTO payment.charges VALUES (saga_id, data->>'customer', (data->>'amount')::numeric);
  RETURN jsonb_build_object('paid', true);
END $$;
-- A charge stays on record, marked refunded (once, however often the compensation runs).
CREATE FUNCTION payment.refund(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  WITH back AS (UPDATE payment.charges c SET refunded = true
                 WHERE c.saga_id = refund.saga_id AND NOT c.refunded RETURNING c.customer, c.amount)
  UPDATE payment.accounts a SET balance = balance + back.amount FROM back WHERE a.customer = back.customer;
  SELECT jsonb_build_object('paid', false);
$$;
CREATE FUNCTION orders.accept(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  UPDATE orders.orders SET status = 'accepted' WHERE id = (data->>'order_id')::uuid;
  SELECT '{}'::jsonb;
$$;
CREATE FUNCTION orders.cancel(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  UPDATE orders.orders SET status = 'cancelled' WHERE id = (data->>'order_id')::uuid;
  SELECT consistency.append_event('order-' || (data->>'order_id'), NULL, 'OrderCancelled', data);
  SELECT '{}'::jsonb;
$$;
CREATE FUNCTION orders.complete(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  UPDATE orders.orders SET status = 'completed' WHERE id = (data->>'order_id')::uuid;
  SELECT consistency.append_event('order-' || (data->>'order_id'), NULL, 'OrderCompleted', data);
  SELECT '{}'::jsonb;
$$;

-- A projection kept by a subscription: exactly once per event, in global order.
CREATE FUNCTION orders.project(global_position bigint, stream text, version bigint, type text,
                               data jsonb, metadata jsonb) RETURNS void LANGUAGE sql AS $$
  INSERT INTO orders.totals VALUES (data->>'customer', 1, (data->>'amount')::numeric)
  ON CONFLICT (customer) DO UPDATE SET orders = totals.orders + 1, amount = totals.amount + excluded.amount;
$$;

-- The order service's entry point: one transaction records the order, its first event, and
-- starts the saga. If it rolls back, none of it happened.
CREATE FUNCTION orders.place(customer text, sku text, qty int, amount numeric) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  id uuid := gen_random_uuid();
  data jsonb := jsonb_build_object('order_id', id, 'customer', customer, 'sku', sku, 'qty', qty, 'amount', amount);
BEGIN
  INSERT INTO orders.orders VALUES (id, customer, sku, qty, amount);
  PERFORM consistency.append_event('order-' || id, 0, 'OrderPlaced', data);
  PERFORM consistency.start_saga('order_fulfilment', data, 'order-' || id);
  RETURN id;
END $$;
