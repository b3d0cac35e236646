# pg_dump / pg_restore of a database in use (the worker serving it: events, a
# subscription, sagas waiting mid-flight, outbox rows the relay has not sent yet, a 2PC
# participant) into a fresh database that takes its place. The restore must run without
# an error and give a working system: row counts and relay counters kept, check_integrity
# clean, appends and outbox ids above the old ones (sequences restored), the subscription
# going on, the sagas finishing, 2PC, and the relay resuming with no duplicate beyond
# at-least-once: only messages still in the dumped outbox may reach Kafka twice. Also:
# every table and sequence of the extension is in the dump, except the 2PC decisions.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(new_node wait_until);
use PgcRelay qw(check_delivery);
use PgcDataset qw(participant populate counts count_tables still_works);

my $kafka  = PgcKafka->start;
my $remote = participant('remote');
my $brokers = $kafka->bootstrap;
my $node = new_node('dump', databases => 'shop', extension => 0,
                    conf => "pg_consistency.kafka_brokers = '$brokers'\npg_consistency.topic_partitions = 2\n");
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', 'CREATE EXTENSION pg_consistency');

sub served_by_worker {
  my ($db) = @_;
  return wait_until($node, "SELECT count(*) FROM consistency.workers WHERE kind = 'worker' AND database = '$db' "
                    . "AND state = 'running'", '1', 60, $db);
}

sub set_conf {
  my ($name, $value) = @_;
  $node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.$name = '$value'");
  $node->reload;
}

# 1. shop in use: the data set, 205 messages relayed, 300 more waiting (relay off) at the dump.
ok(served_by_worker('shop'), 'the worker serves shop');
my $sagas = populate($node, 'shop', $remote, outbox => 200);
ok(wait_until($node, 'SELECT pending FROM consistency.outbox_status', '0', 120, 'shop'), 'the first 205 messages are relayed');
is($node->safe_psql('shop', 'SELECT last_value FROM consistency.outbox_id_seq'), '205',
   'outbox ids 1-200 went to orders (the 5 saga commands came after them)');

# A definition whose step function was dropped since: no OID may survive for it.
$node->safe_psql('shop', q{
  CREATE FUNCTION app.gone(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
  SELECT consistency.define_saga('orphan', '{"steps": [{"name": "s", "action": {"function": "app.gone"}}]}');
  DROP FUNCTION app.gone(uuid, jsonb);
});

# Rows the relay has not sent when the dump is taken.
set_conf('kafka_brokers', '');
ok(wait_until($node, 'SELECT relay_state FROM consistency.outbox_status', 'stopped', 30, 'shop'), 'relay stopped');
my @pending = split /\n/, $node->safe_psql('shop',
  "SELECT consistency.publish('orders', 'p-' || g, jsonb_build_object('p', g)) FROM generate_series(1, 300) g");
my $at_dump = counts($node, 'shop');
my $position = $node->safe_psql('shop', 'SELECT max(global_position) FROM consistency.events');
my $last_id = $node->safe_psql('shop', 'SELECT last_value FROM consistency.outbox_id_seq');
my $delivered = $node->safe_psql('shop', 'SELECT delivered_total FROM consistency.relay_stats');
cmp_ok($delivered, '>=', 205, "relay_stats counts $delivered messages delivered");

# The dump, with the worker connected and working (the subscription and saga workers poll).
my $dump = $PostgreSQL::Test::Utils::tmp_check . '/shop.dump';
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('shop')], 'pg_dump of shop in use');
is_deeply(counts($node, 'shop'), $at_dump, 'nothing counted changed while the dump ran');

# The original goes on after the dump (its relay sends the pending rows), then is retired.
set_conf('kafka_brokers', $brokers);
ok(wait_until($node, 'SELECT pending FROM consistency.outbox_status', '0', 120, 'shop'),
   'the original relays the rows that were pending in the dump');
# The relay stays off until the restored outbox has been looked at.
set_conf('kafka_brokers', '');
set_conf('database', 'restored');
ok(wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND backend_type LIKE 'pg_consistency%'",
              '0', 60), 'no worker serves shop any more');

