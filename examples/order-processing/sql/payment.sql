-- The payment service (database `payment`). A customer is charged at most once per order
-- and refunded at most once per charge: the idempotency keys are unique, and a payment row
-- per order fences every later command (a charge arriving after a refund or a cancellation
-- is refused).
CREATE SCHEMA payment;
CREATE TABLE payment.accounts (
  customer text PRIMARY KEY,
  initial  numeric(12,2) NOT NULL,
  balance  numeric(12,2) NOT NULL CHECK (balance >= 0)
);
CREATE TABLE payment.payments (
  order_id        text PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,            -- 'charge/<order>'
  customer        text,
  amount          numeric(12,2) CHECK (amount > 0),
  status          text NOT NULL CHECK (status IN ('charged', 'declined', 'voided')),
  at              timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK (status <> 'charged' OR (customer IS NOT NULL AND amount IS NOT NULL))
);
CREATE TABLE payment.refunds (
  order_id        text PRIMARY KEY REFERENCES payment.payments,
  idempotency_key text NOT NULL UNIQUE,            -- 'refund/<order>'
  amount          numeric(12,2) NOT NULL CHECK (amount > 0),
  at              timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Charge once per order. Returns the payment's status afterwards.
CREATE FUNCTION payment.charge(p_order text, p_customer text, p_amount numeric) RETURNS text
  LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  SELECT status INTO st FROM payment.payments WHERE order_id = p_order FOR UPDATE;
  IF st IS NOT NULL THEN
    RETURN st;
  END IF;
  UPDATE payment.accounts SET balance = balance - p_amount WHERE customer = p_customer AND balance >= p_amount;
  st := CASE WHEN FOUND THEN 'charged' ELSE 'declined' END;
  INSERT INTO payment.payments (order_id, idempotency_key, customer, amount, status)
  VALUES (p_order, 'charge/' || p_order, p_customer, p_amount, st);
  RETURN st;
END $$;

-- Refund a charge once; an order never charged is voided so that a late charge is refused.
CREATE FUNCTION payment.refund(p_order text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  p payment.payments;
BEGIN
  SELECT * INTO p FROM payment.payments WHERE order_id = p_order FOR UPDATE;
  IF p.order_id IS NULL THEN
    INSERT INTO payment.payments (order_id, idempotency_key, status) VALUES (p_order, 'charge/' || p_order, 'voided');
  ELSIF p.status = 'charged' THEN
    INSERT INTO payment.refunds (order_id, idempotency_key, amount) VALUES (p_order, 'refund/' || p_order, p.amount)
      ON CONFLICT (order_id) DO NOTHING;
    IF FOUND THEN
      UPDATE payment.accounts SET balance = balance + p.amount WHERE customer = p.customer;
    END IF;
  END IF;
END $$;

CREATE FUNCTION payment.on_command(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  d jsonb := v->'data';
  st text;
BEGIN
  CASE v->>'command'
    WHEN 'ChargePayment' THEN
      st := payment.charge(d->>'order_id', d->>'customer', (d->>'amount')::numeric);
      IF st = 'charged' THEN
        PERFORM ops.reply('payment', h, 'completed', jsonb_build_object('payment', 'charge/' || (d->>'order_id')));
      ELSE
        PERFORM ops.reply('payment', h, 'failed',
          jsonb_build_object('reason', CASE st WHEN 'declined' THEN 'payment declined' ELSE 'order ' || st END));
      END IF;
    WHEN 'RefundPayment' THEN
      PERFORM payment.refund(d->>'order_id');
      PERFORM ops.reply('payment', h, 'completed', '{"refunded": true}');
    ELSE
      RAISE EXCEPTION 'unknown command %', v->>'command';
  END CASE;
END $$;

-- Choreographed: charge when inventory reserved the goods.
CREATE FUNCTION payment.on_inventory_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  IF h->>'ce_type' = 'InventoryReserved' THEN
    st := payment.charge(v->>'order_id', v->>'customer', (v->>'amount')::numeric);
    IF st = 'charged' THEN
      PERFORM ops.emit('payment.events', 'PaymentProcessed', v->>'order_id',
                       jsonb_build_object('payment', 'charge/' || (v->>'order_id'), 'region', v->>'region'));
    ELSE
      PERFORM ops.emit('payment.events', 'PaymentDeclined', v->>'order_id',
                       jsonb_build_object('reason', CASE st WHEN 'declined' THEN 'payment declined' ELSE 'order ' || st END));
    END IF;
  END IF;
END $$;

-- Both styles: a cancelled order is refunded (or voided).
CREATE FUNCTION payment.on_order_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF h->>'ce_type' IN ('OrderCancelled', 'OrderFailed') THEN
    PERFORM payment.refund(v->>'order_id');
  END IF;
END $$;

SELECT consistency.create_consumer('payment-commands', ARRAY['payment.commands'],
                                   'payment.on_command(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('payment-from-inventory', ARRAY['inventory.events'],
                                   'payment.on_inventory_event(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('payment-from-orders', ARRAY['orders.events'],
                                   'payment.on_order_event(text,int,bigint,text,jsonb,jsonb)');
