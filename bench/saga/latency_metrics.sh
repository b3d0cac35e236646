#!/usr/bin/env bash
# What recording the latency metrics costs the saga hot path: saturated three-step sagas
# (bench/saga/start.sql, run by the saga workers) with pg_consistency.latency_metrics on and
# off, alternating in the same run, ROUNDS times each. Prints steps/s and CPU per step of
# every run, then the medians and the ratio on / off (1.00 = no cost).
#
#   bench/saga/latency_metrics.sh     (as root or as an unprivileged user)
#
# Environment: DURATION (s per run, default 10), ROUNDS (3), CLIENTS (4), ACCOUNTS (10000),
# SAGA_WORKERS (2), BATCH (8), CHAIN (4), SYNC (off).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
DURATION="${DURATION:-10}" ROUNDS="${ROUNDS:-3}" CLIENTS="${CLIENTS:-4}" ACCOUNTS="${ACCOUNTS:-10000}"
SAGA_WORKERS="${SAGA_WORKERS:-2}" BATCH="${BATCH:-8}" CHAIN="${CHAIN:-4}" SYNC="${SYNC:-off}"

stage="${TMPDIR:-/tmp}/pgc-saga-metrics-bench-stage"
bin="$(scripts/stage-install "$stage")"
export PATH="$bin:$PATH"
ticks=$(getconf CLK_TCK)
dir="${TMPDIR:-/tmp}/pgc-saga-metrics-bench"
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
cluster_ticks() {
  local pm t p
  pm=$(head -n 1 "$dir/data/postmaster.pid")
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for p in $(pgrep -P "$pm"); do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
drain() {
  local left
  for _ in $(seq 1 1200); do
    left=$(psql_q -At -c "SELECT count(*) FROM consistency.saga_instances WHERE name = 'bench3' AND data->>'run' = '$1' AND status IN ('running', 'compensating')")
    [ "$left" = 0 ] && return 0
    sleep 0.2
  done
  echo "run $1 did not drain" >&2; return 1
}

scripts/pg-cluster stop "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
scripts/pg-cluster init "$dir" --set synchronous_commit="$SYNC" --set track_commit_timestamp=on \
  --set pg_consistency.saga_workers="$SAGA_WORKERS" --set pg_consistency.saga_batch_size="$BATCH" \
  --set pg_consistency.saga_chain_steps="$CHAIN" \
  --set shared_buffers=256MB --set max_wal_size=4GB --set checkpoint_timeout=30min >/dev/null
trap 'scripts/pg-cluster stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
eval "$(scripts/pg-cluster env "$dir")"
export PGDATABASE=postgres
psql_q -v naccounts="$ACCOUNTS" -f bench/saga/setup.sql >/dev/null 2>&1

echo "latency metrics cost, sagas: ${ROUNDS} rounds x ${DURATION}s per setting, ${CLIENTS} clients, saga_workers=${SAGA_WORKERS}, saga_batch_size=${BATCH}, saga_chain_steps=${CHAIN}, synchronous_commit=${SYNC}, $(nproc) cores"
echo "started $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A steps=() cpus=()
pair_s="" pair_c=""
run=0
for round in $(seq 1 "$ROUNDS"); do
  line="round $round:"
  # Alternate which setting goes first, so that a drift of the machine's load is shared.
  order="on off"; [ $((round % 2)) = 0 ] && order="off on"
  for m in $order; do
    psql_q -c "ALTER SYSTEM SET pg_consistency.latency_metrics = $m" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
    run=$((run + 1))
    c0=$(cluster_ticks)
    tf=$(mktemp)
    out=$(/usr/bin/time -f '%U %S' -o "$tf" pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" -D naccounts="$ACCOUNTS" -D run=$run -f bench/saga/start.sql 2>/dev/null)
    pgb_cpu=$(awk '{print $1 + $2}' "$tf"); rm -f "$tf"
    drain $run
    c1=$(cluster_ticks)
    read -r -a F <<<"$(psql_q -v run="$run" -At -F ' ' -f bench/saga/report.sql)"
    s=$(echo "${F[2]} * 3" | bc -l)
    cpu=$(echo "(($c1 - $c0) / $ticks + $pgb_cpu) * 1000000 / (${F[1]} * 3)" | bc -l)
    steps[$m]+=" $s"; cpus[$m]+=" $cpu"
    eval "last_s_$m=$s last_c_$m=$cpu"
    line+=$(printf ' metrics %s %.0f steps/s (%.0f us CPU/step);' "$m" "$s" "$cpu")
  done
  # The two runs of a round share the machine's load best: their ratio is the figure.
  rs=$(echo "$last_s_on / $last_s_off" | bc -l); rc=$(echo "$last_c_on / $last_c_off" | bc -l)
  pair_s+=" $rs"; pair_c+=" $rc"
  echo "$line$(printf ' on/off: throughput %.3f, CPU per step %.3f' "$rs" "$rc")"
  psql_q -c "VACUUM ANALYZE bench.accounts, consistency.saga_instances" >/dev/null
done
son=$(median <<<"${steps[on]}"); soff=$(median <<<"${steps[off]}")
con=$(median <<<"${cpus[on]}"); coff=$(median <<<"${cpus[off]}")
printf 'median: metrics on %.0f steps/s, %.0f us CPU/step; off %.0f steps/s, %.0f us CPU/step; per-round ratios on/off (median): throughput %.3f, CPU per step %.3f\n' \
  "$son" "$con" "$soff" "$coff" "$(median <<<"$pair_s")" "$(median <<<"$pair_c")"
echo "$(psql_q -At -c "SELECT 'observed: ' || string_agg(status || ' ' || total, ', ' ORDER BY status) FROM consistency._saga_counts() WHERE saga = 'bench3'")"
echo "finished $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
