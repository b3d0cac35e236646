-- Two-phase commit: a loyalty credit in database "ledger" commits atomically with the order
\pset footer off
-- The participant is reached as the role named by user= (here the demo's own role; a real
-- setup names a role with only the rights the writers need there).
SELECT consistency.add_participant('ledger', 'dbname=ledger host=' || current_setting('unix_socket_directories')
                                    || ' port=' || current_setting('port') || ' user=' || current_user);
SELECT consistency.remote_exec('ledger', 'CREATE TABLE IF NOT EXISTS points (customer text PRIMARY KEY, points int NOT NULL)');
BEGIN;
UPDATE orders.orders SET status = status WHERE customer = 'alice';
SELECT consistency.remote_exec('ledger', $$INSERT INTO points VALUES ('alice', 12) ON CONFLICT (customer) DO UPDATE SET points = points.points + 12$$) AS rows_in_ledger;
COMMIT;
\echo a transfer that fails on the participant leaves nothing behind anywhere:
\set ON_ERROR_STOP 0
BEGIN;
INSERT INTO orders.totals VALUES ('mallory', 1, 1);
SELECT consistency.remote_exec('ledger', $$INSERT INTO points VALUES ('mallory', 'not a number')$$);
ROLLBACK;
\set ON_ERROR_STOP 1
SELECT * FROM consistency.remote_query('ledger', 'SELECT customer, points FROM points ORDER BY 1') AS ledger_points;
SELECT count(*) AS mallory_rows FROM orders.totals WHERE customer = 'mallory';
SELECT count(*) AS in_doubt FROM consistency.in_doubt;
