-- pg_consistency: consistency levels (tokens, waits, the read horizon in WAL for standbys);
-- see docs/consistency.md.

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- The read horizon the primary's worker last published: a standby caps read_all at the
-- value it has replayed (its commit record follows, in WAL order, the commits of every
-- position below it). One row, advanced by the worker when the horizon moves.
CREATE TABLE consistency.published_horizon (
  only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  horizon      bigint NOT NULL CHECK (horizon >= 1),
  published_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
INSERT INTO consistency.published_horizon (horizon) VALUES (1);
COMMENT ON TABLE consistency.published_horizon IS
  'read_all on a standby returns positions below this horizon (published by the primary''s worker).';

CREATE FUNCTION consistency.session_token() RETURNS text
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'pgc_cs_session_token';

-- NULL stands for "no token yet": max_token(NULL, t) = t. STABLE, not IMMUTABLE: it refuses
-- tokens of another cluster or database, so the same text may fail elsewhere.
CREATE FUNCTION consistency.max_token(a text, b text) RETURNS text
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'pgc_cs_max_token';

CREATE FUNCTION consistency.wait_for_token(token text, timeout interval DEFAULT '5 seconds',
                                           subscription text DEFAULT NULL)
  RETURNS boolean LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_cs_wait_for_token';

-- The same wait holding no snapshot: CALL it outside an explicit transaction block.
CREATE PROCEDURE consistency.await_token(token text, timeout interval DEFAULT '5 seconds',
                                         subscription text DEFAULT NULL,
                                         INOUT reached boolean DEFAULT NULL)
  LANGUAGE c AS 'MODULE_PATHNAME', 'pgc_cs_await_token';

REVOKE ALL ON consistency.published_horizon FROM PUBLIC;
GRANT SELECT ON consistency.published_horizon TO consistency_reader;
REVOKE ALL ON FUNCTION consistency.session_token(), consistency.max_token(text, text),
  consistency.wait_for_token(text, interval, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE consistency.await_token(text, interval, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.session_token(), consistency.max_token(text, text),
  consistency.wait_for_token(text, interval, text) TO consistency_reader;
GRANT EXECUTE ON PROCEDURE consistency.await_token(text, interval, text, boolean) TO consistency_reader;
