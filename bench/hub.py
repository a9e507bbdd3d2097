#!/usr/bin/env python3
"""bench/hub.py: re-matching 10,000 stored inventories, and the security hub over them.

Fills a fresh data directory with bench/rematch (IMAGES scanned images, each
with an inventory of its own, stored as the scan workers store them; the
fill, then the re-match after a database update, are timed by that program
and its lines are printed here), then starts the real `wharf serve` on the
directory (127.0.0.1, a free port) and asks the security hub's routes and
the change list many times over one kept-alive connection, one request at a
time. Each time is the client's round trip (Python's http.client included).
Prints a markdown report.

usage: python3 bench/hub.py --wharf build/release/wharf --fill build/release/bench/rematch
       [--images 10000] [--requests 100]

Run from the repository's root (the fill reads tests/data). Everything
listens on and connects to 127.0.0.1; the server is stopped by its PID and
the data directory removed on exit.
"""

import argparse
import base64
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

WARM = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wharf", default="build/release/wharf")
    ap.add_argument("--fill", default="build/release/bench/rematch")
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="wharf-hub-")
    data = os.path.join(tmp, "data")
    proc = None
    logf = None
    try:
        p = subprocess.run([args.fill, data, str(args.images)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        if p.returncode != 0:
            raise RuntimeError("the fill failed")
        fill_lines = p.stdout.strip().splitlines()
        password = "Hub-" + secrets.token_hex(8)
        port = free_port()
        env = dict(os.environ, WHARF_DATA_DIR=data, WHARF_LISTEN=f"127.0.0.1:{port}",
                   WHARF_ADMIN_PASSWORD=password, WHARF_SCAN_DB_UPDATE_INTERVAL="0",
                   WHARF_ACCESS_LOG="false")
        logf = open(os.path.join(tmp, "wharf.log"), "ab")
        proc = subprocess.Popen([args.wharf, "serve"], env=env, stdout=logf,
                                stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        conn = None
        while time.monotonic() < end:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/api/v2.0/ping")
                conn.getresponse().read()
                break
            except OSError:
                conn = None
                time.sleep(0.05)
        if conn is None:
            raise RuntimeError("wharf did not answer")
        auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}

        def get(path):
            conn.request("GET", path, headers=auth)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
            return r, body

        # a digest, a tag and a repository that exist, for the filters
        _, body = get("/api/v2.0/security/vul?with_tag=true&page_size=1")
        one = json.loads(body)[0]
        q = lambda s: "q=" + urllib.parse.quote(urllib.parse.quote(s, safe=""), safe="")
        cases = [
            ("summary (with the top fives)",
             "/api/v2.0/security/summary?with_dangerous_cve=true&with_dangerous_artifact=true"),
            ("vul, first page", "/api/v2.0/security/vul"),
            ("vul, page 100", "/api/v2.0/security/vul?page=100&page_size=100"),
            ("vul, cve_id", "/api/v2.0/security/vul?" + q("cve_id=CVE-2022-1664")),
            ("vul, severity=High", "/api/v2.0/security/vul?" + q("severity=High")),
            ("vul, cvss_score_v3=[7~9]", "/api/v2.0/security/vul?" + q("cvss_score_v3=[7~9]")),
            ("vul, package=libc6", "/api/v2.0/security/vul?" + q("package=libc6")),
            ("vul, project_id", "/api/v2.0/security/vul?" + q(f"project_id={one['project_id']}")),
            ("vul, repository_name",
             "/api/v2.0/security/vul?" + q(f"repository_name={one['repository_name']}")),
            ("vul, tag (with_tag)", "/api/v2.0/security/vul?with_tag=true&" + q(f"tag={one['tags'][0]}")),
            ("vul, digest", "/api/v2.0/security/vul?" + q(f"digest={one['digest']}")),
            ("vulnerabilities/changes", "/api/v2.0/vulnerabilities/changes?since=0"),
        ]
        rows = []
        for name, path in cases:
            for _ in range(WARM):
                get(path)
            times = []
            total = "-"
            for _ in range(args.requests):
                t0 = time.perf_counter()
                r, _ = get(path)
                times.append((time.perf_counter() - t0) * 1000)
                total = r.getheader("X-Total-Count") or "-"
            rows.append((name, total, pct(times, 50), pct(times, 95), max(times)))
        cores = os.cpu_count()
        print(f"## security hub and re-match, {args.images} scanned images ({cores} cores)\n")
        for line in fill_lines:
            print(f"    {line}")
        print()
        print("| request | X-Total-Count | median ms | p95 ms | max ms |")
        print("|---|---|---|---|---|")
        for name, total, p50, p95, mx in rows:
            print(f"| {name} | {total} | {p50:.2f} | {p95:.2f} | {mx:.2f} |")
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if logf:
            logf.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
