# A hostile tenant cannot take over a consumer process. The handler of a non-superuser
# runs as that role, security-restricted, with search_path = pg_catalog, pg_temp, even
# after an earlier call pointed the session's search_path at the tenant's schema. It
# cannot create temporary tables; it can create a function in the process's pg_temp
# (security-restricted operations forbid temporary tables only), which stays in that
# session but is never called: the process's own statements resolve names in pg_catalog
# alone, and PostgreSQL never looks up function or operator names in pg_temp. The
# operators and functions it planted in its schema to shadow the ones the process's
# statements use (=, +, <, now(), unnest) are never called either. Every message still
# takes effect exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PgcKafka;
use PgcCluster qw(new_node wait_until psql_as);

my $kafka = PgcKafka->start;
my $node = new_node('inbox_tenant', conf => "pg_consistency.kafka_brokers = '" . $kafka->bootstrap . "'\n"
  . "pg_consistency.consumer_dedupe_window = '1h'\n");
sub su { return $node->safe_psql('postgres', $_[0]); }
sub mallory { return psql_as($node, 'mallory', $_[0]); }
$kafka->create_topic('orders', 2);
su(q{CREATE ROLE mallory LOGIN IN ROLE consistency_writer; CREATE SCHEMA mallory AUTHORIZATION mallory;});

mallory(q{
  CREATE TABLE mallory.planted (what text, called_as name);
  GRANT INSERT ON mallory.planted TO PUBLIC;
  CREATE FUNCTION mallory.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO mallory.planted VALUES ('=', current_user); RETURN a OPERATOR(pg_catalog.=) b; END $$;
  CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.text_eq);
  CREATE FUNCTION mallory.int8_pl(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO mallory.planted VALUES ('+', current_user); RETURN a OPERATOR(pg_catalog.+) b; END $$;
  CREATE OPERATOR mallory.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = mallory.int8_pl);
  CREATE FUNCTION mallory.int8_lt(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO mallory.planted VALUES ('<', current_user); RETURN a OPERATOR(pg_catalog.<) b; END $$;
  CREATE OPERATOR mallory.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = mallory.int8_lt);
  CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO mallory.planted VALUES ('now', current_user); RETURN pg_catalog.now(); END $$;
  CREATE FUNCTION mallory.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO mallory.planted VALUES ('unnest', current_user); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;

  CREATE TABLE mallory.log (off bigint, who name, superuser boolean, path text);
  CREATE TABLE mallory.tries (off bigint, what text, error text);
  -- Records who runs it and with which path, then tries to leave traps for whatever the
  -- process runs next: the session's search_path, objects in pg_temp.
  CREATE FUNCTION mallory.on_msg(topic text, part int, off bigint, k text, v jsonb, h jsonb) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO mallory.log VALUES (off, current_user,
        (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user),
        pg_catalog.current_setting('search_path'));
      PERFORM now();  -- unqualified: pg_catalog's, never a planted one
      PERFORM pg_catalog.set_config('search_path', 'mallory, pg_catalog, pg_temp', false);
      BEGIN
        CREATE TEMP TABLE consumer_offsets (consumer text, topic text, partition int, next_offset bigint);
      EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.tries VALUES (off, 'temp table', SQLERRM);
      END;
      BEGIN
        CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql
          AS 'INSERT INTO mallory.planted VALUES (''pg_temp.now'', current_user) RETURNING pg_catalog.now()';
      EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.tries VALUES (off, 'temp function', SQLERRM);
      END;
    END $$;
});
mallory(q{SELECT consistency.create_consumer('mallory-in', ARRAY['orders'], 'mallory.on_msg(text,int,bigint,text,jsonb,jsonb)')});
ok(wait_until($node, q{SELECT count(*) FROM consistency.consumer_offsets}, '2', 60), 'partitions assigned');

$kafka->produce('orders', map { { key => "k$_", value => qq({"n": $_}), partition => $_ % 2, headers => [ce_id => "id-$_"] } } 1 .. 20);
ok(wait_until($node, q{SELECT consumed FROM consistency.consumers}, '20', 60), 'all 20 messages applied')
  or diag(su('SELECT * FROM consistency.consumers'));
is(su(q{SELECT sum(next_offset) FROM consistency.consumer_offsets}), '20', 'the stored offsets advanced past all 20');
is(su(q{SELECT count(*) || '/' || count(DISTINCT off) FROM mallory.log}), '20/10', 'the handler ran once per message');
is(su(q{SELECT string_agg(DISTINCT who || '/' || superuser, ',') FROM mallory.log}), 'mallory/false',
   'as its creator, never as a superuser');
is(su(q{SELECT string_agg(DISTINCT path, ',') FROM mallory.log}), 'pg_catalog, pg_temp',
   'always with the pinned search_path, though each call had pointed it at its schema');
is(su(q{SELECT count(*) FROM mallory.tries WHERE what = 'temp table' AND error LIKE '%within security-restricted operation%'}),
   '20', 'no temporary table could be created (security-restricted)')
  or diag(su('SELECT DISTINCT what, error FROM mallory.tries'));
is(su(q{SELECT count(*) FROM mallory.tries WHERE what = 'temp function' AND error LIKE '%already exists%'}), '19',
   'a function in pg_temp could be created once, and stayed in the process\'s session');
is(su(q{SELECT count(*) FROM mallory.planted}), '0',
   'none of the planted operators or functions (pg_temp.now() included) was ever called')
  or diag(su('SELECT what, called_as, count(*) FROM mallory.planted GROUP BY 1, 2'));
is(su(q{SELECT failed || '/' || dead_lettered || '/' || deduplicated FROM consistency.consumers}), '0/0/0',
   'no failure');

# Re-delivered ce_ids are skipped by the process's own statements (dedupe, offsets) with
# the traps still set in its session.
$kafka->produce('orders', map { { key => "k$_", value => qq({"n": $_}), partition => $_ % 2, headers => [ce_id => "id-$_"] } } 1 .. 4);
ok(wait_until($node, q{SELECT deduplicated FROM consistency.consumers}, '4', 30), 're-delivered messages deduplicated');
is(su(q{SELECT count(*) FROM mallory.planted}), '0', 'still nothing planted was called');
is(su(q{SELECT count(*) FROM mallory.log}), '20', 'and the handler did not run again');

$node->stop;
$kafka->stop;
done_testing();
