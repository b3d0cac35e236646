# Helpers for the hard-stop TAP tests (test/t/104_eventstore_hard_stop.t,
# test/t/341_saga_hard_stop.t): user code that catches the cancellation of its time limit
# and goes on forever, which only the worker's hard stop ends, and the check that a
# session backend running such code itself is never stopped.
package PgcHardStop;

use strict;
use warnings;
use Time::HiRes qw(time);
use Exporter 'import';
our @EXPORT_OK = qw(endless_body session_database run_in_session);

# A PL/pgSQL body that logs $log_line, then sleeps in an endless loop that swallows every
# query cancel.
sub endless_body {
  my ($log_line) = @_;
  return <<"BODY";
BEGIN
  RAISE LOG '$log_line';
  LOOP
    BEGIN
      PERFORM pg_catalog.pg_sleep(10);
    EXCEPTION WHEN query_canceled THEN NULL;
    END;
  END LOOP;
END
BODY
}

# Creates database $db with the extension and runs $sql there. $db is not in
# pg_consistency.database: no worker runs there, only a session does.
sub session_database {
  my ($node, $db, $sql) = @_;
  $node->safe_psql('postgres', "CREATE DATABASE $db");
  $node->safe_psql($db, "CREATE EXTENSION pg_consistency;\n$sql");
}

# Runs SELECT $call in one session of $db with the time limit $timeout_setting at 100 ms.
# Returns its output followed by whether the backend is still the same one ("t"), and
# the seconds it took.
sub run_in_session {
  my ($node, $db, $timeout_setting, $call) = @_;
  my $t0 = time;
  my $out = $node->safe_psql($db, <<"SQL");
SELECT pg_backend_pid() AS before \\gset
SET $timeout_setting = '100ms';
SELECT $call;
SELECT pg_backend_pid() = :before;
SQL
  return ($out, time - $t0);
}

1;
