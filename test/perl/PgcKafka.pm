=pod

=head1 NAME

PgcKafka - a real single-node Kafka broker for pg_consistency's TAP tests

=head1 SYNOPSIS

  use PgcKafka;
  my $kafka = PgcKafka->start;             # or start(dir => $dir, port => $port)
  $kafka->create_topic('orders', 4);
  my $msgs = $kafka->consume('orders');    # read_committed, from the beginning
  $kafka->kill; $kafka->restart;           # crash, then come back on the same port with the same data
  my $t = $kafka->describe_transaction('relay-1');   # {state => 'Ongoing', epoch => 3, ...}
  $kafka->stop;

The broker is driven by scripts/kafka/kafka and tracked by PID; a broker the test forgot to stop
is stopped when the object goes away or, at the latest, in an END block.  A state directory the
module created itself is removed afterwards unless a test failed or PGC_KAFKA_KEEP is set.

=cut

package PgcKafka;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(rmtree);
use File::Temp qw(tempdir);
use IPC::Run;
use JSON::PP;
use Scalar::Util qw(refaddr weaken);

our $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/../..');
our $TOOL = "$ROOT/scripts/kafka/kafka";

# Weak references to every live broker object, for the END safety net.
my %live;

sub start
{
	my ($class, %opts) = @_;
	my $self = bless {
		dir   => $opts{dir},
		owned => !defined $opts{dir},
		keep  => $opts{keep} // $ENV{PGC_KAFKA_KEEP},
		owner => $$,
	}, $class;
	if ($self->{owned})
	{
		# Next to PostgreSQL's own test data when run under its TAP framework.
		my $base = do { no warnings 'once'; $PostgreSQL::Test::Utils::tmp_check };
		$self->{dir} =
		  defined $base && -d $base
		  ? tempdir('kafka_XXXXXX', DIR => $base)
		  : tempdir('pgc_kafka_XXXXXX', TMPDIR => 1);
	}
	$live{ refaddr $self } = $self;
	weaken $live{ refaddr $self };
	# On a busy machine a start occasionally fails (e.g. a port taken between choosing it and
	# binding it): a broker in a directory of its own is retried in a fresh one, after showing
	# why the attempt failed.
	my $tries = ($self->{owned} && !defined $opts{port}) ? 3 : 1;
	for my $try (1 .. $tries)
	{
		last if eval { $self->_start($opts{port}); 1 };
		my $err = $@;
		croak $err if $try == $tries;
		my $tail = '';
		if (open my $fh, '<', "$self->{dir}/kafka.log")
		{
			my @l = <$fh>;
			$tail = join '', @l[ ($#l > 20 ? $#l - 20 : 0) .. $#l ];
		}
		print STDERR "# kafka start attempt $try failed, retrying in a new directory: $err$tail";
		system($TOOL, 'kill', $self->{dir});
		rmtree($self->{dir});
		my $base = do { no warnings 'once'; $PostgreSQL::Test::Utils::tmp_check };
		$self->{dir} =
		  defined $base && -d $base
		  ? tempdir('kafka_XXXXXX', DIR => $base)
		  : tempdir('pgc_kafka_XXXXXX', TMPDIR => 1);
	}
	return $self;
}

sub _start
{
	my ($self, $port) = @_;
	my @cmd = ($TOOL, 'start', $self->{dir}, defined $port ? ($port) : ());
	my $out = '';
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out)
	  or croak "kafka start failed (exit " . ($? >> 8) . "), log in $self->{dir}/kafka.log";
	my @lines = split /\n/, $out;
	$self->{bootstrap} = $lines[-1];
	return $self;
}

sub _tool
{
	my ($self, @args) = @_;
	system($TOOL, @args) == 0
	  or croak "kafka @args failed (exit " . ($? >> 8) . ")";
}

sub bootstrap { $_[0]{bootstrap} }
sub dir       { $_[0]{dir} }
sub log_file  { "$_[0]{dir}/kafka.log" }

sub pid
{
	my $self = shift;
	open my $fh, '<', "$self->{dir}/kafka.pid" or return undef;
	chomp(my $pid = <$fh> // '');
	return $pid eq '' ? undef : $pid;
}

sub is_running { system($TOOL, 'status', $_[0]{dir}) == 0 }

# Clean shutdown: SIGTERM, SIGKILL after 30 s.
sub stop { $_[0]->_tool('stop', $_[0]{dir}); $_[0] }

# Crash: SIGKILL at once; the data directory is left as the crash left it.
sub kill { $_[0]->_tool('kill', $_[0]{dir}); $_[0] }

# Stops the broker if it still runs, waits $opts{down} seconds, starts it on the same port with
# the same data.
sub restart
{
	my ($self, %opts) = @_;
	$self->stop;
	sleep $opts{down} if $opts{down};
	# Same port and data, so no fresh directory: a start that fails on a busy machine (the JVM
	# gone at once, the port not yet free) is shown and tried again after a pause.
	for my $try (1 .. 3)
	{
		return $self if eval { $self->_start; 1 };
		my $err = $@;
		croak $err if $try == 3;
		print STDERR "# kafka restart attempt $try failed, retrying: $err" . $self->_log_tail;
		system($TOOL, 'kill', $self->{dir});
		sleep 2;
	}
}

# The last lines of the broker's log, for a failure message.
sub _log_tail
{
	my $self = shift;
	open my $fh, '<', "$self->{dir}/kafka.log" or return '';
	my @l = <$fh>;
	return join '', @l[ ($#l > 20 ? $#l - 20 : 0) .. $#l ];
}

# create_topic($name, $partitions, 'cleanup.policy=compact', ...)
sub create_topic
{
	my ($self, $name, $partitions, @config) = @_;
	$self->_tool('create-topic', $self->{dir}, $name, $partitions // 1, @config);
	return $self;
}

# Grows $name to $partitions partitions in all.
sub add_partitions
{
	my ($self, $name, $partitions) = @_;
	$self->_tool('add-partitions', $self->{dir}, $name, $partitions);
	return $self;
}

sub delete_topic
{
	my ($self, $name) = @_;
	$self->_tool('delete-topic', $self->{dir}, $name);
	return $self;
}

# describe_transaction($transactional_id): the transaction coordinator's view of that id, as
# {state => 'Ongoing' | 'CompleteCommit' | 'CompleteAbort' | 'PrepareCommit' | 'Empty' | ...,
#  producer_id, epoch, start_ms (the current transaction's start, -1 if none),
#  partitions => [topic-partition, ...]}. Croaks when the broker does not know the id.
sub describe_transaction
{
	my ($self, $id) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $TOOL, 'describe-transaction', $self->{dir}, $id ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(60))
	  or croak "describing transaction $id failed: $err";
	my @lines = grep { $_ ne '' } split /\n/, $out;
	my @f = split / /, $lines[-1] // '';
	croak "unexpected transaction description of $id: $out" unless @f == 5;
	return {
		state       => $f[0],
		producer_id => $f[1],
		epoch       => $f[2],
		start_ms    => $f[3],
		partitions  => [ $f[4] eq '-' ? () : split /,/, $f[4] ],
	};
}

# produce($topic, {key => ..., value => ..., headers => [name => value, ...], partition => N}, ...)
# undef key or value is sent as NULL.  Consecutive messages with the same headers and partition
# share one kcat run.
sub produce
{
	my ($self, $topic, @msgs) = @_;
	while (@msgs)
	{
		my $first = $msgs[0];
		my $sig   = _produce_sig($first);
		my @batch;
		push @batch, shift @msgs while @msgs && _produce_sig($msgs[0]) eq $sig;

		my @h = @{ $first->{headers} // [] };
		my @cmd = ('kcat', '-P', '-b', $self->{bootstrap}, '-t', $topic, '-K', '\x1f', '-D', '\x1e', '-Z');
		push @cmd, '-p', $first->{partition} if defined $first->{partition};
		push @cmd, '-H', shift(@h) . '=' . shift(@h) while @h;
		my $in = join '', map { ($_->{key} // '') . "\x1f" . ($_->{value} // '') . "\x1e" } @batch;
		my ($out, $err) = ('', '');
		IPC::Run::run(\@cmd, '<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(60))
		  or croak "kcat produce to $topic failed: $err";
	}
	return $self;
}

sub _produce_sig
{
	my $m = shift;
	return join "\x1f", $m->{partition} // '', @{ $m->{headers} // [] };
}

# Reads every message of $topic up to the end (the last stable offset under read_committed) and
# returns [{topic, partition, offset, timestamp, key, value, headers => {name => value},
# header_list => [name, value, ...]}, ...] in the order kcat delivered them: ordered within a
# partition, interleaved across partitions.  A topic that does not exist yields [].
# Options: isolation (default read_committed), partition, offset (default beginning), timeout.
sub consume
{
	my ($self, $topic, %opts) = @_;
	my @cmd = (
		'kcat', '-C', '-b', $self->{bootstrap}, '-t', $topic, '-e', '-q', '-J',
		'-o', $opts{offset} // 'beginning',
		'-X', 'isolation.level=' . ($opts{isolation} // 'read_committed'));
	push @cmd, '-p', $opts{partition} if defined $opts{partition};
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($opts{timeout} // 60));
	if (!$ok)
	{
		return [] if $err =~ /Unknown topic or partition/;
		croak "kcat consume from $topic failed: $err";
	}

	my $json = JSON::PP->new->utf8;
	my @msgs;
	for my $line (split /\n/, $out)
	{
		next if $line eq '';
		my $m  = $json->decode($line);
		my $hl = $m->{headers} // [];
		my %h;
		for (my $i = 0; $i < @$hl; $i += 2) { $h{ $hl->[$i] } = $hl->[ $i + 1 ]; }
		push @msgs,
		  {
			topic       => $m->{topic},
			partition   => $m->{partition},
			offset      => $m->{offset},
			timestamp   => $m->{ts},
			key         => $m->{key},
			value       => $m->{payload},
			headers     => \%h,
			header_list => $hl,
		  };
	}
	return \@msgs;
}

sub _cleanup
{
	my $self = shift;
	return if $self->{cleaned} || $self->{owner} != $$;
	$self->{cleaned} = 1;
	local ($?, $!, $@);
	system($TOOL, 'stop', $self->{dir});
	return unless $self->{owned} && !$self->{keep};
	my $passing = eval { Test::More->builder->is_passing } // 0;
	rmtree($self->{dir}) if $passing;
}

sub DESTROY { $_[0]->_cleanup }

END
{
	local $?;
	$_->_cleanup for grep { defined } values %live;
}

1;
