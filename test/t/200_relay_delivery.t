# The relay in at_least_once mode against a real broker: 10,000 messages over 100 keys
# all arrive, in per-key order, on the partition a Java client would choose, with the
# contract's headers; a rolled-back publish never appears; an idle relay is woken at
# commit (not by its poll); routes of bytes, null keys and null payloads are exact.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use JSON::PP;
use PgcKafka;
use PgcCluster qw(wait_until);
use PgcRelay qw(relay_node publish_sequences wait_drained check_delivery relay_status);

my $kafka = PgcKafka->start;
# A long poll interval: prompt delivery below can only come from the commit-time wake-up.
my $node = relay_node('relay_delivery', $kafka, conf => "pg_consistency.poll_interval = '10s'\n");
is($node->safe_psql('postgres', 'SELECT relay_state FROM consistency.outbox_status'), 'running', 'relay running');

# A rolled-back publish, then the bulk.
$node->safe_psql('postgres', q{BEGIN; SELECT consistency.publish('orders', 'ghost', '{"rolled": "back"}'::jsonb); ROLLBACK;});
my $t0 = time;
my $n = publish_sequences($node, 'orders', keys => 100, per_key => 100, txn => 500);
# The rolled-back publish used id 1 of the sequence: the bulk holds the last 10,000 ids.
my @ids = split /\n/, $node->safe_psql('postgres',
  'SELECT generate_series(last_value - 9999, last_value) FROM consistency.outbox_id_seq');
ok(wait_drained($node, 120), "outbox drained after publishing $n messages");
note(sprintf('10,000 messages published and relayed in %.1f s', time - $t0));

