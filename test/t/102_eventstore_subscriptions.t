# Subscriptions run by the worker: woken by appends (the poll interval here is 10 s, so
# anything prompt comes from the wake-up), handler run as the subscription's owner and
# never as a superuser, exactly-once effects across kill -9 of the worker, retries with
# exponential backoff, parking after max_attempts, and replay with reset_subscription.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until worker_pid worker_running psql_as);
use PgcSubscriptions qw(subscribe install_wait_probe measure_waits);

my $node = new_node('es_subs', conf => <<'CONF');
pg_consistency.poll_interval = '10s'
pg_consistency.subscription_retry_delay = '100ms'
pg_consistency.subscription_batch_size = 50
CONF
sub q1 { return $node->safe_psql('postgres', $_[0]); }

q1(<<'SQL');
CREATE ROLE projector LOGIN IN ROLE consistency_writer;
-- No unique key: an event applied twice must show as two rows, not as a refused insert.
CREATE TABLE proj (global_position bigint NOT NULL, stream text, version bigint, run_as text,
                   reads_server_files boolean);
CREATE TABLE proj_conf (sleep_ms int);
INSERT INTO proj_conf VALUES (0);
GRANT SELECT, INSERT ON proj TO projector;
GRANT SELECT ON proj_conf TO projector;
CREATE FUNCTION project(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE privileged boolean := true;
BEGIN
  PERFORM pg_sleep((SELECT sleep_ms FROM public.proj_conf) / 1000.0);
  -- A superuser could read the server's files; the owner may not.
  BEGIN
    PERFORM pg_read_file('postgresql.conf');
  EXCEPTION WHEN insufficient_privilege THEN
    privileged := false;
  END;
  INSERT INTO public.proj VALUES (p, s, v, current_user, privileged);
END $$;
SQL
install_wait_probe($node);
subscribe($node, 'projector', [['projector', 'project', 'order']]);
worker_running($node);

# --- woken at commit: read-your-writes within milliseconds ---------------------------
my ($all_ok, undef, $max_ms, $avg_ms) = measure_waits($node, 'projector', 'order-wake', 'OrderPlaced', 20, '5 s', 0);
note "wait_for_subscription after append: avg $avg_ms ms, max $max_ms ms (poll interval 10 s)";
is($all_ok, 't', 'wait_for_subscription returned true for each of 20 appends');
cmp_ok($max_ms, '<', 2000, "each append was handled promptly (max $max_ms ms, far below the 10 s poll)");

# --- the handler runs as the owner, not as the worker's superuser --------------------
is(q1("SELECT string_agg(DISTINCT run_as || '/' || reads_server_files, ',') FROM proj"), 'projector/false',
   'handler ran as role projector, without the superuser rights of the worker');

# --- exactly once across kill -9 of the worker -----------------------------------------
q1('UPDATE proj_conf SET sleep_ms = 2');
my $before = q1('SELECT max(global_position) FROM consistency.events');
q1("SELECT count(consistency.append_event('order-' || (i % 40), NULL, 'OrderPlaced', jsonb_build_object('i', i)))
      FROM generate_series(1, 1500) i");
my $last = q1('SELECT max(global_position) FROM consistency.events');
for my $round (1, 2) {
  # Kill while a batch is being handled (position strictly inside the backlog).
  my $inside = 0;
  for (1 .. 400) {
    my $pos = eval { q1("SELECT position FROM consistency.subscriptions WHERE name = 'projector'") } // 0;
    if ($pos > $before && $pos < $last - 200) { $inside = 1; last; }
    usleep(25_000);
  }
  ok($inside, "kill $round: the worker is in the middle of the backlog");
  my $pid = worker_pid($node);
  like($pid, qr/^\d+$/, "kill $round: worker pid $pid");
  kill 'KILL', $pid;
  my $back = 0;
  for (1 .. 600) {
    my $p = eval { worker_pid($node) } // '';
    if ($p =~ /^\d+$/ && $p ne $pid) { $back = 1; last; }
    usleep(50_000);
  }
  ok($back, "kill $round: the cluster recovered and a new worker runs");
  $before = q1("SELECT position FROM consistency.subscriptions WHERE name = 'projector'");
}
like(slurp_file($node->logfile), qr/pg_consistency worker.*terminated by signal 9/,
     'the log shows the worker killed by signal 9');
q1('UPDATE proj_conf SET sleep_ms = 0');
is(q1("SELECT consistency.wait_for_subscription('projector', $last, '120 s')"), 't',
   'the subscription caught up with the whole backlog after the kills');
my ($events, $projected, $distinct) = split /\|/, q1(
  "SELECT (SELECT count(*) FROM consistency.events WHERE category = 'order'),
          (SELECT count(*) FROM proj), (SELECT count(DISTINCT global_position) FROM proj)");
is($projected, $events, "every one of the $events events was handled exactly once ($projected rows)");
is($distinct, $projected, 'no event was applied twice');
is(q1("SELECT status || '/' || attempts || '/' || coalesce(last_error, 'none') FROM consistency.subscriptions WHERE name = 'projector'"),
   'active/0/none', 'no handler failure');

# --- retries with exponential backoff, then parked --------------------------------------
q1(<<'SQL');
CREATE TABLE fragile_conf (broken boolean);
INSERT INTO fragile_conf VALUES (true);
CREATE TABLE fragile_done (global_position bigint PRIMARY KEY);
GRANT SELECT ON fragile_conf TO projector;
GRANT INSERT ON fragile_done TO projector;
CREATE FUNCTION fragile(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF d ? 'poison' AND (SELECT broken FROM public.fragile_conf) THEN
    RAISE EXCEPTION 'poisoned event % of %', v, s;
  END IF;
  INSERT INTO public.fragile_done VALUES (p);
END $$;
SQL
subscribe($node, 'projector', ['fragile'], max_attempts => 4);
q1("SELECT consistency.append_event('fragile-1', NULL, 'Ok', '{}'),
           consistency.append_event('fragile-1', NULL, 'Bad', '{\"poison\": true}'),
           consistency.append_event('fragile-1', NULL, 'Ok', '{}')");
my %delay;
my $t_end = time + 30;
while (time < $t_end) {
  my ($attempts, $status, $gap) = split /\|/, q1(
    "SELECT attempts, status, round(extract(epoch FROM next_attempt_at - updated_at) * 1000)
       FROM consistency.subscription_state WHERE name = 'fragile'");
  $delay{$attempts} //= $gap if $attempts > 0 && $status eq 'active';
  last if $status eq 'failed';
  usleep(10_000);
}
my ($status, $attempts, $error, $pos_ok) = split /\|/, q1(
  "SELECT status, attempts, last_error,
          position = (SELECT global_position FROM consistency.events WHERE stream = 'fragile-1' AND version = 1)
     FROM consistency.subscriptions WHERE name = 'fragile'");
is($status, 'failed', 'the subscription is parked after max_attempts');
is($attempts, 4, 'after exactly 4 attempts');
like($error, qr/poisoned event 2 of fragile-1/, 'last_error holds the handler error');
is($pos_ok, 't', 'the checkpoint stays right before the failing event (nothing skipped)');
note 'retry delays (ms): ' . join(', ', map { "$_ => $delay{$_}" } sort keys %delay);
ok(defined $delay{1} && defined $delay{2} && defined $delay{3}, 'saw the delay before each retry');
cmp_ok($delay{1}, '>=', 70, 'first retry after about 100 ms');
cmp_ok($delay{2}, '>', $delay{1} * 1.3, 'second delay grows');
cmp_ok($delay{3}, '>', $delay{2} * 1.3, 'third delay grows again (exponential backoff)');
is(q1("SELECT consistency.wait_for_subscription('fragile', (SELECT max(global_position) FROM consistency.events), '1 s')"),
   'f', 'wait_for_subscription says false for a parked subscription');

# Fixed handler + reset_subscription at its checkpoint: resumes and completes.
q1('UPDATE fragile_conf SET broken = false');
psql_as($node, 'projector',
  "SELECT consistency.reset_subscription('fragile', (SELECT position FROM consistency.subscriptions WHERE name = 'fragile'))");
is(q1("SELECT consistency.wait_for_subscription('fragile', (SELECT max(global_position) FROM consistency.events WHERE category = 'fragile'), '10 s')"),
   't', 'after reset_subscription the subscription resumes and catches up');
is(q1("SELECT count(*) FROM fragile_done"), '3', 'all three events handled once');
is(q1("SELECT status || '/' || attempts FROM consistency.subscriptions WHERE name = 'fragile'"), 'active/0',
   'active again with the failure count cleared');

# --- metrics expose the lag per subscription ------------------------------------------
like(q1("SELECT value FROM consistency._metrics_eventstore()
          WHERE metric = 'pg_consistency_subscription_lag_events' AND labels->>'subscription' = 'projector'"),
     qr/^0$/, 'lag metric of a caught-up subscription is 0');

$node->stop;
done_testing();
