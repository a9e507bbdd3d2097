#!/usr/bin/env bash
# Scanner benchmarks on this machine, written to bench/out/ and printed:
#   1. scan of the Debian bookworm minbase image (OCI layout, one gzip layer):
#      cold (no layer cache) and warm (layer inventory cached), median of N runs;
#   2. the decompression floor: zlib inflate of the same layer (bench/inflate.c),
#      gzip -dc, and gzip -dc | tar -t;
#   3. vulnerability database import rate on a generated tracker document of
#      realistic size (the fixture's records under 30000 source packages).
# Usage: bench/scan.sh [runs]   (default 5). Needs a release build (make) and
# umoci + mmdebstrap (scripts/deps.sh test) for the image.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=build/release/wharf
cache=tests/.cache
out=bench/out
mkdir -p "$out" "$cache"
[ -x "$bin" ] || make -s all
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export WHARF_DATA_DIR="$work/data"
mkdir "$WHARF_DATA_DIR"  # the vulnerability database lives there; only serve creates one

tar="$cache/bookworm-minbase.tar"
if [ ! -f "$tar" ]; then
    mmdebstrap --quiet --variant=minbase bookworm "$cache/bookworm-minbase.tmp.tar"
    mv "$cache/bookworm-minbase.tmp.tar" "$tar"
fi
layout="$cache/bookworm-oci"
if [ ! -f "$layout/index.json" ]; then
    rm -rf "$layout.tmp"
    umoci init --layout "$layout.tmp"
    umoci new --image "$layout.tmp:bookworm"
    umoci raw add-layer --image "$layout.tmp:bookworm" "$tar"
    umoci gc --layout "$layout.tmp"
    mv "$layout.tmp" "$layout"
fi
manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$layout/index.json")
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"].split(":")[1])' "$layout/blobs/sha256/$manifest")
blob="$layout/blobs/sha256/$layer"

"$bin" vulndb import tests/data/vulndb >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timeit() { # runs "$@" $runs times, prints the median wall time in seconds
    for _ in $(seq "$runs"); do
        s=$(now); "$@" >/dev/null 2>&1; e=$(now)
        echo "$e - $s" | bc -l
    done | median
}

target="oci:$layout:bookworm"
cold=$(timeit "$bin" scan --no-cache "$target")
"$bin" scan --cache-dir "$work/cache" "$target" >/dev/null
warm=$(timeit "$bin" scan --cache-dir "$work/cache" "$target")
# An image of 3 × 64 MiB layers of random data (stored in gzip, as the
# registry benchmark pushes): the cost of reading big layers.
python3 bench/mklayout.py "$work/big" --layers 3 --mib 64 --tag big >/dev/null
bigscan=$(timeit "$bin" scan --no-cache "oci:$work/big:big")

# A second image on the same base layer plus one small layer of its own: with
# the base cached from the first image, only the new layer is read.
cp -r "$layout" "$work/second"
mkdir -p "$work/app/etc/app"
head -c 65536 /dev/urandom >"$work/app/etc/app/data"
tar -C "$work/app" -cf "$work/app.tar" .
umoci raw add-layer --image "$work/second:bookworm" "$work/app.tar"
cp -r "$work/cache" "$work/cache-base"     # the base layer only
second_scan() {
    rm -rf "$work/cache2" && cp -r "$work/cache-base" "$work/cache2"
    "$bin" scan --cache-dir "$work/cache2" "oci:$work/second:bookworm"
}
second=$(timeit second_scan)
second_layers=$(rm -rf "$work/cache2" && cp -r "$work/cache-base" "$work/cache2" &&
    "$bin" scan -v --cache-dir "$work/cache2" "oci:$work/second:bookworm" 2>&1 >/dev/null |
    grep -o '[0-9]* layers read, [0-9]* from cache' | tail -1)

cc -O2 -o "$work/inflate" bench/inflate.c -lz
inflate_t=$(timeit "$work/inflate" "$blob")
cc -O2 -o "$work/igzip" bench/igzip.c -lisal
igzip_t=$(timeit "$work/igzip" "$blob")
gunzip_t=$(timeit sh -c "gzip -dc '$blob' >/dev/null")
tarwalk_t=$(timeit sh -c "gzip -dc '$blob' | tar -tf - >/dev/null")
usize=$(gzip -dc "$blob" | wc -c)
csize=$(stat -c %s "$blob")

python3 - "$work/tracker.json" <<'PY'
import json, sys
d = json.load(open("tests/data/vulndb/debian/tracker-bookworm-fixture.json"))
recs = [r for cves in d.values() for r in cves.values()]
out = {}
for i in range(30000):
    out["pkg%05d" % i] = {"CVE-2099-%05d%d" % (i, j): recs[(i * 8 + j) % len(recs)] for j in range(8)}
json.dump(out, open(sys.argv[1], "w"))
PY
dsize=$(stat -c %s "$work/tracker.json")
s=$(now)
imp=$("$bin" vulndb --db "$work/big.sqlite" import "$work/tracker.json")
e=$(now)
adv=$(sed -E 's/.* ([0-9]+) advisories.*/\1/' <<<"$imp")
imp_t=$(echo "$e - $s" | bc -l)

report="$out/scan-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "wharf scanner benchmark, $(date -u +%FT%TZ), $(nproc) cores, median of $runs runs"
    printf 'image: bookworm minbase, 1 layer, %d bytes gzip, %d bytes tar\n' "$csize" "$usize"
    printf 'scan, cold (layer decompressed and cataloged): %.3f s\n' "$cold"
    printf 'scan, warm (layer inventory from cache):       %.3f s\n' "$warm"
    printf 'scan, 3 x 64 MiB random layers, cold:           %.3f s\n' "$bigscan"
    printf 'scan, second image sharing the base layer:     %.3f s (%s)\n' "$second" "$second_layers"
    printf 'floor: igzip inflate of the layer (bench/igzip.c, what the scanner uses): %.3f s\n' "$igzip_t"
    printf 'floor: zlib inflate of the layer (bench/inflate.c): %.3f s\n' "$inflate_t"
    printf 'floor: gzip -dc of the layer:                  %.3f s\n' "$gunzip_t"
    printf 'floor: gzip -dc | tar -t:                      %.3f s\n' "$tarwalk_t"
    printf 'vulndb import: %d advisories from a %d-byte tracker document in %.2f s (%.0f advisories/s)\n' \
        "$adv" "$dsize" "$imp_t" "$(echo "$adv / $imp_t" | bc -l)"
} | tee "$report"
