-- Correlation ids as roles see them: the setting is any role's, its value is checked where
-- it is used, and a tenant's handler cannot put ids on anything but its own writes (the
-- context is the extension's, set around the call and gone after it).
BEGIN;
SELECT plan(11);

SELECT has_column('consistency', 'saga_instances', 'correlation_id', 'sagas keep the correlation id they started with');
SELECT col_type_is('consistency', 'saga_instances', 'correlation_id', 'text', 'as text');
SELECT is((SELECT context FROM pg_settings WHERE name = 'pg_consistency.correlation_id'), 'user',
          'pg_consistency.correlation_id is user-settable');
SELECT is(current_setting('pg_consistency.correlation_id'), '', 'empty by default');

CREATE ROLE corr_tenant_a IN ROLE consistency_writer;
CREATE ROLE corr_tenant_b IN ROLE consistency_writer;
CREATE SCHEMA corr_a AUTHORIZATION corr_tenant_a;
-- Tenant A's consumer handler tries to write under another correlation id by setting it.
CREATE FUNCTION corr_a.handler(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('pg_consistency.correlation_id', 'forged', true);
  PERFORM consistency.publish('corr.a', key, value);
  PERFORM consistency.publish('corr.a', key || '-explicit', value, '{"correlation_id": "chosen"}');
END $$;
ALTER FUNCTION corr_a.handler(text, int, bigint, text, jsonb, jsonb) OWNER TO corr_tenant_a;

SET ROLE corr_tenant_a;
SELECT lives_ok($$SELECT consistency.create_consumer('corr_a', ARRAY['corr.in'], 'corr_a.handler(text,int,bigint,text,jsonb,jsonb)')$$,
                'a writer creates a consumer with its own handler');
RESET ROLE;
-- A message to re-run (as a dead letter: no broker here).
INSERT INTO consistency.consumer_dead_letters (consumer, topic, partition, "offset", key, value, headers, reason)
  VALUES ('corr_a', 'corr.in', 0, 1, 'm', convert_to('{}', 'UTF8'), '{"ce_id": "m-1", "correlation_id": "req-a"}', 'x');
SET ROLE corr_tenant_a;
SELECT is(consistency.retry_consumer_dead_letters('corr_a'), 1, 'the handler ran');
SELECT is((SELECT string_agg(key || ' ' || pg_catalog.concat_ws(' ', headers->>'correlation_id', headers->>'causation_id'),
                             ', ' ORDER BY id)
             FROM consistency.outbox WHERE topic = 'corr.a'),
          'm req-a m-1, m-explicit chosen m-1',
          'the handler''s writes carry the message''s ids, not the setting it changed; its explicit header is its own');
RESET ROLE;

-- Tenant B's writes right after: nothing of A's context.
SET ROLE corr_tenant_b;
CREATE TEMP TABLE b_ids AS SELECT consistency.publish('corr.b', 'k', '{}'::jsonb) AS id;
SELECT is((SELECT headers FROM consistency.outbox WHERE id = (SELECT id FROM b_ids)), '{}'::jsonb,
          'another role''s publish after the handler carries no ids');
SELECT is(current_setting('pg_consistency.correlation_id'), '', 'the handler''s SET did not outlive it');
-- A malformed value is refused where it is used, for any role.
SET LOCAL pg_consistency.correlation_id = 'two words';
SELECT throws_ok($$SELECT consistency.publish('corr.b', 'k', '{}'::jsonb)$$, 'CS002',
                 'invalid pg_consistency.correlation_id: byte 4 (0x20) is not a visible ASCII character',
                 'a malformed setting: CS002 on publish');
SELECT throws_ok($$SELECT consistency.append_event('corrb-1', NULL, 'X', '{}')$$, 'CS002', NULL,
                 'and on append');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
