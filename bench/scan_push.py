#!/usr/bin/env python3
"""bench/scan_push.py — scan on push: how soon a pushed image has its report,
and what queuing its scan costs the push.

Starts wharf (release build) on 127.0.0.1 with a fresh data directory and the
fixture vulnerability database of tests/data/vulndb (debian, nvd), then:

(a) Delay to a Success overview. The Debian bookworm minbase image pinned in
    tests/data/images/bookworm-minbase (the one-layer OCI layout the e2e suite
    builds from it, no network) is pushed with `skopeo copy` PUSHES times
    (default 20) into a project with auto_scan on. Each push is a distinct
    image as an application image on that base is in real life: the base
    layer is shared, and each image adds one small layer of its own (a tar of
    one file naming the push) and so has its own config and manifest digest:
    each push is really queued and scanned (its new layer read, the base's
    inventory taken from the per-layer cache after the first). After skopeo
    exits, the artifact is polled (GET ...?with_scan_overview=true, every
    POLL_MS ms) until its overview is Success; the delay from skopeo's exit
    to the first Success answer is reported (min, median, p90, max).

(b) A burst of BURST (default 200) small pushes by CLIENTS (default 8)
    client processes at once: each a distinct one-layer image (a valid tar of
    one small file, built before the burst starts), its two blobs uploaded
    monolithically (one POST with ?digest=) and its manifest PUT, with a
    bearer token (no password check per request). Into
    a project with auto_scan off, then into one with it on, ROUNDS times
    (default 3) alternating. Reports the manifest PUT latency (median, p99,
    max) of each mode over all rounds, the ratio of the p99s (target: on
    within 10% of off), and for auto_scan on the time from the end of the
    burst until all its images are Success (the queue drained).

usage: python3 bench/scan_push.py [WHARF_BIN]
    environment: BENCH_PUSHES, BENCH_BURST, BENCH_CLIENTS, BENCH_ROUNDS,
    BENCH_POLL_MS, BENCH_IMAGE (an oci:DIR:TAG to push in (a) instead of the
    pinned image, e.g. the real minbase layout bench/scan.sh builds)
Everything stays on loopback, every wait has a deadline, and the server this
script starts is stopped by its PID.
"""
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import multiprocessing
import re
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_storm  # noqa: E402
from login_storm import ADMIN, free_port, req, server_env, start_wharf, stop_wharf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
WHARF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release", "wharf")
DATA = os.path.join(ROOT, "tests", "data", "vulndb")
PUSHES = int(os.environ.get("BENCH_PUSHES", "20"))
BURST = int(os.environ.get("BENCH_BURST", "200"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
POLL_MS = float(os.environ.get("BENCH_POLL_MS", "5"))
MIME = "application/vnd.security.vulnerability.report; version=1.1"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DEADLINE = 300.0


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def one_file_tar(name: str, body: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(body), 0
        tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def pct(values, p):
    """The p-th percentile, nearest rank (p99 of 600 samples is the 594th)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


# ---------------------------------------------------------------- (a)


def base_layout(work: Path):
    """(layout dir, tag) of the image pushed in (a)."""
    image = os.environ.get("BENCH_IMAGE")
    if image:
        _, d, tag = image.split(":", 2)
        return Path(d), tag
    import conftest  # the e2e suite's builder of the pinned image (tests/.cache)
    return conftest.build_pinned_bookworm().layout, conftest.BOOKWORM_TAG


def derived_layout(work: Path, n: int) -> Path:
    """An OCI layout with images p0..p{n-1}: the base image plus one small
    layer each. Blobs of the base are hard links (or copies)."""
    src, tag = base_layout(work)
    dst = work / "push-layout"
    shutil.copytree(src, dst, copy_function=os.link if os.stat(src).st_dev == os.stat(work).st_dev
                    else shutil.copy2)
    blobs = dst / "blobs" / "sha256"
    top = json.loads((dst / "index.json").read_text())
    desc = next(m for m in top["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    man = json.loads((blobs / desc["digest"][7:]).read_text())
    cfg = json.loads((blobs / man["config"]["digest"][7:]).read_text())

    def put(data: bytes) -> str:
        d = sha(data)
        if not (blobs / d[7:]).exists():  # an existing name may be a link to the source's
            (blobs / d[7:]).write_bytes(data)
        return d

    refs = []
    for i in range(n):
        raw = one_file_tar("etc/bench-push", f"push {i} of bench/scan_push.py\n".encode())
        gz = gzip.compress(raw, mtime=0)
        c = json.loads(json.dumps(cfg))
        c["rootfs"]["diff_ids"] = list(c["rootfs"]["diff_ids"]) + [sha(raw)]
        c.setdefault("history", []).append({"created_by": f"bench push {i}"})
        cb = json.dumps(c, sort_keys=True, separators=(",", ":")).encode()
        m = dict(man)
        m["config"] = {"mediaType": MT_CONFIG, "digest": put(cb), "size": len(cb)}
        m["layers"] = list(man["layers"]) + [
            {"mediaType": MT_LAYER_GZIP, "digest": put(gz), "size": len(gz)}]
        mb = json.dumps(m, indent=2).encode()
        refs.append({"mediaType": MT_MANIFEST, "digest": put(mb), "size": len(mb),
                     "annotations": {"org.opencontainers.image.ref.name": f"p{i}"}})
    top["manifests"] = refs
    (dst / "index.json").unlink()  # a link to the source's: never written through
    (dst / "index.json").write_text(json.dumps(top))
    return dst, [r["digest"] for r in refs]


def overview(base, project, repo, ref, conn=None):
    path = (f"/api/v2.0/projects/{project}/repositories/{repo}/artifacts/{ref}"
            "?with_scan_overview=true")
    conn.request("GET", path, headers={"Authorization": login_storm.basic(*ADMIN)})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        return None
    return (json.loads(body).get("scan_overview") or {}).get(MIME)


def bench_delay(base, port, work):
    layout, digests = derived_layout(work, PUSHES)
    project, repo = "pushscan", "bookworm"
    api(base, "POST", "/projects", {"project_name": project,
                                     "metadata": {"auto_scan": "true"}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    authfile = work / "auth.json"
    authfile.write_text(json.dumps({"auths": {f"127.0.0.1:{port}": {
        "auth": base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()}}}))
    delays, copies = [], []
    for i, digest in enumerate(digests):
        t0 = time.monotonic()
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        "--dest-authfile", str(authfile), f"oci:{layout}:p{i}",
                        f"docker://127.0.0.1:{port}/{project}/{repo}:p{i}"],
                       check=True, capture_output=True, timeout=120,
                       env=dict(os.environ, REGISTRY_AUTH_FILE=str(authfile)))
        t_end = time.monotonic()
        copies.append(t_end - t0)
        deadline = t_end + DEADLINE
        while True:
            o = overview(base, project, repo, digest, conn)
            now = time.monotonic()
            if o and o["scan_status"] == "Success":
                delays.append(now - t_end)
                break
            if o and o["scan_status"] == "Error":
                sys.exit(f"push {i}: the scan failed")
            if now > deadline:
                sys.exit(f"push {i}: no Success overview within {DEADLINE} s ({o})")
            time.sleep(POLL_MS / 1000)
    conn.close()
    return delays, copies, o


def lock_wait(base):
    """Seconds the server's requests have waited for the database's write lock so far."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("wharf_db_lock_wait_seconds_total "):
                return float(line.split()[1])
    return 0.0


def report_delay(delays, copies, last):
    ms = [1000 * d for d in delays]
    print(f"\n`python3 bench/scan_push.py` — (a) {PUSHES} skopeo pushes of the bookworm "
          f"minbase image plus one small layer each, auto_scan on, polled every "
          f"{POLL_MS:g} ms\n")
    print("| delay from skopeo's exit to a Success overview | min | median | p90 | max |")
    print("|---|---:|---:|---:|---:|")
    print(f"| ms | {min(ms):.0f} | {statistics.median(ms):.0f} | {pct(ms, 90):.0f} | "
          f"{max(ms):.0f} |")
    print(f"\nskopeo copy itself: median {1000 * statistics.median(copies):.0f} ms; "
          f"last report: {last['summary']['total']} vulnerabilities, scan duration "
          f"{last['duration']} s; within 1 s: {sum(1 for d in delays if d <= 1.0)} of "
          f"{len(delays)}")


# ---------------------------------------------------------------- (b)


def api(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    return req(base + "/api/v2.0" + path, method, data, {"Content-Type": "application/json"})


def token(base, scope):
    _, _, body = req(f"{base}/service/token?service=wharf&scope={scope}")
    return json.loads(body)["token"]


def image(tag, i):
    """The blobs and manifest of burst image `i`: a one-file layer and its config."""
    layer = one_file_tar("etc/burst", f"{tag} image {i}\n".encode() * 8)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    m = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                    "config": {"mediaType": MT_CONFIG, "digest": sha(cfg), "size": len(cfg)},
                    "layers": [{"mediaType": MT_LAYER, "digest": sha(layer),
                                "size": len(layer)}]}).encode()
    return layer, cfg, m


def pusher(port, repo, tok, items, tag, go, results):
    """One client process (its own interpreter: no lock shared with the
    others while it times a request): pushes images `items` into `repo`,
    timing each manifest PUT; puts [(seconds, digest)...] or an error on
    `results`."""
    out = []
    try:
        images = [(i, *image(tag, i)) for i in items]  # built before the burst starts
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call(method, path, body, ctype):
            conn.request(method, path, body=body, headers={
                "Authorization": f"Bearer {tok}", "Content-Type": ctype,
                "Content-Length": str(len(body))})
            r = conn.getresponse()
            r.read()
            return r.status

        go.wait(DEADLINE)
        for i, layer, cfg, m in images:
            for blob in (layer, cfg):
                st = call("POST", f"/v2/{repo}/blobs/uploads/?digest={sha(blob)}", blob,
                          "application/octet-stream")
                if st != 201:
                    raise RuntimeError(f"blob upload answered {st}")
            t0 = time.perf_counter()
            st = call("PUT", f"/v2/{repo}/manifests/{tag}-{i}", m, MT_MANIFEST)
            dt = time.perf_counter() - t0
            if st != 201:
                raise RuntimeError(f"manifest PUT answered {st}")
            out.append((dt, sha(m)))
        conn.close()
        results.put(out)
    except Exception as e:  # reported by the main process
        results.put(f"{type(e).__name__}: {e}")


def server_times(log_path, repo):
    """The server's time (ms) of each manifest PUT into `repo`, from its access log."""
    pat = re.compile(rf" access PUT /v2/{re.escape(repo)}/manifests/\S+ 201 \d+ ([\d.]+)ms")
    with open(log_path, errors="replace") as f:
        return [float(m.group(1)) for m in pat.finditer(f.read())]


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def burst(base, port, project, auto_scan, tag):
    repo = f"{project}/burst"
    api(base, "POST", "/projects", {"project_name": project,
                                     "metadata": {"auto_scan": "true" if auto_scan else "false"}})
    tok = token(base, f"repository:{repo}:pull,push")
    go, results = multiprocessing.Event(), multiprocessing.Queue()
    procs = [multiprocessing.Process(target=pusher, daemon=True, args=(
        port, repo, tok, list(range(k, BURST, CLIENTS)), tag, go, results))
        for k in range(CLIENTS)]
    for p in procs:
        p.start()
    t0 = time.monotonic()
    go.set()
    out = []
    for _ in procs:
        r = results.get(timeout=DEADLINE)
        if isinstance(r, str):
            sys.exit(f"burst into {project}: {r}")
        out += r
    t_end = time.monotonic()
    for p in procs:
        p.join(DEADLINE)
    drain = None
    if auto_scan:
        # every image Success: the queue drained (one list call per page and poll)
        path = (f"/api/v2.0/projects/{project}/repositories/burst/artifacts"
                f"?with_scan_overview=true&page_size=100&page=")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            done = 0
            for page in range(1, BURST // 100 + 2):
                conn.request("GET", path + str(page),
                             headers={"Authorization": login_storm.basic(*ADMIN)})
                r = conn.getresponse()
                arts = json.loads(r.read())
                done += sum(1 for a in arts if (a.get("scan_overview") or {}).get(MIME, {})
                            .get("scan_status") == "Success")
            if done == BURST:
                drain = time.monotonic() - t_end
                break
            if time.monotonic() > t_end + DEADLINE:
                sys.exit(f"burst into {project}: {done} of {BURST} scanned after {DEADLINE} s")
            time.sleep(0.02)
        conn.close()
    return [dt for dt, _ in out], t_end - t0, drain


def main():
    if not shutil.which("skopeo"):
        sys.exit("missing skopeo (bash scripts/deps.sh bench installs it)")
    login_storm.WHARF = WHARF
    work = Path(tempfile.mkdtemp(prefix="wharf-scanpush-"))
    port = free_port()
    env = server_env(str(work), port)
    env["WHARF_ACCESS_LOG"] = "true"  # the server's own time of each manifest PUT
    os.makedirs(env["WHARF_DATA_DIR"])
    subprocess.run([WHARF, "vulndb", "import", os.path.join(DATA, "debian"),
                    os.path.join(DATA, "nvd")], env=env, check=True, capture_output=True,
                   timeout=120)
    log = open(work / "wharf.log", "wb")
    base = f"http://127.0.0.1:{port}"
    proc = start_wharf(env, log, base)
    try:
        if PUSHES > 0:  # BENCH_PUSHES=0: part (b) only
            report_delay(*bench_delay(base, port, work))

        lat, srv, cpu = {False: [], True: []}, {False: [], True: []}, {False: [], True: []}
        lockw = {False: [], True: []}
        drains, walls = [], {False: [], True: []}
        for rnd in range(ROUNDS):
            for on in (False, True):
                name = f"burst-{'on' if on else 'off'}-{rnd}"
                c0, w0 = cpu_seconds(proc.pid), lock_wait(base)
                l, wall, drain = burst(base, port, name, on, name)
                cpu[on].append(cpu_seconds(proc.pid) - c0)
                lockw[on].append(lock_wait(base) - w0)
                lat[on] += l
                walls[on].append(wall)
                log.flush()
                srv[on] += server_times(work / "wharf.log", f"{name}/burst")
                if on:
                    drains.append(drain)
        print(f"\n(b) {ROUNDS} rounds of a burst of {BURST} small pushes ({CLIENTS} client "
              "processes, monolithic blob uploads, bearer token), auto_scan off then on\n")
        print("| auto_scan | manifest PUTs | median ms | p99 ms | max ms | server's p99 ms |"
              " burst s (mean) | server CPU s per burst (mean) | requests' wait for the write"
              " lock, ms per burst (mean) | all scanned after the burst, s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for on in (False, True):
            v = [1000 * x for x in lat[on]]
            dr = ", ".join(f"{d:.2f}" for d in drains) if on else "-"
            print(f"| {'on' if on else 'off'} | {len(v)} | {statistics.median(v):.2f} | "
                  f"{pct(v, 99):.2f} | {max(v):.2f} | {pct(srv[on], 99):.2f} | "
                  f"{statistics.mean(walls[on]):.2f} | {statistics.mean(cpu[on]):.2f} | "
                  f"{1000 * statistics.mean(lockw[on]):.1f} | {dr} |")
        ratio = pct(lat[True], 99) / pct(lat[False], 99)
        sratio = pct(srv[True], 99) / pct(srv[False], 99)
        print(f"\np99 with auto_scan on / off: {100 * ratio:.0f}% as the clients measure it, "
              f"{100 * sratio:.0f}% as the server does (target: at most 110%)")
    finally:
        stop_wharf(proc, log, str(work))


if __name__ == "__main__":
    main()
