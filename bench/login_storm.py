#!/usr/bin/env python3
"""bench/login_storm.py — what a password-guessing storm does to everyone else.

Starts wharf (release build) on 127.0.0.1 with a fresh data directory, pushes a
small public image, and measures with `hey` two requests a client does all
the time: an anonymous HEAD of a manifest and a HEAD with a bearer token.
First undisturbed, then while 64 clients send wrong passwords, each request
with a new user name:
  - "one address": all 64 from 127.0.0.2 (one unauthenticated client, the case
    the per-address budget answers);
  - "many addresses": each client from its own 127.0.x.y address, so no address
    budget applies and every attempt costs a password check (argon2id).
Prints a markdown table: rate and p99 of each, and the attackers' answers.

usage: python3 bench/login_storm.py [WHARF_BIN]    (BENCH_DURATION, default 10 s)
Everything stays on loopback, every load is bounded in time, and the server
this script starts is stopped by its PID at the end.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHARF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release", "wharf")
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
ADMIN = ("admin", "Bench-Admin-Passw0rd")
ACCEPT = "application/vnd.oci.image.manifest.v1+json"
ATTACKERS = 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def req(url, method="GET", data=None, headers=None, auth=ADMIN):
    h = dict(headers or {})
    if auth:
        h["Authorization"] = basic(*auth)
    r = urllib.request.Request(url, data=data, method=method, headers=h)
    with urllib.request.urlopen(r, timeout=30) as resp:
        return resp.status, dict(resp.headers), resp.read()


def push_image(base, repo, tag):
    def blob(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        st, hdr, _ = req(f"{base}/v2/{repo}/blobs/uploads/", "POST")
        loc = hdr["Location"]
        loc = loc if loc.startswith("http") else base + loc
        sep = "&" if "?" in loc else "?"
        req(f"{loc}{sep}digest={d}", "PUT", data, {"Content-Type": "application/octet-stream"})
        return d, len(data)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    cd, cs = blob(cfg)
    layer = os.urandom(4096)
    ld, ls = blob(layer)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": ACCEPT,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cd, "size": cs},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": ld, "size": ls}]}).encode()
    req(f"{base}/v2/{repo}/manifests/{tag}", "PUT", manifest, {"Content-Type": ACCEPT})


def hey(url, headers):
    argv = ["hey", "-z", f"{DURATION}s", "-c", "16", "-m", "HEAD"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=DURATION + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    return rate, float(p99.group(1)) * 1000 if p99 else float("nan"), codes


def server_env(work, port):
    """The environment of a benchmark server: loopback, its own data dir, no access log, no
    background vulnerability-database update (nothing outside loopback is reached)."""
    return dict(os.environ, WHARF_LISTEN=f"127.0.0.1:{port}", WHARF_DATA_DIR=f"{work}/data",
                WHARF_ADMIN_PASSWORD=ADMIN[1], WHARF_ACCESS_LOG="false",
                WHARF_SCAN_DB_UPDATE_INTERVAL="0")


def start_wharf(env, log, base):
    """Starts `wharf serve` and waits (30 s at most) until it answers."""
    proc = subprocess.Popen([WHARF, "serve"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            req(base + "/v2/")
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                sys.exit(f"wharf did not start (see {log.name})")
            time.sleep(0.1)


def stop_wharf(proc, log, work):
    """Stops the server this script started (TERM, then KILL after 30 s) and cleans up."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    shutil.rmtree(work, ignore_errors=True)


class Storm:
    def __init__(self, port, many_addresses):
        self.port, self.many = port, many_addresses
        self.stop = threading.Event()
        self.answers = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(ATTACKERS)]

    def run(self, n):
        src = f"127.0.{1 + n // 200}.{10 + n % 200}" if self.many else "127.0.0.2"
        i = 0
        while not self.stop.is_set():
            i += 1
            code = "refused"
            try:
                s = socket.socket()
                s.bind((src, 0))
                s.settimeout(30)
                s.connect(("127.0.0.1", self.port))
                s.sendall((f"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
                           f"{basic(f'guess{n}x{i}', 'wrong-password')}\r\n"
                           "Connection: close\r\n\r\n").encode())
                code = s.recv(64)[9:12].decode(errors="replace") or "closed"
                s.close()
            except OSError:
                pass
            with self.lock:
                self.answers[code] = self.answers.get(code, 0) + 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(1)  # let the storm reach its pace before measuring
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def main():
    for tool in ("hey",):
        if not shutil.which(tool):
            sys.exit(f"missing {tool} (bash scripts/deps.sh bench installs it)")
    work = tempfile.mkdtemp(prefix="wharf-storm-")
    port = free_port()
    env = server_env(work, port)
    log = open(f"{work}/wharf.log", "wb")
    base = f"http://127.0.0.1:{port}"
    proc = start_wharf(env, log, base)
    try:
        push_image(base, "library/bench", "v1")
        _, _, body = req(f"{base}/service/token?service=wharf&scope=repository:library/bench:pull")
        token = json.loads(body)["token"]
        url = f"{base}/v2/library/bench/manifests/v1"
        cases = [("anonymous HEAD manifest", {"Accept": ACCEPT}),
                 ("token HEAD manifest", {"Accept": ACCEPT, "Authorization": f"Bearer {token}"})]
        rows = []
        base_rate = {}
        for name, hdr in cases:
            rate, p99, _ = hey(url, hdr)
            base_rate[name] = rate
            rows.append((name, "none", rate, p99, "100%", ""))
        for many in (False, True):
            label = "64 clients, many addresses" if many else "64 clients, one address"
            for name, hdr in cases:
                with Storm(port, many) as storm:
                    rate, p99, codes = hey(url, hdr)
                ans = ", ".join(f"{k}: {v}" for k, v in sorted(storm.answers.items()))
                rows.append((name, label, rate, p99, f"{100 * rate / base_rate[name]:.0f}%", ans))
        print(f"\n`python3 bench/login_storm.py` ({DURATION} s per row, hey -c 16; wrong passwords"
              f" with a new name per request)\n")
        print("| request | password storm | req/s | p99 ms | of undisturbed | attackers' answers |")
        print("|---|---|---:|---:|---:|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.1f} | {r[4]} | {r[5]} |")
    finally:
        stop_wharf(proc, log, work)


if __name__ == "__main__":
    main()
