\set id random(1, 1000)
BEGIN;
UPDATE soak.done SET n = n + 1 WHERE kind = 'twopc';
SELECT consistency.remote_exec('ledger', 'UPDATE points SET n = n + 1 WHERE id = ' || :id);
COMMIT;
