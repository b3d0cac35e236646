# The choreography example of docs/choreography.md, run as written (the SQL files in
# examples/choreography, which the document quotes verbatim): orders, inventory and
# payment in three databases that share nothing but Kafka, each publishing through its
# outbox and consuming with create_consumer. A few dozen orders, some for stock that is
# not there, some from a customer who cannot pay, some racing for the last items: every
# order ends completed or failed, stock and money are conserved, and the three databases
# agree on which orders went through.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PgcCluster qw(new_node wait_until);

my $root = abs_path(dirname(__FILE__) . '/../..');
my %sql = map { $_ => slurp_file("$root/examples/choreography/$_.sql") } qw(orders inventory payment);
my $doc = slurp_file("$root/docs/choreography.md");
for my $svc (sort keys %sql) {
  ok(index($doc, $sql{$svc}) >= 0, "docs/choreography.md quotes examples/choreography/$svc.sql verbatim");
}

my $kafka = PgcKafka->start;
my $node = new_node('choreography', databases => 'orders,inventory,payment', start => 0,
  conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n");
$node->start;
$kafka->create_topic($_, 3) for 'orders.events', 'inventory.events', 'payment.events';
for my $svc (qw(orders inventory payment)) {
  $node->safe_psql('postgres', "CREATE DATABASE $svc");
  $node->safe_psql($svc, "CREATE EXTENSION pg_consistency;\n$sql{$svc}");
}
sub q1 { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); }

# Stock: plenty of apples, no pears, five plums for eight orders. Money: four customers
# who can pay, one who cannot.
q1('inventory', q{INSERT INTO inventory.stock VALUES ('apple', 1000), ('pear', 0), ('plum', 5)});
q1('payment', q{INSERT INTO payment.accounts VALUES ('ann', 500), ('bob', 500), ('cyd', 500), ('dee', 500), ('broke', 0)});
my $stock0 = q1('inventory', 'SELECT sum(on_hand) FROM inventory.stock');
my $money0 = q1('payment', 'SELECT sum(balance) FROM payment.accounts');
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets}, '6', 60, 'orders'), 'orders: consumers assigned');

my @rich = qw(ann bob cyd dee);
my @orders;
push @orders, ["o$_", $rich[$_ % 4], 'apple', 1 + $_ % 3, 10] for 1 .. 20;   # completed
push @orders, ["o$_", 'broke', 'apple', 2, 25] for 21 .. 26;                  # declined, released
push @orders, ["o$_", $rich[$_ % 4], 'pear', 1, 5] for 27 .. 30;             # out of stock
push @orders, ["o$_", $rich[$_ % 4], 'plum', 1, 7] for 31 .. 38;             # five of eight
q1('orders', join '', map { "SELECT orders.place_order('$_->[0]', '$_->[1]', '$_->[2]', $_->[3], $_->[4]);\n" } @orders);
my $n = scalar @orders;

ok(wait_until($node, q{SELECT count(*) FROM orders.orders WHERE status IN ('completed', 'failed')}, $n, 120, 'orders'),
   "all $n orders reach a terminal status")
  or diag(q1('orders', q{SELECT status, count(*) FROM orders.orders GROUP BY 1}));
# OrderFailed travels back to inventory after the order failed: wait for its releases.
ok(wait_until($node, q{SELECT count(*) FROM inventory.reservations WHERE status = 'released'}, '6', 60, 'inventory'),
   'the reservations of the declined orders are released');

is(q1('orders', q{SELECT string_agg(status || ':' || count, ',' ORDER BY status) FROM
                  (SELECT status, count(*) FROM orders.orders GROUP BY status) s}), 'completed:25,failed:13',
   '25 completed (20 apple, 5 plum), 13 failed');
is(q1('orders', q{SELECT string_agg(reason || ':' || count, ',' ORDER BY reason) FROM
                  (SELECT reason, count(*) FROM orders.orders WHERE status = 'failed' GROUP BY reason) s}),
   'out of stock:7,payment declined: insufficient funds:6', 'failed for the right reasons');
is(q1('orders', q{SELECT count(*) FROM orders.orders WHERE sku = 'plum' AND status = 'completed'}), '5',
   'exactly the five plums in stock were sold');

# Stock conserved: what is on hand plus what is held by live reservations.
is(q1('inventory', q{SELECT (SELECT sum(on_hand) FROM inventory.stock)
                          + (SELECT COALESCE(sum(qty), 0) FROM inventory.reservations WHERE status = 'reserved')}),
   $stock0, 'stock conserved (on hand + reserved = initial)');
is(q1('inventory', q{SELECT on_hand FROM inventory.stock WHERE sku = 'plum'}), '0', 'no plum left');
# Money conserved: balances plus what was charged.
is(q1('payment', q{SELECT (SELECT sum(balance) FROM payment.accounts)
                        + (SELECT COALESCE(sum(amount), 0) FROM payment.payments WHERE status = 'charged')}),
   $money0, 'money conserved (balances + charged = initial)');
is(q1('payment', q{SELECT balance FROM payment.accounts WHERE customer = 'broke'}), '0.00', 'nobody went below zero');

# The three databases agree order by order.
my $completed = q1('orders', q{SELECT string_agg(id, ',' ORDER BY id) FROM orders.orders WHERE status = 'completed'});
is(q1('inventory', q{SELECT string_agg(order_id, ',' ORDER BY order_id) FROM inventory.reservations WHERE status = 'reserved'}),
   $completed, 'inventory holds a reservation for exactly the completed orders');
is(q1('payment', q{SELECT string_agg(order_id, ',' ORDER BY order_id) FROM payment.payments WHERE status = 'charged'}),
   $completed, 'payment charged exactly the completed orders');
is(q1('orders', q{SELECT sum(amount) FROM orders.orders WHERE status = 'completed'}),
   q1('payment', q{SELECT sum(amount) FROM payment.payments WHERE status = 'charged'}), 'and the amounts agree');

# Nothing was dead-lettered or failed on the way; every outbox is drained.
for my $svc (qw(orders inventory payment)) {
  is(q1($svc, q{SELECT COALESCE(sum(failed + dead_lettered), 0) FROM consistency.consumers}), '0', "$svc: no failed handler");
  ok(wait_until($node, q{SELECT count(*) FROM consistency.outbox}, '0', 30, $svc), "$svc: outbox drained");
}

$node->stop;
$kafka->stop;
done_testing();
