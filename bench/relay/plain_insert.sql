\set k random(1, 1000)
INSERT INTO public.bench_plain (topic, key, payload, headers, content_type)
VALUES ('bench.publish', 'key-' || :k, convert_to('{"order_id": 123456, "customer": "customer-42", "status": "placed", "items": [{"sku": "SKU-17", "qty": 2, "price": 19.99}], "note": "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"}', 'UTF8'), '{}', 'application/json');
