# Exactly-once effects of the inbox across crashes: messages keep arriving while the
# consumer process is killed with SIGKILL at random moments, PostgreSQL is stopped in
# immediate mode and the broker is restarted; in the end every offset of every partition
# took effect exactly once (the handler's rows and a per-key running total agree), in
# partition order.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use PgcKafka;
use PgcCluster qw(new_node wait_until process_gone);

my $kafka = PgcKafka->start;
my $node = new_node('inbox_crashes', conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
  . "pg_consistency.consumer_batch_size = 40\n");
$kafka->create_topic('payments', 4);
$node->safe_psql('postgres', q{
  CREATE TABLE applied (part int, off bigint, key text, amount int);
  CREATE TABLE totals (key text PRIMARY KEY, total bigint NOT NULL, last_seq int NOT NULL, out_of_order int NOT NULL DEFAULT 0);
  CREATE FUNCTION pay(t_topic text, t_part int, t_off bigint, t_key text, t_value jsonb, t_headers jsonb)
    RETURNS void LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO public.applied VALUES (t_part, t_off, t_key, (t_value->>'amount')::int);
      INSERT INTO public.totals AS t VALUES (t_key, (t_value->>'amount')::int, (t_value->>'seq')::int)
        ON CONFLICT (key) DO UPDATE SET total = t.total + excluded.total, last_seq = excluded.last_seq,
          out_of_order = t.out_of_order + (excluded.last_seq <> t.last_seq + 1)::int;
    END $$;
  SELECT consistency.create_consumer('payments-in', ARRAY['payments'], 'pay(text,int,bigint,text,jsonb,jsonb)');
});
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets}, '4', 30), 'partitions assigned');

my $sent = 0;
my %seq;
# Sends $n messages over 8 keys (key k always on partition k % 4), amounts 1..7.
sub send_some {
  my ($n) = @_;
  my @m;
  for (1 .. $n) {
    my $k = $sent % 8;
    my $s = $seq{$k}++;
    push @m, { key => "acct-$k", partition => $k % 4, value => qq({"amount": ) . ($sent % 7 + 1) . qq(, "seq": $s}) };
    $sent++;
  }
  # Grouped by partition (order within each kept): one kcat run per partition.
  $kafka->produce('payments', map { my $p = $_; grep { $_->{partition} == $p } @m } 0 .. 3);
}
sub consumer_pid {
  $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer'});
}

send_some(3000);
my $kills = 0;
for my $round (1 .. 4) {
  ok(wait_until($node, q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer'}, 't', 30),
     "round $round: consumer process running");
  usleep(200_000 + int(rand(600_000)));
  my $pid = consumer_pid();
  next unless $pid;
  kill 'KILL', $pid;
  $kills++;
  ok(process_gone($pid, 10), "round $round: consumer $pid killed");
  send_some(500);
}
cmp_ok($kills, '>=', 3, "$kills kill -9 rounds");

# PostgreSQL stopped in immediate mode while consuming.
send_some(2000);
usleep(300_000);    # deliberate: the stop lands while the consumer is busy with them
$node->stop('immediate');
$node->start;
send_some(500);

# The broker restarted while consuming.
usleep(300_000);    # deliberate: the restart lands while the consumer is busy
$kafka->restart(down => 2);
send_some(500);

ok(wait_until($node, q{SELECT count(*) FROM applied}, $sent, 120), "all $sent messages applied")
  or diag($node->safe_psql('postgres', q{SELECT * FROM consistency.consumers}));
is($node->safe_psql('postgres', q{SELECT count(*) FROM (SELECT part, off FROM applied GROUP BY 1, 2 HAVING count(*) > 1) d}),
   '0', 'no offset applied twice');
is($node->safe_psql('postgres', q{SELECT count(*) FROM (SELECT part FROM applied GROUP BY part HAVING count(*) <> max(off) + 1) g}),
   '0', 'no offset skipped (every partition dense from 0)');
is($node->safe_psql('postgres', q{SELECT sum(out_of_order) FROM totals}), '0', 'per-key order kept across crashes');
is($node->safe_psql('postgres', q{SELECT failed || '/' || dead_lettered FROM consistency.consumers}), '0/0',
   'no handler failure, no dead letter');
is($node->safe_psql('postgres', q{SELECT (SELECT sum(total) FROM totals) = (SELECT sum(amount) FROM applied)}), 't',
   'running totals agree with the applied rows');
is($node->safe_psql('postgres', q{SELECT sum(next_offset) FROM consistency.consumer_offsets}), $sent,
   'stored offsets are past every message');
ok(wait_until($node, q{SELECT lag FROM consistency.consumers}, '0', 15), 'lag 0');

$node->stop;
$kafka->stop;
done_testing();
