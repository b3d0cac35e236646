-- Outbox: publish, retry_dead_letters, route_events validation, status, metrics,
-- integrity and privileges. The regression database has no worker and
-- pg_consistency.kafka_brokers is empty, so rows stay where publish puts them.
SET client_min_messages = warning;

\i sql/include/helpers.sql

-- Ids are relative to the first one, so other suites' rows do not matter.
SELECT coalesce(max(id), 0) AS base, count(*) AS base_pending FROM consistency.outbox \gset
SELECT consistency.publish('orders', 'order-1', '{"total": 10, "items": ["a"]}'::jsonb) - :base AS jsonb_id;
SELECT consistency.publish('orders', 'order-1', '\x00ff10'::bytea, '{"trace": "t-1", "n": 5, "flag": true, "none": null}') - :base AS bytea_id;
SELECT consistency.publish('orders.v2', 'order-2', '{"untyped": "literal"}') - :base AS text_id;
SELECT consistency.publish('orders_eu-1', NULL, NULL::jsonb) - :base AS null_key_and_payload;
SELECT consistency.publish('o', 'k', '[1, 2]'::jsonb, NULL) - :base AS null_headers_mean_none;
SELECT consistency.publish(repeat('t', 249), 'k', '"s"'::jsonb) - :base AS longest_topic;

SELECT id - :base AS id, topic, key, payload,
       CASE WHEN content_type = 'application/json' THEN convert_from(payload, 'UTF8') END AS json_text, headers, content_type,
       attempts, last_error, created_at <= now() AS created_earlier
  FROM consistency.outbox WHERE id > :base AND length(topic) < 20 ORDER BY id;

-- Nothing of a rolled-back transaction stays.
BEGIN;
SELECT consistency.publish('orders', 'rolled-back', '{}'::jsonb) > :base AS published_in_txn;
ROLLBACK;
SELECT count(*) AS rolled_back_rows FROM consistency.outbox WHERE key = 'rolled-back';

-- A savepoint rolled back takes its rows with it; the outer transaction's rows stay.
BEGIN;
SELECT consistency.publish('orders', 'outer', '{}'::jsonb) > 0 AS outer_row;
SAVEPOINT s;
SELECT consistency.publish('orders', 'inner', '{}'::jsonb) > 0 AS inner_row;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT key, count(*) FROM consistency.outbox WHERE key IN ('outer', 'inner') GROUP BY key ORDER BY key;