# 2. The restore into a fresh database, in one transaction: the worker (restored is
# listed) sees the extension only once everything is there.
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '--single-transaction', '--exit-on-error', '-d', $node->connstr('restored'), $dump],
                  'pg_restore into a fresh database reports no error');
ok(served_by_worker('restored'), 'the worker serves the restored database');
my $now = counts($node, 'restored');
is($now->{$_}, $at_dump->{$_}, "$_: $at_dump->{$_} rows restored") for count_tables();
is($node->safe_psql('restored', 'SELECT count(*) FROM consistency.outbox'), scalar @pending,
   'the outbox holds the 300 rows pending at the dump');
is($node->safe_psql('restored', 'SELECT delivered_total FROM consistency.relay_stats'), $delivered,
   'relay_stats keeps its counters');
is($node->safe_psql('restored', 'SELECT last_value FROM consistency.outbox_id_seq'), $last_id,
   'the outbox sequence is restored');
is($node->safe_psql('restored', "SELECT count(*) FROM consistency.saga_instances WHERE phase = 'waiting'"), '5',
   'the sagas still wait for their reply');
is($node->safe_psql('restored', q{
  SELECT string_agg(s->'action'->>'oid', ',' ORDER BY n) || ' ' || string_agg(s->'compensation'->>'oid', ',' ORDER BY n)
    FROM consistency.saga_definitions, jsonb_array_elements(compiled->'steps') WITH ORDINALITY t(s, n)
   WHERE name = 'shipping'}),
   $node->safe_psql('restored', q{
  SELECT 'app.reserve(uuid,jsonb)'::regprocedure::oid || ',' || 'app.finish(uuid,jsonb)'::regprocedure::oid
         || ' ' || 'app.release(uuid,jsonb)'::regprocedure::oid}),
   'the restored saga definition calls the restored step functions (their new OIDs)');
is($node->safe_psql('restored', "SELECT compiled->'steps'->0->'action'->>'oid' FROM consistency.saga_definitions WHERE name = 'orphan'"),
   '0', 'a step function dropped before the dump has no OID after the restore');

# 3. The relay resumes: every message reaches Kafka; only rows of the dumped outbox twice.
set_conf('kafka_brokers', $brokers);
ok(wait_until($node, 'SELECT pending FROM consistency.outbox_status', '0', 120, 'restored'),
   'the restored relay sends its outbox');
my $r = check_delivery($kafka, 'orders', ids => [ 1 .. 200, @pending ]);
is($r->{missing}, 0, 'every message published before the dump is in Kafka') or diag("first missing: $r->{first_missing}");
my %times;
$times{ $_->{headers}{outbox_id} }++ for @{ $r->{msgs} };
my %was_pending = map { $_ => 1 } @pending;
my @beyond = grep { $times{$_} > 1 && !$was_pending{$_} } sort { $a <=> $b } keys %times;
is(scalar @beyond, 0, 'no message sent twice unless it was in the dumped outbox') or diag("sent twice: @beyond[0 .. 9]");
is(scalar(grep { $times{$_} > 2 } keys %times), 0, 'nothing sent more than twice (once by each database)');
note(scalar(grep { $times{$_} > 1 } keys %times) . ' messages pending at the dump were sent by both databases');

# 4. The restored database works.
still_works($node, 'restored', $remote, $sagas, what => 'restored', old_position => $position,
            old_outbox_id => $last_id);

# 5. What pg_dump keeps: every table and sequence of the extension, except twopc_decisions
# (transaction ids of the cluster that wrote them) and published_horizon (the worker
# publishes the restored database's own horizon; see docs/operations.md).
my $not_dumped = 'every table and sequence of the extension is dumped but the 2PC decisions and the published horizon';
is($node->safe_psql('restored', <<'SQL'), 'published_horizon,twopc_decisions', $not_dumped);
SELECT string_agg(c.relname, ',' ORDER BY c.relname)
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
 WHERE e.extname = 'pg_consistency' AND c.relkind IN ('r', 'p', 'S')
   AND NOT c.oid = ANY (e.extconfig)
SQL

$node->stop;
$remote->stop;
$kafka->stop;
done_testing();
