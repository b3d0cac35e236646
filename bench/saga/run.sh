#!/usr/bin/env bash
# Saga benchmark. Three-step sagas whose steps are function steps (each one small UPDATE),
# run by the saga workers, against the baseline of the same three UPDATEs run directly by
# clients, one transaction per step - in the same run, at synchronous_commit off and on.
#
#   bench/saga/run.sh            (as root or as an unprivileged user)
#
# Environment: DURATION (s per phase, default 20), CLIENTS (4), ACCOUNTS (10000),
# SAGA_WORKERS (2), BATCH (16), CHAINS ("4 1": saga_chain_steps settings to measure),
# SYNC ("off on"). Prints per setting: baseline steps/s; saga throughput (completed
# sagas/s and steps/s) and its ratio to the baseline; step latency p50/p99 at half the
# saturated rate; idle pickup latency p50/p99 of a ready step.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
DURATION="${DURATION:-20}"
CLIENTS="${CLIENTS:-4}"
ACCOUNTS="${ACCOUNTS:-10000}"
SAGA_WORKERS="${SAGA_WORKERS:-2}"
BATCH="${BATCH:-16}"
CHAINS="${CHAINS:-4 1}"
SYNC="${SYNC:-off on}"

stage="${TMPDIR:-/tmp}/pgc-saga-bench-stage"
bin="$(scripts/stage-install "$stage")"
export PATH="$bin:$PATH"

psql_q() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
# Waits until no saga of run $1 is still running.
drain() {
  local run=$1 left
  for _ in $(seq 1 1200); do
    left=$(psql_q -At -c "SELECT count(*) FROM consistency.saga_instances WHERE name = 'bench3' AND data->>'run' = '$run' AND status IN ('running', 'compensating')")
    [ "$left" = 0 ] && return 0
    sleep 0.5
  done
  echo "run $run did not drain" >&2; return 1
}
declare -a F
figures() { read -r -a F <<<"$(psql_q -v run="$1" -At -F ' ' -f bench/saga/report.sql)"; }
set_chain() {
  psql_q -c "ALTER SYSTEM SET pg_consistency.saga_chain_steps = $1" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1
}

echo "saga benchmark: ${DURATION}s per phase, ${CLIENTS} clients, ${ACCOUNTS} accounts, saga_workers=${SAGA_WORKERS}, saga_batch_size=${BATCH}, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
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
  psql_q -v naccounts="$ACCOUNTS" -f bench/saga/setup.sql >/dev/null 2>&1
  echo
  echo "== synchronous_commit = $sc"

  # Baseline: three UPDATEs, one transaction each.
  base_tps=$(pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -D naccounts="$ACCOUNTS" -f bench/saga/baseline.sql 2>/dev/null \
             | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
  base_steps=$(echo "$base_tps * 3" | bc -l)
  printf 'baseline, a client runs the 3 UPDATEs, 1 transaction per step: %.0f steps/s\n' "$base_steps"
  psql_q -c "VACUUM ANALYZE bench.accounts" >/dev/null

  run=0
  for chain in $CHAINS; do
    set_chain "$chain"
    # Saturated: clients start sagas as fast as they can; throughput from the first
    # start to the last completion (the backlog included).
    run=$((run + 1))
    pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -D naccounts="$ACCOUNTS" -D run=$run -f bench/saga/start.sql >/dev/null 2>&1
    drain $run
    figures $run
    sagas_s=${F[2]}
    steps_s=$(echo "$sagas_s * 3" | bc -l)
    printf 'sagas, saga_chain_steps=%s, saturated: %s completed, %.1f sagas/s = %.0f steps/s, ratio to baseline %.2f\n' \
      "$chain" "${F[1]}" "$sagas_s" "$steps_s" "$(echo "$steps_s / $base_steps" | bc -l)"
    psql_q -c "VACUUM ANALYZE consistency.saga_instances" >/dev/null
    # Latency at half the saturated rate.
    run=$((run + 1))
    rate=$(echo "$sagas_s / 2" | bc)
    pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -R "$rate" -D naccounts="$ACCOUNTS" -D run=$run -f bench/saga/start.sql >/dev/null 2>&1
    drain $run
    figures $run
    printf '  at %s sagas/s (half that): step latency p50 %s ms, p99 %s ms; saga (start to completion) p50 %s ms, p99 %s ms\n' \
      "$rate" "${F[3]}" "${F[4]}" "${F[7]}" "${F[8]}"
  done
  set_chain "${CHAINS%% *}"

  # Idle pickup: one saga every 50 ms into otherwise idle workers.
  run=$((run + 1))
  logs="$(mktemp -d)"
  (cd "$logs" && pgbench -n -c 1 -T 10 -R 20 -D naccounts="$ACCOUNTS" -D run=$run -l --log-prefix=pickup \
     -f "$root/bench/saga/start.sql" >/dev/null 2>&1)
  drain $run
  figures $run
  read -r -a P <<<"$(psql_q -v run="$run" -At -F ' ' -f bench/saga/pickup.sql < "$(ls "$logs"/pickup.*)")"
  rm -rf "$logs"
  printf 'idle pickup of a ready step (%s sagas), from the commit record: p50 %s ms, p99 %s ms; from the commit acknowledged to the client: p50 %s ms, p99 %s ms (target p99 <= 10 ms)\n' \
    "${F[0]}" "${F[5]}" "${F[6]}" "${P[1]}" "${P[2]}"
  scripts/pg-cluster stop "$dir" >/dev/null
  trap - EXIT
done
