-- pg_consistency: Mermaid diagrams of saga definitions and of sagas (docs/sagas.md)

\echo Use "CREATE EXTENSION pg_consistency" to load this file. \quit

-- Both run as their caller and read the saga tables and the saga's audit stream with the
-- extension owner's rights inside pgc::pg::OwnerScope (src/saga/diagram_functions.cpp):
-- read-only, no user code. Who may call them is their EXECUTE grant: readers, as for
-- saga_status and the consistency.sagas view.
CREATE FUNCTION consistency.saga_diagram(saga_id uuid) RETURNS text
  LANGUAGE c STABLE
  AS 'MODULE_PATHNAME', 'pgc_saga_diagram';

CREATE FUNCTION consistency.saga_definition_diagram(name text) RETURNS text
  LANGUAGE c STABLE
  AS 'MODULE_PATHNAME', 'pgc_saga_definition_diagram';

REVOKE ALL ON FUNCTION consistency.saga_diagram(uuid), consistency.saga_definition_diagram(text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consistency.saga_diagram(uuid), consistency.saga_definition_diagram(text)
  TO consistency_reader;
