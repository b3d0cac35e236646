-- Helpers shared by the regression suites (each includes this file with \i; pg_regress
-- feeds a suite to psql on standard input from the repository root).
-- Every name is schema-qualified: suites plant shadowing types and operators.
-- SQLSTATE | message | detail | hint of a statement's error, or 'no error'.
CREATE FUNCTION pg_temp.error_of(stmt pg_catalog.text) RETURNS pg_catalog.text LANGUAGE plpgsql AS $$
DECLARE
  st pg_catalog.text; msg pg_catalog.text; det pg_catalog.text; hnt pg_catalog.text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN pg_catalog.concat_ws(' | ', st, msg, coalesce(nullif(det, ''), '-'), coalesce(nullif(hnt, ''), '-'));
END $$;
-- The same with UUIDs masked (saga ids differ from run to run).
CREATE FUNCTION pg_temp.err(stmt pg_catalog.text) RETURNS pg_catalog.text LANGUAGE sql AS $$
  SELECT pg_catalog.regexp_replace(pg_temp.error_of(stmt),
           '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g')
$$;
-- SQLSTATE | message only, UUIDs masked.
CREATE FUNCTION pg_temp.err_brief(stmt pg_catalog.text) RETURNS pg_catalog.text LANGUAGE sql AS $$
  SELECT pg_catalog.regexp_replace(pg_temp.err(stmt), '^([^|]*\|[^|]*) \| .*$', '\1')
$$;
-- The SQLSTATE and the message as columns.
CREATE FUNCTION pg_temp.error_parts(stmt pg_catalog.text, OUT code pg_catalog.text, OUT message pg_catalog.text)
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  code := 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
END $$;
-- Plants a pg_temp domain over each pg_catalog type of `types`, checked by the caller's
-- pg_temp.evil(VALUE): types that shadow the ones the extension's statements name
-- (pg_temp is searched first for types). The domains belong to the current role.
CREATE FUNCTION pg_temp.shadow_types(VARIADIC types pg_catalog.text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  t pg_catalog.text;
BEGIN
  FOREACH t IN ARRAY types LOOP
    EXECUTE pg_catalog.format('CREATE DOMAIN pg_temp.%I AS pg_catalog.%I CHECK (pg_temp.evil(VALUE))', t, t);
  END LOOP;
END $$;
-- Drops every domain of this session's pg_temp (those of shadow_types).
CREATE FUNCTION pg_temp.unshadow_types() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  d pg_catalog.text;
BEGIN
  FOR d IN SELECT t.typname::pg_catalog.text FROM pg_catalog.pg_type t
            WHERE t.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
              AND t.typtype OPERATOR(pg_catalog.=) 'd' LOOP
    EXECUTE pg_catalog.format('DROP DOMAIN pg_temp.%I', d);
  END LOOP;
END $$;
