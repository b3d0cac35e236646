-- pgbench script (run against the coordinator, -M simple): one distributed transfer
-- touching the three participants p1, p2, p3 under two-phase commit.
\set a random(1, :accounts)
\set b random(1, :accounts)
\set c random(1, :accounts)
BEGIN;
SELECT consistency.remote_exec('p1', 'UPDATE accounts SET balance = balance - 2 WHERE id = :a');
SELECT consistency.remote_exec('p2', 'UPDATE accounts SET balance = balance + 1 WHERE id = :b');
SELECT consistency.remote_exec('p3', 'UPDATE accounts SET balance = balance + 1 WHERE id = :c');
COMMIT;
