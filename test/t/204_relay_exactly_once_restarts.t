# exactly_once across PostgreSQL immediate stops and broker crashes in the middle of a
# stream: after each, the relay recovers from the progress topic and a read_committed
# consumer sees every committed outbox id exactly once, in per-key order.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcKafka;
use PgcCluster qw(wait_until);
use PgcRelay qw(relay_node wait_drained publish_logged logged_ids wait_ready delivered_exactly_once);

my $kafka = PgcKafka->start;
my $node  = relay_node('relay_eo_restart', $kafka, mode => 'exactly_once', batch_size => 50);

is(publish_logged($node, 'eo2', n => 15000, keys => 40, txn => 1000), 15000, '15,000 messages waiting');
srand(4242);

# PostgreSQL immediate stop (no shutdown checkpoint, the worker dies mid-batch), twice.
for my $round (1 .. 2) {
  usleep(int(300_000 + rand(1_200_000)));
  my $delivered = $node->safe_psql('postgres', 'SELECT delivered_total FROM consistency.outbox_status');
  $node->stop('immediate');
  note("round $round: immediate stop after $delivered delivered");
  $node->start;
  ok(wait_ready($node, 90), "round $round: PostgreSQL and the relay back after an immediate stop");
  is(publish_logged($node, 'eo2', n => 500, keys => 40, txn => 100), 500, "round $round: 500 more published");
}

# Broker crash (SIGKILL) mid-stream, then back after a few seconds; and a clean restart.
for my $how ('kill', 'stop') {
  usleep(int(200_000 + rand(800_000)));
  my $delivered = $node->safe_psql('postgres', 'SELECT delivered_total FROM consistency.outbox_status');
  $how eq 'kill' ? $kafka->kill : $kafka->stop;
  note("broker $how after $delivered delivered");
  is(publish_logged($node, 'eo2', n => 300, keys => 40, txn => 100), 300, "broker $how: rows keep coming while it is away");
  sleep 3;
  $kafka->restart;
  ok(wait_until($node, 'SELECT relay_state FROM consistency.outbox_status', 'running', 120), "broker $how: relay running again");
}

# One more immediate stop while the relay works through the rest.
usleep(500_000);
$node->stop('immediate');
$node->start;
ok(wait_ready($node, 90), 'back after a last immediate stop');

ok(wait_drained($node, 300), 'outbox drained');
my $ids = logged_ids($node);
is(scalar @$ids, 15000 + 2 * 500 + 2 * 300, 'committed ids known from the log table');
delivered_exactly_once($kafka, 'eo2', $ids);
note(join("\n", slurp_file($node->logfile) =~ /(pg_consistency relay: recovery: [^\n]*)/g));
ok($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM consistency._integrity_relay()') eq 't', 'integrity checks pass');

$node->stop;
$kafka->stop;
done_testing();
