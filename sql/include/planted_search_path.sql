-- What a writer plants in its own schema for an attack on the search path of the
-- statements that follow its saga step: clock_timestamp(), now(), gen_random_uuid() and
-- the operators || (jsonb) and = (text, uuid), each of which makes the role saga_mallory
-- a superuser when its caller may do so, and logs the call in saga_mallory.calls.
-- Runs as saga_mallory, which owns the schema saga_mallory. Shared by the regression
-- suite 30_saga and the TAP test 330_saga_security.
CREATE TABLE saga_mallory.calls (fn text, ran_as name);
GRANT INSERT ON saga_mallory.calls TO PUBLIC;
CREATE FUNCTION saga_mallory.escalate(fn text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO saga_mallory.calls VALUES (fn, current_user);
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE saga_mallory SUPERUSER';
  END IF;
END $$;
CREATE FUNCTION saga_mallory.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM saga_mallory.escalate('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION saga_mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM saga_mallory.escalate('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION saga_mallory.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN PERFORM saga_mallory.escalate('gen_random_uuid'); RETURN pg_catalog.gen_random_uuid(); END $$;
CREATE FUNCTION saga_mallory.jsonb_cat(a jsonb, b jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM saga_mallory.escalate('||'); RETURN pg_catalog.jsonb_concat(a, b); END $$;
CREATE OPERATOR saga_mallory.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = saga_mallory.jsonb_cat);
CREATE FUNCTION saga_mallory.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM saga_mallory.escalate('='); RETURN pg_catalog.texteq(a, b); END $$;
CREATE OPERATOR saga_mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = saga_mallory.text_eq);
CREATE FUNCTION saga_mallory.uuid_eq(a uuid, b uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM saga_mallory.escalate('='); RETURN pg_catalog.uuid_eq(a, b); END $$;
CREATE OPERATOR saga_mallory.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = saga_mallory.uuid_eq);
