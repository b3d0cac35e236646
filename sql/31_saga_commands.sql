-- Saga command steps: the command goes through the outbox in the transaction that makes
-- the saga wait; replies (complete_step / fail_step) are applied once, repeats are
-- no-ops, late and misdirected ones raise CS003; no reply within the timeout is a failed
-- attempt. consistency._advance_sagas() plays the worker (there is none here).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_consistency;
DROP SCHEMA IF EXISTS wh CASCADE;
RESET client_min_messages;
SET pg_consistency.saga_chain_steps = 1;  -- one step per _advance_sagas call

\i sql/include/helpers.sql
-- The commands a saga has in the outbox: topic, whether keyed by the saga, payload, headers.
CREATE FUNCTION pg_temp.commands(saga uuid) RETURNS TABLE(topic text, keyed boolean, payload jsonb, headers jsonb)
LANGUAGE sql AS $$
  SELECT o.topic, o.key = saga::text, convert_from(o.payload, 'UTF8')::jsonb - 'saga_id',
         o.headers - 'saga_id' - 'correlation_id' - 'causation_id'
           - ARRAY(SELECT k FROM jsonb_object_keys(o.headers) k WHERE k LIKE 'ce\_%')
    FROM consistency.outbox o
   WHERE o.headers->>'saga_id' = saga::text
   ORDER BY o.id
$$;

\i sql/include/warehouse.sql
CREATE FUNCTION wh.fails(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'billing down'; END $$;

SELECT consistency.define_saga('shipping', '{"steps": [
  {"name": "reserve", "action": {"function": "wh.reserve"}, "compensation": {"function": "wh.release"}},
  {"name": "ship", "action": {"topic": "shipping.commands", "command": "CreateShipment"},
   "compensation": {"topic": "shipping.commands", "command": "CancelShipment"},
   "timeout": "1 hour", "retry": {"max_attempts": 2, "backoff": "0 ms"}},
  {"name": "finish", "action": {"function": "wh.finish"}}]}');

-- The command is published in the transaction that makes the saga wait.
SELECT consistency.start_saga('shipping', '{"order": 7}') AS s1 \gset
SELECT consistency._advance_sagas() AS reserve;
SELECT count(*) AS no_command_yet FROM pg_temp.commands(:'s1');
SELECT consistency._advance_sagas() AS send;
SELECT status, current_step, attempts FROM consistency.saga_status(:'s1');
SELECT phase, next_run_at > now() + interval '59 minutes' AS reply_deadline_in_an_hour
  FROM consistency.saga_instances WHERE id = :'s1';
SELECT * FROM pg_temp.commands(:'s1');
SELECT consistency._advance_sagas() AS nothing_while_waiting;

-- Misdirected replies.
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L)', :'s1', 'reserve'));
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L)', :'s1', 'finish'));
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L)', :'s1', 'teleport'));
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L, %L)', :'s1', 'ship', '"done"'));

-- The reply: applied once, its output merged, the next step ready.
SELECT consistency.complete_step(:'s1', 'ship', '{"tracking": "T-1"}');
SELECT status, current_step, attempts, data FROM consistency.saga_status(:'s1');
SELECT consistency.stream_version('saga-' || :'s1') AS events_after_reply \gset
-- A repeat is a no-op: no error, no new event, data unchanged.
SELECT consistency.complete_step(:'s1', 'ship', '{"tracking": "T-2"}');
SELECT consistency.stream_version('saga-' || :'s1') = :events_after_reply AS no_new_event,
       (SELECT data->>'tracking' FROM consistency.sagas WHERE id = :'s1') AS tracking;
-- A failure for a step that completed is not a repeat.
SELECT pg_temp.err_brief(format('SELECT consistency.fail_step(%L, %L, %L)', :'s1', 'ship', 'lost'));
SELECT consistency._advance_sagas() AS finish;
SELECT status, current_step FROM consistency.saga_status(:'s1');
SELECT consistency.complete_step(:'s1', 'ship', '{}');  -- still a repeat once completed
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L)', :'s1', 'finish'));
SELECT type, data - 'outbox_id' AS data FROM consistency.read_stream('saga-' || :'s1') ORDER BY version;

-- A failure reply, then a retry; a late success is refused; timeouts without a reply.
SELECT consistency.define_saga('shipping_fast', '{"steps": [
  {"name": "reserve", "action": {"function": "wh.reserve"}, "compensation": {"function": "wh.release"}},
  {"name": "ship", "action": {"topic": "shipping.commands", "command": "CreateShipment"},
   "timeout": "50 ms", "retry": {"max_attempts": 2, "backoff": "0 ms"}}]}');
