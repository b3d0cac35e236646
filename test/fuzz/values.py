"""Hostile argument values for scripts/sqlfuzz, by PostgreSQL type.

Every generator takes a random.Random and the Known names of the database (streams,
sagas, subscriptions, …) and returns a Value: the SQL text of the argument (already
quoted, with its cast) so the call is reproducible from its printed form.
"""
import json
import uuid


def lit(s):
    """A standard-conforming string literal (psycopg2 is not needed to quote: the fuzzer
    prints exactly what it sends)."""
    return "'" + s.replace("'", "''") + "'"


def blit(b):
    return "'\\x" + b.hex() + "'::bytea"


class Known:
    """Names of objects that exist, so that calls also reach past the lookups."""

    def __init__(self):
        self.streams = ['order-1', 'customer-2', 'lonely', 'saga-00000000-0000-0000-0000-000000000000']
        self.categories = ['order', 'customer', 'saga', 'transfer']
        self.subscriptions = ['orders_projection', 'customers_broken', 'everything']
        self.sagas = ['order_flow', 'slow_undo', 'shipping', 'flaky']
        self.saga_ids = [str(uuid.UUID(int=0))]
        self.steps = ['a', 'b', 'reserve', 'ship']
        self.consumers = ['payments', 'raw', 'saga_replies']
        self.topics = ['orders.commands', 'payments.events', 'refunds', 'raw.bytes', 'customers.events']
        self.participants = ['remote', 'down']
        self.roles = ['consistency_writer', 'consistency_reader', 'fuzz_admin', 'public', 'pg_monitor']
        # Handlers with the right signature; the hostile_* ones misbehave (test/fuzz/populate.sql).
        self.handlers = {
            'subscription': ['fuzz_app.on_event(bigint,text,bigint,text,jsonb,jsonb)',
                             'fuzz_app.on_event_fails(bigint,text,bigint,text,jsonb,jsonb)',
                             'fuzz_app.hostile_handler(bigint,text,bigint,text,jsonb,jsonb)'],
            'consumer': ['fuzz_app.on_message(text,int,bigint,text,jsonb,jsonb)',
                         'consistency.handle_saga_reply(text,int,bigint,text,jsonb,jsonb)'],
            'consumer_raw': ['fuzz_app.on_raw(text,int,bigint,text,bytea,jsonb)'],
            'upcaster': ['fuzz_app.upcast_v1(jsonb)', 'fuzz_app.hostile_upcast_null(jsonb)',
                         'fuzz_app.hostile_upcast_array(jsonb)', 'fuzz_app.hostile_upcast_raise(jsonb)',
                         'fuzz_app.hostile_upcast_escape(jsonb)'],
            'aggregate': ['fuzz_app.apply_order(jsonb,text,jsonb)', 'fuzz_app.hostile_apply_null(jsonb,text,jsonb)',
                          'fuzz_app.hostile_apply_scalar(jsonb,text,jsonb)'],
        }


UNICODE = ['ü', 'é', '東京', '🙂', '\u202e', 'a\u0301', '\ufeff', '\u2028', 'Ω≈ç√', '\U0001F4A9' * 3, 'ß', '\u00a0']
CONTROL = ['\x01', '\x07', '\x08', '\t', '\n', '\r', '\x1b[31m', '\x7f', '\x1f']
SPECIAL = ["'", '"', '\\', '%s', '%n%n%n', '%', '$1', '--', '/*', ';', "'; DROP TABLE consistency.events; --",
           '${x}', '{{}}', 'NULL', 'null', '-', '.', '..', '_', ' ', '  ', '\\x00', '\\u0000']


