#!/usr/bin/env python3
"""bench/lists.py: the REST API's lists and the catalog at scale.

Fills a fresh data directory with bench/listfill (200,000 artifacts over
2,000 repositories in 20 public projects by default, written through the db
layer as pushes would record them), starts the real `wharf serve` on it
(127.0.0.1, a free port), and asks each measured list many times over one
kept-alive connection, one request at a time. The time per request is the
server's own: the duration its access log writes for the request (from the
first byte read to the last byte queued), so the client's Python does not
count; the client's round trip is reported beside it. Prints a markdown
report (and writes it to --out).

usage: python3 bench/lists.py --wharf build/release/wharf --fill build/release/bench/listfill
       [--artifacts 200000] [--repositories 2000] [--projects 20] [--requests 300]

Everything listens on and connects to 127.0.0.1; the server is stopped by its
PID (SIGTERM, then SIGKILL after 15 s) and the data directory removed on exit.
"""

import argparse
import base64
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WARM = 30  # requests before the measured ones
ACCESS = re.compile(r"access (\S+) (\S+) (\d+) (\d+) (\d+)\.(\d{3})ms")


def log(msg):
    print(f"[lists {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data, logpath, password):
        self.port = free_port()
        self.logpath = logpath
        env = dict(os.environ, WHARF_DATA_DIR=data, WHARF_LISTEN=f"127.0.0.1:{self.port}",
                   WHARF_ADMIN_PASSWORD=password, WHARF_ACCESS_LOG="true", WHARF_LOG_LEVEL="info",
                   WHARF_SCAN_DB_UPDATE_INTERVAL="0")
        self.logf = open(logpath, "ab")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=self.logf,
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, deadline=30.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wharf exited with status {self.proc.returncode}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v2/")
                c.getresponse().read()
                c.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("wharf did not answer within 30 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def server_times(logpath, start, method, path):
    """Durations (ms) of the access lines for `method path` written after byte `start`."""
    with open(logpath, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    out = []
    for m in ACCESS.finditer(text):
        if m.group(1) == method and m.group(2) == path:
            if m.group(3) != "200":
                raise RuntimeError(f"{method} {path} answered {m.group(3)}")
            out.append(int(m.group(5)) + int(m.group(6)) / 1000.0)
    return out


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wharf", default="build/release/wharf")
    ap.add_argument("--fill", default="build/release/bench/listfill")
    ap.add_argument("--artifacts", type=int, default=200000)
    ap.add_argument("--repositories", type=int, default=2000)
    ap.add_argument("--projects", type=int, default=20)
    ap.add_argument("--requests", type=int, default=300, help="measured requests per list")
    ap.add_argument("--out", default="build/bench/lists.md")
    args = ap.parse_args()
    cmdline = "python3 bench/lists.py " + " ".join(sys.argv[1:])

    work = tempfile.mkdtemp(prefix="wharf-lists.")
    srv = None
    try:
        data = os.path.join(work, "data")
        log(f"filling {data}: {args.artifacts} artifacts, {args.repositories} repositories, "
            f"{args.projects} projects")
        p = subprocess.run([args.fill, data, str(args.artifacts), str(args.repositories),
                            str(args.projects)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError("listfill failed:\n" + p.stderr[-2000:])
        facts = dict(line.split(" ", 1) for line in p.stdout.strip().splitlines())
        proj = facts["measured-project"]
        repo = facts["measured-repository"]
        log(f"filled in {facts['fill-seconds']} s; measuring {repo}")

        password = "Bench-" + secrets.token_hex(8)
        srv = Server(args.wharf, data, os.path.join(work, "wharf.log"), password)
        srv.wait_ready()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)

        def get(path, headers=None):
            t = time.perf_counter()
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            body = r.read()
            ms = (time.perf_counter() - t) * 1000.0
            return r, body, ms

        # the catalog is an administrator's: a token, as a registry client would hold
        r, body, _ = get("/v2/_catalog")
        chal = r.getheader("WWW-Authenticate", "")
        service = re.search(r'service="([^"]+)"', chal).group(1)
        basic = base64.b64encode(f"admin:{password}".encode()).decode()
        r, body, _ = get(f"/service/token?service={service}&scope=registry:catalog:*",
                         {"Authorization": "Basic " + basic})
        token = json.loads(body)["token"]
        bearer = {"Authorization": "Bearer " + token}

        rel = repo.split("/", 1)[1]
        per_repo = args.artifacts // args.repositories
        per_proj = args.repositories // args.projects
        cases = [
            (f"one repository's artifacts, first page of 10 with their tags ({per_repo} in it)",
             f"/api/v2.0/projects/{proj}/repositories/{rel}/artifacts", None),
            (f"one project's repositories, first page of 10 ({per_proj} in it)",
             f"/api/v2.0/projects/{proj}/repositories", None),
            ("the catalog, first page of 100 names", "/v2/_catalog?n=100", bearer),
            (f"the catalog, all {args.repositories} names in one page", "/v2/_catalog",
             bearer),
            (f"the projects, first page of 10 ({args.projects + 1} in all)", "/api/v2.0/projects",
             None),
            (f"one project's artifacts, first page of 10 ({per_repo * per_proj} in it)",
             f"/api/v2.0/projects/{proj}/artifacts", None),
        ]
        rows = []
        for title, path, headers in cases:
            start = os.path.getsize(srv.logpath)
            r, body, _ = get(path, headers)
            if r.status != 200:
                raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
            count = r.getheader("X-Total-Count")
            for _ in range(WARM):  # statements prepared, pages cached
                get(path, headers)
            client = [get(path, headers)[2] for _ in range(args.requests)]
            # an access line is written once its answer is complete, which can be after
            # the client read it: wait for every line, then keep the measured ones
            logged = path.split("?", 1)[0]
            want = 1 + WARM + args.requests
            end = time.monotonic() + 10
            while True:
                times = server_times(srv.logpath, start, "GET", logged)
                if len(times) >= want or time.monotonic() > end:
                    break
                time.sleep(0.05)
            if len(times) != want:
                raise RuntimeError(f"{len(times)} access lines for {want} requests")
            times = times[-args.requests:]
            rows.append((title, path, count, len(body), statistics.median(times), pct(times, 90),
                         pct(times, 99), statistics.median(client)))
            log(f"{path}: server median {statistics.median(times):.3f} ms")
        conn.close()

        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        ver = subprocess.run([args.wharf, "--version"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True).stdout.strip()
        out = []
        out.append(f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, command: "
                   f"`{cmdline}`")
        out.append("")
        out.append(f"- machine: {os.cpu_count()} CPUs, {cpu}, kernel {platform.release()}, "
                   f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        out.append(f"- {ver}; data: {facts['artifacts']} artifacts over {facts['repositories']} "
                   f"repositories in {facts['projects']} projects, filled in "
                   f"{facts['fill-seconds']} s; measured repository `{repo}`")
        out.append(f"- {args.requests} requests per row, one at a time over one kept-alive "
                   f"connection, after {WARM} to warm up")
        out.append("")
        out.append("| request | X-Total-Count | body bytes | server median, ms | server p90, ms "
                   "| server p99, ms | client round trip median, ms |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for title, path, count, size, med, p90, p99, cli in rows:
            out.append(f"| {title}: `GET {path}` | {count or ''} | {size} | {med:.3f} | "
                       f"{p90:.3f} | {p99:.3f} | {cli:.3f} |")
        report = "\n".join(out) + "\n"
        print(report)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)
        return 0
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        log(f"error: {e}")
        sys.exit(1)
