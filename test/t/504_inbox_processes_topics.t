# More than one consumer process, and topics that change under a consumer. With
# pg_consistency.consumer_workers = 2 and six consumers, each consumer is served by
# exactly one process (the one the stable hash of its name picks; both processes are
# used) and every message takes effect exactly once. Partitions added to a topic are
# picked up (from start_from); a topic deleted under a consumer is reported in
# consistency.consumers while its other topic goes on, without spinning. Idle, the
# processes sleep on their latch and librdkafka's wake-up pipe.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;
use PgcKafka;
use PgcCluster qw(new_node wait_until);

my $kafka = PgcKafka->start;
my $node = new_node('inbox_processes', conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
  . "pg_consistency.consumer_workers = 2\n");
sub q1 { return $node->safe_psql('postgres', $_[0]); }

# The process a consumer belongs to: FNV-1a of its name, modulo 2, plus 1.
sub owner_process {
  my $h = 2166136261;
  for my $c (unpack 'C*', $_[0]) { $h ^= $c; $h = ($h * 16777619) % 4294967296; }
  return $h % 2 + 1;
}
my @names = map { "c$_" } 1 .. 6;
my %expected = map { $_ => owner_process($_) } @names;
my %procs = map { $_ => 1 } values %expected;
is(scalar keys %procs, 2, 'the six names spread over both processes');

$kafka->create_topic("t$_", 2) for 1 .. 6;
q1(q{
  CREATE TABLE seen (consumer text, part int, off bigint, n int, pid int);
  CREATE FUNCTION record(topic text, part int, off bigint, k text, v jsonb, h jsonb) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO public.seen VALUES (h->>'consumer', part, off, (v->>'n')::int, pg_catalog.pg_backend_pid()) $$;
});
q1("SELECT consistency.create_consumer('$_', ARRAY['t" . substr($_, 1) . "'], 'record(text,int,bigint,text,jsonb,jsonb)')")
  for @names;
ok(wait_until($node, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer'}, '2', 30),
   'two consumer processes run');
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets}, '12', 60), 'every partition assigned')
  or diag(q1('SELECT * FROM consistency.consumers'));

for my $i (1 .. 6) {
  $kafka->produce("t$i", map { { key => "k$_", value => qq({"n": $_}), partition => $_ % 2, headers => [consumer => "c$i"] } } 1 .. 200);
}
ok(wait_until($node, 'SELECT count(*) FROM seen', '1200', 90), 'all 1200 messages applied')
  or diag(q1('SELECT name, lag, last_error FROM consistency.consumers'));
is(q1('SELECT count(*) FROM (SELECT DISTINCT consumer, part, off FROM seen) s'), '1200', 'each exactly once');
is(q1('SELECT count(*) FROM (SELECT consumer FROM seen GROUP BY consumer HAVING count(DISTINCT pid) <> 1) s'), '0',
   'each consumer served by one process');
my %pid_of = map { split /\|/ } split /\n/, q1('SELECT DISTINCT consumer, pid FROM seen');
my %pid_group;
push @{ $pid_group{ $expected{$_} } }, $pid_of{$_} for @names;
my @distinct = map { my %u = map { $_ => 1 } @$_; scalar keys %u } values %pid_group;
is_deeply([sort @distinct], [1, 1], 'consumers of the same hashed process share its pid');
isnt($pid_group{1}[0], $pid_group{2}[0], 'the two processes are different backends');
is(q1(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer' AND pid IN (SELECT pid FROM seen)}),
   '2', 'they are the consumer processes');

# Partitions added to a topic are picked up; a deleted topic is reported, the other goes on.
$kafka->create_topic('grow', 1);
$kafka->create_topic('doomed', 1);
q1(q{
  CREATE TABLE mixed (topic text, part int, n int);
  CREATE FUNCTION mix(topic text, part int, off bigint, k text, v jsonb, h jsonb) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO public.mixed VALUES (topic, part, (v->>'n')::int) $$;
  SELECT consistency.create_consumer('mixed', ARRAY['grow', 'doomed'], 'mix(text,int,bigint,text,jsonb,jsonb)');
});
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets WHERE consumer = 'mixed'}, '2', 60),
   'mixed: two partitions assigned');
$kafka->produce('doomed', { key => 'd', value => '{"n": 1}' });
ok(wait_until($node, q{SELECT count(*) FROM mixed WHERE topic = 'doomed'}, '1', 30), 'doomed: consumed while it exists');

$kafka->add_partitions('grow', 3);
$kafka->produce('grow', map { { key => "g$_", value => qq({"n": $_}), partition => $_ } } 0 .. 2);
ok(wait_until($node, q{SELECT string_agg(part::text, ',' ORDER BY part) FROM mixed WHERE topic = 'grow'}, '0,1,2', 60),
   'grow: the added partitions are picked up and read from their start')
  or diag(q1(q{SELECT * FROM consistency.consumer_offsets WHERE consumer = 'mixed'}));
is(q1(q{SELECT count(*) FROM consistency.consumer_offsets WHERE consumer = 'mixed' AND topic = 'grow'}), '3',
   'grow: three stored offsets');

$kafka->delete_topic('doomed');
ok(wait_until($node, q{SELECT status FROM consistency.consumers WHERE name = 'mixed'}, 'failed', 60),
   'a deleted topic is reported as failed')
  or diag(q1(q{SELECT * FROM consistency.consumers WHERE name = 'mixed'}));
like(q1(q{SELECT last_error FROM consistency.consumers WHERE name = 'mixed'}), qr/topic "doomed" does not exist/,
     'last_error names the deleted topic');
$kafka->produce('grow', { key => 'after', value => '{"n": 9}', partition => 0 });
ok(wait_until($node, q{SELECT count(*) FROM mixed WHERE topic = 'grow' AND n = 9}, '1', 30),
   'the consumer goes on with its other topic');
my $ticks0 = q1(q{SELECT sum(ticks) FROM consistency.workers WHERE kind LIKE '%consumer%'});
sleep 2;    # deliberate: the window over which rounds are counted
my $ticks1 = q1(q{SELECT sum(ticks) FROM consistency.workers WHERE kind LIKE '%consumer%'});
cmp_ok($ticks1 - $ticks0, '<', 200, 'no spinning over the deleted topic (' . ($ticks1 - $ticks0) . ' rounds in 2 s)');

# Idle, the processes sleep on their latch and librdkafka's wake-up pipe (a wait event of
# ours), not inside librdkafka's poll (where a process with consumers used to wait, never
# on its latch). Half is the bar: on a busy machine a sample can catch a round.
my $sleeping = 0;
for (1 .. 20) {
  $sleeping += q1(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer'
                     AND wait_event_type = 'Extension'});
  Time::HiRes::usleep(100_000);
}
cmp_ok($sleeping, '>=', 20, "idle consumer processes wait on their latch and pipe ($sleeping of 40 samples)");

$node->stop;
$kafka->stop;
done_testing();
