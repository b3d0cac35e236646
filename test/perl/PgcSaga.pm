# The order flow of the saga design as example tables and step functions, for the saga
# TAP tests: reserve inventory -> process payment -> create shipment -> complete order,
# with release (which also cancels the order) / refund / cancel shipment as
# compensations. Every step leaves a row in shop.effects, so tests check effects on the
# example tables, not on the saga log.
package PgcSaga;

use strict;
use warnings;
use Test::More;
use Exporter 'import';
use PgcCluster qw(wait_until psql_as);
our @EXPORT_OK = qw(install_order_flow order_flow_definition start_order wait_terminal
                    effects_of terminal_count saga_tenants two_step_saga start_sagas all_completed);

# Options in the saga's data drive failures:
#   card = 'declined'        process_payment fails
#   shipping = 'slow'        create_shipment sleeps past its step timeout
#   release_failures = n     release_inventory fails its first n calls (shop.release_calls)
#   refund_failures = n      refund_payment fails its first n calls (shop.refund_calls)
#   step_sleep = seconds     every step sleeps this long (crash tests: work in flight)
my $fixture = <<'SQL';
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id int PRIMARY KEY, sku text NOT NULL, qty int NOT NULL,
                          amount numeric NOT NULL, status text NOT NULL DEFAULT 'pending',
                          saga_id uuid);
CREATE TABLE shop.stock (sku text PRIMARY KEY, available int NOT NULL CHECK (available >= 0));
CREATE TABLE shop.payments (order_id int PRIMARY KEY, amount numeric NOT NULL,
                            refunded boolean NOT NULL DEFAULT false);
CREATE TABLE shop.shipments (order_id int PRIMARY KEY, tracking text NOT NULL,
                             cancelled boolean NOT NULL DEFAULT false);
