# Monitoring end to end on a real cluster and broker: after relay traffic, sagas (function
# steps that complete and compensate, a command step answered with complete_step, a
# rolled-back start) and subscriptions (one caught up, one parked), consistency.metrics()
# passes Prometheus' own parser and linter (promtool) with the latency histograms present
# and non-empty; Debian's postgres_exporter, run with docs/monitoring/postgres_exporter.yml
# against the cluster, serves every family metrics() has under the same name (two
# documented exceptions) with the same values.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use IO::Socket::INET;
use IPC::Run;
use POSIX qw(WNOHANG);
use PgcKafka;
use PgcCluster qw(wait_until reload_config);
use PgcRelay qw(relay_node publish_sequences wait_drained);
use PgcSaga qw(install_order_flow start_order wait_terminal);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $tmp = PostgreSQL::Test::Utils::tempdir();

my $kafka = PgcKafka->start;
my $node = relay_node('monitoring', $kafka);

# ---- traffic
publish_sequences($node, 'mon', keys => 10, per_key => 20, txn => 50);
ok(wait_drained($node, 60), '200 messages relayed');

install_order_flow($node);
my @good = map { start_order($node, $_) } 1 .. 3;
my $declined = start_order($node, 4, card => 'declined');
is(wait_terminal($node, $_), 'completed', "order saga $_ completed") for @good;
is(wait_terminal($node, $declined), 'compensated', 'declined order compensated');
$node->safe_psql('postgres', q{BEGIN; SELECT consistency.start_saga('order', '{"order_id": 99}'); ROLLBACK;});

