-- Every check of consistency.check_integrity() seen failing on a state built to break it,
-- then passing once the state is repaired. Each case runs in a transaction that is rolled
-- back, so the suites after this one see the database as it was.
--
-- Checks shown failing elsewhere, not repeated here:
--   worker_running (90_operations; passing in the TAP tests, where a worker runs),
--   eventstore.version_gaps and saga_state_consistent (92_integrity_bounds),
--   eventstore.subscription_positions (95_fuzz_findings), outbox_topics_valid (20_outbox),
--   event_routes_trigger (20_outbox_routes), inbox_handlers_exist (13_function_refs),
--   inbox_dead_letters_behind_offsets (50_inbox),
--   twopc_participant_conninfo and twopc_participant_grants (40_twopc).
-- twopc_recovery passes with participants only while a worker runs recovery passes in the
-- database (a running cluster worker, not available here): below it fails with a
-- participant that no worker has recovered and passes once no participant is left.
CREATE SCHEMA integ;
CREATE FUNCTION integ.up(data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT data $$;
CREATE FUNCTION integ.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION integ.handle(topic text, part int, off bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT $$;

-- eventstore.stream_versions: a stream whose recorded version is ahead of its last event.
BEGIN;
SELECT consistency.append_events('integ-1', 0, '[{"type": "X", "data": {}}]') > 0 AS appended;
UPDATE consistency.streams SET version = 2 WHERE stream = 'integ-1';
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'eventstore.stream_versions';
UPDATE consistency.streams SET version = 1 WHERE stream = 'integ-1';
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.stream_versions';
ROLLBACK;

-- eventstore.position_sequence: a sequence that caches values (positions out of commit
-- order across sessions), then one restarted below the stored positions (a bad restore).
BEGIN;
SELECT consistency.append_events('integ-1', 0, '[{"type": "X", "data": {}}]') > 0 AS appended;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.position_sequence';
ALTER SEQUENCE consistency.event_position_seq CACHE 10;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.position_sequence';
ALTER SEQUENCE consistency.event_position_seq CACHE 1;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.position_sequence';
ALTER SEQUENCE consistency.event_position_seq RESTART WITH 1;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.position_sequence';
DO $$ BEGIN
  EXECUTE format('ALTER SEQUENCE consistency.event_position_seq RESTART WITH %s',
                 (SELECT max(global_position) + 1 FROM consistency.events));
END $$;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.position_sequence';
ROLLBACK;

-- eventstore.immutability_trigger: disabled, then enabled only for origin sessions (a
-- logical replication apply would bypass it), then enabled ALWAYS again.
BEGIN;
ALTER TABLE consistency.events DISABLE TRIGGER events_immutable;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.immutability_trigger';
ALTER TABLE consistency.events ENABLE TRIGGER events_immutable;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.immutability_trigger';
ALTER TABLE consistency.events ENABLE ALWAYS TRIGGER events_immutable;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.immutability_trigger';
ROLLBACK;

-- eventstore.upcaster_chains: a chain that starts at schema version 2, then one with a gap.
BEGIN;
SELECT consistency.register_upcaster('IntegEvent', 1, 'integ.up(jsonb)');
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.upcaster_chains';
UPDATE consistency.upcasters SET from_schema_version = 2 WHERE event_type = 'IntegEvent';
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'eventstore.upcaster_chains';
UPDATE consistency.upcasters SET from_schema_version = 3 WHERE event_type = 'IntegEvent';
SELECT consistency.register_upcaster('IntegEvent', 1, 'integ.up(jsonb)');
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'eventstore.upcaster_chains';
SELECT consistency.register_upcaster('IntegEvent', 2, 'integ.up(jsonb)');
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.upcaster_chains';
ROLLBACK;

-- outbox_ids_not_dead_lettered: a row both queued and dead-lettered (it would be sent and
-- also re-queued by retry_dead_letters).
BEGIN;
INSERT INTO consistency.outbox (topic, key, payload) VALUES ('integ.ok', 'integ', '\x00') RETURNING id AS outbox_id \gset
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'outbox_ids_not_dead_lettered';
INSERT INTO consistency.dead_letters (id, topic, headers, content_type, created_at, attempts, reason)
  VALUES (:outbox_id, 'integ.ok', '{}', 'application/octet-stream', now(), 1, 'planted');
SELECT check_name, ok, detail = format('1 outbox ids are also in dead_letters (e.g. %s)', :outbox_id) AS detail_names_it
  FROM consistency.check_integrity() WHERE check_name = 'outbox_ids_not_dead_lettered';
DELETE FROM consistency.dead_letters WHERE id = :outbox_id;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'outbox_ids_not_dead_lettered';
ROLLBACK;

-- relay_open_batches: more open exactly-once batches than the relay ever keeps, then an
-- open batch at or below the last finished one.
BEGIN;
UPDATE consistency.relay_stats SET last_batch = 10;
INSERT INTO consistency.relay_batches (batch, ids) VALUES (11, '{}'), (12, '{}');
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'relay_open_batches';
INSERT INTO consistency.relay_batches (batch, ids) VALUES (13, '{}');
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'relay_open_batches';
DELETE FROM consistency.relay_batches WHERE batch = 13;
UPDATE consistency.relay_stats SET last_batch = 11;
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'relay_open_batches';
UPDATE consistency.relay_stats SET last_batch = 10;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'relay_open_batches';
ROLLBACK;

-- saga_audit_trail: a saga row without its stream saga-<id>.
BEGIN;
SELECT consistency.define_saga('integ', '{"steps": [{"name": "one", "action": {"function": "integ.step"}}]}');
INSERT INTO consistency.saga_instances (id, name, definition_version, status, input, data, started_by)
  VALUES ('00000000-0000-4000-8000-000000000093', 'integ', 1, 'completed', '{}', '{}', 10);
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'saga_audit_trail';
-- Only the extension appends to saga streams: its first audit event, written directly.
INSERT INTO consistency.streams (stream, version) VALUES ('saga-00000000-0000-4000-8000-000000000093', 1);
INSERT INTO consistency.events (stream, version, event_id, type, data)
  VALUES ('saga-00000000-0000-4000-8000-000000000093', 1, gen_random_uuid(), 'SagaStarted', '{}');
SELECT check_name, ok FROM consistency.check_integrity()
 WHERE check_name IN ('saga_audit_trail', 'eventstore.stream_versions', 'eventstore.version_gaps') ORDER BY 1;
ROLLBACK;

-- saga_definition_owners_exist: the role that defined a saga is dropped.
BEGIN;
SELECT consistency.define_saga('integ', '{"steps": [{"name": "one", "action": {"function": "integ.step"}}]}');
CREATE ROLE integ_gone;
UPDATE consistency.saga_definitions SET owner = 'integ_gone'::regrole WHERE name = 'integ';
DROP ROLE integ_gone;
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'saga_definition_owners_exist';
UPDATE consistency.saga_definitions SET owner = current_user::regrole WHERE name = 'integ';
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'saga_definition_owners_exist';
ROLLBACK;

-- twopc_decisions_orphaned: a commit decision for a participant that no longer exists.
BEGIN;
INSERT INTO consistency.twopc_decisions (participant_id, xid) VALUES (-93, '1000');
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'twopc_decisions_orphaned';
DELETE FROM consistency.twopc_decisions WHERE participant_id = -93;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'twopc_decisions_orphaned';
ROLLBACK;

-- twopc_unconfirmed_commits: a commit decided an hour ago and never confirmed on its
-- participant (recovery deletes the row once COMMIT PREPARED went through).
BEGIN;
SELECT consistency.add_participant('integ', 'host=127.0.0.1 port=1 dbname=nowhere user=nobody');
INSERT INTO consistency.twopc_decisions (participant_id, xid, decided_at)
  SELECT id, '1000', now() - interval '1 hour' FROM consistency.twopc_participants WHERE name = 'integ';
SELECT check_name, ok, detail ~ '^1 commit\(s\) not confirmed on their participant for more than [0-9]+ s \(1 pending in all\)$' AS detail_counts_it
  FROM consistency.check_integrity() WHERE check_name = 'twopc_unconfirmed_commits';
DELETE FROM consistency.twopc_decisions WHERE decided_at < now() - interval '1 minute';
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'twopc_unconfirmed_commits';
ROLLBACK;

-- twopc_recovery: a participant, and no worker has run recovery in this database.
BEGIN;
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'twopc_recovery';
SELECT consistency.add_participant('integ', 'host=127.0.0.1 port=1 dbname=nowhere user=nobody');
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'twopc_recovery';
SELECT consistency.drop_participant('integ', force => true);
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'twopc_recovery';
ROLLBACK;

-- inbox_offsets_topics: an offset kept for a topic its consumer no longer reads.
BEGIN;
INSERT INTO consistency.consumer_state (name, topics, handler, raw_value, owner, start_from)
  VALUES ('integ-in', ARRAY['integ.a', 'integ.b'],
          'integ.handle(text,int,bigint,text,jsonb,jsonb)'::regprocedure, false, 10, 'earliest');
INSERT INTO consistency.consumer_offsets (consumer, topic, partition, next_offset)
  VALUES ('integ-in', 'integ.a', 0, 5), ('integ-in', 'integ.b', 0, 7);
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'inbox_offsets_topics';
UPDATE consistency.consumer_state SET topics = ARRAY['integ.a'] WHERE name = 'integ-in';
SELECT check_name, ok, detail FROM consistency.check_integrity() WHERE check_name = 'inbox_offsets_topics';
DELETE FROM consistency.consumer_offsets WHERE consumer = 'integ-in' AND topic = 'integ.b';
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'inbox_offsets_topics';
ROLLBACK;

DROP SCHEMA integ CASCADE;
