#!/usr/bin/env bash
# Saga benchmark. Three-step sagas whose steps are function steps (each one small UPDATE),
# run by the saga workers, against the baseline of the same three UPDATEs run directly by
# clients, one transaction per step - in the same run, at synchronous_commit off and on.
#
#   bench/saga/run.sh            (as root or as an unprivileged user)
#
# Environment: DURATION (s per phase, default 10), ROUNDS (3), CLIENTS (4), ACCOUNTS
# (10000), SAGA_WORKERS (1), BATCH (16), CHAINS ("4 1": saga_chain_steps settings), SYNC
# ("off on").
#
# Per setting it runs ROUNDS interleaved rounds of {baseline, sagas saturated with each
# chain setting} and prints each round and the medians: steps/s, the ratio to the
# baseline, and the CPU time (server processes + pgbench) per step, which the load of a
# shared machine disturbs much less than throughput. Then: step and saga latency at half
# the saturated rate, and the idle pickup latency of a ready step.
#
# Each run is checked (bench/checks.sh): a failed pgbench, an empty or zero figure, or a run
# whose sagas are not all started, completed and measured exits 1; the printed target is
# marked PASS or MISS, and a miss exits 3 unless BENCH_NO_TARGETS=1 asks for a report only.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
. scripts/lib.sh
. bench/checks.sh
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-4}"
ACCOUNTS="${ACCOUNTS:-10000}"
SAGA_WORKERS="${SAGA_WORKERS:-1}"
BATCH="${BATCH:-16}"
CHAINS="${CHAINS:-4 1}"
SYNC="${SYNC:-off on}"

stage="${TMPDIR:-/tmp}/pgc-saga-bench-stage"
bin="$(scripts/stage-install "$stage")"
export PATH="$bin:$PATH"
ticks=$(getconf CLK_TCK)

