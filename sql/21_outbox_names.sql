-- Names in outbox error messages: clipped on a character boundary (a client in another
-- encoding can still convert the message), never echoed whole when huge.
SET client_min_messages = warning;

\i sql/include/helpers.sql

-- An odd number of ASCII bytes before two-byte characters: a cut by bytes would split one.
SELECT e.code, length(e.message) < 300 AS short, left(e.message, 30) AS starts,
       right(e.message, 70) AS ends, convert_to(e.message, 'LATIN1') IS NOT NULL AS converts_to_latin1
  FROM pg_temp.error_parts(format($q$SELECT consistency.publish(%L, 'k', '{}'::jsonb)$q$,
                                  'x' || repeat(chr(233), 300))) e;

-- 100 kB of name: the message stays short and says how long the name was.
SELECT e.code, length(e.message) < 400 AS short, e.message LIKE '%(100000 bytes)%' AS says_length
  FROM pg_temp.error_parts(format($q$SELECT consistency.publish(%L, 'k', '{}'::jsonb)$q$,
                                  repeat('t', 100000))) e;

-- A header name with multibyte characters past the clip point.
SELECT e.code, length(e.message) < 400 AS short, convert_to(e.message, 'LATIN1') IS NOT NULL AS converts_to_latin1
  FROM pg_temp.error_parts(format($q$SELECT consistency.publish('t', 'k', '{}'::jsonb, %L::jsonb)$q$,
                                  jsonb_build_object('x' || repeat(chr(233), 300), '1')::text)) e;

-- Categories too.
SELECT e.code, length(e.message) < 400 AS short, convert_to(e.message, 'LATIN1') IS NOT NULL AS converts_to_latin1
  FROM pg_temp.error_parts(format($q$SELECT consistency.route_events(%L, 't')$q$,
                                  'x' || repeat(chr(233), 300) || '-')) e;

-- The same error reaches a LATIN1 client as CS002, not as a conversion failure (22021).
SET client_encoding = 'LATIN1';
\set VERBOSITY sqlstate
SELECT consistency.publish('x' || repeat(chr(233), 300), 'k', '{}'::jsonb);
SELECT consistency.publish('t', 'k', '{}'::jsonb, jsonb_build_object('x' || repeat(chr(233), 300), '1'));
\set VERBOSITY default
RESET client_encoding;
