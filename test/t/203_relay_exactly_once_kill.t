# exactly_once under worker crashes: the worker is killed with SIGKILL at random moments
# (several rounds; PostgreSQL then restarts every backend) while it relays and while new
# rows keep coming. A read_committed consumer must see every committed outbox id exactly
# once, in per-key order.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcKafka;
use PgcCluster qw(wait_until process_gone);
use PgcRelay qw(relay_node wait_drained publish_logged logged_ids wait_ready relay_worker_pid delivered_exactly_once);

my $kafka = PgcKafka->start;
my $node  = relay_node('relay_eo_kill', $kafka, mode => 'exactly_once', batch_size => 50);

my $published = publish_logged($node, 'eo', n => 20000, keys => 50, txn => 1000);
is($published, 20000, '20,000 messages waiting');

srand(20240601);
my $rounds = 6;
my $kills  = 0;
for my $round (1 .. $rounds) {
  usleep(int(100_000 + rand(900_000)));
  my $pid = relay_worker_pid($node);
  next unless $pid =~ /^\d+$/;
  my $delivered = $node->safe_psql('postgres', 'SELECT delivered_total FROM consistency.outbox_status');
  kill 'KILL', $pid;
  $kills++;
  ok(process_gone($pid, 10), "round $round: worker $pid killed (delivered so far: $delivered)");
  ok(wait_ready($node, 90), "round $round: server and relay back");
  # More rows while the relay recovers.
  is(publish_logged($node, 'eo', n => 500, keys => 50, txn => 100), 500, "round $round: 500 more published");
}
cmp_ok($kills, '>=', 5, "$kills kill -9 rounds");

ok(wait_drained($node, 240), 'outbox drained after the crashes');
my $ids = logged_ids($node);
is(scalar @$ids, 20000 + 500 * $rounds, 'committed ids known from the log table');
# The note on read_uncommitted shows the aborted attempts (informational only: a relay
# that never had anything to abort would show as many records as committed).
delivered_exactly_once($kafka, 'eo', $ids);

my $log = slurp_file($node->logfile);
like($log, qr/pg_consistency relay: recovery: Kafka holds batches up to \d+ committed/, 'recovery ran after the crashes');
note(join("\n", $log =~ /(pg_consistency relay: recovery: [^\n]*)/g));
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.relay_batches'), '0', 'no open batch left');
ok($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM consistency._integrity_relay()') eq 't', 'integrity checks pass');

$node->stop;
$kafka->stop;
done_testing();
