# The order-processing reference system (examples/order-processing/run, the README's main
# command through scripts/demo) at a small size with every fault: the broker stopped, a
# consumer process killed with SIGKILL, the payment service's PostgreSQL stopped
# immediately, a 2PC participant stalled with SIGSTOP. The runner keeps its clusters up
# after its report; this test then reads every invariant from the databases and Kafka
# itself (not from the report, nor from the driver), and finally checks the report's verdict.
# Both saga styles, each with the faults and the same seeded mix of 60 orders.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Time::HiRes qw(usleep time);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $bindir = `pg_config --bindir`;
chomp $bindir;
local $ENV{PGC_BIN} = $bindir;

# Every runner this test started is released however the test ends (it stops what it started).
my @releases;
END { $_->() for @releases }

sub run_system {
  my ($style, $orders, $seed) = @_;
  my $keep = PostgreSQL::Test::Utils::tempdir("orders_keep_$style");
  my ($out, $err) = ('', '');
  my $run = IPC::Run::start([ "$root/examples/order-processing/run", '--orders', $orders, '--seed', $seed,
                              '--style', $style, '--keep', $keep ],
    '<', \undef, '>', \$out, '2>', \$err);
  # The runner has reported and waits for us once it wrote its environment.
  my $deadline = time + 600;
  while (!-s "$keep/env" && time < $deadline && $run->pumpable) {
    $run->pump_nb;
    usleep(200_000);
  }
  ok(-s "$keep/env", "$style: the run reached its report") or diag("stdout:\n$out\nstderr:\n$err");

  my %env;
  if (open my $fh, '<', "$keep/env") {
    while (<$fh>) { chomp; my ($k, $v) = split /=/, $_, 2; $env{$k} = $v; }
  }
  local *q1 = sub {
    my ($db, $sql) = @_;
    my ($o, $e) = ('', '');
    IPC::Run::run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', $env{$db}, '-c', $sql ], '>', \$o, '2>', \$e)
      or die "psql on $db failed: $e";
    chomp $o;
    return $o;
  };

  # Whatever happens below, the runner is released (it stops everything it started).
  my $release = sub {
    return if -e "$keep/release";
    open my $rel, '>', "$keep/release";
    close $rel;
  };
  push @releases, $release;

  SKIP: {
    skip 'the run did not reach its report', 1 unless $env{orders} && $env{kafka};
    eval {

    my $n = q1('orders', 'SELECT count(*) FROM orders.orders');
    is($n, $orders, "$orders orders placed (duplicates folded by their idempotency key)");
    is(q1('orders', q{SELECT count(*) FROM orders.orders WHERE status NOT IN ('completed', 'cancelled')}), '0',
       'every order completed or cancelled');
    ok(q1('orders', q{SELECT count(*) FROM orders.orders WHERE reason LIKE 'process_payment%'}) > 0,
       'some orders were declined by payment and cancelled');
    ok(q1('orders', q{SELECT count(*) FROM orders.orders WHERE reason LIKE 'create_shipment%'}) > 0,
       'some orders failed at shipping and were cancelled after payment');
    ok(q1('payment', 'SELECT count(*) FROM payment.refunds') > 0, 'payments were refunded');
    if ($style eq 'orchestrated') {
      is(q1('orders', q{SELECT count(*) FROM consistency.sagas WHERE status IN ('completed', 'compensated')}), $n,
         'every saga terminal, one per order');
      is(q1('orders', q{SELECT count(*) FROM orders.orders o JOIN consistency.sagas s ON s.id = o.saga_id
                        WHERE (o.status = 'completed') <> (s.status = 'completed')}), '0', 'sagas and orders agree');
      ok(q1('orders', q{SELECT count(*) FROM consistency.sagas s, consistency.read_stream('saga-' || s.id) e
                        WHERE e.type = 'CompensationSucceeded' AND e.data->>'step' = 'process_payment'}) > 0,
         'payments were refunded by compensation, in reverse order before the inventory');
    } else {
      is(q1('orders', 'SELECT count(*) FROM consistency.sagas'), '0', 'choreographed: no saga at all');
    }

    # Idempotency: duplicates were submitted and got the first order.
    ok(q1('orders', 'SELECT count(*) FROM orders.submissions WHERE duplicate') > 0, 'duplicate submissions happened');
    is(q1('orders', q{SELECT count(*) FROM (SELECT idempotency_key FROM orders.submissions GROUP BY 1
                      HAVING count(DISTINCT order_id) > 1) d}), '0', 'every duplicate got the same order');
    is(q1('orders', q{SELECT count(DISTINCT order_id) || '/' || count(*) FILTER (WHERE NOT (reached AND seen))
                      FROM orders.read_checks}), "$n/0", 'read-your-writes through PgBouncer for every order');
    is(q1('orders', q{SELECT count(*) FROM orders.orders o LEFT JOIN orders.order_view v ON v.order_id = o.id
                      WHERE v.status IS DISTINCT FROM o.status}), '0', 'the projection agrees with every order');
    is(q1('orders', q{SELECT count(*) FROM orders.orders o, consistency.aggregate_state('order-' || o.id) a
                      WHERE a.state->>'status' IS DISTINCT FROM o.status}), '0', 'the aggregate agrees with every order');
    is(q1('orders', q{SELECT string_agg(amount || ' ' || currency, ',' ORDER BY order_id) FROM orders.order_view
                      WHERE order_id LIKE 'legacy%'}), '19.91 EUR,19.92 EUR,19.93 EUR', 'schema-1 events read upcast');

    # Stock.
    is(q1('inventory', q{SELECT count(*) FROM inventory.stock WHERE on_hand + reserved + shipped <> initial OR on_hand < 0}),
       '0', 'stock conserved per SKU, never negative');
    is(q1('inventory', 'SELECT sum(reserved) FROM inventory.stock'), '0', 'nothing left reserved');
    is(q1('inventory', q{SELECT string_agg(sku || ':' || shipped, ',' ORDER BY sku) FROM inventory.stock WHERE shipped > 0}),
       q1('orders', q{SELECT string_agg(sku || ':' || n, ',' ORDER BY sku)
                      FROM (SELECT sku, sum(qty) n FROM orders.orders WHERE status = 'completed' GROUP BY 1) s}),
       'shipped stock = the completed orders, per SKU');
    my $completed = q1('orders', q{SELECT string_agg(id, ',' ORDER BY id) FROM orders.orders WHERE status = 'completed'});
    is(q1('inventory', q{SELECT string_agg(order_id, ',' ORDER BY order_id) FROM inventory.reservations WHERE status = 'shipped'}),
       $completed, 'inventory shipped exactly the completed orders');

    # Money.
    my $net = q1('payment', q{SELECT (SELECT coalesce(sum(amount), 0) FROM payment.payments WHERE status = 'charged')
                                   - (SELECT coalesce(sum(amount), 0) FROM payment.refunds)});
    is($net, q1('orders', q{SELECT sum(amount) FROM orders.orders WHERE status = 'completed'}),
       'charged - refunded = revenue of the completed orders');
    is(q1('payment', q{SELECT string_agg(order_id, ',' ORDER BY order_id) FROM payment.payments p WHERE status = 'charged'
                       AND NOT EXISTS (SELECT 1 FROM payment.refunds r WHERE r.order_id = p.order_id)}),
       $completed, 'the completed orders, and only they, stay charged');
    is(q1('payment', q{SELECT count(*) FROM payment.accounts a WHERE balance <> initial
         - (SELECT coalesce(sum(amount), 0) FROM payment.payments p WHERE p.customer = a.customer AND status = 'charged')
         + (SELECT coalesce(sum(r.amount), 0) FROM payment.refunds r JOIN payment.payments p USING (order_id) WHERE p.customer = a.customer)}),
       '0', 'every balance = initial - charged + refunded');
    is(q1('shipping', q{SELECT string_agg(order_id, ',' ORDER BY order_id) FROM shipping.shipments WHERE status = 'scheduled'}),
       $completed, 'shipping scheduled exactly the completed orders');

    # Kafka against the outboxes, per topic.
    my @topics = $style eq 'orchestrated'
      ? qw(orders.events inventory.commands payment.commands shipping.commands saga.replies)
      : qw(orders.events inventory.events payment.events shipping.events);
    for my $topic (@topics) {
      my $accepted = 0;
      $accepted += q1($_, "SELECT coalesce(sum(messages), 0) FROM ops.outbox_accepted WHERE topic = '$topic'")
        for qw(orders inventory payment shipping);
      my ($o, $e) = ('', '');
      IPC::Run::run([ 'kcat', '-C', '-b', $env{kafka}, '-t', $topic, '-e', '-q', '-X', 'isolation.level=read_committed',
                      '-f', '%o\n' ], '<', \undef, '>', \$o, '2>', \$e, IPC::Run::timeout(60));
      my $inkafka = () = $o =~ /\n/g;
      ok($accepted > 0, "$topic: messages were published");
      is($inkafka, $accepted, "$topic: Kafka holds exactly what the outboxes accepted ($accepted)");
    }

    # Transactions: two-phase commit and integrity.
    for my $db (qw(orders inventory payment shipping east west)) {
      is(q1($db, 'SELECT count(*) FROM pg_prepared_xacts'), '0', "$db: no prepared transaction left");
    }
    is(q1('inventory', 'SELECT count(*) FROM consistency.in_doubt'), '0', 'nothing in doubt');
    ok(q1('inventory', 'SELECT count(*) FROM inventory.transfers') > 0, 'transfers committed');
    for my $sku (qw(book lamp mug pen tea)) {
      my $east = q1('east', "SELECT qty FROM bins WHERE sku = '$sku'");
      my $west = q1('west', "SELECT qty FROM bins WHERE sku = '$sku'");
      is($east + $west, 2000, "$sku: east + west conserved");
      is($east, q1('inventory', qq{SELECT 1000 - coalesce(sum(qty) FILTER (WHERE from_wh = 'east'), 0)
                                         + coalesce(sum(qty) FILTER (WHERE to_wh = 'east'), 0)
                                    FROM inventory.transfers WHERE sku = '$sku'}),
         "$sku: the warehouse matches the coordinator's record of committed transfers");
    }
    for my $db (qw(orders inventory payment shipping)) {
      is(q1($db, q{SELECT coalesce(string_agg(check_name || ': ' || detail, '; '), '') FROM consistency.check_integrity() WHERE NOT ok}),
         '', "$db: check_integrity() all ok");
      is(q1($db, 'SELECT count(*) FROM consistency.consumer_dead_letters'), '0', "$db: no consumer dead letter");
    }
    1;
    } or fail("reading the databases: $@");
  }

  $release->();
  $run->finish;
  my $rc = $? >> 8;
  is($rc, 0, "$style: the runner exits 0") or diag("stdout:\n$out\nstderr:\n$err");
  like($out, qr/FAULT 1: Kafka broker stopped/, "$style: the broker outage was announced");
  like($out, qr/FAULT 2: kill -9 /, "$style: the worker kill was announced");
  like($out, qr/FAULT 3: the payment service's PostgreSQL stopped immediately/, "$style: the immediate stop was announced");
  like($out, qr/FAULT 4: warehouse east \(a 2PC participant\) stalled/, "$style: the participant stall was announced");
  like($out, qr/```mermaid\nstateDiagram-v2\n/, 'a Mermaid diagram of a compensated saga') if $style eq 'orchestrated';
  like($out, qr/\ninvariants: (\d+) checked, 0 violated\n*\z/, "$style: the report ends with its verdict: none violated");
}

run_system('orchestrated', 60, 7);
run_system('choreographed', 60, 7);
done_testing();