def rand_text(r, known, max_len=40):
    kind = r.random()
    if kind < 0.15:
        return ''
    if kind < 0.35:
        return r.choice(known.streams + known.subscriptions + known.sagas + known.consumers + known.topics
                        + known.participants + known.categories + known.steps)
    if kind < 0.5:
        return ''.join(r.choice(UNICODE + CONTROL + SPECIAL + ['a', 'b', '-', '.', '0'])
                       for _ in range(r.randint(1, 8)))
    if kind < 0.6:
        return r.choice(SPECIAL)
    if kind < 0.7:
        # the edges of Kafka's topic rule and of name lengths
        return r.choice(['a' * 249, 'a' * 250, 'a' * 63, 'a' * 64, 'x-' * 200, '.' * 249, '-' * 3])
    if kind < 0.75:
        return r.choice(['a', 'é', '🙂', '-']) * r.choice([1000, 5000])
    return ''.join(r.choice('abcdefghijklmnopqrstuvwxyz0123456789-._ ') for _ in range(r.randint(1, max_len)))


def raw_bytes_text(r):
    """Bytes that are not UTF-8, as an escape string: refused by a UTF-8 database (22021),
    stored as they are by an SQL_ASCII one, where they reach our code."""
    parts = [r.choice(['\\xff', '\\xc3', '\\xc3\\x28', '\\xed\\xa0\\x80', '\\xe6\\x9d', '\\x80', 'a', '-', '\\\\',
                       '\\x22', '\\x27\\x27', '\\xf0\\x9f\\x99'])
             for _ in range(r.randint(1, 12))]
    return "E'" + ''.join(parts) + "'"


def v_text(r, known):
    if r.random() < 0.08:
        return raw_bytes_text(r) + '::text'
    if r.random() < 0.04:
        # huge, built by the server: the statement (and the server log) stays short
        return 'pg_catalog.repeat(%s, %d)' % (lit(r.choice(['a', 'é', '🙂', '-', 'a-'])), r.choice([100000, 1000000]))
    return lit(rand_text(r, known)) + '::text'


INTS = [0, 1, -1, 2, 7, 100, 1000, 2 ** 31 - 1, -2 ** 31, 2 ** 15]
BIGS = INTS + [2 ** 63 - 1, -2 ** 63, 2 ** 62, 2 ** 32, -2 ** 32]


def v_int(r, known):
    return '%d::integer' % (r.choice(INTS) if r.random() < 0.7 else r.randint(-5, 5000))


def v_bigint(r, known):
    return '%d::bigint' % (r.choice(BIGS) if r.random() < 0.7 else r.randint(-5, 500))


def v_bool(r, known):
    return r.choice(['true', 'false'])


def v_uuid(r, known):
    k = r.random()
    if k < 0.4 and known.saga_ids:
        return lit(r.choice(known.saga_ids)) + '::uuid'
    if k < 0.6:
        return lit(r.choice(['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'])) + '::uuid'
    if k < 0.7:
        return lit(r.choice(['', 'not-a-uuid', '{00000000-0000-0000-0000-000000000000}', '0' * 33])) + '::uuid'
    return lit(str(uuid.UUID(int=r.getrandbits(128)))) + '::uuid'


INTERVALS = ['0', '1 microsecond', '1 ms', '10 ms', '-1 second', '-10 years', '1 day', '100 years',
             '178000000 years', '-178000000 years', '2147483647 days', '1 month', '0.5 seconds']


def v_interval(r, known):
    return lit(r.choice(INTERVALS)) + '::interval'


def v_bytea(r, known):
    k = r.random()
    if k < 0.2:
        return "''::bytea"
    if k < 0.4:
        return blit(b'\x00' * r.choice([1, 10, 1000]))
    if k < 0.6:
        return blit(bytes(r.getrandbits(8) for _ in range(r.randint(1, 64))))
    if k < 0.7:
        return blit(b'\xff\xfe\xc3\x28\xed\xa0\x80')  # invalid UTF-8
    if k < 0.75:
        return "pg_catalog.decode(pg_catalog.repeat('ab', %d), 'hex')" % r.choice([1 << 16, 1 << 20])
    return blit(json.dumps(rand_json(r, known, 2)).encode())


