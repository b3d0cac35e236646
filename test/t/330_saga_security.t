# Saga steps run as the role that defined the saga, never as the worker's superuser:
# a non-superuser's step cannot read a table it has no grant on, cannot do what a
# security-restricted operation forbids, and cannot signal the worker; it cannot define
# steps with functions it may not execute, nor plant operators that the extension's own
# statements would run with more rights. A step that points the worker's search_path at
# functions it planted (set_config(..., false)) changes nothing after it returns: the
# writer does not become a superuser, with saga workers or with the per-database worker
# running the sagas.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node wait_until psql_as sql_fixture);
use PgcSaga qw(wait_terminal saga_tenants);

my $node = new_node('saga_security');
sub su { return $node->safe_psql('postgres', $_[0]) }
sub alice { return psql_as($node, 'alice', $_[0]) }
sub alice_err {
  my ($sql) = @_;
  my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => ['-U', 'alice']);
  return $err;
}

saga_tenants($node, 'alice');
su(q{
  CREATE SCHEMA secret;
  CREATE TABLE secret.card_numbers (customer text, pan text);
  INSERT INTO secret.card_numbers VALUES ('bob', '4111111111111111');
  CREATE FUNCTION secret.admin_step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('cards', (SELECT count(*) FROM secret.card_numbers)) $$;
  REVOKE ALL ON FUNCTION secret.admin_step(uuid, jsonb) FROM PUBLIC;
  GRANT USAGE ON SCHEMA secret TO alice;
});

