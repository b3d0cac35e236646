# Correlation and causation ids end to end with a real broker: a consumer handler that
# publishes and appends (its events routed to Kafka), a subscription handler that
# publishes, and a saga started with a correlation id; the messages read back from Kafka
# carry correlation_id and causation_id headers, and a message handled after them in the
# same consumer process carries only its own.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcKafka;
use PgcCluster qw(new_node wait_until);

my $kafka = PgcKafka->start;
my $node = new_node('correlation', conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n");
$kafka->create_topic($_, 1) for qw(corr.in corr.out corr.routed corr.fromsub corr.commands);
sub Q { return $node->safe_psql('postgres', $_[0]) }

# The messages of $topic once there are at least $n of them (or what is there after 60 s).
sub messages {
  my ($topic, $n) = @_;
  my $deadline = time + 60;
  my $msgs = [];
  while (time < $deadline) {
    $msgs = $kafka->consume($topic, timeout => 30);
    last if @$msgs >= $n;
    usleep(200_000);
  }
  return $msgs;
}

sub ids { my $h = shift->{headers}; return ($h->{correlation_id} // '-') . ' / ' . ($h->{causation_id} // '-') }

Q(q{
  CREATE FUNCTION on_message(topic text, partition int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE plpgsql AS $$ BEGIN
      PERFORM consistency.publish('corr.out', key, value);
      PERFORM consistency.append_event('corrin-' || key, NULL, 'Handled', '{}');
    END $$;
  CREATE FUNCTION on_event(global_position bigint, stream text, version bigint, type text, data jsonb, metadata jsonb)
    RETURNS void LANGUAGE plpgsql AS $$ BEGIN
      PERFORM consistency.publish('corr.fromsub', stream, data);
    END $$;
  SELECT consistency.route_events('corrin', 'corr.routed');
  SELECT consistency.create_consumer('corr-in', ARRAY['corr.in'], 'on_message(text,int,bigint,text,jsonb,jsonb)');
  SELECT consistency.create_subscription('corr-sub', 'on_event(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['corrsub']);
  SELECT consistency.define_saga('corr_saga', '{"steps": [
    {"name": "ship", "action": {"topic": "corr.commands", "command": "Ship"}, "timeout": "1 hour"}]}');
});
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets WHERE consumer = 'corr-in'}, '1', 30),
   'the consumer took its partition');

# --- A consumer handler that publishes and appends. -------------------------------------
$kafka->produce('corr.in', { key => 'a', value => '{"n": 1}', headers => [ce_id => 'm-1', correlation_id => 'req-in'] });
$kafka->produce('corr.in', { key => 'b', value => '{"n": 2}', headers => [ce_id => 'm-2'] });
$kafka->produce('corr.in', { key => 'c', value => '{"n": 3}' });
my $out = messages('corr.out', 3);
is(scalar @$out, 3, 'the handler published three messages, relayed to Kafka');
my %by_key = map { $_->{key} => $_ } @$out;
is(ids($by_key{a}), 'req-in / m-1', 'the incoming correlation_id is inherited; causation = the incoming ce_id');
is(ids($by_key{b}), 'm-2 / m-2', 'without an incoming correlation_id the message starts one: its ce_id');
is(ids($by_key{c}), 'corr.in/0/2 / corr.in/0/2',
   'a message without ce_id is known by its coordinates; nothing of the earlier messages leaks into it');
is(Q(q{SELECT string_agg(stream || ' ' || (metadata->>'correlation_id') || ' ' || (metadata->>'causation_id'), ', '
         ORDER BY global_position) FROM consistency.events WHERE stream LIKE 'corrin-%'}),
   'corrin-a req-in m-1, corrin-b m-2 m-2, corrin-c corr.in/0/2 corr.in/0/2',
   'the events the handler appended carry the same ids in their metadata');
my $routed = messages('corr.routed', 3);
is(join(', ', map { "$_->{key} " . ids($_) } sort { $a->{key} cmp $b->{key} } @$routed),
   'corrin-a req-in / m-1, corrin-b m-2 / m-2, corrin-c corr.in/0/2 / corr.in/0/2',
   'routed to Kafka, those events carry them as headers');

# --- A subscription handler that publishes. ---------------------------------------------
Q(q{SELECT consistency.append_event('corrsub-1', NULL, 'Happened', '{"x": 1}', '{"correlation_id": "req-sub"}')});
my $event_id = Q(q{SELECT event_id FROM consistency.events WHERE stream = 'corrsub-1'});
my $sub = messages('corr.fromsub', 1);
is(scalar @$sub, 1, 'the subscription handler published one message');
is(ids($sub->[0]), "req-sub / $event_id", 'it carries the event\'s correlation_id, and the event id as causation');

# --- A saga started with a correlation id. ----------------------------------------------
my $saga = Q(q{BEGIN; SET LOCAL pg_consistency.correlation_id = 'req-saga';
               SELECT consistency.start_saga('corr_saga', '{"order": 1}'); COMMIT;});
my $cmd = messages('corr.commands', 1);
is(scalar @$cmd, 1, 'the saga sent its command');
is($cmd->[0]{headers}{saga_id}, $saga, 'the command of that saga');
is(ids($cmd->[0]), "req-saga / $saga", 'the command carries the correlation id the saga was started with; causation = the saga');
is(Q(qq{SELECT correlation_id FROM consistency.saga_instances WHERE id = '$saga'}), 'req-saga', 'stored with the saga');

# --- Outside handlers after all that: nothing in effect in a new session. ---------------
is(Q(q{BEGIN; CREATE TEMP TABLE p AS SELECT consistency.publish('corr.none', 'k', '{}'::jsonb) AS id;
       SELECT o.headers FROM consistency.outbox o JOIN p USING (id); ROLLBACK;}), '{}',
   'a publish outside any handler and without the setting carries no ids');

$node->stop;
$kafka->stop;
done_testing();
