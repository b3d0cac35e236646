-- Bugs scripts/sqlfuzz found (docs/development.md, "Fuzzing the SQL surface"), each with
-- the call that showed it. Runs on its own after 00_foundation, or after the others.
\i sql/include/helpers.sql
SET client_min_messages = warning;
CREATE SCHEMA fuzzfix;
CREATE FUNCTION fuzzfix.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION fuzzfix.handler(bigint, text, bigint, text, jsonb, jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
RESET client_min_messages;

-- define_saga called several times by one statement: each call read the latest version
-- with the statement's snapshot, missed the one the previous call had just written and
-- failed on the primary key (23505). Now: the same definition keeps its version, a new
-- one gets the next.
SELECT consistency.define_saga('fuzzfix_once', '{"steps": [{"name": "a", "action": {"function": "fuzzfix.step"}}]}')
  FROM generate_series(1, 3);
SELECT consistency.define_saga('fuzzfix_grow', format('{"steps": [{"name": "s%s", "action": {"function": "fuzzfix.step"}}]}', g)::jsonb)
  FROM generate_series(1, 3) g;
SELECT name, version FROM consistency.saga_definitions WHERE name LIKE 'fuzzfix%' ORDER BY 1, 2;

-- A subscription checkpoint beyond the last position handed out skipped events appended
-- later and failed check_integrity() (eventstore.subscription_positions): create and
-- reset accepted any position. Now CS002; the last position handed out is still fine.
SELECT regexp_replace(pg_temp.error_of(format(
         $$SELECT consistency.create_subscription('fuzzfix_sub', 'fuzzfix.handler(bigint,text,bigint,text,jsonb,jsonb)', NULL, NULL, %s)$$,
         (SELECT last_value + 1 FROM consistency.event_position_seq))), '([ (])[0-9]+', '\1N', 'g') AS create_beyond;
SELECT pg_temp.error_of(format(
         $$SELECT consistency.create_subscription('fuzzfix_sub', 'fuzzfix.handler(bigint,text,bigint,text,jsonb,jsonb)', NULL, NULL, %s)$$,
         (SELECT last_value FROM consistency.event_position_seq))) AS create_at_last;
SELECT regexp_replace(pg_temp.error_of($$SELECT consistency.reset_subscription('fuzzfix_sub', 9223372036854775807)$$),
                      '([ (])[0-9]+', '\1N', 'g') AS reset_beyond;
SELECT pg_temp.error_of($$SELECT consistency.reset_subscription('fuzzfix_sub', 0)$$) AS reset_to_start;
SELECT check_name, ok FROM consistency.check_integrity() WHERE check_name = 'eventstore.subscription_positions';
SELECT consistency.drop_subscription('fuzzfix_sub');

-- _record_saga_reply (callable by writers) with a NULL or unknown result raised a NOT
-- NULL violation (23502). Now CS002, and nothing is written.
SELECT count(*) AS replies_before FROM consistency.saga_reply_log \gset
SELECT pg_temp.error_of($$SELECT consistency._record_saga_reply(NULL, NULL, NULL, NULL, NULL, NULL)$$) AS null_result;
SELECT pg_temp.error_of($$SELECT consistency._record_saga_reply('x', 's', '1', 'completed', 'forged', 'd')$$) AS unknown_result;
SELECT pg_temp.error_of($$SELECT consistency._record_saga_reply('x', 's', '1', 'completed', 'invalid', 'd')$$) AS known_result;
SELECT count(*) - :replies_before AS replies_written FROM consistency.saga_reply_log;

SET client_min_messages = warning;
DROP SCHEMA fuzzfix CASCADE;
DELETE FROM consistency.saga_definitions WHERE name LIKE 'fuzzfix%';
