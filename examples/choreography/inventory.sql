-- The inventory service (its own database). It reserves stock for new orders and
-- releases it when an order fails; it publishes InventoryReserved or OutOfStock.
CREATE SCHEMA inventory;
CREATE TABLE inventory.stock (
  sku     text PRIMARY KEY,
  on_hand int NOT NULL CHECK (on_hand >= 0)
);
CREATE TABLE inventory.reservations (
  order_id text PRIMARY KEY,
  sku      text NOT NULL REFERENCES inventory.stock,
  qty      int NOT NULL,
  status   text NOT NULL CHECK (status IN ('reserved', 'released'))
);

CREATE FUNCTION inventory.on_order_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r inventory.reservations;
BEGIN
  CASE h->>'ce_type'
    WHEN 'OrderCreated' THEN
      IF EXISTS (SELECT 1 FROM inventory.reservations WHERE order_id = v->>'order_id') THEN
        RETURN;  -- already answered (a re-delivery beyond the dedupe window)
      END IF;
      UPDATE inventory.stock SET on_hand = on_hand - (v->>'qty')::int
       WHERE sku = v->>'sku' AND on_hand >= (v->>'qty')::int;
      IF FOUND THEN
        INSERT INTO inventory.reservations VALUES (v->>'order_id', v->>'sku', (v->>'qty')::int, 'reserved');
        PERFORM consistency.publish('inventory.events', v->>'order_id',
          jsonb_build_object('order_id', v->>'order_id', 'customer', v->>'customer', 'amount', v->'amount'),
          jsonb_build_object('ce_type', 'InventoryReserved', 'ce_id', 'InventoryReserved/' || (v->>'order_id')));
      ELSE
        PERFORM consistency.publish('inventory.events', v->>'order_id',
          jsonb_build_object('order_id', v->>'order_id', 'sku', v->>'sku'),
          jsonb_build_object('ce_type', 'OutOfStock', 'ce_id', 'OutOfStock/' || (v->>'order_id')));
      END IF;
    WHEN 'OrderFailed' THEN
      UPDATE inventory.reservations SET status = 'released'
       WHERE order_id = v->>'order_id' AND status = 'reserved' RETURNING * INTO r;
      IF FOUND THEN
        UPDATE inventory.stock SET on_hand = on_hand + r.qty WHERE sku = r.sku;
      END IF;
    ELSE NULL;
  END CASE;
END $$;

SELECT consistency.create_consumer('inventory-from-orders', ARRAY['orders.events'],
  'inventory.on_order_event(text,int,bigint,text,jsonb,jsonb)');