def v_text_array(r, known):
    k = r.random()
    if k < 0.15:
        return "'{}'::text[]"
    if k < 0.25:
        return "'{NULL}'::text[]"
    if k < 0.3:
        return "'{{a,b},{c,d}}'::text[]"
    if k < 0.35:
        return "ARRAY['x']::text[] OPERATOR(pg_catalog.||) pg_catalog.array_fill('t'::text, ARRAY[%d])" % r.choice([1000, 100000])
    items = [rand_text(r, known, 20) if r.random() < 0.6 else r.choice(known.topics + known.categories)
             for _ in range(r.randint(1, 4))]
    return 'ARRAY[%s]::text[]' % ', '.join(lit(i) for i in items)


def rand_scalar(r, known):
    return r.choice([None, True, False, 0, -1, 1.5, 1e308, -1e-308, 10 ** 40, '', 'x', rand_text(r, known, 10),
                     r.choice(UNICODE), r.choice(CONTROL), '\u0000'.replace('\u0000', '\\u0000')])


def rand_json(r, known, depth=3):
    k = r.random()
    if depth <= 0 or k < 0.3:
        return rand_scalar(r, known)
    if k < 0.65:
        return {rand_text(r, known, 8): rand_json(r, known, depth - 1) for _ in range(r.randint(0, 4))}
    return [rand_json(r, known, depth - 1) for _ in range(r.randint(0, 4))]


def event(r, known):
    ev = {'type': r.choice(['OrderPlaced', 'X', '', 'a' * 300, 7, None, rand_text(r, known, 12)]),
          'data': r.choice([{}, {'a': 1}, [], 'str', None, rand_json(r, known, 2)])}
    if r.random() < 0.4:
        ev['metadata'] = r.choice([{}, {'m': 1}, [], 'x', None, rand_json(r, known, 2)])
    if r.random() < 0.4:
        ev['id'] = r.choice([str(uuid.UUID(int=r.getrandbits(128))), 'not-a-uuid', '', 1,
                             '00000000-0000-0000-0000-000000000000', '{00000000-0000-0000-0000-000000000000}',
                             'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a0eebc999c0b4ef8bb6d6bb9bd380a11'])
    if r.random() < 0.2:
        ev[rand_text(r, known, 6)] = rand_json(r, known, 1)
    if r.random() < 0.1:
        del ev['type']
    return ev


def step(r, known):
    name = r.choice(['a', 'b', 'a', '', 'x' * 200, rand_text(r, known, 8), 1, None])
    action = r.choice([{'function': 'fuzz_app.step_a'}, {'function': 'pg_catalog.now'},
                       {'function': 'fuzz_hostile.lower'}, {'function': ''}, {'function': 'no.such.fn'},
                       {'function': "x'); DROP TABLE t; --"}, {'topic': 'shipping.commands', 'command': 'Ship'},
                       {'topic': 'bad topic', 'command': 'X'}, {'topic': 'a' * 250, 'command': ''},
                       {'function': 'fuzz_app.step_a', 'topic': 't'}, {}, 'fuzz_app.step_a', None,
                       rand_json(r, known, 2)])
    s = {'name': name, 'action': action}
    if r.random() < 0.5:
        s['compensation'] = r.choice([None, {'function': 'fuzz_app.undo_a'}, {'topic': 't', 'command': 'Undo'},
                                      [], 'x', rand_json(r, known, 1)])
    if r.random() < 0.5:
        s['timeout'] = r.choice(['30 seconds', '0', '-1 s', 'abc', '', 1, None, '178000000 years', '1 ms',
                                 '1e10 years', '2147483648 days', '99999999999999999999 ms'])
    if r.random() < 0.5:
        s['retry'] = r.choice([{'max_attempts': r.choice([0, 1, -1, 3, 2 ** 31, 2 ** 63, 1.5, '3', None])},
                               {'max_attempts': 2, 'backoff': r.choice(['0 ms', '-1 s', 'x', '1e9 years', 5])},
                               {'backoff': '1 s', 'max_backoff': r.choice(['0', '1 ms', 'never', '100 years'])},
                               [], 'retry', None])
    return s


