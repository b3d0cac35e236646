\set sku random(0, 99)
\set fail random(1, 5)
BEGIN;
SELECT consistency.start_saga('soak_order', jsonb_build_object('sku', 'sku-' || :sku, 'fail', :fail = 1));
UPDATE soak.done SET n = n + 1 WHERE kind = 'saga';
COMMIT;
