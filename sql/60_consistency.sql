-- Consistency levels: tokens (format, comparison, combination), waits on the primary,
-- await_token in and outside a transaction block, and every error of the SQL surface.
-- This database has no worker: subscriptions move only by _subscription_step.
\i sql/include/helpers.sql

-- Parts of a token: system identifier, database, WAL position, event position.
CREATE FUNCTION pg_temp.part(t text, n int) RETURNS text LANGUAGE sql AS $$
  SELECT pg_catalog.split_part(t, '-', n + 1)
$$;
CREATE FUNCTION pg_temp.with_parts(t text, lsn text, pos text) RETURNS text LANGUAGE sql AS $$
  SELECT 'pgc1-' || pg_temp.part(t, 1) || '-' || pg_temp.part(t, 2) || '-' || lsn || '-' || pos
$$;

SELECT consistency.session_token() AS t0 \gset
SELECT :'t0' ~ '^pgc1-[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{16}-[0-9a-f]{16}$' AS well_formed,
       pg_temp.part(:'t0', 1) = (SELECT pg_catalog.lpad(pg_catalog.to_hex(system_identifier), 16, '0')
                                   FROM pg_catalog.pg_control_system()) AS names_this_cluster,
       pg_temp.part(:'t0', 2) = (SELECT pg_catalog.lpad(pg_catalog.to_hex(oid::int), 8, '0')
                                   FROM pg_catalog.pg_database WHERE datname = current_database())
         AS names_this_database,
       ('x' || pg_temp.part(:'t0', 4))::bit(64)::bigint
         = coalesce((SELECT max(global_position) FROM consistency.events), 0) + 1 AS position_is_next_visible;

-- A later token covers the earlier one: its event position passed the append, its WAL
-- position the commit.
SELECT consistency.append_event('cs-1', NULL, 'Happened', '{}') AS v;
SELECT consistency.session_token() AS t1 \gset
SELECT ('x' || pg_temp.part(:'t1', 4))::bit(64)::bigint
         = (SELECT max(global_position) FROM consistency.events) + 1 AS covers_the_append,
       pg_temp.part(:'t1', 3) > pg_temp.part(:'t0', 3) AS wal_moved,
       consistency.max_token(:'t0', :'t1') = :'t1' AS max_is_later,
       consistency.max_token(:'t1', :'t0') = :'t1' AS commutes,
       consistency.max_token(:'t1', :'t1') = :'t1' AS idempotent,
       consistency.max_token(NULL, :'t1') = :'t1' AS null_is_no_token,
       consistency.max_token(:'t1', NULL) = :'t1' AS null_is_no_token_2,
       consistency.max_token(NULL, NULL) IS NULL AS both_null;

-- Combination takes each part's maximum: neither of two crossed tokens covers the other.
SELECT pg_temp.with_parts(:'t1', '00000000ff000000', '0000000000000002') AS ta,
       pg_temp.with_parts(:'t1', '0000000001000000', '0000000000000009') AS tb \gset
SELECT consistency.max_token(:'ta', :'tb') = pg_temp.with_parts(:'t1', '00000000ff000000', '0000000000000009')
         AS combined;

-- Waits on the primary: a token of this server is reached at once.
SELECT consistency.wait_for_token(:'t1') AS reached;
SELECT consistency.wait_for_token(:'t1', '0') AS reached_zero_timeout;
CALL consistency.await_token(:'t1');
CALL consistency.await_token(:'t1', '1 s', NULL, NULL);
-- Inside a transaction block the procedure cannot commit: it waits like the function.
BEGIN;
CALL consistency.await_token(:'t1', '1 s');
SELECT consistency.append_event('cs-1', NULL, 'Happened', '{}') AS still_in_the_block;
COMMIT;
SELECT consistency.stream_version('cs-1') AS committed_both;

