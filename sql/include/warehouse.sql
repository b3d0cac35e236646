-- The warehouse steps of the saga command tests: reserve, release (its compensation) and
-- finish, each leaving a row in wh.effects. Shared by the regression suite
-- 31_saga_commands and the TAP test 310_saga_commands.
CREATE SCHEMA wh;
CREATE TABLE wh.effects (seq serial, saga uuid, effect text);
CREATE FUNCTION wh.reserve(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  INSERT INTO wh.effects (saga, effect) VALUES ($1, 'reserve') RETURNING '{"reserved": true}'::jsonb $$;
CREATE FUNCTION wh.release(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  INSERT INTO wh.effects (saga, effect) VALUES ($1, 'release') RETURNING '{}'::jsonb $$;
CREATE FUNCTION wh.finish(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  INSERT INTO wh.effects (saga, effect) VALUES ($1, 'finish') RETURNING '{}'::jsonb $$;
