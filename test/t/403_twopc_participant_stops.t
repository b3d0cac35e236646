# A participant cluster stops (immediate shutdown) or crashes (SIGKILL of its postmaster)
# while the coordinator is inside a step of the commit protocol on it, each moment seen
# before the participant is stopped:
#
#   prepare_running   PREPARE TRANSACTION runs a deferred trigger (asleep): nothing prepared
#   prepare_durable   PREPARE is written but not answered (waiting for a synchronous
#                     standby that never comes): the prepared transaction survives the stop
#   commit_sent       COMMIT PREPARED sent, the backend serving it frozen (SIGSTOP): the
#                     prepared transaction survives the stop
#   commit_durable    COMMIT PREPARED written, not answered (synchronous standby wait)
#   rollback_durable  ROLLBACK PREPARED of the abort path written, not answered
#   recovery's COMMIT PREPARED (after a coordinator crash) written, not answered
#
# And a PREPARE the coordinator gives up on (twopc_timeout, cancel) is cancelled on the
# participant, not left running behind a closed connection.
#
# Then the participant restarts and the worker recovers: the local outcome (the COMMIT's
# error or success) holds on every participant, nothing stays prepared, the decision rows
# go, and check_integrity() is clean. Recovery's own log lines show which prepared
# transactions it had to finish, i.e. on which side of the participant's durable point the
# stop landed. Every case runs with both kinds of stop, PGC_403_ROUNDS times (default 2).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until process_gone);
use PgcTwopc qw(wait_none_prepared);

# No periodic recovery pass: recovery runs when the coordinator's backend could not finish
# a step on a participant (it wakes the worker), then every second while something is
# unreachable or prepared. Otherwise a pass could commit p2's part (its decision is
# recorded) through the worker's own connection while the test holds p2's backend frozen,
# and the stop would not land inside COMMIT PREPARED.
my $coord = new_node('coord', conf => <<'CONF');
pg_consistency.twopc_recovery_interval = '1h'
CONF

# Participants: a synchronous standby is named but never connects, and only sessions that
# ask for synchronous_commit = on wait for it — after their commit, PREPARE, COMMIT
# PREPARED or ROLLBACK PREPARED is durable, before it is answered. The deferred trigger
# sleeps (flag 'sleep') or refuses (flag 'refuse') at PREPARE.
my %p;
for my $name (qw(p1 p2)) {
  my $n = PostgreSQL::Test::Cluster->new($name);
  $n->init(allows_streaming => 1);
  $n->append_conf('postgresql.conf', <<'CONF');
max_prepared_transactions = 10
synchronous_standby_names = 'nobody'
synchronous_commit = local
CONF
  $n->start;
  $n->safe_psql('postgres', <<'SQL');
CREATE TABLE t (id int PRIMARY KEY, flag text NOT NULL DEFAULT '');
CREATE FUNCTION at_prepare() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.flag = 'sleep' THEN PERFORM pg_sleep(600); END IF;
  IF NEW.flag = 'refuse' THEN RAISE EXCEPTION 'row % refused at PREPARE', NEW.id; END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER at_prepare AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW WHEN (NEW.flag <> '') EXECUTE FUNCTION at_prepare();
SQL
  my $ci = $n->connstr('postgres') . ' user=' . scalar(getpwuid($<));
  $coord->safe_psql('postgres', "SELECT consistency.add_participant('$name', \$ci\$$ci\$ci\$)");
  $p{$name} = $n;
}
my ($p1, $p2) = @p{qw(p1 p2)};