def saga_definition(r, known):
    d = {'steps': [step(r, known) for _ in range(r.choice([0, 1, 2, 3, 50]))]}
    if r.random() < 0.3:
        d['timeout'] = r.choice(['5 minutes', '-1 s', 'x', 0, None])
    if r.random() < 0.1:
        d = r.choice([{'steps': {}}, {'steps': None}, {}, {'steps': 'a'}, {'Steps': []}])
    return d


def deep(n, arrays):
    return ('[' * n + ']' * n) if arrays else ('{"a":' * n + '1' + '}' * n)


RAW = '@@raw@@'


def raw_json(r, known):
    """JSON whose strings hold bytes that are not UTF-8 (see raw_bytes_text)."""
    obj = r.choice([
        [{'type': RAW, 'data': {RAW: RAW}, 'metadata': {'m': RAW}}],
        {'steps': [{'name': RAW, 'action': {'function': 'fuzz_app.step_a'}, 'compensation': {'topic': RAW, 'command': RAW}}]},
        {'steps': [{'name': 'a', 'action': {'topic': 'shipping.commands', 'command': RAW}, 'timeout': RAW}]},
        {RAW: RAW, 'ce_id': RAW, 'saga_id': RAW},
        {'reason': RAW, 'n': 1},
    ])
    text = json.dumps(obj).replace('\\', '\\\\').replace("'", "''")
    while RAW in text:
        text = text.replace(RAW, raw_bytes_text(r)[2:-1].replace('\\x22', 'x').replace('\\\\', 'b'), 1)
    return "E'" + text + "'::jsonb"


def v_jsonb(r, known):
    k = r.random()
    if k < 0.08:
        return raw_json(r, known)
    k = r.random()
    if k < 0.08:
        # malformed text: rejected by jsonb's input function (22P02), never by our code
        return lit(r.choice(['{', '[1,', '{"a":}', 'nul', "{'a': 1}", '{"a": 1,}', '\x01', '', '{"\\u0000": 1}',
                             '"\\ud800"', '1e999999'])) + '::jsonb'
    if k < 0.1:
        return "pg_catalog.repeat('[', 100000)::jsonb"
    if k < 0.15:
        return lit(deep(r.choice([10, 1000, 5000]), r.random() < 0.5)) + '::jsonb'
    if k < 0.2:
        n = r.choice([1000, 20000])
        return ("(SELECT pg_catalog.jsonb_object_agg('k' OPERATOR(pg_catalog.||) g::text, g) "
                "FROM pg_catalog.generate_series(1, %d) g)" % n)
    if k < 0.45:
        evs = [event(r, known) for _ in range(r.choice([0, 1, 2, 3, 10]))]
        if r.random() < 0.1 and evs:
            evs = evs[0]  # an object where an array is expected
        return lit(json.dumps(evs, ensure_ascii=r.random() < 0.5)) + '::jsonb'
    if k < 0.65:
        return lit(json.dumps(saga_definition(r, known), ensure_ascii=r.random() < 0.5)) + '::jsonb'
    if k < 0.75:
        h = {rand_text(r, known, 10): rand_scalar(r, known) for _ in range(r.randint(0, 5))}
        return lit(json.dumps(h)) + '::jsonb'
    return lit(json.dumps(rand_json(r, known), ensure_ascii=r.random() < 0.5)) + '::jsonb'


