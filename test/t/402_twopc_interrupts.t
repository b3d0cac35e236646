# Every wait of two-phase commit reacts to pg_terminate_backend and to a query cancel at
# once, whatever pg_consistency.twopc_timeout says (1 h here): a remote statement blocked
# on a lock on the participant, a participant that stopped answering (SIGSTOP) in the
# middle of a statement, and one that stopped answering before COMMIT PREPARED. Nothing is
# left prepared or half-written, and the remote side of an ended session goes away.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until);
use PgcTwopc qw(participant_node);

my $coord = new_node('coord', conf => <<'CONF');
pg_consistency.twopc_recovery_interval = '300ms'
CONF

my $p1 = participant_node('p1', 10, <<'SQL');
CREATE TABLE t_free (id int PRIMARY KEY);
CREATE TABLE t_locked (id int PRIMARY KEY);
CREATE ROLE app_remote LOGIN;
GRANT SELECT, INSERT ON t_free, t_locked TO app_remote;
SQL

my $ci = $p1->connstr('postgres') . ' user=app_remote';
$coord->safe_psql('postgres', <<"SQL");
CREATE ROLE app LOGIN IN ROLE consistency_writer;
SELECT consistency.add_participant('p1', \$ci\$$ci\$ci\$);
SELECT consistency.grant_participant('p1', 'app');
SQL

