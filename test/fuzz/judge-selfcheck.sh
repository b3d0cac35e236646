#!/usr/bin/env bash
# Shows that the fuzzers' log judge (test/fuzz/pglog.py) fails when it should, on the
# running fuzz cluster in DIR: an internal error (XX000) raised by our C++ (the
# superuser-only test hook consistency._test_raise('std')), and a backend killed with
# SIGSEGV (after which the postmaster restarts every process), and that an internal error of
# PostgreSQL's own in a statement that also calls ours is not blamed on us. Exit 0 when all
# three hold.
#
#   test/fuzz/judge-selfcheck.sh DIR      (PATH must hold the cluster's PostgreSQL binaries)
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib.sh"
dir="$1"
port=$(sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$dir/data/postgresql.conf" | tail -n 1)
owner=$(if [ "$(id -u)" -eq 0 ]; then echo "$PGC_OS_USER"; else id -un; fi)
log="$dir/postgresql.log"

# expect SQL RC PATTERN SAYS: runs SQL as the fuzzers' application, judges the log lines it
# wrote; the judge must exit RC with PATTERN in its report. SAYS: what that shows.
expect() {
  local start out rc
  start=$(stat -c %s "$log")
  PGAPPNAME=sqlfuzz psql -X -q -h 127.0.0.1 -p "$port" -U "$owner" -d fuzz -c "$1" >/dev/null 2>&1
  out=$(/usr/bin/python3 "$root/test/fuzz/pglog.py" "$log" --from-byte "$start" --app sqlfuzz)
  rc=$?
  if [ $rc -ne "$2" ] || ! grep -q "$3" <<<"$out"; then
    echo "log judge, wanted: $4 (exit $2, report with \"$3\"); got exit $rc:"; echo "$out"
    exit 1
  fi
  echo "log judge: $4"
}

# An internal error of PostgreSQL's own (an interval typmod it does not know) in a statement
# that also calls one of ours is PostgreSQL's, not ours.
expect "SELECT consistency.version(), pg_catalog.interval('1 day'::interval, 61)" 0 "interval typmod" \
  "PostgreSQL's own internal error beside a call of ours is not blamed on us"
expect "SELECT consistency._test_raise('std')" 1 "internal error (XX000) from pg_consistency" \
  "an XX000 raised by pg_consistency is reported"

start=$(stat -c %s "$log")
psql -X -q -h 127.0.0.1 -p "$port" -U "$owner" -d fuzz -c "SELECT pg_sleep(60) /* judge-selfcheck */" \
  >/dev/null 2>&1 &
client=$!
victim=""
for _ in $(seq 1 50); do
  victim=$(psql -X -At -h 127.0.0.1 -p "$port" -U "$owner" -d fuzz -c \
    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60) /* judge-selfcheck */%'")
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] || die "the backend to crash never showed up"
kill -SEGV "$victim"
wait "$client" 2>/dev/null
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
pg_isready -q -h 127.0.0.1 -p "$port" || die "the cluster did not come back after the crash"
out=$(/usr/bin/python3 "$root/test/fuzz/pglog.py" "$log" --from-byte "$start")
rc=$?
if [ $rc -eq 1 ] && grep -q "terminated by signal" <<<"$out"; then
  echo "log judge: a backend killed by SIGSEGV (pid $victim) is reported"
  exit 0
fi
echo "log judge missed the crash of backend $victim (exit $rc):"; echo "$out"
exit 1
