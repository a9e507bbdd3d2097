#!/usr/bin/env bash
# bench/run.sh — wharf next to the CNCF distribution registry (Debian's
# `docker-registry`), both on 127.0.0.1, each with a fresh data directory,
# in the same run, measured with the same tools. Prints a markdown report and
# writes it to $BENCH_OUT (default build/bench/report.md).
#
# usage: bash bench/run.sh [WHARF_BIN]
#
# Environment (all optional):
#   WHARF_BIN          wharf binary (default build/release/wharf; built with make if missing)
#   REGISTRY_BIN       the peer (default /usr/bin/docker-registry)
#   WHARF_THREADS      wharf worker threads (wharf's default: 4)
#   BENCH_DURATION     seconds per request-rate test (default 10)
#   BENCH_CONNECTIONS  concurrent connections for hey and wrk (default 32)
#   BENCH_LAYERS       layers in the pushed image (default 3)
#   BENCH_LAYER_MIB    MiB of random data per layer (default 64)
#   BENCH_REPEAT       pushes, pulls and curl downloads per server; best is kept (default 3)
#   BENCH_PULLS        concurrent pulls (default 10)
#   BENCH_OUT          report file (default build/bench/report.md)
#
# Everything listens on and connects to 127.0.0.1 only; every load is bounded in
# time; on exit (normal, error or signal) the script stops the processes it
# started, by PID, and removes its temporary files.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CMDLINE="bash bench/run.sh${*:+ $*}"
WHARF_BIN=${1:-${WHARF_BIN:-$ROOT/build/release/wharf}}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
DURATION=${BENCH_DURATION:-10}
CONC=${BENCH_CONNECTIONS:-32}
LAYERS=${BENCH_LAYERS:-3}
LAYER_MIB=${BENCH_LAYER_MIB:-64}
REPEAT=${BENCH_REPEAT:-3}
PULLS=${BENCH_PULLS:-10}
OUT=${BENCH_OUT:-$ROOT/build/bench/report.md}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SERVERS=(wharf registry)
ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in skopeo hey wrk curl unshare timeout awk "$REGISTRY_BIN"; do
    command -v "$tool" >/dev/null || die "missing $tool (bash scripts/deps.sh bench installs it)"
done
if [ ! -x "$WHARF_BIN" ]; then
    log "building wharf ($WHARF_BIN is missing)"
    make -C "$ROOT" -s >&2
fi
[ -x "$WHARF_BIN" ] || die "no wharf binary at $WHARF_BIN"

# ---- bookkeeping: every process we start, and the cleanup on exit ----------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wharf-bench.XXXXXX")
# Pulled images are written to a tmpfs when one has room, so pulls measure the
# registries and not this machine's disk.
SHM=""
shm_need=$(( (PULLS + 1) * LAYERS * LAYER_MIB * 1024 + 262144 ))   # KiB
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2{print $4}')" -gt "$shm_need" ]; then
    SHM=$(mktemp -d /dev/shm/wharf-bench.XXXXXX)
fi
PULLROOT=${SHM:-$WORK/pull}
mkdir -p "$PULLROOT"
declare -A PID PORT URL REPO
BG=()   # background clients (concurrent pulls)

