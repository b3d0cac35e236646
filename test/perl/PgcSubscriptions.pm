# Helpers for the event store's subscription TAP tests (test/t/10N_*.t): subscriptions
# created by a tenant role, the tenant's "fast" subscription that must keep up while
# another one misbehaves, the checkpoint of a parked subscription, and a probe that
# measures how long wait_for_subscription takes after each append.
package PgcSubscriptions;

use strict;
use warnings;
use PgcCluster qw(psql_as);
use Exporter 'import';
our @EXPORT_OK = qw(subscribe fast_tenant parked_state install_wait_probe measure_waits);

# Creates subscriptions as $role, one per entry of @subs: a name (handler and category
# of the same name) or [name, handler function, category]. %o: max_attempts.
sub subscribe {
  my ($node, $role, $subs, %o) = @_;
  my $sql = defined $o{max_attempts} ? "SET pg_consistency.subscription_max_attempts = $o{max_attempts};\n" : '';
  for my $s (@$subs) {
    my ($name, $handler, $category) = ref $s ? @$s : ($s, $s, $s);
    $sql .= "SELECT consistency.create_subscription('$name', '$handler(bigint,text,bigint,text,jsonb,jsonb)', "
      . "ARRAY['$category']);\n";
  }
  return psql_as($node, $role, $sql);
}

# The role tenant (a writer) and its handler fast(), which records each global position
# in public.fast_done (a second apply would hit the primary key).
sub fast_tenant {
  my ($node) = @_;
  $node->safe_psql('postgres', <<'SQL');
CREATE ROLE tenant LOGIN IN ROLE consistency_writer;
CREATE TABLE fast_done (global_position bigint PRIMARY KEY);
GRANT INSERT ON fast_done TO tenant;
CREATE FUNCTION fast(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO public.fast_done VALUES (p) $$;
SQL
}

# (attempts, last_error, whether the checkpoint is before the first event of $stream) of
# subscription $name.
sub parked_state {
  my ($node, $name, $stream) = @_;
  return split /\|/, $node->safe_psql('postgres',
    "SELECT attempts, last_error, position < (SELECT min(global_position) FROM consistency.events WHERE stream = '$stream')
       FROM consistency.subscriptions WHERE name = '$name'");
}

# The procedure measure_waits(subscription, stream, type, n, timeout, pause): n times,
# appends an event of that type to the stream, commits, and records in wait_latency how
# long wait_for_subscription took to see it (and whether it did), then sleeps pause seconds.
sub install_wait_probe {
  my ($node) = @_;
  $node->safe_psql('postgres', <<'SQL');
CREATE TABLE wait_latency (ms float8, ok boolean);
CREATE PROCEDURE measure_waits(sub text, stream text, type text, n int, timeout interval, pause float8)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; ok boolean;
BEGIN
  FOR i IN 1..n LOOP
    PERFORM consistency.append_event(stream, NULL, type, jsonb_build_object('i', i));
    COMMIT;
    t0 := clock_timestamp();
    ok := consistency.wait_for_subscription(sub, consistency.last_appended_position(), timeout);
    INSERT INTO wait_latency VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000, ok);
    COMMIT;
    PERFORM pg_sleep(pause);
  END LOOP;
END $$;
SQL
}

# Runs measure_waits and returns (all seen, count, max ms, average ms) of its waits.
sub measure_waits {
  my ($node, $sub, $stream, $type, $n, $timeout, $pause) = @_;
  $node->safe_psql('postgres', "CALL measure_waits('$sub', '$stream', '$type', $n, '$timeout', $pause)");
  return split /\|/, $node->safe_psql('postgres',
    'SELECT bool_and(ok), count(*), round(max(ms)), round(avg(ms)::numeric, 1) FROM wait_latency');
}

1;
