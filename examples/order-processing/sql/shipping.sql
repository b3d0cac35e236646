-- The shipping service (database `shipping`). One shipment per order at most; the carrier
-- for region 'atlantis' never answers, so those orders time out (orchestrated: the saga's
-- step timeout; choreographed: shipping reports ShipmentFailed itself).
CREATE SCHEMA shipping;
CREATE TABLE shipping.shipments (
  order_id   text PRIMARY KEY,
  region     text,
  tracking   text UNIQUE,
  status     text NOT NULL CHECK (status IN ('scheduled', 'waiting_for_carrier', 'cancelled')),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Schedule once per order. Returns the shipment's status afterwards.
CREATE FUNCTION shipping.schedule(p_order text, p_region text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  SELECT status INTO st FROM shipping.shipments WHERE order_id = p_order FOR UPDATE;
  IF st IS NOT NULL THEN
    RETURN st;
  END IF;
  st := CASE WHEN p_region = 'atlantis' THEN 'waiting_for_carrier' ELSE 'scheduled' END;
  INSERT INTO shipping.shipments (order_id, region, tracking, status)
  VALUES (p_order, p_region, CASE WHEN st = 'scheduled' THEN 'TRK-' || p_order END, st);
  RETURN st;
END $$;

CREATE FUNCTION shipping.cancel(p_order text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO shipping.shipments (order_id, status) VALUES (p_order, 'cancelled')
  ON CONFLICT (order_id) DO UPDATE SET status = 'cancelled', updated_at = clock_timestamp()
   WHERE shipping.shipments.status <> 'cancelled';
$$;

CREATE FUNCTION shipping.on_command(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  d jsonb := v->'data';
  st text;
BEGIN
  CASE v->>'command'
    WHEN 'CreateShipment' THEN
      st := shipping.schedule(d->>'order_id', d->>'region');
      IF st = 'scheduled' THEN
        PERFORM ops.reply('shipping', h, 'completed', jsonb_build_object('tracking', 'TRK-' || (d->>'order_id')));
      ELSIF st = 'cancelled' THEN
        PERFORM ops.reply('shipping', h, 'failed', '{"reason": "order cancelled"}');
      END IF;  -- waiting_for_carrier: no answer (the saga's timeout decides)
    WHEN 'CancelShipment' THEN
      PERFORM shipping.cancel(d->>'order_id');
      PERFORM ops.reply('shipping', h, 'completed', '{"cancelled": true}');
    ELSE
      RAISE EXCEPTION 'unknown command %', v->>'command';
  END CASE;
END $$;

-- Choreographed: ship what was paid for.
CREATE FUNCTION shipping.on_payment_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  IF h->>'ce_type' = 'PaymentProcessed' THEN
    st := shipping.schedule(v->>'order_id', v->>'region');
    IF st = 'scheduled' THEN
      PERFORM ops.emit('shipping.events', 'ShipmentCreated', v->>'order_id',
                       jsonb_build_object('tracking', 'TRK-' || (v->>'order_id')));
    ELSE
      PERFORM ops.emit('shipping.events', 'ShipmentFailed', v->>'order_id',
        jsonb_build_object('reason', CASE st WHEN 'cancelled' THEN 'order cancelled' ELSE 'carrier timeout' END));
    END IF;
  END IF;
END $$;

-- Both styles: a cancelled order's shipment is cancelled (or fenced, if it never came).
CREATE FUNCTION shipping.on_order_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF h->>'ce_type' IN ('OrderCancelled', 'OrderFailed') THEN
    PERFORM shipping.cancel(v->>'order_id');
  END IF;
END $$;

SELECT consistency.create_consumer('shipping-commands', ARRAY['shipping.commands'],
                                   'shipping.on_command(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('shipping-from-payment', ARRAY['payment.events'],
                                   'shipping.on_payment_event(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('shipping-from-orders', ARRAY['orders.events'],
                                   'shipping.on_order_event(text,int,bigint,text,jsonb,jsonb)');
