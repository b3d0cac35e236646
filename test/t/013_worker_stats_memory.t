# What a long run needs from the worker loop (both found by scripts/soak): background
# processes report their table statistics, so autovacuum learns of the rows they delete
# (relay_batches, consumer_dedupe would otherwise bloat for ever), and what a task allocates
# between its transactions is freed each round instead of piling up in TopMemoryContext.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcKafka;
use PgcCluster qw(wait_until worker_pid);
use PgcRelay qw(relay_node publish_sequences wait_drained);

my $kafka = PgcKafka->start;
my $node = relay_node('worker_stats_memory', $kafka, mode => 'exactly_once', batch_size => 50);
$node->safe_psql('postgres', q{
  CREATE TABLE public.seen (n bigint NOT NULL);
  INSERT INTO public.seen VALUES (0);
  CREATE FUNCTION public.count_message(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE sql AS $$ UPDATE public.seen SET n = n + 1 $$;
  SELECT consistency.create_consumer('counter', ARRAY['stats'], 'public.count_message(text,int,bigint,text,jsonb,jsonb)');
});

# Bytes used directly in the worker's TopMemoryContext, from pg_log_backend_memory_contexts.
sub top_context_used {
  my ($pid) = @_;
  my $from = -s $node->logfile;
  $node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
  my $deadline = time + 30;
  while (time < $deadline) {
    my $log = slurp_file($node->logfile, $from);
    return $1 if $log =~ /\[$pid\][^\n]*level: 0; TopMemoryContext: [^\n]*; (\d+) used/;
    usleep(100_000);
  }
  return undef;
}

# Work in many small transactions: many relay batches, consumer batches and worker rounds.
sub round_of_work {
  my ($first) = @_;
  publish_sequences($node, 'stats', keys => 10, per_key => 300, txn => 10, first => $first);
  ok(wait_drained($node, 120), "outbox drained after 3,000 messages from $first");
  ok(wait_until($node, 'SELECT n FROM seen', $first + 3000, 120), 'the consumer handled them');
}

round_of_work(0);
my $pid = worker_pid($node);
my $before = top_context_used($pid);
ok(defined $before, "worker $pid logged its memory contexts");
round_of_work(3000);
round_of_work(6000);
my $after = top_context_used($pid);
is(worker_pid($node), $pid, 'the same worker did all the work');
note("worker TopMemoryContext used: $before -> $after bytes over 6,000 messages");
cmp_ok($after - $before, '<', 32 * 1024, 'TopMemoryContext of the worker did not grow with the work');

# Only our processes write these tables: their rows show in pg_stat_user_tables only if the
# processes report. Reports are sent at most once a second, so wait for them.
for my $t (qw(relay_batches consumer_dedupe)) {
  ok(wait_until($node,
       "SELECT n_tup_ins > 0 FROM pg_stat_user_tables WHERE relid = 'consistency.$t'::regclass", 't', 30),
     "inserts into $t are counted in pg_stat_user_tables");
}
ok(wait_until($node,
     "SELECT n_tup_del >= 9000 FROM pg_stat_user_tables WHERE relid = 'consistency.outbox'::regclass", 't', 30),
   "the relay's deletes from the outbox are counted");
ok(wait_until($node,
     "SELECT n_tup_del > 0 FROM pg_stat_user_tables WHERE relid = 'consistency.relay_batches'::regclass", 't', 30),
   "the relay's deletes from relay_batches are counted");

$node->stop;
$kafka->stop;
done_testing();