$node->safe_psql('postgres', q{SELECT consistency.define_saga('notify', '{"steps": [
  {"name": "mail", "action": {"topic": "mail.commands", "command": "SendMail"}, "timeout": "1 hour"}]}')});
my $notify = $node->safe_psql('postgres', q{SELECT consistency.start_saga('notify', '{}')});
ok(wait_until($node, "SELECT phase FROM consistency.saga_instances WHERE id = '$notify'", 'waiting'),
   'command sent');
usleep(300_000);    # deliberate: the command waits a measurable time for its reply
$node->safe_psql('postgres', "SELECT consistency.complete_step('$notify', 'mail', '{}')");
is(wait_terminal($node, $notify), 'completed', 'command saga completed by its reply');

$node->safe_psql('postgres', q{
  CREATE TABLE public.seen (p bigint PRIMARY KEY);
  CREATE FUNCTION keep(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO public.seen VALUES (p) $$;
  CREATE FUNCTION refuse(p bigint, s text, v bigint, t text, d jsonb, m jsonb) RETURNS void
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
  SET pg_consistency.subscription_max_attempts = 1;
  SELECT consistency.create_subscription('keeper', 'keep(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['acct']);
  SELECT consistency.create_subscription('refuser', 'refuse(bigint,text,bigint,text,jsonb,jsonb)', ARRAY['acct']);
  SELECT consistency.append_event('acct-1', 0, 'Opened', '{}');
});
ok(wait_until($node, q{SELECT string_agg(status, ',' ORDER BY name) FROM consistency.subscriptions}, 'active,failed'),
   'one subscription keeps up, one is parked');

# An inbox consumer reading the relayed topic back.
$node->safe_psql('postgres', q{
  CREATE FUNCTION take(topic text, part int, "offset" bigint, key text, value jsonb, headers jsonb)
    RETURNS void LANGUAGE sql AS $$ SELECT $$;
  SELECT consistency.create_consumer('reader', ARRAY['mon'], 'take(text,int,bigint,text,jsonb,jsonb)'::regprocedure);
});
ok(wait_until($node, q{SELECT consumed >= 200 FROM consistency.consumers WHERE name = 'reader'}, 't', 60),
   'the consumer read the relayed messages');
usleep(1_100_000);    # the parked subscription's lag grows past a second

# ---- consistency.metrics() through promtool
my $text = $node->safe_psql('postgres', 'SELECT consistency.metrics()') . "\n";
my %v = samples($text);
my ($rc, $out, $err) = promtool_check($text);
is($rc, 0, 'promtool check metrics: parses and lints clean') or diag("$out$err");

my $n_ack = $v{'pg_consistency_relay_commit_to_ack_seconds_count'} // 0;
cmp_ok($n_ack, '>=', 200, 'every acknowledged message observed once at least');
is($v{'pg_consistency_relay_commit_to_ack_seconds_bucket{le="+Inf"}'}, $n_ack, '+Inf bucket equals the count');
cmp_ok($v{'pg_consistency_relay_commit_to_ack_seconds_sum'}, '>', 0, 'sum of acknowledgement latency');
is($v{'pg_consistency_saga_duration_seconds_count{outcome="completed",saga="order"}'}, 3, 'three order sagas completed');
is($v{'pg_consistency_saga_duration_seconds_count{outcome="compensated",saga="order"}'}, 1, 'one compensated');
is($v{'pg_consistency_sagas_total{saga="order",status="running"}'}, 4, 'started sagas counted; the rolled-back start not');
is($v{'pg_consistency_sagas_total{saga="order",status="compensating"}'}, 1, 'compensation counted');
is($v{'pg_consistency_sagas_total{saga="order",status="completed"}'}, 3, 'completed counted');
is($v{'pg_consistency_saga_step_seconds_count{outcome="succeeded",saga="order",step="process_payment"}'}, 3,
   'payment step succeeded three times');
cmp_ok($v{'pg_consistency_saga_step_seconds_count{outcome="failed",saga="order",step="process_payment"}'}, '>=', 1,
   'declined payment attempts observed as failed');
is($v{'pg_consistency_saga_step_seconds_count{outcome="compensated",saga="order",step="reserve_inventory"}'}, 1,
   'compensation observed');
is($v{'pg_consistency_saga_step_seconds_count{outcome="succeeded",saga="notify",step="mail"}'}, 1,
   'command step observed at its reply');
cmp_ok($v{'pg_consistency_saga_step_seconds_sum{outcome="succeeded",saga="notify",step="mail"}'}, '>=', 0.25,
   'command step lasted from sending to the reply');
is($v{'pg_consistency_saga_duration_seconds_count{outcome="completed",saga="notify"}'}, 1,
   'a saga completed by a reply in a backend is observed');
is($v{'pg_consistency_subscription_lag_seconds{subscription="keeper"}'}, 0, 'caught-up subscription: no lag');
cmp_ok($v{'pg_consistency_subscription_lag_seconds{subscription="refuser"}'}, '>', 1, 'parked subscription lags');
like($text, qr/^# TYPE pg_consistency_saga_step_seconds histogram$/m, 'histogram family typed once');

# ---- postgres_exporter with the shipped queries
my $port = free_port();
my $exporter_log = "$tmp/exporter.log";
my $dsn = sprintf('host=%s port=%d user=%s dbname=postgres sslmode=disable',
                  $node->host, $node->port, scalar getpwuid($<));
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
  open(STDOUT, '>', $exporter_log); open(STDERR, '>&', \*STDOUT);
  $ENV{DATA_SOURCE_NAME} = $dsn;
  exec('prometheus-postgres-exporter', "--web.listen-address=127.0.0.1:$port",
       "--extend.query-path=$root/docs/monitoring/postgres_exporter.yml",
       '--disable-default-metrics', '--disable-settings-metrics') or exit 127;
}
my $scrape = '';
my $deadline = time + 30;
while (time < $deadline) {
  $scrape = `curl -sf http://127.0.0.1:$port/metrics`;
  last if $scrape =~ /^pg_consistency_relay_commit_to_ack_seconds_count/m;
  usleep(200_000);
}
kill 'TERM', $pid;
waitpid($pid, 0);
like($scrape, qr/^pg_consistency_relay_commit_to_ack_seconds_count/m, 'exporter scraped with curl')
  or diag(slurp_file($exporter_log));
unlike($scrape, qr/^pg_up 0/m, 'exporter reached the database');
my %e = samples($scrape);
my %families = map { $_ => 1 } ($text =~ /^# TYPE (\S+)/mg);
my %renamed = ('pg_consistency_sagas' => 'pg_consistency_saga_instances',
               'pg_consistency_relay_state' => 'pg_consistency_relay_state_current');
my @missing = grep { my $f = $renamed{$_} // $_; !grep { /^\Q$f\E(_bucket|_sum|_count)?(\{|$)/ } keys %e } sort keys %families;
is("@missing", '', 'every family of metrics() is served by the exporter');
my $e_count = (grep { /^pg_consistency_relay_commit_to_ack_seconds_count/ } keys %e)[0];
cmp_ok($e{$e_count}, '>=', $n_ack, 'the exporter serves the histogram count');
my ($e_bucket) = grep { /^pg_consistency_saga_duration_seconds_bucket\{/ && /le="\+Inf"/ && /outcome="completed"/ && /saga="order"/ } keys %e;
is($e{ $e_bucket // '' }, 3, 'the exporter serves saga duration buckets with their labels')
  or diag(join("\n", grep { /saga_duration/ } sort keys %e));
my ($e_total) = grep { /^pg_consistency_sagas_total\{/ && /saga="order"/ && /status="completed"/ } keys %e;
is($e{ $e_total // '' }, 3, 'the exporter serves pg_consistency_sagas_total');
($rc, $out, $err) = promtool_check($scrape);
is($rc, 0, "promtool accepts the exporter's output") or diag("$out$err");

# ---- the dashboard and the alert rules query exported metrics only
my %names = map { (my $n = $_) =~ s/\{.*//; ($n => 1) } (keys %v, keys %e);
open(my $fh, '>', "$tmp/names") or die;
print $fh "$_\n" for sort keys %names;
close $fh;
my $check = `python3 $root/test/monitoring/check_queries.py $tmp/names $root/docs/monitoring/grafana-dashboard.json $root/docs/monitoring/alerts.yml 2>&1`;
is($? >> 8, 0, 'every dashboard and alert query names an exported metric') or diag($check);
note($check);

# ---- recording off: nothing more is observed
$node->append_conf('postgresql.conf', "pg_consistency.latency_metrics = off\n");
ok(reload_config($node), 'every process read latency_metrics = off');
publish_sequences($node, 'mon', keys => 1, per_key => 10, txn => 10, first => 1000);
ok(wait_drained($node, 60), 'more messages relayed');
my %after = samples($node->safe_psql('postgres', 'SELECT consistency.metrics()') . "\n");
is($after{'pg_consistency_relay_commit_to_ack_seconds_count'}, $n_ack, 'latency_metrics = off records nothing');

$node->stop;
done_testing();

# name{labels} => value for every sample line of an exposition text.
sub samples {
  my ($t) = @_;
  my %s;
  for my $line (split /\n/, $t) {
    next if $line =~ /^#/ || $line !~ /\S/;
    my ($k, $val) = $line =~ /^(\S+(?:\{.*\})?)\s+(\S+)$/ or next;
    $s{$k} = $val;
  }
  return %s;
}

sub promtool_check {
  my ($t) = @_;
  my ($o, $e) = ('', '');
  my $ok = IPC::Run::run(['promtool', 'check', 'metrics'], '<', \$t, '>', \$o, '2>', \$e);
  return ($? >> 8, $o, $e);
}

sub free_port {
  my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1)
    or die "no free port: $!";
  my $p = $s->sockport;
  close $s;
  return $p;
}
