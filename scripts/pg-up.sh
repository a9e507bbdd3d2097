#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 for tests and prints, as shell assignments,
#   WHARF_PG_ROOT=<temp dir>   (pass it to scripts/pg-down.sh)
#   WHARF_TEST_PG_DSN=postgresql://postgres@127.0.0.1:<port>/wharf
# e.g.  eval "$(bash scripts/pg-up.sh)"; ...; bash scripts/pg-down.sh "$WHARF_PG_ROOT"
#
# The cluster lives in a fresh temp dir (data, log, unix socket), listens on
# 127.0.0.1 only, trusts local connections and runs without fsync: it is for
# tests, never for data. PostgreSQL refuses to run as root, so as root (CI) the
# server runs as the `postgres` user the Debian package creates (runuser);
# otherwise as the calling user. Port: WHARF_PG_PORT, else a free one.
# Packages: postgresql-15 (scripts/deps.sh test).
set -euo pipefail

PGBIN=${WHARF_PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/initdb" ] || {
    echo "pg-up: $PGBIN/initdb missing: bash scripts/deps.sh test (postgresql-15)" >&2
    exit 1
}

port=${WHARF_PG_PORT:-}
if [ -z "$port" ]; then
    # the kernel picks a free port; the window until postgres binds it is small,
    # and a lost race fails loudly in pg_ctl below
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
case "$port" in '' | *[!0-9]*) echo "pg-up: bad port '$port'" >&2; exit 2 ;; esac

root=$(mktemp -d "${TMPDIR:-/tmp}/wharf-pg.XXXXXX")
run=()
if [ "$(id -u)" -eq 0 ]; then
    getent passwd postgres >/dev/null || { echo "pg-up: no postgres user" >&2; exit 1; }
    chown postgres: "$root"
    run=(runuser -u postgres --)
fi
chmod 700 "$root"

fail() {
    echo "pg-up: $1 (logs in $root)" >&2
    cat "$root"/*.log >&2 2>/dev/null || true
    exit 1
}

"${run[@]}" "$PGBIN/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$root/initdb.log" 2>&1 || fail "initdb failed"
# fsync/synchronous_commit/full_page_writes off: a crash loses the cluster, which is
# thrown away anyway; max_connections leaves room for several test processes' pools
"${run[@]}" "$PGBIN/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 30 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$root -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >"$root/pg_ctl.log" 2>&1 || fail "pg_ctl start failed"
"${run[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres wharf \
    >"$root/createdb.log" 2>&1 || {
    bash "$(dirname "$0")/pg-down.sh" "$root" >/dev/null 2>&1 || true
    fail "createdb failed"
}

echo "WHARF_PG_ROOT=$root"
echo "WHARF_TEST_PG_DSN=postgresql://postgres@127.0.0.1:$port/wharf"
