# Helpers for the outbox/relay TAP tests (test/t/2NN_*.t): a node whose worker relays to a
# PgcKafka broker, bulk publishing with known per-key sequences, and the delivery check
# that reads a topic back (read_committed) and judges completeness, duplicates and
# per-key order by the outbox_id header.
package PgcRelay;

use strict;
use warnings;
use JSON::PP;
use Test::More;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until);
use Exporter 'import';
our @EXPORT_OK = qw(relay_node publish_sequences wait_drained check_delivery relay_status
  publish_logged logged_ids wait_ready relay_worker_pid delivered_exactly_once
  freeze_relay freeze_inside_transaction recovered_open_transaction);

# relay_node($name, $kafka, mode => 'exactly_once', batch_size => 200, conf => "extra")
sub relay_node {
  my ($name, $kafka, %o) = @_;
  my $conf = "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
    . "pg_consistency.relay_mode = '" . ($o{mode} // 'at_least_once') . "'\n"
    . "pg_consistency.batch_size = " . ($o{batch_size} // 1000) . "\n"
    . "pg_consistency.topic_partitions = " . ($o{partitions} // 4) . "\n"
    . ($o{conf} // '');
  my $node = new_node($name, conf => $conf);
  # Every test built on this node needs a running relay: one that never starts ends the
  # test here, with the state it was left in, rather than failing later for another reason.
  wait_until($node, "SELECT relay_state FROM consistency.outbox_status", 'running', 60)
    or die "relay did not reach running within 60 s: "
    . $node->safe_psql('postgres', "SELECT relay_state || ' ' || coalesce(last_error, '') FROM consistency.outbox_status") . "\n";
  return $node;
}

# Publishes $keys * $per_key messages to $topic in transactions of $txn rows. Message g
# (counting from $first) has key "$prefix-(g % keys)" and seq = g / keys, so each key's
# seq grows with its outbox order.
sub publish_sequences {
  my ($node, $topic, %o) = @_;
  my $keys   = $o{keys} // 100;
  my $total  = $keys * ($o{per_key} // 100);
  my $first  = $o{first} // 0;
  my $txn    = $o{txn} // 500;
  my $prefix = $o{prefix} // 'key';
  my $pad    = 'x' x ($o{pad} // 120);
  $node->safe_psql('postgres', <<"SQL");
DO \$\$
DECLARE s int := $first;
BEGIN
  WHILE s < $first + $total LOOP
    PERFORM consistency.publish('$topic', '$prefix-' || (g % $keys),
              jsonb_build_object('seq', g / $keys, 'g', g, 'pad', '$pad'),
              jsonb_build_object('batch_start', s))
       FROM generate_series(s, least(s + $txn, $first + $total) - 1) g;
    COMMIT;
    s := s + $txn;
  END LOOP;
END
\$\$;
SQL
  return $total;
}

# Publishes $n messages over $keys keys in transactions of $txn rows, recording each
# outbox id in public.published_log in the same transaction, so the set of committed ids
# is known exactly even if a crash cuts a client off during COMMIT. Failed transactions
# (the server restarting) are retried until $n rows are in. Returns the rows added.
sub publish_logged {
  my ($node, $topic, %o) = @_;
  my $n    = $o{n} // 1000;
  my $keys = $o{keys} // 50;
  my $txn  = $o{txn} // 100;
  $node->safe_psql('postgres', 'CREATE TABLE IF NOT EXISTS public.published_log (id bigint PRIMARY KEY)');
  my $start = $node->safe_psql('postgres', 'SELECT count(*) FROM public.published_log');
  my $deadline = time + 300;
  while (time < $deadline) {
    my $have = $node->safe_psql('postgres', 'SELECT count(*) FROM public.published_log');
    last if $have - $start >= $n;
    my $rows = $txn < $n - ($have - $start) ? $txn : $n - ($have - $start);
    my ($ret) = $node->psql('postgres', qq{
      INSERT INTO public.published_log
      SELECT consistency.publish('$topic', 'key-' || (g % $keys), jsonb_build_object('g', g, 'pad', repeat('p', 100)))
        FROM generate_series($have, $have + $rows - 1) g});
    usleep(100_000) if $ret != 0;
  }
  return $node->safe_psql('postgres', 'SELECT count(*) FROM public.published_log') - $start;
}

sub logged_ids {
  my ($node) = @_;
  return [ split /\n/, $node->safe_psql('postgres', 'SELECT id FROM public.published_log ORDER BY id') ];
}

# Waits until the server accepts queries again (after a crash restart) and the relay runs.
sub wait_ready {
  my ($node, $timeout) = @_;
  return wait_until($node, 'SELECT relay_state FROM consistency.outbox_status', 'running', $timeout // 60);
}

# PID of the per-database worker that runs the relay (not other pg_consistency workers of
# the database, such as saga workers), or '' when none runs.
sub relay_worker_pid {
  my ($node, $db) = @_;
  $db //= 'postgres';
  my ($ret, $out) = $node->psql('postgres',
    "SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity "
    . "WHERE backend_type = 'pg_consistency worker' AND datname = '$db'");
  return $ret == 0 ? $out : '';
}

sub wait_drained {
  my ($node, $timeout) = @_;
  return wait_until($node, "SELECT pending FROM consistency.outbox_status", '0', $timeout // 120);
}

sub relay_status {
  my ($node) = @_;
  return $node->safe_psql('postgres',
    "SELECT pending || '|' || delivered_total || '|' || dead_lettered || '|' || relay_state || '|' || coalesce(last_error, '') FROM consistency.outbox_status");
}

# check_delivery($kafka, $topic, ids => [expected outbox ids], exactly_once => 1)
# Returns a hash: total, distinct, missing, duplicates, order_violations, bad_headers, msgs.
sub check_delivery {
  my ($kafka, $topic, %o) = @_;
  my $msgs = $kafka->consume($topic, isolation => 'read_committed', timeout => 120);
  my %expected = map { $_ => 1 } @{ $o{ids} // [] };
  my (%seen, %last, $dups, $order, $bad_headers, %first_bad);
  ($dups, $order, $bad_headers) = (0, 0, 0);
  for my $m (@$msgs) {
    my $h  = $m->{headers};
    my $id = $h->{outbox_id};
    if (!defined $id || !defined $h->{ce_id} || ($h->{ce_specversion} // '') ne '1.0'
        || !defined $h->{ce_source} || !defined $h->{ce_type} || !defined $h->{'content-type'}
        || ($h->{ce_time} // '') !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/) {
      $bad_headers++;
      $first_bad{headers} //= JSON::PP->new->canonical->encode($m->{header_list});
      next;
    }
    if ($seen{$id}++) { $dups++; next; }
    my $key = $m->{key} // '';
    if (defined $last{$key} && $id <= $last{$key}) {
      $order++;
      $first_bad{order} //= "key $key: outbox id $id after $last{$key}";
    }
    $last{$key} = $id;
  }
  my @missing = grep { !$seen{$_} } sort { $a <=> $b } keys %expected;
  my %r = (
    total            => scalar @$msgs,
    distinct         => scalar keys %seen,
    missing          => scalar @missing,
    first_missing    => (@missing ? "@missing[0 .. ($#missing < 9 ? $#missing : 9)]" : ''),
    duplicates       => $dups,
    order_violations => $order,
    bad_headers      => $bad_headers,
    first_bad        => \%first_bad,
    msgs             => $msgs,
  );
  return \%r;
}

# Passes when a read_committed consumer of $topic sees each of the outbox ids @$ids once,
# nothing else, in per-key order and with intact headers; notes how many records a
# read_uncommitted consumer sees (aborted attempts included).
sub delivered_exactly_once {
  my ($kafka, $topic, $ids) = @_;
  my $r = check_delivery($kafka, $topic, ids => $ids);
  is($r->{missing}, 0, 'every committed outbox id is in Kafka') or diag("first missing: $r->{first_missing}");
  is($r->{duplicates}, 0, 'no outbox id twice for a read_committed consumer');
  is($r->{total}, scalar @$ids, 'exactly as many messages as committed rows');
  is($r->{order_violations}, 0, 'per-key order kept') or diag($r->{first_bad}{order});
  is($r->{bad_headers}, 0, 'headers intact');
  my $raw = $kafka->consume($topic, isolation => 'read_uncommitted', timeout => 120);
  note(sprintf('read_uncommitted sees %d records, read_committed %d', scalar @$raw, $r->{total}));
  return { committed => $r->{total}, uncommitted => scalar @$raw };
}

# freeze_relay($node, $kafka, $transactional_id): stops the relay worker with SIGSTOP (its
# librdkafka threads too: nothing more reaches the broker), then asks the broker's
# transaction coordinator what it holds for the relay's transactional id. The worker stays
# stopped; the caller kills it, stops the server or continues it (SIGCONT). The freeze comes
# as soon as relay_batches shows a batch recorded (waited for at most 2 s). Returns undef
# when no worker runs, else {pid, state, producer_id, epoch, start_ms, partitions, batch,
# last_batch, inside}: batch is the lowest batch number recorded in relay_batches (the one
# whose Kafka transaction was begun; a prefetched one is above it), last_batch the highest
# (what recovery calls the open batch), inside is true when the coordinator
# holds a transaction Ongoing with partitions added: records produced, neither committed nor
# aborted.
sub freeze_relay {
  my ($node, $kafka, $txid) = @_;
  my $pid = relay_worker_pid($node);
  return undef unless $pid =~ /^\d+$/;
  # Aim (the coordinator judges): wait, for at most 2 s, until a batch is recorded, i.e.
  # between the relay's step 1 and step 4, then freeze at once.
  $node->psql('postgres', q{DO $$ BEGIN
      FOR i IN 1 .. 400 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM consistency.relay_batches);
        PERFORM pg_sleep(0.005);
      END LOOP; END $$});
  kill 'STOP', $pid or return undef;
  my $t = $kafka->describe_transaction($txid);
  # Reading relay_batches takes no lock the frozen worker could hold for long; bounded anyway.
  my ($ret, $batches, $to) = (0, '', 0);
  ($ret, $batches) = $node->psql('postgres',
    'SELECT coalesce(min(batch)::text, \'\') || \' \' || coalesce(max(batch)::text, \'\') FROM consistency.relay_batches',
    timeout => 20, timed_out => \$to);
  my ($batch, $last) = ($ret == 0 && !$to && $batches =~ /^(\d+) (\d+)$/) ? ($1, $2) : ('', '');
  $t->{pid}        = $pid;
  $t->{batch}      = $batch;
  $t->{last_batch} = $last;
  $t->{inside} = ($t->{state} eq 'Ongoing' && @{ $t->{partitions} } > 0 && $t->{batch} ne '') ? 1 : 0;
  return $t;
}

# freeze_inside_transaction($node, $kafka, $txid, tries => 10, before => sub {...}): freezes
# the relay worker at random moments (freeze_relay) until the freeze lands inside an open
# Kafka transaction; a freeze that does not is undone (SIGCONT) and tried again after a pause
# of 0.1-0.5 s. `before` runs before each try (e.g. to keep the relay busy).
# Returns ($frozen, $misses): $frozen is the inside freeze (worker still stopped) or undef
# when none of the tries landed inside.
sub freeze_inside_transaction {
  my ($node, $kafka, $txid, %o) = @_;
  my $misses = 0;
  for my $try (1 .. ($o{tries} // 10)) {
    $o{before}->() if $o{before};
    usleep(int(100_000 + rand(400_000)));
    my $f = freeze_relay($node, $kafka, $txid);
    next unless $f;
    return ($f, $misses) if $f->{inside};
    kill 'CONT', $f->{pid};
    $misses++;
    note("freeze $try missed: coordinator $f->{state}, lowest recorded batch " . ($f->{batch} eq '' ? 'none' : $f->{batch}));
  }
  return (undef, $misses);
}

# recovered_open_transaction($node, $kafka, $txid, $frozen, $log_offset, $label): after the
# relay came back from a crash that hit the open transaction $frozen (freeze_relay), checks
# the recovery path ran: the first recovery the server log shows after $log_offset found the
# progress topic's committed batches below the frozen batch, names as the open batch the
# highest batch recorded at the freeze (the worker did not run in between), and sends it
# again, and
# the coordinator now has the same producer id under a higher epoch (init_transactions fenced
# the dead producer, which aborts its open transaction). Returns true when both hold.
sub recovered_open_transaction {
  my ($node, $kafka, $txid, $frozen, $offset, $label) = @_;
  my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset);
  my ($committed, $open, $what) =
    $log =~ /pg_consistency relay: recovery: Kafka holds batches up to (\d+) committed; open batch (\d+) ([^\n]*)/;
  # One more than seen at the freeze only if the freeze caught a commit between its WAL
  # record and its visibility (crash recovery then counts it).
  my $ok = ok(defined $committed && $committed < $frozen->{batch}
      && ($open == $frozen->{last_batch} || $open == $frozen->{last_batch} + 1)
      && $what eq 'was not committed and will be sent again',
    "$label: recovery found batches $frozen->{batch}..$frozen->{last_batch} (open in Kafka when killed) "
      . "uncommitted and sends them again")
    or diag('recovery lines since the crash: ' . join(' | ', $log =~ /(pg_consistency relay: recovery: [^\n]*)/g));
  my $now = $kafka->describe_transaction($txid);
  $ok &= ok($now->{producer_id} eq $frozen->{producer_id} && $now->{epoch} > $frozen->{epoch},
    "$label: producer $frozen->{producer_id} fenced, epoch $frozen->{epoch} -> $now->{epoch} (now $now->{state})");
  return $ok;
}

1;
