# Two-phase commit across a coordinator and three participant clusters: atomic commits,
# failures anywhere abort everything, coordinator crashes before and after its commit are
# resolved by the worker, a participant down at COMMIT PREPARED is finished once it is back,
# a participant without prepared transactions is refused, cancel requests stop the remote
# statement. No prepared transaction is left behind. Participants connect as a
# non-superuser role of their own (user=, required), and the transfers run as a writer
# role the participants were granted to.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until reload_config);
use PgcTwopc qw(participant_node bank_sql transfer_sql prepared_count wait_none_prepared);

my $coord = new_node('coord', conf => <<'CONF');
pg_consistency.twopc_recovery_interval = '300ms'
pg_consistency.twopc_timeout = '10s'
CONF

# A participant with the bank of 10 accounts; $max_prepared prepared transactions (10).
sub participant {
  my ($name, $max_prepared) = @_;
  return participant_node($name, $max_prepared // 10, bank_sql(10) . <<'SQL');
-- The role the coordinator acts as here: only what the transfers need.
CREATE ROLE app_remote LOGIN;
GRANT SELECT, UPDATE ON accounts TO app_remote;
GRANT INSERT, SELECT ON ledger TO app_remote;
SQL
}

# The writer the transfers run as (trust authentication on the local socket).
$coord->safe_psql('postgres', 'CREATE ROLE app LOGIN IN ROLE consistency_writer; CREATE ROLE stranger LOGIN IN ROLE consistency_writer');

my %p = map { ($_ => participant($_)) } qw(p1 p2 p3);
for my $name (sort keys %p) {
  my $ci = $p{$name}->connstr('postgres') . ' user=app_remote';
  $coord->safe_psql('postgres', "SELECT consistency.add_participant('$name', \$ci\$$ci\$ci\$)");
  $coord->safe_psql('postgres', "SELECT consistency.grant_participant('$name', 'app')");
}
# A conninfo without user= is refused: the participant would otherwise be reached as the
# role libpq derives from this server's OS user (here: the participant's superuser).
my ($arc, $aout, $aerr) = $coord->psql('postgres',
  "SELECT consistency.add_participant('nouser', \$ci\$" . $p{p1}->connstr('postgres') . "\$ci\$)");
like($aerr, qr/conninfo of participant "nouser" names no remote role/, 'a conninfo without user= is refused');

sub ledger_count {
  my ($tid) = @_;
  my $n = 0;
  $n += $p{$_}->safe_psql('postgres', "SELECT count(*) FROM ledger WHERE transfer_id = $tid") for sort keys %p;
  return $n;
}

sub prepared_left { return prepared_count(map { $p{$_} } sort keys %p) }

sub total_balance {
  my $t = 0;
  $t += $p{$_}->safe_psql('postgres', 'SELECT sum(balance) FROM accounts') for sort keys %p;
  return $t;
}

sub wait_prepared_gone {
  my ($what) = @_;
  is(wait_none_prepared(60, map { $p{$_} } sort keys %p), 0, "$what: no prepared transaction left");
}

my @all = (['p1', 1, -30], ['p2', 1, 10], ['p3', 1, 20]);

# Runs transfer $tid over @all with the coordinator crashing at $point; once the
# coordinator is back and recovery resolved the prepared transactions ($what), returns
# what the log gained.
sub crash_at {
  my ($point, $tid, $what) = @_;
  my $log = -s $coord->logfile;
  my ($rc) = $coord->psql('postgres', "SET pg_consistency.twopc_debug_crash_at = '$point';\n" . transfer_sql($tid, @all));
  isnt($rc, 0, "backend crashed at $point");
  ok(wait_until($coord, 'SELECT 1', '1', 60), 'coordinator back after the crash');
  wait_prepared_gone($what);
  return slurp_file($coord->logfile, $log);
}

# Starts transfer $tid over @all in a psql that pauses $ms ms at $point; returns once it
# pauses, with its IPC::Run handle and a reference to its standard error.
sub pause_at {
  my ($point, $ms, $tid) = @_;
  my $log = -s $coord->logfile;
  my ($out, $err) = ('', '');
  my $h = IPC::Run::start(['psql', '-X', '-d', $coord->connstr('postgres'), '-c',
      "SET pg_consistency.twopc_debug_pause_at = '$point'; SET pg_consistency.twopc_debug_pause_ms = $ms;",
      '-c', transfer_sql($tid, @all)], '>', \$out, '2>', \$err);
  $coord->wait_for_log(qr/pausing $ms ms $point/, $log);
  return ($h, \$err);
}

# --- 1. a transfer touching all three commits everywhere ------------------------------
my ($rc, $out, $err) = $coord->psql('postgres', transfer_sql(1, @all), extra_params => ['-U', 'app']);
is($rc, 0, 'transfer 1 commits') or diag($err);
is(ledger_count(1), 3, 'transfer 1 is on all three participants');
is($p{p1}->safe_psql('postgres', 'SELECT balance FROM accounts WHERE id = 1'), '970', 'p1 debited');
is($p{p3}->safe_psql('postgres', 'SELECT balance FROM accounts WHERE id = 1'), '1020', 'p3 credited');
is(prepared_left(), 0, 'nothing left prepared after a clean commit');
# Asked inside the coordinator's own transaction: the connection is gone once its session ends.
is($coord->safe_psql('postgres', "SELECT consistency.remote_query('p1', 'SELECT current_user AS u') ->> 'u'",
                     extra_params => ['-U', 'app']),
   'app_remote', 'the participant sees the coordinator as the role its conninfo names');
($rc, $out, $err) = $coord->psql('postgres', transfer_sql(100, @all), extra_params => ['-U', 'stranger']);
like($err, qr/permission denied for participant "p1"/, 'a writer without a grant is refused');
unlike($err, qr/port=|host=/, 'the refusal does not show the conninfo');
is(ledger_count(100), 0, 'the refused transfer left nothing');
ok(wait_until($coord, 'SELECT count(*) FROM consistency.twopc_decisions', '0', 30),
   'decision rows cleaned up by the worker');

# --- 2. a failing statement on one participant: nothing anywhere ------------------------
($rc, $out, $err) = $coord->psql('postgres',
  transfer_sql(2, ['p1', 2, -50], ['p2', 2, 100], ['p3', 2, -5000]));
isnt($rc, 0, 'transfer 2 fails');
like($err, qr/statement failed on participant "p3"/, 'error names the participant');
like($err, qr/violates check constraint/, 'remote message in DETAIL');
is(ledger_count(2), 0, 'transfer 2 left nothing anywhere');
is(prepared_left(), 0, 'nothing prepared after a failed statement');

# --- 3. a failing PREPARE on one participant: nothing anywhere --------------------------
($rc, $out, $err) = $coord->psql('postgres',
  "\\set VERBOSITY verbose\n" . transfer_sql(3, ['p1', 3, -13], ['p2', 3, 6], ['p3', 3, 7]));
isnt($rc, 0, 'transfer 3 fails at commit');
like($err, qr/CS005.*could not prepare the transaction on participant "p1"/s, 'CS005 names the participant whose PREPARE failed');
like($err, qr/deferred check refused transfer 3/, 'remote PREPARE error in DETAIL');
is(ledger_count(3), 0, 'transfer 3 left nothing anywhere');
is(prepared_left(), 0, 'the participants that had prepared were rolled back');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM consistency.twopc_decisions'), '0',
   'no decision recorded for the aborted transaction');