# What each case runs on p2 (p1 gets a plain row, or a refused one), the step and wait
# event p2's backend is seen in before the stop, whether the COMMIT succeeds, and whether
# the stop left the transaction prepared on p2 for recovery to finish.
my $sync_on_commit = ['SET synchronous_commit = on', 'SET LOCAL synchronous_commit = local'];
my %cases = (
  prepare_running => { p2 => [], flag => 'sleep', step => 'PREPARE TRANSACTION', wait => 'PgSleep',
                       commits => 0, left => 0 },
  prepare_durable => { p2 => ['SET LOCAL synchronous_commit = on'], step => 'PREPARE TRANSACTION',
                       wait => 'SyncRep', commits => 0, left => 1 },
  commit_sent => { p2 => [], pause => 1, step => 'PREPARE TRANSACTION', commits => 1, left => 1 },
  commit_durable => { p2 => $sync_on_commit, step => 'COMMIT PREPARED', wait => 'SyncRep', commits => 1,
                      left => 0 },
  rollback_durable => { p2 => $sync_on_commit, p1_flag => 'refuse', step => 'ROLLBACK PREPARED',
                        wait => 'SyncRep', commits => 0, left => 0 },
);
my @order = qw(prepare_running prepare_durable commit_sent commit_durable rollback_durable);

