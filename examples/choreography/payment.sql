-- The payment service (its own database). It charges the customer once the stock is
-- reserved, and publishes PaymentProcessed or PaymentDeclined.
CREATE SCHEMA payment;
CREATE TABLE payment.accounts (
  customer text PRIMARY KEY,
  balance  numeric(12,2) NOT NULL CHECK (balance >= 0)
);
CREATE TABLE payment.payments (
  order_id text PRIMARY KEY,
  customer text NOT NULL,
  amount   numeric(12,2) NOT NULL,
  status   text NOT NULL CHECK (status IN ('charged', 'declined'))
);

CREATE FUNCTION payment.on_inventory_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  charged boolean;
BEGIN
  IF h->>'ce_type' IS DISTINCT FROM 'InventoryReserved'
     OR EXISTS (SELECT 1 FROM payment.payments WHERE order_id = v->>'order_id') THEN
    RETURN;
  END IF;
  UPDATE payment.accounts SET balance = balance - (v->>'amount')::numeric
   WHERE customer = v->>'customer' AND balance >= (v->>'amount')::numeric;
  charged := FOUND;
  INSERT INTO payment.payments VALUES (v->>'order_id', v->>'customer', (v->>'amount')::numeric,
                                       CASE WHEN charged THEN 'charged' ELSE 'declined' END);
  IF charged THEN
    PERFORM consistency.publish('payment.events', v->>'order_id',
      jsonb_build_object('order_id', v->>'order_id', 'amount', v->'amount'),
      jsonb_build_object('ce_type', 'PaymentProcessed', 'ce_id', 'PaymentProcessed/' || (v->>'order_id')));
  ELSE
    PERFORM consistency.publish('payment.events', v->>'order_id',
      jsonb_build_object('order_id', v->>'order_id', 'reason', 'insufficient funds'),
      jsonb_build_object('ce_type', 'PaymentDeclined', 'ce_id', 'PaymentDeclined/' || (v->>'order_id')));
  END IF;
END $$;

SELECT consistency.create_consumer('payment-from-inventory', ARRAY['inventory.events'],
  'payment.on_inventory_event(text,int,bigint,text,jsonb,jsonb)');
