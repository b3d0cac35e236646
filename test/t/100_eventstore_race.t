# Concurrent appends to one stream serialise: of racing appends with the same expected
# version exactly one wins, the others get CS001 -- never a unique violation (23505),
# never two events with one version, and multi-event appends stay consecutive.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node);

my $node = new_node('es_race', conf => "max_connections = 60\n");

$node->safe_psql('postgres', <<'SQL');
CREATE TABLE race_log (id bigserial PRIMARY KEY, stream text, outcome text, events int);
-- One attempt: read the version, append 1 or 3 events expecting it, record the outcome.
-- A unique violation (or any other error) would be recorded as such and fail the test.
CREATE FUNCTION race_attempt(s text, batch int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v bigint := consistency.stream_version(s);
  evs jsonb := (SELECT jsonb_agg(jsonb_build_object('type', 'Tick', 'data', jsonb_build_object('expected', v, 'i', i)))
                  FROM generate_series(1, batch) i);
BEGIN
  BEGIN
    IF consistency.append_events(s, v, evs) <> v + batch THEN
      RAISE EXCEPTION 'append returned a wrong version';
    END IF;
    INSERT INTO race_log (stream, outcome, events) VALUES (s, 'ok', batch);
  EXCEPTION
    WHEN SQLSTATE 'CS001' THEN INSERT INTO race_log (stream, outcome, events) VALUES (s, 'CS001', batch);
    WHEN unique_violation THEN INSERT INTO race_log (stream, outcome, events) VALUES (s, '23505', batch);
  END;
END $$;
-- Creation race: expected version 0.
CREATE FUNCTION race_create(s text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM consistency.append_event(s, 0, 'Created', '{}');
  INSERT INTO race_log (stream, outcome, events) VALUES (s, 'ok', 1);
EXCEPTION
  WHEN SQLSTATE 'CS001' THEN INSERT INTO race_log (stream, outcome, events) VALUES (s, 'CS001', 1);
  WHEN unique_violation THEN INSERT INTO race_log (stream, outcome, events) VALUES (s, '23505', 1);
END $$;
SQL

# 8 writers x 1,000 attempts on one stream, each expecting the version it just read.
$node->pgbench(
  '--no-vacuum --client=8 --jobs=2 --transactions=1000',
  0,
  [qr{processed: 8000/8000}],
  [qr{^$}],
  'pgbench: 8 writers x 1000 appends with expected versions, no client error',
  {
    '100_race_single@3' => "SELECT race_attempt('race-1', 1);\n",
    '100_race_batch@1' => "SELECT race_attempt('race-1', 3);\n",
  });

my ($ok, $conflicts, $uniq, $ok_events) = split /\|/, $node->safe_psql('postgres',
  "SELECT count(*) FILTER (WHERE outcome = 'ok'), count(*) FILTER (WHERE outcome = 'CS001'),
          count(*) FILTER (WHERE outcome = '23505'), coalesce(sum(events) FILTER (WHERE outcome = 'ok'), 0)
     FROM race_log WHERE stream = 'race-1'");
note "single stream: $ok appends won, $conflicts got CS001";
is($ok + $conflicts + $uniq, 8000, 'every attempt was recorded');
is($uniq, 0, 'no attempt failed with a unique violation (23505)');
cmp_ok($conflicts, '>', 0, 'the writers really raced (some attempts got CS001)');
is($node->safe_psql('postgres', "SELECT consistency.stream_version('race-1')"), $ok_events,
   'final version equals the number of events appended by the winners');
is($node->safe_psql('postgres',
     "SELECT count(*) > 0 AND bool_and(version = n)
        FROM (SELECT version, row_number() OVER (ORDER BY version) AS n
                FROM consistency.events WHERE stream = 'race-1') v"),
   't', 'versions are 1..n: no gap, no duplicate');
# Each winning append's events carry the version it expected: a 3-event append occupies
# three consecutive versions right after it.
is($node->safe_psql('postgres',
     "SELECT count(*) FROM consistency.events
       WHERE stream = 'race-1' AND version <> (data->>'expected')::bigint + (data->>'i')::bigint"),
   '0', 'every event sits right after the version its append expected (batches consecutive)');
is($node->safe_psql('postgres',
     "SELECT bool_and(ok) FROM consistency._integrity_eventstore()"), 't', 'integrity checks pass');

# Creation races in lock-step rounds: 8 sessions wait on an advisory lock, then all
# append to the same new stream with expected version 0 at once.
my $writers = 8;
my $rounds = 50;
my $controller = $node->background_psql('postgres');
my @sessions = map { $node->background_psql('postgres') } 1 .. $writers;
$_->set_query_timer_restart() for ($controller, @sessions);
my $all_blocked_rounds = 0;
for my $r (1 .. $rounds) {
  $controller->query_safe('SELECT pg_advisory_lock(4242)');
  for my $i (0 .. $#sessions) {
    $sessions[$i]->query_until(qr/ready $r/,
      "\\echo ready $r\nSELECT pg_advisory_lock_shared(4242); SELECT pg_advisory_unlock_shared(4242); SELECT race_create('new-$r');\n");
  }
  # Release only once every session is blocked on the lock.
  my $waiting = 0;
  for (1 .. 200) {
    $waiting = $node->safe_psql('postgres',
      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted");
    last if $waiting == $writers;
    select(undef, undef, undef, 0.01);
  }
  $all_blocked_rounds++ if $waiting == $writers;
  $controller->query_safe('SELECT pg_advisory_unlock(4242)');
  $_->query_safe("SELECT 'round $r done'") for @sessions;
}
$_->quit for ($controller, @sessions);
is($all_blocked_rounds, $rounds, "all $writers writers were released together in each of $rounds rounds");
is($node->safe_psql('postgres',
     "SELECT count(*) FROM (SELECT stream FROM race_log WHERE stream LIKE 'new-%'
        GROUP BY stream HAVING count(*) FILTER (WHERE outcome = 'ok') = 1
                           AND count(*) FILTER (WHERE outcome = 'CS001') = $writers - 1) s"),
   $rounds, 'each creation round: exactly one winner, every other writer got CS001');
is($node->safe_psql('postgres', "SELECT count(*) FROM race_log WHERE outcome = '23505'"), '0',
   'no unique violation in creation races');
is($node->safe_psql('postgres',
     "SELECT count(*) FROM consistency.streams WHERE stream LIKE 'new-%' AND version = 1"),
   $rounds, 'every raced stream holds exactly one event');

$node->stop;
done_testing();
