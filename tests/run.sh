#!/usr/bin/env bash
# Runs every test suite against the build in $1 (build/release by default) and
# ends with one summary line: "wharf tests: N passed, N failed[, N skipped]".
# Suites: C unit tests (cmocka, TAP output), the S3 client and wharf's S3 storage
# driver (tests/e2e/test_s3_storage.py, and test_nodes.py's s3 variants) against a real
# radosgw, fuzz corpus replay, e2e (pytest).
set -uo pipefail
B=${1:-build/release}
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
log=$(mktemp -d)
ceph_dir=
cleanup() {
    [ -z "$ceph_dir" ] || WHARF_CEPH_DIR=$ceph_dir bash scripts/ceph.sh down >/dev/null 2>&1
    rm -rf "$log"
}
trap cleanup EXIT

# Unit tests: cmocka prints TAP with CMOCKA_MESSAGE_OUTPUT=TAP.
for t in "$B"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    CMOCKA_MESSAGE_OUTPUT=TAP env -u WHARF_S3_TEST_ENDPOINT "$t" >"$log/$name.out" 2>&1
    rc=$?
    p=$(grep -c '^ok ' "$log/$name.out")
    # cmocka's TAP writes a skipped case as "not ok N # SKIP" (cases of the other driver)
    s=$(grep -c '^not ok [0-9]* # SKIP' "$log/$name.out")
    f=$(($(grep -c '^not ok ' "$log/$name.out") - s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$f" -ne 0 ]; then
        echo "FAIL unit $name"; cat "$log/$name.out"
    else
        extra=""; [ "$s" -eq 0 ] || extra=", $s skipped"
        echo "ok   unit $name ($p cases$extra)"
    fi
done

# WHARF_UNIT_ONLY=1: the unit tests alone (make tsan)
if [ "${WHARF_UNIT_ONLY:-0}" = 1 ]; then
    echo "wharf unit tests: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit
fi

# The S3 client against Ceph's radosgw, which checks every signature (scripts/ceph.sh
# starts a throwaway one on free loopback ports). WHARF_S3_TESTS: "1" requires it (CI;
# Ceph missing is then a failure), "0" skips it; unset, it runs where Ceph is installed
# (bash scripts/deps.sh s3) and is counted as skipped elsewhere.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
s3_want=${WHARF_S3_TESTS:-auto}
if [ "$s3_want" = 0 ]; then
    skipped=$((skipped + 1)); echo "skip s3 (WHARF_S3_TESTS=0)"
elif ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null; then
    if [ "$s3_want" = 1 ]; then
        failed=$((failed + 1)); echo "FAIL s3: Ceph is not installed (bash scripts/deps.sh s3)"
    else
        skipped=$((skipped + 1)); echo "skip s3 (Ceph is not installed: bash scripts/deps.sh s3)"
    fi
elif [ ! -x "$B/tests/test_s3" ]; then
    failed=$((failed + 1)); echo "FAIL s3: $B/tests/test_s3 is not built"
else
    ceph_dir=$log/ceph
    start=$(date +%s.%N)
    if WHARF_CEPH_DIR=$ceph_dir WHARF_CEPH_PORT=$(free_port) WHARF_CEPH_MON_PORT=$(free_port) \
        bash scripts/ceph.sh up >"$log/ceph.env" 2>"$log/ceph.err"; then
        up=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
        env_args=()
        while IFS= read -r line; do env_args+=("WHARF_S3_TEST_${line#WHARF_S3_}"); done \
            < <(grep '^WHARF_S3_' "$log/ceph.env")
        # the client, then the storage driver through the storage contract
        for name in test_s3 test_store_s3; do
            if [ ! -x "$B/tests/$name" ]; then
                failed=$((failed + 1)); echo "FAIL s3: $B/tests/$name is not built"; continue
            fi
            CMOCKA_MESSAGE_OUTPUT=TAP env "${env_args[@]}" "$B/tests/$name" >"$log/s3-$name.out" 2>&1
            rc=$?
            p=$(grep -c '^ok ' "$log/s3-$name.out")
            f=$(grep -c '^not ok ' "$log/s3-$name.out")
            if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
            passed=$((passed + p)); failed=$((failed + f))
            if [ "$f" -ne 0 ]; then
                echo "FAIL s3 $name against radosgw"; cat "$log/s3-$name.out"
            else
                echo "ok   s3 $name against radosgw ($p cases; Ceph up in ${up} s)"
            fi
        done
        # wharf with storage.driver s3, in the same Ceph window: test_s3_storage.py and
        # the s3 variants of test_nodes.py (two nodes on PostgreSQL behind nginx, their
        # blobs in the bucket; `-k s3` keeps those and the whole of test_s3_storage.py).
        # Once per CI run (WHARF_S3_E2E=0 leaves it out of the sanitizer pass)
        if [ "${WHARF_S3_E2E:-1}" = 0 ]; then
            skipped=$((skipped + 1)); echo "skip s3 e2e (WHARF_S3_E2E=0)"
        else
            start=$(date +%s)
            env "${env_args[@]}" WHARF_BIN="$PWD/$B/wharf" /usr/bin/python3 -m pytest -q \
                -p no:cacheprovider tests/e2e/test_s3_storage.py tests/e2e/test_nodes.py \
                -k s3 >"$log/s3e2e.out" 2>&1
            rc=$?
            line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' "$log/s3e2e.out" | tail -n 1)
            p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | awk '{s+=$1} END{print s+0}')
            s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
            [ -z "$f" ] && f=0
            if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
            passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
            if [ "$f" -ne 0 ]; then
                echo "FAIL s3 e2e tests/e2e/test_s3_storage.py, test_nodes.py -k s3"
                tail -n 60 "$log/s3e2e.out"
                grep -E '^(FAILED|ERROR) ' "$log/s3e2e.out" | cut -c1-240 || true
            else
                extra=""; [ "$s" -eq 0 ] || extra=", $s skipped"
                echo "ok   s3 e2e test_s3_storage.py, test_nodes.py -k s3 ($p cases$extra," \
                    "$(($(date +%s) - start)) s)"
            fi
        fi
    else
        failed=$((failed + 1)); echo "FAIL s3: Ceph did not start"; cat "$log/ceph.err"
        tail -n 20 "$ceph_dir"/log/*.log 2>/dev/null
    fi
    WHARF_CEPH_DIR=$ceph_dir bash scripts/ceph.sh down >/dev/null 2>&1
    ceph_dir=
fi

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
    # (test_s3_storage.py and the s3 variants of test_nodes.py ran above, while radosgw
    # was up: here, without WHARF_S3_TESTS, those variants are skipped, not failed)
    env -u WHARF_S3_TESTS WHARF_BIN="$PWD/$B/wharf" /usr/bin/python3 -m pytest -q \
        -p no:cacheprovider tests/e2e \
        --ignore=tests/e2e/test_s3_storage.py ${WHARF_E2E_ARGS:-} >"$log/e2e.out" 2>&1
    rc=$?
    tail -n 40 "$log/e2e.out"
    # every failure and error by name, one line each (a long message above can push them
    # out of the tail)
    grep -E '^(FAILED|ERROR) ' "$log/e2e.out" | cut -c1-240 || true
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
