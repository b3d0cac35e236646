-- Wiring: the saga definition, event routing to Kafka, a projection subscription
SELECT consistency.define_saga('order_fulfilment', $${
  "steps": [
    {"name": "accept_order",      "action": {"function": "orders.accept"},    "compensation": {"function": "orders.cancel"}},
    {"name": "reserve_inventory", "action": {"function": "inventory.reserve"}, "compensation": {"function": "inventory.release"},
     "retry": {"max_attempts": 2, "backoff": "100 milliseconds", "max_backoff": "1 second"}},
    {"name": "process_payment",   "action": {"function": "payment.charge"},    "compensation": {"function": "payment.refund"},
     "retry": {"max_attempts": 2, "backoff": "100 milliseconds", "max_backoff": "1 second"}},
    {"name": "create_shipment",   "action": {"topic": "shipping.commands", "command": "CreateShipment"},
     "compensation": null, "timeout": "20 seconds", "retry": {"max_attempts": 1}},
    {"name": "complete_order",    "action": {"function": "orders.complete"},   "compensation": null}
  ],
  "timeout": "2 minutes"}$$::jsonb) AS definition_version;

SELECT consistency.route_events('order', 'orders.events');
SELECT consistency.create_subscription('order_totals', 'orders.project(bigint,text,bigint,text,jsonb,jsonb)',
                                       categories => ARRAY['order'], event_types => ARRAY['OrderPlaced']);

\echo placing three orders: alice (ok), bob (payment fails: not enough money), carol (lamp)
SELECT orders.place('alice', 'book', 2, 120) AS alice_order \gset
SELECT orders.place('bob',   'book', 1, 80)  AS bob_order \gset
SELECT orders.place('carol', 'lamp', 1, 45)  AS carol_order \gset
