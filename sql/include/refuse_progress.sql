-- A trigger that refuses to store the progress of every saga whose data has the key
-- "refuse", as if the outcome of its step could not be recorded. Ended by
--   DROP TRIGGER refuse_progress ON consistency.saga_instances;
--   DROP FUNCTION public.refuse_progress();
-- Shared by the regression suite 30_saga and the TAP test 340_saga_isolation.
CREATE FUNCTION public.refuse_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.data ? 'refuse' AND NEW.step_index > OLD.step_index THEN
    RAISE EXCEPTION 'progress refused for this test';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_progress BEFORE UPDATE ON consistency.saga_instances
  FOR EACH ROW EXECUTE FUNCTION public.refuse_progress();