def v_regprocedure(r, known):
    k = r.random()
    if k < 0.4:
        return lit(r.choice([h for hs in known.handlers.values() for h in hs])) + '::regprocedure'
    if k < 0.7:
        return lit(r.choice(['pg_catalog.now()', 'pg_catalog.pg_sleep(double precision)',
                             'consistency.check_integrity()', 'consistency.handle_saga_reply(text,int,bigint,text,jsonb,jsonb)',
                             'pg_catalog.lower(text)', 'pg_catalog.pg_terminate_backend(integer,bigint)',
                             'pg_catalog.jsonb_strip_nulls(jsonb)', 'fuzz_hostile.lower(text)',
                             'pg_catalog.int4in(cstring)', 'pg_catalog.array_in(cstring,oid,integer)'])) + '::regprocedure'
    if k < 0.85:
        return '%d::oid::regprocedure' % r.choice([0, 1, 2 ** 32 - 1, 16384, r.randint(1, 20000)])
    return lit(r.choice(['no_such_fn(int)', 'nosuchschema.f()', '-', 'pg_catalog.now'])) + '::regprocedure'


def v_regrole(r, known):
    k = r.random()
    if k < 0.6:
        return lit(r.choice(known.roles)) + '::regrole'
    if k < 0.8:
        return '%d::oid::regrole' % r.choice([0, 10, 2 ** 32 - 1, r.randint(1, 20000)])
    return lit(r.choice(['nobody_at_all', '-', 'PUBLIC', '"fuzz_admin"'])) + '::regrole'


def v_unknown(r, known, typ):
    k = r.random()
    if k < 0.5:
        return 'NULL::%s' % typ
    return lit(rand_text(r, known, 10)) + '::' + typ


BY_TYPE = {
    'text': v_text, 'character varying': v_text, 'name': v_text,
    'integer': v_int, 'smallint': v_int, 'bigint': v_bigint, 'boolean': v_bool,
    'uuid': v_uuid, 'interval': v_interval, 'bytea': v_bytea, 'jsonb': v_jsonb,
    'json': v_jsonb, 'text[]': v_text_array, 'regprocedure': v_regprocedure, 'regrole': v_regrole,
}
# A value of another type, for calls with wrong argument types.
WRONG = ['1::integer', "'{}'::jsonb", 'true', "'x'::text", "'\\x00'::bytea", "'1 s'::interval",
         "'00000000-0000-0000-0000-000000000000'::uuid", "ARRAY[1,2]", "'x'::name", '1.5::numeric', 'pg_catalog.now()']


def value(r, known, typ):
    """A hostile value of type typ (its SQL text)."""
    gen = BY_TYPE.get(typ)
    if gen is None:
        return v_unknown(r, known, typ)
    return gen(r, known)


def valid_event(r, known):
    ev = {'type': r.choice(['OrderPlaced', 'OrderPaid', 'CustomerRegistered', 'X']),
          'data': {'n': r.randint(0, 9), 's': r.choice(UNICODE)}}
    if r.random() < 0.3:
        ev['id'] = str(uuid.UUID(int=r.getrandbits(128)))
    if r.random() < 0.3:
        ev['metadata'] = {'m': r.choice(UNICODE + CONTROL)}
    return ev


def valid_definition(r, known):
    steps = []
    for n in range(r.randint(1, 3)):
        if r.random() < 0.7:
            s = {'name': 's%d' % n, 'action': {'function': r.choice(['fuzz_app.step_a', 'fuzz_app.step_b'])}}
        else:
            s = {'name': 's%d' % n, 'action': {'topic': 'shipping.commands', 'command': 'Ship'},
                 'timeout': r.choice(['1 s', '1 hour'])}
        if r.random() < 0.5:
            s['compensation'] = {'function': 'fuzz_app.undo_a'}
        if r.random() < 0.5:
            s['retry'] = {'max_attempts': r.randint(1, 3), 'backoff': '0 ms'}
        steps.append(s)
    return {'steps': steps}


