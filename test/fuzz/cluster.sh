# Shared by scripts/sqlsmith and scripts/sqlfuzz (sourced): a throwaway cluster whose
# log the fuzzers can judge (test/fuzz/pglog.py), with databases `fuzz` (UTF8) and
# `fuzz_ascii` (SQL_ASCII: text holds any bytes, also ones that are not UTF-8) served
# by the worker and filled by test/fuzz/populate.sql, and `fuzz_remote` as their 2PC
# participant.
#
#   fuzz_bin              the staged PostgreSQL bin directory with this checkout installed
#   fuzz_cluster_up DIR   creates and fills the cluster in DIR unless it runs already;
#                         sets FUZZ_PORT and FUZZ_LOG
#   fuzz_cluster_down DIR

fuzz_bin() {
  if [ -n "${PGC_BIN:-}" ]; then echo "$PGC_BIN"; else "$root/scripts/stage-install" "$root/build/stage"; fi
}

fuzz_cluster_up() {
  local dir="$1" owner
  FUZZ_LOG="$dir/postgresql.log"
  if [ ! -f "$dir/data/postmaster.pid" ]; then
    rm -rf "$dir"
    "$root/scripts/pg-cluster" init "$dir" --database 'fuzz,fuzz_ascii' \
      --set "log_line_prefix=%m [%p] %b|%a|%e " --set log_error_verbosity=verbose \
      --set log_min_messages=warning --set pg_consistency.poll_interval=200ms >/dev/null || return 1
    FUZZ_PORT=$(sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$dir/data/postgresql.conf" | tail -n 1)
    owner=$(if [ "$(id -u)" -eq 0 ]; then echo "$PGC_OS_USER"; else id -un; fi)
    psql -X -q -h 127.0.0.1 -p "$FUZZ_PORT" -U "$owner" -d postgres \
      -c 'CREATE DATABASE fuzz' -c 'CREATE DATABASE fuzz_remote' \
      -c "CREATE DATABASE fuzz_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" || return 1
    for db in fuzz fuzz_ascii; do
      psql -X -q -h 127.0.0.1 -p "$FUZZ_PORT" -U "$owner" -d "$db" -o /dev/null \
        -v remote_conninfo="host=127.0.0.1 port=$FUZZ_PORT dbname=fuzz_remote user=$owner" \
        -f "$root/test/fuzz/populate.sql" || return 1
    done
  fi
  FUZZ_PORT=$(sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$dir/data/postgresql.conf" | tail -n 1)
  FUZZ_OWNER=$(if [ "$(id -u)" -eq 0 ]; then echo "$PGC_OS_USER"; else id -un; fi)
}

fuzz_cluster_down() {
  "$root/scripts/pg-cluster" stop "$1" >/dev/null 2>&1 || true
}
