# The relay's last error describes the relay that is on: turning the relay off
# (pg_consistency.kafka_brokers emptied and reloaded) clears last_error and last_error_at,
# so outbox_status never shows an error of a relay that no longer runs; a new
# configuration's error shows again when it is turned back on.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node wait_until);

# No broker is needed: a producer setting librdkafka refuses fails the relay's start-up,
# which records an error as any relay failure does.
my $node = new_node('relay_off_error', conf => <<'CONF');
pg_consistency.kafka_brokers = '127.0.0.1:9'
pg_consistency.kafka_properties = 'no.such.librdkafka.setting=1'
CONF

my $status = q{SELECT relay_state || '|' || coalesce(last_error, '<null>') FROM consistency.outbox_status};
ok(wait_until($node, q{SELECT last_error LIKE '%no.such.librdkafka.setting%' FROM consistency.outbox_status}, 't', 30),
   'the refused setting shows as the relay\'s last error');
like($node->safe_psql('postgres', $status), qr/^stopped\|.*no\.such\.librdkafka\.setting/,
     'the relay is stopped, its error shown');
is($node->safe_psql('postgres', 'SELECT last_error_at IS NOT NULL FROM consistency._relay_runtime()'), 't',
   'with its time');

# Relay off: kafka_brokers emptied, reloaded.
$node->safe_psql('postgres', q{ALTER SYSTEM SET pg_consistency.kafka_brokers = ''});
$node->reload;
ok(wait_until($node, $status, 'stopped|<null>', 30), 'turning the relay off clears last_error');
is($node->safe_psql('postgres', 'SELECT last_error_at IS NULL FROM consistency._relay_runtime()'), 't',
   'and last_error_at');
# It stays cleared across the worker's later ticks (a poll interval is 200 ms).
sleep 1;
is($node->safe_psql('postgres', $status), 'stopped|<null>', 'still cleared a second later');

# On again with the same refused setting: the error is back, so clearing did not hide errors.
$node->safe_psql('postgres', q{ALTER SYSTEM SET pg_consistency.kafka_brokers = '127.0.0.1:9'});
$node->reload;
ok(wait_until($node, q{SELECT last_error LIKE '%no.such.librdkafka.setting%' FROM consistency.outbox_status}, 't', 30),
   'the error of the relay turned on again shows');

$node->stop;
done_testing();
