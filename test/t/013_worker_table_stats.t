# Background processes report their table statistics (found by scripts/soak): autovacuum
# learns of the rows they insert and delete only so; relay_batches and consumer_dedupe,
# written by nobody else, would otherwise bloat for ever.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(wait_until worker_pid);
use PgcRelay qw(relay_node publish_sequences wait_drained);

my $kafka = PgcKafka->start;
my $node = relay_node('worker_table_stats', $kafka, mode => 'exactly_once', batch_size => 50);
$node->safe_psql('postgres', q{
  CREATE TABLE public.seen (n bigint NOT NULL);
  INSERT INTO public.seen VALUES (0);
  CREATE FUNCTION public.count_message(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE sql AS $$ UPDATE public.seen SET n = n + 1 $$;
  SELECT consistency.create_consumer('counter', ARRAY['stats'], 'public.count_message(text,int,bigint,text,jsonb,jsonb)');
});

# Work in many small transactions: many relay batches, consumer batches and worker rounds.
sub round_of_work {
  my ($first) = @_;
  publish_sequences($node, 'stats', keys => 10, per_key => 300, txn => 10, first => $first);
  ok(wait_drained($node, 120), "outbox drained after 3,000 messages from $first");
  ok(wait_until($node, 'SELECT n FROM seen', $first + 3000, 120), 'the consumer handled them');
}

round_of_work(0);
my $pid = worker_pid($node);
round_of_work(3000);
is(worker_pid($node), $pid, 'the same worker did all the work');

# Only our processes write these tables: their rows show in pg_stat_user_tables only if the
# processes report. Reports are sent at most once a second, so wait for them.
for my $t (qw(relay_batches consumer_dedupe)) {
  ok(wait_until($node,
       "SELECT n_tup_ins > 0 FROM pg_stat_user_tables WHERE relid = 'consistency.$t'::regclass", 't', 30),
     "inserts into $t are counted in pg_stat_user_tables");
}
ok(wait_until($node,
     "SELECT n_tup_del >= 6000 FROM pg_stat_user_tables WHERE relid = 'consistency.outbox'::regclass", 't', 30),
   "the relay's deletes from the outbox are counted");
ok(wait_until($node,
     "SELECT n_tup_del > 0 FROM pg_stat_user_tables WHERE relid = 'consistency.relay_batches'::regclass", 't', 30),
   "the relay's deletes from relay_batches are counted");

$node->stop;
$kafka->stop;
done_testing();
