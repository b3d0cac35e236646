# A slow subscription handler cannot stall the per-database worker: each handler call
# runs under pg_consistency.subscription_handler_timeout (here 500 ms), a timed-out call
# is a failed attempt, retried with a backoff that the constant wake-ups of another
# subscription do not cut short, and parked after max_attempts with its reason. Meanwhile
# the other subscription keeps up and the worker keeps ticking.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until worker_pid worker_running);
use PgcSubscriptions qw(subscribe fast_tenant parked_state install_wait_probe measure_waits);

my $node = new_node('es_timeout', conf => <<'CONF');
pg_consistency.poll_interval = '1s'
pg_consistency.subscription_handler_timeout = '500ms'
pg_consistency.subscription_retry_delay = '300ms'
pg_consistency.subscription_max_retry_delay = '10s'
CONF
sub q1 { return $node->safe_psql('postgres', $_[0]); }

fast_tenant($node);
install_wait_probe($node);
q1(<<'SQL');
-- Logs the start of each attempt (a log line is written at once; table rows would be
-- rolled back with the cancelled call), then sleeps far longer than the limit.
CREATE FUNCTION slow(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE LOG 'slow handler attempt at %', extract(epoch FROM clock_timestamp());
  PERFORM pg_sleep(20);
END $$;
SQL
subscribe($node, 'tenant', ['slow', 'fast'], max_attempts => 3);
worker_running($node);
my $pid = worker_pid($node);
my ($ticks0) = q1("SELECT ticks FROM consistency.workers WHERE kind = 'worker'");

# The poison event, then a stream of appends the other subscription must keep up with.
my $log_offset = -s $node->logfile;
q1("SELECT consistency.append_event('slow-1', NULL, 'Tick', '{}')");
my $t0 = time;
my ($all_ok, $n, $max_ms, $avg_ms) = measure_waits($node, 'fast', 'fast-1', 'Tick', 60, '10 s', 0.05);
my $elapsed = time - $t0;
note sprintf('fast subscription: %d appends in %.1f s, wait avg %s ms, max %s ms', $n, $elapsed, $avg_ms, $max_ms);
is($all_ok, 't', 'the other subscription handled each of 60 appends while the slow one was retried');
cmp_ok($max_ms, '<', 3000, "it waited at most about one handler time limit (max $max_ms ms, limit 500 ms)");

ok(wait_until($node, "SELECT status FROM consistency.subscriptions WHERE name = 'slow'", 'failed', 60),
   'the slow subscription is parked');
my ($attempts, $error, $pos_ok) = parked_state($node, 'slow', 'slow-1');
is($attempts, 3, 'after max_attempts (3) timed-out attempts');
like($error, qr/timed out after pg_consistency\.subscription_handler_timeout \(500 ms\).*statement timeout \(SQLSTATE 57014\)/,
     'last_error names the time limit');
is($pos_ok, 't', 'its checkpoint stays before the event (nothing skipped)');

# Attempt starts from the log: each retry waited the handler's time limit plus a backoff
# (300 ms, then 600 ms, +-20 % jitter) although the worker was woken every ~60 ms.
my $log = slurp_file($node->logfile, $log_offset);
my @starts = ($log =~ /slow handler attempt at ([0-9.]+)/g);
is(scalar @starts, 3, 'three attempts in all (no retry at the head of the queue)');
if (@starts == 3) {
  my @gaps = map { $starts[$_] - $starts[$_ - 1] } 1 .. 2;
  note sprintf('gaps between attempt starts: %.3f s, %.3f s', @gaps);
  cmp_ok($gaps[0], '>=', 0.5 + 0.3 * 0.8 - 0.02, 'first retry after the limit plus its backoff');
  cmp_ok($gaps[1], '>=', 0.5 + 0.6 * 0.8 - 0.02, 'second retry after the limit plus a doubled backoff');
}
unlike($log, qr/pg_consistency worker: eventstore failed/, 'the event store tick itself never failed');

# The worker went on: same process, still ticking, the other subscription still served.
is(worker_pid($node), $pid, 'the worker was not restarted');
my ($ticks1, $state) = split /\|/, q1("SELECT ticks, state FROM consistency.workers WHERE kind = 'worker'");
cmp_ok($ticks1, '>', $ticks0, "the worker kept ticking ($ticks0 -> $ticks1 ticks)");
is($state, 'running', 'and is running, not backing off');
q1("SELECT consistency.append_event('fast-1', NULL, 'Tick', '{}')");
is(q1("SELECT consistency.wait_for_subscription('fast', (SELECT max(global_position) FROM consistency.events), '10 s')"),
   't', 'the other subscription is served after the slow one was parked');
is(q1("SELECT count(*) FROM fast_done"), q1("SELECT count(*) FROM consistency.events WHERE category = 'fast'"),
   'every fast event was handled once');

# A handler that catches the cancellation and goes on still fails: its call overran.
q1(<<'SQL');
CREATE FUNCTION sly(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(20);
EXCEPTION WHEN query_canceled THEN
  PERFORM pg_sleep(0.5);
  INSERT INTO public.fast_done VALUES (-p);
END $$;
SQL
subscribe($node, 'tenant', ['sly'], max_attempts => 2);
q1("SELECT consistency.append_event('sly-1', NULL, 'Tick', '{}')");
ok(wait_until($node, "SELECT status FROM consistency.subscriptions WHERE name = 'sly'", 'failed', 60),
   'a handler that catches the cancellation is parked too');
like(q1("SELECT last_error FROM consistency.subscriptions WHERE name = 'sly'"),
     qr/timed out after .*returned after its time limit/, '... as having overrun its time limit');
is(q1('SELECT count(*) FROM fast_done WHERE global_position < 0'), '0', '... and its effects were rolled back');

# A tenant cannot lift the limit for itself.
my ($rc, $out, $err) = $node->psql('postgres', "SET pg_consistency.subscription_handler_timeout = 0",
                                   extra_params => ['-U', 'tenant']);
like($err, qr/permission denied to set parameter/, 'a tenant cannot change subscription_handler_timeout');

$node->stop;
done_testing();
