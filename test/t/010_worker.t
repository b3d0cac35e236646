# The background worker: starts with preload, is visible in pg_stat_activity, survives
# an error inside a tick, applies a reloaded interval, comes back after kill -9 with the
# postmaster still up, exits on SIGTERM; without preload the SQL API still works.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until reload_config worker_pid process_gone);

my $node = new_node('worker');

ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency launcher'", '1'),
   'launcher visible in pg_stat_activity');
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency worker' AND datname = 'postgres'", '1'),
   'worker visible in pg_stat_activity for its database');
ok(wait_until($node, "SELECT state FROM consistency.worker_status() WHERE kind = 'worker'", 'running'),
   'worker_status says running');
my $pid = worker_pid($node);
like($pid, qr/^\d+$/, "worker pid $pid");

is($node->safe_psql('postgres', "SELECT bool_and(settings_loaded_at = started_at) FROM consistency.workers WHERE pid IS NOT NULL"),
   't', 'each process read the configuration when it started, and not since');

# The worker's tick count.
sub ticks { return $node->safe_psql('postgres', "SELECT ticks FROM consistency.worker_status() WHERE kind = 'worker'") }

# Reloads pg_consistency.poll_interval as $interval, waits until every process read it,
# and returns how many times the worker ticks in the $seconds after that (a fixed window:
# a rate is measured).
sub ticks_at_interval {
  my ($interval, $seconds) = @_;
  $node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.poll_interval = '$interval'");
  ok(reload_config($node), "every process read poll_interval = $interval");
  my $t0 = ticks();
  sleep $seconds;
  return ticks() - $t0;
}

# Interval reload: with 5 s the worker ticks rarely; after SIGHUP with 50 ms, often.
# Components may ask for earlier runs of their own (e.g. a recovery pass every second), so
# allow a few; the 50 ms setting below must then give many times more.
my $slow = ticks_at_interval('5s', 3);
cmp_ok($slow, '<=', 6, "at 5 s interval: $slow ticks in 3 s");

# Commits wake the worker only for work it does: with the relay off (no kafka_brokers)
# publish does not wake it, and with saga workers running the sagas start_saga wakes
# them, not this worker. 300 commits of each would otherwise mean hundreds of ticks.
$node->safe_psql('postgres', q{
CREATE FUNCTION public.tick_noop(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT consistency.define_saga('tick_test', '{"steps": [{"name": "one", "action": {"function": "public.tick_noop"}}]}');
});
my $t0 = ticks();
$node->safe_psql('postgres', q{
DO $$ BEGIN
  FOR i IN 1..300 LOOP
    PERFORM consistency.publish('tick.test', 'k', jsonb_build_object('i', i));
    COMMIT;
    PERFORM consistency.start_saga('tick_test', jsonb_build_object('i', i));
    COMMIT;
  END LOOP;
END $$;
});
my $woken = ticks() - $t0;
cmp_ok($woken, '<=', 10, "600 commits of publish (relay off) and start_saga (saga workers on): $woken worker ticks");
ok(wait_until($node, "SELECT count(*) FROM consistency.sagas WHERE name = 'tick_test' AND status = 'completed'", '300', 60),
   'the saga workers, woken at commit, completed the 300 sagas');
# Background processes send their table statistics themselves (a backend does so when it
# goes idle; they never do): without them autovacuum never sees what the saga workers and
# the relay update and delete, and those tables bloat.
ok(wait_until($node, "SELECT n_tup_upd > 0 FROM pg_stat_user_tables WHERE schemaname = 'consistency' AND relname = 'saga_instances'", 't', 15),
   'the saga workers\' updates of saga_instances reach the table statistics');
my $fast = ticks_at_interval('50ms', 2);
cmp_ok($fast, '>=', 15, "after SIGHUP reload to 50 ms: $fast ticks in 2 s");
cmp_ok($fast, '>', 3 * $slow, 'the reloaded interval changed the tick rate');

# An idle worker sleeps until its next component is due: at a 1 s interval it ticks about
# once a second. (A sub-millisecond remainder once truncated to a 0 ms wait made it spin
# through empty ticks, 7 a second here.)
my $idle = ticks_at_interval('1s', 5);
cmp_ok($idle, '<=', 12, "idle at 1 s: $idle ticks in 5 s");

# An error inside a tick is logged and backed off; the same process goes on.
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT consistency._debug_fail_worker_ticks(2)");
ok(wait_until($node, "SELECT errors >= 2 FROM consistency.worker_status() WHERE kind = 'worker'", 't', 30),
   'two tick errors recorded');
like(slurp_file($node->logfile, $log_offset), qr/pg_consistency worker: worker failed: injected failure/,
     'tick error logged with its cause');
is(worker_pid($node), $pid, 'same worker process after tick errors (no restart)');
ok(wait_until($node, "SELECT state FROM consistency.worker_status() WHERE kind = 'worker'", 'running', 30),
   'worker back to running after the backoff');
like($node->safe_psql('postgres', "SELECT last_error FROM consistency.worker_status() WHERE kind = 'worker'"),
     qr/injected failure/, 'last_error shows the cause');

# kill -9 of the worker: the postmaster survives (crash restart) and the worker returns.
my $postmaster = $node->{_pid};
BAIL_OUT("no worker pid") unless $pid =~ /^\d+$/;
kill 'KILL', $pid;
my $start = time;
my $back = 0;
while (time - $start < 30) {
  my $p = eval { worker_pid($node) } // '';
  if ($p ne '' && $p ne $pid) { $back = 1; last }
  usleep(100_000);
}
ok($back, sprintf('worker back after kill -9 within %.1f s', time - $start));
ok(kill(0, $postmaster), 'postmaster still running after kill -9 of the worker');
cmp_ok(time - $start, '<', 10, 'worker back within seconds');

# SIGTERM: the worker exits, the log says so, and the launcher starts a new one.
$pid = worker_pid($node);
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid", '0', 10), 'worker exited on SIGTERM');
ok(wait_until($node, "SELECT (pid IS NOT NULL AND pid <> $pid)::text FROM consistency.worker_status() WHERE kind = 'worker'", 'true', 15),
   'launcher restarted the terminated worker');

# A second database added by reload gets its own worker once the extension exists there.
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.database = 'postgres,shop'; SELECT pg_reload_conf()");
ok(wait_until($node, "SELECT state FROM consistency.worker_status() WHERE database = 'shop' AND kind = 'worker'", 'waiting_for_extension', 15),
   'worker in new database waits for the extension');
$node->safe_psql('shop', 'CREATE EXTENSION pg_consistency');
ok(wait_until($node, "SELECT state FROM consistency.worker_status() WHERE database = 'shop' AND kind = 'worker'", 'running', 15),
   'worker in new database runs after CREATE EXTENSION');
# The processes a component asks for show in the same view, with their own counters.
ok(wait_until($node, "SELECT state || ':' || (pid IS NOT NULL) FROM consistency.worker_status() WHERE database = 'shop' AND kind = 'saga worker'", 'running:true', 15),
   'the saga worker of shop has its own status row');
$node->stop('fast');
ok(process_gone($postmaster), 'cluster stopped cleanly');

# Without preload: the extension installs and answers; status says not preloaded.
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION pg_consistency');
like($plain->safe_psql('postgres', 'SELECT consistency.version()'), qr/^\d+\.\d+\.\d+$/, 'version without preload');
is($plain->safe_psql('postgres', 'SELECT state FROM consistency.worker_status()'), 'not_preloaded',
   'status without preload says not_preloaded');
is($plain->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_consistency%'"), '0',
   'no worker without preload');
$plain->stop;

done_testing();
