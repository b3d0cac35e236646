\set k random(1, 1000)
SELECT consistency.publish('bench.publish', 'key-' || :k, '{"order_id": 123456, "customer": "customer-42", "status": "placed", "items": [{"sku": "SKU-17", "qty": 2, "price": 19.99}], "note": "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"}'::jsonb);
