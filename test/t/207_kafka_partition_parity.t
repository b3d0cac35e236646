# consistency.kafka_partition(key, n) against Kafka's own Java client for keys that are not
# ASCII: the Java producer (default partitioner, murmur2 of the key's UTF-8 bytes) sends
# multi-byte, combining, right-to-left, emoji and long keys; the partition each landed on,
# read back from the broker, is the one the SQL function names (and so the relay's
# librdkafka partitioner, which TAP 200 checks against this function).
use strict;
use warnings;
use utf8;
use Encode qw(encode decode);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(new_node);

my $kafka = PgcKafka->start;
my $node  = new_node('partition_parity');

my @fixed = ('é', 'über', 'naïve café', '日本語のキー', '键', 'ключ', 'مفتاح', 'מפתח', '😀', '👩‍💻 order',
  "e\x{301}", "\x{1F600}\x{1F601}\x{1F602}", 'Ω≈ç√∫', "a\x{a0}b", 'ǅ', 'ß' x 300);
my @keys = @fixed;
for my $i (0 .. 199) {
  push @keys, sprintf('%s-%d', ('ключ', '注文', 'commande-é', '🛒', 'طلب')[ $i % 5 ], $i);
}

for my $parts (7, 12) {
  my $topic = "parity$parts";
  $kafka->create_topic($topic, $parts);
  my $in = join '', map { encode('UTF-8', "$keys[$_]\tv$_\n") } 0 .. $#keys;
  my ($out, $err) = ('', '');
  IPC::Run::run([ $PgcKafka::TOOL, 'produce-java', $kafka->dir, $topic ], '<', \$in, '>', \$out, '2>', \$err,
    IPC::Run::timeout(120))
    or BAIL_OUT("the Java producer failed: $err");

  my $msgs = $kafka->consume($topic);
  is(scalar @$msgs, scalar @keys, "$parts partitions: every key sent by the Java client arrived");
  my %java = map { ($_->{key} => $_->{partition}) } @$msgs;
  is(scalar(keys %java), scalar @keys, "$parts partitions: every key arrived once, byte for byte");

  my $values = join ',', map { my $k = encode('UTF-8', $_); $k =~ s/'/''/g; "('$k')" } @keys;
  my $rows = decode('UTF-8', $node->safe_psql('postgres',
    "SET client_encoding = 'UTF8'; SELECT k, consistency.kafka_partition(k, $parts) FROM (VALUES $values) v(k)"));
  my %sql = map { split /\|/, $_, 2 } split /\n/, $rows;
  my @differ = grep { !defined $java{$_} || !defined $sql{$_} || $java{$_} != $sql{$_} } @keys;
  is(scalar @differ, 0, "$parts partitions: kafka_partition() names the Java client's partition for all "
    . scalar(@keys) . ' keys') or diag(join "\n", map { encode('UTF-8', "$_: java " . ($java{$_} // '?') . ', sql ' . ($sql{$_} // '?')) } @differ[0 .. ($#differ < 9 ? $#differ : 9)]);
  my %used = map { ($_ => 1) } values %java;
  is(scalar(keys %used), $parts, "$parts partitions: the keys spread over every partition (the check is not vacuous)");
}

$node->stop;
$kafka->stop;
done_testing();
