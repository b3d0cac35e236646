# The inbox against a real broker: every message applied once in partition order, headers
# and raw bytes given to the handlers, a re-delivered ce_id skipped, a poison message
# retried then dead-lettered while other partitions go on, a non-JSON value dead-lettered
# at once, pause/resume/reset taking effect within a second or two, a topic created after
# its consumer picked up, lag back to 0 on a topic written by the exactly_once relay.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(new_node wait_until);

my $kafka = PgcKafka->start;
my $node = new_node('inbox_consume', conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
  . "pg_consistency.relay_mode = 'exactly_once'\n"
  . "pg_consistency.consumer_max_attempts = 3\n"
  . "pg_consistency.consumer_retry_backoff = '100ms'\n"
  . "pg_consistency.consumer_max_retry_backoff = '300ms'\n");
$kafka->create_topic('orders', 3);
$node->safe_psql('postgres', q{
  CREATE TABLE seen (topic text, part int, off bigint, key text, value jsonb, headers jsonb, seq int);
  CREATE TABLE raw_seen (off bigint, value bytea);
  CREATE FUNCTION handle(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE plpgsql AS $$ BEGIN
      IF value ? 'poison' THEN RAISE EXCEPTION 'poison %', value->>'poison'; END IF;
      INSERT INTO public.seen VALUES (topic, partition, "offset", key, value, headers, (value->>'seq')::int);
    END $$;
  CREATE FUNCTION handle_raw(topic text, partition int, "offset" bigint, key text, value bytea, headers jsonb)
    RETURNS void LANGUAGE sql AS $$ INSERT INTO public.raw_seen VALUES ("offset", value) $$;
  SELECT consistency.create_consumer('orders-in', ARRAY['orders'], 'handle(text,int,bigint,text,jsonb,jsonb)');
});
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets WHERE consumer = 'orders-in'}, '3', 30),
   'the three partitions were assigned and their offsets stored')
  or diag($node->safe_psql('postgres', 'SELECT * FROM consistency.consumers'));
is($node->safe_psql('postgres', q{SELECT status FROM consistency.consumers}), 'running', 'status running');

# 600 messages over 6 keys, on the partitions kcat's key hash chooses.
my @msgs;
for my $g (0 .. 599) {
  my $k = $g % 6;
  push @msgs, { key => "key-$k", value => qq({"seq": ) . int($g / 6) . qq(, "k": $k}),
                partition => $k % 3, headers => [ce_id => "id-$g"] };
}
# Grouped by partition (order within each kept): one kcat run per partition.
$kafka->produce('orders', map { my $p = $_; grep { $_->{partition} == $p } @msgs } 0 .. 2);
ok(wait_until($node, 'SELECT count(*) FROM seen', '600', 60), 'all 600 messages applied')
  or diag($node->safe_psql('postgres', 'SELECT * FROM consistency.consumers'));
is($node->safe_psql('postgres', 'SELECT count(DISTINCT (part, off)) FROM seen'), '600', 'each offset applied once');
is($node->safe_psql('postgres', q{
  SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY key ORDER BY off) AS prev FROM seen) s
   WHERE prev IS NOT NULL AND seq <> prev + 1}), '0', 'per-key order kept (seq follows seq)');
is($node->safe_psql('postgres', q{SELECT headers->>'ce_id' FROM seen WHERE key = 'key-1' ORDER BY off LIMIT 1}),
   'id-1', 'headers reach the handler as jsonb');

# The same ce_id again (an at-least-once producer re-sending): skipped and counted.
$kafka->produce('orders', { key => 'key-0', value => '{"seq": 100, "k": 0}', partition => 0, headers => [ce_id => 'id-0'] },
                          { key => 'key-0', value => '{"seq": 100, "k": 0}', partition => 0, headers => [ce_id => 'id-new'] });
ok(wait_until($node, q{SELECT consumed || '/' || deduplicated FROM consistency.consumers}, '601/1', 30),
   'a re-delivered ce_id is skipped, a new one applied');
is($node->safe_psql('postgres', q{SELECT lag FROM consistency.consumers}), '0', 'lag 0 when everything was applied');

# A poison message on partition 1 is retried, then dead-lettered; partition 2 goes on meanwhile.
$kafka->produce('orders', { key => 'p', value => '{"poison": "x"}', partition => 1 });
$kafka->produce('orders', { key => 'q', value => '{"seq": 7}', partition => 2 });
$kafka->produce('orders', { key => 'bad', value => 'not json {', partition => 0 });
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_dead_letters}, '2', 30), 'two dead letters')
  or diag($node->safe_psql('postgres', 'SELECT * FROM consistency.consumers'));
is($node->safe_psql('postgres', q{SELECT string_agg(partition || ':' || left(reason, 40), ',' ORDER BY partition)
  FROM consistency.consumer_dead_letters}),
  '0:CS002: the message value is not valid JS,1:after 3 attempts: poison x (SQLSTATE P00',
  'the poison message after its 3 attempts, the non-JSON value at once with a CS002 reason');
is($node->safe_psql('postgres', q{SELECT failed || '/' || dead_lettered FROM consistency.consumers}), '3/2',
   'failed attempts and dead letters counted');