CREATE TABLE shop.effects (seq bigserial PRIMARY KEY, saga_id uuid NOT NULL, order_id int,
                           effect text NOT NULL, role name NOT NULL DEFAULT current_user,
                           at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE SEQUENCE shop.release_calls;
CREATE SEQUENCE shop.refund_calls;
INSERT INTO shop.stock VALUES ('apple', 1000000);

CREATE FUNCTION shop.nap(data jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF data ? 'step_sleep' THEN PERFORM pg_sleep((data->>'step_sleep')::float8); END IF;
END $$;
-- Raises message while nextval(calls) is among the first `failures` calls.
CREATE FUNCTION shop.fail_first(calls regclass, failures text, message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF nextval(calls) <= coalesce(failures::int, 0) THEN RAISE EXCEPTION '%', message; END IF;
END $$;
CREATE FUNCTION shop.effect(saga_id uuid, data jsonb, effect text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO shop.effects (saga_id, order_id, effect) VALUES (saga_id, (data->>'order_id')::int, effect) $$;
SQL

# The step functions shop.<name>(saga_id uuid, data jsonb) RETURNS jsonb: name, whether
# it naps first (step_sleep), its PL/pgSQL statements.
my @steps = (
  [reserve_inventory => 1, q{
  UPDATE shop.stock SET available = available - (data->>'qty')::int WHERE sku = data->>'sku';
  PERFORM shop.effect(saga_id, data, 'reserve');
  RETURN jsonb_build_object('reserved', (data->>'qty')::int);}],
  [release_inventory => 1, q{
  PERFORM shop.fail_first('shop.release_calls', data->>'release_failures', 'warehouse unavailable');
  UPDATE shop.stock SET available = available + (data->>'reserved')::int WHERE sku = data->>'sku';
  PERFORM shop.effect(saga_id, data, 'release');
  UPDATE shop.orders SET status = 'cancelled' WHERE id = (data->>'order_id')::int;
  PERFORM shop.effect(saga_id, data, 'cancel_order');
  RETURN '{"released": true}';}],
  [process_payment => 1, q{
  INSERT INTO shop.payments (order_id, amount) VALUES ((data->>'order_id')::int, (data->>'amount')::numeric);
  IF data->>'card' = 'declined' THEN RAISE EXCEPTION 'card declined'; END IF;
  PERFORM shop.effect(saga_id, data, 'pay');
  RETURN jsonb_build_object('payment', 'pay-' || (data->>'order_id'));}],
  [refund_payment => 1, q{
  PERFORM shop.fail_first('shop.refund_calls', data->>'refund_failures', 'payment provider unavailable');
  UPDATE shop.payments SET refunded = true WHERE order_id = (data->>'order_id')::int;
  PERFORM shop.effect(saga_id, data, 'refund');
  RETURN '{"refunded": true}';}],
  [create_shipment => 1, q{
  IF data->>'shipping' = 'slow' THEN PERFORM pg_sleep(30); END IF;
  INSERT INTO shop.shipments (order_id, tracking) VALUES ((data->>'order_id')::int, 'trk-' || (data->>'order_id'));
  PERFORM shop.effect(saga_id, data, 'ship');
  RETURN jsonb_build_object('tracking', 'trk-' || (data->>'order_id'));}],
  [cancel_shipment => 0, q{
  UPDATE shop.shipments SET cancelled = true WHERE order_id = (data->>'order_id')::int;
  PERFORM shop.effect(saga_id, data, 'cancel_shipment');
  RETURN '{}';}],
  [complete_order => 1, q{
  UPDATE shop.orders SET status = 'completed' WHERE id = (data->>'order_id')::int;
  PERFORM shop.effect(saga_id, data, 'complete');
  RETURN '{"completed": true}';}],
);
for my $step (@steps) {
  my ($name, $naps, $body) = @$step;
  $fixture .= "CREATE FUNCTION shop.$name(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$\nBEGIN"
    . ($naps ? "\n  PERFORM shop.nap(data);" : '') . "$body\nEND \$\$;\n";
}

# The definition; %o: retry_attempts (3), backoff ('10 ms'), ship_timeout ('500 ms').
sub order_flow_definition {
  my (%o) = @_;
  my $attempts = $o{retry_attempts} // 3;
  my $backoff = $o{backoff} // '10 ms';
  my $ship_timeout = $o{ship_timeout} // '500 ms';
  my $retry = qq({"max_attempts": $attempts, "backoff": "$backoff", "max_backoff": "200 ms"});
  return qq({"steps": [
    {"name": "reserve_inventory", "action": {"function": "shop.reserve_inventory"},
     "compensation": {"function": "shop.release_inventory"}, "retry": $retry},
    {"name": "process_payment", "action": {"function": "shop.process_payment"},
     "compensation": {"function": "shop.refund_payment"}, "retry": $retry},
    {"name": "create_shipment", "action": {"function": "shop.create_shipment"},
     "compensation": {"function": "shop.cancel_shipment"}, "timeout": "$ship_timeout",
     "retry": {"max_attempts": 2, "backoff": "10 ms"}},
    {"name": "complete_order", "action": {"function": "shop.complete_order"}}
  ], "timeout": "5 minutes"});
}

# Creates the example schema and defines saga 'order' in $db.
sub install_order_flow {
  my ($node, %o) = @_;
  my $db = $o{db} // 'postgres';
  $node->safe_psql($db, $fixture);
  my $def = order_flow_definition(%o);
  $node->safe_psql($db, "SELECT consistency.define_saga('order', \$def\$$def\$def\$)");
}

# Inserts order $id and starts its saga in one transaction; returns the saga id.
# %data: extra keys of the saga's input (card, shipping, ...).
sub start_order {
  my ($node, $id, %data) = @_;
  my $db = delete $data{db} // 'postgres';
  my $extra = join('', map { ", '$_', '$data{$_}'" } sort keys %data);
  return $node->safe_psql($db, qq(
    BEGIN;
    INSERT INTO shop.orders (id, sku, qty, amount) VALUES ($id, 'apple', 2, 9.90);
    UPDATE shop.orders SET saga_id = consistency.start_saga('order',
      jsonb_build_object('order_id', $id, 'sku', 'apple', 'qty', 2, 'amount', 9.90$extra),
      'order-$id') WHERE id = $id RETURNING saga_id;
    COMMIT;));
}

# Waits until saga $id is in a terminal state (or failed); returns its status. A saga that
# reaches none within $timeout seconds (30) fails the test, naming where it stopped.
sub wait_terminal {
  my ($node, $id, $timeout, $db) = @_;
  $timeout //= 30;
  wait_until($node,
    "SELECT status IN ('completed', 'compensated', 'failed', 'aborted') FROM consistency.sagas WHERE id = '$id'",
    't', $timeout, $db)
    or fail("saga $id reached no terminal state within $timeout s: "
      . $node->safe_psql($db // 'postgres',
        "SELECT coalesce(status || ' at ' || coalesce(current_step, '-') || ', ' || coalesce(last_error, ''), 'no such saga') "
        . "FROM (SELECT 1) one LEFT JOIN consistency.sagas ON id = '$id'"));
  return $node->safe_psql($db // 'postgres', "SELECT status FROM consistency.sagas WHERE id = '$id'");
}

# The effects of saga $id, in order, comma-separated.
sub effects_of {
  my ($node, $id, $db) = @_;
  return $node->safe_psql($db // 'postgres',
    "SELECT string_agg(effect, ',' ORDER BY seq) FROM shop.effects WHERE saga_id = '$id'");
}

# How many sagas are in a terminal state.
sub terminal_count {
  my ($node, $db) = @_;
  return $node->safe_psql($db // 'postgres',
    "SELECT count(*) FROM consistency.sagas WHERE status IN ('completed', 'compensated', 'failed', 'aborted')");
}

# Writer roles that log in, each with a schema of its own name.
sub saga_tenants {
  my ($node, @roles) = @_;
  $node->safe_psql('postgres',
    join('', map { "CREATE ROLE $_ LOGIN IN ROLE consistency_writer;\nCREATE SCHEMA $_ AUTHORIZATION $_;\n" } @roles));
}

# Defines saga $name as $role: steps one and two, each a call of $role.step(), which
# returns {"done": true}.
sub two_step_saga {
  my ($node, $role, $name) = @_;
  psql_as($node, $role, qq{
    CREATE FUNCTION $role.step(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT ''{"done": true}''::jsonb';
    SELECT consistency.define_saga('$name', '{"steps": [
      {"name": "one", "action": {"function": "$role.step"}},
      {"name": "two", "action": {"function": "$role.step"}}]}');});
}

# Starts $n sagas $name (input {}) as $role; returns their ids.
sub start_sagas {
  my ($node, $role, $name, $n) = @_;
  return [ split /\n/, psql_as($node, $role, join('', map { "SELECT consistency.start_saga('$name', '{}');\n" } 1 .. $n)) ];
}

# Waits until every saga of @$ids is completed (at most $timeout seconds, 30); true when they are.
sub all_completed {
  my ($node, $ids, $timeout) = @_;
  my $list = join(',', map { "'$_'" } @$ids);
  return wait_until($node, "SELECT count(*) FROM consistency.sagas WHERE id IN ($list) AND status = 'completed'",
                    scalar(@$ids), $timeout // 30);
}

1;
