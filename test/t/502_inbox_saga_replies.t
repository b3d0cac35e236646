# Saga replies over Kafka with the inbox: the orchestrator (database orch) publishes its
# command through the relay; the inventory service (database inventory, same cluster,
# sharing nothing but Kafka) consumes it with an inbox handler and publishes its reply
# through its own outbox; the orchestrator's consumer runs consistency.handle_saga_reply,
# which completes or fails the step. A duplicate reply and a reply for an unknown saga
# are recorded in saga_reply_log, never fatal.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(new_node wait_until);
use PgcSaga qw(wait_terminal);

my $kafka = PgcKafka->start;
my $node = new_node('inbox_saga', databases => 'orch,inventory', start => 0,
  conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n");
$node->start;
for my $db ('orch', 'inventory') {
  $node->safe_psql('postgres', "CREATE DATABASE $db");
  $node->safe_psql($db, 'CREATE EXTENSION pg_consistency');
}
$kafka->create_topic($_, 2) for 'inventory.commands', 'inventory.replies';

# The service: reserves stock when it can and answers either way.
$node->safe_psql('inventory', q{
  CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0));
  INSERT INTO stock VALUES ('apple', 3);
  CREATE FUNCTION on_command(topic text, part int, off bigint, k text, v jsonb, h jsonb)
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE ok boolean;
    BEGIN
      UPDATE public.stock SET qty = qty - (v->'data'->>'qty')::int
       WHERE sku = v->'data'->>'sku' AND qty >= (v->'data'->>'qty')::int;
      ok := FOUND;
      PERFORM consistency.publish('inventory.replies', k,
        CASE WHEN ok THEN jsonb_build_object('reserved', v->'data'->>'qty')
             ELSE jsonb_build_object('reason', 'out of stock') END,
        jsonb_build_object('saga_id', h->>'saga_id', 'step', h->>'step', 'attempt', h->>'attempt',
                           'outcome', CASE WHEN ok THEN 'completed' ELSE 'failed' END));
    END $$;
  SELECT consistency.create_consumer('commands', ARRAY['inventory.commands'],
                                     'on_command(text,int,bigint,text,jsonb,jsonb)');
});
# The orchestrator.
$node->safe_psql('orch', q{
  SELECT consistency.define_saga('order', '{"steps": [
    {"name": "reserve", "action": {"topic": "inventory.commands", "command": "Reserve"},
     "timeout": "30 seconds", "retry": {"max_attempts": 1}}]}');
  SELECT consistency.create_consumer('replies', ARRAY['inventory.replies'],
                                     'consistency.handle_saga_reply(text,int,bigint,text,jsonb,jsonb)');
});

my $ok = $node->safe_psql('orch', q{SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 2}')});
is(wait_terminal($node, $ok, 60, 'orch'), 'completed', 'a completed reply over Kafka completes the saga')
  or diag($node->safe_psql('orch', 'SELECT * FROM consistency.consumers'));
is($node->safe_psql('inventory', q{SELECT qty FROM stock}), '1', 'the service reserved the stock once');
my $no = $node->safe_psql('orch', q{SELECT consistency.start_saga('order', '{"sku": "apple", "qty": 5}')});
my $end = wait_terminal($node, $no, 60, 'orch');
ok($end eq 'failed' || $end eq 'compensated' || $end eq 'aborted', "a failed reply fails the step ($end)");
like($node->safe_psql('orch', qq{SELECT last_error FROM consistency.saga_status('$no')}), qr/out of stock/,
     'the reason of the failed reply');

# A duplicate of the first reply, and a reply for a saga that does not exist.
$kafka->produce('inventory.replies',
  { key => $ok, value => '{}', headers => [saga_id => $ok, step => 'reserve', attempt => '1', outcome => 'completed'] },
  { key => 'x', value => '{}', headers => [saga_id => '00000000-0000-0000-0000-0000000000aa', step => 'reserve',
                                            outcome => 'completed'] });
ok(wait_until($node, q{SELECT string_agg(result, ',' ORDER BY id) FROM consistency.saga_reply_log}, 'not_awaited,unknown_saga',
              30, 'orch'), 'duplicate and unknown replies recorded')
  or diag($node->safe_psql('orch', 'SELECT * FROM consistency.saga_reply_log'));
is($node->safe_psql('orch', q{SELECT dead_lettered || '/' || failed FROM consistency.consumers}), '0/0',
   'replies never fail the consumer');

$node->stop;
$kafka->stop;
done_testing();
