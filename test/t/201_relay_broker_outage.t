# A broker outage in the middle of a stream: the relay reports broker_unavailable, the
# backlog waits in the outbox, the worker does not spin, and when the broker returns
# delivery resumes by itself with nothing lost and per-key order kept.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run;
use PgcKafka;
use PgcCluster qw(wait_until);
use PgcRelay qw(relay_node publish_sequences wait_drained check_delivery relay_status relay_worker_pid);

my $kafka = PgcKafka->start;
my $node  = relay_node('relay_outage', $kafka, batch_size => 200);
my $first_id = $node->safe_psql('postgres', "SELECT nextval('consistency.outbox_id_seq') + 1");

# A writer publishing 6,000 messages over ~8 s in the background.
my $sql = q{
DO $$
BEGIN
  FOR t IN 0..59 LOOP
    PERFORM consistency.publish('stream', 'key-' || (g % 50), jsonb_build_object('g', g))
       FROM generate_series(t * 100, t * 100 + 99) g;
    COMMIT;
    PERFORM pg_sleep(0.13);
  END LOOP;
END $$;
};
my ($out, $err) = ('', '');
my $writer = IPC::Run::start(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql],
  '>', \$out, '2>', \$err, IPC::Run::timeout(300));

ok(wait_until($node, "SELECT delivered_total > 0 FROM consistency.outbox_status", 't', 30), 'delivery under way');
my $log_offset = -s $node->logfile;
my $down_at = time;
$kafka->stop;
note('broker stopped');

ok(wait_until($node, "SELECT relay_state FROM consistency.outbox_status", 'broker_unavailable', 30),
   'relay_state becomes broker_unavailable');
my ($pending) = split /\|/, relay_status($node);
cmp_ok($pending, '>', 0, "backlog of $pending messages stays in the outbox");

# No spinning: CPU time of the worker process (all its threads) over 4 s of outage.
my $pid = relay_worker_pid($node);
sub cpu_ticks {
  open my $fh, '<', "/proc/$_[0]/stat" or return undef;
  my @f = split / /, (<$fh> =~ s/^.*\) //r);
  return $f[11] + $f[12];    # utime + stime
}
# (A young worker may not have used a whole tick yet: only readability is checked.)
my $c0 = cpu_ticks($pid);
ok(defined $c0, "the worker's CPU time is readable (" . ($c0 // 'none') . " ticks so far)");
$c0 //= 0;
sleep 4;    # deliberate: the window over which CPU use is measured
my $used = (cpu_ticks($pid) - $c0) / 100.0;
cmp_ok($used, '<', 0.8, sprintf('worker used %.2f s of CPU in 4 s of outage (no busy loop)', $used));
is(relay_worker_pid($node), $pid, 'same worker process throughout (no crash loop)');
like($node->safe_psql('postgres', 'SELECT last_error FROM consistency.outbox_status'), qr/./, 'last_error tells why');

my $wait = 10 - (time - $down_at);
sleep $wait if $wait > 0;    # deliberate: the broker stays away 10 s in all
$writer->finish;
is($?, 0, 'the writer committed everything while the broker was away') or diag($err);
my $last_id = $node->safe_psql('postgres', "SELECT last_value FROM consistency.outbox_id_seq");
($pending) = split /\|/, relay_status($node);
cmp_ok($pending, '>', 0, "still $pending pending just before the broker returns");

$kafka->restart;
note(sprintf('broker back after %.1f s', time - $down_at));
ok(wait_drained($node, 180), 'the backlog drains by itself once the broker is back');
ok(wait_until($node, "SELECT relay_state FROM consistency.outbox_status", 'running', 30), 'relay_state back to running');

my @ids = ($first_id .. $last_id);
is(scalar @ids, 6000, '6,000 messages published');
my $r = check_delivery($kafka, 'stream', ids => \@ids);
is($r->{missing}, 0, 'nothing lost') or diag("first missing: $r->{first_missing}");
is($r->{order_violations}, 0, 'per-key order kept across the outage') or diag($r->{first_bad}{order});
is($r->{bad_headers}, 0, 'headers intact');
note("duplicates after the outage (allowed at least once): $r->{duplicates}");

my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/pg_consistency relay: .*(brokers are down|Connection refused|Disconnected|broker did not answer|timed out)/i,
     'the outage is logged with its cause');

$node->stop;
$kafka->stop;
done_testing();
