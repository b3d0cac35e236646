# A real PgBouncer for the tests: transaction pooling on 127.0.0.1 on a free port, in
# front of the given nodes (each an alias), started in the foreground and stopped by PID.
package PgcBouncer;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);
use POSIX ();
use IPC::Run;

# PgcBouncer->start(aliases => { primary => $node, ... }, pool_size => 1)
sub start {
  my ($class, %opts) = @_;
  my $dir = PostgreSQL::Test::Utils::tempdir('pgbouncer');
  my $port = PostgreSQL::Test::Cluster::get_free_port();
  my $user = getpwuid($<);
  my $pool = $opts{pool_size} // 1;
  my $dbs = '';
  for my $alias (sort keys %{ $opts{aliases} }) {
    my $node = $opts{aliases}{$alias};
    $dbs .= sprintf("%s = host=%s port=%d dbname=postgres\n", $alias, $node->host, $node->port);
  }
  PostgreSQL::Test::Utils::append_to_file("$dir/users.txt", qq{"$user" ""\n});
  PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", <<"INI");
[databases]
$dbs
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 50
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
INI
  my $bin = -x '/usr/sbin/pgbouncer' ? '/usr/sbin/pgbouncer' : 'pgbouncer';
  my $pid = fork();
  die "fork: $!" unless defined $pid;
  if ($pid == 0) {
    open(STDOUT, '>>', "$dir/stdout.log");
    open(STDERR, '>&', \*STDOUT);
    exec($bin, "$dir/pgbouncer.ini") or POSIX::_exit(127);
  }
  my $self = bless { pid => $pid, port => $port, dir => $dir }, $class;
  # Ready once it accepts a connection.
  my $deadline = time + 30;
  while (time < $deadline) {
    my $alias = (sort keys %{ $opts{aliases} })[0];
    my $rc = system('psql', '-X', '-q', '-h', '127.0.0.1', '-p', $port, '-d', $alias, '-c', 'SELECT 1');
    return $self if $rc == 0;
    usleep(100_000);
  }
  $self->stop;
  die "pgbouncer did not start: " . PostgreSQL::Test::Utils::slurp_file("$dir/pgbouncer.log");
}

sub port { return $_[0]{port}; }
sub pid { return $_[0]{pid}; }

# Runs psql through the pooler against `alias` with each statement a separate -c (so
# each is its own transaction, possibly on another server connection). Returns
# (exit code, stdout, stderr).
sub psql {
  my ($self, $alias, @statements) = @_;
  my ($out, $err) = ('', '');
  my @cmd = ('psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', $self->{port},
             '-d', $alias, map { ('-c', $_) } @statements);
  IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
  my $rc = $? >> 8;
  chomp $out;
  return ($rc, $out, $err);
}

# The same, dying on an error; returns stdout.
sub safe_psql {
  my ($self, $alias, @statements) = @_;
  my ($rc, $out, $err) = $self->psql($alias, @statements);
  die "psql through pgbouncer failed ($rc): $err" if $rc != 0;
  return $out;
}

sub stop {
  my ($self) = @_;
  return unless $self->{pid};
  kill 'TERM', $self->{pid};
  waitpid($self->{pid}, 0);
  $self->{pid} = undef;
}

sub DESTROY { $_[0]->stop; }

1;
