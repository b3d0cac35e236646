# Checks the benchmarks make on their own figures (sourced by bench/*/run*). A figure that
# is empty, zero or not a number (a sub-run that failed), or latency samples that do not
# cover every message published, make the benchmark exit 1 at the end with the names of
# those figures; a printed target is marked PASS or MISS, and a miss makes it exit 3 unless
# --no-targets (BENCH_NO_TARGETS=1) asks for a report only. Every check runs to the end
# first, so one failure does not hide the others' figures.
#
#   bench_figure NAME VALUE            VALUE is a finite number above 0
#   bench_count NAME GOT WANT          GOT equals WANT (e.g. samples = messages published)
#   bench_target NAME VALUE OP LIMIT   OP is >= or <=; prints the figure, PASS or MISS
#   bench_finish                       the summary and the exit status

BENCH_NO_TARGETS=${BENCH_NO_TARGETS:-0}
bench_failed=()
bench_missed=()

bench_is_number() {
  awk -v v="$1" 'BEGIN { exit !(v ~ /^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/) }'
}

bench_figure() {
  local name=$1 value=${2:-}
  if bench_is_number "$value" && awk -v v="$value" 'BEGIN { exit !(v + 0 > 0) }'; then return 0; fi
  echo "FAILED: $name is '$value' (empty, zero or not a number: its run failed)" >&2
  bench_failed+=("$name")
}

bench_count() {
  local name=$1 got=${2:-} want=${3:-}
  if bench_is_number "$got" && bench_is_number "$want" \
     && awk -v g="$got" -v w="$want" 'BEGIN { exit !(g + 0 == w + 0 && w + 0 > 0) }'; then return 0; fi
  echo "FAILED: $name: $got samples for $want messages published (every message must be measured)" >&2
  bench_failed+=("$name")
}

bench_target() {
  local name=$1 value=${2:-} op=$3 limit=$4 verdict
  if ! bench_is_number "$value"; then
    echo "FAILED: target $name: the figure is '$value' (its run failed)" >&2
    bench_failed+=("$name")
    return 0
  fi
  case "$op" in
    '>=') verdict=$(awk -v v="$value" -v l="$limit" 'BEGIN { print (v + 0 >= l + 0) ? "PASS" : "MISS" }') ;;
    '<=') verdict=$(awk -v v="$value" -v l="$limit" 'BEGIN { print (v + 0 <= l + 0) ? "PASS" : "MISS" }') ;;
    *) echo "bench_target: unknown operator $op" >&2; exit 2 ;;
  esac
  printf '   target %-58s %10s %s %-8s %s\n' "$name" "$value" "$op" "$limit" "$verdict"
  [ "$verdict" = PASS ] || bench_missed+=("$name")
}

bench_finish() {
  if [ ${#bench_failed[@]} -gt 0 ]; then
    echo "FAILED: ${#bench_failed[@]} figure(s) missing or incomplete: ${bench_failed[*]}" >&2
    exit 1
  fi
  if [ ${#bench_missed[@]} -gt 0 ]; then
    if [ "$BENCH_NO_TARGETS" = 1 ]; then
      echo "targets missed (reported only, --no-targets): ${bench_missed[*]}"
      return 0
    fi
    echo "MISSED: ${#bench_missed[@]} target(s): ${bench_missed[*]} (--no-targets to report only)" >&2
    exit 3
  fi
  echo "every figure present; every target checked is met"
}
