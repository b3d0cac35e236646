-- Remote work on participant self in a transaction that commits (a statement and a query,
-- then the commit with its decision rows) and in one that rolls back. 40_twopc runs it as
-- each role that planted traps.
BEGIN;
SELECT consistency.remote_exec('self', 'SELECT 1') AS runs;
SELECT consistency.remote_query('self', 'SELECT 2 AS two') AS queries;
COMMIT;
BEGIN;
SELECT consistency.remote_exec('self', 'SELECT 1') AS runs;
ROLLBACK;
