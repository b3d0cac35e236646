-- pg_consistency: two-phase commit across PostgreSQL databases (src/twopc)

-- Participants. conninfo may hold a password: only consistency_admin and superusers can
-- read it; readers see the other columns (and the consistency.participants view).
CREATE SEQUENCE consistency.twopc_participant_id_seq AS integer;
CREATE TABLE consistency.twopc_participants (
  id         integer PRIMARY KEY DEFAULT nextval('consistency.twopc_participant_id_seq'),
  name       text NOT NULL UNIQUE,
  conninfo   text NOT NULL,
  trusted    boolean NOT NULL,   -- added by a superuser: may connect without a password
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by name NOT NULL DEFAULT session_user
);
ALTER SEQUENCE consistency.twopc_participant_id_seq OWNED BY consistency.twopc_participants.id;
SELECT pg_catalog.pg_extension_config_dump('consistency.twopc_participants', '');
SELECT pg_catalog.pg_extension_config_dump('consistency.twopc_participant_id_seq', '');

-- Decisions: one row per participant of every distributed transaction, inserted inside
-- the local transaction at PRE_COMMIT (so it exists exactly when that transaction
-- committed), deleted by the worker's recovery once the participant has committed.
CREATE TABLE consistency.twopc_decisions (
  participant_id integer NOT NULL,
  xid            xid8 NOT NULL,
  decided_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
  PRIMARY KEY (participant_id, xid)
);

REVOKE ALL ON consistency.twopc_participants, consistency.twopc_decisions,
  consistency.twopc_participant_id_seq FROM PUBLIC;
GRANT SELECT ON consistency.twopc_participants TO consistency_admin;
GRANT SELECT (id, name, trusted, created_at, created_by) ON consistency.twopc_participants
  TO consistency_reader;
GRANT SELECT ON consistency.twopc_decisions TO consistency_reader;

-- Who may run statements on a participant (besides superusers and consistency_admin):
-- the roles an admin granted it to with consistency.grant_participant, and their members
-- (inherited privileges). regrole, so that pg_dump writes role names and a restore maps
-- them to the new cluster's roles.
CREATE TABLE consistency.twopc_participant_grants (
  participant_id integer NOT NULL
    REFERENCES consistency.twopc_participants (id) ON DELETE CASCADE,
  role           regrole NOT NULL,
  granted_at     timestamptz NOT NULL DEFAULT now(),
  granted_by     name NOT NULL DEFAULT session_user,
  PRIMARY KEY (participant_id, role)
);
SELECT pg_catalog.pg_extension_config_dump('consistency.twopc_participant_grants', '');
REVOKE ALL ON consistency.twopc_participant_grants FROM PUBLIC;
GRANT SELECT ON consistency.twopc_participant_grants TO consistency_admin;

CREATE VIEW consistency.participant_grants AS
  SELECT p.name AS participant, g.role, g.granted_at, g.granted_by
    FROM consistency.twopc_participant_grants g
    JOIN consistency.twopc_participants p ON p.id OPERATOR(pg_catalog.=) g.participant_id;
REVOKE ALL ON consistency.participant_grants FROM PUBLIC;
GRANT SELECT ON consistency.participant_grants TO consistency_admin;

CREATE VIEW consistency.participants AS
  SELECT id, name, trusted, created_at, created_by FROM consistency.twopc_participants;
GRANT SELECT ON consistency.participants TO consistency_reader;

-- The catalog of participants, for consistency_admin; conninfo must name the remote role
-- (user=), and a non-superuser must give a password.
CREATE FUNCTION consistency.add_participant(name text, conninfo text) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_add_participant';
CREATE FUNCTION consistency.drop_participant(name text, force boolean DEFAULT false) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_drop_participant';

-- Which roles (and their members) may run statements on a participant.
CREATE FUNCTION consistency.grant_participant(participant text, role regrole) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_grant_participant';
CREATE FUNCTION consistency.revoke_participant(participant text, role regrole) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_revoke_participant';

-- A statement on a participant inside its transaction bound to the local one: remote_exec
-- returns the rows it affected, remote_query its rows as jsonb objects.
CREATE FUNCTION consistency.remote_exec(participant text, sql text) RETURNS bigint
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'pgc_twopc_remote_exec';
CREATE FUNCTION consistency.remote_query(participant text, sql text) RETURNS SETOF jsonb
  LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100 AS 'MODULE_PATHNAME', 'pgc_twopc_remote_query';

-- Prepared transactions of this database left on participants, each with the decision
-- recovery applies (an unreachable participant: the commits it has not confirmed).
CREATE FUNCTION consistency._twopc_in_doubt(
    OUT participant text, OUT gid text, OUT prepared_at timestamptz, OUT decision text)
  RETURNS SETOF record
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'pgc_twopc_in_doubt';
CREATE VIEW consistency.in_doubt AS SELECT * FROM consistency._twopc_in_doubt();

-- This pillar's rows of consistency.metrics() and consistency.check_integrity().
CREATE FUNCTION consistency._metrics_twopc()
  RETURNS TABLE(metric text, kind text, help text, labels jsonb, value double precision)
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_metrics';
CREATE FUNCTION consistency._integrity_twopc()
  RETURNS TABLE(check_name text, ok boolean, detail text)
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'pgc_twopc_integrity';

REVOKE ALL ON FUNCTION consistency.add_participant(text, text),
  consistency.drop_participant(text, boolean),
  consistency.grant_participant(text, regrole), consistency.revoke_participant(text, regrole),
  consistency.remote_exec(text, text), consistency.remote_query(text, text),
  consistency._twopc_in_doubt(), consistency._metrics_twopc(), consistency._integrity_twopc()
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.add_participant(text, text),
  consistency.drop_participant(text, boolean),
  consistency.grant_participant(text, regrole), consistency.revoke_participant(text, regrole)
  TO consistency_admin;
GRANT EXECUTE ON FUNCTION consistency.remote_exec(text, text),
  consistency.remote_query(text, text) TO consistency_writer;
GRANT EXECUTE ON FUNCTION consistency._twopc_in_doubt(), consistency._metrics_twopc(),
  consistency._integrity_twopc() TO consistency_reader;
GRANT SELECT ON consistency.in_doubt TO consistency_reader;
