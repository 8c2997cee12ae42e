#!/usr/bin/env bash
# Starts (or finds running) a throwaway PostgreSQL cluster on loopback for the store tests and
# prints its URL on stdout; everything else goes to stderr. Idempotent: run it as often as you like.
#
#   export VIGIL_TEST_PG="$(test/store/start-postgres.sh)"
#   npx node --test test/store/postgres.test.ts
#   test/store/start-postgres.sh stop
#
# Environment: VIGIL_PG_DIR (default /tmp/vigil-pg), VIGIL_PG_PORT (default 55432),
# VIGIL_PG_DB (default vigil_test). When the server binaries are missing and this runs as root
# on Debian/Ubuntu, it installs the `postgresql` package with apt-get.
#
# The cluster trusts every local connection and runs with fsync=off: it is for tests only.
set -euo pipefail

dir="${VIGIL_PG_DIR:-/tmp/vigil-pg}"
port="${VIGIL_PG_PORT:-55432}"
db="${VIGIL_PG_DB:-vigil_test}"
url="postgres://postgres@127.0.0.1:${port}/${db}"

log() { echo "start-postgres: $*" >&2; }

find_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then pg_config --bindir; fi
}

bindir="$(find_bindir)"
if [[ -z "$bindir" ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing postgresql with apt-get"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
    bindir="$(find_bindir)"
  fi
  if [[ -z "$bindir" ]]; then
    log "PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package"
    exit 1
  fi
fi

# initdb refuses to run as root: as root, run the server as the postgres user.
if [[ "$(id -u)" == 0 ]]; then
  run_user=postgres
  id -u "$run_user" >/dev/null 2>&1 || useradd --system --home-dir "$dir" --shell /bin/bash "$run_user"
  as_user() { runuser -u "$run_user" -- "$@"; }
else
  run_user="$(id -un)"
  as_user() { "$@"; }
fi

pg_ctl_cmd() { as_user "$bindir/pg_ctl" -D "$dir/data" "$@"; }

if [[ "${1:-start}" == "stop" ]]; then
  if [[ -f "$dir/data/postmaster.pid" ]]; then pg_ctl_cmd stop -m fast -w >&2 || true; fi
  log "stopped"
  exit 0
fi

mkdir -p "$dir"
chown "$run_user" "$dir"
chmod 700 "$dir"

if [[ ! -f "$dir/data/PG_VERSION" ]]; then
  log "initdb in $dir/data"
  as_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
fi

if ! pg_ctl_cmd status >/dev/null 2>&1; then
  log "starting on 127.0.0.1:$port"
  pg_ctl_cmd start -w -t 60 -l "$dir/server.log" \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" >&2 \
    || { tail -n 30 "$dir/server.log" >&2; exit 1; }
fi

psql_cmd() { as_user "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

for _ in $(seq 1 50); do
  if psql_cmd -d postgres -c "SELECT 1" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
if [[ "$(psql_cmd -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]]; then
  log "creating database $db"
  psql_cmd -d postgres -c "CREATE DATABASE \"$db\"" >&2
fi

echo "$url"
