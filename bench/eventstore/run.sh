#!/usr/bin/env bash
# Event store benchmark: builds and stages the extension, starts a throwaway cluster,
# and measures with pgbench, each figure next to a baseline measured in the same run:
#   1. single-event append_event vs the physical limit (INSERT of the same row + UPDATE of
#      the stream's version row, one statement) and vs the usual PL/pgSQL append function;
#   2. append_events of 100 events vs a multi-row INSERT of the same 100 rows;
#   3. read_stream of 1,000 events vs the plain SELECT of the same rows;
#   4. aggregate_state of 1k/10k/100k-event streams with and without snapshots.
# Appends run at 1 and 8 clients, synchronous_commit on and off. Variants are interleaved
# in ROUNDS rounds and the median is reported, because the machine may be shared.
#
#   bench/eventstore/run.sh            (as root or as an unprivileged user)
#   DURATION=10 ROUNDS=5 bench/eventstore/run.sh   (the defaults)
#
# A pgbench run that fails ends the benchmark at once with its output; a figure that comes
# out empty or zero makes it exit 1 at the end (bench/checks.sh). It prints no target.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/scripts/lib.sh"
. "$root/bench/checks.sh"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-5}"
STAGE="${STAGE:-/tmp/pgc-bench-stage}"
DIR="${DIR:-/tmp/pgc-bench-eventstore}"
OUT="${OUT:-$DIR/results.md}"

bin="$("$root/scripts/stage-install" "$STAGE")"
export PATH="$bin:$PATH"
"$root/scripts/pg-cluster" stop "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR"
"$root/scripts/pg-cluster" init "$DIR" \
  --set shared_buffers=1GB --set max_wal_size=8GB --set checkpoint_timeout=30min \
  --set max_connections=60 --set pg_consistency.poll_interval=1s >/dev/null