psql_q() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
# Waits until no saga of run $1 is still running.
drain() {
  local run=$1 left
  for _ in $(seq 1 1200); do
    left=$(psql_q -At -c "SELECT count(*) FROM consistency.saga_instances WHERE name = 'bench3' AND data->>'run' = '$run' AND status IN ('running', 'compensating')")
    [ "$left" = 0 ] && return 0
    sleep 0.2
  done
  echo "run $run did not drain" >&2; return 1
}
declare -a F
figures() { read -r -a F <<<"$(psql_q -v run="$1" -At -F ' ' -f bench/saga/report.sql)"; }
set_chain() {
  psql_q -c "ALTER SYSTEM SET pg_consistency.saga_chain_steps = $1" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1
}
# CPU ticks of the cluster: the postmaster, its live children, and the children it reaped.
cluster_ticks() {
  local pm t=0 p
  pm=$(head -n 1 "$dir/data/postmaster.pid")
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for p in $(pgrep -P "$pm"); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
# pgbench under /usr/bin/time; sets PGB_OUT (its output) and PGB_CPU (its CPU seconds).
run_pgbench() {
  local tf; tf=$(mktemp)
  PGB_OUT=$(/usr/bin/time -f '%U %S' -o "$tf" pgbench -n "$@" 2>"$tf.err") \
    || die "pgbench $* failed: $(cat "$tf.err")"
  PGB_CPU=$(awk '{print $1 + $2}' "$tf"); rm -f "$tf" "$tf.err"
  PGB_N=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$PGB_OUT")
}
# Every saga pgbench started is in the figures of run $1, and completed.
check_run() {
  bench_count "run $1: sagas in the figures, of those started" "${F[0]}" "$PGB_N"
  bench_count "run $1: sagas completed, of those started" "${F[1]}" "$PGB_N"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

echo "saga benchmark: ${ROUNDS} rounds x ${DURATION}s, ${CLIENTS} clients, ${ACCOUNTS} accounts, saga_workers=${SAGA_WORKERS}, saga_batch_size=${BATCH}, $(nproc) cores"
echo "started $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
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
  declare -A ratios=() steps=() cpus=()
  base_all="" base_cpu_all=""
  run=0
  for round in $(seq 1 "$ROUNDS"); do
    # Baseline: three UPDATEs, one transaction each.
    c0=$(cluster_ticks)
    run_pgbench -c "$CLIENTS" -j 2 -T "$DURATION" -D naccounts="$ACCOUNTS" -f bench/saga/baseline.sql
    c1=$(cluster_ticks)
    base_tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$PGB_OUT")
    base_n=$PGB_N
    bench_figure "round $round baseline tps" "$base_tps"
    bench_figure "round $round baseline transactions" "$base_n"
    base_steps=$(echo "$base_tps * 3" | bc -l)
    base_cpu=$(echo "(($c1 - $c0) / $ticks + $PGB_CPU) * 1000000 / ($base_n * 3)" | bc -l)
    base_all+=" $base_steps"; base_cpu_all+=" $base_cpu"
    line=$(printf 'round %s: baseline %.0f steps/s (%.0f us CPU/step)' "$round" "$base_steps" "$base_cpu")
    for chain in $CHAINS; do
      set_chain "$chain"
      run=$((run + 1))
      # Saturated: clients start sagas as fast as they can; throughput from the first
      # start to the last completion (the backlog included).
      c0=$(cluster_ticks)
      run_pgbench -c "$CLIENTS" -j 2 -T "$DURATION" -D naccounts="$ACCOUNTS" -D run=$run -f bench/saga/start.sql
      drain $run
      c1=$(cluster_ticks)
      figures $run
      check_run $run
      bench_figure "run $run sagas/s" "${F[2]}"
      s=$(echo "${F[2]} * 3" | bc -l)
      cpu=$(echo "(($c1 - $c0) / $ticks + $PGB_CPU) * 1000000 / (${F[1]} * 3)" | bc -l)
      r=$(echo "$s / $base_steps" | bc -l)
      steps[$chain]+=" $s"; ratios[$chain]+=" $r"; cpus[$chain]+=" $cpu"
      line+=$(printf '; sagas chain=%s %.0f steps/s (%.0f us CPU/step), ratio %.2f' "$chain" "$s" "$cpu" "$r")
    done
    echo "$line"
    psql_q -c "VACUUM ANALYZE bench.accounts, consistency.saga_instances" >/dev/null
  done
  printf 'median: baseline %.0f steps/s, %.0f us CPU/step\n' "$(median <<<"$base_all")" "$(median <<<"$base_cpu_all")"
  for chain in $CHAINS; do
    printf 'median: sagas saga_chain_steps=%s: %.0f steps/s = %.0f sagas/s, ratio to baseline %.2f; %.0f us CPU/step (baseline / sagas CPU: %.2f)\n' \
      "$chain" "$(median <<<"${steps[$chain]}")" "$(echo "$(median <<<"${steps[$chain]}") / 3" | bc -l)" \
      "$(median <<<"${ratios[$chain]}")" "$(median <<<"${cpus[$chain]}")" \
      "$(echo "$(median <<<"$base_cpu_all") / $(median <<<"${cpus[$chain]}")" | bc -l)"
  done

  # Latency at half the (median) saturated rate, per chain setting.
  for chain in $CHAINS; do
    set_chain "$chain"
    run=$((run + 1))
    rate=$(echo "$(median <<<"${steps[$chain]}") / 6" | bc)
    run_pgbench -c "$CLIENTS" -j 2 -T "$DURATION" -R "$rate" -D naccounts="$ACCOUNTS" -D run=$run -f bench/saga/start.sql
    drain $run
    figures $run
    check_run $run
    for i in 3 4 7 8; do bench_figure "run $run latency figure $i" "${F[$i]}"; done
    printf 'latency, saga_chain_steps=%s, %s sagas/s (half the saturated rate): step p50 %s ms, p99 %s ms; saga start to completion p50 %s ms, p99 %s ms\n' \
      "$chain" "$rate" "${F[3]}" "${F[4]}" "${F[7]}" "${F[8]}"
  done
  set_chain "${CHAINS%% *}"

  # Idle pickup: one saga every 50 ms into otherwise idle workers.
  run=$((run + 1))
  logs="$(mktemp -d)"
  (cd "$logs" && pgbench -n -c 1 -T 10 -R 20 -D naccounts="$ACCOUNTS" -D run=$run -l --log-prefix=pickup \
     -f "$root/bench/saga/start.sql" >"$logs/out" 2>&1) || die "pickup pgbench failed: $(cat "$logs/out")"
  PGB_N=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$logs/out")
  drain $run
  figures $run
  check_run $run
  read -r -a P <<<"$(psql_q -v run="$run" -At -F ' ' -f bench/saga/pickup.sql < "$(ls "$logs"/pickup.*)")"
  rm -rf "$logs"
  bench_count "idle pickup: samples from the client's log, of the sagas started" "${P[0]:-}" "$PGB_N"
  for f in "${F[5]}" "${P[1]:-}" "${P[2]:-}"; do bench_figure "idle pickup latency" "$f"; done
  printf 'idle pickup of a ready step (%s sagas), from the commit record: p50 %s ms, p99 %s ms; from the commit acknowledged to the client: p50 %s ms, p99 %s ms (target p99 <= 10 ms)\n' \
    "${F[0]}" "${F[5]}" "${F[6]}" "${P[1]}" "${P[2]}"
  bench_target "synchronous_commit=$sc: idle pickup p99 from the commit record (ms)" "${F[6]}" '<=' 10
  scripts/pg-cluster stop "$dir" >/dev/null
  trap - EXIT
  unset ratios steps cpus
done
echo "finished $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
bench_finish
