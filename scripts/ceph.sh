#!/usr/bin/env bash
# A throwaway single-node Ceph on 127.0.0.1 for the S3 tests: one monitor, one
# OSD on memstore (data in RAM, capped) and the S3 gateway (radosgw), with no
# systemd and no manager (rgw needs none). cephx stays on: every key is made
# into one keyring before the monitor's mkfs. Creates an S3 user with known
# keys and a bucket, then prints the settings as shell assignments:
#   WHARF_S3_ENDPOINT=http://127.0.0.1:PORT  WHARF_S3_BUCKET=...  WHARF_S3_REGION=...
#   WHARF_S3_ACCESS_KEY=...  WHARF_S3_SECRET_KEY=...  WHARF_S3_PATH_STYLE=true
# Usage: scripts/ceph.sh up|down
# Environment (defaults in brackets):
#   WHARF_CEPH_DIR [/tmp/wharf-ceph]   everything: config, keyring, PID files, logs, data
#   WHARF_CEPH_PORT [7480]             radosgw's HTTP port
#   WHARF_CEPH_MON_PORT [3300]         the monitor's port (msgr v2)
#   WHARF_CEPH_BUCKET [wharf-test]     bucket created at start ("" for none)
#   WHARF_CEPH_ACCESS_KEY [WHARFTESTAK]  WHARF_CEPH_SECRET_KEY [wharf-test-secret]
#   WHARF_CEPH_MEM_BYTES [2147483648]  memstore's capacity
# Packages: bash scripts/deps.sh s3. `down` stops the daemons by their PID files,
# waits (at most 30 s, then SIGKILL) until they have exited and removes the directory.
set -euo pipefail
D=${WHARF_CEPH_DIR:-/tmp/wharf-ceph}
PORT=${WHARF_CEPH_PORT:-7480}
MONPORT=${WHARF_CEPH_MON_PORT:-3300}
BUCKET=${WHARF_CEPH_BUCKET-wharf-test}
AK=${WHARF_CEPH_ACCESS_KEY:-WHARFTESTAK}
SK=${WHARF_CEPH_SECRET_KEY:-wharf-test-secret}
MEM=${WHARF_CEPH_MEM_BYTES:-2147483648}
REGION=us-east-1

die() { echo "ceph.sh: $*" >&2; exit 1; }

# Polls `cmd` every 0.2 s until it succeeds or `secs` have passed.
wait_for() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.2
    done
}

down() {
    [ -d "$D" ] || return 0
    local pids=() p
    for f in "$D"/run/*.pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f" 2>/dev/null || true)
        [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && pids+=("$p")
    done
    # all at once (each takes about 2 s to stop; nothing here needs to be kept)
    for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
    local end=$((SECONDS + 30))
    for p in "${pids[@]+"${pids[@]}"}"; do
        while kill -0 "$p" 2>/dev/null; do
            if [ "$SECONDS" -ge "$end" ]; then kill -KILL "$p" 2>/dev/null || true; fi
            sleep 0.1
        done
    done
    rm -rf "$D"
}

up() {
    for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool uuidgen curl; do
        command -v "$b" >/dev/null || die "$b is missing: bash scripts/deps.sh s3"
    done
    [ ! -e "$D/run" ] || down
    rm -rf "$D"
    mkdir -p "$D"/{run,log,mon/ceph-a,osd/ceph-0,rgw}
    local fsid; fsid=$(uuidgen)
    cat >"$D/ceph.conf" <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$MONPORT
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_allow_insecure_global_id_reclaim = false
run_dir = $D/run
pid_file = $D/run/\$name.pid
admin_socket = $D/run/\$name.asok
log_file = $D/log/\$name.log
mon_data = $D/mon/ceph-\$id
osd_data = $D/osd/ceph-\$id
keyring = $D/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
mon_max_pg_per_osd = 1000
[osd]
osd_objectstore = memstore
memstore_device_bytes = $MEM
osd_memory_target = 939524096
[client.rgw.gw]
# tcp_nodelay: else an answer sent in chunks (a listing) waits about 40 ms for the
# client's delayed ACK (Nagle's algorithm on rgw's side)
rgw_frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw_data = $D/rgw
rgw_thread_pool_size = 64
# deleted objects are freed by rgw's garbage collector after 2 h by default: the
# memstore of a long test session would fill up first
rgw_gc_obj_min_wait = 30
rgw_gc_processor_period = 30
CONF
    export CEPH_CONF=$D/ceph.conf
    local kr=$D/keyring
    ceph-authtool --create-keyring "$kr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$kr" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
        --cap mgr 'allow *' >/dev/null
    ceph-authtool "$kr" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' \
        --cap mgr 'allow profile osd' >/dev/null
    ceph-authtool "$kr" --gen-key -n client.rgw.gw --cap mon 'allow rw' --cap osd 'allow rwx' \
        --cap mgr 'allow rw' >/dev/null
    monmaptool --create --addv a "[v2:127.0.0.1:$MONPORT]" --fsid "$fsid" "$D/monmap" >/dev/null
    ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$kr" 2>>"$D/log/mkfs.log"
    ceph-mon -i a
    local osduuid osdid
    osduuid=$(uuidgen)
    osdid=$(timeout 60 ceph osd new "$osduuid" 0) || die "the monitor did not answer (see $D/log)"
    ceph-osd -i "$osdid" --mkfs --osd-uuid "$osduuid" 2>>"$D/log/mkfs.log"
    ceph-osd -i "$osdid" 2>>"$D/log/osd-start.log"
    osd_up() { timeout 10 ceph osd stat 2>/dev/null | grep -q '1 up'; }
    wait_for 60 osd_up || die "the OSD did not come up (see $D/log)"
    radosgw -n client.rgw.gw
    wait_for 60 curl -s -o /dev/null "http://127.0.0.1:$PORT/" || die "radosgw did not answer (see $D/log)"
    radosgw-admin user create --uid=wharf --display-name=wharf --access-key="$AK" \
        --secret-key="$SK" >/dev/null
    if [ -n "$BUCKET" ]; then
        # the first bucket makes rgw create its pools (a few seconds)
        curl -sf -o /dev/null -X PUT --aws-sigv4 "aws:amz:$REGION:s3" --user "$AK:$SK" \
            -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://127.0.0.1:$PORT/$BUCKET" ||
            die "cannot create the bucket $BUCKET"
    fi
    echo "WHARF_S3_ENDPOINT=http://127.0.0.1:$PORT"
    echo "WHARF_S3_BUCKET=$BUCKET"
    echo "WHARF_S3_REGION=$REGION"
    echo "WHARF_S3_ACCESS_KEY=$AK"
    echo "WHARF_S3_SECRET_KEY=$SK"
    echo "WHARF_S3_PATH_STYLE=true"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
