#!/usr/bin/env bash
# Runs every test suite against the build in $1 (build/release by default) and
# ends with one summary line: "wharf tests: N passed, N failed[, N skipped]".
# Suites: C unit tests (cmocka, TAP output), fuzz corpus replay, e2e (pytest).
set -uo pipefail
B=${1:-build/release}
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Unit tests: cmocka prints TAP with CMOCKA_MESSAGE_OUTPUT=TAP.
for t in "$B"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$log/$name.out" 2>&1
    rc=$?
    p=$(grep -c '^ok ' "$log/$name.out")
    f=$(grep -c '^not ok ' "$log/$name.out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        echo "FAIL unit $name"; cat "$log/$name.out"
    else
        echo "ok   unit $name ($p cases)"
    fi
done

# Fuzz targets, replayed over their seed corpus (a target without a replay binary
# or without seeds fails: a replay that ran nothing is not a pass).
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    t=$B/fuzz/$name
    corpus=tests/fuzz/corpus/${name#fuzz_}
    [ -x "$t" ] || echo "$t: not built" >"$log/$name.out"
    if [ -x "$t" ] && "$t" "$corpus" >"$log/$name.out" 2>&1; then
        passed=$((passed + 1)); echo "ok   fuzz-replay $name"
    else
        failed=$((failed + 1)); echo "FAIL fuzz-replay $name"; cat "$log/$name.out"
    fi
done

# End-to-end tests: the real server driven by skopeo, podman and curl.
if [ -d tests/e2e ] && ls tests/e2e/test_*.py >/dev/null 2>&1; then
    # WHARF_E2E_ARGS: extra pytest arguments (CI leaves the browser suite out of the
    # sanitizer pass: it ran once against the release build)
    # shellcheck disable=SC2086
    WHARF_BIN="$PWD/$B/wharf" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e \
        ${WHARF_E2E_ARGS:-} >"$log/e2e.out" 2>&1
    rc=$?
    tail -n 40 "$log/e2e.out"
    line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' "$log/e2e.out" | tail -n 1)
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
    f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | awk '{s+=$1} END{print s+0}')
    s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
    [ -z "$f" ] && f=0
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
fi

echo "wharf tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
