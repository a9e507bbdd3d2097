#!/usr/bin/env bash
# Builds wharf's container image with buildah and writes it as a docker-archive.
# Usage: scripts/build-image.sh [BINARY] [OUTPUT]
#        (defaults: build/release/wharf, build/wharf-image.tar; `make image` runs this)
#
# The base is a Debian bookworm minbase root file system made by mmdebstrap from Debian's
# mirror (no registry is needed), holding only the libraries wharf links, curl for the
# HEALTHCHECK and a `wharf` user (uid 10001) owning /data. It is cached in
# tests/.cache/image-rootfs-KEY.tar, KEY a hash of everything that shapes it: delete the
# file to rebuild it (a minute or so). The image is committed in Docker's format because
# OCI image configs have no HEALTHCHECK; the archive holds one tag, WHARF_IMAGE_TAG
# (default localhost/wharf:latest).
#
# Environment: WHARF_IMAGE_TAG, WHARF_IMAGE_CACHE (directory of the cached root file
# system), BUILDAH_STORAGE (a directory: private vfs storage there instead of the
# system's, as the tests do), WHARF_APT_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-build/release/wharf}
out=${2:-build/wharf-image.tar}
tag=${WHARF_IMAGE_TAG:-localhost/wharf:latest}
cache=${WHARF_IMAGE_CACHE:-tests/.cache}
mirror=${WHARF_APT_MIRROR:-http://deb.debian.org/debian}
uid=10001

die() { echo "build-image: $*" >&2; exit 1; }
[ -x "$bin" ] || die "no wharf binary at $bin (run make)"
command -v buildah >/dev/null || die "buildah is not installed (bash scripts/deps.sh test)"
if ldd "$bin" | grep -q -e libasan -e libubsan; then
    die "$bin is a sanitizer build; the image takes a release build (make)"
fi

# The run-time libraries of `ldd build/release/wharf`, by Debian package, plus libcurl
# (loaded with dlopen by `wharf vulndb update` and the S3 client), curl (HEALTHCHECK) and CA
# certificates.
packages=(libmicrohttpd12 libjansson4 libsqlite3-0 libssl3 libyaml-0-2 libarchive13
          libargon2-1 libisal2 libexpat1 libpq5 libcurl4 curl ca-certificates)
suites=("deb $mirror bookworm main" "deb $mirror bookworm-updates main"
        "deb ${mirror%/debian}/debian-security bookworm-security main")
setup_user="chroot \"\$1\" groupadd --system --gid $uid wharf && \
chroot \"\$1\" useradd --system --uid $uid --gid $uid --home-dir /data --no-create-home --shell /usr/sbin/nologin wharf && mkdir -p \"\$1/data\" && \
chown $uid:$uid \"\$1/data\" && chmod 0700 \"\$1/data\""
key=$(printf '%s\n' "${packages[@]}" "${suites[@]}" "$setup_user" "merged-usr hook" "v1" | sha256sum | cut -c1-16)
rootfs=$cache/image-rootfs-$key.tar

if [ ! -s "$rootfs" ]; then
    command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (bash scripts/deps.sh test)"
    mkdir -p "$cache"
    echo "build-image: building the bookworm root file system into $rootfs" >&2
    tmp=$rootfs.tmp.tar
    # merged-usr hook: /usr merged by the hook rather than by the usrmerge package, which
    # would pull in perl (60 MB).
    mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --include="$(IFS=,; echo "${packages[*]}")" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook="$setup_user" \
        bookworm "$tmp" "${suites[@]}" || { rm -f "$tmp"; die "mmdebstrap failed"; }
    mv "$tmp" "$rootfs"
    # Root file systems of other keys are stale: only one is kept.
    for old in "$cache"/image-rootfs-*.tar; do
        [ "$old" = "$rootfs" ] || rm -f "$old"
    done
fi

bah=(buildah)
if [ -n "${BUILDAH_STORAGE:-}" ]; then
    bah+=(--root "$BUILDAH_STORAGE/root" --runroot "$BUILDAH_STORAGE/runroot" --storage-driver vfs)
fi

version=$("$bin" version | awk '{print $2}')
ctr=$("${bah[@]}" from --format docker scratch)
trap '"${bah[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
"${bah[@]}" add "$ctr" "$rootfs" /
"${bah[@]}" copy --chmod 0755 "$ctr" "$bin" /usr/local/bin/wharf
"${bah[@]}" copy --chmod 0755 "$ctr" contrib/wharf-healthcheck /usr/local/bin/wharf-healthcheck
"${bah[@]}" config \
    --user "$uid:$uid" \
    --workingdir /data \
    --volume /data \
    --port 5000/tcp \
    --env WHARF_DATA_DIR=/data \
    --env WHARF_LISTEN=0.0.0.0:5000 \
    --entrypoint '["/usr/local/bin/wharf"]' \
    --cmd serve \
    --stop-signal SIGTERM \
    --healthcheck "CMD /usr/local/bin/wharf-healthcheck" \
    --healthcheck-interval 30s --healthcheck-timeout 10s \
    --healthcheck-start-period 10s --healthcheck-retries 3 \
    --label org.opencontainers.image.title=wharf \
    --label org.opencontainers.image.description="wharf container registry" \
    --label org.opencontainers.image.version="$version" \
    --label org.opencontainers.image.base.name=debian:bookworm-minbase \
    "$ctr"
mkdir -p "$(dirname "$out")"
rm -f "$out"
"${bah[@]}" commit --format docker --rm "$ctr" "docker-archive:$out:$tag" >/dev/null
trap - EXIT
echo "build-image: wrote $out ($tag, wharf $version)" >&2
