#!/usr/bin/env bash
# Checks of the tooling around the code: the Makefile (no pkg-config before the
# packages are installed, header dependencies of tests), the fuzz replay driver
# (an empty corpus is a failure), scripts/fuzz.sh (links, runs, leaves the tracked
# corpus alone) and the docs that restate argon2id parameters from the code.
# Usage: bash tests/tooling/test_tooling.sh [BUILD_DIR]   (default build/release,
# which must be built: `make all unit`). Installs clang through scripts/deps.sh
# fuzz for the fuzz-script case. Ends with "tooling tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
B=${1:-build/release}
passed=0 failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { passed=$((passed + 1)); echo "ok   tooling $1"; }
fail() {
    failed=$((failed + 1)); echo "FAIL tooling $1"; shift
    [ $# -eq 0 ] || printf '     %s\n' "$@"
}

# $B is build/BUILD[-werror]: bring it up to date (a no-op after `make all unit`).
b=$(basename "$B")
build=${b%-werror}
mk=(make --no-print-directory BUILD="$build")
[ "$b" = "$build" ] || mk+=(WERROR=1)
if [ "$B" != "build/$b" ] || ! MAKEFLAGS="" "${mk[@]}" all unit >"$tmp/build.out" 2>&1; then
    cat "$tmp/build.out" 2>/dev/null
    echo "tests/tooling: cannot build $B (expected build/BUILD or build/BUILD-werror)" >&2
    exit 2
fi

# A pkg-config that logs every call, over a search path without libisal.pc:
# a machine where one package is not installed yet.
real_pkg_config=$(command -v pkg-config)
mkdir -p "$tmp/bin" "$tmp/pc"
cat >"$tmp/bin/pkg-config" <<EOF
#!/bin/sh
echo "pkg-config \$*" >>"$tmp/pkg-config.log"
exec "$real_pkg_config" "\$@"
EOF
chmod +x "$tmp/bin/pkg-config"
IFS=: read -ra pc_dirs <<<"$("$real_pkg_config" --variable pc_path pkg-config)"
for d in "${pc_dirs[@]}"; do
    for pc in "$d"/*.pc; do
        [ -e "$pc" ] && [ "$(basename "$pc")" != libisal.pc ] && ln -sf "$pc" "$tmp/pc/"
    done
done
without_isal() {
    rm -f "$tmp/pkg-config.log"
    env -u PKG_CONFIG_PATH PKG_CONFIG_LIBDIR="$tmp/pc" PATH="$tmp/bin:$PATH" MAKEFLAGS="" "$@"
}
pkg_config_calls() { [ -f "$tmp/pkg-config.log" ] && wc -l <"$tmp/pkg-config.log" || echo 0; }

# 1. `make run|test|bench|fuzz` install packages first (scripts/deps.sh, replaced here
#    by a stand-in that stops make): nothing may ask pkg-config before that.
cat >"$tmp/deps" <<'EOF'
#!/bin/sh
echo "DEPS-RAN $*"
exit 3
EOF
chmod +x "$tmp/deps"
for goal in run test bench fuzz; do
    out=$(without_isal timeout 600 make --no-print-directory "$goal" DEPS="$tmp/deps" \
          B="$tmp/b-$goal" 2>&1)
    calls=$(pkg_config_calls)
    if [ "$calls" -eq 0 ] && grep -q "^DEPS-RAN $goal" <<<"$out" && ! grep -q 'Package' <<<"$out"; then
        ok "make $goal: no pkg-config before scripts/deps.sh"
    else
        fail "make $goal: no pkg-config before scripts/deps.sh" "pkg-config calls: $calls" \
            "$(head -n 8 <<<"$out")"
    fi
done

# 2. A build without the packages stops at once with what to run.
out=$(without_isal timeout 600 make --no-print-directory B="$tmp/b-all" all 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && grep -q 'scripts/deps.sh' <<<"$out" && [ "$(pkg_config_calls)" -eq 1 ] &&
   [ ! -e "$tmp/b-all/src" ]; then
    ok "make all without a package: one pkg-config call, stops with the deps.sh hint"
else
    fail "make all without a package: one pkg-config call, stops with the deps.sh hint" \
        "rc=$rc pkg-config calls: $(pkg_config_calls)" "$(tail -n 4 <<<"$out")"
fi

# 3. pkg-config is asked once per question, not once per compiled file.
rm -f "$tmp/pkg-config.log"
env PATH="$tmp/bin:$PATH" MAKEFLAGS="" make --no-print-directory -n B="$tmp/b-n" all unit \
    >/dev/null 2>&1
if [ "$(pkg_config_calls)" -le 2 ]; then
    ok "make -n all unit: pkg-config asked at most twice"
else
    fail "make -n all unit: pkg-config asked at most twice" "calls: $(pkg_config_calls)"
fi

# 4. Test headers are dependencies: scan_fixture.h changed means the scan tests
#    (and only those) are rebuilt; each fuzz replay lists its own target's headers.
out=$(MAKEFLAGS="" "${mk[@]}" -n -W tests/unit/scan_fixture.h unit 2>&1)
rebuilt=$(grep -oE "$B/tests/test_[a-z_]+" <<<"$out" | sort -u | tr '\n' ' ')
users=$(grep -l '"scan_fixture.h"' tests/unit/test_*.c | sed "s|tests/unit/|$B/tests/|; s|\.c$||" |
        sort -u | tr '\n' ' ')
if [ -n "$users" ] && [ "$rebuilt" = "$users" ]; then
    ok "tests/unit/scan_fixture.h changed: rebuilds $rebuilt"
else
    fail "tests/unit/scan_fixture.h changed: rebuilds the tests that include it" \
        "expected: $users" "rebuilt:  $rebuilt"
fi
bad=
for t in "$B"/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    head -n 1 "$t.d" 2>/dev/null | grep -q "^$t: tests/fuzz/$name.c" || bad="$bad $name"
done
if [ -z "$bad" ]; then
    ok "fuzz replay binaries: dependency files list the target's sources"
else
    fail "fuzz replay binaries: dependency files list the target's sources" "wrong:$bad"
fi

# 5. The replay driver fails when it ran nothing.
replay=$B/fuzz/fuzz_version
mkdir -p "$tmp/empty" "$tmp/nofiles/sub"
: >"$tmp/nofiles/.hidden"
bad=
for dir in "$tmp/empty" "$tmp/nofiles" "$tmp/missing"; do
    if "$replay" "$dir" >"$tmp/replay.out" 2>&1; then bad="$bad $dir"; fi
done
"$replay" tests/fuzz/corpus/version >"$tmp/replay.out" 2>&1 && rc=0 || rc=$?
if [ -z "$bad" ] && [ "$rc" -eq 0 ] && grep -qE '^replayed [1-9][0-9]* inputs' "$tmp/replay.out"; then
    ok "fuzz replay: fails on an empty, input-less or missing corpus, passes on the seeds"
else
    fail "fuzz replay: fails on an empty, input-less or missing corpus, passes on the seeds" \
        "passed on:$bad" "seeds: rc=$rc $(cat "$tmp/replay.out")"
fi

# 6. The argon2id parameters stated in the docs are the ones in auth.h.
t=$(sed -nE 's/^#define WH_AUTH_ARGON2_T ([0-9]+).*/\1/p' src/auth/auth.h)
p=$(sed -nE 's/^#define WH_AUTH_ARGON2_P ([0-9]+).*/\1/p' src/auth/auth.h)
m_expr=$(sed -nE 's/^#define WH_AUTH_ARGON2_M_KIB \(?([0-9 *]+)\)?.*/\1/p' src/auth/auth.h)
m=$((m_expr))
bad=
if [ -z "$t" ] || [ -z "$p" ] || [ "$m" -le 0 ]; then
    bad="cannot read WH_AUTH_ARGON2_{T,M_KIB,P} from src/auth/auth.h"
fi
# PHC strings ("m=7168,t=5,p=1") anywhere in the header and the docs
while IFS= read -r hit; do
    [ "${hit##*:}" = "m=$m,t=$t,p=$p" ] || bad="$bad | $hit"
done < <(grep -rnoE 'm=[0-9]+,t=[0-9]+,p=[0-9]+' src/auth/auth.h docs README.md)
# prose in the docs: a line naming argon2id with a t= states t, p and the memory in MiB
while IFS= read -r line; do
    for kv in $(grep -oE '\bt=[0-9]+|\bp=[0-9]+|[0-9]+ MiB' <<<"$line" | tr ' ' '_'); do
        case $kv in
            t=*) [ "$kv" = "t=$t" ] ;;
            p=*) [ "$kv" = "p=$p" ] ;;
            *_MiB) [ "$kv" = "$((m / 1024))_MiB" ] ;;
        esac || bad="$bad | $kv in: ${line:0:120}"
    done
