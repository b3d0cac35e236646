# Shared helpers for the project's scripts (sourced, not run).

PGC_OS_USER="${PGC_OS_USER:-pgc}"
PG_BINDIR="${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# PostgreSQL refuses to run as root: as root, run the command as the unprivileged user.
as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$PGC_OS_USER" -- env PATH="$PG_BINDIR:$PATH" "$@"
  else
    env PATH="$PG_BINDIR:$PATH" "$@"
  fi
}

# Creates the unprivileged OS user that owns test clusters (root only; idempotent).
ensure_pg_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id "$PGC_OS_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$PGC_OS_USER"
  fi
}
