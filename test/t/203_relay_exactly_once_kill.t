# exactly_once under worker crashes, aimed at the dangerous moment: the worker is killed
# with SIGKILL (PostgreSQL then restarts every backend) while rows keep coming, and the test
# counts the kills that landed inside an open Kafka transaction. Before each kill the worker
# is frozen (SIGSTOP) and the broker's transaction coordinator is asked about the relay's
# transactional id: Ongoing with partitions added means records were produced and neither
# committed nor aborted. This goes on until enough kills landed there; each such one must be
# followed by the recovery path (the progress topic shows the frozen batch uncommitted, the
# batch is sent again, the new producer fenced the dead one). The first two freezes that land
# elsewhere (e.g. committed in Kafka, not yet finished in PostgreSQL) are killed too; later
# ones are let go (SIGCONT) and another moment is tried.
# At the end a read_committed consumer must see every committed outbox id exactly once, in
# per-key order, while a read_uncommitted one sees the aborted attempts as well.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcKafka;
use PgcCluster qw(wait_until process_gone);
use PgcRelay qw(relay_node wait_drained publish_logged logged_ids wait_ready delivered_exactly_once
  freeze_relay recovered_open_transaction);

my $txid  = 'pgc-test-eo-kill';
my $kafka = PgcKafka->start;
my $node  = relay_node('relay_eo_kill', $kafka, mode => 'exactly_once', batch_size => 50,
  conf => "pg_consistency.relay_transactional_id = '$txid'\n");

my $published = publish_logged($node, 'eo', n => 20000, keys => 50, txn => 20000);
is($published, 20000, '20,000 messages waiting');

srand(20240601);
my $want_inside  = 4;    # kills that must land inside an open Kafka transaction
my $max_outside  = 2;    # kills at a moment outside one, for the other recovery cases
my $max_freezes  = 30;
my ($freezes, $inside, $outside, $missed, $more) = (0, 0, 0, 0, 0);
while ($inside < $want_inside && $freezes < $max_freezes) {
  $freezes++;
  # Keep the relay busy: a kill only means something while batches are going out.
  my $pending = $node->safe_psql('postgres', 'SELECT pending FROM consistency.outbox_status');
  if ($pending < 10000) {
    $more += publish_logged($node, 'eo', n => 20000, keys => 50, txn => 20000);
    usleep(300_000);
  }
  usleep(int(50_000 + rand(250_000)));
  my $frozen = freeze_relay($node, $kafka, $txid);
  if (!$frozen) {
    note("freeze $freezes: no relay worker running");
    wait_ready($node, 60);
    next;
  }
  my $where = $frozen->{inside}
    ? "inside the open transaction of batch $frozen->{batch} (epoch $frozen->{epoch}, partitions @{ $frozen->{partitions} })"
    : "outside an open transaction (coordinator: $frozen->{state}, lowest recorded batch: "
      . ($frozen->{batch} eq '' ? 'none' : $frozen->{batch}) . ')';
  if (!$frozen->{inside} && $outside >= $max_outside) {
    # Enough kills elsewhere: let it go on and try another moment.
    kill 'CONT', $frozen->{pid};
    $missed++;
    note("freeze $freezes: $where; continued");
    next;
  }
  my $offset = -s $node->logfile;
  kill 'KILL', $frozen->{pid};
  ok(process_gone($frozen->{pid}, 10), "freeze $freezes: worker $frozen->{pid} killed $where");
  ok(wait_ready($node, 90), "freeze $freezes: server and relay back");
  if ($frozen->{inside}) {
    $inside++;
    recovered_open_transaction($node, $kafka, $txid, $frozen, $offset, "freeze $freezes");
  } else {
    $outside++;
  }
}
cmp_ok($inside, '>=', $want_inside,
  "$inside kills landed inside an open Kafka transaction ($outside kills elsewhere, $missed freezes let go)");

ok(wait_drained($node, 240), 'outbox drained after the crashes');
my $ids = logged_ids($node);
is(scalar @$ids, 20000 + $more, 'committed ids known from the log table');
my $seen = delivered_exactly_once($kafka, 'eo', $ids);
# The killed transactions' records are in the log, only aborted: read_uncommitted shows them.
cmp_ok($seen->{uncommitted}, '>', $seen->{committed},
  'records of the aborted transactions are in the topic, invisible to read_committed');

my $log = slurp_file($node->logfile);
my $resent = () = $log =~ /pg_consistency relay: recovery: [^\n]* was not committed and will be sent again/g;
cmp_ok($resent, '>=', $inside, "recovery re-sent an uncommitted batch $resent times");
note(join("\n", $log =~ /(pg_consistency relay: recovery: [^\n]*)/g));
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.relay_batches'), '0', 'no open batch left');
ok($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM consistency._integrity_relay()') eq 't', 'integrity checks pass');

$node->stop;
$kafka->stop;
done_testing();
