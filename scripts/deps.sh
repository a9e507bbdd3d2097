#!/usr/bin/env bash
# Installs the Debian packages wharf needs to build, run and test, and only
# those that are missing (apt-get runs only when something is absent).
# Usage: scripts/deps.sh [run|test|bench|fuzz|fixtures|s3]   (default: test, which includes run)
#   fuzz: clang-14 with libFuzzer and the sanitizer runtimes (make fuzz, scripts/fuzz.sh);
#         llvm-14 for llvm-symbolizer, so crash reports name functions and lines
#   fixtures: the tools tests/data/rpm/make-fixtures.sh uses to rebuild rpm databases
#   s3: Ceph (monitor, OSD, radosgw) for scripts/ceph.sh, which tests/run.sh uses to test the
#       S3 client against a server that checks signatures (CI installs it; `make test` runs
#       those tests only where it is installed)
set -euo pipefail
what=${1:-test}

build=(build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libssl-dev
       libyaml-dev libarchive-dev libargon2-dev libcurl4-openssl-dev libisal-dev libexpat1-dev
       libpq-dev)
testing=(libcmocka-dev python3-pytest python3-requests skopeo podman buildah umoci mmdebstrap
         docker.io containerd runc uidmap curl jq openssl systemd mandoc man-db chromium firefox-esr
         nodejs nginx postgresql-15)
bench=(docker-registry hey wrk skopeo curl python3 python3-pytest python3-requests mmdebstrap umoci pigz zstd bc chromium nodejs
       valgrind strace)
fuzz=(clang-14 libclang-rt-14-dev llvm-14)
fixtures=(rpm db-util python3)
s3=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl python3)

case "$what" in
    run) want=("${build[@]}") ;;
    test) want=("${build[@]}" "${testing[@]}") ;;
    bench) want=("${build[@]}" "${bench[@]}") ;;
    fuzz) want=("${build[@]}" "${fuzz[@]}") ;;
    fixtures) want=("${fixtures[@]}") ;;
    s3) want=("${s3[@]}") ;;
    *) echo "usage: $0 [run|test|bench|fuzz|fixtures|s3]" >&2; exit 2 ;;
esac

# The portal's browser tests and benchmark (tests/ui): playwright-core from npm, exactly as
# locked in tests/ui/package-lock.json (`npm ci`), driving Debian's chromium and firefox-esr
# (no browser download).
ui_modules() {
    [ "$what" = test ] || [ "$what" = bench ] || return 0
    local ui
    ui="$(cd "$(dirname "$0")/.." && pwd)/tests/ui"
    if [ ! -d "$ui/node_modules/playwright-core" ] ||
        [ "$ui/package-lock.json" -nt "$ui/node_modules/.package-lock.json" ]; then
        command -v npm >/dev/null || { echo "wharf: npm is missing (Debian package npm)" >&2; exit 1; }
        echo "wharf: npm ci in tests/ui" >&2
        (cd "$ui" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
    fi
}

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    ui_modules
    exit 0
fi

echo "wharf: installing missing Debian packages: ${missing[*]}" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
ui_modules
