# exactly_once across PostgreSQL immediate stops and broker crashes, each aimed at an open
# Kafka transaction: the relay worker is frozen (SIGSTOP) at random moments until the
# broker's transaction coordinator shows its transaction Ongoing (records produced, neither
# committed nor aborted), and only then is the server stopped or the broker crashed. Every
# round must land there (counted) and be followed by its recovery: after an immediate stop
# the progress topic shows the frozen batch uncommitted, the batch is sent again and the new
# producer fenced the old one; after a broker crash the open transaction is ended once the
# broker is back. A read_committed consumer then sees every committed outbox id exactly
# once, in per-key order.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcKafka;
use PgcCluster qw(wait_until);
use PgcRelay qw(relay_node wait_drained publish_logged logged_ids wait_ready delivered_exactly_once
  freeze_inside_transaction recovered_open_transaction);

my $txid  = 'pgc-test-eo-restarts';
my $kafka = PgcKafka->start;
my $node  = relay_node('relay_eo_restart', $kafka, mode => 'exactly_once', batch_size => 50,
  conf => "pg_consistency.relay_transactional_id = '$txid'\n");

is(publish_logged($node, 'eo2', n => 20000, keys => 40, txn => 20000), 20000, '20,000 messages waiting');
srand(4242);
my $more = 0;
my ($rounds, $inside) = (0, 0);

# Keeps the relay busy: a stop only means something while batches are going out.
sub top_up {
  my $pending = $node->safe_psql('postgres', 'SELECT pending FROM consistency.outbox_status');
  return if $pending >= 10000;
  $more += publish_logged($node, 'eo2', n => 20000, keys => 40, txn => 20000);
  usleep(300_000);
}

# One round: the relay frozen inside an open Kafka transaction (counted), or a failure
# when no try landed there. Returns the freeze (worker still stopped) or undef.
sub freeze_round {
  my ($label) = @_;
  $rounds++;
  my ($frozen, $misses) = freeze_inside_transaction($node, $kafka, $txid, tries => 12, before => \&top_up);
  if (!$frozen) {
    fail("$label: no freeze landed inside an open transaction ($misses tries)");
    return undef;
  }
  $inside++;
  note("$label: worker frozen inside the transaction of batch $frozen->{batch} after $misses misses");
  return $frozen;
}

# PostgreSQL immediate stop with the worker frozen inside a Kafka transaction: the other
# backends quit at once, the frozen worker is killed by the postmaster (SIGKILL after 5 s)
# without having run again. Three rounds.
for my $round (1 .. 3) {
  my $frozen = freeze_round("stop $round") or next;
  my $offset = -s $node->logfile;
  $node->stop('immediate');
  $node->start;
  ok(wait_ready($node, 90), "stop $round: PostgreSQL and the relay back after an immediate stop");
  recovered_open_transaction($node, $kafka, $txid, $frozen, $offset, "stop $round");
  is(publish_logged($node, 'eo2', n => 500, keys => 40, txn => 100), 500, "stop $round: 500 more published");
  $more += 500;
}

# Broker crash (SIGKILL) and clean stop with the relay's transaction open; the worker goes on
# (SIGCONT) while the broker is away, then the broker comes back.
for my $how ('kill', 'stop') {
  my $frozen = freeze_round("broker $how") or next;
  my $offset    = -s $node->logfile;
  my $delivered = $node->safe_psql('postgres', 'SELECT delivered_total FROM consistency.outbox_status');
  $how eq 'kill' ? $kafka->kill : $kafka->stop;
  kill 'CONT', $frozen->{pid};
  is(publish_logged($node, 'eo2', n => 300, keys => 40, txn => 100), 300, "broker $how: rows keep coming while it is away");
  $more += 300;
  sleep 3;    # deliberate: the relay meets the absent broker for a while (retries, no delivery)
  $kafka->restart;
  ok(wait_until($node, 'SELECT relay_state FROM consistency.outbox_status', 'running', 120), "broker $how: relay running again");
  ok(wait_until($node, "SELECT delivered_total > $delivered FROM consistency.outbox_status", 't', 120),
    "broker $how: delivering again");
  # The transaction open when the broker went away is over: committed or aborted by the
  # relay's producer, or aborted when a new producer fenced it.
  my $now = $kafka->describe_transaction($txid);
  ok(!($now->{state} eq 'Ongoing' && $now->{epoch} == $frozen->{epoch} && $now->{start_ms} == $frozen->{start_ms}),
    "broker $how: the transaction open at the crash (epoch $frozen->{epoch}) ended "
      . "(now $now->{state}, epoch $now->{epoch})");
  note("broker $how: relay said: " . join(' | ',
    slurp_file($node->logfile, $offset) =~ /pg_consistency relay: ((?:recovery|batch \d+ aborted|commit of batch)[^\n]*)/g));
}
is($inside, $rounds, "all $rounds stops and crashes landed inside an open Kafka transaction");

ok(wait_drained($node, 300), 'outbox drained');
my $ids = logged_ids($node);
is(scalar @$ids, 20000 + $more, 'committed ids known from the log table');
my $seen = delivered_exactly_once($kafka, 'eo2', $ids);
cmp_ok($seen->{uncommitted}, '>', $seen->{committed},
  'records of the aborted transactions are in the topic, invisible to read_committed');
note(join("\n", slurp_file($node->logfile) =~ /(pg_consistency relay: recovery: [^\n]*)/g));
ok($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM consistency._integrity_relay()') eq 't', 'integrity checks pass');

$node->stop;
$kafka->stop;
done_testing();
