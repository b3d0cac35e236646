\set s random(1, 10000)
SELECT bench.pl_append_event('acct-' || :s, NULL, 'Deposited', '{"amount": 42, "sku": "ABC-123"}');
