#!/usr/bin/env bash
# Builds one fuzz target with clang's libFuzzer (plus ASan and UBSan) and runs
# it for a while over a copy of its seed corpus. New inputs stay in
# build/fuzz/<name>/corpus; crashes are written next to it.
# Usage: scripts/fuzz.sh NAME [SECONDS]     e.g. scripts/fuzz.sh tar 300
# NAME is a tests/fuzz/fuzz_NAME.c target (dpkg, apk, tar, rpmdb, vulndb, version).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/fuzz.sh NAME [SECONDS]}
secs=${2:-60}
cc=${CLANG:-clang-14}
out=build/fuzz/$name
mkdir -p "$out/corpus"
pkgs="jansson libarchive sqlite3 openssl libcurl"
# shellcheck disable=SC2046
"$cc" -g -O1 -std=c17 -D_GNU_SOURCE -Isrc $(pkg-config --cflags $pkgs) \
    -fsanitize=fuzzer,address,undefined -o "$out/fuzz_$name" "tests/fuzz/fuzz_$name.c" \
    $(find src -name '*.c' ! -path src/main.c | sort) $(pkg-config --libs $pkgs) -lm -lpthread
cp -n "tests/fuzz/corpus/$name/"* "$out/corpus/" 2>/dev/null || true
cd "$out"
exec "./fuzz_$name" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=200000 corpus
