#!/usr/bin/env bash
# Installs the Debian packages wharf needs to build, run and test, and only
# those that are missing (apt-get runs only when something is absent).
# Usage: scripts/deps.sh [run|test|bench|fixtures]   (default: test, which includes run)
#   fixtures: the tools tests/data/rpm/make-fixtures.sh uses to rebuild rpm databases
set -euo pipefail
what=${1:-test}

build=(build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libssl-dev
       libyaml-dev libarchive-dev libargon2-dev libcurl4-openssl-dev libisal-dev)
testing=(libcmocka-dev python3-pytest python3-requests skopeo podman buildah umoci mmdebstrap
         docker.io containerd uidmap curl jq openssl)
bench=(docker-registry hey wrk skopeo curl python3 mmdebstrap umoci pigz zstd bc)
fixtures=(rpm db-util python3)

case "$what" in
    run) want=("${build[@]}") ;;
    test) want=("${build[@]}" "${testing[@]}") ;;
    bench) want=("${build[@]}" "${bench[@]}") ;;
    fixtures) want=("${fixtures[@]}") ;;
    *) echo "usage: $0 [run|test|bench|fixtures]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "wharf: installing missing Debian packages: ${missing[*]}" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
