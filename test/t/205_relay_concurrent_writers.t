# Concurrent writers whose transactions interleave outbox ids and commit out of id order
# (the hazard of "outbox id order is not commit order"): while the relay drains, every
# committed row must still arrive, in both modes, and nothing of a rolled-back transaction.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PgcKafka;
use PgcCluster qw(wait_until);
use PgcRelay qw(relay_node wait_drained check_delivery);

my $kafka = PgcKafka->start;
my $node  = relay_node('relay_concurrent', $kafka, batch_size => 20);
$node->safe_psql('postgres', 'CREATE TABLE public.published_log (id bigint PRIMARY KEY)');

sub run_writers {
  my ($topic, $writers, $txns) = @_;
  # Each transaction publishes three rows with pauses in between (so other writers take ids
  # in the gaps), logs its ids, and one in ten rolls back.
  my $sql = qq{
DO \$\$
DECLARE i int; a bigint; b bigint; c bigint;
BEGIN
  FOR i IN 1..$txns LOOP
    BEGIN
      a := consistency.publish('$topic', 'w' || pg_backend_pid() || '-' || (i % 5), jsonb_build_object('i', i));
      PERFORM pg_sleep(random() * 0.004);
      b := consistency.publish('$topic', 'w' || pg_backend_pid() || '-' || (i % 5), jsonb_build_object('i', i));
      PERFORM pg_sleep(random() * 0.004);
      c := consistency.publish('$topic', 'w' || pg_backend_pid() || '-' || (i % 5), jsonb_build_object('i', i));
      IF i % 10 = 0 THEN
        RAISE EXCEPTION 'roll back';
      END IF;
      INSERT INTO public.published_log VALUES (a), (b), (c);
    EXCEPTION WHEN raise_exception THEN
      NULL;
    END;
    COMMIT;
  END LOOP;
END \$\$;};
  my @h;
  for my $w (1 .. $writers) {
    my ($out, $err) = ('', '');
    push @h, [ IPC::Run::start(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql],
        '>', \$out, '2>', \$err, IPC::Run::timeout(300)), \$err ];
  }
  my $ok = 1;
  for my $x (@h) {
    $x->[0]->finish;
    if ($?) { $ok = 0; diag(${ $x->[1] }); }
  }
  return $ok;
}

for my $mode ('at_least_once', 'exactly_once') {
  if ($mode eq 'exactly_once') {
    $node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.relay_mode = 'exactly_once'; SELECT pg_reload_conf()");
    ok(wait_until($node, "SELECT relay_mode || '/' || relay_state FROM consistency._relay_runtime()", 'exactly_once/running', 60),
       'switched to exactly_once');
  }
  my $topic = "conc_$mode";
  $node->safe_psql('postgres', 'TRUNCATE public.published_log');
  ok(run_writers($topic, 4, 150), "$mode: four writers committed their transactions");
  ok(wait_drained($node, 120), "$mode: outbox drained");
  my $ids = [ split /\n/, $node->safe_psql('postgres', 'SELECT id FROM public.published_log ORDER BY id') ];
  is(scalar @$ids, 4 * 135 * 3, "$mode: 1,620 rows committed (one transaction in ten rolled back)");
  my $r = check_delivery($kafka, $topic, ids => $ids);
  is($r->{missing}, 0, "$mode: every committed row arrived") or diag("first missing: $r->{first_missing}");
  is($r->{distinct}, scalar @$ids, "$mode: nothing else arrived (no rolled-back row)");
  is($r->{duplicates}, 0, "$mode: no duplicates") if $mode eq 'exactly_once';
  is($r->{order_violations}, 0, "$mode: each writer's keys in order") or diag($r->{first_bad}{order});
}

$node->stop;
$kafka->stop;
done_testing();
