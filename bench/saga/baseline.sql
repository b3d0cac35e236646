-- Baseline: the saga's three UPDATEs run directly by a client, one transaction per step.
\set a random(1, :naccounts)
\set b random(1, :naccounts)
\set c random(1, :naccounts)
UPDATE bench.accounts SET balance = balance + 1 WHERE id = :a;
UPDATE bench.accounts SET balance = balance + 1 WHERE id = :b;
UPDATE bench.accounts SET balance = balance + 1 WHERE id = :c;
