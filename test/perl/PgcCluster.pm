# Test helpers around PostgreSQL::Test::Cluster: a node with pg_consistency preloaded.
package PgcCluster;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use Exporter 'import';
our @EXPORT_OK = qw(new_node wait_until reload_config worker_pid process_gone psql_as worker_running sql_fixture);

# The repository's root (this file is test/perl/PgcCluster.pm).
my $root = abs_path(dirname(__FILE__) . '/../..');

# new_node($name, conf => "extra lines", databases => 'postgres', extension => 1, start => 1,
#          init => { allows_streaming => 1 })
sub new_node {
  my ($name, %opts) = @_;
  my $node = PostgreSQL::Test::Cluster->new($name);
  $node->init(%{ $opts{init} // {} });
  my $dbs = $opts{databases} // 'postgres';
  $node->append_conf('postgresql.conf', <<"CONF" . ($opts{conf} // ''));
shared_preload_libraries = 'pg_consistency'
max_prepared_transactions = 64
max_worker_processes = 32
pg_consistency.database = '$dbs'
pg_consistency.poll_interval = '200ms'
log_min_messages = info
restart_after_crash = on
CONF
  if ($opts{start} // 1) {
    $node->start;
    $node->safe_psql('postgres', 'CREATE EXTENSION pg_consistency') if $opts{extension} // 1;
  }
  return $node;
}

# Polls $sql on $db until it returns $expected (string compare) or $timeout seconds pass.
# A predicate: it returns false on a timeout (after showing the last value), so every caller
# asserts on it (ok(wait_until(...)), or ... or fail/die) -- never calls it bare.
sub wait_until {
  my ($node, $sql, $expected, $timeout, $db) = @_;
  $timeout //= 30;
  $db //= 'postgres';
  my $deadline = time + $timeout;
  my $last = '';
  while (time < $deadline) {
    $last = eval { $node->safe_psql($db, $sql) } // '';
    return 1 if $last eq $expected;
    usleep(50_000);
  }
  diag("wait_until timed out: `$sql` returned '$last', wanted '$expected'");
  return 0;
}

# Reloads the configuration and waits until every running process of ours (the launcher,
# each worker and its processes) has read it: settings_loaded_at in consistency.workers
# (read in $db, default postgres) later than a moment taken before the reload. A predicate
# like wait_until: false after $timeout seconds (default 30), with the rows shown.
sub reload_config {
  my ($node, $timeout, $db) = @_;
  $db //= 'postgres';
  my $before = $node->safe_psql($db, 'SELECT clock_timestamp()');
  $node->safe_psql($db, 'SELECT pg_reload_conf()');
  return 1 if wait_until($node, "SELECT bool_and(settings_loaded_at > '$before') FROM consistency.workers "
                              . "WHERE pid IS NOT NULL", 't', $timeout, $db);
  diag('processes that did not read the reloaded configuration: '
       . $node->safe_psql($db, "SELECT string_agg(kind || ' ' || coalesce(database, '') || ' pid ' || pid "
                             . "|| ' loaded ' || coalesce(settings_loaded_at::text, 'never'), '; ') "
                             . "FROM consistency.workers WHERE pid IS NOT NULL AND settings_loaded_at <= '$before'"));
  return 0;
}

# Runs $sql on $db (default postgres) as the login role $role; dies on an error.
sub psql_as {
  my ($node, $role, $sql, $db) = @_;
  return $node->safe_psql($db // 'postgres', $sql, extra_params => ['-U', $role]);
}

# Passes when the per-database worker of the node reaches the state running.
sub worker_running {
  my ($node) = @_;
  ok(wait_until($node, "SELECT count(*) FROM consistency.workers WHERE kind = 'worker' AND state = 'running'", '1'),
     'worker running');
}

# The SQL of a fixture the TAP tests share with the regression suites:
# sql/include/$name.sql.
sub sql_fixture {
  my ($name) = @_;
  return slurp_file("$root/sql/include/$name.sql");
}

# PID of the worker for $db (or '' when none runs).
sub worker_pid {
  my ($node, $db) = @_;
  $db //= 'postgres';
  return $node->safe_psql('postgres',
    "SELECT coalesce(max(pid)::text, '') FROM consistency.worker_status() "
    . "WHERE kind = 'worker' AND database = '$db'");
}

# True when $pid no longer runs (gone, or a zombie not yet reaped by its parent).
sub process_gone {
  my ($pid, $timeout) = @_;
  my $deadline = time + ($timeout // 10);
  while (time < $deadline) {
    return 1 unless kill(0, $pid);
    if (open(my $fh, '<', "/proc/$pid/stat")) {
      my $stat = <$fh> // '';
      close $fh;
      return 1 if $stat =~ /^\d+ \(.*\) Z/;
    }
    usleep(50_000);
  }
  return 0;
}

1;