def valid(r, known, function, arg, typ):
    """A value that passes the checks, so that calls reach past them (None: no idea)."""
    stream = lambda: r.choice(known.streams + ['fuzz-%d' % r.randint(1, 30)])  # noqa: E731
    by_name = {
        'stream': lambda: lit(stream()),
        'category': lambda: lit(r.choice(known.categories)),
        'topic': lambda: lit(r.choice(known.topics)),
        'participant': lambda: lit(r.choice(known.participants)),
        'consumer': lambda: lit(r.choice(known.consumers)),
        'step': lambda: lit(r.choice(known.steps)),
        'key': lambda: lit(r.choice(['k', 'order-1', ''])),
        'type': lambda: lit(r.choice(['OrderPlaced', 'X'])),
        'event_type': lambda: lit('OrderPlaced'),
        'reason': lambda: lit(r.choice(['refused', ''])),
        'idempotency_key': lambda: lit('key-%d' % r.randint(1, 5)),
        'conninfo': lambda: lit(r.choice(['host=127.0.0.1 port=1 dbname=x user=u',
                                          'postgresql://u@127.0.0.1:1/x', 'host=/nonexistent user=u',
                                          'user=u options=-csearch_path=x', "host='127.0.0.1' user='a b'"])),
        'sql': lambda: lit(r.choice(['SELECT 1', 'SELECT count(*) FROM fuzz_remote_t', 'INSERT INTO fuzz_remote_t VALUES (9)',
                                     'SELECT pg_sleep(0.01)', '', ';', 'COMMIT', 'PREPARE TRANSACTION \'x\'',
                                     'SELECT 1; SELECT 2', 'SET search_path = x', 'SELECT repeat(\'x\', 100000)',
                                     'SELECT NULL', 'SELECT \'{"a":1}\'::json', 'SELECT 1/0'])),
        'events': lambda: lit(json.dumps([valid_event(r, known) for _ in range(r.randint(1, 4))])),
        'definition': lambda: lit(json.dumps(valid_definition(r, known))),
        'headers': lambda: lit(json.dumps({'h': r.choice(UNICODE), 'ce_id': str(r.randint(1, 9))})),
        'start_from': lambda: lit(r.choice(['earliest', 'latest'])),
        'saga_id': lambda: lit(r.choice(known.saga_ids)),
        'token': lambda: lit(r.choice(['0/0', '0/16B3740', 'x', ''])),
    }
    if arg == 'name' and function.startswith('drop_'):
        # drop what the fuzzer made, so the populated objects stay for the calls that follow
        return lit(r.choice(['fuzz_p', 'fuzz_c', 'fuzz_s']) + str(r.randint(1, 5))) + '::' + typ
    if arg == 'name':
        pool = {'start_saga': known.sagas, 'define_saga': known.sagas + ['fuzz_saga'],
                'saga_definition_diagram': known.sagas, 'drop_participant': known.participants,
                'add_participant': ['fuzz_p%d' % r.randint(1, 5)], 'grant_participant': known.participants,
                'revoke_participant': known.participants}.get(function)
        if pool is None and 'consumer' in function:
            pool = known.consumers + ['fuzz_c%d' % r.randint(1, 5)]
        if pool is None and 'subscription' in function:
            pool = known.subscriptions + ['fuzz_s%d' % r.randint(1, 5)]
        if pool:
            return lit(r.choice(pool)) + '::' + typ
    if arg in ('handler', 'fn', 'apply_fn') and typ == 'regprocedure':
        kind = {'create_subscription': 'subscription', 'register_upcaster': 'upcaster',
                'register_aggregate': 'aggregate'}.get(function, r.choice(['consumer', 'consumer_raw']))
        return lit(r.choice(known.handlers[kind])) + '::regprocedure'
    gen = by_name.get(arg)
    if gen is None:
        if typ == 'jsonb':
            return lit(json.dumps({'n': r.randint(0, 5), 'u': r.choice(UNICODE)})) + '::jsonb'
        if typ in ('bigint', 'integer'):
            return '%d::%s' % (r.randint(0, 50), typ)
        if typ == 'text[]':
            return 'ARRAY[%s]::text[]' % lit(r.choice(known.topics + known.categories))
        return None
    return gen() + '::' + typ