my $r = check_delivery($kafka, 'orders', ids => \@ids);
is($r->{missing}, 0, 'every outbox id arrived') or diag("first missing: $r->{first_missing}");
is($r->{distinct}, 10000, '10,000 distinct messages');
is($r->{duplicates}, 0, 'no duplicates in a healthy run');
is($r->{order_violations}, 0, 'per-key outbox order kept') or diag($r->{first_bad}{order});
is($r->{bad_headers}, 0, 'every message carries the contract headers') or diag($r->{first_bad}{headers});
is(scalar(grep { ($_->{key} // '') eq 'ghost' } @{ $r->{msgs} }), 0, 'the rolled-back publish never appeared');

# Per-key payload sequence and Java-compatible partitions.
my $json = JSON::PP->new;
my (%seqs, %parts);
for my $m (@{ $r->{msgs} }) {
  push @{ $seqs{ $m->{key} } }, $json->decode($m->{value})->{seq};
  $parts{ $m->{key} }{ $m->{partition} } = 1;
}
is(scalar(keys %seqs), 100, '100 keys');
my $seq_ok = grep { join(',', @{ $seqs{$_} }) eq join(',', 0 .. 99) } keys %seqs;
is($seq_ok, 100, 'every key received seq 0..99 in order');
is(scalar(grep { keys %{ $parts{$_} } != 1 } keys %parts), 0, 'each key stayed on one partition');
my $expected_parts = $node->safe_psql('postgres',
  "SELECT string_agg(k || '=' || consistency.kafka_partition(k, 4), ',' ORDER BY k) FROM (SELECT 'key-' || g AS k FROM generate_series(0, 99) g) s");
my $got_parts = join(',', map { "$_=" . (keys %{ $parts{$_} })[0] } sort keys %parts);
is($got_parts, $expected_parts, 'every key on the partition Java\'s murmur2 partitioner chooses');
is(scalar(keys %{ { map { $_->{partition} => 1 } @{ $r->{msgs} } } }), 4, 'the relay created the topic with topic_partitions = 4');

# Headers of one message in detail.
my ($m) = grep { $_->{headers}{outbox_id} eq $ids[4] } @{ $r->{msgs} };
is($m->{headers}{ce_id}, $ids[4], 'ce_id defaults to the outbox id');
is($m->{headers}{ce_type}, 'orders', 'ce_type defaults to the topic');
is($m->{headers}{ce_source}, '/pg_consistency/postgres', 'ce_source names the database');
is($m->{headers}{'content-type'}, 'application/json', 'content-type of a jsonb payload');
is($m->{headers}{batch_start}, '0', "the row's own headers follow");
is($m->{header_list}[0], 'outbox_id', 'outbox_id comes first');

# Exact bytes, null key and payload, caller's CloudEvents headers.
$node->safe_psql('postgres', q{
  SELECT consistency.publish('exact', 'bin', '\x00010a7fc3a9'::bytea, '{"trace": "t-1", "n": 5, "nothing": null}');
  SELECT consistency.publish('exact', NULL, '{"nokey": true}'::jsonb);
  SELECT consistency.publish('exact', 'tomb', NULL::bytea);
  SELECT consistency.publish('exact', 'ce', '{}'::jsonb, '{"ce_type": "order.placed", "ce_id": "evt-9", "ce_source": "/shop", "content-type": "application/cloudevents+json"}');
});
ok(wait_drained($node, 30), 'small messages drained');
my $ex = $kafka->consume('exact');
is(scalar @$ex, 4, 'four exact messages');
my %by = map { (($_->{key} // 'NULL') => $_) } @$ex;
# (kcat's JSON output is read as UTF-8: the bytes chosen here are valid UTF-8 but not text.)
is($by{bin}{value}, "\x00\x01\x0a\x7f\x{e9}", 'bytea payload delivered byte for byte');
is($by{bin}{headers}{'content-type'}, 'application/octet-stream', 'bytea content-type');
is($by{bin}{headers}{trace}, 't-1', 'string header');
is($by{bin}{headers}{n}, '5', 'number header as text');
ok(exists $by{bin}{headers}{nothing} && !defined $by{bin}{headers}{nothing}, 'JSON null header sent as a null header');
ok(!defined $by{NULL}{key}, 'NULL key sent as a null key');
ok(!defined $by{tomb}{value}, 'NULL payload sent as a tombstone');
is($by{ce}{headers}{ce_type}, 'order.placed', "caller's ce_type replaces the default");
is($by{ce}{headers}{ce_id}, 'evt-9', "caller's ce_id replaces the default");
is($by{ce}{headers}{ce_source}, '/shop', "caller's ce_source replaces the default");
is($by{ce}{headers}{'content-type'}, 'application/cloudevents+json', "caller's content-type replaces the default");
is(scalar(grep { $_ eq 'ce_type' } @{ $by{ce}{header_list} }), 1, 'no header is sent twice');

# Routed events reach Kafka: key = stream, value = data, CloudEvents headers from the event.
$node->safe_psql('postgres', q{
  SELECT consistency.route_events('order', 'order.events');
  SELECT consistency.append_events('order-77', 0,
    '[{"type": "OrderPlaced", "data": {"total": 5}}, {"type": "OrderPaid", "data": {"amount": 5}}]');
  SELECT consistency.append_event('order-78', 0, 'OrderPlaced', '{"total": 9}');
  SELECT consistency.append_event('invoice-1', 0, 'InvoiceIssued', '{}');
});
ok(wait_drained($node, 30), 'routed events drained');
my $ev = $kafka->consume('order.events');
is(scalar @$ev, 3, 'three routed events (the invoice category is not routed)');
my @o77 = grep { $_->{key} eq 'order-77' } @$ev;
is(join(',', map { $_->{headers}{ce_type} } @o77), 'OrderPlaced,OrderPaid', "one stream's events in order");
is($o77[0]{value}, '{"total": 5}', 'value is the event data');
my $eid = $node->safe_psql('postgres', "SELECT event_id FROM consistency.events WHERE stream = 'order-77' AND version = 1");
is($o77[0]{headers}{ce_id}, $eid, 'ce_id is the event id');
is($o77[0]{headers}{ce_subject}, 'order-77', 'ce_subject is the stream');
is($o77[1]{headers}{stream_version}, '2', 'stream_version header');
is($o77[0]{headers}{'content-type'}, 'application/json', 'content-type application/json');

# Commit-to-delivery on an idle relay (poll_interval is 10 s): woken at commit.
my @lat;
for my $i (1 .. 5) {
  usleep(300_000);    # deliberate: the relay goes idle (back in its 10 s wait) before each publish
  my $start = time;
  $node->safe_psql('postgres', "SELECT consistency.publish('idle', 'k', '{\"i\": $i}'::jsonb)");
  wait_until($node, 'SELECT pending FROM consistency.outbox_status', '0', 10)
    or fail("idle message $i was not delivered within 10 s: " . relay_status($node));
  push @lat, time - $start;
}
my ($worst) = sort { $b <=> $a } @lat;
note(sprintf('idle commit-to-ack (incl. psql round trips): %s ms', join(', ', map { sprintf '%.0f', $_ * 1000 } @lat)));
cmp_ok($worst, '<', 3, 'an idle relay delivers a new row without waiting for its 10 s poll');

# The contract's status after all this.
my ($pending, $delivered, $dead, $state) = split /\|/, relay_status($node);
is($pending, 0, 'nothing pending');
is($delivered, 10000 + 4 + 3 + 5, 'delivered_total counts every acknowledged message');
is($dead, 0, 'no dead letters');
is($state, 'running', 'relay running');
ok($node->safe_psql('postgres', 'SELECT last_delivery_at > now() - interval \'1 minute\' FROM consistency.outbox_status') eq 't',
   'last_delivery_at is recent');
like($node->safe_psql('postgres', 'SELECT consistency.metrics()'), qr/^pg_consistency_outbox_delivered_total 10012$/m,
     'metrics() exposes the relay counters');

# An invalid topic is refused at publish, with the worker running too.
my ($ret, $out, $err) = $node->psql('postgres', "SELECT consistency.publish('no such/topic', 'k', '{}'::jsonb)");
isnt($ret, 0, 'publish to an invalid topic fails');
like($err, qr/invalid topic "no such\/topic"/, 'the error names the topic');
my ($ret2, $out2, $err2) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT consistency.publish('no such/topic', 'k', '{}'::jsonb)");
like($err2, qr/CS002/, 'with SQLSTATE CS002');

$node->stop;
$kafka->stop;
done_testing();