stop_pid() {   # stop one process we started: TERM, up to 10 s, then KILL
    local p=$1 i
    kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in ${CUR:+"$CUR"} "${BG[@]}"; do stop_pid "$p"; done
    for p in "${PID[@]}"; do stop_pid "$p"; done
    rm -rf "$WORK" ${SHM:+"$SHM"}
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- skopeo with an empty blob-info cache ------------------------------------
# skopeo (as root) remembers in /var/lib/containers/cache where it has pushed
# each blob and turns a later push of the same blob into a cross-repository
# mount. Each skopeo runs in its own mount namespace with an empty tmpfs over
# that directory, so every push really uploads and the host's cache is left as
# it was. The server-side byte count below checks it.
SKOPEO_ISOLATED=1
CACHE_DIR=/var/lib/containers/cache
if [ "$(id -u)" -ne 0 ]; then
    SKOPEO_ISOLATED=0   # rootless skopeo keeps its cache under $XDG_DATA_HOME: point it here
    export XDG_DATA_HOME=$WORK/xdg
elif ! mkdir -p "$CACHE_DIR" ||
     ! unshare -m --propagation private sh -c "mount -t tmpfs -o size=16m tmpfs $CACHE_DIR" 2>/dev/null; then
    die "cannot mount a tmpfs over $CACHE_DIR in a private mount namespace (unshare -m)"
fi
SK_EXEC=""   # set in a background subshell: sk then replaces that subshell
sk() {   # sk SECONDS skopeo-args...
    local t=$1; shift
    if [ "$SKOPEO_ISOLATED" = 1 ]; then
        $SK_EXEC timeout "$t" unshare -m --propagation private sh -c \
            'mount -t tmpfs -o size=16m tmpfs "$0" && exec skopeo "$@"' "$CACHE_DIR" "$@"
    else
        $SK_EXEC timeout "$t" skopeo "$@"
    fi
}

# Clients run as background processes of their own (the subshell exec's them),
# waited for with `wait`, so a signal reaches the trap at once and cleanup can
# stop them by PID.
spawn() {   # spawn CMD...; its PID is then in $!
    if [ "$(type -t "$1")" = function ]; then (SK_EXEC="exec"; "$@") & else (exec "$@") & fi
}
CUR=""
fgrun() {   # fgrun CMD...: run CMD and wait for it
    local rc=0
    spawn "$@"; CUR=$!
    wait "$CUR" || rc=$?
    CUR=""; return $rc
}

# wharf needs credentials to push; docker-registry runs without auth and
# ignores them. Pulls of the public project `library` are anonymous on both.
ADMIN_PASSWORD=Bench-Admin-Passw0rd
CREDS=admin:$ADMIN_PASSWORD

# ---- small helpers ------------------------------------------------------------
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }          # utime+stime, clock ticks
lo_bytes() { awk '$1=="lo:"{print $2}' /proc/net/dev; }         # bytes received on loopback
alive() { kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited; its log: $(tail -5 "$WORK/$1.log")"; }
calc() { awk "BEGIN{printf \"%s\", $*}"; }
TCK=$(getconf CLK_TCK)

wait_ready() {
    local s=$1 i code
    for i in $(seq 100); do
        alive "$s"
        code=$(curl -s -u "$CREDS" -o /dev/null -w '%{http_code}' --max-time 1 "${URL[$s]}/v2/" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    die "$s did not answer GET /v2/ with 200 within 10 s"
}

start_wharf() {
    PORT[wharf]=$(free_port); URL[wharf]=http://127.0.0.1:${PORT[wharf]}
    mkdir -p "$WORK/wharf-data"
    WHARF_LISTEN=127.0.0.1:${PORT[wharf]} WHARF_DATA_DIR=$WORK/wharf-data WHARF_ACCESS_LOG=false \
        WHARF_ADMIN_PASSWORD=$ADMIN_PASSWORD "$WHARF_BIN" serve >"$WORK/wharf.log" 2>&1 &
    PID[wharf]=$!
    wait_ready wharf
}

start_registry() {
    PORT[registry]=$(free_port); URL[registry]=http://127.0.0.1:${PORT[registry]}
    mkdir -p "$WORK/registry-data"
    # As Debian's stock config (in-memory blob descriptor cache, deletes on),
    # without auth, with the access log off as wharf's is.
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $WORK/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${PORT[registry]}
EOF
    "$REGISTRY_BIN" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    PID[registry]=$!
    wait_ready registry
}

# ---- results ------------------------------------------------------------------
declare -A R          # R[metric,server] = value
METRICS=()            # metric keys in table order
declare -A LABEL BETTER
NOTES=()
metric() { METRICS+=("$1"); LABEL[$1]=$2; BETTER[$1]=$3; }   # key, label, lower|higher
note() { NOTES+=("$*"); log "note: $*"; }

metric push_s    "push ${LAYERS}×${LAYER_MIB} MiB image, s (best of $REPEAT)" lower
metric push_mbs  "push throughput, MiB/s" higher
metric push_cpu  "server CPU per push, s (user+sys, least of $REPEAT)" lower
metric pull_s    "pull of that image, s (best of $REPEAT)" lower
metric cpull_s   "$PULLS concurrent pulls, wall s" lower
metric cpull_cpu "server CPU for those $PULLS pulls, s (user+sys)" lower
metric head_rps  "HEAD manifest by tag, req/s (hey, c=$CONC)" higher
metric head_p50  "HEAD manifest p50, ms" lower
metric head_p99  "HEAD manifest p99, ms" lower
metric heada_rps "HEAD manifest with a reused Bearer token, req/s (hey, c=$CONC; wharf only)" higher
metric heada_p99 "HEAD manifest with a token p99, ms" lower
metric heada_pct "authenticated HEAD rate, % of the anonymous rate (wharf only)" higher
metric getm_rps  "GET manifest by tag, req/s (wrk, c=$CONC)" higher
metric getm_p50  "GET manifest p50, ms" lower
metric getm_p99  "GET manifest p99, ms" lower
metric getb_rps  "GET 4 KiB blob, req/s (wrk, c=$CONC)" higher
metric getb_p50  "GET 4 KiB blob p50, ms" lower
metric getb_p99  "GET 4 KiB blob p99, ms" lower
metric dl_mbs    "download ${LAYER_MIB} MiB blob, MiB/s (curl, best of $REPEAT)" higher
metric rss_mib   "server peak RSS over the run, MiB (VmHWM)" lower

keep_min() { local k=$1 v=$2; if [ -z "${R[$k]:-}" ] || awk "BEGIN{exit !($v < ${R[$k]})}"; then R[$k]=$v; fi; }
keep_max() { local k=$1 v=$2; if [ -z "${R[$k]:-}" ] || awk "BEGIN{exit !($v > ${R[$k]})}"; then R[$k]=$v; fi; }

# ---- the image ----------------------------------------------------------------
LAYOUT=$WORK/layout
log "writing an OCI layout: $LAYERS layers × $LAYER_MIB MiB of random data"
mapfile -t lines < <("$PY" "$ROOT/bench/mklayout.py" "$LAYOUT" --layers "$LAYERS" --mib "$LAYER_MIB" --tag bench)
LAYER_DIGESTS=(); IMAGE_BYTES=0
for l in "${lines[@]:1}"; do
    LAYER_DIGESTS+=("${l%% *}"); IMAGE_BYTES=$((IMAGE_BYTES + ${l##* }))
done
BIG=${LAYER_DIGESTS[0]}
IMAGE_MIB=$(awk -v b="$IMAGE_BYTES" 'BEGIN{printf "%.1f", b/1048576}')

SMALL=$WORK/small.bin
head -c 4096 /dev/urandom >"$SMALL"
SMALL_DIGEST=sha256:$(sha256sum "$SMALL" | cut -d' ' -f1)

log "starting wharf ($WHARF_BIN) and docker-registry ($REGISTRY_BIN)"
start_wharf
start_registry
log "wharf pid ${PID[wharf]} on ${URL[wharf]}; docker-registry pid ${PID[registry]} on ${URL[registry]}"

# ---- 1. push: every time to a fresh repository, with an empty skopeo cache ----
for i in $(seq "$REPEAT"); do
    for s in "${SERVERS[@]}"; do
        alive "$s"
        # A failed push is tried again (to another fresh repository), at most
        # twice, and said in the report: the table then still has numbers, and
        # the failure is not hidden.
        for try in 1 2 3; do
            repo=library/push$i; [ "$try" = 1 ] || repo+="-retry$try"
            c0=$(cpu_ticks "${PID[$s]}"); r0=$(lo_bytes); t0=$EPOCHREALTIME
            if fgrun sk 300 copy --quiet --dest-tls-verify=false --dest-creds "$CREDS" "oci:$LAYOUT:bench" \
                "docker://127.0.0.1:${PORT[$s]}/$repo:bench" 2>"$WORK/push.err"; then
                break
            fi
            err=$(tail -1 "$WORK/push.err" | sed 's/.*msg="//; s/"$//')
            note "$s: push $i (try $try) failed: $err"
            [ "$try" -lt 3 ] || die "push to $s failed 3 times"
        done
        t1=$EPOCHREALTIME; c1=$(cpu_ticks "${PID[$s]}"); r1=$(lo_bytes)
        secs=$(calc "$t1-$t0"); cpu=$(calc "($c1-$c0)/$TCK"); got=$((r1 - r0))
        log "push $i to $s: ${secs}s, server CPU ${cpu}s, $((got >> 20)) MiB over loopback"
        # The proof that the push uploaded: at least the image's bytes crossed
        # loopback (a push turned into mounts moves a few KiB).
        [ "$got" -ge "$IMAGE_BYTES" ] ||
            die "push $i to $s moved only $got bytes of $IMAGE_BYTES: it did not upload the layers"
        keep_min "push_s,$s" "$secs"; keep_min "push_cpu,$s" "$cpu"
        [ -n "${REPO[$s]:-}" ] || REPO[$s]=$repo   # what the rest of the run reads
    done
done
for s in "${SERVERS[@]}"; do R[push_mbs,$s]=$(calc "$IMAGE_MIB/${R[push_s,$s]}"); done

# ---- 2. pull: to a fresh OCI directory each time --------------------------------
pull() {   # pull SERVER DEST
    sk 300 copy --quiet --src-tls-verify=false \
        "docker://127.0.0.1:${PORT[$1]}/${REPO[$1]}:bench" "oci:$2:bench" >&2
}
for i in $(seq "$REPEAT"); do
    for s in "${SERVERS[@]}"; do
        alive "$s"; d=$PULLROOT/$s-$i
        t0=$EPOCHREALTIME; fgrun pull "$s" "$d" || die "pull from $s failed"; t1=$EPOCHREALTIME
        secs=$(calc "$t1-$t0"); log "pull $i from $s: ${secs}s"; keep_min "pull_s,$s" "$secs"
        rm -rf "$d"
    done
done

# ---- 3. concurrent pulls: wall time for all --------------------------------------
for s in "${SERVERS[@]}"; do
    alive "$s"; BG=(); c0=$(cpu_ticks "${PID[$s]}"); t0=$EPOCHREALTIME
    for i in $(seq "$PULLS"); do spawn pull "$s" "$PULLROOT/$s-c$i"; BG+=($!); done
    fail=0; for p in "${BG[@]}"; do wait "$p" || fail=1; done
    t1=$EPOCHREALTIME; c1=$(cpu_ticks "${PID[$s]}"); BG=()
    [ "$fail" = 0 ] || die "a concurrent pull from $s failed"
    R[cpull_s,$s]=$(calc "$t1-$t0"); R[cpull_cpu,$s]=$(calc "($c1-$c0)/$TCK")
    log "$PULLS concurrent pulls from $s: ${R[cpull_s,$s]}s, server CPU ${R[cpull_cpu,$s]}s"
    rm -rf "$PULLROOT/$s-c"*
done

# ---- a 4 KiB blob, uploaded monolithically (POST, then PUT ?digest=) -----------
for s in "${SERVERS[@]}"; do
    loc=$(curl -sS --max-time 10 -u "$CREDS" -X POST -D - -o /dev/null "${URL[$s]}/v2/library/small/blobs/uploads/" |
          tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
    [ -n "$loc" ] || die "$s: no Location for a blob upload"
    case $loc in http*) ;; *) loc=${URL[$s]}$loc ;; esac
    case $loc in *\?*) loc="$loc&digest=$SMALL_DIGEST" ;; *) loc="$loc?digest=$SMALL_DIGEST" ;; esac
    code=$(curl -sS --max-time 10 -u "$CREDS" -o /dev/null -w '%{http_code}' -X PUT \
           -H 'Content-Type: application/octet-stream' --data-binary "@$SMALL" "$loc")
    [ "$code" = 201 ] || die "$s: 4 KiB blob upload answered $code"
done

# Checks that a URL answers 200 before it is loaded, so no tool measures errors.
check200() {   # check200 METHOD URL
    local code
    local how=(-X GET); [ "$1" = HEAD ] && how=(-I)
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "${how[@]}" -H "Accept: $ACCEPT" "$2" 2>/dev/null || true)
    [ "$code" = 200 ] || die "$1 $2 answered $code"
}
to_ms() {   # wrk's "635.00us" / "2.10ms" / "1.02s" -> ms
    awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) ; else if (v ~ /s$/) n*=1000; printf "%.3f", n}'
}

