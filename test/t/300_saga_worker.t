# Sagas with the worker: the order flow of the design succeeds; a declined payment
# releases the inventory and cancels the order, in that order; a shipment that times out
# is refunded, then released; a compensation that fails twice then succeeds; one that
# never succeeds leaves the saga failed until an operator retries it. Also: ready steps
# are picked up on commit (not by polling), saga_workers is applied on reload (N
# processes, or inline in the per-database worker with 0), and a killed saga worker is
# replaced.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until reload_config process_gone);
use PgcSaga qw(install_order_flow start_order wait_terminal effects_of);

my $node = new_node('saga_worker');
install_order_flow($node);

sub Q { return $node->safe_psql('postgres', $_[0]) }
sub stat_sum { Q("SELECT coalesce(sum($_[0]), 0) FROM consistency.saga_worker_stats") }

ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", '1'),
   'one saga worker by default');

# 1. The order flow succeeds: each step once, in order, as the role that defined it.
my $ok = start_order($node, 1);
is(wait_terminal($node, $ok), 'completed', 'order flow completes');
is(effects_of($node, $ok), 'reserve,pay,ship,complete', 'every step ran exactly once, in order');
is(Q("SELECT status FROM shop.orders WHERE id = 1"), 'completed', 'order completed');
is(Q("SELECT data->>'tracking' || ' ' || (data->>'payment') FROM consistency.sagas WHERE id = '$ok'"),
   'trk-1 pay-1', 'step outputs merged into the saga data');
is(Q("SELECT count(DISTINCT role) || ':' || min(role) FROM shop.effects WHERE saga_id = '$ok'"),
   '1:' . Q("SELECT current_user"), 'steps ran as the role that defined the saga');
is(Q("SELECT current_step IS NULL AND attempts = 0 AND last_error IS NULL FROM consistency.sagas WHERE id = '$ok'"),
   't', 'completed saga has no current step and no error');

# 2. Payment declined (3 attempts): inventory released, order cancelled, in that order.
my $failures_before = stat_sum('step_failures');
my $declined = start_order($node, 2, card => 'declined');
is(wait_terminal($node, $declined), 'compensated', 'declined payment: saga compensated');
is(effects_of($node, $declined), 'reserve,release,cancel_order',
   'inventory released, then order cancelled; nothing else');
is(Q("SELECT status FROM shop.orders WHERE id = 2"), 'cancelled', 'order cancelled');
is(Q("SELECT count(*) FROM shop.payments WHERE order_id = 2"), '0',
   'the failed payment attempts left no payment behind');
is(stat_sum('step_failures') - $failures_before, 3, 'three failed payment attempts counted');
is(Q("SELECT last_error FROM consistency.sagas WHERE id = '$declined'"), 'card declined', 'last_error says why');

# 3. Shipping times out (a 500 ms step timeout, twice): refund, then release.
my $slow = start_order($node, 3, shipping => 'slow');
is(wait_terminal($node, $slow, 60), 'compensated', 'shipping timed out: saga compensated');
is(effects_of($node, $slow), 'reserve,pay,refund,release,cancel_order', 'refund, then release');
is(Q("SELECT refunded FROM shop.payments WHERE order_id = 3"), 't', 'payment refunded');
is(Q("SELECT count(*) FROM shop.shipments WHERE order_id = 3"), '0', 'no shipment left');
like(Q("SELECT last_error FROM consistency.sagas WHERE id = '$slow'"), qr/statement timeout/,
     'last_error names the timeout');

# 4. A compensation that fails twice, then succeeds.
Q("SELECT setval('shop.release_calls', 1, false)");
my $comp_failures_before = stat_sum('compensation_failures');
my $flaky = start_order($node, 4, card => 'declined', release_failures => 2);
is(wait_terminal($node, $flaky), 'compensated', 'flaky compensation: saga compensated');
is(effects_of($node, $flaky), 'reserve,release,cancel_order', 'the release ran once in effect');
is(stat_sum('compensation_failures') - $comp_failures_before, 2, 'two failed compensation attempts counted');

# 5. A compensation that never succeeds: failed (needs an operator), then retried.
Q("SELECT setval('shop.release_calls', 1, false)");
my $stuck = start_order($node, 5, card => 'declined', release_failures => 1000000);
is(wait_terminal($node, $stuck), 'failed', 'compensation exhausted: saga failed');
is(Q("SELECT current_step || ' ' || attempts || ' ' || last_error FROM consistency.sagas WHERE id = '$stuck'"),
   'reserve_inventory 3 warehouse unavailable', 'failed saga shows the stuck compensation');
is(effects_of($node, $stuck), 'reserve', 'nothing was released');
usleep(300_000);    # deliberate: several poll intervals pass, and it is not retried by itself
is(Q("SELECT status FROM consistency.sagas WHERE id = '$stuck'"), 'failed', 'a failed saga stays failed');
Q("UPDATE consistency.saga_instances SET data = data || '{\"release_failures\": 0}' WHERE id = '$stuck'");
Q("SELECT consistency.retry_saga('$stuck')");
is(wait_terminal($node, $stuck), 'compensated', 'operator retry: compensation finishes');
is(effects_of($node, $stuck), 'reserve,release,cancel_order', 'released once after the retry');

