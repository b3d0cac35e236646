# pg_dump / pg_restore into another cluster, whose roles have other OIDs: every stored
# role the extension runs code as (a subscription's and a consumer's owner, the roles that
# registered an upcaster and an aggregate, a saga definition's owner and a saga's starter)
# comes back as the role of the same name, and the restored system runs its code as that
# role. The origin's worker does not serve the dumped database, so the subscription and the
# saga first run in the target cluster.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node wait_until psql_as);

my $app_sql = <<'SQL';
CREATE SCHEMA app;
CREATE TABLE app.seen (who text NOT NULL, what text NOT NULL);
GRANT USAGE ON SCHEMA app TO shop_app;
GRANT INSERT, SELECT ON app.seen TO shop_app;
CREATE FUNCTION app.handler(global_position bigint, stream text, version bigint, type text, data jsonb,
                            metadata jsonb) RETURNS void LANGUAGE sql
  AS $$ INSERT INTO app.seen VALUES (current_user, 'handler ' || stream) $$;
CREATE FUNCTION app.upcast(data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT data || '{"up": 1}' $$;
CREATE FUNCTION app.apply(state jsonb, type text, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT pg_catalog.jsonb_build_object('folded_by', current_user) $$;
CREATE FUNCTION app.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ INSERT INTO app.seen VALUES (current_user, 'step'); SELECT '{}'::jsonb $$;
CREATE FUNCTION app.on_message(topic text, part int, off bigint, key text, value jsonb, headers jsonb)
  RETURNS void LANGUAGE sql AS $$ SELECT NULL $$;
SQL

my $roles_sql = q{
  SELECT (SELECT owner::text FROM consistency.subscription_state WHERE name = 'proj') || ' '
      || (SELECT registered_by::text FROM consistency.upcasters WHERE event_type = 'Placed') || ' '
      || (SELECT registered_by::text FROM consistency.aggregates WHERE category = 'order') || ' '
      || (SELECT owner::text FROM consistency.saga_definitions WHERE name = 'ship') || ' '
      || (SELECT string_agg(DISTINCT started_by::text, ',') FROM consistency.saga_instances) || ' '
      || (SELECT owner::text FROM consistency.consumer_state WHERE name = 'orders_in')};

# 1. The origin: shop_app owns everything; no worker serves shop, so nothing has run yet.
my $origin = new_node('origin', databases => 'postgres', extension => 0);
$origin->safe_psql('postgres', 'CREATE DATABASE shop');
$origin->safe_psql('shop', 'CREATE EXTENSION pg_consistency');
$origin->safe_psql('postgres', 'CREATE ROLE shop_app LOGIN; GRANT consistency_admin TO shop_app');
$origin->safe_psql('shop', $app_sql);
$origin->safe_psql('shop', q{SELECT consistency.append_event('order-1', NULL, 'Placed', '{"n": 1}')});
psql_as($origin, 'shop_app', <<'SQL', 'shop');
SELECT consistency.register_upcaster('Placed', 1, 'app.upcast(jsonb)');
SELECT consistency.register_aggregate('order', 'app.apply(jsonb,text,jsonb)');
SELECT consistency.create_subscription('proj', 'app.handler(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['order']);
SELECT consistency.define_saga('ship', '{"steps": [{"name": "s", "action": {"function": "app.step"}}]}');
SELECT consistency.start_saga('ship', '{}');
SELECT consistency.create_consumer('orders_in', ARRAY['orders'], 'app.on_message(text,int,bigint,text,jsonb,jsonb)');
SQL
is($origin->safe_psql('shop', $roles_sql), 'shop_app shop_app shop_app shop_app shop_app shop_app',
   'origin: every stored role is shop_app');
my $origin_oid = $origin->safe_psql('postgres', "SELECT oid FROM pg_roles WHERE rolname = 'shop_app'");
my $dump = $PostgreSQL::Test::Utils::tmp_check . '/shop_other.dump';
$origin->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $origin->connstr('shop')], 'pg_dump of shop');
$origin->stop;

# 2. The target: other roles first, so shop_app gets another OID; the role exists before
# the restore, as docs/operations.md asks.
my $target = new_node('target', databases => 'shop', extension => 0);
$target->safe_psql('postgres', 'CREATE ROLE decoy_' . $_ . ' LOGIN') for 1 .. 3;
$target->safe_psql('postgres', 'CREATE ROLE shop_app LOGIN');
my $target_oid = $target->safe_psql('postgres', "SELECT oid FROM pg_roles WHERE rolname = 'shop_app'");
isnt($target_oid, $origin_oid, "shop_app has another OID in the target cluster ($origin_oid there, $target_oid here)");
$target->safe_psql('postgres', 'CREATE DATABASE shop');
$target->command_ok(['pg_restore', '--single-transaction', '--exit-on-error', '-d', $target->connstr('shop'), $dump],
                    'pg_restore into the other cluster reports no error');
$target->safe_psql('postgres', 'GRANT consistency_admin TO shop_app');

is($target->safe_psql('shop', $roles_sql), 'shop_app shop_app shop_app shop_app shop_app shop_app',
   'target: every stored role names shop_app');

# 3. The restored system runs its code as shop_app.
ok(wait_until($target, "SELECT count(*) FROM consistency.workers WHERE kind = 'worker' AND database = 'shop' "
              . "AND state = 'running'", '1', 60, 'shop'), 'the worker serves the restored database');
ok(wait_until($target, "SELECT who FROM app.seen WHERE what = 'handler order-1'", 'shop_app', 60, 'shop'),
   'the subscription handler ran as shop_app');
ok(wait_until($target, "SELECT status FROM consistency.sagas", 'completed', 60, 'shop'), 'the saga completed');
is($target->safe_psql('shop', "SELECT who FROM app.seen WHERE what = 'step'"), 'shop_app',
   'the saga step ran as shop_app');
is($target->safe_psql('shop', "SELECT state->>'folded_by' FROM consistency.aggregate_state('order-1')"), 'shop_app',
   'the aggregate folds as shop_app');
is($target->safe_psql('shop', "SELECT data->>'up' FROM consistency.read_stream('order-1')"), '1',
   'the restored upcaster runs');
is($target->safe_psql('shop', "SELECT owner FROM consistency.consumers WHERE name = 'orders_in'"), 'shop_app',
   'consistency.consumers shows the consumer owned by shop_app');
is($target->safe_psql('shop', q{
  SELECT string_agg(check_name || ': ' || coalesce(detail, ''), '; ') FROM consistency.check_integrity() WHERE NOT ok}),
   '', 'check_integrity() is clean');

$target->stop;
done_testing();
