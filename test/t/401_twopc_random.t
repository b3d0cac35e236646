# 500 randomized transfers across three participant databases, in two concurrent sessions,
# with injected coordinator crashes (PANIC after PREPARE or after the local commit, which
# also kills the other session wherever it is), participant restarts, failing statements
# and failing PREPAREs. Afterwards: money is conserved, every transfer is on all of its
# participants or on none, crashed-after-commit transfers are there, crashed-after-prepare
# ones are not, and no prepared transaction is left.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until);
use PgcTwopc qw(participant_node bank_sql transfer_sql wait_none_prepared);

my $seed = $ENV{PGC_SEED} // time;
srand($seed);
note("random seed $seed (set PGC_SEED to replay)");

my $accounts = 100;
my $coord = new_node('coord', conf => <<'CONF');
pg_consistency.twopc_recovery_interval = '200ms'
pg_consistency.twopc_timeout = '3s'
CONF

my %p;
for my $name (qw(p1 p2 p3)) {
  my $n = participant_node($name, 20, bank_sql($accounts));
  # The remote role is named explicitly (user=, required): the test's OS user, the
  # participant cluster's superuser.
  my $ci = $n->connstr('postgres') . ' user=' . scalar(getpwuid($<));
  $coord->safe_psql('postgres', "SELECT consistency.add_participant('$name', \$ci\$$ci\$ci\$)");
  $p{$name} = $n;
}
my @names = sort keys %p;
my $initial = 3 * $accounts * 1000;

my %legs_of;   # transfer id => number of legs
my %crash_at;  # transfer id => crash point of the transaction that carried the hook

sub random_transfer {
  my ($tid) = @_;
  my @pick = @names;
  for (my $i = $#pick; $i > 0; $i--) { my $j = int(rand($i + 1)); @pick[$i, $j] = @pick[$j, $i]; }
  my $k = rand() < 0.5 ? 2 : 3;
  my $a = rand() < 0.05 ? 13 : 1 + int(rand(400));
  my @deltas = $k == 2 ? (-$a, $a) : (-$a, int($a / 2), $a - int($a / 2));
  my @legs = map { [$pick[$_], 1 + int(rand($accounts)), $deltas[$_]] } 0 .. $k - 1;
  $legs_of{$tid} = $k;
  return transfer_sql($tid, @legs);
}

my ($tid, $batches, $crashes, $restarts) = (0, 0, 0, 0);
my %crashed;   # transfer id => crash point, for hooks that fired
while ($tid < 500) {
  $batches++;
  my @scripts = ('', '');
  my $hook;
  # The first batches always carry a crash hook, later ones in 60% of the cases.
  $hook = (rand() < 0.5 ? 'after_prepare' : 'after_local_commit') if $batches <= 4 || rand() < 0.6;
  my $hook_tid;
  for my $s (0, 1) {
    my $n = 5 + int(rand(25));
    for my $i (1 .. $n) {
      last if $tid >= 500;
      $tid++;
      if ($s == 0 && $i == $n && $hook) {
        $scripts[$s] .= "SET pg_consistency.twopc_debug_crash_at = '$hook';\n";
        $hook_tid = $tid;
      }
      $scripts[$s] .= random_transfer($tid);
    }
  }
  my $log = -s $coord->logfile;
  my @h;
  for my $s (0, 1) {
    next if $scripts[$s] eq '';
    my ($o, $e) = ('', '');
    push @h, IPC::Run::start(['psql', '-X', '-q', '-d', $coord->connstr('postgres'), '-f', '-'],
      '<', \$scripts[$s], '>', \$o, '2>', \$e, IPC::Run::timeout(300));
  }
  $_->finish for @h;
  if (slurp_file($coord->logfile, $log) =~ /crashing on purpose (\w+)/) {
    $crashes++;
    $crashed{$hook_tid} = $1 if defined $hook_tid;
    ok(wait_until($coord, 'SELECT 1', '1', 90), "batch $batches: coordinator back after a crash $1");
  }
  if (rand() < 0.15) {
    my $victim = $p{ $names[int(rand(3))] };
    $victim->stop('immediate');
    $victim->start;
    $restarts++;
  }
}
note("$tid transfers in $batches batches, $crashes coordinator crashes, $restarts participant restarts");
cmp_ok($crashes, '>=', 3, 'several coordinator crashes were injected');

# Everything left over is resolved by the worker.
is(wait_none_prepared(120, map { $p{$_} } @names), 0, 'no prepared transaction left on any participant');
ok(wait_until($coord, 'SELECT count(*) FROM consistency.twopc_decisions', '0', 60), 'every decision row cleaned up');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM consistency.in_doubt'), '0', 'nothing in doubt');

# Money is conserved and every transfer is all-or-nothing.
my $total = 0;
$total += $p{$_}->safe_psql('postgres', 'SELECT sum(balance) FROM accounts') for @names;
is($total, $initial, "money conserved across the three databases ($total)");

my (%legs, %sum);
for my $name (@names) {
  for my $line (split /\n/, $p{$name}->safe_psql('postgres',
      'SELECT transfer_id, count(*), sum(delta) FROM ledger GROUP BY 1')) {
    my ($t, $c, $s) = split /\|/, $line;
    $legs{$t} += $c;
    $sum{$t} += $s;
  }
  is($p{$name}->safe_psql('postgres',
       "SELECT count(*) FROM accounts a LEFT JOIN (SELECT account, sum(delta) s FROM ledger GROUP BY 1) l ON l.account = a.id WHERE a.balance <> 1000 + coalesce(l.s, 0)"),
     '0', "$name: every balance matches its ledger");
}
my @partial = grep { $legs{$_} != $legs_of{$_} } sort { $a <=> $b } keys %legs;
is(scalar(@partial), 0, 'no transfer is partially committed') or diag("partial: @partial");
my @unbalanced = grep { $sum{$_} != 0 } keys %sum;
is(scalar(@unbalanced), 0, 'every committed transfer sums to zero');
my $committed = scalar(keys %legs);
note("$committed of $tid transfers committed");
cmp_ok($committed, '>=', 150, 'a good share of the transfers committed');

for my $t (sort { $a <=> $b } keys %crashed) {
  if ($crashed{$t} eq 'after_local_commit') {
    is($legs{$t} // 0, $legs_of{$t}, "transfer $t (crash after its local commit) is committed everywhere");
  } else {
    is($legs{$t} // 0, 0, "transfer $t (crash after PREPARE) is nowhere");
  }
}

ok(wait_until($coord, 'SELECT bool_and(ok) FROM consistency._integrity_twopc()', 't', 30), 'integrity checks pass');
$coord->stop;
$p{$_}->stop for @names;
done_testing();
