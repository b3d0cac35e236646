# Handlers past their time limit (consumer_handler_timeout) never stall a consumer for
# good. A handler that sleeps and honours the cancellation fails the attempt: retried,
# then dead-lettered. A handler that catches the cancellation and goes on is ended with
# its process by the hard stop (limit + max(1 s, limit)); the restarted process charges
# that message a failed attempt (stored with the offsets before it, which are applied
# exactly once), retries it, then dead-letters it. Another consumer goes on throughout.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcKafka;
use PgcCluster qw(new_node wait_until);
use PgcHardStop qw(endless_body);

my $kafka = PgcKafka->start;
my $node = new_node('inbox_hard_stop', conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
  . "pg_consistency.consumer_handler_timeout = '300ms'\n"
  . "pg_consistency.consumer_max_attempts = 2\n"
  . "pg_consistency.consumer_retry_backoff = '100ms'\n"
  . "pg_consistency.consumer_max_retry_backoff = '200ms'\n");
$kafka->create_topic($_, 1) for 'slow', 'sly', 'fast';
sub q1 { return $node->safe_psql('postgres', $_[0]); }
q1(q{
  CREATE TABLE done (topic text, off bigint, n int);
  CREATE FUNCTION slow(topic text, part int, off bigint, k text, v jsonb, h jsonb) RETURNS void
    LANGUAGE plpgsql AS $$ BEGIN
      IF v ? 'sleep' THEN RAISE LOG 'slow handler attempt'; PERFORM pg_catalog.pg_sleep(10); END IF;
      INSERT INTO public.done VALUES (topic, off, (v->>'n')::int);
    END $$;
  CREATE FUNCTION fast(topic text, part int, off bigint, k text, v jsonb, h jsonb) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO public.done VALUES (topic, off, (v->>'n')::int) $$;
});
q1("CREATE FUNCTION endless() RETURNS void LANGUAGE plpgsql AS \$\$" . endless_body('sly handler attempt') . "\$\$");
q1(q{
  CREATE FUNCTION sly(topic text, part int, off bigint, k text, v jsonb, h jsonb) RETURNS void
    LANGUAGE plpgsql AS $$ BEGIN
      IF v ? 'endless' THEN PERFORM public.endless(); END IF;
      INSERT INTO public.done VALUES (topic, off, (v->>'n')::int);
    END $$;
  SELECT consistency.create_consumer('slow-in', ARRAY['slow'], 'slow(text,int,bigint,text,jsonb,jsonb)');
  SELECT consistency.create_consumer('sly-in', ARRAY['sly'], 'sly(text,int,bigint,text,jsonb,jsonb)');
  SELECT consistency.create_consumer('fast-in', ARRAY['fast'], 'fast(text,int,bigint,text,jsonb,jsonb)');
});
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets}, '3', 60), 'partitions assigned')
  or diag(q1('SELECT * FROM consistency.consumers'));
sub consumer_pid {
  return q1(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer'});
}
my $pid0 = consumer_pid();
my $log_offset = -s $node->logfile;

# One batch each: a message before the stuck one, the stuck one, one after it.
$kafka->produce('slow', map { { key => 's', value => $_ } } '{"n": 1}', '{"n": 2, "sleep": true}', '{"n": 3}');
$kafka->produce('sly', map { { key => 's', value => $_ } } '{"n": 1}', '{"n": 2, "endless": true}', '{"n": 3}');

# The other consumer keeps up meanwhile: each message applied within a bounded wait.
my ($sent, $max_wait) = (0, 0);
my $deadline = time + 90;
while (time < $deadline) {
  $sent++;
  $kafka->produce('fast', { key => 'f', value => qq({"n": $sent}) });
  my $t0 = time;
  wait_until($node, q{SELECT count(*) FROM done WHERE topic = 'fast'}, $sent, 20)
    or fail("fast message $sent was not applied within 20 s");
  my $waited = time - $t0;
  $max_wait = $waited if $waited > $max_wait;
  last if q1(q{SELECT count(*) FROM consistency.consumer_dead_letters}) eq '2' && $sent >= 5;
  usleep(200_000);
}
note sprintf('fast consumer: %d messages, longest wait %.1f s', $sent, $max_wait);
is(q1(q{SELECT count(*) FROM consistency.consumer_dead_letters}), '2', 'both stuck messages were dead-lettered')
  or diag(q1('SELECT name, status, last_error FROM consistency.consumers'));
is(q1(q{SELECT count(*) || '/' || count(DISTINCT off) FROM done WHERE topic = 'fast'}), "$sent/$sent",
   "the other consumer applied each of its $sent messages once meanwhile");
cmp_ok($max_wait, '<', 15, 'each within a bounded wait (a hard stop plus a process restart)');

# The handler that honoured its cancellation: two failed attempts, then a dead letter.
like(q1(q{SELECT reason FROM consistency.consumer_dead_letters WHERE consumer = 'slow-in'}),
     qr/^after 2 attempts: canceling statement due to statement timeout/, 'slow: dead-lettered after 2 timed-out attempts');
is(q1(q{SELECT string_agg(n::text, ',' ORDER BY off) FROM done WHERE topic = 'slow'}), '1,3',
   'slow: the messages around it applied once each, in order');

# The handler that caught its cancellation: the hard stop, charged by the next process.
like(q1(q{SELECT reason FROM consistency.consumer_dead_letters WHERE consumer = 'sly-in'}),
     qr/^after 2 attempts: the handler ran past its time limit \(pg_consistency\.consumer_handler_timeout, 300 ms\) and did not stop when cancelled; its process was stopped at /,
     'sly: dead-lettered after 2 charged hard stops, with the reason');
is(q1(q{SELECT string_agg(n::text, ',' ORDER BY off) FROM done WHERE topic = 'sly'}), '1,3',
   'sly: the message before it (rolled back with the stopped batch) and the one after applied once each');
is(q1(q{SELECT failed || '/' || dead_lettered FROM consistency.consumers WHERE name = 'sly-in'}), '2/1',
   'sly: two failed attempts counted, one dead letter');
my $log = slurp_file($node->logfile, $log_offset);
my @sly = ($log =~ /sly handler attempt/g);
is(scalar @sly, 2, 'the endless handler ran twice in all (charged, never retried past max_attempts)');
my @stops = ($log =~ /consumer:1:[0-9a-f]{16}:0:1: consumer "sly-in" topic sly ran past its time limit and did not stop when cancelled/g);
is(scalar @stops, 2, 'each hard stop was logged with the message it stopped');
my @slow = ($log =~ /slow handler attempt/g);
cmp_ok(scalar @slow, '>=', 2, 'the slow handler was tried at least twice (more when a hard stop cut an attempt short)');

# The process was restarted, and now stays.
my $pid1 = consumer_pid();
isnt($pid1, $pid0, 'the consumer process was stopped and restarted');
$kafka->produce('sly', { key => 's', value => '{"n": 4}' });
ok(wait_until($node, q{SELECT count(*) FROM done WHERE topic = 'sly'}, '3', 30), 'the sly consumer goes on');
usleep(1_500_000);    # deliberate: longer than a hard stop takes, and still no restart
is(consumer_pid(), $pid1, 'no further restart');
is(q1(q{SELECT string_agg(status, ',' ORDER BY name) FROM consistency.consumers}), 'running,running,running',
   'every consumer running');
my @integrity = split /\n/, q1(q{SELECT check_name FROM consistency.check_integrity() WHERE NOT ok AND check_name LIKE 'inbox%'});
is(scalar @integrity, 0, 'integrity checks pass') or diag(join ',', @integrity);

$node->stop;
$kafka->stop;
done_testing();
