\set key random(1, 1000)
BEGIN;
SELECT consistency.publish('soak.orders', 'order-' || :key,
                           jsonb_build_object('order', :key, 'status', 'placed', 'pad', repeat('p', 200)));
UPDATE soak.done SET n = n + 1 WHERE kind = 'publish';
COMMIT;
