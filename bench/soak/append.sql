\set account random(1, 1000)
BEGIN;
SELECT consistency.append_event('account-' || :account, NULL, 'Deposited',
                                jsonb_build_object('amount', :account % 50 + 1, 'note', repeat('n', 100)));
UPDATE soak.done SET n = n + 1 WHERE kind = 'append';
COMMIT;
