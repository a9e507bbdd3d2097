#!/usr/bin/env python3
"""bench/gate.py — what the vulnerability gate costs a pull.

Starts wharf (release build) on 127.0.0.1 with a fresh data directory and the
fixture vulnerability database of tests/data/vulndb, pushes a small image
into the public project `library` with scanning on push, waits for its scan,
and measures anonymous `HEAD` of its manifest with `hey` (BENCH_DURATION
seconds, default 10): first with the gate off, then with `prevent_vul` on
(threshold critical; the image has no finding, so every pull is judged and
allowed), then off again. Prints a markdown table.

usage: python3 bench/gate.py [WHARF_BIN]
Everything stays on loopback, every load is bounded in time, and the server
this script starts is stopped by its PID.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_storm  # noqa: E402
from login_storm import (ACCEPT, free_port, hey, req, server_env, start_wharf,  # noqa: E402
                         stop_wharf)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHARF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release", "wharf")
DATA = os.path.join(ROOT, "tests", "data", "vulndb")


def layer_tar():
    """A one-file layer: a valid tar, so the scan succeeds with no package."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        body = b"hello from the gate benchmark\n"
        info = tarfile.TarInfo("etc/motd")
        info.size, info.mtime = len(body), 0
        tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def push(base, repo, tag):
    def blob(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        _, hdr, _ = req(f"{base}/v2/{repo}/blobs/uploads/", "POST")
        loc = hdr["Location"]
        loc = loc if loc.startswith("http") else base + loc
        sep = "&" if "?" in loc else "?"
        req(f"{loc}{sep}digest={d}", "PUT", data, {"Content-Type": "application/octet-stream"})
        return d, len(data)
    layer = layer_tar()
    ld, ls = blob(layer)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
    cd, cs = blob(cfg)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": ACCEPT,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cd, "size": cs},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": ld, "size": ls}]}).encode()
    req(f"{base}/v2/{repo}/manifests/{tag}", "PUT", manifest, {"Content-Type": ACCEPT})


def set_meta(base, meta):
    req(f"{base}/api/v2.0/projects/library", "PUT", json.dumps({"metadata": meta}).encode(),
        {"Content-Type": "application/json"})


def main():
    if not shutil.which("hey"):
        sys.exit("missing hey (bash scripts/deps.sh bench installs it)")
    login_storm.WHARF = WHARF
    work = tempfile.mkdtemp(prefix="wharf-gate-")
    port = free_port()
    env = server_env(work, port)
    os.makedirs(env["WHARF_DATA_DIR"])
    subprocess.run([WHARF, "vulndb", "import", os.path.join(DATA, "debian"),
                    os.path.join(DATA, "nvd")], env=env, check=True, capture_output=True,
                   timeout=120)
    log = open(f"{work}/wharf.log", "wb")
    base = f"http://127.0.0.1:{port}"
    proc = start_wharf(env, log, base)
    try:
        set_meta(base, {"auto_scan": "true"})
        push(base, "library/gate", "v1")
        url = f"{base}/api/v2.0/projects/library/repositories/gate/artifacts/v1?with_scan_overview=true"
        deadline = time.monotonic() + 60
        while True:
            _, _, body = req(url)
            overview = json.loads(body).get("scan_overview") or {}
            status = next(iter(overview.values()), {}).get("scan_status")
            if status == "Success":
                break
            if time.monotonic() > deadline:
                sys.exit(f"the scan did not succeed (status {status})")
            time.sleep(0.2)
        head = f"{base}/v2/library/gate/manifests/v1"
        rows = []
        for label, meta in (("off", {"prevent_vul": "false"}),
                            ("on (critical; image allowed)", {"prevent_vul": "true",
                                                             "severity": "critical"}),
                            ("off again", {"prevent_vul": "false"})):
            set_meta(base, meta)
            rate, p99, codes = hey(head, {"Accept": ACCEPT})
            rows.append((label, rate, p99, codes))
        off = (rows[0][1] + rows[2][1]) / 2
        print(f"\n`python3 bench/gate.py` ({login_storm.DURATION} s per row, hey -c 16, "
              "anonymous HEAD manifest)\n")
        print("| gate | req/s | p99 ms | of gate off (mean of both) | answers |")
        print("|---|---:|---:|---:|---|")
        for label, rate, p99, codes in rows:
            ans = ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
            print(f"| {label} | {rate:.0f} | {p99:.1f} | {100 * rate / off:.0f}% | {ans} |")
    finally:
        stop_wharf(proc, log, work)


if __name__ == "__main__":
    main()
