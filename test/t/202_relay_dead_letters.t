# Poison messages: a message Kafka refuses for good goes to consistency.dead_letters with
# the reason after relay_max_attempts, the others keep flowing (in per-key order), and
# retry_dead_letters() re-queues it. Both the client-side limit (message.max.bytes) and
# the broker's own limit (a topic's max.message.bytes), in both relay modes.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(wait_until);
use PgcRelay qw(relay_node wait_drained relay_status);

my $kafka = PgcKafka->start;
my $node  = relay_node('relay_dead', $kafka, batch_size => 100,
  conf => "pg_consistency.relay_max_attempts = 3\n");

# A topic whose broker-side limit is 20 kB: the client lets 60 kB through, the broker refuses it.
$kafka->create_topic('small_limit', 1, 'max.message.bytes=20000');

sub run_case {
  my ($mode, $topic, $big_sql, $why_re) = @_;
  my $log_offset = -s $node->logfile;
  my $before = $node->safe_psql('postgres', 'SELECT dead_lettered_total FROM consistency.relay_stats');
  my $ids = $node->safe_psql('postgres', qq{
    SELECT string_agg(id::text, ',' ORDER BY id) FROM (
      SELECT consistency.publish('$topic', 'A', '{"a": 1}'::jsonb) AS id
      UNION ALL SELECT consistency.publish('$topic', 'B', '{"b": 1}'::jsonb)
      UNION ALL SELECT consistency.publish('$topic', 'A', $big_sql)
      UNION ALL SELECT consistency.publish('$topic', 'B', '{"b": 2}'::jsonb)
      UNION ALL SELECT consistency.publish('$topic', 'A', '{"a": 3}'::jsonb)
      UNION ALL SELECT consistency.publish('$topic', 'C', '{"c": 1}'::jsonb)) s});
  my ($a1, $b1, $big, $b2, $a3, $c1) = split /,/, $ids;
  ok(wait_drained($node, 60), "$mode/$topic: the outbox empties");
  is($node->safe_psql('postgres', "SELECT count(*) FROM consistency.dead_letters WHERE topic = '$topic'"), '1',
     "$mode/$topic: one dead letter");
  my ($id, $attempts, $reason) = split /\|/,
    $node->safe_psql('postgres', "SELECT id, attempts, reason FROM consistency.dead_letters WHERE topic = '$topic'");
  is($id, $big, "$mode/$topic: it is the oversize message");
  is($attempts, 3, "$mode/$topic: after relay_max_attempts attempts");
  like($reason, $why_re, "$mode/$topic: the reason is recorded ($reason)");
  is($node->safe_psql('postgres', 'SELECT dead_lettered_total FROM consistency.relay_stats'), $before + 1,
     "$mode/$topic: dead_lettered_total counts it");
  like(slurp_file($node->logfile, $log_offset), qr/WARNING:.*outbox message $big \(topic "$topic"\) moved to consistency\.dead_letters after 3 attempts/,
       "$mode/$topic: dead-lettering is logged");

  my @got = map { [$_->{key}, $_->{headers}{outbox_id}] } @{ $kafka->consume($topic) };
  my %seen;
  my @distinct = grep { !$seen{ $_->[1] }++ } @got;
  is(join(' ', map { "$_->[0]:$_->[1]" } grep { $_->[0] eq 'A' } @distinct), "A:$a1 A:$a3",
     "$mode/$topic: key A got its other messages, in order");
  is(join(' ', map { $_->[1] } grep { $_->[0] eq 'B' } @distinct), "$b1 $b2", "$mode/$topic: key B flowed");
  is(join(' ', map { $_->[1] } grep { $_->[0] eq 'C' } @distinct), "$c1", "$mode/$topic: key C flowed");
  is(scalar(grep { $_->[1] eq $big } @got), 0, "$mode/$topic: the refused message is not in the topic");
  is(scalar @got, 5, "$mode/$topic: no duplicates") if $mode eq 'exactly_once';

  # Re-queue: it is tried again (and refused again), keeping its id.
  is($node->safe_psql('postgres', "SELECT consistency.retry_dead_letters('$topic')"), '1', "$mode/$topic: re-queued");
  ok(wait_until($node, "SELECT attempts FROM consistency.dead_letters WHERE id = $big", '3', 60),
     "$mode/$topic: tried again and dead-lettered again with the same id");
  is($node->safe_psql('postgres', 'SELECT dead_lettered_total FROM consistency.relay_stats'), $before + 2,
     "$mode/$topic: counted again");
}

run_case('at_least_once', 'poison_client', q{convert_to(repeat('x', 2000000), 'UTF8')}, qr/too large/i);
run_case('at_least_once', 'small_limit', q{convert_to(repeat('y', 60000), 'UTF8')}, qr/too large/i);

$node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.relay_mode = 'exactly_once'; SELECT pg_reload_conf()");
ok(wait_until($node, "SELECT relay_mode || '/' || relay_state FROM consistency._relay_runtime()", 'exactly_once/running', 60),
   'switched to exactly_once');
$kafka->create_topic('small_limit2', 1, 'max.message.bytes=20000');
run_case('exactly_once', 'poison_client2', q{convert_to(repeat('x', 2000000), 'UTF8')}, qr/too large/i);
run_case('exactly_once', 'small_limit2', q{convert_to(repeat('y', 60000), 'UTF8')}, qr/too large/i);

my ($pending, undef, $dead, $state) = split /\|/, relay_status($node);
is("$pending/$dead/$state", '0/4/running', 'status: nothing pending, four dead letters, running');

$node->stop;
$kafka->stop;
done_testing();
