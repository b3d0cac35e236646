# pg_upgrade of a cluster in use (15 to 15 into a fresh initdb'd cluster, as an operator
# upgrading PostgreSQL does). pg_upgrade refuses tables with regproc-family columns, and
# gives functions new OIDs: every function reference the extension stores (upcasters,
# aggregates, subscriptions, consumers, saga steps) must survive as a signature and be
# bound again to the new OIDs. After the upgrade the subscription handles new events with
# its handler, the upcaster and the aggregate fold, the sagas left mid-flight finish
# calling their step functions, and check_integrity() is clean.
use strict;
use warnings;
use Cwd ();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node wait_until worker_running);
use PgcDataset qw(participant populate counts count_tables still_works);

my $remote = participant('remote');
my $old    = new_node('old');
# PostgreSQL 15's own pg_upgrade, of the installation the tests run (the staged copy of
# /usr/lib/postgresql/15 that holds this library).
my $bindir = $old->config_data('--bindir');
worker_running($old);

# Columns of a type pg_upgrade refuses (src/bin/pg_upgrade/check.c: the reg* types whose
# OIDs it does not keep), also as an array or domain element, in the extension's tables.
my $forbidden = <<'SQL';
SELECT coalesce(string_agg(c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                           ORDER BY c.relname, a.attname), '')
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_type t ON t.oid = a.atttypid
 WHERE c.relnamespace = 'consistency'::regnamespace AND c.relkind IN ('r', 'p', 'm', 'i')
   AND a.attnum > 0 AND NOT a.attisdropped
   AND ARRAY[t.oid, t.typelem, t.typbasetype]::oid[] && ARRAY['regproc', 'regprocedure', 'regoper', 'regoperator',
        'regconfig', 'regdictionary', 'regnamespace', 'regcollation']::regtype[]::oid[]
SQL
is($old->safe_psql('postgres', $forbidden), '', 'no extension table has a column of a reg* type pg_upgrade refuses');

