# Saga command steps with the worker: the command is published through the outbox in
# the transaction that makes the saga wait; a reply wakes the worker at commit (a 60 s
# poll interval would otherwise show); no reply within the step timeout is a failed
# attempt, retried, then compensated, without any poll; a late reply is refused.
# Then end to end through the relay and a real Kafka broker: a "shipping service"
# consumes the command from the topic and replies with complete_step.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until sql_fixture);
use PgcKafka;
use PgcRelay qw(relay_node);
use PgcSaga qw(wait_terminal);

my $fixture = sql_fixture('warehouse') . <<'SQL';
SELECT consistency.define_saga('shipping', '{"steps": [
  {"name": "reserve", "action": {"function": "wh.reserve"}, "compensation": {"function": "wh.release"}},
  {"name": "ship", "action": {"topic": "shipping.commands", "command": "CreateShipment"},
   "timeout": "400 ms", "retry": {"max_attempts": 2, "backoff": "100 ms"}},
  {"name": "finish", "action": {"function": "wh.finish"}}]}');
SQL

# --- Without a broker: the outbox holds the commands. -------------------------------
my $node = new_node('saga_commands', conf => "pg_consistency.poll_interval = '60s'\n");
$node->safe_psql('postgres', $fixture);
sub Q { return $node->safe_psql('postgres', $_[0]) }

my $s1 = Q("SELECT consistency.start_saga('shipping', '{\"order\": 1}')");
ok(wait_until($node, "SELECT phase FROM consistency.saga_instances WHERE id = '$s1'", 'waiting', 20),
   'the saga waits for the reply to its command');
is(Q("SELECT count(*) || ' ' || min(topic) || ' ' || (min(key) = '$s1') FROM consistency.outbox WHERE headers->>'saga_id' = '$s1'"),
   '1 shipping.commands true', 'one command in the outbox, keyed by the saga');
is(Q("SELECT convert_from(payload, 'UTF8')::jsonb->>'command' FROM consistency.outbox WHERE headers->>'saga_id' = '$s1'"),
   'CreateShipment', 'the command names what to do');
my $t0 = time;
Q("SELECT consistency.complete_step('$s1', 'ship', '{\"tracking\": \"T-1\"}')");
is(wait_terminal($node, $s1, 20), 'completed', 'reply applied: saga completed');
cmp_ok(time - $t0, '<', 10, sprintf('the reply woke the worker (%.2f s with a 60 s poll interval)', time - $t0));
is(Q("SELECT string_agg(effect, ',' ORDER BY seq) FROM wh.effects WHERE saga = '$s1'"), 'reserve,finish',
   'function steps once each');
is(Q("SELECT data->>'tracking' FROM consistency.sagas WHERE id = '$s1'"), 'T-1', 'reply output merged');
my $before = Q("SELECT updated_at FROM consistency.sagas WHERE id = '$s1'");
# A redelivered reply with another output: accepted (Q dies on an error), and it changes nothing.
Q("SELECT consistency.complete_step('$s1', 'ship', '{\"tracking\": \"T-2\"}')");
is(Q("SELECT status || ' ' || (data->>'tracking') || ' ' || (updated_at = '$before') FROM consistency.sagas WHERE id = '$s1'"),
   'completed T-1 true', 'a repeated reply is accepted as a no-op: output, status and updated_at unchanged');
is(Q("SELECT string_agg(effect, ',' ORDER BY seq) FROM wh.effects WHERE saga = '$s1'"), 'reserve,finish',
   'and runs no step again');

# No reply: two attempts of 400 ms, then compensation - timed by the worker itself.
my $s2 = Q("SELECT consistency.start_saga('shipping', '{\"order\": 2}')");
$t0 = time;
is(wait_terminal($node, $s2, 30), 'compensated', 'no reply: saga compensated');
my $took = time - $t0;
cmp_ok($took, '<', 15, sprintf('timeouts fired without a reply or a poll (%.2f s)', $took));
cmp_ok($took, '>=', 0.8, 'but not before two 400 ms reply timeouts');
is(Q("SELECT count(*) FROM consistency.outbox WHERE headers->>'saga_id' = '$s2'"), '2', 'the command was sent twice');
is(Q("SELECT string_agg(headers->>'attempt', ',' ORDER BY id) FROM consistency.outbox WHERE headers->>'saga_id' = '$s2'"),
   '1,2', 'with its attempt number');
is(Q("SELECT string_agg(effect, ',' ORDER BY seq) FROM wh.effects WHERE saga = '$s2'"), 'reserve,release',
   'the reservation was released');
like(Q("SELECT last_error FROM consistency.sagas WHERE id = '$s2'"), qr/no reply to step "ship" \(attempt 2\) within 400 ms/,
     'last_error names the timeout');
my ($ret, $out, $err) = $node->psql('postgres', "SELECT consistency.complete_step('$s2', 'ship')");
like($err, qr/ERROR:  saga \S+: step "ship" is not awaiting a reply/, 'a late reply is refused');
is(Q("SELECT count(*) FROM consistency.read_stream('saga-$s2') WHERE type = 'StepFailed'"), '2', 'both timeouts audited');
$node->stop('fast');

# --- With the relay and a real broker: a service consumes and replies. ----------------
my $kafka = PgcKafka->start;
my $relayed = relay_node('saga_commands_kafka', $kafka);
$relayed->safe_psql('postgres', $fixture);
$relayed->safe_psql('postgres', q{SELECT consistency.define_saga('shipping', '{"steps": [
  {"name": "reserve", "action": {"function": "wh.reserve"}, "compensation": {"function": "wh.release"}},
  {"name": "ship", "action": {"topic": "shipping.commands", "command": "CreateShipment"}, "timeout": "60 s"},
  {"name": "finish", "action": {"function": "wh.finish"}}]}')});
my @ids = map { $relayed->safe_psql('postgres', "SELECT consistency.start_saga('shipping', '{\"order\": $_}')") } 1 .. 5;
my %pending = map { $_ => 1 } @ids;
my $deadline = time + 60;
my %seen;
while (%pending && time < $deadline) {
  for my $m (@{ $kafka->consume('shipping.commands', timeout => 30) }) {
    my $sid = $m->{headers}{saga_id} // '';
    next unless $pending{$sid};
    $seen{$sid} = $m;
    # The shipping service does its work, then replies (twice: a redelivered reply).
    $relayed->safe_psql('postgres', "SELECT consistency.complete_step('$sid', '$m->{headers}{step}', '{\"carrier\": \"kafka\"}')") for 1 .. 2;
    delete $pending{$sid};
  }
  usleep(200_000) if %pending;
}
is(scalar(keys %seen), 5, 'all five commands arrived on the topic');
my ($any) = values %seen;
is($any->{key}, $any->{headers}{saga_id}, 'message key = saga id');
is(join(',', map { $any->{headers}{$_} // '-' } qw(step attempt command)), 'ship,1,CreateShipment',
   'headers saga_id, step, attempt, command');
like($any->{value}, qr/"command": ?"CreateShipment"/, 'payload carries the command');
ok(wait_until($relayed, "SELECT count(*) FROM consistency.sagas WHERE status = 'completed'", '5', 60),
   'every saga completed after its reply');
is($relayed->safe_psql('postgres', "SELECT count(*) FROM wh.effects WHERE effect = 'finish'"), '5', 'each finished once');
$relayed->stop('fast');
$kafka->stop;
done_testing();