-- A subscription: true once its checkpoint passed every event the token covers.
CREATE TABLE cs_seen (pos bigint);
CREATE FUNCTION cs_handler(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO public.cs_seen VALUES (p) $$;
SELECT consistency.create_subscription('cs_sub', 'cs_handler(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['cs']);
SELECT consistency.append_event('cs-2', NULL, 'Happened', '{}') AS v;
SELECT consistency.session_token() AS t2 \gset
SELECT consistency.wait_for_token(:'t2', '50 ms', 'cs_sub') AS behind_times_out;
CALL consistency.await_token(:'t2', '50 ms', 'cs_sub');
SELECT consistency._subscription_step('cs_sub') > 0 AS stepped;
SELECT consistency.wait_for_token(:'t2', '0', 'cs_sub') AS caught_up;
CALL consistency.await_token(:'t2', '0', 'cs_sub');
SELECT count(*) = 3 AS handled_all FROM cs_seen;
-- A parked subscription will not get there: false at once, not at the timeout.
SELECT consistency.append_event('cs-3', NULL, 'Happened', '{}') AS v;
SELECT consistency.session_token() AS t3 \gset
UPDATE consistency.subscription_state SET status = 'failed' WHERE name = 'cs_sub';
SELECT consistency.wait_for_token(:'t3', '1 hour', 'cs_sub') AS parked_is_false;
SELECT consistency.drop_subscription('cs_sub');

-- Errors: CS002 for malformed tokens and arguments, CS004 for an unknown subscription.
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token(NULL)$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('not a token')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc2-0000000000000001-00000001-0000000000000001-0000000000000001')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc1-0000000000000001-00000001-0000000000000001-000000000000001')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc1-0000000000000001-00000001-0000000000000001-00000000000000010')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc1-000000000000000G-00000001-0000000000000001-0000000000000001')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc1-0000000000000001-0000000A-0000000000000001-0000000000000001')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc1-0000000000000001-00000001_0000000000000001-0000000000000001')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc1-0000000000000001-00000001-0000000000000000-0000000000000001')$$);
SELECT pg_temp.error_of($$SELECT consistency.wait_for_token('pgc1-0000000000000001-00000001-0000000000000001-8000000000000000')$$);
-- Tokens of another cluster or database (the DETAIL names both; shown without it).
SELECT pg_temp.err_brief(pg_catalog.format('SELECT consistency.wait_for_token(%L)',
  'pgc1-0000000000000001-' || pg_temp.part(:'t1', 2) || '-0000000000000001-0000000000000001'));
SELECT pg_temp.err_brief(pg_catalog.format('SELECT consistency.wait_for_token(%L)',
  'pgc1-' || pg_temp.part(:'t1', 1) || '-00000001-0000000000000001-0000000000000001'));
SELECT pg_temp.err_brief(pg_catalog.format('SELECT consistency.max_token(%L, %L)', :'t1',
  'pgc1-' || pg_temp.part(:'t1', 1) || '-00000001-0000000000000001-0000000000000001'));
SELECT pg_temp.error_of(pg_catalog.format('SELECT consistency.max_token(%L, %L)', :'t1', 'junk'));
SELECT pg_temp.error_of(pg_catalog.format('SELECT consistency.max_token(%L, %L)', 'junk', :'t1'));
SELECT pg_temp.error_of(pg_catalog.format('SELECT consistency.wait_for_token(%L, NULL)', :'t1'));
SELECT pg_temp.error_of(pg_catalog.format('SELECT consistency.wait_for_token(%L, %L)', :'t1', '-1 s'));
SELECT pg_temp.error_of(pg_catalog.format('SELECT consistency.wait_for_token(%L, %L, %L)', :'t1', '1 s', ''));
SELECT pg_temp.error_of(pg_catalog.format('SELECT consistency.wait_for_token(%L, %L, %L)', :'t1', '1 s',
                                          pg_catalog.repeat('x', 201)));
SELECT pg_temp.error_of(pg_catalog.format('SELECT consistency.wait_for_token(%L, %L, %L)', :'t1', '1 s', 'nope'));
SELECT pg_temp.error_of(pg_catalog.format('CALL consistency.await_token(%L, %L, %L)', :'t1', '1 s', 'nope'));
SELECT pg_temp.error_of($$CALL consistency.await_token('junk')$$);

-- The read horizon row the worker advances (none runs here: it stays where it started).
SELECT count(*) AS one_row, min(horizon) AS horizon FROM consistency.published_horizon;