# 1. Every pillar that keeps function references, in use.
my $sagas = populate($old, 'postgres', $remote, outbox => 20);
$old->safe_psql('postgres', <<'SQL');
CREATE FUNCTION app.placed_v1(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$ SELECT d || '{"upcast": true}' $$;
SELECT consistency.register_upcaster('placed', 1, 'app.placed_v1(jsonb)');
CREATE FUNCTION app.on_message(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT consistency.create_consumer('orders-in', ARRAY['orders.in'], 'app.on_message(text,int,bigint,text,jsonb,jsonb)');
SQL
is($old->safe_psql('postgres', q{SELECT count(*) FROM consistency.read_stream('order-1') WHERE data->>'upcast' = 'true'}), '1',
   'the upcaster applies before the upgrade');
my $refs = <<'SQL';
SELECT 'upcaster ' || fn || ' ' || fn_oid FROM consistency.upcasters
UNION ALL SELECT 'aggregate ' || apply_fn || ' ' || apply_fn_oid FROM consistency.aggregates
UNION ALL SELECT 'subscription ' || handler || ' ' || handler_oid FROM consistency.subscription_state
UNION ALL SELECT 'consumer ' || handler || ' ' || handler_oid FROM consistency.consumer_state
UNION ALL SELECT 'step ' || (s->'action'->>'function') || '(uuid,jsonb) ' || (s->'action'->>'oid')
            FROM consistency.saga_definitions, jsonb_array_elements(compiled->'steps') s WHERE s->'action' ? 'function'
ORDER BY 1
SQL
my @old_refs = split /\n/, $old->safe_psql('postgres', $refs);
is(scalar @old_refs, 6, 'six function references are stored: ' . join('; ', @old_refs));
my $old_sysid = $old->safe_psql('postgres', 'SELECT consistency._system_identifier()');
my $before    = counts($old, 'postgres');
my $position  = $old->safe_psql('postgres', 'SELECT max(global_position) FROM consistency.events');
my $last_id   = $old->safe_psql('postgres', 'SELECT last_value FROM consistency.outbox_id_seq');
$old->stop;

# 2. pg_upgrade into a fresh cluster, run from a directory of its own. Neither server
# preloads the library while pg_upgrade runs them (no worker may touch the databases it
# recreates); pg_upgrade loads it to check that it is there.
my $new = new_node('new', start => 0);
my $work = tempdir(CLEANUP => 1);
my @upgrade = ("$bindir/pg_upgrade", '--no-sync', '-d', Cwd::abs_path($old->data_dir), '-D', Cwd::abs_path($new->data_dir), '-b', $bindir,
  '-B', $bindir, '-s', $new->host, '-p', $old->port, '-P', $new->port,
  '-o', "-c shared_preload_libraries=''", '-O', "-c shared_preload_libraries=''");
{
  my $cwd = Cwd::getcwd();
  chdir $work or die "chdir $work: $!";
  command_ok([ @upgrade, '--check' ], 'pg_upgrade --check accepts the cluster');
  command_ok(\@upgrade, 'pg_upgrade upgrades it');
  chdir $cwd;
}
$new->start;
worker_running($new);
isnt($new->safe_psql('postgres', 'SELECT consistency._system_identifier()'), $old_sysid,
     'the new cluster has a system identifier of its own');
ok(wait_until($new, <<'SQL', '0'), 'the worker binds every reference again in the new cluster');
SELECT (SELECT count(*) FROM consistency.upcasters WHERE bound_cluster <> consistency._system_identifier())
     + (SELECT count(*) FROM consistency.aggregates WHERE bound_cluster <> consistency._system_identifier())
     + (SELECT count(*) FROM consistency.subscription_state WHERE bound_cluster <> consistency._system_identifier())
     + (SELECT count(*) FROM consistency.consumer_state WHERE bound_cluster <> consistency._system_identifier())
     + (SELECT count(*) FROM consistency.saga_definitions WHERE bound_cluster <> consistency._system_identifier())
SQL
like(slurp_file($new->logfile), qr/bound 5 function reference\(s\) made in another cluster/, '... five rows, as it logs');

# 3. The references name the same functions, at their new OIDs.
my @new_refs = split /\n/, $new->safe_psql('postgres', $refs);
is(scalar @new_refs, scalar @old_refs, 'the references are kept');
for my $i (0 .. $#old_refs) {
  my ($kind, $sig, $oid) = split / /, $old_refs[$i];
  my ($nkind, $nsig, $noid) = split / /, $new_refs[$i];
  is("$nkind $nsig", "$kind $sig", "$kind $sig keeps its signature");
  my $now = $new->safe_psql('postgres', "SELECT to_regprocedure('$sig')::oid");
  isnt($now, $oid, "... whose function has a new OID ($oid before, $now now)");
  is($noid, $now, '... which the row now holds');
}
is($new->safe_psql('postgres', 'SELECT handler FROM consistency.consumers'),
   'app.on_message(text,integer,bigint,text,jsonb,jsonb)', 'the consumer shows its handler');
is($new->safe_psql('postgres', 'SELECT handler FROM consistency.subscriptions'),
   'app.project(bigint,text,bigint,text,jsonb,jsonb)', 'the subscription shows its handler');
is($new->safe_psql('postgres', $forbidden), '', 'the upgraded catalog has no reg* column pg_upgrade refuses either');

# 4. The data works under the new OIDs.
my $after = counts($new, 'postgres');
is($after->{$_}, $before->{$_}, "$_: $before->{$_} rows kept") for count_tables();
is($new->safe_psql('postgres', q{SELECT count(*) FROM consistency.read_stream('order-2') WHERE data->>'upcast' = 'true'}), '1',
   'the upcaster applies after the upgrade');
still_works($new, 'postgres', $remote, $sagas, what => 'after pg_upgrade', old_position => $position,
            old_outbox_id => $last_id);

$new->stop;
$remote->stop;
done_testing();