# Starts psql on the coordinator running $sql with a one-hour twopc_timeout (so that only
# the participant's stop ends its waits).
sub start_session {
  my ($sql) = @_;
  my ($out, $err) = ('', '');
  my $file = PostgreSQL::Test::Utils::tempdir() . '/session.sql';
  PostgreSQL::Test::Utils::append_to_file($file, "SET pg_consistency.twopc_timeout = '1h';\n$sql");
  my $h = IPC::Run::start(['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $coord->connstr('postgres'), '-f', $file],
    '>', \$out, '2>', \$err, IPC::Run::timeout(180));
  return { h => $h, out => \$out, err => \$err };
}

# PIDs of the processes whose parent is $ppid.
sub children_of {
  my ($ppid) = @_;
  my @kids;
  for my $stat (glob '/proc/[0-9]*/stat') {
    open(my $fh, '<', $stat) or next;
    my $line = <$fh> // '';
    close $fh;
    push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
  }
  return @kids;
}

# The state letter of process $pid (R, S, T, ...), '' when it is gone.
sub proc_state {
  my ($pid) = @_;
  open(my $fh, '<', "/proc/$pid/stat") or return '';
  my $line = <$fh> // '';
  close $fh;
  return $line =~ /^\d+ \(.*\) (\S)/ ? $1 : '';
}

# Stops $node the way $mode says. crash: SIGKILL of the postmaster (and of $frozen, a
# SIGSTOPped backend that cannot notice its postmaster's death), then waits until every
# process of the old postmaster is gone so that the cluster can start again.
sub stop_participant {
  my ($node, $mode, $frozen) = @_;
  if ($mode eq 'immediate') {
    # The postmaster kills a frozen backend (SIGKILL) 5 s after its SIGQUIT.
    $node->stop('immediate');
    return 1;
  }
  my $postmaster = $node->{_pid};
  my @kids = children_of($postmaster);
  $node->kill9;
  kill 'KILL', $frozen if $frozen;
  # A new postmaster refuses to start while the old one's PID exists, even as a zombie.
  my $deadline = time + 60;
  usleep(50_000) while kill(0, $postmaster) && time < $deadline;
  return 0 if kill(0, $postmaster);
  for my $kid (@kids) { process_gone($kid, 60) or return 0 }
  return 1;
}

# Waits up to $timeout seconds for $re in the coordinator's log after $offset.
sub log_shows {
  my ($offset, $re, $timeout) = @_;
  my $deadline = time + $timeout;
  while (1) {
    return 1 if slurp_file($coord->logfile, $offset) =~ $re;
    return 0 if time >= $deadline;
    usleep(100_000);
  }
}

sub rows {
  my ($node, $id) = @_;
  return $node->safe_psql('postgres', "SELECT count(*) FROM t WHERE id = $id");
}

sub decisions {
  my ($xid, $participant) = @_;
  my $only = $participant ? " AND p.name = '$participant'" : '';
  return $coord->safe_psql('postgres',
    "SELECT count(*) FROM consistency.twopc_decisions d JOIN consistency.twopc_participants p "
    . "ON p.id = d.participant_id WHERE d.xid = '$xid'::xid8$only");
}

my $id = 0;
for my $round (1 .. ($ENV{PGC_403_ROUNDS} // 2)) {
  for my $mode ('immediate', 'crash') {
    for my $name (@order) {
      my $c = $cases{$name};
      my $what = "$name, $mode";
      $id++;
      my $log = -s $coord->logfile;
      my @p2 = (@{ $c->{p2} }, "INSERT INTO t VALUES ($id, '" . ($c->{flag} // '') . "')");
      my $sql = '';
      $sql .= "SET pg_consistency.twopc_debug_pause_at = 'after_local_commit';\n"
            . "SET pg_consistency.twopc_debug_pause_ms = 3000;\n" if $c->{pause};
      $sql .= "BEGIN;\nSELECT consistency.remote_exec('p1', \$q\$INSERT INTO t VALUES ($id, '"
            . ($c->{p1_flag} // '') . "')\$q\$);\n";
      $sql .= "SELECT consistency.remote_exec('p2', \$q\$$_\$q\$);\n" for @p2;
      $sql .= "COMMIT;\n";
      my $s = start_session($sql);

      # The moment: p2's backend serving the coordinator is seen inside the step.
      my $match = "FROM pg_stat_activity WHERE application_name = 'pg_consistency' "
                . "AND query LIKE '$c->{step} %'" . ($c->{wait} ? " AND wait_event = '$c->{wait}'" : '');
      $coord->wait_for_log(qr/pausing 3000 ms after_local_commit/, $log) if $c->{pause};
      ok(wait_until($p2, "SELECT count(*) $match", '1', 60),
         "$what: p2's backend is inside $c->{step}" . ($c->{wait} ? " ($c->{wait})" : ''))
        or diag(${ $s->{err} });
      my ($rpid, $query) = split /\|/, $p2->safe_psql('postgres', "SELECT pid, query $match");
      my ($gid) = ($query // '') =~ /'(pgc_\d+_\d+_\d+_\d+)'/;
      my ($xid) = ($gid // '') =~ /^pgc_\d+_\d+_(\d+)_\d+$/;
      ok(defined $xid, "$what: the gid is known ($gid)") or $xid = 0;
      my $frozen;
      if ($c->{pause}) {
        # Frozen while idle after its PREPARE; the pause ends and COMMIT PREPARED is sent to
        # both participants before either answer is read: p1 committing while the
        # coordinator's COMMIT still runs proves p2's COMMIT PREPARED was sent.
        kill 'STOP', $rpid;
        $frozen = $rpid;
        is($p2->safe_psql('postgres', "SELECT count(*) $match AND pid = $rpid"), '1',
           "$what: p2's backend was frozen before COMMIT PREPARED reached it");
        is($p2->safe_psql('postgres', "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid'"), '1',
           "$what: p2 holds the prepared transaction");
        ok(wait_until($p1, "SELECT count(*) FROM t WHERE id = $id", '1', 60), "$what: p1 committed");
        is($coord->safe_psql('postgres',
             "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
             . "AND query LIKE 'COMMIT%' AND state = 'active' AND wait_event = 'Extension'"),
           '1', "$what: the coordinator waits for p2's answer to COMMIT PREPARED");
        is(proc_state($rpid), 'T', "$what: p2's backend is still frozen");
        is($p2->safe_psql('postgres', "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid'"), '1',
           "$what: p2 still holds the prepared transaction when it stops");
      }
      ok(stop_participant($p2, $mode, $frozen), "$what: p2 stopped");
      $s->{h}->finish;
      my $err = ${ $s->{err} };

      # The local outcome.
      if ($c->{commits}) {
        is($s->{h}->result(0), 0, "$what: the COMMIT succeeded") or diag($err);
        like($err, qr/WARNING:  could not commit prepared transaction "\Q$gid\E" on participant "p2"/,
             "$what: a WARNING leaves p2 to recovery");
        is(decisions($xid, 'p2'), '1', "$what: the decision for p2 is kept while p2 is down");
      } else {
        isnt($s->{h}->result(0), 0, "$what: the COMMIT failed");
        if ($c->{p1_flag}) {
          like($err, qr/ERROR:  could not prepare the transaction on participant "p1"/, "$what: p1 refused");
          like($err, qr/WARNING:  could not roll back prepared transaction "\Q$gid\E" on participant "p2"/,
               "$what: a WARNING leaves p2 to recovery");
        } else {
          like($err, qr/ERROR:  lost the connection to participant "p2"/, "$what: CS005 names p2");
        }
        unlike($err, qr/No answer in time/, "$what: the stop, not a timeout, ended the wait");
        is(decisions($xid), '0', "$what: no decision recorded");
      }

      # Where the stop landed on p2: the prepared transaction survived it or not.
      $p2->start;
      my $recovered = $c->{commits} ? 'committed' : 'rolled back';
      my $line = qr/pg_consistency: $recovered prepared transaction "\Q$gid\E" on participant "p2" \(recovery\)/;
      if ($c->{left}) {
        ok(log_shows($log, $line, 60), "$what: recovery $recovered the transaction p2 kept prepared");
      } else {
        is($p2->safe_psql('postgres', "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid'"), '0',
           "$what: nothing of it is prepared on p2 after the restart");
      }

      # The outcome everywhere.
      is(wait_none_prepared(60, $p1, $p2), 0, "$what: nothing left prepared");
      ok(wait_until($coord, "SELECT count(*) FROM consistency.twopc_decisions WHERE xid = '$xid'::xid8", '0', 30),
         "$what: the decision rows are gone");
      my $want = $c->{commits} ? 1 : 0;
      is(rows($p1, $id) . rows($p2, $id), "$want$want", "$what: the row is " . ($want ? 'on both' : 'on neither'));
      ok(!log_shows($log, $line, 0), "$what: recovery had nothing of it to finish on p2") unless $c->{left};
    }
  }
}

# --- a PREPARE given up on is cancelled on the participant ----------------------------------
# p2's PREPARE runs its deferred trigger (asleep) when the coordinator gives it up, on its
# twopc_timeout or on a cancel request: the PREPARE is cancelled there too (it would
# otherwise go on, holding its locks, after the connection is closed), nothing is left
# prepared, and the session ends without waiting for the abort's 5 s.
for my $how ('timeout', 'cancel') {
  my $what = "PREPARE given up ($how)";
  $id++;
  my $t0 = time;
  my $s = start_session(($how eq 'timeout' ? "SET pg_consistency.twopc_timeout = '1s';\n" : '')
    . "BEGIN;\nSELECT consistency.remote_exec('p1', \$q\$INSERT INTO t VALUES ($id)\$q\$);\n"
    . "SELECT consistency.remote_exec('p2', \$q\$INSERT INTO t VALUES ($id, 'sleep')\$q\$);\nCOMMIT;\n");
  my $in_prepare = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_consistency' "
                 . "AND query LIKE 'PREPARE TRANSACTION %' AND wait_event = 'PgSleep'";
  ok(wait_until($p2, $in_prepare, '1', 60), "$what: p2's backend is inside PREPARE TRANSACTION (PgSleep)");
  if ($how eq 'cancel') {
    $t0 = time;
    $coord->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
      . "WHERE backend_type = 'client backend' AND query LIKE 'COMMIT%' AND pid <> pg_backend_pid()");
  }
  $s->{h}->finish;
  my $took = time - $t0;
  like(${ $s->{err} }, $how eq 'timeout' ? qr/participant "p2" did not answer PREPARE TRANSACTION within 1000 ms/
                                         : qr/canceling statement due to user request/,
       "$what: the COMMIT failed");
  cmp_ok($took, '<', 5, "$what: the session ended without the abort's wait (" . sprintf('%.2f', $took) . ' s)');
  ok(wait_until($p2, $in_prepare, '0', 10), "$what: p2's PREPARE was cancelled");
  is(wait_none_prepared(30, $p1, $p2), 0, "$what: nothing left prepared");
  is(rows($p1, $id) . rows($p2, $id), '00', "$what: the row is on neither");
}

# --- recovery's own COMMIT PREPARED --------------------------------------------------------
# The coordinator crashes after its local commit (test hook), so the worker's recovery is
# what commits both parts; p2 makes every session wait for the synchronous standby (but for
# the coordinator's transaction, whose PREPARE must not wait), and it stops while
# recovery's COMMIT PREPARED there is written but not answered. Recovery gives the
# participant up for this pass, keeps its decision, and once p2 is back finds nothing left
# to commit there.
for my $mode ('immediate', 'crash') {
  my $what = "recovery's COMMIT PREPARED, $mode";
  $id++;
  my $log = -s $coord->logfile;
  $p2->safe_psql('postgres', "ALTER SYSTEM SET synchronous_commit = on;\nSELECT pg_reload_conf();");
  my ($rc) = $coord->psql('postgres', "SET pg_consistency.twopc_debug_crash_at = 'after_local_commit';\nBEGIN;\n"
    . "SELECT consistency.remote_exec('p1', \$q\$INSERT INTO t VALUES ($id)\$q\$);\n"
    . "SELECT consistency.remote_exec('p2', 'SET LOCAL synchronous_commit = local');\n"
    . "SELECT consistency.remote_exec('p2', \$q\$INSERT INTO t VALUES ($id)\$q\$);\nCOMMIT;\n");
  isnt($rc, 0, "$what: the session ended with the coordinator's crash");
  like(slurp_file($coord->logfile, $log), qr/crashing on purpose after_local_commit/,
       "$what: the coordinator crashed after its local commit");
  ok(wait_until($coord, 'SELECT 1', '1', 90), "$what: the coordinator is back");
  my $match = "FROM pg_stat_activity WHERE application_name = 'pg_consistency' "
            . "AND query LIKE 'COMMIT PREPARED %' AND wait_event = 'SyncRep'";
  ok(wait_until($p2, "SELECT count(*) $match", '1', 60), "$what: recovery's backend on p2 is inside COMMIT PREPARED");
  my ($gid) = $p2->safe_psql('postgres', "SELECT query $match") =~ /'(pgc_\d+_\d+_\d+_\d+)'/;
  my ($xid) = ($gid // '') =~ /^pgc_\d+_\d+_(\d+)_\d+$/;
  ok(defined $xid, "$what: the gid is known ($gid)") or $xid = 0;
  ok(stop_participant($p2, $mode), "$what: p2 stopped");
  ok(log_shows($log, qr/recovery skipped participant "p2": participant "p2" failed during recovery/, 60),
     "$what: recovery lost p2 in the middle of its COMMIT PREPARED");
  is(decisions($xid, 'p2'), '1', "$what: the decision for p2 is kept while p2 is down");
  $p2->start;
  is($p2->safe_psql('postgres', "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid'"), '0',
     "$what: the commit on p2 was durable before the stop");
  $p2->safe_psql('postgres', "ALTER SYSTEM RESET synchronous_commit;\nSELECT pg_reload_conf();");
  is(wait_none_prepared(60, $p1, $p2), 0, "$what: nothing left prepared");
  ok(wait_until($coord, "SELECT count(*) FROM consistency.twopc_decisions WHERE xid = '$xid'::xid8", '0', 30),
     "$what: the decision rows are gone");
  is(rows($p1, $id) . rows($p2, $id), '11', "$what: the row is on both");
  ok(!log_shows($log, qr/committed prepared transaction "\Q$gid\E" on participant "p2" \(recovery\)/, 0),
     "$what: recovery never saw it answered, and had nothing left to commit on p2");
}

is($coord->safe_psql('postgres', 'SELECT count(*) FROM consistency.in_doubt'), '0', 'nothing in doubt');
ok(wait_until($coord,
     "SELECT coalesce(string_agg(check_name || ': ' || detail, '; '), '') FROM consistency.check_integrity() WHERE NOT ok",
     '', 30), 'check_integrity() is clean');
$coord->stop;
$_->stop for $p1, $p2;
done_testing();