# ---- 4. HEAD manifest by tag with hey -------------------------------------------
for s in "${SERVERS[@]}"; do
    alive "$s"; url=${URL[$s]}/v2/${REPO[$s]}/manifests/bench
    check200 HEAD "$url"
    o=$WORK/hey-$s.txt
    fgrun timeout $((DURATION + 30)) hey -z "${DURATION}s" -c "$CONC" -m HEAD -A "$ACCEPT" "$url" >"$o"
    R[head_rps,$s]=$(awk '/Requests\/sec:/{printf "%.0f", $2}' "$o")
    R[head_p50,$s]=$(awk '$1=="50%" && $2=="in"{printf "%.3f", $3*1000}' "$o")
    R[head_p99,$s]=$(awk '$1=="99%" && $2=="in"{printf "%.3f", $3*1000}' "$o")
    bad=$(awk '/Status code distribution/{f=1; next} f && /^\s*\[/{gsub(/[][]/,"",$1); if ($1!="200") n+=$2} END{print n+0}' "$o")
    errs=$(awk '/Error distribution/{f=1; next} f && /^\s*\[/{gsub(/[][]/,"",$1); n+=$1} END{print n+0}' "$o")
    [ "$bad" = 0 ] || note "$s: hey HEAD saw $bad non-200 responses"
    [ "$errs" = 0 ] || note "$s: hey HEAD saw $errs errors (requests still in flight when -z ends are counted here)"
    log "HEAD manifest on $s: ${R[head_rps,$s]} req/s, p50 ${R[head_p50,$s]} ms, p99 ${R[head_p99,$s]} ms"
