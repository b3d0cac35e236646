\set k random(1, 1000)
SELECT consistency.publish('bench.latency', 'key-' || :k, jsonb_build_object('t_ms', extract(epoch FROM clock_timestamp()) * 1000, 'customer', 'customer-' || :k, 'status', 'placed', 'note', 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'));
