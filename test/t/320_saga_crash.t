# Crash safety: 200 order sagas in flight (one in five with a declined payment, so
# compensation is in flight too), then at random points: kill -9 of a saga worker or the
# per-database worker (the postmaster reinitialises), and an immediate stop of PostgreSQL
# followed by a restart - three rounds. Afterwards every saga reaches a terminal state,
# every function step's effect exists exactly once, and each compensation ran at most
# once per completed step - checked on the example tables, not on the saga log alone.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until process_gone);
use PgcSaga qw(install_order_flow terminal_count);

my $seed = $ENV{PGC_SEED} // time;
srand($seed);
note("random seed $seed (set PGC_SEED to repeat)");

my $sagas = 200;
my $node = new_node('saga_crash', conf => <<'CONF');
pg_consistency.saga_workers = 2
pg_consistency.saga_batch_size = 8
CONF
install_order_flow($node);

sub Q { return $node->safe_psql('postgres', $_[0]) }

# Start the sagas, 20 per transaction, each order in the transaction that starts its saga.
for my $batch (0 .. $sagas / 20 - 1) {
  my $sql = 'BEGIN;';
  for my $i (1 .. 20) {
    my $id = $batch * 20 + $i;
    my $card = $id % 5 == 0 ? 'declined' : 'valid';
    $sql .= qq(
      INSERT INTO shop.orders (id, sku, qty, amount) VALUES ($id, 'apple', 2, 9.90);
      UPDATE shop.orders SET saga_id = consistency.start_saga('order',
        jsonb_build_object('order_id', $id, 'sku', 'apple', 'qty', 2, 'amount', 9.90,
                           'card', '$card', 'step_sleep', 0.02), 'order-$id')
       WHERE id = $id;);
  }
  Q($sql . 'COMMIT;');
}
is(Q("SELECT count(*) FROM consistency.sagas"), $sagas, "$sagas sagas started");

