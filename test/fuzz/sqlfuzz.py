#!/usr/bin/env python3
"""A seeded fuzzer for the SQL surface of pg_consistency (run it through scripts/sqlfuzz).

It lists every function of schema `consistency` that a role other than the extension's
owner may execute (from the catalog: new functions are covered without a change here)
and calls them, round after round in a seeded order, with hostile arguments
(test/fuzz/values.py), NULLs in every position, wrong argument types, omitted defaults,
named arguments, and hostile settings: fuzz_hostile (shadows of pg_catalog's functions
and operators) first on search_path, another client_encoding, a tiny statement_timeout,
read-only transactions; as an admin, a reader or the superuser; committed or rolled back,
alone, repeated, or after a failed call in a savepoint.

Every call must succeed or raise an SQLSTATE of the allow-list below, or pass on the
error of the fuzz database's misbehaving user code (fuzz_app.hostile_*, registered as
upcasters, folds or handlers) as it was raised. A crash, an internal error (XX000), an
SQLSTATE outside the list, or a shadow that ran (HX666) is a finding. Call i of seed S draws from random.Random('S:i') alone: `--from-call i --calls 1`
replays it.
"""
import argparse
import collections
import random
import sys
import time

import psycopg2
import psycopg2.extras

# Results stay text: json.loads would recurse over the deeply nested values the fuzzer sends.
psycopg2.extras.register_default_json(loads=lambda s: s, globally=True)
psycopg2.extras.register_default_jsonb(loads=lambda s: s, globally=True)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, __file__.rsplit('/', 1)[0])
import values  # noqa: E402

# The allow-list: SQLSTATEs a call may raise. Anything else is a finding.
ALLOWED_EXACT = {
    'CS001', 'CS002', 'CS003', 'CS004', 'CS005',  # the contract (docs/sql-api)
    '0A000',  # feature_not_supported
    '25001',  # active_sql_transaction (a procedure that must run outside a transaction block)
    '25006',  # read_only_sql_transaction (the fuzzer's read-only transactions)
    '2D000',  # invalid_transaction_termination
    '3F000',  # invalid_schema_name (regprocedure input naming no schema)
    '40001', '40P01',  # serialization failure, deadlock (concurrent worker)
    '54000', '54001',  # program_limit_exceeded, statement_too_complex (huge or deep values)
    '55P03',  # lock_not_available (lock_timeout)
    '57014',  # query_canceled (statement_timeout)
}
# Whole classes: 22 data exception (bad input to a type's input function or ours),
# 42 syntax error or access rule violation (wrong types, no such function, no privilege).
ALLOWED_CLASSES = {'22', '42'}

ENCODINGS = ['LATIN1', 'WIN1252', 'EUC_JP', 'SJIS', 'BIG5', 'GB18030', 'KOI8R', 'SQL_ASCII', 'UTF8']

FUNCTIONS_SQL = """
SELECT p.oid::regprocedure::text, p.proname, p.prokind, p.pronargdefaults,
       ARRAY(SELECT pg_catalog.format_type(t, NULL) FROM pg_catalog.unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, n)
              ORDER BY n),
       p.proargnames, p.proargmodes::text[]
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'consistency'::regnamespace
   AND p.prorettype <> 'trigger'::regtype
   AND EXISTS (SELECT FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
                WHERE a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE')
 ORDER BY 1
"""


def allowed(state):
    return state in ALLOWED_EXACT or state[:2] in ALLOWED_CLASSES


def raised_by_hostile_code(state, e):
    """A RAISE of the fuzz database's own misbehaving functions, which the contract passes
    on unchanged (docs/eventstore.md): the innermost context line names it."""
    context = (getattr(e.diag, 'context', None) or '').split('\n')[0]
    return state == 'P0001' and context.startswith('PL/pgSQL function fuzz_app.hostile_')