ok(wait_until($node, q{SELECT count(*) FROM seen WHERE key = 'q'}, '1', 10), 'the other partition was applied');
$kafka->produce('orders', { key => 'p', value => '{"seq": 8}', partition => 1 });
ok(wait_until($node, q{SELECT count(*) FROM seen WHERE key = 'p'}, '1', 10), 'the poisoned partition goes on after it');

# Pause: nothing is applied; resume: it is.
$node->safe_psql('postgres', q{SELECT consistency.pause_consumer('orders-in')});
sleep 1;    # deliberate: a round already under way when the pause came ends first
$kafka->produce('orders', { key => 'pz', value => '{"seq": 1}', partition => 0 });
sleep 2;    # deliberate: ten poll intervals pass, and the message is still not applied
is($node->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE key = 'pz'}), '0', 'paused: not applied');
is($node->safe_psql('postgres', q{SELECT status FROM consistency.consumers}), 'paused', 'status paused');
$node->safe_psql('postgres', q{SELECT consistency.resume_consumer('orders-in')});
ok(wait_until($node, q{SELECT count(*) FROM seen WHERE key = 'pz'}, '1', 10), 'resumed: applied');

# Reset partition 2 to 0: its messages are read again (replay); those with a ce_id
# already handled are skipped by the dedupe, the one without is applied again.
my ($p2, $p2_ce, $dedup) = split /\|/, $node->safe_psql('postgres', q{
  SELECT count(*), count(*) FILTER (WHERE headers ? 'ce_id'), (SELECT deduplicated FROM consistency.consumers)
    FROM seen WHERE part = 2});
$node->safe_psql('postgres', q{SELECT consistency.reset_consumer('orders-in', 'orders', 2, 0)});
ok(wait_until($node, q{SELECT count(*) FROM seen WHERE part = 2}, $p2 + ($p2 - $p2_ce), 30),
   'reset replays the partition: messages without a ce_id applied again');
ok(wait_until($node, q{SELECT deduplicated FROM consistency.consumers}, $dedup + $p2_ce, 30),
   'replayed messages with a handled ce_id are skipped');

# A raw (bytea) consumer of a topic that does not exist yet: reported, then picked up.
$node->safe_psql('postgres',
  q{SELECT consistency.create_consumer('raw-in', ARRAY['blobs'], 'handle_raw(text,int,bigint,text,bytea,jsonb)')});
ok(wait_until($node, q{SELECT status FROM consistency.consumers WHERE name = 'raw-in'}, 'failed', 30),
   'a missing topic is reported as failed');
like($node->safe_psql('postgres', q{SELECT last_error FROM consistency.consumers WHERE name = 'raw-in'}),
     qr/topic "blobs" does not exist/, 'last_error names the missing topic');
$kafka->create_topic('blobs', 1);
$kafka->produce('blobs', { key => 'b', value => "\x01\x02 not json" });
ok(wait_until($node, q{SELECT encode(value, 'hex') FROM raw_seen}, '0102206e6f74206a736f6e', 30),
   'the topic is picked up once it exists; the bytea handler gets the raw bytes');

# Lag reaches 0 on a topic written by the exactly_once relay (transaction markers).
$node->safe_psql('postgres', q{
  CREATE TABLE relayed (n int);
  CREATE FUNCTION handle_relayed(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE sql AS $$ INSERT INTO public.relayed VALUES ((value->>'n')::int) $$;
  SELECT consistency.create_consumer('relayed-in', ARRAY['relayed'], 'handle_relayed(text,int,bigint,text,jsonb,jsonb)');
  SELECT consistency.publish('relayed', 'k' || g % 5, jsonb_build_object('n', g)) FROM generate_series(1, 50) g;
});
ok(wait_until($node, q{SELECT count(*) FROM relayed}, '50', 60), 'messages of the exactly_once relay consumed')
  or diag($node->safe_psql('postgres', q{SELECT * FROM consistency.consumers WHERE name = 'relayed-in'}));
ok(wait_until($node, q{SELECT lag FROM consistency.consumers WHERE name = 'relayed-in'}, '0', 15),
   'lag reaches 0 past transaction markers')
  or diag($node->safe_psql('postgres', q{SELECT * FROM consistency.consumer_offsets WHERE consumer = 'relayed-in'}));

# Drop: the consumer and its rows go; the process lets it go.
$node->safe_psql('postgres', q{SELECT consistency.drop_consumer('orders-in')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.consumer_offsets WHERE consumer = 'orders-in'}), '0',
   'dropped with its offsets');
my @integrity = split /\n/, $node->safe_psql('postgres',
  q{SELECT check_name FROM consistency.check_integrity() WHERE NOT ok AND check_name LIKE 'inbox%'});
is(scalar @integrity, 0, 'integrity checks pass') or diag(join ',', @integrity);
is($node->safe_psql('postgres', q{SELECT count(*) FROM consistency.workers WHERE kind LIKE '%consumer%' AND pid IS NOT NULL}),
   '1', 'one consumer process runs');

$node->stop;
$kafka->stop;
done_testing();