# --- 4. coordinator crash after PREPARE, before its commit: recovery rolls back all ------
my $logtext = crash_at('after_prepare', 4, 'crash after prepare');
is(ledger_count(4), 0, 'transfer 4 rolled back on all three participants');
like($logtext, qr/crashing on purpose after_prepare/, 'the test hook crashed the server');
my @rolled = ($logtext =~ /rolled back prepared transaction "pgc_\d+_\d+_\d+_\d+" on participant/g);
is(scalar(@rolled), 3, 'recovery rolled back the three prepared transactions');

# --- 5. the same with an immediate stop while the backend waits after PREPARE -----------
my ($h) = pause_at('after_prepare', 60000, 5);
is(prepared_left(), 3, 'all three participants hold the prepared transaction');
is($coord->safe_psql('postgres',
     "SELECT string_agg(participant || ':' || decision || ':' || (prepared_at IS NOT NULL), ',' ORDER BY participant) FROM consistency.in_doubt"),
   'p1:pending:true,p2:pending:true,p3:pending:true',
   'in_doubt shows the three prepared transactions, pending while the local transaction runs');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM consistency.twopc_decisions'), '0',
   'the decision is not visible before the local commit');
$coord->stop('immediate');
$h->finish;
$coord->start;
wait_prepared_gone('immediate stop after prepare');
is(ledger_count(5), 0, 'transfer 5 rolled back after the immediate stop');