SELECT consistency.start_saga('shipping_fast', '{}') AS s2 \gset
SELECT consistency._advance_sagas() FROM generate_series(1, 2);
SELECT consistency.fail_step(:'s2', 'ship', 'no truck available');
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'s2');
SELECT consistency.fail_step(:'s2', 'ship', 'no truck available');  -- repeat: no-op
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L)', :'s2', 'ship'));
SELECT pg_temp.err_brief(format('SELECT consistency.retry_saga(%L)', :'s2')) AS retry_in_backoff_ok;
SELECT consistency._advance_sagas() AS resend;
SELECT headers->>'attempt' AS attempt, payload->>'attempt' AS payload_attempt FROM pg_temp.commands(:'s2');
SELECT pg_temp.err_brief(format('SELECT consistency.retry_saga(%L)', :'s2'));
-- Deliberate: the step's 50 ms reply timeout passes (the clock, not another process).
SELECT pg_sleep(0.1);
SELECT consistency._advance_sagas() AS timeout;
SELECT status, current_step, attempts, last_error FROM consistency.saga_status(:'s2');
SELECT consistency._advance_sagas() AS release;
SELECT status, last_error FROM consistency.saga_status(:'s2');
SELECT effect FROM wh.effects WHERE saga = :'s2' ORDER BY seq;
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L)', :'s2', 'ship'));
SELECT consistency.fail_step(:'s2', 'ship', 'late failure');  -- a failure of the failed step: a repeat
SELECT type, data->>'error' AS error FROM consistency.read_stream('saga-' || :'s2')
 WHERE type IN ('StepFailed', 'CompensationStarted') ORDER BY version;

-- A command compensation: sent when a later step fails, completed by its reply.
SELECT consistency.define_saga('undo_by_command', '{"steps": [
  {"name": "ship", "action": {"topic": "shipping.commands", "command": "CreateShipment"},
   "compensation": {"topic": "shipping.commands", "command": "CancelShipment"}, "timeout": "1 hour"},
  {"name": "bill", "action": {"function": "wh.fails"}, "retry": {"max_attempts": 1}}]}');
SELECT consistency.start_saga('undo_by_command', '{}') AS s3 \gset
SELECT consistency._advance_sagas() AS send;
SELECT consistency.complete_step(:'s3', 'ship', '{"shipment": "S-9"}');
SELECT consistency._advance_sagas() AS bill_fails;
SELECT status, current_step, attempts FROM consistency.saga_status(:'s3');
-- The action's reply repeated before the compensation is sent: still a repeat.
SELECT consistency.complete_step(:'s3', 'ship', '{"shipment": "S-9"}');
SELECT consistency._advance_sagas() AS send_compensation;
SELECT status, current_step, attempts FROM consistency.saga_status(:'s3');
SELECT payload->>'command' AS command, payload->>'phase' AS phase, headers->>'phase' AS header_phase,
       payload->'data' AS data FROM pg_temp.commands(:'s3');
SELECT consistency.complete_step(:'s3', 'ship', '{"cancelled": true}');
SELECT status, current_step, data FROM consistency.saga_status(:'s3');
SELECT consistency.complete_step(:'s3', 'ship', '{}');  -- repeat after the end: no-op
SELECT pg_temp.err_brief(format('SELECT consistency.fail_step(%L, %L, %L)', :'s3', 'ship', 'x'));

-- An operator cannot retry a saga that waits for a reply, but may abort it; the reply
-- that comes afterwards is refused.
SELECT consistency.start_saga('undo_by_command', '{}') AS s4 \gset
SELECT consistency._advance_sagas() AS send;
SELECT pg_temp.err_brief(format('SELECT consistency.retry_saga(%L)', :'s4'));
SELECT consistency.abort_saga(:'s4', 'carrier bankrupt');
SELECT pg_temp.err_brief(format('SELECT consistency.complete_step(%L, %L)', :'s4', 'ship'));

-- Metrics count the waiting sagas and the timeouts.
SELECT consistency.start_saga('undo_by_command', '{}') AS s5 \gset
SELECT consistency._advance_sagas() AS send;
SELECT metric, value FROM consistency._metrics_saga()
 WHERE metric IN ('pg_consistency_saga_waiting_replies', 'pg_consistency_saga_timeouts_total') ORDER BY metric;
