-- route_events: appends of a routed category are published in the same transaction
-- (key = stream, value = event data, CloudEvents headers); other categories are not;
-- rollbacks publish nothing; routes are idempotent and can be removed.
SET client_min_messages = warning;
SELECT coalesce(max(id), 0) AS base FROM consistency.outbox \gset

-- No trigger on the event table until a route exists.
SELECT count(*) AS routing_triggers FROM pg_trigger
 WHERE tgrelid = 'consistency.events'::regclass AND tgname = 'pgc_route_events';
SELECT consistency.route_events('order', 'orders.events');
SELECT consistency.route_events('order', 'orders.events');  -- again: no-op
SELECT category, topic FROM consistency.event_routes ORDER BY 1, 2;
SELECT count(*) AS routing_triggers FROM pg_trigger
 WHERE tgrelid = 'consistency.events'::regclass AND tgname = 'pgc_route_events';

-- Two events of a routed category, one of another.
SELECT consistency.append_events('order-1001', 0,
  '[{"type": "OrderPlaced", "data": {"total": 25}, "id": "00000000-0000-4000-8000-000000000001"},
    {"type": "OrderPaid", "data": {"amount": 25}, "metadata": {"by": "card"}, "id": "00000000-0000-4000-8000-000000000002"}]');
SELECT consistency.append_event('customer-7', 0, 'CustomerRegistered', '{"name": "Ada"}');
SELECT o.topic, o.key, convert_from(o.payload, 'UTF8') AS value, o.content_type,
       o.headers - 'global_position' AS headers,
       (o.headers->>'global_position')::bigint = e.global_position AS position_header_matches,
       o.created_at = e.created_at AS created_with_the_event
  FROM consistency.outbox o
  JOIN consistency.events e ON e.event_id = (o.headers->>'ce_id')::uuid
 WHERE o.id > :base ORDER BY o.id;

-- A rolled-back append publishes nothing.
BEGIN;
SELECT consistency.append_event('order-1002', 0, 'OrderPlaced', '{"total": 1}');
ROLLBACK;
SELECT count(*) AS rows_from_rollback FROM consistency.outbox WHERE key = 'order-1002';

-- A second route of the same category: one row per route, in global order then topic.
SELECT consistency.route_events('order', 'audit');
SELECT consistency.route_events('customer', 'audit');
SELECT consistency.append_events('order-1003', NULL,
  '[{"type": "OrderPlaced", "data": {"n": 1}}, {"type": "OrderShipped", "data": {"n": 2}}]');
SELECT topic, key, o.headers->>'ce_type' AS ce_type, o.headers->>'stream_version' AS version
  FROM consistency.outbox o WHERE key = 'order-1003' ORDER BY id;
SELECT consistency.append_event('customer-8', 0, 'CustomerRegistered', '{"name": "Grace"}');
SELECT topic, key FROM consistency.outbox WHERE key LIKE 'customer-%' ORDER BY id;

-- The integrity check sees the trigger.
SELECT check_name, ok, detail FROM consistency._integrity_relay() WHERE check_name = 'event_routes_trigger';

-- Removing routes; the trigger goes with the last one.
SELECT consistency.unroute_events('order', 'audit') AS removed;
SELECT consistency.unroute_events('order', 'not-routed') AS removed_none;
SELECT consistency.unroute_events('customer') AS removed_all_of_customer;
SELECT category, topic FROM consistency.event_routes ORDER BY 1, 2;
SELECT consistency.unroute_events('order') AS removed_last;
SELECT count(*) AS routing_triggers FROM pg_trigger
 WHERE tgrelid = 'consistency.events'::regclass AND tgname = 'pgc_route_events';
SELECT consistency.append_event('order-1004', 0, 'OrderPlaced', '{"total": 2}');
SELECT count(*) AS rows_without_route FROM consistency.outbox WHERE key = 'order-1004';

-- A route survives in event_routes while its trigger is missing: the integrity check says so.
INSERT INTO consistency.event_routes (category, topic) VALUES ('order', 'orders.events');
SELECT check_name, ok, detail FROM consistency._integrity_relay() WHERE check_name = 'event_routes_trigger';
SELECT consistency.route_events(category, topic) FROM consistency.event_routes;
SELECT check_name, ok FROM consistency._integrity_relay() WHERE check_name = 'event_routes_trigger';
SELECT consistency.unroute_events('order') AS cleanup;

DELETE FROM consistency.outbox WHERE id > :base;
