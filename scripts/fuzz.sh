#!/usr/bin/env bash
# Builds one fuzz target with clang's libFuzzer (plus ASan and UBSan, see the
# Makefile's `fuzz` rules) and runs it for a while. libFuzzer writes the new
# inputs it finds into the first corpus directory it is given, so that one is
# build/fuzz/NAME/corpus; the tracked seeds (tests/fuzz/corpus/NAME) come
# second and are only read. Crashes, leaks and timeouts are written to
# build/fuzz/NAME/ (crash-<sha1> etc.); copy the ones worth keeping into
# tests/fuzz/corpus/NAME by hand, after the fix. WH_FUZZ_OUT=DIR puts the
# corpus and the artifacts in DIR instead of build/fuzz/NAME.
# Usage: scripts/fuzz.sh NAME [SECONDS] [libFuzzer flags...]
#   e.g. scripts/fuzz.sh tar 300      scripts/fuzz.sh version 60 -jobs=2
# NAME is a tests/fuzz/fuzz_NAME.c target.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() {
    local names
    names=$(cd tests/fuzz && printf '%s ' fuzz_*.c | sed 's/fuzz_//g; s/\.c / /g')
    echo "usage: scripts/fuzz.sh NAME [SECONDS] [libFuzzer flags...]; NAME is one of: $names" >&2
    exit 2
}
[ $# -ge 1 ] || usage
name=$1
secs=${2:-60}
shift $(($# >= 2 ? 2 : 1))
if ! [[ $name =~ ^[a-z0-9_]+$ ]] || [ ! -f "tests/fuzz/fuzz_$name.c" ]; then usage; fi
[[ $secs =~ ^[0-9]+$ ]] || usage
seeds=tests/fuzz/corpus/$name
[ -d "$seeds" ] || { echo "fuzz.sh: no seed corpus $seeds" >&2; exit 1; }

bash scripts/deps.sh fuzz
make --no-print-directory "build/fuzz/fuzz_$name"

out=${WH_FUZZ_OUT:-build/fuzz/$name}
mkdir -p "$out/corpus"
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
exec "build/fuzz/fuzz_$name" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=200000 \
    -artifact_prefix="$out/" "$@" "$out/corpus" "$seeds"
