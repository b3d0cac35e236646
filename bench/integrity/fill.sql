-- Adds rows to the tables check_integrity() reads, written directly (as the extension's
-- own functions would leave them, integrity intact), up to :events events in all:
-- streams of 10 events, one saga with its audit stream per 10 events, and as many outbox
-- rows, dead letters and inbox dead letters as sagas.
\set ON_ERROR_STOP on
SELECT coalesce(max(global_position), 0) AS have FROM consistency.events \gset
SELECT (:events - :have) / 20 AS batch \gset
-- Plain streams: 10 events each.
INSERT INTO consistency.streams (stream, version)
SELECT 'bench-' || (:have + i), 10 FROM generate_series(1, :batch) i;
INSERT INTO consistency.events (stream, version, event_id, type, data)
SELECT 'bench-' || (:have + i), v, gen_random_uuid(), 'Bench', jsonb_build_object('v', v)
  FROM generate_series(1, :batch) i, generate_series(1, 10) v;
-- Completed sagas, each with a one-event audit stream.
CREATE TEMP TABLE new_sagas AS SELECT gen_random_uuid() AS id FROM generate_series(1, :batch);
INSERT INTO consistency.saga_instances (id, name, definition_version, status, step_index, input, data, started_by)
SELECT id, 'bench', 1, 'completed', 0, '{}', '{}', 10 FROM new_sagas;
INSERT INTO consistency.streams (stream, version) SELECT 'saga-' || id, 1 FROM new_sagas;
INSERT INTO consistency.events (stream, version, event_id, type, data)
SELECT 'saga-' || id, 1, gen_random_uuid(), 'SagaCompleted', '{}' FROM new_sagas;
-- Outbox rows waiting, dead letters, inbox dead letters behind their offset.
INSERT INTO consistency.outbox (topic, key, payload) SELECT 'bench.topic', i::text, '\x00' FROM generate_series(1, :batch) i;
INSERT INTO consistency.dead_letters (id, topic, headers, content_type, created_at, attempts, reason)
SELECT -(:have + i), 'bench.topic', '{}', 'application/json', now(), 3, 'bench'
  FROM generate_series(1, :batch) i;
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", reason)
SELECT 'bench-in', 'bench.topic', 0, :have + i, 'bench' FROM generate_series(1, :batch) i;
UPDATE consistency.consumer_offsets SET next_offset = :events + 1 WHERE consumer = 'bench-in';
SELECT setval('consistency.event_position_seq', (SELECT max(global_position) FROM consistency.events));
ANALYZE;