done

# ---- 4b. the same HEAD with a Bearer token, reused as docker does (wharf only) -----
# docker-registry runs without auth here, so only wharf has this row; what it
# shows is the token check's cost against wharf's own anonymous figure.
TOKEN=$(curl -sS --max-time 10 -u "$CREDS" \
    "${URL[wharf]}/service/token?service=wharf&scope=repository:${REPO[wharf]}:pull" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])') || die "no token from wharf"
url=${URL[wharf]}/v2/${REPO[wharf]}/manifests/bench
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -I -H "Authorization: Bearer $TOKEN" \
       -H "Accept: $ACCEPT" "$url")
[ "$code" = 200 ] || die "HEAD with a token answered $code"
o=$WORK/hey-auth.txt
fgrun timeout $((DURATION + 30)) hey -z "${DURATION}s" -c "$CONC" -m HEAD -A "$ACCEPT" \
    -H "Authorization: Bearer $TOKEN" "$url" >"$o"
R[heada_rps,wharf]=$(awk '/Requests\/sec:/{printf "%.0f", $2}' "$o")
R[heada_p99,wharf]=$(awk '$1=="99%" && $2=="in"{printf "%.3f", $3*1000}' "$o")
R[heada_pct,wharf]=$(calc "100*${R[heada_rps,wharf]}/${R[head_rps,wharf]}")
bad=$(awk '/Status code distribution/{f=1; next} f && /^\s*\[/{gsub(/[][]/,"",$1); if ($1!="200") n+=$2} END{print n+0}' "$o")
[ "$bad" = 0 ] || note "wharf: authenticated HEAD saw $bad non-200 responses"
log "authenticated HEAD on wharf: ${R[heada_rps,wharf]} req/s (${R[heada_pct,wharf]}% of anonymous)"

