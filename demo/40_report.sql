-- What happened: sagas, services' tables, the event store, the outbox
\pset footer off
SELECT name, status, current_step, attempts, coalesce(last_error, '') AS last_error
  FROM consistency.sagas ORDER BY created_at;
SELECT id, customer, sku, qty, amount, status FROM orders.orders ORDER BY customer;
SELECT * FROM inventory.stock ORDER BY sku;
SELECT * FROM payment.accounts ORDER BY customer;
SELECT consistency.wait_for_subscription('order_totals', consistency.last_appended_position(), '10 seconds') AS projection_caught_up;
SELECT * FROM orders.totals ORDER BY customer;
SELECT name, position, status, lag FROM consistency.subscriptions;
\echo the audit trail of the saga for bob, one event per transition:
SELECT version, type FROM consistency.read_stream('saga-' || (SELECT id FROM consistency.sagas s
  WHERE s.data->>'customer' = 'bob'), 1, 100);
SELECT pending, delivered_total, dead_lettered, relay_state FROM consistency.outbox_status;
SELECT * FROM consistency.check_integrity();
