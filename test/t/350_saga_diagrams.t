# Saga diagrams rendered by Mermaid's own CLI (mmdc, headless Chromium): a definition, a
# completed, a compensated, a failed, a waiting and an aborted saga, and a saga whose step
# names are hostile to the Mermaid grammar. Every diagram must render to SVG (a parse
# error fails mmdc), with its labels intact and the path marked. Also: unknown sagas and
# definitions (CS004), NULL arguments (CS002), who may call the functions.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PgcCluster qw(new_node wait_until);
use PgcSaga qw(install_order_flow start_order wait_terminal);

my $root = $ENV{PGC_ROOT} // '.';
my $mermaid_dir = $ENV{PGC_MERMAID_DIR} // "$root/tools/mermaid";
my $mmdc = "$mermaid_dir/node_modules/.bin/mmdc";
my $chromium = '/usr/bin/chromium-headless-shell';
BAIL_OUT("mmdc not found at $mmdc: run scripts/install-deps") unless -x $mmdc;
BAIL_OUT("$chromium not found: run scripts/install-deps") unless -x $chromium;

my $node = new_node('saga_diagrams');
install_order_flow($node);
sub Q { return $node->safe_psql('postgres', $_[0]) }

# Sagas that end each way (the order flow of PgcSaga).
my $completed = start_order($node, 1);
my $compensated = start_order($node, 2, card => 'declined');
Q("SELECT setval('shop.release_calls', 1, false)");
my $failed = start_order($node, 3, card => 'declined', release_failures => 1000000);
is(wait_terminal($node, $completed), 'completed', 'a saga completed');
is(wait_terminal($node, $compensated), 'compensated', 'a saga compensated');
is(wait_terminal($node, $failed), 'failed', 'a saga failed');

# A saga whose names use the grammar: quotes, arrows, colons, keywords, HTML, unicode.
my @hostile = ('end', 'state', '[*]', 'a --> b', 'x : y; z', 'say "hi"', 'classDef red fill:#f00;',
               '%%{init: {}}%%', 'note left of step0', '} {', '<b>bold</b>', "r\xc3\xa9server l\xe2\x80\x99inventaire",
               'direction LR', '-- --- ----');
my $steps = join(",\n", map {
  my $n = $_; $n =~ s/\\/\\\\/g; $n =~ s/"/\\"/g;
  qq({"name": "$n", "action": {"function": "diag.ok"}, "compensation": {"function": "diag.ok"}})
} @hostile[0 .. $#hostile - 1]);
my $last = $hostile[-1];
$steps .= qq(,\n{"name": "$last", "action": {"topic": "diag.commands", "command": "Wait \\"here\\""}});
Q(q{CREATE SCHEMA diag;
    CREATE FUNCTION diag.ok(saga_id uuid, data jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;});
$node->safe_psql('postgres', "SELECT consistency.define_saga('hostile \"saga\" --> x', \$d\$" . qq({"steps": [$steps]}) . "\$d\$)");
my $waiting = Q(q{SELECT consistency.start_saga('hostile "saga" --> x', '{}')});
ok(wait_until($node, "SELECT current_step FROM consistency.sagas WHERE id = '$waiting' AND status = 'running'"
                     . " AND attempts = 1", $last),
   'the hostile saga waits for a reply to its last step');
my $aborted = Q(q{SELECT consistency.start_saga('hostile "saga" --> x', '{}')});
ok(wait_until($node, "SELECT current_step FROM consistency.sagas WHERE id = '$aborted'", $last),
   'a second hostile saga reached its last step');
Q("SELECT consistency.abort_saga('$aborted', 'operator')");

my %diagrams = (
  definition => Q(q{SELECT consistency.saga_definition_diagram('order')}),
  completed => Q("SELECT consistency.saga_diagram('$completed')"),
  compensated => Q("SELECT consistency.saga_diagram('$compensated')"),
  failed => Q("SELECT consistency.saga_diagram('$failed')"),
  hostile_definition => Q(q{SELECT consistency.saga_definition_diagram('hostile "saga" --> x')}),
  hostile_waiting => Q("SELECT consistency.saga_diagram('$waiting')"),
  hostile_aborted => Q("SELECT consistency.saga_diagram('$aborted')"),
);

# The path, as the functions mark it (ids: step<k>, undo<k>, saga_<terminal>).
like($diagrams{definition}, qr/^stateDiagram-v2$/m, 'a stateDiagram-v2');
like($diagrams{definition}, qr/state "reserve_inventory" as step0$/m, 'steps are states');
like($diagrams{definition}, qr/step1 --> undo0 : failed$/m, 'a failed payment leads to the release');
unlike($diagrams{definition}, qr/^\s*class /m, 'a definition marks no path');
like($diagrams{completed}, qr/class step0,step1,step2,step3,saga_completed succeeded$/m,
     'completed: every step succeeded');
like($diagrams{compensated}, qr/class step0 succeeded$/m,
     'compensated: the reservation succeeded');
like($diagrams{compensated}, qr/class step1 failed$/m, 'compensated: the payment failed');
like($diagrams{compensated}, qr/step1 : failed after 3 attempts$/m, 'compensated: after three attempts');
like($diagrams{compensated}, qr/class undo0,saga_compensated compensated$/m, 'compensated: the reservation undone');
like($diagrams{failed}, qr/class undo0,step1,saga_failed failed$/m, 'failed: the release gave up');
like($diagrams{failed}, qr/undo0 : failed after 3 attempts$/m, 'failed: after three attempts');
my $k = $#hostile;
like($diagrams{hostile_waiting}, qr/class step$k current$/m, 'waiting: the command step is current');
like($diagrams{hostile_waiting}, qr/step$k : waiting for the reply to attempt 1$/m, 'waiting: for attempt 1');
like($diagrams{hostile_aborted}, qr/step$k --> saga_aborted : abort_saga$/m, 'aborted: from the command step');

# Mermaid renders each diagram (one browser for all: mmdc's Markdown mode).
my $dir = PostgreSQL::Test::Utils::tempdir();
my @names = sort keys %diagrams;
open(my $md, '>:raw', "$dir/diagrams.md") or die $!;
for my $name (@names) {
  my $text = $diagrams{$name};
  print $md "## $name\n\n```mermaid\n$text\n```\n\n";
  open(my $one, '>:raw', "$dir/$name.mmd") or die $!;
  print $one $text;
  close $one;
}
close $md;
open(my $cfg, '>', "$dir/puppeteer.json") or die $!;
print $cfg qq({"executablePath": "$chromium", "args": ["--no-sandbox", "--disable-gpu"]}\n);
close $cfg;
my ($stdout, $stderr) = ('', '');
my $rendered = IPC::Run::run([$mmdc, '-q', '-p', "$dir/puppeteer.json", '-i', "$dir/diagrams.md",
                               '-o', "$dir/rendered.md"], '>', \$stdout, '2>', \$stderr,
                              IPC::Run::timeout(180));
ok($rendered, 'mmdc renders every diagram') or diag("mmdc: $stdout\n$stderr");
my %svg;
for my $i (0 .. $#names) {
  my $file = "$dir/rendered-" . ($i + 1) . ".svg";
  ok(-s $file, "$names[$i]: SVG written");
  $svg{$names[$i]} = -s $file ? PostgreSQL::Test::Utils::slurp_file($file) : '';
}

# Labels reach the picture whole; the classes colour the states.
like($svg{definition}, qr/reserve_inventory/, 'definition: a step label is drawn');
like($svg{definition}, qr/undo release_inventory|undo reserve_inventory/, 'definition: a compensation is drawn');
like($svg{completed}, qr/class="node[^"]*succeeded/, 'completed: succeeded states are classed');
like($svg{failed}, qr/class="node[^"]*failed/, 'failed: the failed states are classed');
like($svg{compensated}, qr/class="node[^"]*compensated/, 'compensated: undone steps are classed');
for my $name (qw(hostile_definition hostile_waiting)) {
  like($svg{$name}, qr/say "hi"|say &quot;hi&quot;/, "$name: a quoted name is drawn as written");
  like($svg{$name}, qr/a --&gt; b/, "$name: an arrow inside a name is text");
  like($svg{$name}, qr/x : y; z/, "$name: colon and semicolon are text");
  like($svg{$name}, qr/&lt;b&gt;bold&lt;\/b&gt;/, "$name: HTML in a name is text, not markup");
  like($svg{$name}, qr/r\x{c3}\x{a9}server l\x{e2}\x{80}\x{99}inventaire/, "$name: unicode is kept");
}
like($svg{hostile_waiting}, qr/class="node[^"]*current/, 'waiting: the current state is classed');