# ---- 5. GET manifest and GET 4 KiB blob with wrk --------------------------------
run_wrk() {   # run_wrk SERVER KEY URL
    local s=$1 k=$2 url=$3 o=$WORK/wrk-$2-$1.txt
    alive "$s"; check200 GET "$url"
    fgrun timeout $((DURATION + 30)) wrk -t 2 -c "$CONC" -d "${DURATION}s" --latency -H "Accept: $ACCEPT" "$url" >"$o"
    R[${k}_rps,$s]=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$o")
    R[${k}_p50,$s]=$(to_ms "$(awk '$1=="50%"{print $2; exit}' "$o")")
    R[${k}_p99,$s]=$(to_ms "$(awk '$1=="99%"{print $2; exit}' "$o")")
    bad=$(awk '/Non-2xx or 3xx responses:/{print $NF}' "$o"); bad=${bad:-0}
    errs=$(awk '/Socket errors:/{for (i=3;i<=NF;i++) if ($i ~ /^[0-9]+,?$/) n+=$i} END{print n+0}' "$o")
    [ "$bad" = 0 ] || note "$s: wrk $k saw $bad non-2xx responses"
    [ "$errs" = 0 ] || note "$s: wrk $k saw $errs socket errors"
    log "GET $k on $s: ${R[${k}_rps,$s]} req/s, p50 ${R[${k}_p50,$s]} ms, p99 ${R[${k}_p99,$s]} ms"
}
for s in "${SERVERS[@]}"; do run_wrk "$s" getm "${URL[$s]}/v2/${REPO[$s]}/manifests/bench"; done
for s in "${SERVERS[@]}"; do run_wrk "$s" getb "${URL[$s]}/v2/library/small/blobs/$SMALL_DIGEST"; done

