# DROP DATABASE of a database the worker serves works without WITH (FORCE): our own
# processes connected to it exit and the launcher starts none for it meanwhile. A role
# that may not drop the database cannot use DROP DATABASE to stop its worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node wait_until worker_pid process_gone);

my $node = new_node('dropdb', databases => 'postgres,shop', conf => "pg_consistency.saga_workers = 1\n");
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', 'CREATE EXTENSION pg_consistency');
ok(wait_until($node, "SELECT state FROM consistency.worker_status() WHERE kind = 'worker' AND database = 'shop'", 'running'),
   'the worker serves shop');
ok(wait_until($node, "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 'shop' AND backend_type = 'pg_consistency saga worker'", 't'),
   'a saga worker is connected to shop');
my $shop_pid = worker_pid($node, 'shop');
my $postgres_pid = worker_pid($node, 'postgres');

# Not the owner: refused by PostgreSQL, and the worker keeps running (same process).
$node->safe_psql('postgres', 'CREATE ROLE not_owner LOGIN');
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE shop', extra_params => ['-U', 'not_owner']);
like($err, qr/must be owner of database shop/, 'a role that may not drop shop is refused');
sleep 1;    # deliberate: time for a wrongly stopped worker to be gone (shows nothing happens)
is(worker_pid($node, 'shop'), $shop_pid, 'and the worker was left alone');

# The owner drops it without FORCE.
($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE shop');
is($rc, 0, 'DROP DATABASE of a served database succeeds without FORCE') or diag($err);
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'shop'"), '0', 'shop is gone');
ok(process_gone($shop_pid), 'its worker exited');
is(worker_pid($node, 'postgres'), $postgres_pid, 'the worker of another database was not touched');

# A client session still connected makes DROP fail as usual; the worker comes back.
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', 'CREATE EXTENSION pg_consistency');
ok(wait_until($node, "SELECT state FROM consistency.worker_status() WHERE kind = 'worker' AND database = 'shop'", 'running', 60),
   'a re-created shop is served again');
my $client = $node->background_psql('shop');
$client->query_safe('SELECT 1');
($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE shop');
like($err, qr/is being accessed by other users/, 'a client session still blocks DROP DATABASE');
$client->quit;
ok(wait_until($node, "SELECT state FROM consistency.worker_status() WHERE kind = 'worker' AND database = 'shop'", 'running', 60),
   'after a failed DROP the worker comes back');

$node->stop;
done_testing();