class Function:
    def __init__(self, row):
        self.signature, self.name, self.kind, self.ndefaults, self.types, names, modes = row
        names = names or []
        if modes:
            self.argnames = [n for n, m in zip(names, modes) if m in ('i', 'b', 'v')]
        else:
            self.argnames = names[:len(self.types)]
        # procedures list INOUT arguments among their inputs already
        if len(self.argnames) != len(self.types):
            self.argnames = []


class Fuzzer:
    def __init__(self, args):
        self.a = args
        self.known = values.Known()
        self.conns = {}
        self.stats = collections.defaultdict(collections.Counter)  # function -> outcome counter
        self.findings = collections.OrderedDict()
        self.client_side = 0
        self.calls = 0

    def connect(self, user):
        c = psycopg2.connect(host=self.a.host, port=self.a.port, dbname=self.a.dbname, user=user,
                             application_name='sqlfuzz', connect_timeout=10)
        c.autocommit = True
        c.set_client_encoding('UTF8')
        return c

    def conn(self, user):
        c = self.conns.get(user)
        if c is None or c.closed:
            deadline = time.time() + 60
            while True:
                try:
                    c = self.connect(user)
                    break
                except psycopg2.OperationalError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.5)
            self.conns[user] = c
        return c

    def load(self):
        cur = self.conn(self.a.owner).cursor()
        cur.execute(FUNCTIONS_SQL)
        self.functions = [Function(r) for r in cur.fetchall()]
        cur.execute("SELECT id::text FROM consistency.saga_instances ORDER BY id")
        self.known.saga_ids += [r[0] for r in cur.fetchall()]
        cur.execute("SELECT DISTINCT stream FROM consistency.events ORDER BY 1 LIMIT 50")
        self.known.streams += [r[0] for r in cur.fetchall()]
        if self.a.only:
            self.functions = [f for f in self.functions if f.name in self.a.only.split(',')]
        if not self.functions:
            sys.exit('sqlfuzz: no function to call')

    def function_for(self, i):
        n = len(self.functions)
        order = list(range(n))
        random.Random('%s:round:%d' % (self.a.seed, i // n)).shuffle(order)
        return self.functions[order[i % n]]

    def build(self, r, f):
        """The statement (and the settings) of one call."""
        names = f.argnames or [''] * len(f.types)
        near_valid = r.random() < 0.5
        args = []
        for t, n in zip(f.types, names):
            v = values.valid(r, self.known, f.name, n, t) if near_valid and r.random() < 0.8 else None
            args.append(v or values.value(r, self.known, t))
        mode = r.random()
        if mode < 0.12:
            args = ['NULL::%s' % t for t in f.types]
        else:
            args = [('NULL::%s' % t if r.random() < 0.12 else a) for a, t in zip(args, f.types)]
        if args and 0.12 <= mode < 0.2:
            k = r.randrange(len(args))
            args[k] = r.choice(values.WRONG)
        if args and 0.2 <= mode < 0.26:
            # an untyped literal: the type's input function parses it (malformed JSON, uuid, …)
            k = r.randrange(len(args))
            args[k] = values.lit(r.choice(['{', '', '[1', 'x', '1e999', '{"type": }', '\\', "'", '-1']))
        if f.ndefaults and r.random() < 0.3:
            args = args[:len(args) - r.randint(1, f.ndefaults)]
        target = 'consistency.%s' % _quote_ident(f.name)
        if f.argnames and r.random() < 0.15:
            named = ['%s => %s' % (_quote_ident(n), a) for n, a in zip(f.argnames, args)]
            r.shuffle(named)
            call = '%s(%s)' % (target, ', '.join(named))
        else:
            call = '%s(%s)' % (target, ', '.join(args))
        if f.kind == 'p':
            sql = 'CALL ' + call
        elif r.random() < 0.1:
            sql = 'SELECT %s FROM pg_catalog.generate_series(1, 3)' % call
        else:
            sql = 'SELECT * FROM ' + call
        settings = ['SET LOCAL lock_timeout = 1000']
        if r.random() < 0.3:
            settings.append('SET LOCAL search_path = fuzz_hostile, pg_catalog, public')
        if r.random() < 0.12:
            settings.append('SET LOCAL statement_timeout = %d' % r.choice([1, 2, 5, 20, 100]))
        else:
            settings.append('SET LOCAL statement_timeout = %d' % self.a.statement_timeout_ms)
        if r.random() < 0.05:
            settings.append('SET LOCAL transaction_read_only = on')
        encoding = r.choice(ENCODINGS) if r.random() < 0.2 else 'UTF8'
        role = r.choices([self.a.role, 'fuzz_reader', self.a.owner], [0.75, 0.1, 0.15])[0]
        shape = r.choices(['alone', 'savepoint', 'twice'], [0.7, 0.15, 0.15])[0]
        commit = r.random() < 0.6
        return sql, settings, encoding, role, shape, commit

    def run_call(self, i):
        r = random.Random('%s:%d' % (self.a.seed, i))
        f = self.function_for(i)
        sql, settings, encoding, role, shape, commit = self.build(r, f)
        c = self.conn(role)
        outcome = None
        try:
            c.set_client_encoding(encoding)
            cur = c.cursor()
            cur.execute('BEGIN')
            for s in settings:
                cur.execute(s)
            if shape == 'savepoint':
                cur.execute('SAVEPOINT before')
                try:
                    cur.execute(sql)
                except psycopg2.Error as e:
                    if e.pgcode is None:
                        raise
                    self.judge(i, f, e.pgcode, e, sql, settings, encoding, role, 'in savepoint')
                cur.execute('ROLLBACK TO SAVEPOINT before')
            cur.execute(sql)
            if cur.description:
                cur.fetchmany(20)
            if shape == 'twice':
                cur.execute(sql)
            cur.execute('COMMIT' if commit else 'ROLLBACK')
            outcome = 'ok'
        except psycopg2.Error as e:
            if e.pgcode is None or c.closed:
                outcome = self.lost(i, f, e, sql, settings, encoding, role)
            else:
                outcome = e.pgcode
                self.judge(i, f, e.pgcode, e, sql, settings, encoding, role, shape)
        except (UnicodeError, ValueError, RecursionError):
            # the client could not encode the statement or decode a result in this encoding
            self.client_side += 1
            outcome = 'client-side'
        finally:
            if not c.closed:
                try:
                    if c.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                        c.cursor().execute('ROLLBACK')
                    c.set_client_encoding('UTF8')
                except psycopg2.Error:
                    c.close()
        self.stats[f.signature][outcome] += 1
        self.calls += 1
        if self.a.verbose:
            print('%6d %-60s %s' % (i, f.signature, outcome), flush=True)

    def judge(self, i, f, state, e, sql, settings, encoding, role, shape):
        if state == 'HX666':
            kind = 'a shadow on search_path ran'
        elif state == 'XX000':
            kind = 'internal error (XX000)'
        elif not allowed(state) and not raised_by_hostile_code(state, e):
            kind = 'SQLSTATE %s not in the allow-list' % state
        else:
            return
        msg = (e.pgerror or str(e)).strip()
        key = (f.signature, state, msg.split('\n')[0][:80])
        if key in self.findings:
            self.findings[key]['count'] += 1
            return
        self.findings[key] = {'count': 1, 'call': i, 'kind': kind, 'function': f.signature, 'sqlstate': state,
                              'message': msg[:600], 'sql': sql if len(sql) < 1500 else sql[:1500] + ' …',
                              'settings': settings, 'encoding': encoding, 'role': role, 'shape': shape}

    def lost(self, i, f, e, sql, settings, encoding, role):
        self.findings[('lost', i)] = {'count': 1, 'call': i, 'kind': 'connection lost (backend crash?)',
                                      'function': f.signature, 'sqlstate': '-', 'message': str(e)[:600],
                                      'sql': sql[:1500], 'settings': settings, 'encoding': encoding,
                                      'role': role, 'shape': '-'}
        for c in self.conns.values():
            c.close()
        self.conns = {}
        return 'connection lost'

    def integrity(self):
        cur = self.conn(self.a.owner).cursor()
        with open(self.a.integrity_sql) as fh:
            cur.execute(fh.read())
        return [r[0] for r in cur.fetchall()]

    def run(self):
        self.load()
        print('sqlfuzz: seed %s, %d functions, %s' % (
            self.a.seed, len(self.functions),
            '%d calls' % self.a.calls if self.a.calls else '%d s' % self.a.duration), flush=True)
        deadline = time.time() + self.a.duration
        i = self.a.from_call + self.a.offset
        while True:
            if self.a.calls and i >= self.a.from_call + self.a.calls:
                break
            if not self.a.calls and time.time() >= deadline:
                break
            self.run_call(i)
            i += self.a.stride
        self.report(i)
        broken = [] if self.a.no_integrity else self.integrity()
        if broken:
            print('check_integrity() after the run:')
            for b in broken:
                print('  ' + b)
        return 1 if (self.findings or broken) else 0

    def report(self, end):
        print('\n%-62s %6s %6s  errors by SQLSTATE' % ('function', 'calls', 'ok'))
        for f in self.functions:
            s = self.stats.get(f.signature)
            if not s:
                continue
            total = sum(s.values())
            errs = ', '.join('%s %d' % kv for kv in sorted(s.items()) if kv[0] != 'ok')
            print('%-62s %6d %6d  %s' % (f.signature[:62], total, s['ok'], errs))
        never = [f.signature for f in self.functions if not self.stats.get(f.signature)]
        print('\ncalls %d..%d%s (%d), client-side encoding skips %d' % (
            self.a.from_call + self.a.offset, end - self.a.stride,
            ' every %d' % self.a.stride if self.a.stride > 1 else '', self.calls, self.client_side))
        if self.calls >= len(self.functions):
            print('functions never called: %s' % (', '.join(never) or 'none'))
        print('replay: scripts/sqlfuzz --seed %s --databases %s --from-call %d --calls %d%s' % (
            self.a.seed, self.a.dbname, self.a.from_call, end - self.a.from_call,
            ' --jobs %d' % self.a.stride if self.a.stride > 1 else ''))
        if not self.findings:
            print('findings: none')
            return
        print('\nFINDINGS: %d' % len(self.findings))
        for v in self.findings.values():
            print('- %s in %s (seen %d times; first at call %d: replay --seed %s --databases %s --from-call %d --calls 1)' % (
                v['kind'], v['function'], v['count'], v['call'], self.a.seed, self.a.dbname, v['call']))
            print('    role %s, client_encoding %s, %s; %s' % (v['role'], v['encoding'], v['shape'], '; '.join(v['settings'])))
            print('    ' + v['message'].replace('\n', '\n    '))
            print('    SQL: ' + v['sql'])


def _quote_ident(s):
    return '"' + s.replace('"', '""') + '"'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--dbname', default='fuzz')
    ap.add_argument('--owner', required=True, help='a superuser (owner of the extension)')
    ap.add_argument('--role', default='fuzz_admin', help='the non-superuser most calls run as')
    ap.add_argument('--seed', default=None)
    ap.add_argument('--duration', type=float, default=90)
    ap.add_argument('--calls', type=int, default=0, help='a number of calls instead of a duration')
    ap.add_argument('--from-call', type=int, default=0)
    ap.add_argument('--stride', type=int, default=1, help='with --offset: this job makes calls offset, offset+stride, …')
    ap.add_argument('--offset', type=int, default=0)
    ap.add_argument('--no-integrity', action='store_true', help='leave check_integrity() to the caller')
    ap.add_argument('--only', default='', help='comma-separated function names')
    ap.add_argument('--statement-timeout-ms', type=int, default=3000)
    ap.add_argument('--integrity-sql', default=__file__.rsplit('/', 1)[0] + '/integrity.sql')
    ap.add_argument('--verbose', action='store_true')
    a = ap.parse_args()
    if a.seed is None:
        a.seed = str(random.SystemRandom().randrange(10 ** 9))
    return Fuzzer(a).run()


if __name__ == '__main__':
    sys.exit(main())
