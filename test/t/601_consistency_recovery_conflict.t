# Why await_token is a procedure: on a lagging standby a waiting SELECT keeps its snapshot,
# replay of a cleanup record that removes a row version the snapshot can still see must wait
# for it, and after max_standby_streaming_delay the wait is cancelled ("conflict with
# recovery") before it could see the token. CALL consistency.await_token holds no snapshot
# while it waits: in the same situation it reaches the token.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PgcCluster qw(new_node wait_until);

my $primary = new_node('cc_primary', init => { allows_streaming => 1 });
$primary->safe_psql('postgres',
  'CREATE TABLE hot (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off); INSERT INTO hot VALUES (1, 0)');
$primary->backup('cc_backup');
my $standby = PostgreSQL::Test::Cluster->new('cc_standby');
$standby->init_from_backup($primary, 'cc_backup', has_streaming => 1);
$standby->append_conf('postgresql.conf', <<'CONF');
recovery_min_apply_delay = '1s'
max_standby_streaming_delay = '500ms'
hot_standby_feedback = off
CONF
$standby->start;
$primary->wait_for_catchup($standby);

# Makes a row version the standby still sees dead and removes it on the primary (the
# cleanup record follows the delayed commit in WAL), then returns a token taken after it.
sub prune_and_token {
  return $primary->safe_psql('postgres', 'UPDATE hot SET v = v + 1; VACUUM hot; SELECT consistency.session_token()');
}

# Runs `sql` on the standby right away (its snapshot predates the update's replay); returns
# (stdout, stderr).
sub on_standby {
  my ($sql) = @_;
  my ($out, $err) = ('', '');
  IPC::Run::run(['psql', '-X', '-A', '-t', '-h', $standby->host, '-p', $standby->port, '-d', 'postgres',
                 '-c', $sql], '>', \$out, '2>', \$err);
  chomp $out;
  return ($out, $err);
}

my $token = prune_and_token();
my ($out, $err) = on_standby("SELECT consistency.wait_for_token('$token', '20 s')");
like($err, qr/conflict with recovery/, 'control: the waiting SELECT is cancelled by the recovery conflict');
isnt($out, 't', 'and never sees the token');

$primary->wait_for_catchup($standby);
$token = prune_and_token();
($out, $err) = on_standby("CALL consistency.await_token('$token', '20 s')");
is($out, 't', 'CALL await_token in the same situation reaches the token');
is($err, '', 'without an error');
is($standby->safe_psql('postgres', 'SELECT v FROM hot'), '2', 'and the standby shows the second update');

$standby->stop;
$primary->stop;
done_testing();