sub workers {
  return grep { /^\d+$/ } split /\n/, (eval {
    Q("SELECT pid FROM pg_stat_activity WHERE backend_type IN ('pg_consistency saga worker', 'pg_consistency worker')")
  } // '');
}

# Each round strikes once a random share of the sagas has finished, so the crashes
# fall early, midway and late in the run.
my @targets = map { int($sagas * (0.05 + 0.25 * ($_ - 1)) + rand($sagas * 0.15)) } 1 .. 3;
my $in_flight_at_first_crash;
for my $round (1 .. 3) {
  ok(wait_until($node, "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", 't', 60),
     "round $round: saga workers running");
  ok(wait_until($node, "SELECT count(*) >= $targets[$round - 1] FROM consistency.sagas "
                     . "WHERE status IN ('completed', 'compensated', 'failed', 'aborted')", 't', 120),
     "round $round: $targets[$round - 1] sagas finished");
  usleep(int(rand(200_000)));
  my @pids = workers();
  my $done = eval { terminal_count($node) } // '?';
  $in_flight_at_first_crash //= $sagas - $done if $done =~ /^\d+$/;
  my $victim = $pids[int(rand(@pids))];
  note("round $round: kill -9 of $victim with $done of $sagas sagas terminal");
  kill 'KILL', $victim;
  ok(process_gone($victim), "round $round: killed worker $victim");

  # Crash restart, then an immediate stop at another random moment.
  ok(wait_until($node, "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", 't', 60),
     "round $round: saga workers back after the crash restart");
  usleep(int(rand(300_000)));
  $done = eval { terminal_count($node) } // '?';
  note("round $round: immediate stop with $done of $sagas sagas terminal");
  $node->stop('immediate');
  $node->start;
}
cmp_ok($in_flight_at_first_crash, '>', 0, "sagas were in flight at the first crash ($in_flight_at_first_crash)");

ok(wait_until($node, "SELECT count(*) FROM consistency.sagas WHERE status IN ('completed', 'compensated', 'failed', 'aborted')",
              $sagas, 240), 'every saga reached a terminal state');
my $valid = $sagas - $sagas / 5;
is(Q("SELECT status || ':' || count(*) FROM consistency.sagas GROUP BY status ORDER BY status"),
   "compensated:" . ($sagas / 5) . "\ncompleted:$valid", 'declined payments compensated, the rest completed');

# Exactly once, on the example tables.
is(Q("SELECT count(*) FROM shop.orders WHERE status = 'completed' AND id % 5 <> 0"), $valid, 'valid orders completed');
is(Q("SELECT count(*) FROM shop.orders WHERE status = 'cancelled' AND id % 5 = 0"), $sagas / 5, 'declined orders cancelled');
is(Q("SELECT count(*) || ' ' || bool_or(refunded) FROM shop.payments"),
   "$valid false", 'one payment per valid order, none for declined ones, no refund');
is(Q("SELECT count(*) || ' ' || bool_or(cancelled) FROM shop.shipments"),
   "$valid false", 'one shipment per valid order');
# order_id is the key of both tables: a step run a second time fails on it rather than
# adding a row, so a second run shows as a failed attempt with a duplicate key.
is(Q("SELECT count(*) FROM consistency.events WHERE type = 'StepFailed' AND data->>'error' LIKE '%duplicate key%'"),
   '0', 'no step ran a second time (no attempt failed on a duplicate key)');
is(Q("SELECT available FROM shop.stock"), 1000000 - 2 * $valid, 'stock reserved once per completed order and released once per declined one');

my $per_saga = <<'SQL';
SELECT o.id % 5 = 0 AS declined,
       count(*) FILTER (WHERE e.effect = 'reserve') AS reserve,
       count(*) FILTER (WHERE e.effect = 'pay') AS pay,
       count(*) FILTER (WHERE e.effect = 'ship') AS ship,
       count(*) FILTER (WHERE e.effect = 'complete') AS complete,
       count(*) FILTER (WHERE e.effect = 'release') AS release,
       count(*) FILTER (WHERE e.effect = 'cancel_order') AS cancel_order,
       count(*) FILTER (WHERE e.effect IN ('refund', 'cancel_shipment')) AS other
  FROM shop.orders o LEFT JOIN shop.effects e ON e.order_id = o.id
 GROUP BY o.id
SQL
is(Q("SELECT count(*) FROM ($per_saga) s WHERE NOT declined AND (reserve, pay, ship, complete, release, cancel_order, other) = (1, 1, 1, 1, 0, 0, 0)"),
   $valid, 'completed sagas: each step took effect exactly once, nothing compensated');
is(Q("SELECT count(*) FROM ($per_saga) s WHERE declined AND (reserve, pay, ship, complete, release, cancel_order, other) = (1, 0, 0, 0, 1, 1, 0)"),
   $sagas / 5, 'compensated sagas: reserved once, released once, cancelled once');
is(Q("SELECT count(*) FROM shop.effects e JOIN shop.orders o ON o.id = e.order_id WHERE e.saga_id <> o.saga_id"), '0',
   'every effect belongs to its order\'s saga');

# The audit trail agrees: one success event per step, one terminal event per saga.
is(Q("SELECT count(*) FROM consistency.sagas s WHERE s.status = 'completed' AND "
     . "(SELECT count(*) FILTER (WHERE type = 'StepSucceeded') || '/' || count(*) FILTER (WHERE type = 'SagaCompleted') "
     . "   FROM consistency.read_stream('saga-' || s.id)) = '4/1'"), $valid, 'completed sagas: 4 step events and 1 completion in each stream');
is(Q("SELECT count(*) FROM consistency.sagas s WHERE s.status = 'compensated' AND "
     . "(SELECT count(*) FILTER (WHERE type = 'CompensationSucceeded') || '/' || count(*) FILTER (WHERE type = 'SagaCompensated') "
     . "   FROM consistency.read_stream('saga-' || s.id)) = '1/1'"), $sagas / 5, 'compensated sagas: 1 compensation and 1 end event in each stream');
is(Q("SELECT bool_and(ok) FROM consistency._integrity_saga()"), 't', 'integrity checks pass');

$node->stop('fast');
done_testing();