# A broken diagram does fail: the check can fail.
open(my $bad, '>', "$dir/bad.mmd") or die $!;
print $bad "stateDiagram-v2\n    state \"a\" as s0\n    s0 --> : x\n";
close $bad;
($stdout, $stderr) = ('', '');
my $bad_ok = IPC::Run::run([$mmdc, '-q', '-p', "$dir/puppeteer.json", '-i', "$dir/bad.mmd", '-o', "$dir/bad.svg"],
                           '>', \$stdout, '2>', \$stderr, IPC::Run::timeout(180));
ok(!$bad_ok && $stderr =~ /Parse error/, 'mmdc refuses a diagram with a syntax error');

# Errors and rights.
my ($rc, $out, $err) = $node->psql('postgres', "SELECT consistency.saga_diagram('00000000-0000-4000-8000-000000000009')",
                                   extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/CS004.*saga 00000000-0000-4000-8000-000000000009 does not exist/, 'unknown saga: CS004');
($rc, $out, $err) = $node->psql('postgres', "SELECT consistency.saga_definition_diagram('nope')",
                                extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/CS004.*saga definition "nope" does not exist/, 'unknown definition: CS004');
($rc, $out, $err) = $node->psql('postgres', "SELECT consistency.saga_diagram(NULL)",
                                extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/CS002/, 'NULL saga id: CS002');
($rc, $out, $err) = $node->psql('postgres', "SELECT consistency.saga_definition_diagram(NULL)",
                                extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/CS002/, 'NULL name: CS002');
# diag_nobody may use the schema but holds no role of the extension: EXECUTE decides.
Q("CREATE ROLE diag_reader LOGIN IN ROLE consistency_reader; CREATE ROLE diag_nobody LOGIN;"
  . " GRANT USAGE ON SCHEMA consistency TO diag_nobody");
is($node->safe_psql('postgres', "SELECT consistency.saga_diagram('$failed')", extra_params => ['-U', 'diag_reader']),
   $diagrams{failed}, 'a reader gets the same diagram');
($rc, $out, $err) = $node->psql('postgres', "SELECT consistency.saga_diagram('$failed')",
                                extra_params => ['-U', 'diag_nobody']);
like($err, qr/permission denied for function saga_diagram/, 'a role without consistency_reader may not');
($rc, $out, $err) = $node->psql('postgres', "SELECT consistency.saga_definition_diagram('order')",
                                extra_params => ['-U', 'diag_nobody']);
like($err, qr/permission denied for function saga_definition_diagram/, 'nor read a definition diagram');

$node->stop;
done_testing();
