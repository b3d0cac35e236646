# A consumer batch runs its messages in one subtransaction and falls back to one
# message alone only where a run fails. With a backlog in one batch: a failing message
# in the middle, a message failing once, a non-JSON value and a re-delivered ce_id:
# every other message is applied exactly once and in offset order, the failing one is
# called once per attempt (never twice for one attempt) and dead-lettered after its
# attempts, the flaky one applied at its retry, the offsets and counters exact. The same
# for a SQL-language handler (its cached plan outlives a rolled-back run).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(new_node wait_until);

my $kafka = PgcKafka->start;
my $node = new_node('inbox_batch_runs', conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
  . "pg_consistency.consumer_batch_size = 100\n"
  . "pg_consistency.consumer_max_attempts = 3\n"
  . "pg_consistency.consumer_retry_backoff = '100ms'\n"
  . "pg_consistency.consumer_max_retry_backoff = '300ms'\n");
$kafka->create_topic('runs', 2);

# Partition 0: 40 messages; 12 re-sends the ce_id of 3, 20 always fails, 28 is not JSON,
# 33 fails at its first call only. Partition 1: 10 plain messages.
my @p0;
for my $i (0 .. 39) {
  my $value = $i == 20 ? qq({"n": "x", "bad": true})
            : $i == 28 ? 'not json {'
            : $i == 33 ? qq({"n": $i, "flaky": true})
            :            qq({"n": $i});
  my %m = (key => "k$i", value => $value, partition => 0);
  $m{headers} = [ce_id => 'id-' . ($i == 12 ? 3 : $i)] if $i < 16;
  push @p0, \%m;
}
$kafka->produce('runs', @p0, map { { key => "q$_", value => qq({"n": $_}), partition => 1 } } 0 .. 9);

$node->safe_psql('postgres', q{
  CREATE SEQUENCE bad_calls;
  CREATE SEQUENCE flaky_calls;
  CREATE TABLE seen (seq bigserial, part int, off bigint, n int);
  CREATE TABLE sql_seen (seq bigserial, part int, off bigint, n int);
  -- A sequence counts calls whose effects were rolled back too.
  CREATE FUNCTION handle(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE plpgsql AS $$ BEGIN
      IF value ? 'bad' THEN PERFORM nextval('public.bad_calls'); RAISE EXCEPTION 'bad message'; END IF;
      IF value ? 'flaky' AND nextval('public.flaky_calls') = 1 THEN RAISE EXCEPTION 'not yet'; END IF;
      INSERT INTO public.seen (part, off, n) VALUES (partition, "offset", (value->>'n')::int);
    END $$;
  CREATE FUNCTION handle_sql(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE sql AS $$ INSERT INTO public.sql_seen (part, off, n) VALUES (partition, "offset", (value->>'n')::int) $$;
  SELECT consistency.create_consumer('runs-in', ARRAY['runs'], 'handle(text,int,bigint,text,jsonb,jsonb)');
  SELECT consistency.create_consumer('runs-sql', ARRAY['runs'], 'handle_sql(text,int,bigint,text,jsonb,jsonb)');
});

my $offsets = q{SELECT string_agg(partition || ':' || next_offset || ':' || attempts, ',' ORDER BY partition)
  FROM consistency.consumer_offsets WHERE consumer = '%s'};
ok(wait_until($node, sprintf($offsets, 'runs-in'), '0:40:0,1:10:0', 60), 'plpgsql consumer: offsets at the end, no attempts left')
  or diag($node->safe_psql('postgres', 'SELECT * FROM consistency.consumers'));
ok(wait_until($node, sprintf($offsets, 'runs-sql'), '0:40:0,1:10:0', 60), 'SQL consumer: offsets at the end, no attempts left')
  or diag($node->safe_psql('postgres', 'SELECT * FROM consistency.consumers'));

for my $t (['seen', 'runs-in'], ['sql_seen', 'runs-sql']) {
  my ($table, $consumer) = @$t;
  is($node->safe_psql('postgres', "SELECT count(*) || '/' || count(DISTINCT (part, off)) FROM $table"), '47/47',
     "$consumer: 47 messages applied, each once (not the duplicate, the failing one, the non-JSON one)");
  is($node->safe_psql('postgres', qq{
    SELECT count(*) FROM (SELECT off, lag(off) OVER (PARTITION BY part ORDER BY seq) AS prev FROM $table) s
     WHERE prev IS NOT NULL AND off <= prev}), '0', "$consumer: applied in offset order per partition");
  is($node->safe_psql('postgres', qq{SELECT string_agg(off::text, ',' ORDER BY off) FROM $table
     WHERE part = 0 AND off IN (11, 12, 13, 19, 20, 21, 27, 28, 29, 33)}), '11,13,19,21,27,29,33',
     "$consumer: around the skipped messages everything is there, the flaky one too");
  my $why = $consumer eq 'runs-in' ? 'bad message' : 'invalid input syntax for type integer';
  is($node->safe_psql('postgres', qq{SELECT string_agg("offset" || ':' || CASE
       WHEN reason LIKE 'after 3 attempts: $why%' THEN 'after 3 attempts'
       WHEN reason LIKE 'CS002: the message value is not valid JSON%' THEN 'CS002' ELSE reason END, ',' ORDER BY "offset")
     FROM consistency.consumer_dead_letters WHERE consumer = '$consumer'}),
     '20:after 3 attempts,28:CS002',
     "$consumer: the failing message dead-lettered after its 3 attempts, the non-JSON one at once");
  is($node->safe_psql('postgres', qq{SELECT consumed || '/' || failed || '/' || dead_lettered || '/' || deduplicated
     FROM consistency.consumers WHERE name = '$consumer'}),
     $consumer eq 'runs-in' ? '47/4/2/1' : '47/3/2/1', "$consumer: consumed/failed/dead-lettered/deduplicated counted once each");
}
is($node->safe_psql('postgres', q{SELECT last_value FROM bad_calls}), '3',
   'the failing message was called once per attempt (a failed run is not charged twice)');
is($node->safe_psql('postgres', q{SELECT last_value FROM flaky_calls}), '2', 'the flaky message: one failure, one success');

# The batch keeps going after the dead letters: a new message on partition 0 is applied.
$kafka->produce('runs', { key => 'late', value => '{"n": 40}', partition => 0 });
ok(wait_until($node, q{SELECT count(*) FROM seen WHERE off = 40}, '1', 30), 'a later message is applied');

$node->stop;
$kafka->stop;
done_testing();
