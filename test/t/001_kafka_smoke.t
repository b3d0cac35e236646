# The Kafka test harness itself: a real broker starts, keeps keyed messages with headers across a
# restart and a crash, and is gone after stop.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use IPC::Run;
use Test::More;
use PgcKafka;

my $kafka = PgcKafka->start;
my $addr  = $kafka->bootstrap;
like($addr, qr/^127\.0\.0\.1:\d+$/, "broker listens on loopback ($addr)");
ok($kafka->is_running, 'status reports the broker running');

# Produce with kcat directly, the way an outside producer would.
sub kcat_produce
{
	my ($topic, $input, @headers) = @_;
	my @cmd = ('kcat', '-P', '-b', $addr, '-t', $topic, '-K:', map { ('-H', $_) } @headers);
	IPC::Run::run(\@cmd, '<', \$input, IPC::Run::timeout(60)) or die "kcat -P failed: $?";
}
kcat_produce('smoke', "k1:v1\nk2:v2 with: colon\n", 'id=1', 'ce_type=test.smoke');
kcat_produce('smoke', "k1:v3\n", 'id=2', 'note=a,b=c');

my @expect = (
	[ 'k1', 'v1',             { id => '1', ce_type => 'test.smoke' } ],
	[ 'k2', 'v2 with: colon', { id => '1', ce_type => 'test.smoke' } ],
	[ 'k1', 'v3',             { id => '2', note    => 'a,b=c' } ],);

sub check_smoke
{
	my ($what) = @_;
	my $msgs = $kafka->consume('smoke');
	is(scalar @$msgs, 3, "$what: three messages");
	for my $i (0 .. $#expect)
	{
		my ($k, $v, $h) = @{ $expect[$i] };
		is($msgs->[$i]{offset}, $i, "$what: message $i in order");
		is($msgs->[$i]{key},    $k, "$what: key $i");
		is($msgs->[$i]{value},  $v, "$what: value $i");
		is_deeply($msgs->[$i]{headers}, $h, "$what: headers $i");
	}
}
check_smoke('first run');

$kafka->create_topic('smoke4', 4);
$kafka->produce('smoke4',
	map { { key => "k$_", value => "v$_", partition => $_ % 4, headers => [ n => $_ ] } } 0 .. 7);
my $four = $kafka->consume('smoke4');
is(scalar @$four, 8, 'multi-partition topic holds eight messages');
is_deeply([ sort map { $_->{partition} } @$four ], [ 0, 0, 1, 1, 2, 2, 3, 3 ], 'spread over four partitions');
is_deeply($kafka->consume('no_such_topic'), [], 'missing topic reads as empty');

my $pid = $kafka->pid;
$kafka->restart;
is($kafka->bootstrap, $addr, 'restart reuses the address');
isnt($kafka->pid, $pid, 'restart runs a new process');
check_smoke('after restart');

$pid = $kafka->pid;
$kafka->kill;
ok(!kill(0, $pid) || `ps -o stat= -p $pid` =~ /Z/, 'kill leaves no running broker');
$kafka->restart;
is($kafka->bootstrap, $addr, 'restart after a crash reuses the address');
check_smoke('after crash');

$pid = $kafka->pid;
$kafka->stop;
ok(!$kafka->is_running, 'status reports the broker stopped');
ok(!defined $kafka->pid, 'pid file removed');
ok(!kill(0, $pid) || `ps -o stat= -p $pid` =~ /Z/, "broker process $pid is gone");

done_testing();
