# Gap-safe read_all: a reader paging by position never skips an event, although
# transactions commit out of position order. Run on a node with the library preloaded
# (shared-memory writer slots) and on one without (advisory-lock bounds): an open
# writer holds back both its own and every later event; an aborted one leaves a hole
# that is passed once it ended; the xid-order trap of docs/eventstore.md; PREPARE
# TRANSACTION, also across a restart; a randomised run with many writers and a paging
# reader; and read_all on a standby.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PgcCluster qw(new_node wait_until);

sub q1 { my ($node, $sql) = @_; return $node->safe_psql('postgres', $sql); }

sub positions_after {
  my ($node, $after) = @_;
  return q1($node, "SELECT coalesce(string_agg(global_position::text, ',' ORDER BY global_position), '')
                      FROM consistency.read_all($after, 1000)");
}

sub max_position { return q1($_[0], 'SELECT coalesce(max(global_position), 0) FROM consistency.events'); }

# Appends one event in an autocommit statement and returns its position.
sub append_committed {
  my ($node, $stream) = @_;
  return q1($node, "SELECT consistency.append_event('$stream', NULL, 'E', '{}');
                    SELECT max(global_position) FROM consistency.events WHERE stream = '$stream'")
    =~ s/^.*\n//r;
}

sub run_cases {
  my ($node, $label) = @_;

  # --- an open writer holds the horizon; both events appear once it commits --------
  my $base = max_position($node);
  my $t1 = $node->background_psql('postgres');
  $t1->query_safe('BEGIN');
  $t1->query_safe("SELECT consistency.append_event('gap-a', NULL, 'A', '{}')");
  my $p1 = $t1->query_safe('SELECT consistency.last_appended_position()');
  my $p2 = append_committed($node, 'gap-b');
  cmp_ok($p2, '>', $p1, "$label: T2's position $p2 follows T1's $p1");
  is(positions_after($node, $base), '', "$label: with T1 open, read_all shows neither event");
  is(q1($node, 'SELECT consistency.read_horizon()'), $p1, "$label: the horizon stops at T1's position");
  my $t1_pid = $t1->query_safe('SELECT pg_backend_pid()');
  is(q1($node, "SELECT count(*) FROM consistency.open_writers WHERE pid = $t1_pid AND lower_bound <= $p1 AND age >= '0'"),
     '1', "$label: open_writers shows T1 as the writer holding the horizon");
  $t1->query_safe('COMMIT');
  is(positions_after($node, $base), "$p1,$p2", "$label: after T1 commits both appear, in order");

  # --- T1 aborts: its position stays a hole, T2's event appears -------------------
  $base = max_position($node);
  $t1->query_safe('BEGIN');
  $t1->query_safe("SELECT consistency.append_event('gap-a', NULL, 'A', '{}')");
  $p1 = $t1->query_safe('SELECT consistency.last_appended_position()');
  $p2 = append_committed($node, 'gap-b');
  is(positions_after($node, $base), '', "$label: with T1 open (to abort), nothing beyond it");
  $t1->query_safe('ROLLBACK');
  is(positions_after($node, $base), $p2, "$label: after T1 aborts only T2's event appears");

  # --- the xid-order trap ------------------------------------------------------------
  # 1. B starts and gets its xid first.
  my $b = $node->background_psql('postgres');
  my $a = $t1;
  $base = max_position($node);
  my $cursor = $base;
  $b->query_safe('BEGIN');
  my $xid_b = $b->query_safe('SELECT pg_current_xact_id()');
  # 2. A starts, gets a larger xid, appends, stays open.
  $a->query_safe('BEGIN');
  my $xid_a = $a->query_safe('SELECT pg_current_xact_id()');
  $a->query_safe("SELECT consistency.append_event('trap-a', NULL, 'A', '{}')");
  my $pa = $a->query_safe('SELECT consistency.last_appended_position()');
  # 3. B appends (a larger position) and commits.
  $b->query_safe("SELECT consistency.append_event('trap-b', NULL, 'B', '{}')");
  my $pb = $b->query_safe('SELECT consistency.last_appended_position()');
  $b->query_safe('COMMIT');
  cmp_ok($xid_b, '<', $xid_a, "$label: trap: B's xid $xid_b precedes A's $xid_a");
  cmp_ok($pa, '<', $pb, "$label: trap: A holds position $pa, B $pb");
  # 4. The naive xmin filter would hand out B's event now (and move the cursor past A's).
  is(q1($node, "SELECT count(*) FROM consistency.events
                 WHERE global_position = $pb
                   AND xmin::text::bigint < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"),
     '1', "$label: trap: an xmin filter would already return B's event");
  my $page = positions_after($node, $cursor);
  is($page, '', "$label: trap: read_all returns nothing while A is open");
  $cursor = (split /,/, $page)[-1] if $page ne '';
  # 5. A commits: the cursor has not passed A's position, so nothing is skipped.
  $a->query_safe('COMMIT');
  is(positions_after($node, $cursor), "$pa,$pb", "$label: trap: after A commits the page holds A's and B's events");
  $b->quit;

  # --- PREPARE TRANSACTION keeps the bound until COMMIT/ROLLBACK PREPARED ------------
  $base = max_position($node);
  $t1->query_safe('BEGIN');
  $t1->query_safe("SELECT consistency.append_event('prep-a', NULL, 'A', '{}')");
  $p1 = $t1->query_safe('SELECT consistency.last_appended_position()');
  $t1->query_safe("PREPARE TRANSACTION 'es_gap_$label'");
  $t1->quit;
  $p2 = append_committed($node, 'prep-b');
  is(positions_after($node, $base), '', "$label: prepared appender holds the horizon");
  is(q1($node, "SELECT count(*) FROM consistency.open_writers WHERE prepared_gid = 'es_gap_$label' AND lower_bound <= $p1"),
     '1', "$label: open_writers shows the prepared transaction");
  $node->restart;
  is(positions_after($node, $base), '', "$label: ... also after a restart");
  is(q1($node, "SELECT count(*) FROM consistency.open_writers WHERE prepared_gid = 'es_gap_$label'"),
     '1', "$label: open_writers still shows it after the restart");
  q1($node, "COMMIT PREPARED 'es_gap_$label'");
  is(positions_after($node, $base), "$p1,$p2", "$label: after COMMIT PREPARED both appear");

  $base = max_position($node);
  $t1 = $node->background_psql('postgres');
  $t1->query_safe('BEGIN');
  $t1->query_safe("SELECT consistency.append_event('prep-a', NULL, 'A', '{}')");
  $t1->query_safe("PREPARE TRANSACTION 'es_gap_rb_$label'");
  $t1->quit;
  $p2 = append_committed($node, 'prep-b');
  is(positions_after($node, $base), '', "$label: second prepared appender holds the horizon");
  q1($node, "ROLLBACK PREPARED 'es_gap_rb_$label'");
  is(positions_after($node, $base), $p2, "$label: after ROLLBACK PREPARED the later event appears");

  # --- randomised: writers commit and abort out of order, a reader pages -------------
  q1($node, <<'SQL');
CREATE TABLE IF NOT EXISTS seen (pos bigint PRIMARY KEY);
CREATE TABLE IF NOT EXISTS hazards (n int);
CREATE OR REPLACE PROCEDURE page_reader(seconds float) LANGUAGE plpgsql AS $$
DECLARE
  last bigint := coalesce((SELECT max(pos) FROM seen), (SELECT max(global_position) FROM consistency.events), 0);
  r record;
  t_end timestamptz := clock_timestamp() + make_interval(secs => seconds);
  n int;
  h bigint;
BEGIN
  LOOP
    -- A hazard: a visible event at or above the horizon, so a lower position is still
    -- in flight (a reader trusting max(position) would skip it).
    h := consistency.read_horizon();
    IF (SELECT max(global_position) FROM consistency.events) >= h THEN
      INSERT INTO hazards VALUES (1);
    END IF;
    n := 0;
    FOR r IN SELECT global_position FROM consistency.read_all(last, 50) LOOP
      INSERT INTO seen VALUES (r.global_position);  -- a duplicate would fail here
      last := r.global_position;
      n := n + 1;
    END LOOP;
    COMMIT;
    EXIT WHEN clock_timestamp() > t_end;
    IF n = 0 THEN PERFORM pg_sleep(0.001); END IF;
  END LOOP;
END $$;
SQL
  q1($node, 'TRUNCATE seen; TRUNCATE hazards');
  my $start = max_position($node);
  q1($node, "INSERT INTO seen SELECT $start WHERE $start > 0");
  my $script = $node->basedir . "/gap_writers_$label.sql";
  PostgreSQL::Test::Utils::append_to_file($script, <<'PGB');
\set s random(1, 50)
\set r random(1, 8)
BEGIN;
SELECT consistency.append_event('rand-' || :s, NULL, 'R', '{}');
SELECT pg_sleep(random() * 0.004);
\if :r = 1
ROLLBACK;
\else
COMMIT;
\endif
PGB
  my ($out, $err) = ('', '');
  my $pgbench = IPC::Run::start(
    [ 'pgbench', '--no-vacuum', '--client=6', '--jobs=2', '--time=8', '-f', $script,
      '-h', $node->host, '-p', $node->port, 'postgres' ],
    '>', \$out, '2>', \$err);
  my $reader = $node->background_psql('postgres');
  $reader->set_query_timer_restart();
  $reader->query_safe('CALL page_reader(9)');
  $pgbench->finish;
  is($?, 0, "$label: random writers ran (pgbench)") or diag($err);
  $reader->query_safe('CALL page_reader(0.5)');
  $reader->quit;
  my ($events, $missing, $extra, $hazards) = split /\|/, q1($node,
    "SELECT (SELECT count(*) FROM consistency.events WHERE global_position > $start),
            (SELECT count(*) FROM consistency.events e WHERE e.global_position > $start
                AND NOT EXISTS (SELECT 1 FROM seen WHERE pos = e.global_position)),
            (SELECT count(*) FROM seen s WHERE s.pos > $start
                AND NOT EXISTS (SELECT 1 FROM consistency.events WHERE global_position = s.pos)),
            (SELECT count(*) FROM hazards)");
  note "$label: $events events by random writers, reader observed $hazards out-of-order windows";
  cmp_ok($events, '>', 100, "$label: the writers appended $events events");
  cmp_ok($hazards, '>', 0, "$label: commits really arrived out of position order ($hazards times)");
  is($missing, 0, "$label: the paging reader skipped no event");
  is($extra, 0, "$label: the reader saw no event that does not exist (no aborted position)");
}

# --- preloaded: shared-memory writer slots ------------------------------------------
my $node = new_node('es_gap');
run_cases($node, 'preloaded');

# --- a standby: no writer bounds there, it caps read_all at the published horizon ----
$node->append_conf('postgresql.conf', "wal_level = replica\nmax_wal_senders = 4\n");
$node->restart;
$node->backup('gap_backup');
my $standby = PostgreSQL::Test::Cluster->new('es_gap_standby');
$standby->init_from_backup($node, 'gap_backup', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
# The standby reads the horizon the primary's worker published into WAL
# (test/t/600_consistency_standby.t has the open-writer case).
my $all = $node->safe_psql('postgres', 'SELECT count(*) FROM consistency.events');
ok(wait_until($standby, 'SELECT count(*) FROM consistency.read_all(0, 100000)', $all, 30),
   'read_all works on a standby, up to the replayed horizon');
like($standby->safe_psql('postgres', "SELECT count(*) FROM consistency.read_stream('gap-a')"), qr/^\d+$/,
     'read_stream works on the standby');
is($standby->safe_psql('postgres',
     "SELECT count(*) FILTER (WHERE metric = 'pg_consistency_events_read_horizon') || '/' || (count(*) > 0)
        FROM consistency._metrics_eventstore()"),
   '0/true', 'metrics work on the standby, without the horizon');
$standby->stop;
$node->stop;

# --- without preload: bounds published as advisory locks -----------------------------
my $plain = PostgreSQL::Test::Cluster->new('es_gap_plain');
$plain->init;
$plain->append_conf('postgresql.conf', "max_prepared_transactions = 10\n");
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION pg_consistency');
is($plain->safe_psql('postgres', "SELECT current_setting('shared_preload_libraries')"), '',
   'second node runs without shared_preload_libraries');
run_cases($plain, 'no_preload');
# In this mode the bound of an open writer is visible in pg_locks.
my $w = $plain->background_psql('postgres');
$w->query_safe("BEGIN; SELECT consistency.append_event('lock-a', NULL, 'A', '{}')");
is($plain->safe_psql('postgres',
     "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 20549 AND granted"),
   '1', 'no_preload: the open writer holds its bound as an advisory lock');
$w->query_safe('ROLLBACK');
$w->quit;
$plain->stop;

done_testing();
