-- The inventory service (database `inventory`). Stock per SKU is split into what is on hand,
-- what is reserved for running orders and what has shipped; the sum never changes and no
-- part goes below zero. One reservation row per order fences every later command: an order
-- is reserved at most once, and never after it was released or refused.
CREATE SCHEMA inventory;
CREATE TABLE inventory.stock (
  sku      text PRIMARY KEY,
  initial  int NOT NULL,
  on_hand  int NOT NULL CHECK (on_hand >= 0),
  reserved int NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  shipped  int NOT NULL DEFAULT 0 CHECK (shipped >= 0),
  CHECK (on_hand + reserved + shipped = initial)
);
CREATE TABLE inventory.reservations (
  order_id   text PRIMARY KEY,
  sku        text REFERENCES inventory.stock,      -- NULL: a fence for an order never reserved
  qty        int CHECK (qty > 0),
  status     text NOT NULL CHECK (status IN ('reserved', 'refused', 'released', 'shipped')),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK (status NOT IN ('reserved', 'shipped') OR (sku IS NOT NULL AND qty IS NOT NULL))
);

-- Reserve, once per order. Returns the reservation's status afterwards.
CREATE FUNCTION inventory.reserve(p_order text, p_sku text, p_qty int) RETURNS text
  LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  SELECT status INTO st FROM inventory.reservations WHERE order_id = p_order FOR UPDATE;
  IF st IS NOT NULL THEN
    RETURN st;  -- a repeated command gets the first answer
  END IF;
  UPDATE inventory.stock SET on_hand = on_hand - p_qty, reserved = reserved + p_qty
   WHERE sku = p_sku AND on_hand >= p_qty;
  st := CASE WHEN FOUND THEN 'reserved' ELSE 'refused' END;
  INSERT INTO inventory.reservations (order_id, sku, qty, status)
  VALUES (p_order, CASE WHEN st = 'reserved' THEN p_sku END, CASE WHEN st = 'reserved' THEN p_qty END, st);
  RETURN st;
END $$;

-- Release (compensation, or the order was cancelled): stock back on hand, once. An order
-- never seen gets a 'released' row, so that a reserve command arriving late is refused.
CREATE FUNCTION inventory.release(p_order text) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  r inventory.reservations;
BEGIN
  SELECT * INTO r FROM inventory.reservations WHERE order_id = p_order FOR UPDATE;
  IF r.order_id IS NULL THEN
    INSERT INTO inventory.reservations (order_id, status) VALUES (p_order, 'released');
  ELSIF r.status = 'reserved' THEN
    UPDATE inventory.stock SET on_hand = on_hand + r.qty, reserved = reserved - r.qty WHERE sku = r.sku;
    UPDATE inventory.reservations SET status = 'released', updated_at = clock_timestamp() WHERE order_id = p_order;
  END IF;
END $$;

-- The order completed: its reserved stock has left the building.
CREATE FUNCTION inventory.ship(p_order text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r inventory.reservations;
BEGIN
  SELECT * INTO r FROM inventory.reservations WHERE order_id = p_order FOR UPDATE;
  IF r.status = 'reserved' THEN
    UPDATE inventory.stock SET reserved = reserved - r.qty, shipped = shipped + r.qty WHERE sku = r.sku;
    UPDATE inventory.reservations SET status = 'shipped', updated_at = clock_timestamp() WHERE order_id = p_order;
  END IF;
END $$;

-- Saga commands (orchestrated): ReserveInventory, ReleaseInventory; answered on saga.replies.
CREATE FUNCTION inventory.on_command(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  d jsonb := v->'data';
  st text;
BEGIN
  CASE v->>'command'
    WHEN 'ReserveInventory' THEN
      st := inventory.reserve(d->>'order_id', d->>'sku', (d->>'qty')::int);
      IF st = 'reserved' THEN
        PERFORM ops.reply('inventory', h, 'completed', jsonb_build_object('reserved', (d->>'qty')::int));
      ELSE
        PERFORM ops.reply('inventory', h, 'failed',
          jsonb_build_object('reason', CASE WHEN st IS NULL OR st = 'refused' THEN 'out of stock' ELSE 'order ' || st END));
      END IF;
    WHEN 'ReleaseInventory' THEN
      PERFORM inventory.release(d->>'order_id');
      PERFORM ops.reply('inventory', h, 'completed', '{"released": true}');
    ELSE
      RAISE EXCEPTION 'unknown command %', v->>'command';
  END CASE;
END $$;

-- The order service's events (both styles): a completed order ships its reservation, a
-- cancelled one releases it; choreographed, a new order is reserved here.
CREATE FUNCTION inventory.on_order_event(topic text, part int, off bigint, k text, v jsonb, h jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  CASE h->>'ce_type'
    WHEN 'OrderCreated' THEN
      IF (SELECT style FROM inventory.settings) = 'choreographed' THEN
        st := inventory.reserve(v->>'order_id', v->>'sku', (v->>'qty')::int);
        IF st = 'reserved' THEN
          PERFORM ops.emit('inventory.events', 'InventoryReserved', v->>'order_id',
                           jsonb_build_object('customer', v->>'customer', 'amount', v->'amount', 'region', v->>'region'));
        ELSE
          PERFORM ops.emit('inventory.events', 'OutOfStock', v->>'order_id', jsonb_build_object('sku', v->>'sku'));
        END IF;
      END IF;
    WHEN 'OrderCompleted' THEN PERFORM inventory.ship(v->>'order_id');
    WHEN 'OrderCancelled', 'OrderFailed' THEN
      PERFORM inventory.release(v->>'order_id');
    ELSE NULL;
  END CASE;
END $$;

CREATE TABLE inventory.settings (
  one   boolean PRIMARY KEY DEFAULT true CHECK (one),
  style text NOT NULL CHECK (style IN ('orchestrated', 'choreographed'))
);
INSERT INTO inventory.settings (style) VALUES ('orchestrated');

------------------------------------------------------------------------------------------
-- The strong-consistency path: stock moved between two warehouse databases (participants
-- `east` and `west`, plain PostgreSQL) by two-phase commit, with a local record of each
-- move in the same distributed transaction. Either all three commit or none does.
CREATE TABLE inventory.transfers (
  id         bigserial PRIMARY KEY,
  sku        text NOT NULL,
  qty        int NOT NULL CHECK (qty > 0),
  from_wh    text NOT NULL,
  to_wh      text NOT NULL,
  at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION inventory.transfer(p_sku text, p_qty int, p_from text, p_to text) RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  IF consistency.remote_exec(p_from, format('UPDATE bins SET qty = qty - %s WHERE sku = %L AND qty >= %s',
                                            p_qty, p_sku, p_qty)) = 0 THEN
    RETURN false;  -- not enough there: nothing moves
  END IF;
  PERFORM consistency.remote_exec(p_to, format('UPDATE bins SET qty = qty + %s WHERE sku = %L', p_qty, p_sku));
  INSERT INTO inventory.transfers (sku, qty, from_wh, to_wh) VALUES (p_sku, p_qty, p_from, p_to);
  RETURN true;
END $$;

SELECT consistency.create_consumer('inventory-commands', ARRAY['inventory.commands'],
                                   'inventory.on_command(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('inventory-from-orders', ARRAY['orders.events'],
                                   'inventory.on_order_event(text,int,bigint,text,jsonb,jsonb)');
