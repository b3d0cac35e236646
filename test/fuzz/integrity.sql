-- check_integrity() after a fuzz run: every check that fails, except two that say
-- something about the environment rather than the data: no worker serves the database
-- (a fuzzer may run without one), and 2PC participants the fuzzers added that do not
-- answer (add_participant checks nothing at add time) while no prepared transaction is
-- left behind.
SELECT check_name || ': ' || detail
  FROM consistency.check_integrity()
 WHERE NOT ok
   AND check_name <> 'worker_running'
   AND NOT (check_name = 'twopc_recovery' AND detail ~ 'unreachable at the last pass, 0 prepared transaction\(s\) left$');
