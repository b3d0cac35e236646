# A database with every pillar in use, written through the API of release 0.1.0 (so an
# upgrade test can write it with the old library): event streams with snapshots, an
# aggregate and a subscription, outbox rows, sagas waiting for a reply mid-flight, and a
# two-phase-commit participant with a distributed transaction behind it. Then the checks
# that a copy of it (updated, restored) still works: counts, appends above the old
# positions, the subscription going on, the sagas finishing, 2PC, check_integrity.
package PgcDataset;

use strict;
use warnings;
use Test::More;
use PgcCluster qw(wait_until);
use Exporter 'import';
our @EXPORT_OK = qw(participant populate counts count_tables integrity_clean still_works);

my $app_sql = <<'SQL';
CREATE SCHEMA app;
CREATE TABLE app.projection (global_position bigint PRIMARY KEY, stream text NOT NULL, type text NOT NULL);
CREATE FUNCTION app.project(global_position bigint, stream text, version bigint, type text, data jsonb,
                            metadata jsonb) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO app.projection VALUES (global_position, stream, type) $$;
CREATE FUNCTION app.apply(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1,
                            'total', coalesce((state->>'total')::int, 0) + (data->>'amount')::int) $$;
CREATE TABLE app.effects (saga_id uuid NOT NULL, step text NOT NULL);
CREATE FUNCTION app.reserve(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  INSERT INTO app.effects VALUES (saga_id, 'reserve'); SELECT '{"reserved": true}'::jsonb $$;
CREATE FUNCTION app.release(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  INSERT INTO app.effects VALUES (saga_id, 'release'); SELECT '{}'::jsonb $$;
CREATE FUNCTION app.finish(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$
  INSERT INTO app.effects VALUES (saga_id, 'finish'); SELECT '{"finished": true}'::jsonb $$;
SQL

# The tables whose row counts a copy must keep.
my @tables = qw(consistency.events consistency.streams consistency.snapshots consistency.aggregates
  consistency.subscription_state consistency.saga_definitions consistency.saga_instances
  consistency.twopc_participants app.projection app.effects);

# A cluster for the participant (another cluster: a copy of the coordinator's data
# directory keeps reaching it), with the table distributed transactions write.
sub participant {
  my ($name) = @_;
  my $n = PostgreSQL::Test::Cluster->new($name);
  $n->init;
  $n->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
  $n->start;
  $n->safe_psql('postgres', <<'SQL');
CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL);
CREATE ROLE app_remote LOGIN;
GRANT SELECT, INSERT ON ledger TO app_remote;
SQL
  return $n;
}

sub _distributed_insert {
  my ($node, $db, $id) = @_;
  $node->safe_psql($db, <<"SQL");
BEGIN;
SELECT consistency.remote_exec('remote', 'INSERT INTO ledger VALUES ($id, ''transfer $id'')');
SELECT consistency.append_event('ledger-1', NULL, 'transferred', '{"amount": $id}');
COMMIT;
SQL
}

# Writes the data set into $db of $node (the extension installed, its worker running) and
# returns the ids of the sagas left waiting for their reply. outbox => n messages on topic
# 'orders' (key k-<g>, payload {"g": g}).
sub populate {
  my ($node, $db, $remote, %o) = @_;
  my $Q = sub { $node->safe_psql($db, $_[0]) };
  $Q->($app_sql);
  $Q->(<<'SQL');
SELECT consistency.register_aggregate('order', 'app.apply(jsonb,text,jsonb)', '{}', 2);
SELECT consistency.create_subscription('projection', 'app.project(bigint,text,bigint,text,jsonb,jsonb)',
                                       ARRAY['order']);
SELECT consistency.append_events('order-' || g, 0,
         '[{"type": "placed", "data": {"amount": 10}}, {"type": "paid", "data": {"amount": 10}},
           {"type": "packed", "data": {"amount": 10}}]')
  FROM generate_series(1, 20) g;
SELECT count(*) FROM generate_series(1, 5) g, consistency.aggregate_state('order-' || g);
SELECT consistency.save_snapshot('order-6', 3, '{"n": 3, "total": 30}');
SQL
  my $last = $Q->('SELECT max(global_position) FROM consistency.events');
  is($Q->("SELECT consistency.wait_for_subscription('projection', $last, '60 s')"), 't',
     'data set: the subscription caught up');
  my $n = $o{outbox} // 200;
  $Q->("SELECT count(consistency.publish('orders', 'k-' || g, jsonb_build_object('g', g))) FROM generate_series(1, $n) g");
  $Q->(<<'SQL');
SELECT consistency.define_saga('shipping', '{"steps": [
  {"name": "reserve", "action": {"function": "app.reserve"}, "compensation": {"function": "app.release"}},
  {"name": "ship", "action": {"topic": "shipping.commands", "command": "CreateShipment"}, "timeout": "1 hour"},
  {"name": "finish", "action": {"function": "app.finish"}}]}');
SELECT count(consistency.start_saga('shipping', jsonb_build_object('order', g))) FROM generate_series(1, 5) g;
SQL
  ok(wait_until($node, "SELECT count(*) FROM consistency.saga_instances WHERE current_step = 'ship' AND phase = 'waiting'",
                '5', 60, $db), 'data set: five sagas wait for their shipping reply');
  my $ci = $remote->connstr('postgres') . ' user=app_remote';
  $Q->("SELECT consistency.add_participant('remote', \$ci\$$ci\$ci\$)");
  _distributed_insert($node, $db, 1);
  is($remote->safe_psql('postgres', 'SELECT count(*) FROM ledger'), '1', 'data set: a distributed transaction committed');
  return [ split /\n/, $Q->("SELECT id FROM consistency.saga_instances WHERE phase = 'waiting' ORDER BY id") ];
}

# Row counts of the data set's tables (count_tables()), by table name.
sub counts {
  my ($node, $db) = @_;
  my $sql = join(' || \' \' || ', map { "(SELECT count(*) FROM $_)" } @tables);
  my %c;
  @c{@tables} = split / /, $node->safe_psql($db, "SELECT $sql");
  return \%c;
}

sub count_tables { return @tables }

# Passes when every check_integrity() row of $db says ok (the failing ones are shown).
sub integrity_clean {
  my ($node, $db, $what) = @_;
  my $bad = $node->safe_psql($db,
    "SELECT string_agg(check_name || ': ' || coalesce(detail, ''), '; ') FROM consistency.check_integrity() WHERE NOT ok");
  is($bad, '', "$what: check_integrity() clean");
}

# The data set in $db works: appends go on above $old_position on the old streams, the
# subscription handles them, folds start from the old snapshots, the waiting sagas finish
# when answered, a new distributed transaction commits, publish takes ids above
# $old_outbox_id, and check_integrity() is clean.
sub still_works {
  my ($node, $db, $remote, $sagas, %o) = @_;
  my $what = $o{what} // $db;
  my $Q = sub { $node->safe_psql($db, $_[0]) };
  is($Q->(q{SELECT consistency.append_events('order-1', 3, '[{"type": "shipped", "data": {"amount": 5}}]')}), '4',
     "$what: an old stream takes its next version");
  my $pos = $Q->("SELECT global_position FROM consistency.events WHERE stream = 'order-1' AND version = 4");
  cmp_ok($pos, '>', $o{old_position}, "$what: the new event's position lies above every old one");
  is($Q->("SELECT consistency.wait_for_subscription('projection', $pos, '60 s')"), 't',
     "$what: the subscription handles the new event");
  is($Q->("SELECT count(*) FROM app.projection WHERE global_position = $pos"), '1', "$what: ... once");
  is($Q->("SELECT version || ' ' || (state->>'n') || ' ' || (state->>'total') FROM consistency.aggregate_state('order-1')"),
     '4 4 35', "$what: the aggregate folds the old snapshot and the new event");
  is($Q->("SELECT version || ' ' || (state->>'total') FROM consistency.aggregate_state('order-6')"), '3 30',
     "$what: a stream with an old saved snapshot folds");
  $Q->("SELECT consistency.complete_step('$_', 'ship', '{\"tracking\": \"t-1\"}')") for @$sagas;
  my $list = join(',', map { "'$_'" } @$sagas);
  ok(wait_until($node, "SELECT count(*) FROM consistency.sagas WHERE id IN ($list) AND status = 'completed'",
                scalar(@$sagas), 60, $db), "$what: the sagas left mid-flight finish");
  is($Q->("SELECT count(*) FROM app.effects WHERE step = 'finish' AND saga_id IN ($list)"), scalar(@$sagas),
     "$what: their last step ran once each");
  my $id = 100 + int(rand(1000));
  _distributed_insert($node, $db, $id);
  is($remote->safe_psql('postgres', "SELECT count(*) FROM ledger WHERE id = $id"), '1',
     "$what: a new distributed transaction commits on the participant");
  cmp_ok($Q->("SELECT consistency.publish('orders', 'after', '{}'::jsonb)"), '>', $o{old_outbox_id},
         "$what: publish takes an id above every old one");
  integrity_clean($node, $db, $what);
}

1;
