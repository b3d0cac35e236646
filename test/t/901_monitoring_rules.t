# The alert rules in docs/monitoring/alerts.yml load in Prometheus (promtool check rules)
# and fire as their unit tests in test/monitoring/alerts_test.yml expect (promtool test
# rules: worker down, dead letters growing, saga failed, subscription parked and lagging,
# relay down).
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $out = `promtool check rules $root/docs/monitoring/alerts.yml 2>&1`;
is($? >> 8, 0, 'promtool check rules') or diag($out);
like($out, qr/SUCCESS: (\d+) rules found/, 'rules found');
$out = `cd $root/test/monitoring && promtool test rules alerts_test.yml 2>&1`;
is($? >> 8, 0, 'promtool test rules') or diag($out);
# Every alert links a runbook section that docs/operations.md has.
my $rules = do { local (@ARGV, $/) = "$root/docs/monitoring/alerts.yml"; <> };
my $ops = do { local (@ARGV, $/) = "$root/docs/operations.md"; <> };
my %anchors = map { my $a = lc $_; $a =~ s/[^a-z0-9 -]//g; $a =~ tr/ /-/; ($a => 1) } ($ops =~ /^#{2,4} (.+)$/mg);
my @links = $rules =~ /runbook_url: "docs\/operations\.md#([^"]+)"/g;
is(scalar(@links), scalar(() = $rules =~ /- alert:/g), 'every alert has a runbook link');
is(join(',', grep { !$anchors{$_} } @links), '', 'every runbook link names a section of docs/operations.md');
done_testing();
