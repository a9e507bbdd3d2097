#!/usr/bin/env bash
# Runs the given database unit test binaries against a throwaway PostgreSQL
# (scripts/pg-up.sh, stopped on exit), with WHARF_TEST_PG_DSN set so that
# tests/unit/db_fixture.h opens the postgres driver. With WHARF_TEST_PG_DSN
# already set, that server is used and nothing is started.
# Usage: tests/unit-pg.sh build/release/tests/test_db ...
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${WHARF_TEST_PG_DSN:-}" ]; then
    out=$(bash scripts/pg-up.sh) || exit 1
    eval "$out"
    # shellcheck disable=SC2064
    trap "bash scripts/pg-down.sh '$WHARF_PG_ROOT'" EXIT
fi
export WHARF_TEST_PG_DSN
failed=0
for t in "$@"; do
    name=$(basename "$t")
    if CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"/tmp/$name.pg.$$" 2>&1; then
        echo "ok   unit-pg $name ($(grep -c '^ok ' "/tmp/$name.pg.$$") cases)"
    else
        failed=$((failed + 1))
        echo "FAIL unit-pg $name"
        cat "/tmp/$name.pg.$$"
    fi
    rm -f "/tmp/$name.pg.$$"
done
[ "$failed" -eq 0 ]
