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
use PgcRelay qw(relay_node wait_drained check_delivery relay_status publish_logged logged_ids wait_ready relay_worker_pid);

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
my $r = check_delivery($kafka, 'eo', ids => $ids);
is($r->{missing}, 0, 'every committed outbox id is in Kafka') or diag("first missing: $r->{first_missing}");
is($r->{duplicates}, 0, 'no outbox id twice for a read_committed consumer');
is($r->{total}, scalar @$ids, 'exactly as many messages as committed rows');
is($r->{order_violations}, 0, 'per-key order kept') or diag($r->{first_bad}{order});
is($r->{bad_headers}, 0, 'headers intact');

# The aborted attempts are really there for a read_uncommitted reader (the test would
# notice a relay that never had anything to abort) — informational only.
my $raw = $kafka->consume('eo', isolation => 'read_uncommitted', timeout => 120);
note(sprintf('read_uncommitted sees %d records, read_committed %d', scalar @$raw, $r->{total}));

my $log = slurp_file($node->logfile);
like($log, qr/pg_consistency relay: recovery: Kafka holds batches up to \d+ committed/, 'recovery ran after the crashes');
note(join("\n", $log =~ /(pg_consistency relay: recovery: [^\n]*)/g));
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.relay_batches'), '0', 'no open batch left');
ok($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM consistency._integrity_relay()') eq 't', 'integrity checks pass');

$node->stop;
$kafka->stop;
done_testing();