alice(q{
  CREATE TABLE alice.log (step text, ran_as name, superuser boolean);
  CREATE FUNCTION alice.whoami(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO alice.log VALUES ('whoami', current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
    RETURN jsonb_build_object('ran_as', current_user);
  END $$;
  CREATE FUNCTION alice.steal(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    RETURN jsonb_build_object('stolen', (SELECT pan FROM secret.card_numbers LIMIT 1));
  END $$;
  CREATE FUNCTION alice.temp_table(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    CREATE TEMP TABLE t (x int);
    RETURN '{}';
  END $$;
  CREATE FUNCTION alice.kill_worker(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_terminate_backend(pg_backend_pid());
    RETURN '{}';
  END $$;
  CREATE FUNCTION alice.undo(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO alice.log VALUES ('undo', current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
    RETURN '{}';
  END $$;
});

sub define_and_run {
  my ($name, $fn) = @_;
  alice(qq{SELECT consistency.define_saga('$name', '{"steps": [
      {"name": "first", "action": {"function": "alice.whoami"}, "compensation": {"function": "alice.undo"}},
      {"name": "second", "action": {"function": "$fn"}, "retry": {"max_attempts": 2, "backoff": "10 ms"}}]}')});
  my $id = alice(qq{SELECT consistency.start_saga('$name', '{}')});
  return ($id, wait_terminal($node, $id, 30));
}

# The steps run as alice.
my ($id, $status) = define_and_run('alice_ok', 'alice.whoami');
is($status, 'completed', "alice's saga completes");
is(su("SELECT data->>'ran_as' FROM consistency.sagas WHERE id = '$id'"), 'alice', 'step ran as alice');
is(su("SELECT string_agg(DISTINCT ran_as || '/' || superuser, ',') FROM alice.log"), 'alice/false',
   'never as a superuser');

# Runs saga $name whose second step is $fn, which must fail ($what) with an error like
# $error, so that the saga is compensated ($why). Returns the saga's id.
sub compensated_after {
  my ($name, $fn, $what, $error, $why) = @_;
  my ($id, $status) = define_and_run($name, $fn);
  is($status, 'compensated', "$what fails; saga compensated");
  like(su("SELECT last_error FROM consistency.sagas WHERE id = '$id'"), $error, $why);
  return $id;
}

# A step reading a table alice has no grant on fails, and the saga compensates.
$id = compensated_after('alice_steal', 'alice.steal', 'step without the grant',
                        qr/permission denied for table card_numbers/, 'the failure is the missing grant');
is(su("SELECT data ? 'stolen' FROM consistency.sagas WHERE id = '$id'"), 'f', 'nothing leaked into the saga data');
is(su("SELECT count(*) FROM alice.log WHERE step = 'undo' AND ran_as = 'alice'"), '1',
   'the compensation ran once, as alice');

# Security-restricted operation: no temporary tables.
compensated_after('alice_temp', 'alice.temp_table', 'temp table step',
                  qr/cannot create temporary table within security-restricted operation/, 'refused as restricted');

# The worker runs as a superuser; alice's step may not signal it.
my $saga_worker = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'";
my $worker = su($saga_worker);
compensated_after('alice_kill', 'alice.kill_worker', 'a step trying to terminate the worker',
                  qr/permission denied to terminate|must be a superuser/, 'refused: not allowed to signal the worker');
is(su($saga_worker), $worker, 'the same saga worker is still running');

# A function alice may not execute cannot become a step.
like(alice_err(q{SELECT consistency.define_saga('alice_admin', '{"steps": [{"name": "a", "action": {"function": "secret.admin_step"}}]}')}),
     qr/permission denied for function secret.admin_step/, 'no step from a function alice may not execute');
# Revoking EXECUTE later makes the step fail instead of running with the old right.
su("GRANT EXECUTE ON FUNCTION secret.admin_step(uuid, jsonb) TO alice");
alice(q{SELECT consistency.define_saga('alice_admin', '{"steps": [{"name": "a", "action": {"function": "secret.admin_step"}, "retry": {"max_attempts": 1}}]}')});
su("REVOKE EXECUTE ON FUNCTION secret.admin_step(uuid, jsonb) FROM alice");
$id = alice(q{SELECT consistency.start_saga('alice_admin', '{}')});
is(wait_terminal($node, $id), 'compensated', 'revoked function: step fails');
like(su("SELECT last_error FROM consistency.sagas WHERE id = '$id'"), qr/permission denied for function secret.admin_step/,
     'checked as alice at run time');

# Alice cannot change whose rights a saga uses, directly.
like(alice_err(q{UPDATE consistency.saga_definitions SET owner = 10}), qr/permission denied for table saga_definitions/,
     'the definitions table is not writable');
like(alice_err(q{SELECT consistency._advance_sagas()}), qr/permission denied for function _advance_sagas/,
     'the in-transaction runner is superuser-only');

# Operators planted in alice's search_path are not used by the extension's statements.
alice(q{
  CREATE TABLE alice.planted (called_as name);
  CREATE FUNCTION alice.jsonb_eq(a jsonb, b jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO alice.planted VALUES (current_user); RETURN a::text = b::text; END $$;
  CREATE OPERATOR alice.= (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = alice.jsonb_eq);
  CREATE FUNCTION alice.jsonb_cat(a jsonb, b jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO alice.planted VALUES (current_user); RETURN a; END $$;
  CREATE OPERATOR alice.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = alice.jsonb_cat);
});
alice(q{
  SET search_path = alice, pg_catalog;
  SELECT consistency.define_saga('alice_ok', '{"steps": [
      {"name": "first", "action": {"function": "alice.whoami"}, "compensation": {"function": "alice.undo"}},
      {"name": "second", "action": {"function": "alice.whoami"}, "retry": {"max_attempts": 2, "backoff": "10 ms"}}]}');
  SELECT consistency.start_saga('alice_ok', '{"a": 1}', 'k1');
  SELECT consistency.start_saga('alice_ok', '{"a": 1}', 'k1');
});
is(su("SELECT count(*) FROM alice.planted"), '0', "alice's operators were never called");

# The attack of a writer on the worker's search path: a step sets it to the writer's
# schema, where clock_timestamp(), now(), gen_random_uuid() and the || and = operators
# make their caller a superuser if they can. The worker's next statements must not see it.
saga_tenants($node, 'saga_mallory');
psql_as($node, 'saga_mallory', sql_fixture('planted_search_path') . q{
  CREATE FUNCTION saga_mallory.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_catalog.set_config('search_path', 'saga_mallory, pg_catalog', false);
    RETURN '{}';
  END $$;
  SELECT consistency.define_saga('mallory_flow', '{"steps": [
    {"name": "a", "action": {"function": "saga_mallory.step"}},
    {"name": "b", "action": {"function": "saga_mallory.step"}},
    {"name": "c", "action": {"function": "saga_mallory.step"}}]}');
});
sub mallory_attack {
  my ($mode) = @_;
  my @ids = map { psql_as($node, 'saga_mallory', "SELECT consistency.start_saga('mallory_flow', '{}')") } 1 .. 3;
  is(wait_terminal($node, $_), 'completed', "mallory's saga completes ($mode)") for @ids;
  is(su("SELECT rolsuper FROM pg_roles WHERE rolname = 'saga_mallory'"), 'f', "mallory is not a superuser ($mode)");
  is(su("SELECT count(*) FROM saga_mallory.calls"), '0', "no planted function ran, as any role ($mode)");
}
mallory_attack('saga workers');
su("ALTER SYSTEM SET pg_consistency.saga_workers = 0");
su("SELECT pg_reload_conf()");
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency saga worker'", '0'),
   'saga workers stopped');
mallory_attack('per-database worker');
su("ALTER SYSTEM RESET pg_consistency.saga_workers");
su("SELECT pg_reload_conf()");

su("DELETE FROM consistency.saga_instances");
su("DELETE FROM consistency.saga_definitions");
$node->stop('fast');
done_testing();
