# The upgrade path. A cluster runs release 0.1.0 (built from its release commit) and gets
# data in every pillar through the 0.1.0 API, with its relay off; its data directory then
# starts under this checkout's library (what installing the new package does) and
# ALTER EXTENSION pg_consistency UPDATE brings the schema to the current version. The
# data must go on working under the new code (counts kept, the waiting outbox relayed
# once, appends above the old positions, the subscription, folds, the sagas left
# mid-flight finish, 2PC, check_integrity clean), and the updated catalog must equal a
# fresh install's, also for 0.1.0 installed by the current library and then updated.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(wait_until worker_running);
use PgcRelay qw(wait_drained check_delivery);
use PgcUpgrade qw(release_node catalog_lines catalog_diff);
use PgcDataset qw(participant populate counts count_tables integrity_clean still_works);

my $kafka  = PgcKafka->start;
my $remote = participant('remote');

# 1. Release 0.1.0 with its data.
my $old = release_node('v010', '0.1.0');
$old->safe_psql('postgres', 'CREATE EXTENSION pg_consistency');
is($old->safe_psql('postgres', "SELECT consistency.version() || ' ' || extversion FROM pg_extension WHERE extname = 'pg_consistency'"),
   '0.1.0 0.1.0', 'the old cluster runs release 0.1.0');
worker_running($old);
my $sagas = populate($old, 'postgres', $remote, outbox => 200);
# An upcaster too (0.1.0 has no inbox, so no consumer is there to carry over).
$old->safe_psql('postgres', <<'SQL');
CREATE FUNCTION app.placed_v1(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$ SELECT d || '{"upcast": true}' $$;
SELECT consistency.register_upcaster('placed', 1, 'app.placed_v1(jsonb)');
SQL
my $before = counts($old, 'postgres');
my $old_position = $old->safe_psql('postgres', 'SELECT max(global_position) FROM consistency.events');
my @outbox = split /\n/, $old->safe_psql('postgres', 'SELECT id FROM consistency.outbox ORDER BY id');
my $old_orders = $old->safe_psql('postgres', "SELECT id FROM consistency.outbox WHERE topic = 'orders' ORDER BY id");
is(scalar @outbox, 205, 'the outbox holds 200 messages and 5 saga commands, the relay being off');
$old->stop;

# 2. The same data directory under the new library, the relay on.
$old->backup_fs_cold('v010');
my $node = PostgreSQL::Test::Cluster->new('v020');
$node->init_from_backup($old, 'v010');
$node->append_conf('postgresql.conf', "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
  . "pg_consistency.topic_partitions = 2\n");
$node->start;
my $current = $node->safe_psql('postgres', 'SELECT consistency.version()');
isnt($current, '0.1.0', "the new library ($current) serves the 0.1.0 schema until the update");
# Until the update the worker and its processes wait: their code expects the new schema.
ok(wait_until($node, "SELECT string_agg(DISTINCT state, ',') FROM consistency.workers WHERE kind = 'worker'",
              'waiting_for_extension'), 'the worker waits for the update');
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency worker'", '1'),
   '... connected to the database');
like(slurp_file($node->logfile), qr/installed here at version 0\.1\.0 and the library is \Q$current\E: waiting for ALTER EXTENSION/,
     '... and says why in the log');
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.outbox'), '205', '... so the relay sends nothing yet');

$node->safe_psql('postgres', 'ALTER EXTENSION pg_consistency UPDATE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pg_consistency'"), $current,
   "ALTER EXTENSION UPDATE reaches $current");
worker_running($node);

# 3. The data under the new code.
my $after = counts($node, 'postgres');
is($after->{$_}, $before->{$_}, "$_: $before->{$_} rows kept") for count_tables();
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.snapshots WHERE folded'), '0',
   '0.1.0 snapshots are not taken for folds run as the registrant');
is($node->safe_psql('postgres', "SELECT count(*) FROM consistency.saga_instances WHERE started_by = 0"), '5',
   '0.1.0 sagas have no recorded starter');
ok(wait_drained($node, 120), 'the outbox left by 0.1.0 is relayed');
my @orders = split /\n/, $old_orders;
my $r = check_delivery($kafka, 'orders', ids => \@orders);
is($r->{missing}, 0, 'every message 0.1.0 published reaches Kafka') or diag("first missing: $r->{first_missing}");
is($r->{duplicates}, 0, '... once');
is(scalar(@{ $kafka->consume('shipping.commands') }), 5, 'the five saga commands reach Kafka');
# The function references 0.1.0 stored as regprocedure are now signature, OID and the
# cluster that bound them, and call the same functions.
is($node->safe_psql('postgres', <<'SQL'), join("\n", 'aggregate app.apply(jsonb,text,jsonb) true', 'subscription app.project(bigint,text,bigint,text,jsonb,jsonb) true', 'upcaster app.placed_v1(jsonb) true'),
SELECT 'aggregate ' || apply_fn || ' ' || (apply_fn_oid = to_regprocedure(apply_fn)::oid AND bound_cluster = consistency._system_identifier()) FROM consistency.aggregates
UNION ALL SELECT 'subscription ' || handler || ' ' || (handler_oid = to_regprocedure(handler)::oid AND bound_cluster = consistency._system_identifier()) FROM consistency.subscription_state
UNION ALL SELECT 'upcaster ' || fn || ' ' || (fn_oid = to_regprocedure(fn)::oid AND bound_cluster = consistency._system_identifier()) FROM consistency.upcasters
ORDER BY 1
SQL
   'the stored function references are converted');
is($node->safe_psql('postgres', 'SELECT count(*) FROM consistency.saga_definitions WHERE bound_cluster = consistency._system_identifier()'),
   '1', '... the saga definition is bound in this cluster');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.read_stream('order-3') WHERE data->>'upcast' = 'true'}), '1',
   'the upcaster registered under 0.1.0 applies');
still_works($node, 'postgres', $remote, $sagas, what => 'after the update', old_position => $old_position,
            old_outbox_id => $outbox[-1]);
is($node->safe_psql('postgres', "SELECT count(*) FROM consistency.sagas WHERE status = 'completed'"), '5',
   'the five sagas completed');

# 4. The catalog after the update equals a fresh install's; so does one of 0.1.0 installed
# by the current library and updated (the 0.1.0 script's C symbols exist in this library).
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE from_010');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_consistency');
$node->safe_psql('from_010', "CREATE EXTENSION pg_consistency VERSION '0.1.0'");
is($node->safe_psql('from_010', "SELECT extversion FROM pg_extension WHERE extname = 'pg_consistency'"), '0.1.0', "CREATE EXTENSION VERSION '0.1.0' works");
$node->safe_psql('from_010', 'ALTER EXTENSION pg_consistency UPDATE');
my $fresh = catalog_lines($node, 'fresh');
cmp_ok(scalar @$fresh, '>', 1000, 'the catalog listing of a fresh install has ' . scalar(@$fresh) . ' lines');
for my $db (qw(postgres from_010)) {
  my $diff = catalog_diff($fresh, catalog_lines($node, $db), "fresh $current install", "0.1.0 updated to $current ($db)");
  is($diff, '', "the catalog of 0.1.0 updated to $current ($db) equals a fresh install's")
    or diag("The update script misses what a fresh install has (add it to upgrade/):\n$diff");
}

$node->stop;
$remote->stop;
$kafka->stop;
done_testing();
