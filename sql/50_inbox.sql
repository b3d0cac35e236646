-- Inbox: create/drop/pause/resume/reset consumers, validation and SQLSTATEs, dead-letter
-- retry, the saga reply handler, the view, metrics, integrity and privileges. The
-- regression database has no worker: consumers are only stored here (TAP 50x consume).
SET client_min_messages = warning;

\i sql/include/helpers.sql

CREATE SCHEMA inbox_test;
CREATE TABLE inbox_test.seen (topic text, part int, off bigint, key text, value jsonb, headers jsonb);
CREATE FUNCTION inbox_test.handle(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ INSERT INTO inbox_test.seen VALUES ($1, $2, $3, $4, $5, $6) $$;
CREATE FUNCTION inbox_test.handle_raw(topic text, partition int, "offset" bigint, key text, value bytea, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION inbox_test.wrong(topic text, partition int, "offset" bigint, key text, value text, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION inbox_test.returns_int(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
  RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION inbox_test.failing(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE plpgsql AS $$ BEGIN
    IF value ? 'fail' THEN RAISE EXCEPTION 'refused %', value->>'fail'; END IF;
    INSERT INTO inbox_test.seen VALUES (topic, partition, "offset", key, value, headers);
  END $$;

SELECT consistency.create_consumer('orders-in', ARRAY['orders', 'orders.v2'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)');
SELECT consistency.create_consumer('raw-in', ARRAY['blobs'], 'inbox_test.handle_raw(text,int,bigint,text,bytea,jsonb)', 'latest');
SELECT name, topics, status, lag, last_error, handler, start_from, consumed, failed, dead_lettered, deduplicated
  FROM consistency.consumers ORDER BY name;
SELECT name, raw_value, owner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS owned_by_creator, generation
  FROM consistency.consumer_state ORDER BY name;

-- Validation: CS002 for names, topics, handler signatures and start_from; 42710 duplicate.
SELECT v.label, pg_temp.error_of(v.stmt) FROM (VALUES
  ('duplicate', $$SELECT consistency.create_consumer('orders-in', ARRAY['x'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('null name', $$SELECT consistency.create_consumer(NULL, ARRAY['x'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('empty name', $$SELECT consistency.create_consumer('', ARRAY['x'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('control char', $$SELECT consistency.create_consumer(E'a\nb', ARRAY['x'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('null topics', $$SELECT consistency.create_consumer('c', NULL, 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('no topics', $$SELECT consistency.create_consumer('c', ARRAY[]::text[], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('null topic', $$SELECT consistency.create_consumer('c', ARRAY['a', NULL], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('bad topic', $$SELECT consistency.create_consumer('c', ARRAY['bad topic'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('dot topic', $$SELECT consistency.create_consumer('c', ARRAY['..'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('long topic', $$SELECT consistency.create_consumer('c', ARRAY[repeat('t', 250)], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('twice', $$SELECT consistency.create_consumer('c', ARRAY['a', 'a'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$),
  ('null handler', $$SELECT consistency.create_consumer('c', ARRAY['a'], NULL)$$),
  ('text value', $$SELECT consistency.create_consumer('c', ARRAY['a'], 'inbox_test.wrong(text,int,bigint,text,text,jsonb)')$$),
  ('returns int', $$SELECT consistency.create_consumer('c', ARRAY['a'], 'inbox_test.returns_int(text,int,bigint,text,jsonb,jsonb)')$$),
  ('no such oid', $$SELECT consistency.create_consumer('c', ARRAY['a'], 1::regprocedure)$$),
  ('start_from', $$SELECT consistency.create_consumer('c', ARRAY['a'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)', 'middle')$$),
  ('unknown drop', $$SELECT consistency.drop_consumer('nope')$$),
  ('unknown pause', $$SELECT consistency.pause_consumer('nope')$$),
  ('unknown resume', $$SELECT consistency.resume_consumer('nope')$$),
  ('unknown reset', $$SELECT consistency.reset_consumer('nope', 'orders', 0, 0)$$),
  ('unknown retry', $$SELECT consistency.retry_consumer_dead_letters('nope')$$),
  ('reset topic', $$SELECT consistency.reset_consumer('orders-in', 'other', 0, 0)$$),
  ('reset bad topic', $$SELECT consistency.reset_consumer('orders-in', 'a b', 0, 0)$$),
  ('reset partition', $$SELECT consistency.reset_consumer('orders-in', 'orders', -1, 0)$$),
  ('reset offset', $$SELECT consistency.reset_consumer('orders-in', 'orders', 0, -5)$$),
  ('reset null', $$SELECT consistency.reset_consumer('orders-in', 'orders', 0, NULL)$$)
) AS v(label, stmt);

-- Pause, resume, reset (the generation tells the worker to re-read its offsets).
SELECT consistency.pause_consumer('orders-in');
SELECT name, status FROM consistency.consumers WHERE name = 'orders-in';
SELECT consistency.resume_consumer('orders-in');
SELECT consistency.reset_consumer('orders-in', 'orders', 2, 40);
SELECT consistency.reset_consumer('orders-in', 'orders', 2, 7);
SELECT consumer, topic, partition, next_offset, attempts FROM consistency.consumer_offsets ORDER BY 1, 2, 3;
SELECT name, status, generation FROM consistency.consumer_state WHERE name = 'orders-in';

-- Dead letters re-run: the good one leaves the table, the poison one stays with its reason.
SELECT consistency.create_consumer('poison-in', ARRAY['orders'], 'inbox_test.failing(text,int,bigint,text,jsonb,jsonb)');
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", key, value, headers, reason) VALUES
  ('poison-in', 'orders', 0, 3, 'k1', convert_to('{"ok": 1}', 'UTF8'), '{"ce_id": "id-3"}', 'handler failed'),
  ('poison-in', 'orders', 0, 4, 'k1', convert_to('{"fail": "always"}', 'UTF8'), '{}', 'handler failed'),
  ('poison-in', 'orders', 1, 9, NULL, convert_to('not json', 'UTF8'), '{}', 'not json');
SELECT consistency.retry_consumer_dead_letters('poison-in') AS retried_ok;
SELECT topic, part, off, key, value, headers FROM inbox_test.seen ORDER BY off;
SELECT partition, "offset", reason FROM consistency.consumer_dead_letters WHERE consumer = 'poison-in' ORDER BY 1, 2;
SELECT consumer, ce_id FROM consistency.consumer_dedupe ORDER BY 1, 2;
-- The same ce_id again is skipped (deduplicated) and its dead letter leaves too.
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", key, value, headers, reason)
  VALUES ('poison-in', 'orders', 0, 5, 'k1', convert_to('{"ok": 2}', 'UTF8'), '{"ce_id": "id-3"}', 'again');
SELECT consistency.retry_consumer_dead_letters('poison-in') AS retried_ok;
SELECT count(*) AS handled_rows FROM inbox_test.seen;

-- Saga replies that cannot apply are recorded, never raised.
SELECT consistency.handle_saga_reply('replies', 0, 1, 'k', '{}', '{}');
SELECT consistency.handle_saga_reply('replies', 0, 2, 'k', '{}',
  '{"saga_id": "00000000-0000-0000-0000-000000000001", "step": "s", "attempt": "1", "outcome": "completed"}');
SELECT consistency.handle_saga_reply('replies', 0, 3, 'k', '{"reason": "no"}',
  '{"saga_id": "00000000-0000-0000-0000-000000000001", "step": "s", "outcome": "failed"}');
SELECT saga_id, step, attempt, outcome, result FROM consistency.saga_reply_log ORDER BY id;

-- Privileges: a writer creates with its own handler and acts on its own consumers only;
-- a reader reads the view; an admin acts on any consumer.
CREATE ROLE inbox_writer IN ROLE consistency_writer;
CREATE ROLE inbox_other IN ROLE consistency_writer;
CREATE ROLE inbox_reader IN ROLE consistency_reader;
CREATE ROLE inbox_admin IN ROLE consistency_admin;
GRANT USAGE ON SCHEMA inbox_test TO inbox_writer, inbox_other;
REVOKE EXECUTE ON FUNCTION inbox_test.failing(text,int,bigint,text,jsonb,jsonb) FROM PUBLIC;
SET ROLE inbox_writer;
SELECT pg_temp.error_of($$SELECT consistency.create_consumer('w-bad', ARRAY['a'], 'inbox_test.failing(text,int,bigint,text,jsonb,jsonb)')$$) AS no_execute;
SELECT consistency.create_consumer('w-in', ARRAY['a'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)');
SELECT pg_temp.error_of($$SELECT consistency.pause_consumer('orders-in')$$) AS not_its_consumer;
SELECT pg_temp.error_of($$INSERT INTO consistency.consumer_offsets VALUES ('w-in', 'a', 0, 0)$$) AS no_direct_write;
SELECT consistency.pause_consumer('w-in');
SET ROLE inbox_other;
SELECT pg_temp.error_of($$SELECT consistency.drop_consumer('w-in')$$) AS other_writer;
SELECT pg_temp.error_of($$SELECT consistency.reset_consumer('w-in', 'a', 0, 0)$$) AS other_reset;
SET ROLE inbox_reader;
SELECT name, status FROM consistency.consumers ORDER BY name;
SELECT pg_temp.error_of($$SELECT consistency.create_consumer('r', ARRAY['a'], 'inbox_test.handle(text,int,bigint,text,jsonb,jsonb)')$$) AS reader_create;
SELECT pg_temp.error_of($$SELECT consistency.handle_saga_reply('t', 0, 0, NULL, NULL, '{}')$$) AS reader_reply;
SET ROLE inbox_admin;
SELECT consistency.resume_consumer('w-in');
SELECT consistency.drop_consumer('w-in');
RESET ROLE;

-- Metrics and integrity.
SELECT m FROM regexp_split_to_table(consistency.metrics(), E'\n') AS m
 WHERE m ~ '^pg_consistency_consumer_(consumed|dead_lettered)_total' ORDER BY m;
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name LIKE 'inbox%' ORDER BY 1;
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", value, reason)
  VALUES ('orders-in', 'orders', 2, 99, NULL, 'planted ahead of the offset');
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'inbox_dead_letters_behind_offsets';

-- Drop takes offsets, dead letters and dedupe rows with it.
SELECT consistency.drop_consumer('orders-in');
SELECT consistency.drop_consumer('poison-in');
SELECT consistency.drop_consumer('raw-in');
SELECT (SELECT count(*) FROM consistency.consumer_state) AS consumers,
       (SELECT count(*) FROM consistency.consumer_offsets) AS offsets,
       (SELECT count(*) FROM consistency.consumer_dead_letters) AS dead_letters,
       (SELECT count(*) FROM consistency.consumer_dedupe) AS dedupe;

DROP SCHEMA inbox_test CASCADE;
DROP ROLE inbox_writer, inbox_other, inbox_reader, inbox_admin;
DELETE FROM consistency.saga_reply_log;