# 6. Ready steps are picked up at commit, not at the next poll: with a 60 s poll
#    interval a saga still completes at once.
Q("ALTER SYSTEM SET pg_consistency.poll_interval = '60s'");
ok(reload_config($node), 'every process read poll_interval = 60s');
my $t0 = time;
my $woken = start_order($node, 6);
is(wait_terminal($node, $woken, 50), 'completed', 'saga completed with a 60 s poll interval');
my $elapsed = time - $t0;
cmp_ok($elapsed, '<', 30, sprintf('completed in %.2f s, far below the poll interval', $elapsed));
note('pickup latency of the first step: '
     . Q("SELECT round(extract(epoch FROM (SELECT min(at) FROM shop.effects WHERE saga_id = s.id) - s.created_at) * 1000, 2) FROM consistency.sagas s WHERE id = '$woken'")
     . ' ms');
Q("ALTER SYSTEM SET pg_consistency.poll_interval = '200ms'");
Q("SELECT pg_reload_conf()");

# 7. saga_workers on reload: 3 processes share the work; 0 runs sagas inline.
Q("ALTER SYSTEM SET pg_consistency.saga_workers = 3");
Q("ALTER SYSTEM SET pg_consistency.saga_batch_size = 2");
Q("SELECT pg_reload_conf()");
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", '3'),
   'three saga workers after reload');
my @many = map { start_order($node, 100 + $_, step_sleep => '0.01') } 1 .. 30;
ok(wait_until($node, "SELECT count(*) FROM consistency.sagas s JOIN shop.orders o ON o.saga_id = s.id "
                   . "WHERE o.id > 100 AND s.status = 'completed'", '30', 60), '30 sagas completed by 3 workers');
is(Q("SELECT count(*) FROM shop.effects e JOIN shop.orders o ON o.id = e.order_id WHERE o.id > 100"), '120',
   'each of their 120 steps took effect once');
cmp_ok(Q("SELECT count(*) FROM consistency.saga_worker_stats WHERE worker BETWEEN 1 AND 3 AND steps_executed > 0"),
       '>=', 2, 'more than one saga worker did work');

# Steps that lock the same two rows in opposite orders, run by 3 workers at once: their
# batches deadlock. The loser is deferred without spending an attempt (a 100 ms
# deadlock_timeout in saga workers), so no saga fails because of another's batch.
Q(q{
  CREATE TABLE shop.hot (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
  INSERT INTO shop.hot VALUES (1), (2);
  CREATE FUNCTION shop.touch_first(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE shop.hot SET n = n + 1 WHERE id = (data->>'first')::int;
    PERFORM pg_sleep(0.02);
    RETURN '{}';
  END $$;
  CREATE FUNCTION shop.touch_second(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE shop.hot SET n = n + 1 WHERE id = (data->>'second')::int;
    RETURN '{}';
  END $$;
  SELECT consistency.define_saga('crossed', '{"steps": [
    {"name": "first", "action": {"function": "shop.touch_first"}, "retry": {"max_attempts": 1}},
    {"name": "second", "action": {"function": "shop.touch_second"}, "retry": {"max_attempts": 1}}]}');
});
my $failures_before_crossed = stat_sum('step_failures');
# Batches of 2 (set above): consecutive pairs of sagas start on opposite rows.
Q("SELECT consistency.start_saga('crossed', jsonb_build_object('first', 1 + ((g - 1) / 2) % 2, "
  . "'second', 2 - ((g - 1) / 2) % 2)) FROM generate_series(1, 60) g");
ok(wait_until($node, "SELECT count(*) FROM consistency.sagas WHERE name = 'crossed' AND status = 'completed'", '60', 120),
   'all 60 sagas with crossed row locks completed');
is(Q("SELECT sum(n) FROM shop.hot"), '120', 'each of their steps took effect once');
is(stat_sum('step_failures') - $failures_before_crossed, 0, 'no attempt was lost to a deadlock');
cmp_ok(stat_sum('conflicts'), '>', 0, 'the workers did deadlock (' . stat_sum('conflicts') . ' attempts deferred)');

Q("ALTER SYSTEM SET pg_consistency.saga_workers = 0");
Q("SELECT pg_reload_conf()");
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", '0'),
   'saga workers gone with saga_workers = 0');
my $inline_before = Q("SELECT coalesce(sum(steps_executed), 0) FROM consistency.saga_worker_stats WHERE worker = 0");
my $inline = start_order($node, 7);
is(wait_terminal($node, $inline), 'completed', 'saga completes inside the per-database worker');
is(Q("SELECT steps_executed - $inline_before FROM consistency.saga_worker_stats WHERE worker = 0"), '4',
   'the per-database worker ran its four steps');

# 8. A saga worker that is terminated is replaced, and work goes on.
Q("ALTER SYSTEM SET pg_consistency.saga_workers = 1");
Q("SELECT pg_reload_conf()");
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", '1'),
   'back to one saga worker');
my $pid = Q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'");
Q("SELECT pg_terminate_backend($pid)");
ok(process_gone($pid), 'saga worker terminated');
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker' AND pid <> $pid", '1'),
   'a new saga worker replaced it');
my $after = start_order($node, 8);
is(wait_terminal($node, $after), 'completed', 'sagas run after the replacement');

is(Q("SELECT bool_and(ok) FROM consistency._integrity_saga()"), 't', 'integrity checks pass');
$node->stop('fast');
done_testing();
