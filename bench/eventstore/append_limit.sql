-- The physical limit of a single-event append: the same event row INSERT plus the
-- UPDATE of the stream's version row, in one statement, returning the new version (as
-- append_event does).
\set s random(1, 10000)
WITH s AS (UPDATE bench.limit_streams SET version = version + 1, updated_at = now()
            WHERE stream = 'acct-' || :s RETURNING stream, version)
INSERT INTO bench.limit_events (stream, version, event_id, type, data)
  SELECT stream, version, gen_random_uuid(), 'Deposited', '{"amount": 42, "sku": "ABC-123"}' FROM s
  RETURNING version;