# ---- 6. raw download of one big blob with curl -----------------------------------
for i in $(seq "$REPEAT"); do
    for s in "${SERVERS[@]}"; do
        alive "$s"
        read -r bps code size < <(curl -sS --max-time 120 -o /dev/null \
            -w '%{speed_download} %{http_code} %{size_download}\n' \
            "${URL[$s]}/v2/${REPO[$s]}/blobs/$BIG")
        [ "$code" = 200 ] && [ "$size" -gt $((LAYER_MIB << 20)) ] || die "$s: blob download answered $code, $size bytes"
        mbs=$(calc "$bps/1048576"); log "download $i from $s: $mbs MiB/s"; keep_max "dl_mbs,$s" "$mbs"
    done
done

# ---- 7. peak RSS over the whole run -----------------------------------------------
for s in "${SERVERS[@]}"; do
    alive "$s"
    R[rss_mib,$s]=$(awk '$1=="VmHWM:"{printf "%.1f", $2/1024}' "/proc/${PID[$s]}/status")
done

# ---- report -------------------------------------------------------------------
fmt() {   # numbers: integers above 100, else 2–3 significant decimals
    awk -v v="$1" 'BEGIN{ if (v=="") {print "n/a"; exit} n=v+0; if (n>=100) printf "%.0f", n; else if (n>=10) printf "%.1f", n; else if (n>=1) printf "%.2f", n; else printf "%.3f", n }'
}
ratio() {   # >1 means wharf is better
    awk -v w="$1" -v r="$2" -v b="$3" 'BEGIN{ if (w=="" || r=="" || w+0==0 || r+0==0) {print "n/a"; exit}
        x = (b=="higher") ? w/r : r/w; printf "%.2f×", x }'
}
ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
{
    echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'), command: \`$CMDLINE\`"
    echo
    echo "- machine: $(nproc) CPUs, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)," \
         "$(awk '/MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)," \
         "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- wharf: $("$WHARF_BIN" version 2>/dev/null || "$WHARF_BIN" --version 2>/dev/null || echo '?')" \
         "($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))," \
         "threads ${WHARF_THREADS:-4 (default)}; docker-registry $(ver docker-registry)"
    echo "- tools: skopeo $(ver skopeo), hey $(ver hey), wrk $(ver wrk), curl $(ver curl)"
    echo "- image: $LAYERS layers of $LAYER_MIB MiB random data (gzip-stored tars, $IMAGE_MIB MiB in all);" \
         "pulls written to $([ -n "$SHM" ] && echo tmpfs || echo disk); loads of ${DURATION} s with $CONC connections"
    echo
    echo "| metric | wharf | docker-registry | ratio (>1 = wharf better) |"
    echo "| --- | ---: | ---: | ---: |"
    for k in "${METRICS[@]}"; do
        echo "| ${LABEL[$k]} | $(fmt "${R[$k,wharf]:-}") | $(fmt "${R[$k,registry]:-}") |" \
             "$(ratio "${R[$k,wharf]:-}" "${R[$k,registry]:-}" "${BETTER[$k]}") |"
    done
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo
        for n in "${NOTES[@]}"; do echo "- note: $n"; done
    fi
} >"$WORK/report.md"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cat "$OUT"
log "report written to $OUT"
