#!/usr/bin/env bash
# Saga benchmark. Three-step sagas whose steps are function steps (each one small UPDATE),
# run by the saga workers, against the baseline of the same three UPDATEs run directly by
# clients, one transaction per step - in the same run, at synchronous_commit off and on.
#
#   bench/saga/run.sh            (as root or as an unprivileged user)
#
# Environment: DURATION (s, default 20), CLIENTS (4), ACCOUNTS (10000), SAGA_WORKERS (2),
# BATCH (32), SYNC ("off on"). Prints, per setting: baseline steps/s; saga throughput
# (completed sagas/s and steps/s) with the ratio to the baseline; step latency p50/p99 at
# half the saturated rate; idle pickup latency p50/p99 of a ready step.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
DURATION="${DURATION:-20}"
CLIENTS="${CLIENTS:-4}"
ACCOUNTS="${ACCOUNTS:-10000}"
SAGA_WORKERS="${SAGA_WORKERS:-2}"
BATCH="${BATCH:-32}"
SYNC="${SYNC:-off on}"

stage="${TMPDIR:-/tmp}/pgc-saga-bench-stage"
bin="$(scripts/stage-install "$stage")"
export PATH="$bin:$PATH"

psql_q() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
# Waits until no saga of run $1 is still running.
drain() {
  local run=$1 left
  for _ in $(seq 1 600); do
    left=$(psql_q -At -c "SELECT count(*) FROM consistency.saga_instances WHERE name = 'bench3' AND data->>'run' = '$run' AND status IN ('running', 'compensating')")
    [ "$left" = 0 ] && return 0
    sleep 0.5
  done
  echo "run $run did not drain" >&2; return 1
}
report() { psql_q -v run="$1" -f bench/saga/report.sql; }
field() { psql_q -v run="$1" -At -F ' ' -f bench/saga/report.sql | cut -d' ' -f"$2"; }

echo "saga benchmark: duration ${DURATION}s, ${CLIENTS} clients, ${ACCOUNTS} accounts, saga_workers=${SAGA_WORKERS}, saga_batch_size=${BATCH}, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for sc in $SYNC; do
  dir="${TMPDIR:-/tmp}/pgc-saga-bench-$sc"
  scripts/pg-cluster stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
  scripts/pg-cluster init "$dir" --set synchronous_commit="$sc" --set track_commit_timestamp=on \
    --set pg_consistency.saga_workers="$SAGA_WORKERS" --set pg_consistency.saga_batch_size="$BATCH" \
    --set shared_buffers=256MB --set max_wal_size=4GB --set checkpoint_timeout=30min >/dev/null
  trap 'scripts/pg-cluster stop "$dir" >/dev/null 2>&1 || true' EXIT
  eval "$(scripts/pg-cluster env "$dir")"
  export PGDATABASE=postgres
  psql_q -v naccounts="$ACCOUNTS" -f bench/saga/setup.sql >/dev/null
  echo
  echo "== synchronous_commit = $sc"

  # Baseline: three UPDATEs, one transaction each.
  base_tps=$(pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -D naccounts="$ACCOUNTS" -f bench/saga/baseline.sql 2>/dev/null \
             | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
  base_steps=$(echo "$base_tps * 3" | bc -l)
  printf 'baseline (client, 1 txn per step): %.0f steps/s\n' "$base_steps"
  psql_q -c "VACUUM ANALYZE bench.accounts" >/dev/null

  # Saturated: clients start sagas as fast as they can; throughput from the first start
  # to the last completion (the backlog included).
  pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -D naccounts="$ACCOUNTS" -D run=1 -f bench/saga/start.sql >/dev/null 2>&1
  drain 1
  sagas_s=$(field 1 3)
  steps_s=$(echo "$sagas_s * 3" | bc -l)
  printf 'sagas (saturated): %s completed of %s started, %.1f sagas/s = %.0f steps/s, ratio to baseline %.2f\n' \
    "$(field 1 2)" "$(field 1 1)" "$sagas_s" "$steps_s" "$(echo "$steps_s / $base_steps" | bc -l)"
  printf '  step latency under saturation: p50 %s ms, p99 %s ms (queueing included)\n' "$(field 1 4)" "$(field 1 5)"

  # Latency at half the saturated rate.
  rate=$(echo "$sagas_s / 2" | bc)
  pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -R "$rate" -D naccounts="$ACCOUNTS" -D run=2 -f bench/saga/start.sql >/dev/null 2>&1
  drain 2
  printf 'sagas at %s/s (half the saturated rate): step latency p50 %s ms, p99 %s ms; pickup p50 %s ms, p99 %s ms\n' \
    "$rate" "$(field 2 4)" "$(field 2 5)" "$(field 2 6)" "$(field 2 7)"

  # Idle pickup: one saga every 50 ms into otherwise idle workers.
  pgbench -n -c 1 -T 10 -R 20 -D naccounts="$ACCOUNTS" -D run=3 -f bench/saga/start.sql >/dev/null 2>&1
  drain 3
  printf 'idle pickup of a ready step (%s sagas): p50 %s ms, p99 %s ms (target p99 <= 10 ms); step latency p50 %s ms, p99 %s ms\n' \
    "$(field 3 1)" "$(field 3 6)" "$(field 3 7)" "$(field 3 4)" "$(field 3 5)"
  scripts/pg-cluster stop "$dir" >/dev/null
  trap - EXIT
done
