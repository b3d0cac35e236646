# A subscription handler that catches the cancellation of its time limit in an endless
# loop cannot hold the per-database worker: past its hard stop (limit + max(1 s, limit))
# the worker is ended and restarted, the restarted worker charges the handler a failed
# attempt before anything else, and after max_attempts the subscription is parked with
# the reason. Another subscription keeps advancing throughout, with bounded waits. A
# session backend running a handler itself never gets the hard stop.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until worker_pid worker_running);
use PgcSubscriptions qw(subscribe fast_tenant parked_state);
use PgcHardStop qw(endless_body session_database run_in_session);

my $node = new_node('es_hard_stop', conf => <<'CONF');
pg_consistency.subscription_handler_timeout = '300ms'
pg_consistency.subscription_retry_delay = '200ms'
CONF
sub q1 { return $node->safe_psql('postgres', $_[0]); }

fast_tenant($node);
q1("CREATE FUNCTION poison(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void\n"
   . "LANGUAGE plpgsql AS \$\$" . endless_body('poison handler attempt') . "\$\$");
subscribe($node, 'tenant', ['poison', 'fast'], max_attempts => 2);
worker_running($node);
my $pid0 = worker_pid($node);
my $log_offset = -s $node->logfile;

# The poison event, then appends the other subscription must keep up with until the
# poison subscription is parked (two hard stops and two worker restarts: about 10 s).
q1("SELECT consistency.append_event('poison-1', NULL, 'Tick', '{}')");
my ($n, $n_ok, $max_wait) = (0, 0, 0);
my $parked = 0;
my $deadline = time + 60;
while (time < $deadline) {
  q1("SELECT consistency.append_event('fast-1', NULL, 'Tick', '{}')");
  my $t0 = time;
  my $ok = q1("SELECT consistency.wait_for_subscription('fast', (SELECT max(global_position) FROM consistency.events WHERE category = 'fast'), '20 s')");
  my $waited = time - $t0;
  $n++;
  $n_ok++ if $ok eq 't';
  $max_wait = $waited if $waited > $max_wait;
  if (q1("SELECT status FROM consistency.subscriptions WHERE name = 'poison'") eq 'failed') {
    $parked = 1;
    last;
  }
  usleep(100_000);
}
note sprintf('fast subscription: %d appends, longest wait %.1f s', $n, $max_wait);
ok($parked, 'the poison subscription is parked');
is($n_ok, $n, "the other subscription handled each of its $n events meanwhile");
cmp_ok($max_wait, '<', 12, 'each within a bounded wait (a hard stop plus a worker restart)');

my ($attempts, $error, $pos_ok) = parked_state($node, 'poison', 'poison-1');
is($attempts, 2, 'after max_attempts (2) attempts');
like($error, qr/handler public\.poison\(.*\) ran past its time limit \(pg_consistency\.subscription_handler_timeout, 300 ms\) and did not stop when cancelled; the worker was stopped/,
     'last_error gives the reason');
is($pos_ok, 't', 'its checkpoint stays before the event (nothing skipped)');

my $log = slurp_file($node->logfile, $log_offset);
my @attempts = ($log =~ /poison handler attempt/g);
is(scalar @attempts, 2, 'the poison handler ran twice in all (never retried at the head of the queue)');
my @stops = ($log =~ /subscription:poison ran past its time limit and did not stop when cancelled/g);
is(scalar @stops, 2, 'each hard stop was logged');
like($log, qr/subscription "poison": .*attempt 2 of 2, parked/, 'the charge that parked it was logged');

# The worker was restarted, and now stays up and serves the other subscription.
my $pid1 = worker_pid($node);
isnt($pid1, $pid0, 'the worker was stopped and restarted');
ok(wait_until($node, "SELECT state FROM consistency.workers WHERE kind = 'worker'", 'running'), 'it is running');
q1("SELECT consistency.append_event('fast-1', NULL, 'Tick', '{}')");
is(q1("SELECT consistency.wait_for_subscription('fast', (SELECT max(global_position) FROM consistency.events), '10 s')"),
   't', 'the other subscription is served after the poison one was parked');
usleep(1_500_000);    # deliberate: longer than a hard stop takes, and still no restart
is(worker_pid($node), $pid1, 'no further restart');
is(q1("SELECT count(*) FROM fast_done"), q1("SELECT count(*) FROM consistency.events WHERE category = 'fast'"),
   'every fast event was handled once');

# A session backend (consistency._subscription_step) never gets the hard stop: its handler
# that catches the cancellation and sleeps well past limit + 1 s ends by the statement
# timeout's own rules (the call fails as overrun), and the session lives on. A database
# without a worker, so that only the session runs it.
session_database($node, 'sess', <<'SQL');
CREATE FUNCTION public.sly(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.pg_sleep(10);
EXCEPTION WHEN query_canceled THEN
  PERFORM pg_catalog.pg_sleep(1.5);
END $$;
SELECT consistency.create_subscription('sly', 'public.sly(bigint,text,bigint,text,jsonb,jsonb)');
SELECT consistency.append_event('sly-1', NULL, 'Tick', '{}');
SQL
my ($out, $took) = run_in_session($node, 'sess', 'pg_consistency.subscription_handler_timeout',
                                   "consistency._subscription_step('sly')");
is($out, "0\nt", 'in a session, the call returns (nothing handled) in the same backend');
cmp_ok($took, '>=', 1.5, sprintf('after the handler returned by itself (%.1f s)', $took));
like($node->safe_psql('sess', "SELECT last_error FROM consistency.subscriptions WHERE name = 'sly'"),
     qr/returned after its time limit/, 'the overrun is a failed attempt');

$node->stop;
done_testing();
