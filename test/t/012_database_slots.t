# The per-database slot registry: pg_consistency.max_databases slots, one per database
# that uses the extension. A full registry is a clear LOG (never a silent drop), and a
# slot is freed when its database is dropped or taken off pg_consistency.database.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node wait_until worker_pid process_gone);

my $node = new_node('slots', databases => 'postgres', conf => "pg_consistency.max_databases = 2\n");
is($node->safe_psql('postgres', 'SHOW pg_consistency.max_databases'), '2', 'the cap is a setting');
for my $db (qw(db2 db3 db4)) {
  $node->safe_psql('postgres', "CREATE DATABASE $db");
  $node->safe_psql($db, 'CREATE EXTENSION pg_consistency');
}
sub served {
  return $node->safe_psql('postgres',
    "SELECT string_agg(database, ',' ORDER BY database) FROM consistency.worker_status() WHERE kind = 'worker' AND state = 'running'");
}
ok(wait_until($node, "SELECT count(*) FROM consistency.worker_status() WHERE kind = 'worker' AND state = 'running'", '1'),
   'the worker of postgres runs');

# A session in db2 (not listed) takes the second slot: metrics() reads its counters.
$node->safe_psql('db2', 'SELECT consistency.metrics()');

# db3 is listed now, but no slot is left: the launcher says so, and starts no worker.
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.database = 'postgres,db3'");
$node->reload;
ok(wait_until_log(qr/no worker for database "db3": all 2 database slots are taken/), 'a full registry is logged')
  or diag(slurp_file($node->logfile, $log_offset));
sleep 3;    # deliberate: several launcher retries pass, and still no worker (shows nothing happens)
is(served(), 'postgres', 'db3 has no worker while the registry is full');
my $logged = () = slurp_file($node->logfile, $log_offset) =~ /no worker for database "db3"/g;
is($logged, 1, 'logged once, not on every retry');

# Dropping db2 frees its slot: db3 gets its worker.
$node->safe_psql('postgres', 'DROP DATABASE db2');
ok(wait_until($node, "SELECT string_agg(database, ',' ORDER BY database) FROM consistency.worker_status() WHERE kind = 'worker' AND state = 'running'", 'db3,postgres', 60),
   'after DROP DATABASE db2 its slot serves db3');

# Taking db3 off the list stops its worker and frees its slot: db4 gets one.
my $db3_pid = worker_pid($node, 'db3');
$node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.database = 'postgres,db4'");
$node->reload;
ok(process_gone($db3_pid), 'the worker of db3 exits when db3 is taken off the list');
ok(wait_until($node, "SELECT string_agg(database, ',' ORDER BY database) FROM consistency.worker_status() WHERE kind = 'worker' AND state = 'running'", 'db4,postgres', 60),
   'its slot serves db4');
is($node->safe_psql('postgres', "SELECT count(*) FROM consistency.worker_status() WHERE database = 'db3'"), '0',
   'db3 has no row left');

# More databases listed than slots: the extra ones are named in the log.
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.database = 'postgres,db4,db3'");
$node->reload;
ok(wait_until_log(qr/pg_consistency.database lists 3 databases; only the first 2 get a worker/),
   'listing more databases than slots is logged');

$node->stop;
done_testing();

sub wait_until_log {
  my ($re) = @_;
  for (1 .. 60) {
    return 1 if slurp_file($node->logfile, $log_offset) =~ $re;
    sleep 1;
  }
  return 0;
}