trap '"$root/scripts/pg-cluster" stop "$DIR" >/dev/null 2>&1 || true' EXIT
eval "$("$root/scripts/pg-cluster" env "$DIR")"
export PGHOST PGPORT PGUSER PGDATABASE=bench
work="$DIR/scripts"
mkdir -p "$work"
cp "$here"/*.sql "$work/"
if [ "$(id -u)" -eq 0 ]; then chown -R "$PGC_OS_USER" "$DIR"; fi

psql -X -q -d postgres -c 'CREATE DATABASE bench'
echo "setting up (streams of 1k/10k/100k events, 10,000 streams, ...)"
psql -X -q -v ON_ERROR_STOP=1 -f "$work/setup.sql" >/dev/null

# Worst case for snapshots: 99 events since the last snapshot (snapshot_every = 100), so
# every call folds 99 events and never saves.
for len in 1000 10000 100000; do
  psql -X -q -v ON_ERROR_STOP=1 -c "SELECT version FROM consistency.aggregate_state('aggsnap-$len')" >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 -c "SELECT consistency.append_events('aggsnap-$len', NULL,
      (SELECT jsonb_agg(jsonb_build_object('type', 'Add', 'data', jsonb_build_object('n', 1))) FROM generate_series(1, 99)))" >/dev/null
done

# 100-event batch scripts: each transaction writes a new stream (per-client counter).
{
  echo '\set n :n + 1'
  printf "SELECT consistency.append_events('batch-' || :run || '-' || :client_id || '-' || :n, 0, '["
  for i in $(seq 1 100); do
    [ "$i" -gt 1 ] && printf ', '
    printf '{"type": "Deposited", "data": {"amount": 42, "sku": "ABC-123", "i": %d}}' "$i"
  done
  echo "]');"
} > "$work/batch_es.sql"
{
  echo '\set n :n + 1'
  echo "INSERT INTO bench.limit_events (stream, version, event_id, type, data)"
  echo "SELECT s.stream, v.version, gen_random_uuid(), 'Deposited', v.data::jsonb"
  echo "  FROM (SELECT 'batch-' || :run || '-' || :client_id || '-' || :n AS stream) s,"
  echo "       (VALUES"
  for i in $(seq 1 100); do
    [ "$i" -gt 1 ] && echo ","
    printf "  (%d, '{\"amount\": 42, \"sku\": \"ABC-123\", \"i\": %d}')" "$i" "$i"
  done
  echo ") AS v(version, data);"
} > "$work/batch_insert.sql"

# pgbench SCRIPT CLIENTS SYNC [extra args] -> prints "tps latency_ms"
pgb() {
  local script="$1" clients="$2" sync="$3"; shift 3
  local jobs=$(( clients < 2 ? clients : 2 ))
  run_id="$(date +%s%N)"
  local out
  out="$(PGOPTIONS="-c synchronous_commit=$sync" pgbench -n -M prepared -c "$clients" -j "$jobs" \
           -D run="$run_id" -D n=0 -f "$work/$script" "$@" 2>&1)" || { echo "$out" >&2; return 1; }
  local tps lat
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")"
  lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out")"
  echo "${tps:-} ${lat:-}"
}

# figs NAME COMMAND...: runs COMMAND (pgb or pgb_cpu), dies when it fails (a process
# substitution would hide that), sets FIGS to its "a b" output and checks both figures.
figs() {
  local name=$1; shift
  FIGS=$("$@") || die "$name: $* failed"
  local a b
  read -r a b <<<"$FIGS"
  bench_figure "$name (first figure)" "$a"
  bench_figure "$name (second figure)" "$b"
}

# Backend CPU time (user + system clock ticks) of the given processes.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do
    if [ -r "/proc/$p/stat" ]; then t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); fi
  done
  echo "$t"
}
hz="$(getconf CLK_TCK)"

# pgb_cpu SCRIPT CLIENTS SYNC SEQUENCE -> "tps cpu_us_per_transaction": also samples the
# CPU time the pgbench backends use, over the events appended meanwhile (counted by the
# store's position sequence), from 1 s after the start to 1 s before the end. CPU time is
# far less sensitive than throughput to other load on a shared machine.
pgb_cpu() {
  local script="$1" clients="$2" sync="$3" seq="$4"
  local jobs=$(( clients < 2 ? clients : 2 ))
  local out="$work/pgbench.out"
  PGOPTIONS="-c synchronous_commit=$sync" pgbench -n -M prepared -c "$clients" -j "$jobs" \
    -D run="$(date +%s%N)" -D n=0 -f "$work/$script" -T "$DURATION" > "$out" 2>&1 &
  local bg=$!
  sleep 1
  local pids s0 c0 s1 c1
  pids="$(psql -XAtq -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'pgbench'")"
  s0="$(psql -XAtq -c "SELECT pg_sequence_last_value('$seq')")"
  c0="$(cpu_ticks $pids)"
  sleep $((DURATION - 2))
  s1="$(psql -XAtq -c "SELECT pg_sequence_last_value('$seq')")"
  c1="$(cpu_ticks $pids)"
  wait "$bg" || { cat "$out" >&2; return 1; }
  local tps
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out")"
  awk -v t="${tps:-}" -v c=$((c1 - c0)) -v n=$((s1 - s0)) -v hz="$hz" \
    'BEGIN { printf "%s %.1f\n", t, (n > 0) ? c * 1000000 / hz / n : 0 }'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
fmt() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
declare -A R
echo "== single-event appends ($ROUNDS rounds x ${DURATION}s, medians) =="
declare -A SEQ=([limit]=bench.limit_seq [es]=consistency.event_position_seq [plpgsql]=bench.pl_seq)
declare -A C
for sync in off on; do
  for clients in 1 8; do
    for variant in limit es plpgsql; do R[$variant]=""; C[$variant]=""; done
    for round in $(seq 1 "$ROUNDS"); do
      # rotate the order so no variant always runs first
      case $((round % 3)) in
        1) order="limit es plpgsql" ;; 2) order="es plpgsql limit" ;; *) order="plpgsql limit es" ;;
      esac
      for variant in $order; do
        figs "append $variant, $clients clients, sync $sync" pgb_cpu "append_$variant.sql" "$clients" "$sync" "${SEQ[$variant]}"
        read -r tps cpu <<<"$FIGS"
        R[$variant]+="$tps"$'\n'
        C[$variant]+="$cpu"$'\n'
      done
    done
    l="$(printf '%s' "${R[limit]}" | median)"; e="$(printf '%s' "${R[es]}" | median)"; p="$(printf '%s' "${R[plpgsql]}" | median)"
    cl="$(printf '%s' "${C[limit]}" | median)"; ce="$(printf '%s' "${C[es]}" | median)"; cp="$(printf '%s' "${C[plpgsql]}" | median)"
    printf '| %s | %s | %s | %s | %s | **%s** | %s | %s / %s / %s | %s |\n' "$clients" "$sync" "$(fmt "$e")" "$(fmt "$l")" "$(fmt "$p")" \
      "$(ratio "$e" "$l")" "$(ratio "$e" "$p")" "$(fmt "$ce")" "$(fmt "$cl")" "$(fmt "$cp")" "$(ratio "$cl" "$ce")" | tee -a "$DIR/append.rows"
  done
done

echo "== append_events of 100 events vs multi-row INSERT ($ROUNDS rounds x ${DURATION}s) =="
for sync in off on; do
  for clients in 1 8; do
    es=""; ins=""; ces=""; cins=""
    for round in $(seq 1 "$ROUNDS"); do
      if [ $((round % 2)) -eq 1 ]; then order="es insert"; else order="insert es"; fi
      for variant in $order; do
        if [ "$variant" = es ]; then
          figs "append_events, $clients clients, sync $sync" pgb_cpu batch_es.sql "$clients" "$sync" consistency.event_position_seq
          read -r t c <<<"$FIGS"; es+="$t"$'\n'; ces+="$c"$'\n'
        else
          figs "multi-row INSERT, $clients clients, sync $sync" pgb_cpu batch_insert.sql "$clients" "$sync" bench.limit_seq
          read -r t c <<<"$FIGS"; ins+="$t"$'\n'; cins+="$c"$'\n'
        fi
      done
    done
    e="$(printf '%s' "$es" | median)"; i="$(printf '%s' "$ins" | median)"
    ce="$(printf '%s' "$ces" | median)"; ci="$(printf '%s' "$cins" | median)"
    printf '| %s | %s | %s | %s | **%s** | %s / %s | %s |\n' "$clients" "$sync" "$(fmt "$(awk -v x="$e" 'BEGIN{print x*100}')")" \
      "$(fmt "$(awk -v x="$i" 'BEGIN{print x*100}')")" "$(ratio "$e" "$i")" "$ce" "$ci" "$(ratio "$ci" "$ce")" | tee -a "$DIR/batch.rows"
  done
done

echo "== read_stream of 1,000 events vs plain SELECT ($ROUNDS rounds x ${DURATION}s) =="
for clients in 1 8; do
  es=""; sq=""
  for round in $(seq 1 "$ROUNDS"); do
    figs "read_stream, $clients clients" pgb read_es.sql "$clients" on -T "$DURATION"; read -r t _ <<<"$FIGS"; es+="$t"$'\n'
    figs "plain SELECT, $clients clients" pgb read_sql.sql "$clients" on -T "$DURATION"; read -r t _ <<<"$FIGS"; sq+="$t"$'\n'
  done
  e="$(printf '%s' "$es" | median)"; s="$(printf '%s' "$sq" | median)"
  printf '| %s | %s | %s | %s |\n' "$clients" "$(fmt "$e")" "$(fmt "$s")" "$(ratio "$e" "$s")" | tee -a "$DIR/read.rows"
done

echo "== aggregate_state latency (1 client) =="
for len in 1000 10000 100000; do
  echo "SELECT version FROM consistency.aggregate_state('aggsnap-$len');" > "$work/agg_snap_$len.sql"
  echo "SELECT version FROM consistency.aggregate_state('aggnosnap-$len');" > "$work/agg_nosnap_$len.sql"
  figs "aggregate_state with snapshots, $len events" pgb "agg_snap_$len.sql" 1 on -T "$DURATION"; read -r _ snap <<<"$FIGS"
  n=$(( len >= 100000 ? 10 : (len >= 10000 ? 50 : 300) ))
  figs "aggregate_state without snapshots, $len events" pgb "agg_nosnap_$len.sql" 1 on -t "$n"; read -r _ nosnap <<<"$FIGS"
  printf '| %s | %s | %s |\n' "$len" "$snap" "$nosnap" | tee -a "$DIR/agg.rows"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), ${ROUNDS} rounds x ${DURATION} s per figure (median), $(nproc) cores,"
  echo "load average before/after: $load_before / $load_after."
  echo
  echo "Single-event appends, transactions/s (10,000 existing streams, random stream per append, expected version NULL):"
  echo
  echo "| clients | synchronous_commit | append_event | physical limit | PL/pgSQL append | vs limit | vs PL/pgSQL | backend CPU µs/append: ours / limit / PL/pgSQL | limit CPU ÷ ours |"
  echo "|---|---|---|---|---|---|---|---|---|"
  cat "$DIR/append.rows"
  echo
  echo "Batch of 100 events into a new stream, events/s:"
  echo
  echo "| clients | synchronous_commit | append_events | multi-row INSERT | ratio | backend CPU µs/event: ours / INSERT | INSERT CPU ÷ ours |"
  echo "|---|---|---|---|---|---|---|"
  cat "$DIR/batch.rows"
  echo
  echo "read_stream of 1,000 events, reads/s:"
  echo
  echo "| clients | read_stream | plain SELECT | ratio |"
  echo "|---|---|---|---|"
  cat "$DIR/read.rows"
  echo
  echo "aggregate_state latency, ms per call (1 client; with snapshots: 99 events since the last snapshot, snapshot_every = 100):"
  echo
  echo "| stream length | with snapshots | without snapshots |"
  echo "|---|---|---|"
  cat "$DIR/agg.rows"
} > "$OUT"
echo
cat "$OUT"
echo
echo "(written to $OUT)"
bench_finish
