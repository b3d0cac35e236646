# The upgrade path's test helpers: a PostgreSQL installation with a released version of
# pg_consistency built from its release commit (upgrade/releases), a node on it, and the
# catalog listing of test/sql/extension_catalog.sql with a diff that names what differs.
package PgcUpgrade;

use strict;
use warnings;
use Carp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Exporter 'import';
our @EXPORT_OK = qw(release_install release_node catalog_lines catalog_diff);

my $root = abs_path(dirname(__FILE__) . '/../..');

sub _run {
  my (@cmd) = @_;
  system(@cmd) == 0 or croak "failed (exit " . ($? >> 8) . "): @cmd";
}

# The first pg_config in PATH that comes with the server headers (the staged copy of the
# installation that the tests run has none; the system's has).
sub _system_pg_config {
  for my $dir (split /:/, $ENV{PATH}) {
    my $pc = "$dir/pg_config";
    next unless -x $pc;
    my $inc = `'$pc' --includedir-server`;
    chomp $inc;
    return $pc if $? == 0 && -f "$inc/postgres.h";
  }
  croak 'no pg_config with server headers in PATH';
}

sub _pg_config {
  my ($pc, $what) = @_;
  my $v = `'$pc' --$what`;
  chomp $v;
  croak "$pc --$what failed" if $? != 0 || $v eq '';
  return $v;
}

# release_install($version): the install path (for PostgreSQL::Test::Cluster's
# install_path) of a copy of the system's PostgreSQL installation with release $version of
# pg_consistency instead of this checkout's. Built from `git archive` of the release
# commit, once per commit (kept in build/release-$version). Needs the commit in the clone's
# history (a shallow clone: git fetch --unshallow).
sub release_install {
  my ($version) = @_;
  my ($commit) = map { (split ' ')[1] } grep { /^\Q$version\E / } split /\n/, slurp_file("$root/upgrade/releases");
  croak "release $version is not in upgrade/releases" unless $commit;
  my $dir   = "$root/build/release-$version";
  my $stage = "$dir/stage";
  my $pc      = _system_pg_config();
  my $bindir  = _pg_config($pc, 'bindir');
  my $libroot = dirname($bindir);
  my $share   = _pg_config($pc, 'sharedir');
  my $pkglib  = _pg_config($pc, 'pkglibdir');
  my $stamp = "$dir/built-from";
  return "$stage$libroot" if -f $stamp && slurp_file($stamp) eq "$commit $bindir\n";

  rmtree($dir);
  make_path("$dir/src", $stage . dirname($libroot), $stage . dirname($share));
  my $git = "git -c safe.directory='*' -C '$root'";
  system("$git cat-file -e '$commit^{commit}' 2>/dev/null") == 0
    or croak "commit $commit of release $version is not in this clone's history (git fetch --unshallow)";
  _run("$git archive '$commit' | tar -x -C '$dir/src'");
  _run('cp', '-a', $libroot, $stage . dirname($libroot) . '/');
  _run('cp', '-a', $share, $stage . dirname($share) . '/');
  # The copy starts without this checkout's pg_consistency.
  unlink glob("'$stage$share/extension/pg_consistency'*"), "$stage$pkglib/pg_consistency.so";
  # -O0: a test build of old code; it only has to behave like the release.
  _run("make -C '$dir/src' -s -j2 PG_CONFIG='$pc' EXTRA_CXXFLAGS=-O0 >'$dir/build.log' 2>&1");
  _run("make -C '$dir/src' -s install PG_CONFIG='$pc' DESTDIR='$stage' >>'$dir/build.log' 2>&1");
  open(my $fh, '>', $stamp) or croak "$stamp: $!";
  print $fh "$commit $bindir\n";
  close $fh;
  return "$stage$libroot";
}

# release_node($name, $version, conf => "extra lines"): a started node running release
# $version, configured like PgcCluster::new_node's, without the extension.
sub release_node {
  my ($name, $version, %opts) = @_;
  my $node = PostgreSQL::Test::Cluster->new($name, install_path => release_install($version));
  $node->init;
  $node->append_conf('postgresql.conf', <<"CONF" . ($opts{conf} // ''));
shared_preload_libraries = 'pg_consistency'
max_prepared_transactions = 64
max_worker_processes = 32
pg_consistency.database = '@{[ $opts{databases} // 'postgres' ]}'
pg_consistency.poll_interval = '200ms'
log_min_messages = info
restart_after_crash = on
CONF
  $node->start;
  return $node;
}

# The extension's catalog in $db as sorted lines (test/sql/extension_catalog.sql).
sub catalog_lines {
  my ($node, $db) = @_;
  my $out = $node->safe_psql($db, slurp_file("$root/test/sql/extension_catalog.sql"));
  return [ split /\n/, $out ];
}

# A diff of two sorted line lists: '-' lines only in $want (what the upgrade script
# misses), '+' lines only in $got (what it has that a fresh install has not). Lines of one
# object come together (they share their prefix up to ' | '). Empty when equal.
sub catalog_diff {
  my ($want, $got, $want_label, $got_label) = @_;
  my %w = map { $_ => 1 } @$want;
  my %g = map { $_ => 1 } @$got;
  my @out;
  for my $l (sort { $a cmp $b } keys %{ { %w, %g } }) {
    next if $w{$l} && $g{$l};
    push @out, ($w{$l} ? '- ' : '+ ') . $l;
  }
  return '' unless @out;
  return "--- $want_label (lines starting '-': missing after the update)\n"
    . "+++ $got_label (lines starting '+': only after the update)\n" . join("\n", @out) . "\n";
}

1;