-- Invalid topics: CS002, naming the topic and the cause.
SELECT pg_temp.error_of($$SELECT consistency.publish('', 'k', '{}'::jsonb)$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('bad topic', 'k', '{}'::jsonb)$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders/eu', 'k', '\x01'::bytea)$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('café', 'k', '{}'::jsonb)$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('.', 'k', '{}'::jsonb)$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('..', 'k', '{}'::jsonb)$$);
SELECT pg_temp.error_of(format($$SELECT consistency.publish(%L, 'k', '{}'::jsonb)$$, repeat('t', 250)));
SELECT pg_temp.error_of($$SELECT consistency.publish(NULL, 'k', '{}'::jsonb)$$);

-- Invalid headers and payloads: CS002.
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb, '[1]')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb, '"x"')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb, '{"a": {"b": 1}}')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb, '{"a": [1]}')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb, '{"": "x"}')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb, '{"outbox_id": "1"}')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb, '{"ce_specversion": "2"}')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{not json')$$);
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', 'plain words'::text)$$);
-- None of the refused calls left a row.
SELECT count(*) AS rows_after_errors FROM consistency.outbox WHERE id > :base;

-- CloudEvents headers given by the caller are kept (the relay uses them instead of its defaults).
SELECT consistency.publish('orders', 'k', '{}'::jsonb, '{"ce_type": "order.placed", "ce_id": "evt-1", "content-type": "application/cloudevents+json"}') AS ce_row \gset
SELECT headers, content_type FROM consistency.outbox WHERE id = :ce_row;

-- The partition a Java client would choose (Kafka's murmur2), for checking topic layouts.
SELECT consistency.kafka_partition('21', 7) AS p21_7, consistency.kafka_partition('foobar', 12) AS foobar_12,
       consistency.kafka_partition('abc', 3) AS abc_3, consistency.kafka_partition('', 10) AS empty_10,
       consistency.kafka_partition('x', 1) AS any_1;
SELECT pg_temp.error_of($$SELECT consistency.kafka_partition('k', 0)$$);
SELECT consistency.kafka_partition(NULL, 3) IS NULL AS null_key_no_partition;

-- route_events checks its arguments first (CS002).
SELECT pg_temp.error_of($$SELECT consistency.route_events('order-x', 'orders')$$);
SELECT pg_temp.error_of($$SELECT consistency.route_events('', 'orders')$$);
SELECT pg_temp.error_of($$SELECT consistency.route_events(NULL, 'orders')$$);
SELECT pg_temp.error_of($$SELECT consistency.route_events('order', 'bad topic')$$);
SELECT pg_temp.error_of($$SELECT consistency.unroute_events('order-x')$$);
SELECT count(*) AS routes FROM consistency.event_routes;

-- Dead letters go back to the outbox with their id, attempts reset.
INSERT INTO consistency.dead_letters (id, topic, key, payload, headers, content_type, created_at, attempts, reason)
VALUES (:base + 1000, 'orders', 'dl-1', '\x01', '{}', 'application/octet-stream', now(), 5, 'Broker: Message size too large'),
       (:base + 1001, 'payments', 'dl-2', '\x02', '{"h": "v"}', 'application/json', now(), 5, 'Broker: Invalid record'),
       (:base + 1002, 'orders', 'dl-3', NULL, '{}', 'application/octet-stream', now(), 3, 'Broker: Message size too large');
SELECT pending - :base_pending AS new_pending, dead_lettered, relay_state FROM consistency.outbox_status;
SELECT consistency.retry_dead_letters('payments') AS requeued_payments;
SELECT consistency.retry_dead_letters('nothing_here') AS requeued_none;
SELECT pg_temp.error_of($$SELECT consistency.retry_dead_letters('bad topic')$$);
SELECT id - :base AS id, topic, key, attempts, last_error FROM consistency.outbox WHERE key LIKE 'dl-%' ORDER BY id;
SELECT consistency.retry_dead_letters() AS requeued_rest;
SELECT id - :base AS id, topic, key, payload, attempts, last_error FROM consistency.outbox WHERE key LIKE 'dl-%' ORDER BY id;
SELECT count(*) AS dead_letters_left FROM consistency.dead_letters;
SELECT consistency.retry_dead_letters() AS requeued_again;

-- Status: nothing delivered, no worker in this database.
SELECT pending = (SELECT count(*) FROM consistency.outbox) AS pending_counts_rows,
       oldest_pending_age >= '0'::interval AS has_age, delivered_total, dead_lettered, relay_state,
       last_error, last_delivery_at
  FROM consistency.outbox_status;
SELECT relay_state, relay_mode, batches, errors, in_flight FROM consistency._relay_runtime();

SELECT metric, kind, labels, value > 0 AS positive
  FROM consistency._metrics_relay() ORDER BY metric, labels::text;
SELECT * FROM consistency._integrity_relay() ORDER BY check_name;

-- A row with a topic Kafka would refuse (inserted directly) is caught by the integrity check.
INSERT INTO consistency.outbox (topic, key, payload) VALUES ('bad topic', 'direct', '\x00');
SELECT check_name, ok FROM consistency._integrity_relay() WHERE check_name = 'outbox_topics_valid';
DELETE FROM consistency.outbox WHERE key = 'direct';

-- GUCs of the relay, with their defaults.
SHOW pg_consistency.kafka_brokers;
SHOW pg_consistency.relay_mode;
SHOW pg_consistency.batch_size;
SHOW pg_consistency.topic_partitions;
SHOW pg_consistency.relay_max_attempts;
SHOW pg_consistency.relay_progress_topic;
SELECT pg_temp.error_of($$SET pg_consistency.relay_mode = 'exactly_once'$$);
SELECT pg_temp.error_of($$SET pg_consistency.kafka_properties = 'linger.ms=1'$$);

-- Privileges: readers read, writers publish, admins administer; kafka_properties is hidden.
CREATE ROLE regress_outbox_reader IN ROLE consistency_reader;
CREATE ROLE regress_outbox_writer IN ROLE consistency_writer;
CREATE ROLE regress_outbox_admin IN ROLE consistency_admin;
CREATE ROLE regress_outbox_nobody;
SELECT count(*) AS outbox_rows FROM consistency.outbox \gset
SET ROLE regress_outbox_reader;
SELECT count(*) > 0 AND count(*) = :outbox_rows AS reader_sees_outbox FROM consistency.outbox;
SELECT relay_state FROM consistency.outbox_status;
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb)$$);
SELECT pg_temp.error_of($$INSERT INTO consistency.outbox (topic) VALUES ('x')$$);
SELECT pg_temp.error_of($$SHOW pg_consistency.kafka_properties$$);
SELECT count(*) AS visible_in_pg_settings FROM pg_settings WHERE name = 'pg_consistency.kafka_properties';
RESET ROLE;
SET ROLE regress_outbox_writer;
SELECT consistency.publish('orders', 'by-writer', '{}'::jsonb) > :base AS writer_publishes;
SELECT pg_temp.error_of($$SELECT consistency.retry_dead_letters()$$);
SELECT pg_temp.error_of($$SELECT consistency.route_events('order', 'orders')$$);
SELECT pg_temp.error_of($$DELETE FROM consistency.outbox$$);
RESET ROLE;
SET ROLE regress_outbox_admin;
SELECT consistency.retry_dead_letters() AS admin_retries;
RESET ROLE;
SET ROLE regress_outbox_nobody;
SELECT pg_temp.error_of($$SELECT consistency.publish('orders', 'k', '{}'::jsonb)$$);
SELECT pg_temp.error_of($$SELECT * FROM consistency.outbox_status$$);
RESET ROLE;
SELECT count(*) AS superuser_sees_setting FROM pg_settings WHERE name = 'pg_consistency.kafka_properties';
DROP ROLE regress_outbox_reader, regress_outbox_writer, regress_outbox_admin, regress_outbox_nobody;

-- Leave the outbox as this suite found it.
DELETE FROM consistency.outbox WHERE id > :base;
