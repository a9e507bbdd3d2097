#!/usr/bin/env bash
# Stops the throwaway PostgreSQL that scripts/pg-up.sh started in DIR and removes
# DIR. The postmaster is found by its PID file (DIR/data/postmaster.pid); it gets
# SIGINT (PostgreSQL's "fast" shutdown: sessions are ended, no checkpoint wait)
# and is waited for, then SIGKILL after 30 s.
# Usage: scripts/pg-down.sh DIR
set -euo pipefail
root=${1:?usage: pg-down.sh DIR (the WHARF_PG_ROOT pg-up.sh printed)}
case "$root" in
    */wharf-pg.*) ;;
    *) echo "pg-down: $root is not a directory pg-up.sh made" >&2; exit 2 ;;
esac
[ -d "$root" ] || exit 0
pidfile=$root/data/postmaster.pid
if [ -f "$pidfile" ]; then
    pid=$(head -n 1 "$pidfile")
    case "$pid" in '' | *[!0-9]*) echo "pg-down: bad pid in $pidfile" >&2; exit 1 ;; esac
    if kill -INT "$pid" 2>/dev/null; then
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "pg-down: postmaster $pid still up after 30 s, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
fi
rm -rf "$root"
