# Consistency levels with real replicas and a real pooler: a primary, a standby that lags
# (recovery_min_apply_delay) and one that does not, and PgBouncer in transaction mode in
# front of all three. Read-your-writes on the lagging standby through the pooler with a
# session token (and the control run without a wait, which misses the write), projection
# read-your-writes with a subscription, monotonic reads across the two standbys with
# max_token, gap-safe read_all on a standby with an open writer below a committed one,
# cancel and timeout of a wait, malformed and foreign tokens.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);
use PgcCluster qw(new_node wait_until);
use PgcBouncer;

my $delay = '2s';    # the lagging standby applies commits this late

my $primary = new_node('cs_primary', init => { allows_streaming => 1 },
                       conf => "pg_consistency.horizon_publish_interval = '20ms'\n");
$primary->safe_psql('postgres', q{
  CREATE TABLE balances (account text PRIMARY KEY, deposits int NOT NULL);
  CREATE FUNCTION on_deposit(global_position bigint, stream text, version bigint, type text,
                             data jsonb, metadata jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.balances VALUES (stream, 1)
      ON CONFLICT (account) DO UPDATE SET deposits = public.balances.deposits + 1
  $$;
  SELECT consistency.create_subscription('balances',
           'on_deposit(bigint,text,bigint,text,jsonb,jsonb)'::regprocedure, ARRAY['acct']);
});
$primary->backup('cs_backup');

my $lagging = PostgreSQL::Test::Cluster->new('cs_lagging');
$lagging->init_from_backup($primary, 'cs_backup', has_streaming => 1);
$lagging->append_conf('postgresql.conf', "recovery_min_apply_delay = '$delay'\n");
$lagging->start;
my $fast = PostgreSQL::Test::Cluster->new('cs_fast');
$fast->init_from_backup($primary, 'cs_backup', has_streaming => 1);
$fast->start;
$primary->wait_for_catchup($fast);
$primary->wait_for_catchup($lagging);

my $bouncer = PgcBouncer->start(aliases => { primary => $primary, lagging => $lagging, fast => $fast },
                                pool_size => 1);
note 'pgbouncer pid ' . $bouncer->pid . ' on 127.0.0.1:' . $bouncer->port;

sub q1 { my ($node, $sql) = @_; return $node->safe_psql('postgres', $sql); }

# --- the pooler really shares backends between clients: per-backend state leaks ------
{
  my $b1 = $bouncer->safe_psql('primary', 'SELECT pg_backend_pid()');
  my $b2 = $bouncer->safe_psql('primary', 'SELECT pg_backend_pid()');
  is($b1, $b2, 'two clients of the pooler ran on the same server backend (pool of one)');
  $bouncer->safe_psql('primary', "SELECT consistency.append_event('other-1', NULL, 'E', '{}')");
  my $leaked = $bouncer->safe_psql('primary', 'SELECT consistency.last_appended_position()');
  cmp_ok($leaked, '>', 0,
         "last_appended_position() in a client that appended nothing shows another client's position ($leaked)");
}

# --- read-your-writes on a lagging standby through the pooler --------------------------
{
  # Control: without a wait the standby does not show the write yet.
  $bouncer->safe_psql('primary', "SELECT consistency.append_event('acct-1', NULL, 'Deposited', '{}')");
  is($bouncer->safe_psql('lagging', "SELECT count(*) FROM consistency.read_stream('acct-1')"), '0',
     'control: a read on the lagging standby right after the write misses it');

  $bouncer->safe_psql('primary', "SELECT consistency.append_event('acct-1', NULL, 'Deposited', '{}')");
  # The token is taken in a transaction of its own, after COMMIT: pooler-safe.
  my $token = $bouncer->safe_psql('primary', 'SELECT consistency.session_token()');
  like($token, qr/^pgc1-[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{16}-[0-9a-f]{16}$/, 'session_token is a version 1 token');
  my $t0 = time;
  my $out = $bouncer->safe_psql('lagging', "CALL consistency.await_token('$token', '20 s')",
                                "SELECT count(*) FROM consistency.read_stream('acct-1')");
  my $waited = time - $t0;
  is($out, "t\n2", 'await_token through the pooler: reached, then both writes are visible');
  cmp_ok($waited, '>=', 0.5, sprintf('the wait really waited for replay (%.2f s)', $waited));

  # The function form too.
  $bouncer->safe_psql('primary', "SELECT consistency.append_event('acct-1', NULL, 'Deposited', '{}')");
  $token = $bouncer->safe_psql('primary', 'SELECT consistency.session_token()');
  is($bouncer->safe_psql('lagging', "SELECT consistency.wait_for_token('$token', '20 s')",
                         "SELECT count(*) FROM consistency.read_stream('acct-1')"),
     "t\n3", 'wait_for_token through the pooler: true, then the write is visible');

  # The token taken on another server backend than the write's: the pooler's backend
  # writes, a direct connection (a backend of its own) takes the token.
  my $writer = $bouncer->safe_psql('primary',
    "SELECT consistency.append_event('acct-1', NULL, 'Deposited', '{}')", 'SELECT pg_backend_pid()');
  my ($token_pid, $other) = split /\n/,
    $primary->safe_psql('postgres', 'SELECT pg_backend_pid(); SELECT consistency.session_token()');
  isnt($token_pid, (split /\n/, $writer)[-1], 'the token was taken on another backend than the write');
  is($bouncer->safe_psql('lagging', "CALL consistency.await_token('$other', '20 s')",
                         "SELECT count(*) FROM consistency.read_stream('acct-1')"),
     "t\n4", 'a token taken on another backend covers the write');
}

# --- projection read-your-writes with a subscription -----------------------------------
{
  $bouncer->safe_psql('primary', "SELECT consistency.append_event('acct-2', NULL, 'Deposited', '{}')");
  my $token = $bouncer->safe_psql('primary', 'SELECT consistency.session_token()');
  is($bouncer->safe_psql('lagging', "SELECT count(*) FROM balances WHERE account = 'acct-2'"), '0',
     'control: the projection on the lagging standby does not show the deposit yet');
  is($bouncer->safe_psql('lagging', "CALL consistency.await_token('$token', '20 s', 'balances')",
                         "SELECT deposits FROM balances WHERE account = 'acct-2'"),
     "t\n1", 'await_token with the subscription on the standby: the projection shows the deposit');
  # On the primary: the subscription has handled the event once the wait returns.
  $bouncer->safe_psql('primary', "SELECT consistency.append_event('acct-2', NULL, 'Deposited', '{}')");
  $token = $bouncer->safe_psql('primary', 'SELECT consistency.session_token()');
  is($bouncer->safe_psql('primary', "SELECT consistency.wait_for_token('$token', '20 s', 'balances')",
                         "SELECT deposits FROM balances WHERE account = 'acct-2'"),
     "t\n2", 'wait_for_token with the subscription on the primary: the projection is up to date');
  my ($rc, $o, $err) = $bouncer->psql('primary', "SELECT consistency.wait_for_token('$token', '1 s', 'nope')");
  like($err, qr/subscription "nope" does not exist/, 'an unknown subscription is an error');
}

# --- monotonic reads across two standbys with max_token ---------------------------------
{
  $bouncer->safe_psql('primary', "SELECT consistency.append_event('acct-3', NULL, 'Deposited', '{}')");
  ok(wait_until($fast, "SELECT count(*) FROM consistency.read_stream('acct-3')", '1', 20),
     'the fast standby shows the write');
  # The client read at the fast standby and keeps the token of what it saw.
  my $seen = $bouncer->safe_psql('fast', 'SELECT consistency.session_token()');
  my $client = $bouncer->safe_psql('fast', "SELECT consistency.max_token(NULL, '$seen')");
  is($client, $seen, 'max_token(NULL, t) = t');
  is($bouncer->safe_psql('lagging', "SELECT count(*) FROM consistency.read_stream('acct-3')"), '0',
     'control: the next read, on the lagging standby, would go back in time');
  is($bouncer->safe_psql('lagging', "CALL consistency.await_token('$client', '20 s')",
                         "SELECT count(*) FROM consistency.read_stream('acct-3')"),
     "t\n1", 'waiting for the token of the earlier read first keeps the reads monotonic');
  my $now = $bouncer->safe_psql('lagging', 'SELECT consistency.session_token()');
  my $both = $bouncer->safe_psql('primary', "SELECT consistency.max_token('$client', '$now')");
  is($bouncer->safe_psql('fast', "SELECT consistency.wait_for_token('$both', '20 s')"), 't',
     'the combined token is reached on the other standby as well');
}

# --- gap-safe read_all on a standby ------------------------------------------------------
{
  my $a = $primary->background_psql('postgres');
  $a->query_safe('BEGIN');
  $a->query_safe("SELECT consistency.append_event('gap-a', NULL, 'A', '{}')");
  my $pa = $a->query_safe('SELECT consistency.last_appended_position()');
  q1($primary, "SELECT consistency.append_event('gap-b', NULL, 'B', '{}')");
  my $pb = q1($primary, "SELECT max(global_position) FROM consistency.events WHERE stream = 'gap-b'");
  cmp_ok($pb, '>', $pa, "the committed writer's position $pb lies above the open writer's $pa");
  my $token = q1($primary, 'SELECT consistency.session_token()');
  is(q1($fast, "CALL consistency.await_token('$token', '20 s')"), 't', 'the standby replayed the commit');
  is(q1($fast, "SELECT count(*) FROM consistency.events WHERE global_position = $pb"), '1',
     'the committed event is in the standby\'s table');
  usleep(300_000);    # many publish intervals: a wrong horizon would have been published by now
  cmp_ok(q1($fast, 'SELECT horizon FROM consistency.published_horizon'), '<=', $pa,
         'the replayed horizon stays at or below the open writer\'s position');
  is(q1($fast, "SELECT count(*) FROM consistency.read_all(0, 1000) WHERE global_position >= $pa"), '0',
     'read_all on the standby does not return the committed event above the open writer');
  $a->query_safe('COMMIT');
  $a->quit;
  ok(wait_until($fast, "SELECT string_agg(global_position::text, ',' ORDER BY global_position)
                          FROM consistency.read_all(0, 1000) WHERE global_position >= $pa", "$pa,$pb", 20),
     'once the open writer commits, read_all on the standby returns both events in order');
  is(q1($fast, 'SELECT consistency.read_horizon() > ' . $pb), 't', 'read_horizon() on the standby is the replayed one');
}

# --- timeout and cancel --------------------------------------------------------------------
{
  $bouncer->safe_psql('primary', "SELECT consistency.append_event('acct-4', NULL, 'Deposited', '{}')");
  my $token = $bouncer->safe_psql('primary', 'SELECT consistency.session_token()');
  my $t0 = time;
  is($bouncer->safe_psql('lagging', "SELECT consistency.wait_for_token('$token', '100 ms')"), 'f',
     'a wait that the lagging standby cannot meet in time returns false');
  cmp_ok(time - $t0, '<', 1.5, 'and returns at its timeout');
  is($bouncer->safe_psql('lagging', "CALL consistency.await_token('$token', '0')"), 'f',
     'await_token with a zero timeout reports false at once');

  # A token the standby can never reach (its WAL position far ahead).
  my $far = q1($primary, "SELECT overlay(consistency.session_token() placing '00ffffffffffffff' from 32)");
  my ($rc, $out, $err) = $lagging->psql('postgres', "SET statement_timeout = '300ms'; CALL consistency.await_token('$far', '60 s')");
  like($err, qr/canceling statement due to statement timeout/, 'statement_timeout cancels a waiting CALL');

  my ($in, $wout, $werr) = ('', '', '');
  my $h = IPC::Run::start(['psql', '-X', '-h', $lagging->host, '-p', $lagging->port, '-d', 'postgres',
                           '-c', "SELECT consistency.wait_for_token('$far', '60 s')"],
                          '<', \$in, '>', \$wout, '2>', \$werr);
  ok(wait_until($lagging, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT consistency.wait_for_token%'",
                '1', 20), 'a wait runs');
  $t0 = time;
  q1($lagging, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT consistency.wait_for_token%'");
  $h->finish;
  like($werr, qr/canceling statement due to user request/, 'pg_cancel_backend ends the wait');
  cmp_ok(time - $t0, '<', 5, 'promptly');
}

# --- malformed and foreign tokens ---------------------------------------------------------
{
  my ($rc, $out, $err) = $bouncer->psql('lagging', "SELECT consistency.wait_for_token('not a token')");
  like($err, qr/malformed consistency token/, 'a malformed token is refused');
  my $good = q1($primary, 'SELECT consistency.session_token()');
  my $other = $good =~ s/^pgc1-(.)/'pgc1-' . ($1 eq 'a' ? 'b' : 'a')/er;
  ($rc, $out, $err) = $lagging->psql('postgres', "\\set VERBOSITY verbose\nSELECT consistency.wait_for_token('$other')");
  like($err, qr/CS002/, 'a token of another cluster: CS002');
  like($err, qr/was not issued for this database/, 'with a message that says so');
}

$bouncer->stop;
$fast->stop;
$lagging->stop;
$primary->stop;
done_testing();
