-- Starts one three-step saga (its own transaction); the saga workers run the steps.
\set a random(1, :naccounts)
\set b random(1, :naccounts)
\set c random(1, :naccounts)
SELECT consistency.start_saga('bench3', jsonb_build_object('a', :a, 'b', :b, 'c', :c, 'run', :run));
