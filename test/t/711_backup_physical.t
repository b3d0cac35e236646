# A physical backup (pg_basebackup) of a cluster in use, restored as a standby that
# streams what the primary writes after the backup, then promoted once the primary is
# gone: no pg_consistency worker acts while the copy is in recovery; after the promotion
# the worker runs there, the data is intact (counts, the outbox, the waiting sagas), and
# appends, the subscription, the sagas and 2PC go on; check_integrity is clean.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcCluster qw(new_node wait_until worker_running);
use PgcDataset qw(participant populate counts count_tables still_works);

my $remote  = participant('remote');
my $primary = new_node('primary', conf => "wal_level = replica\nmax_wal_senders = 4\n");
worker_running($primary);
my $sagas = populate($primary, 'postgres', $remote, outbox => 200);

# The backup while the worker runs, then more writes the standby receives by streaming.
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->safe_psql('postgres', q{SELECT consistency.append_events('order-' || g, 3, '[{"type": "noted", "data": {"amount": 1}}]')
                                    FROM generate_series(7, 9) g});
my $at_stop = counts($primary, 'postgres');
my $position = $primary->safe_psql('postgres', 'SELECT max(global_position) FROM consistency.events');
my $last_id = $primary->safe_psql('postgres', 'SELECT last_value FROM consistency.outbox_id_seq');
my $outbox = $primary->safe_psql('postgres', 'SELECT count(*) FROM consistency.outbox');
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_consistency%'"), '0',
   'no pg_consistency process runs on the standby');
is($standby->safe_psql('postgres', "SELECT count(*) FROM consistency.events WHERE type = 'noted'"), '3',
   'the standby has the appends made after the backup');

# The primary is lost; the copy takes over.
$primary->stop('immediate');
$standby->promote;
worker_running($standby);
my $now = counts($standby, 'postgres');
is($now->{$_}, $at_stop->{$_}, "$_: $at_stop->{$_} rows intact") for count_tables();
is($standby->safe_psql('postgres', 'SELECT count(*) FROM consistency.outbox'), $outbox,
   "the outbox keeps its $outbox unsent rows (relay off)");
still_works($standby, 'postgres', $remote, $sagas, what => 'promoted copy', old_position => $position,
            old_outbox_id => $last_id);

$standby->stop;
$remote->stop;
done_testing();