# --- 6. coordinator crash after its commit, before COMMIT PREPARED: recovery commits all ---
$logtext = crash_at('after_local_commit', 6, 'crash after local commit');
is(ledger_count(6), 3, 'transfer 6 committed on all three participants');
my @committed = ($logtext =~ /committed prepared transaction "pgc_\d+_\d+_\d+_\d+" on participant/g);
is(scalar(@committed), 3, 'recovery committed the three prepared transactions');
ok(wait_until($coord, 'SELECT count(*) FROM consistency.twopc_decisions', '0', 30),
   'decision rows cleaned up after recovery');

# --- 6b. the same with an immediate stop right after the local commit ---------------------
($h) = pause_at('after_local_commit', 60000, 8);
is(prepared_left(), 3, 'all three participants prepared, none committed yet');
$coord->stop('immediate');
$h->finish;
$coord->start;
wait_prepared_gone('immediate stop after the local commit');
is(ledger_count(8), 3, 'transfer 8 committed on all three participants after the immediate stop');

# --- 7. a participant is down at COMMIT PREPARED time -----------------------------------
# Keep the periodic recovery quiet so that the backend meets the stopped participant.
$coord->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.twopc_recovery_interval = '1h'");
ok(reload_config($coord), 'every process read twopc_recovery_interval = 1h');
my $berr;
($h, $berr) = pause_at('after_local_commit', 3000, 7);
$p{p2}->stop('fast');
$h->finish;
is($h->result(0), 0, 'the COMMIT itself succeeded');
like($$berr, qr/WARNING:  could not commit prepared transaction "pgc_\d+_\d+_\d+_\d+" on participant "p2"/,
     'the backend warned about p2 and left it to recovery');
is($p{p1}->safe_psql('postgres', 'SELECT count(*) FROM ledger WHERE transfer_id = 7'), '1', 'p1 committed');
is($p{p3}->safe_psql('postgres', 'SELECT count(*) FROM ledger WHERE transfer_id = 7'), '1', 'p3 committed');
my ($vrc, $vout, $verr) = $coord->psql('postgres',
  "SELECT participant, decision, prepared_at IS NULL FROM consistency.in_doubt");
is($vout, 'p2|commit|t', 'in_doubt shows the unconfirmed commit on the unreachable participant');
like($verr, qr/participant "p2" is unreachable/, 'in_doubt warns about the unreachable participant');
# p1's and p3's decision rows go at the worker's next pass; p2's stays while it is down.
ok(wait_until($coord, "SELECT value FROM consistency._metrics_twopc() WHERE metric = 'pg_consistency_twopc_unconfirmed_commits'",
   '1', 30), 'metrics count the one unconfirmed commit');