# Starts psql on the coordinator running $sql (as $user) with a one-hour twopc_timeout.
sub start_session {
  my ($sql, $user) = @_;
  my ($out, $err) = ('', '');
  # A file, not stdin: the harness is not pumped while the test waits.
  my $file = PostgreSQL::Test::Utils::tempdir() . '/session.sql';
  PostgreSQL::Test::Utils::append_to_file($file, "SET pg_consistency.twopc_timeout = '1h';\n$sql");
  my $h = IPC::Run::start(
    ['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $coord->connstr('postgres'), '-U', $user // 'app', '-f', $file],
    '>', \$out, '2>', \$err, IPC::Run::timeout(180));
  return { h => $h, out => \$out, err => \$err };
}

# The pid of the one backend of $node whose query matches $like and $where, once $cond
# holds as well ('' when none comes).
sub one_pid {
  my ($node, $like, $where, $cond) = @_;
  $like =~ s/'/''/g;
  my $match = "FROM pg_stat_activity WHERE query LIKE '$like' AND $where";
  $node->poll_query_until('postgres', "SELECT count(*) = 1 $match AND " . ($cond // 'true')) or return '';
  return $node->safe_psql('postgres', "SELECT pid $match");
}

# The pid of the one coordinator backend (not this one) whose query matches $like.
sub coord_pid { return one_pid($coord, $_[0], 'pid <> pg_backend_pid()') }

# The pid of the participant backend of app_remote whose query matches $like, once $cond holds.
sub remote_pid { return one_pid($p1, $_[0], "usename = 'app_remote'", $_[1]) }

# Starts a session running one transaction of remote statements on p1.
sub remote_transaction {
  my (@statements) = @_;
  return start_session(join('', "BEGIN;\n", (map { "SELECT consistency.remote_exec('p1', '$_');\n" } @statements),
                            "COMMIT;\n"));
}

# Sends the coordinator backend $pid a pg_${how}_backend and returns the seconds until the
# session's psql has exited.
sub interrupt {
  my ($how, $pid, $s) = @_;
  my $t0 = time;
  $coord->safe_psql('postgres', "SELECT pg_${how}_backend($pid)");
  $s->{h}->finish;
  return time - $t0;
}

sub remote_sessions_gone {
  my ($what) = @_;
  ok($p1->poll_query_until('postgres',
       "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app_remote' AND state <> 'idle'"),
     "$what: no transaction of the coordinator left open on the participant");
}

sub nothing_left {
  my ($what, $table, @ids) = @_;
  is($p1->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0', "$what: nothing prepared");
  is($p1->safe_psql('postgres', "SELECT count(*) FROM $table WHERE id IN (" . join(',', @ids) . ')'),
     '0', "$what: nothing written");
}

# --- 1 and 2. a remote statement waiting for a lock on the participant -------------------
for my $how ('terminate', 'cancel') {
  my $id = $how eq 'terminate' ? 10 : 20;
  my $locker = $p1->background_psql('postgres');
  $locker->query_safe('BEGIN; LOCK t_locked IN ACCESS EXCLUSIVE MODE;');
  my $s = remote_transaction("INSERT INTO t_free VALUES ($id)", "INSERT INTO t_locked VALUES ($id)");
  ok(remote_pid('INSERT INTO t_locked%', "wait_event_type = 'Lock'"), "$how: the remote insert waits for the lock")
    or diag(${ $s->{err} });
  my $pid = coord_pid("SELECT consistency.remote_exec('p1', 'INSERT INTO t_locked%");
  my $took = interrupt($how, $pid, $s);
  cmp_ok($took, '<', 3, "$how: the session ended at once (" . sprintf('%.2f', $took) . ' s)');
  like(${ $s->{err} }, $how eq 'terminate' ? qr/terminating connection due to administrator command/
                                            : qr/canceling statement due to user request/,
       "$how: the session got the right error");
  remote_sessions_gone($how);
  $locker->query_safe('ROLLBACK');
  $locker->quit;
  nothing_left($how, 't_free', $id);
  nothing_left($how, 't_locked', $id);
}

# --- 3 and 4. a participant that stops answering in the middle of a statement -----------
for my $how ('cancel', 'terminate') {
  my $id = $how eq 'terminate' ? 30 : 40;
  my $s = remote_transaction("INSERT INTO t_free VALUES ($id)", 'SELECT pg_sleep(60)');
  my $rpid = remote_pid('SELECT pg_sleep(60)%', "state = 'active'");
  ok($rpid, "frozen participant, $how: the remote statement runs");
  kill 'STOP', $rpid;
  my $pid = coord_pid("SELECT consistency.remote_exec('p1', 'SELECT pg_sleep(60)')%");
  my $took = interrupt($how, $pid, $s);
  kill 'CONT', $rpid;
  cmp_ok($took, '<', 4, "frozen participant, $how: the session ended within about a second ("
         . sprintf('%.2f', $took) . ' s)');
  remote_sessions_gone("frozen participant, $how");
  nothing_left("frozen participant, $how", 't_free', $id);
}

# --- 5. a participant that stops answering before COMMIT PREPARED ------------------------
# The local commit stands; a cancel ends the wait for the participant's answer with a
# WARNING, and the worker's recovery commits the prepared transaction once it answers.
{
  my $s = start_session(<<'SQL', $coord->safe_psql('postgres', 'SELECT current_user'));
SET pg_consistency.twopc_debug_pause_at = 'after_prepare';
SET pg_consistency.twopc_debug_pause_ms = 1000;
BEGIN;
SELECT consistency.remote_exec('p1', 'INSERT INTO t_free VALUES (50)');
COMMIT;
SELECT 'the session goes on';
SQL
  my $rpid = remote_pid('PREPARE TRANSACTION%');
  ok($rpid, 'the participant prepared');
  kill 'STOP', $rpid;
  # The pause ends, the local commit happens, COMMIT PREPARED meets the frozen backend.
  my $pid = coord_pid('COMMIT%');
  sleep 2;
  ok($coord->poll_query_until('postgres',
       "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'Extension'"),
     'the commit waits for the participant');
  my $took = interrupt('cancel', $pid, $s);
  kill 'CONT', $rpid;
  cmp_ok($took, '<', 3, 'the cancel ended the wait at once (' . sprintf('%.2f', $took) . ' s)');
  is($s->{h}->result(0), 0, 'the COMMIT itself succeeded');
  like(${ $s->{err} }, qr/WARNING:  could not commit prepared transaction "pgc_\d+_\d+_\d+_\d+" on participant "p1"/,
       'a WARNING names the prepared transaction left to recovery');
  like(${ $s->{err} }, qr/canceled the wait for COMMIT PREPARED/, 'and says the wait was cancelled');
  like(${ $s->{out} }, qr/the session goes on/, 'the next statement was not cancelled');
  ok($p1->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts'),
     'recovery committed the prepared transaction once the participant answered');
  is($p1->safe_psql('postgres', 'SELECT count(*) FROM t_free WHERE id = 50'), '1', 'the row is there');
  ok(wait_until($coord, 'SELECT count(*) FROM consistency.twopc_decisions', '0', 30), 'decision rows cleaned up');
}

ok(wait_until($coord, 'SELECT bool_and(ok) FROM consistency._integrity_twopc()', 't', 30),
   'integrity checks pass');
$coord->stop;
$p1->stop;
done_testing();