done < <(grep -rnE 'argon2id.*\bt=[0-9]' docs README.md)
if [ -z "$bad" ]; then
    ok "argon2id parameters in the docs and auth.h match the code (t=$t, m=$m KiB, p=$p)"
else
    fail "argon2id parameters in the docs and auth.h match the code (t=$t, m=$m KiB, p=$p)" \
        "$bad"
fi

# 7. scripts/fuzz.sh builds a target, fuzzes for a few seconds, writes what it
#    finds outside the tracked corpus and leaves the seeds as they were.
snapshot() { (cd tests/fuzz/corpus && find . -type f -printf '%p %s %T@\n' | sort; git status --porcelain .); }
before=$(snapshot)
WH_FUZZ_OUT="$tmp/fuzz-out" timeout 900 bash scripts/fuzz.sh version 5 >"$tmp/fuzz.out" 2>&1
rc=$?
after=$(snapshot)
found=$(find "$tmp/fuzz-out/corpus" -type f 2>/dev/null | wc -l)
if [ "$rc" -eq 0 ] && [ "$found" -gt 0 ] && [ "$before" = "$after" ]; then
    ok "scripts/fuzz.sh version 5: $found inputs in its own corpus, seeds untouched"
else
    fail "scripts/fuzz.sh version 5: inputs in its own corpus, seeds untouched" \
        "rc=$rc new inputs: $found seeds unchanged: $([ "$before" = "$after" ] && echo yes || echo no)" \
        "$(tail -n 15 "$tmp/fuzz.out")"
fi

# 8. `make fuzz` builds every target for libFuzzer, and each one runs its seeds.
out=$(MAKEFLAGS="" make --no-print-directory fuzz 2>&1)
rc=$?
bad=
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    [ -x "build/fuzz/$name" ] || { bad="$bad $name(missing)"; continue; }
    mkdir -p "$tmp/seedrun/$name"
    "build/fuzz/$name" -runs=0 "$tmp/seedrun/$name" "tests/fuzz/corpus/${name#fuzz_}" \
        >"$tmp/seedrun/$name.out" 2>&1 || bad="$bad $name(rc=$?)"
done
if [ "$rc" -eq 0 ] && [ -z "$bad" ]; then
    ok "make fuzz: every target builds with libFuzzer and runs its seeds"
else
    fail "make fuzz: every target builds with libFuzzer and runs its seeds" "rc=$rc$bad" \
        "$(tail -n 5 <<<"$out")"
fi

echo "tooling tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
