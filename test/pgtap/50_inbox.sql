-- Inbox: the contract's objects and shapes, SQLSTATEs, who may do what, and the
-- dead-letter retry and saga reply handler in a transaction.
BEGIN;
SELECT plan(30);

SELECT has_table('consistency', 'consumer_offsets', 'consumer_offsets table');
SELECT has_table('consistency', 'consumer_dead_letters', 'consumer_dead_letters table');
SELECT has_view('consistency', 'consumers', 'consumers view');
SELECT columns_are('consistency', 'consumer_offsets',
  ARRAY['consumer', 'topic', 'partition', 'next_offset', 'high_watermark', 'attempts', 'last_error', 'updated_at'],
  'consumer_offsets: the contract''s (consumer, topic, partition, next_offset) and the worker''s bookkeeping');
SELECT col_type_is('consistency', 'consumer_dead_letters', 'value', 'bytea', 'dead letter value is bytea');
SELECT col_type_is('consistency', 'consumer_dead_letters', 'headers', 'jsonb', 'dead letter headers are jsonb');
SELECT col_type_is('consistency', 'consumer_dead_letters', 'offset', 'bigint', 'dead letter offset is bigint');
SELECT has_column('consistency', 'consumer_dead_letters', 'reason', 'dead letters have a reason');
SELECT has_column('consistency', 'consumer_dead_letters', 'failed_at', 'dead letters have failed_at');
SELECT col_type_is('consistency', 'consumers', 'lag', 'bigint', 'lag is bigint');
SELECT has_function('consistency', 'create_consumer', ARRAY['text', 'text[]', 'regprocedure', 'text'], 'create_consumer');
SELECT function_returns('consistency', 'retry_consumer_dead_letters', ARRAY['text'], 'integer');
SELECT has_function('consistency', 'reset_consumer', ARRAY['text', 'text', 'integer', 'bigint'], 'reset_consumer');
SELECT has_function('consistency', 'handle_saga_reply', ARRAY['text', 'integer', 'bigint', 'text', 'jsonb', 'jsonb'],
  'handle_saga_reply has the handler signature');

CREATE SCHEMA pgtap_inbox;
CREATE TABLE pgtap_inbox.got (off bigint, v jsonb);
CREATE FUNCTION pgtap_inbox.h(t text, p int, o bigint, k text, v jsonb, h jsonb) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO pgtap_inbox.got VALUES (o, v) $$;
SELECT lives_ok($$SELECT consistency.create_consumer('pt', ARRAY['t1'], 'pgtap_inbox.h(text,int,bigint,text,jsonb,jsonb)')$$,
  'create_consumer');
SELECT throws_ok($$SELECT consistency.create_consumer('pt', ARRAY['t1'], 'pgtap_inbox.h(text,int,bigint,text,jsonb,jsonb)')$$,
  '42710', NULL, 'a second consumer of the same name');
SELECT throws_ok($$SELECT consistency.create_consumer('pt2', ARRAY['t 1'], 'pgtap_inbox.h(text,int,bigint,text,jsonb,jsonb)')$$,
  'CS002', NULL, 'bad topic name: CS002');
SELECT throws_ok($$SELECT consistency.create_consumer('pt2', ARRAY['t1'], 'pg_catalog.now()')$$,
  'CS002', NULL, 'bad handler signature: CS002');
SELECT throws_ok($$SELECT consistency.pause_consumer('nope')$$, 'CS004', NULL, 'unknown consumer: CS004');
SELECT throws_ok($$SELECT consistency.reset_consumer('pt', 't2', 0, 0)$$, 'CS002', NULL, 'reset of a topic it does not read');
SELECT is((SELECT status FROM consistency.consumers WHERE name = 'pt'), 'stopped', 'no worker here: stopped');
SELECT lives_ok($$SELECT consistency.pause_consumer('pt')$$, 'pause');
SELECT is((SELECT status FROM consistency.consumers WHERE name = 'pt'), 'paused', 'paused');

INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", value, reason) VALUES
  ('pt', 't1', 0, 1, convert_to('{"a": 1}', 'UTF8'), 'x'), ('pt', 't1', 0, 2, convert_to('{', 'UTF8'), 'x');
SELECT is(consistency.retry_consumer_dead_letters('pt'), 1, 'retry runs the handler: one succeeds');
SELECT is((SELECT string_agg(off || '=' || v::text, ',') FROM pgtap_inbox.got), '1={"a": 1}', 'its effect');
SELECT matches((SELECT reason FROM consistency.consumer_dead_letters WHERE consumer = 'pt'), '^CS002: ',
  'the non-JSON one stays with a CS002 reason');

-- Privileges.
SELECT ok(NOT has_function_privilege('consistency_reader', 'consistency.create_consumer(text,text[],regprocedure,text)', 'EXECUTE'),
  'readers cannot create consumers');
SELECT ok(has_function_privilege('consistency_writer', 'consistency.create_consumer(text,text[],regprocedure,text)', 'EXECUTE'),
  'writers can');
SELECT ok(NOT has_table_privilege('consistency_admin', 'consistency.consumer_offsets', 'INSERT'),
  'nobody writes the offsets directly');
SELECT ok(NOT has_function_privilege('public', 'consistency.handle_saga_reply(text,integer,bigint,text,jsonb,jsonb)', 'EXECUTE'),
  'PUBLIC cannot run the saga reply handler');

SELECT * FROM finish();
ROLLBACK;
