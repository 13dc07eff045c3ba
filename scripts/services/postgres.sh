#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests and for development, on 127.0.0.1 only.
#   scripts/services/postgres.sh up [DIR]    start it (creating it first); prints
#                                            BINDLE_TEST_POSTGRES_URL=postgres://... on stdout
#   scripts/services/postgres.sh down [DIR]  stop it (the data stays in DIR)
# DIR defaults to .services/postgres in the repository. The port is BINDLE_PG_PORT (default
# 25432). Idempotent: `up` on a running cluster only prints the URL, `down` on a stopped one
# does nothing. The cluster trusts local connections of the `bindle` role (a test database,
# never a production set-up) and has a `bindle_test` database. Run as root, the server runs as
# the `postgres` user. PostgreSQL is installed with apt-get when it is missing.
set -euo pipefail

cmd=${1:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${2:-$root/.services/postgres}
port=${BINDLE_PG_PORT:-25432}
url="postgres://bindle@127.0.0.1:${port}/bindle_test"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return 0; fi
  return 1
}

bin=$(find_bin || true)
if [ -z "$bin" ] && [ "$cmd" = up ]; then
  log "PostgreSQL not found: installing it with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  for attempt in 1 2 3 4 5 6; do
    if apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }; then break; fi
    log "apt-get failed (dpkg lock held?), retry $attempt"; sleep 10
  done
  bin=$(find_bin)
fi

# Runs a PostgreSQL program as the owner of the cluster (postgres refuses to run as root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  up)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
    chmod 0700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      log "creating a cluster in $dir"
      as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      log "starting on 127.0.0.1:$port"
      as_owner "$bin/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >&2
    fi
    psql() { PGOPTIONS="-c client_min_messages=warning" as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
    if [ "$(psql -tA -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'bindle'")" != 1 ]; then
      psql -d postgres -c 'CREATE ROLE bindle LOGIN CREATEDB'
    fi
    if [ "$(psql -tA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'bindle_test'")" != 1 ]; then
      psql -d postgres -c 'CREATE DATABASE bindle_test OWNER bindle'
    fi
    # Search uses pg_trgm; creating it needs a superuser, so it is created here once for the role.
    psql -d bindle_test -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm'
    psql -d template1 -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm'
    echo "BINDLE_TEST_POSTGRES_URL=$url"
    ;;
  down)
    if [ -n "$bin" ] && [ -f "$dir/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      log "stopping"
      as_owner "$bin/pg_ctl" -D "$dir" -w -t 60 -m fast stop >&2
    fi
    ;;
  *)
    echo "usage: $0 up|down [DIR]" >&2
    exit 2
    ;;
esac
