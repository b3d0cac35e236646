# One tenant's sagas cannot stop another's: a step whose output is too large for its
# audit event, a compensation that does the same, a saga whose progress cannot be
# stored (here a trigger refuses it) and a step that sleeps past its time limit each end
# with the reason in last_error, while another role's sagas complete. A batch error that
# belongs to no saga is retried with the worker's backoff, which the wake-ups of every
# commit and of the supervisor do not cut short.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until reload_config psql_as sql_fixture);
use PgcSaga qw(wait_terminal saga_tenants two_step_saga start_sagas all_completed);

my $node = new_node('saga_isolation');
sub su { return $node->safe_psql('postgres', $_[0]) }
sub as { my ($role, $sql) = @_; return psql_as($node, $role, $sql) }

saga_tenants($node, 'alice', 'mallory');
two_step_saga($node, 'alice', 'alice_flow');
as('mallory', q{
  CREATE FUNCTION mallory.ok(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT ''{}''::jsonb';
  CREATE FUNCTION mallory.fails(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'mallory step fails'; END $$;
  -- 2 MB of output: more than the 1 MB an audit event may hold.
  CREATE FUNCTION mallory.huge(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_catalog.jsonb_build_object('blob', pg_catalog.repeat('x', 2 * 1024 * 1024)) $$;
  CREATE FUNCTION mallory.sleepy(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN PERFORM pg_catalog.pg_sleep(20); RETURN '{}'; END $$;
  SELECT consistency.define_saga('huge_output', '{"steps": [
    {"name": "huge", "action": {"function": "mallory.huge"}, "retry": {"max_attempts": 2, "backoff": "10 ms"}}]}');
  SELECT consistency.define_saga('huge_compensation', '{"steps": [
    {"name": "first", "action": {"function": "mallory.ok"}, "compensation": {"function": "mallory.huge"},
     "retry": {"max_attempts": 2, "backoff": "10 ms"}},
    {"name": "second", "action": {"function": "mallory.fails"}, "retry": {"max_attempts": 1}}]}');
  SELECT consistency.define_saga('refused', '{"steps": [
    {"name": "first", "action": {"function": "mallory.ok"}, "retry": {"max_attempts": 2, "backoff": "10 ms"}},
    {"name": "second", "action": {"function": "mallory.ok"}}]}');
  SELECT consistency.define_saga('sleepy', '{"steps": [
    {"name": "nap", "action": {"function": "mallory.sleepy"}, "retry": {"max_attempts": 1}}]}');
});

sub start_alice { return start_sagas($node, 'alice', 'alice_flow', $_[0]) }

# 1. Oversized outputs of one role's steps and compensations among another role's sagas.
my @poison;
my @alice;
for my $round (1 .. 3) {
  push @poison, as('mallory', "SELECT consistency.start_saga('huge_output', '{}')");
  push @alice, @{ start_alice(5) };
  push @poison, as('mallory', "SELECT consistency.start_saga('huge_compensation', '{}')");
  push @alice, @{ start_alice(5) };
}
ok(all_completed($node, \@alice), "alice's 30 sagas complete beside mallory's oversized outputs");
for my $id (@poison) {
  my $status = wait_terminal($node, $id, 30);
  my ($name, $error) = split /\|/, su("SELECT name, last_error FROM consistency.sagas WHERE id = '$id'");
  is($status, $name eq 'huge_output' ? 'compensated' : 'failed', "$name saga ends $status");
  like($error, qr/step function mallory\.huge returned \d+ bytes of output; its audit event may hold at most 1048576 bytes/,
       "$name: last_error gives the reason");
}

# 2. A saga whose progress cannot be stored (outside its step): the batch is rolled back
# once, the saga advanced alone and its failure recorded; the others go on.
su(sql_fixture('refuse_progress'));
my $log_offset = -s $node->logfile;
my $refused = as('mallory', "SELECT consistency.start_saga('refused', '{\"refuse\": true}')");
@alice = @{ start_alice(10) };
ok(all_completed($node, \@alice), "alice's sagas complete beside a saga whose progress cannot be stored");
is(wait_terminal($node, $refused), 'compensated', 'that saga ends after its attempts');
is(su("SELECT last_error FROM consistency.sagas WHERE id = '$refused'"),
   'could not record the outcome of step "first": progress refused for this test', 'with the reason');
is(su("SELECT string_agg(type, ',' ORDER BY version) FROM consistency.read_stream('saga-$refused')"),
   'SagaStarted,StepFailed,StepFailed,SagaCompensated', 'two failed attempts recorded, then the end');
like(slurp_file($node->logfile, $log_offset), qr/saga $refused made a batch fail outside its steps; advancing it alone/,
     'the worker says which saga failed the batch');
su("DROP TRIGGER refuse_progress ON consistency.saga_instances; DROP FUNCTION public.refuse_progress()");

# 3. A step past its time limit (pg_consistency.saga_step_timeout, the step has none of
# its own) is a failed attempt; the sagas after it are not held for its 20 s.
su("ALTER SYSTEM SET pg_consistency.saga_step_timeout = '1s'");
ok(reload_config($node), 'every process read saga_step_timeout = 1s');
my $t0 = time;
my $sleepy = as('mallory', "SELECT consistency.start_saga('sleepy', '{}')");
@alice = @{ start_alice(5) };
ok(all_completed($node, \@alice, 15), "alice's sagas complete beside a sleeping step");
cmp_ok(time - $t0, '<', 10, 'well before the sleeping step would have ended');
is(wait_terminal($node, $sleepy), 'compensated', 'the sleeping step failed');
like(su("SELECT last_error FROM consistency.sagas WHERE id = '$sleepy'"),
     qr/step function mallory\.sleepy ran past its time limit of 1 s: canceling statement due to statement timeout/,
     'cancelled at saga_step_timeout');
su("ALTER SYSTEM RESET pg_consistency.saga_step_timeout");
su("SELECT pg_reload_conf()");

# 4. A batch error that belongs to no saga (the worker's statistics cannot be written):
# the worker backs off 1 s, 2 s, 4 s ... although every start_saga commit and the
# supervisor (each second) wake it.
su(q{
  CREATE FUNCTION public.refuse_stats() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'statistics refused for this test'; END $$;
  CREATE TRIGGER refuse_stats BEFORE INSERT OR UPDATE ON consistency.saga_worker_stats
    FOR EACH ROW EXECUTE FUNCTION public.refuse_stats();
});
$log_offset = -s $node->logfile;
my @waiting;
my $until = time + 6;
while (time < $until) {
  push @waiting, @{ start_alice(1) };
  usleep(20_000);
}
my $errors = () = slurp_file($node->logfile, $log_offset) =~ /statistics refused for this test/g;
cmp_ok($errors, '>=', 2, "the failing batch was retried ($errors times in 6 s)");
cmp_ok($errors, '<=', 4, 'with the backoff, not at every wake-up (1 s, 2 s, 4 s)');
su("DROP TRIGGER refuse_stats ON consistency.saga_worker_stats");
ok(all_completed($node, \@waiting, 30), 'the sagas started meanwhile complete once the error is gone');

$node->stop('fast');
done_testing();