$coord->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.twopc_recovery_interval = '300ms'; SELECT pg_reload_conf()");
$p{p2}->start;
wait_prepared_gone('participant back after being down at COMMIT PREPARED');
is($p{p2}->safe_psql('postgres', 'SELECT count(*) FROM ledger WHERE transfer_id = 7'), '1', 'p2 committed by recovery');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM consistency.in_doubt'), '0', 'nothing in doubt any more');
ok(wait_until($coord, "SELECT value > 0 FROM consistency._metrics_twopc() WHERE metric = 'pg_consistency_twopc_recovery_commits_total'", 't', 10),
   'recovery commits counted');

# --- 8. a participant without prepared transactions is refused up front ------------------
my $noprep = participant('noprep', 0);
my $ci = $noprep->connstr('postgres') . ' user=app_remote';
$coord->safe_psql('postgres', "SELECT consistency.add_participant('noprep', \$ci\$$ci\$ci\$)");
($rc, $out, $err) = $coord->psql('postgres',
  "\\set VERBOSITY verbose\nSELECT consistency.remote_exec('noprep', 'SELECT 1')");
like($err, qr/CS005.*participant "noprep" cannot take part in two-phase commit/s, 'CS005: noprep cannot prepare');
like($err, qr/max_prepared_transactions = 0/, 'the error says why');
$coord->safe_psql('postgres', "SELECT consistency.drop_participant('noprep')");
$noprep->stop;

# --- 9. a cancel request stops the remote statement ---------------------------------------
my ($bout, $cerr) = ('', '');
$h = IPC::Run::start(['psql', '-X', '-d', $coord->connstr('postgres'), '-c',
    "SELECT consistency.remote_exec('p1', 'SELECT pg_sleep(120)')"], '>', \$bout, '2>', \$cerr);
ok($p{p1}->poll_query_until('postgres',
   "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(120)%' AND state = 'active'"),
   'the remote statement runs on p1');
my $t0 = time;
$coord->safe_psql('postgres',
  "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%remote_exec(''p1'', ''SELECT pg_sleep(120)'')%' AND pid <> pg_backend_pid()");
$h->finish;
like($cerr, qr/canceling statement due to user request/, 'the local statement was cancelled');
cmp_ok(time - $t0, '<', 30, 'the cancel took effect within seconds');
ok($p{p1}->poll_query_until('postgres',
   "SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(120)%' AND state = 'active'"),
   'the remote statement was cancelled on p1 too');

# --- 10. the timeout bounds a hung participant ---------------------------------------------
($rc, $out, $err) = $coord->psql('postgres',
  "SET pg_consistency.twopc_timeout = '500ms'; SELECT consistency.remote_exec('p1', 'SELECT pg_sleep(30)')");
like($err, qr/participant "p1" did not answer statement within 500 ms/, 'a slow participant hits the timeout');

# --- 11. a participant restarted between two transactions of one session ---------------
# The session's cached connection to p1 dies with the restart; the next transaction
# reconnects transparently.
my $p1data = $p{p1}->data_dir;
($rc, $out, $err) = $coord->psql('postgres',
  transfer_sql(11, ['p1', 4, -1], ['p2', 4, 1])
  . "\\! pg_ctl -D '$p1data' -m fast -w restart >/dev/null 2>&1\n"
  . transfer_sql(12, ['p1', 4, -1], ['p2', 4, 1]));
is($rc, 0, 'both transfers of the session commit across the participant restart') or diag($err);
is(ledger_count(12), 2, 'the transfer after the restart is on both participants');

# --- the end: money conserved, nothing left ---------------------------------------------
is(total_balance(), 30000, 'money is conserved across the three databases');
is(prepared_left(), 0, 'no prepared transaction left behind');
ok(wait_until($coord, 'SELECT bool_and(ok) FROM consistency._integrity_twopc()', 't', 30),
   'integrity checks pass');

$coord->stop;
$p{$_}->stop for sort keys %p;
done_testing();
