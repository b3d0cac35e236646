# Helpers for the two-phase commit TAP tests (test/t/40N_*.t): participant clusters, the
# bank the distributed transfers move money in, the SQL of one transfer, and the wait for
# prepared transactions to be resolved.
package PgcTwopc;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Time::HiRes qw(usleep time);
use Exporter 'import';
our @EXPORT_OK = qw(participant_node bank_sql transfer_sql prepared_count wait_none_prepared);

# A started cluster $name that allows $max_prepared prepared transactions, with $sql run
# in its database postgres.
sub participant_node {
  my ($name, $max_prepared, $sql) = @_;
  my $n = PostgreSQL::Test::Cluster->new($name);
  $n->init;
  $n->append_conf('postgresql.conf', "max_prepared_transactions = $max_prepared\n");
  $n->start;
  $n->safe_psql('postgres', $sql);
  return $n;
}

# Accounts 1 .. $accounts holding 1000 each, and the ledger of the transfers.
sub bank_sql {
  my ($accounts) = @_;
  return <<"SQL";
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, $accounts) g;
CREATE TABLE ledger (transfer_id bigint NOT NULL, account int NOT NULL, delta bigint NOT NULL);
-- A ledger row with |delta| = 13 passes its statement but fails at PREPARE (deferred check).
CREATE FUNCTION refuse_13() RETURNS trigger LANGUAGE plpgsql AS
  \$\$BEGIN RAISE EXCEPTION 'deferred check refused transfer %', NEW.transfer_id; END\$\$;
CREATE CONSTRAINT TRIGGER refuse_13 AFTER INSERT ON ledger DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW WHEN (abs(NEW.delta) = 13) EXECUTE FUNCTION refuse_13();
SQL
}

# SQL of one distributed transfer $tid in its own transaction: @legs = [participant,
# account, delta], ...
sub transfer_sql {
  my ($tid, @legs) = @_;
  my $sql = "BEGIN;\n";
  for my $l (@legs) {
    my ($pn, $acct, $delta) = @$l;
    $sql .= "SELECT consistency.remote_exec('$pn', 'UPDATE accounts SET balance = balance + ($delta) WHERE id = $acct');\n";
    $sql .= "SELECT consistency.remote_exec('$pn', 'INSERT INTO ledger VALUES ($tid, $acct, $delta)');\n";
  }
  return $sql . "COMMIT;\n";
}

# How many prepared transactions the nodes hold.
sub prepared_count {
  my $n = 0;
  $n += $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') for @_;
  return $n;
}

# Waits up to $timeout seconds until the nodes hold no prepared transaction; returns how
# many are left (0 once they are gone).
sub wait_none_prepared {
  my ($timeout, @nodes) = @_;
  my $deadline = time + $timeout;
  while (1) {
    my $left = prepared_count(@nodes);
    return $left if $left == 0 || time >= $deadline;
    usleep(100_000);
  }
}

1;
