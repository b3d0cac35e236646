#!/usr/bin/env python3
"""Reads a PostgreSQL server log written by a fuzz cluster (test/fuzz/lib.sh sets
log_line_prefix = '%m [%p] %b|%a|%e ' and log_error_verbosity = verbose) and judges it:

- a crash (a backend terminated by a signal, a PANIC, the postmaster resetting) fails;
- an XX000 (internal error) that comes from pg_consistency fails: raised in one of our
  source files, with a consistency.* function on its CONTEXT, or in one of our
  background processes;
- every other error is counted by SQLSTATE; those that come from pg_consistency are listed
  per SQLSTATE with an example, so the errors our functions raise can be reviewed.

  pglog.py LOGFILE [--app NAME] [--sources DIR] [--from-byte N]

Exit status 0 when the log is clean, 1 otherwise.
"""
import argparse
import collections
import os
import re
import sys

ENTRY = re.compile(r'^(\d{4}-\d\d-\d\d [\d:.]+ \w+) \[(\d+)\] ([^|]*)\|([^|]*)\|(\w*) (\w+):  (.*)$')
CRASH = [
    re.compile(r'terminated by signal'),
    re.compile(r'server process .* was terminated'),
    re.compile(r'terminating any other active server processes'),
    re.compile(r'all server processes terminated; reinitializing'),
]
OUR_BACKENDS = re.compile(r'pg_consistency')

# Internal errors of PostgreSQL that SQL reaches directly with a bad argument (typmod
# functions, a cast of an unknown literal), raised in PostgreSQL's own files. A fuzzed
# statement that also calls one of our functions would otherwise be blamed on it.
CORE_INTERNAL = [
    (re.compile(r'^(?:[0-9A-Z]{5}: )?(invalid|unrecognized) interval typmod', re.I), re.compile(r',\s*timestamp\.c:\d+$')),
    (re.compile(r'^(?:[0-9A-Z]{5}: )?failed to find conversion function from unknown to'), re.compile(r',\s*parse_coerce\.c:\d+$')),
]


def known_core_internal(e):
    loc = e['fields'].get('LOCATION', '')
    return any(m.search(e['message']) and l.search(loc) for m, l in CORE_INTERNAL)


def our_source_files(root):
    names = set()
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(('.cpp', '.hpp')):
                names.add(f)
    return names


def entries(path, start):
    """Yields dicts: pid, backend, app, sqlstate, level, message, fields{DETAIL,…}, extra lines."""
    cur = None
    with open(path, 'rb') as fh:
        fh.seek(start)
        for raw in fh:
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            m = ENTRY.match(line)
            if m:
                ts, pid, backend, app, state, level, msg = m.groups()
                if cur and cur['pid'] == pid and level in ('DETAIL', 'HINT', 'CONTEXT', 'LOCATION',
                                                            'STATEMENT', 'QUERY'):
                    cur['fields'][level] = msg
                    cur['last'] = level
                    continue
                if cur:
                    yield cur
                cur = {'pid': pid, 'backend': backend, 'app': app, 'sqlstate': state, 'level': level,
                       'message': msg, 'fields': {}, 'last': None, 'line': line}
            elif cur is not None:
                # a continuation line (tab-indented) of the message or of its last field
                if cur['last']:
                    cur['fields'][cur['last']] += '\n' + line
                else:
                    cur['message'] += '\n' + line
        if cur:
            yield cur


def is_ours(e, sources):
    loc = e['fields'].get('LOCATION', '')
    m = re.search(r',\s*([\w.+-]+):\d+$', loc)
    if m and m.group(1) in sources:
        return True
    if re.search(r'\bconsistency\.\w+\(', e['fields'].get('CONTEXT', '')):
        return True
    return False


def called_functions(statement):
    statement = re.sub(r"'(?:[^']|'')*'", "''", statement or '')  # not the names inside literals
    return sorted(set(re.findall(r'\bconsistency\."?(\w+)"?\s*\(', statement or '')))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('log')
    ap.add_argument('--app', action='append', default=[],
                    help='application_name prefix of the fuzzing client (errors of others are ignored, crashes never)')
    ap.add_argument('--sources', default=os.path.join(os.path.dirname(__file__), '..', '..', 'src'))
    ap.add_argument('--from-byte', type=int, default=0)
    args = ap.parse_args()
    sources = our_source_files(args.sources)

    problems = []
    ours = collections.OrderedDict()  # sqlstate -> [count, functions Counter, example]
    others = collections.Counter()
    core_internal = []
    for e in entries(args.log, args.from_byte):
        text = e['message']
        if any(p.search(text) for p in CRASH) or e['level'] == 'PANIC':
            running = e['fields'].get('DETAIL', '')
            problems.append('crash: %s\n    %s' % (e['line'], running.replace('\n', '\n    ')))
            continue
        if e['level'] not in ('ERROR', 'FATAL'):
            continue
        background = bool(OUR_BACKENDS.search(e['backend']))
        if not background and args.app and not e['app'].startswith(tuple(args.app)):
            continue
        state = e['sqlstate']
        stmt = e['fields'].get('STATEMENT', '')
        mine = background or is_ours(e, sources)
        if state == 'XX000':
            if mine or (called_functions(stmt) and not known_core_internal(e)):
                problems.append('internal error (XX000) from pg_consistency: %s\n    LOCATION: %s\n    CONTEXT: %s\n'
                                '    STATEMENT: %s' % (text, e['fields'].get('LOCATION', ''),
                                                      e['fields'].get('CONTEXT', ''), stmt[:2000]))
            else:
                core_internal.append('%s (%s)' % (text, e['fields'].get('LOCATION', '')))
            continue
        if mine:
            slot = ours.setdefault(state, [0, collections.Counter(), None])
            slot[0] += 1
            where = called_functions(stmt) or [e['backend'] or '?']
            slot[1].update(where)
            if slot[2] is None:
                slot[2] = text.split('\n')[0][:200]
        else:
            others[state] += 1

    print('errors raised by pg_consistency, by SQLSTATE:')
    if not ours:
        print('  (none)')
    for state, (n, funcs, example) in sorted(ours.items()):
        top = ', '.join('%s %d' % kv for kv in funcs.most_common(6))
        print('  %s %6d  e.g. %s\n         from: %s' % (state, n, example, top))
    print('other errors, by SQLSTATE: ' + (', '.join('%s %d' % kv for kv in sorted(others.items())) or '(none)'))
    if core_internal:
        print('internal errors of PostgreSQL itself (not ours, not failing): %d' % len(core_internal))
        for c in sorted(set(core_internal))[:10]:
            print('  ' + c)
    if problems:
        print('\nFAILED: %d problem(s)' % len(problems))
        for p in problems[:50]:
            print('  ' + p)
        return 1
    print('log clean: no crash, no internal error from pg_consistency')
    return 0


if __name__ == '__main__':
    sys.exit(main())
