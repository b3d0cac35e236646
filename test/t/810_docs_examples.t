# The documentation runs as written: every fenced ```sql block of README.md and docs/*.md,
# in order, page by page, each page in a fresh database of a cluster with the library
# preloaded and a real Kafka broker, in one psql session per page. A block succeeds, or
# raises exactly the errors its "-- ERROR:  … (SQLSTATE XXXXX)" comments document, in
# order; a block marked "-- not run: why" is counted and listed. Then the reference table of
# functions (docs/reference.md) is compared with the catalog: every function of the
# extension has a row, and the row names the least role that may execute it.
# The convention: docs/development.md, "Documentation that runs".
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename qw(basename dirname);
use Cwd qw(abs_path);
use IPC::Run;
use PgcKafka;
use PgcCluster qw(new_node wait_until);
use PgcDocs qw(doc_blocks run_page function_table);

my $root  = abs_path(dirname(__FILE__) . '/../..');
my @pages = ("$root/README.md", sort glob("$root/docs/*.md"));

my $kafka = PgcKafka->start;
my $node  = new_node('docs', extension => 0, conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n");

my (@skipped, %fences);
my $blocks_run = 0;
for my $page (@pages) {
  my $name = $page =~ s{^\Q$root\E/}{}r;
  my @blocks = doc_blocks($page);
  $fences{$_->{lang} || '(none)'}++ for @blocks;
  push @skipped, map { "$name:$_->{line}: $_->{skip}" } grep { $_->{lang} eq 'sql' && defined $_->{skip} } @blocks;
  next unless grep { $_->{lang} eq 'sql' && !defined $_->{skip} } @blocks;

  # A fresh database, served by the worker as the README says: created, then named in
  # pg_consistency.database, then reloaded.
  my $db = 'docs_' . lc(basename($page, '.md') =~ s/[^a-zA-Z0-9]+/_/gr);
  my $roles_before = $node->safe_psql('postgres', 'SELECT string_agg(rolname, \',\') FROM pg_roles');
  my $dbs_before = $node->safe_psql('postgres', 'SELECT string_agg(datname, \',\') FROM pg_database');
  $node->safe_psql('postgres', "CREATE DATABASE $db");
  $node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.database = '$db'");
  $node->reload;

  for my $r (run_page($node->connstr($db), \@blocks)) {
    # PGC_DOCS_OUTPUT=1 shows what the page printed, to compare with what its text says.
    note("$name printed:\n$r->{output}") if $ENV{PGC_DOCS_OUTPUT} && defined $r->{output};
    $blocks_run++;
    ok($r->{ok}, "$name:$r->{block}{line} runs as written")
      or diag("$name:$r->{block}{line}: $r->{why}\n  errors raised: "
              . (join("\n    ", @{ $r->{errors} }) || 'none') . "\n  block:\n$r->{block}{text}");
  }

  # Everything the page created goes: its databases (the worker is told first) and roles,
  # so the next page starts as a new reader would.
  $node->safe_psql('postgres', "ALTER SYSTEM SET pg_consistency.database = 'postgres'");
  $node->reload;
  my %had_db = map { $_ => 1 } split /,/, $dbs_before;
  my @new_dbs = grep { !$had_db{$_} } split /,/, $node->safe_psql('postgres', 'SELECT string_agg(datname, \',\') FROM pg_database');
  for my $d (@new_dbs) {
    wait_until($node, "SELECT count(*) FROM pg_stat_activity WHERE datname = '$d' AND backend_type LIKE 'pg_consistency%'", '0', 30)
      or fail("the workers of $d did not leave within 30 s of its removal from pg_consistency.database");
    $node->safe_psql('postgres', qq{DROP DATABASE "$d" WITH (FORCE)});
  }
  my %had_role = map { $_ => 1 } split /,/, $roles_before;
  for my $role (grep { !$had_role{$_} } split /,/, $node->safe_psql('postgres', 'SELECT string_agg(rolname, \',\') FROM pg_roles')) {
    $node->safe_psql('postgres', qq{DROP ROLE "$role"});
  }
}
ok($blocks_run > 0, "$blocks_run SQL blocks ran");

# Shell blocks are not run (they build, install or start servers), but they must parse and
# the scripts they name must exist.
for my $page (@pages) {
  my $name = $page =~ s{^\Q$root\E/}{}r;
  for my $b (grep { $_->{lang} =~ /^(bash|sh|shell)$/ } doc_blocks($page)) {
    my ($out, $err) = ('', '');
    my $parses = IPC::Run::run(['bash', '-n'], '<', \$b->{text}, '>', \$out, '2>', \$err);
    my @missing = grep { !-e "$root/$_" } ($b->{text} =~ m{(?:^|[\s;|&(])((?:scripts|bench|test|tools)/[\w./-]*\w)}mg);
    ok($parses && !@missing, "$name:$b->{line}: shell block parses and names scripts that exist")
      or diag("$name:$b->{line}: " . ($parses ? '' : "bash -n: $err") . (@missing ? "missing: @missing" : ''));
  }
}
diag(scalar(@skipped) . " SQL block(s) marked not run" . join('', map { "\n  $_" } @skipped));
note('fenced blocks by language: ' . join(', ', map { "$_ $fences{$_}" } sort keys %fences));

# The checker itself: a page whose blocks break the convention in each way fails block by
# block (so a change in psql's output cannot make every page pass unseen).
{
  my $tmp = "${PostgreSQL::Test::Utils::tmp_check}/docs_selfcheck.md";
  open my $fh, '>:encoding(UTF-8)', $tmp or die $!;
  print $fh join("\n", '```sql', 'SELECT 1;', '```',
    '```sql', "SELECT consistency_nonexistent();", '```',
    '```sql', "SELECT 1/0;", '-- ERROR:  division by zero (SQLSTATE 22012)', '```',
    '```sql', "SELECT 1/0;", '-- ERROR:  division by zero (SQLSTATE CS002)', '```',
    '```sql', "SELECT 1/0;", '-- ERROR:  not this message (SQLSTATE 22012)', '```',
    '```sql', "SELECT 1;", '-- ERROR:  … (SQLSTATE 22012)', '```',
    '```sql', '-- not run: a reason', 'SELECT 1/0;', '```', '');
  close $fh;
  $node->safe_psql('postgres', 'CREATE DATABASE docs_selfcheck');
  my @r = run_page($node->connstr('docs_selfcheck'), [ doc_blocks($tmp) ]);
  is(join(',', map { $_->{ok} ? 'ok' : 'fail' } @r), 'ok,fail,ok,fail,fail,fail',
     'the checker passes a clean block and a documented error, fails an undocumented error, '
     . 'a wrong SQLSTATE, a wrong message and an error that did not happen, and skips a marked block');
}

# The reference table of functions against the catalog.
$node->safe_psql('postgres', 'CREATE DATABASE docs_catalog');
$node->safe_psql('docs_catalog', 'CREATE EXTENSION pg_consistency');
my %catalog = map { split /\t/ } split /\n/, $node->safe_psql('docs_catalog', q{
  SELECT p.oid::regprocedure::text,
         CASE WHEN has_function_privilege('consistency_reader', p.oid, 'EXECUTE') THEN 'consistency_reader'
              WHEN has_function_privilege('consistency_writer', p.oid, 'EXECUTE') THEN 'consistency_writer'
              WHEN has_function_privilege('consistency_admin', p.oid, 'EXECUTE') THEN 'consistency_admin'
              ELSE 'superuser' END
    FROM pg_proc p
   WHERE p.pronamespace = 'consistency'::regnamespace AND p.proname NOT LIKE '\_%'
   ORDER BY 1}, extra_params => ['-F', "\t", '-A']);
my $table = function_table("$root/docs/reference.md");
ok(scalar(keys %catalog) > 0, scalar(keys %catalog) . ' public functions in the catalog');
my @missing = grep { !exists $table->{ s/\s+//gr } } sort keys %catalog;
is(join("\n", @missing), '', 'every public function has a row in docs/reference.md')
  or diag("rows to complete and add:\n" . join("\n", map { "| `$_` | `$catalog{$_}` | … |" } @missing));
my @wrong = map { "$_: documented $table->{ s/\s+//gr }, the catalog grants it to $catalog{$_}" }
  grep { exists $table->{ s/\s+//gr } && $table->{ s/\s+//gr } ne $catalog{$_} } sort keys %catalog;
is(join("\n", @wrong), '', 'each row names the least role that may execute the function');
my %in_catalog = map { (s/\s+//gr) => 1 } keys %catalog;
my @gone = grep { !$in_catalog{$_} } sort keys %$table;
is(join("\n", @gone), '', 'every row of docs/reference.md names a function that exists');

$node->stop;
$kafka->stop;
done_testing();
