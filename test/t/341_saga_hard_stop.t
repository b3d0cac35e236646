# A saga function step that catches the cancellation of its time limit in an endless
# loop cannot hold a saga worker: past its hard stop (limit + max(1 s, limit)) the saga
# worker is ended and restarted, the next batch first charges the step a failed attempt
# (the chain's earlier step, lost with the batch, runs again first), and after the step's
# max_attempts the saga is compensated with the reason. Another role's sagas complete
# meanwhile. A session running _advance_sagas never gets the hard stop.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until psql_as);
use PgcSaga qw(wait_terminal saga_tenants two_step_saga start_sagas all_completed);
use PgcHardStop qw(endless_body session_database run_in_session);

my $node = new_node('saga_hard_stop', conf => <<'CONF');
pg_consistency.saga_step_timeout = '300ms'
CONF
sub su { return $node->safe_psql('postgres', $_[0]) }
sub as { my ($role, $sql) = @_; return psql_as($node, $role, $sql) }

saga_tenants($node, 'alice', 'mallory');
two_step_saga($node, 'alice', 'alice_flow');
as('mallory', q{
  CREATE TABLE mallory.undone (saga uuid);
  CREATE FUNCTION mallory.ok(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT ''{}''::jsonb';
  CREATE FUNCTION mallory.undo(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
    INSERT INTO mallory.undone VALUES ($1) RETURNING '{}'::jsonb $$;
  CREATE FUNCTION mallory.stubborn(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$}
  . endless_body('stubborn step attempt') . q{$$;
  SELECT consistency.define_saga('stubborn', '{"steps": [
    {"name": "first", "action": {"function": "mallory.ok"}, "compensation": {"function": "mallory.undo"}},
    {"name": "second", "action": {"function": "mallory.stubborn"}, "retry": {"max_attempts": 2, "backoff": "10 ms"}}]}');
});
my $saga_worker_pid = "SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'";
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", '1'),
   'a saga worker runs');
my $pid0 = su($saga_worker_pid);

sub start_alice { return start_sagas($node, 'alice', 'alice_flow', $_[0]) }

my $log_offset = -s $node->logfile;
my $t0 = time;
my $stubborn = as('mallory', "SELECT consistency.start_saga('stubborn', '{}')");
# Alice's sagas, started in rounds while the stubborn one is charged: each round
# completes within a bounded wait.
my ($rounds, $rounds_ok, $max_wait) = (0, 0, 0);
while (time - $t0 < 60) {
  my $ids = start_alice(3);
  my $r0 = time;
  my $ok = all_completed($node, $ids, 20);
  my $waited = time - $r0;
  $rounds++;
  $rounds_ok++ if $ok;
  $max_wait = $waited if $waited > $max_wait;
  last if su("SELECT status IN ('compensated', 'failed') FROM consistency.sagas WHERE id = '$stubborn'") eq 't';
  usleep(100_000);
}
note sprintf('alice: %d rounds of 3 sagas, longest wait %.1f s', $rounds, $max_wait);
is(wait_terminal($node, $stubborn, 30), 'compensated', 'the stubborn saga ends compensated');
is($rounds_ok, $rounds, "alice's sagas completed in each of $rounds rounds meanwhile");
cmp_ok($max_wait, '<', 12, 'each within a bounded wait (a hard stop plus a saga worker restart)');
like(su("SELECT last_error FROM consistency.sagas WHERE id = '$stubborn'"),
     qr/step function mallory\.stubborn ran past its time limit of 300 ms and did not stop when cancelled; the saga worker was stopped/,
     'last_error gives the reason');
is(su("SELECT string_agg(type, ',' ORDER BY version) FROM consistency.read_stream('saga-$stubborn')"),
   'SagaStarted,StepSucceeded,StepFailed,StepFailed,CompensationStarted,CompensationSucceeded,SagaCompensated',
   'its audit stream: the first step once, two failed attempts of the second, the compensation');
is(su("SELECT count(*) FROM mallory.undone WHERE saga = '$stubborn'"), '1', 'the first step was compensated once');

my $log = slurp_file($node->logfile, $log_offset);
my @attempts = ($log =~ /stubborn step attempt/g);
is(scalar @attempts, 2, 'the stubborn step ran twice in all (never retried at the head of the queue)');
my @stops = ($log =~ /saga:$stubborn:r:1 ran past its time limit and did not stop when cancelled/g);
is(scalar @stops, 2, 'each hard stop was logged');
my @charged = ($log =~ /saga $stubborn, step "second": .* attempt \d charged/g);
is(scalar @charged, 2, 'and charged');
isnt(su($saga_worker_pid), $pid0, 'the saga worker was restarted');
ok(all_completed($node, start_alice(3), 10), 'sagas complete afterwards');

# A session backend never gets the hard stop: a step that catches its cancellation and
# sleeps well past limit + 1 s ends by the statement timeout's own rules (it returns,
# here successfully), and the session lives on. A database without workers, so that only
# the session runs the saga.
session_database($node, 'sess', q{
  CREATE FUNCTION public.sly(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_catalog.pg_sleep(10);
    RETURN '{}';
  EXCEPTION WHEN query_canceled THEN
    PERFORM pg_catalog.pg_sleep(1.5);
    RETURN '{"caught": true}';
  END $$;
  SELECT consistency.define_saga('sly', '{"steps": [{"name": "only", "action": {"function": "public.sly"}}]}');
  SELECT consistency.start_saga('sly', '{}');
});
my ($out, $took) = run_in_session($node, 'sess', 'pg_consistency.saga_step_timeout', 'consistency._advance_sagas(10)');
is($out, "1\nt", 'in a session, _advance_sagas returns in the same backend');
cmp_ok($took, '>=', 1.5, sprintf('after the step returned by itself (%.1f s)', $took));
is($node->safe_psql('sess', "SELECT status FROM consistency.sagas"), 'completed', 'the step was not stopped');

$node->stop;
done_testing();
