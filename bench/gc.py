#!/usr/bin/env python3
"""bench/gc.py — online garbage collection of GC_BLOBS (default 100,000) unreferenced blobs.

Starts `wharf serve` with gc.review_delay 0 on a fresh data directory, stops it,
and seeds the garbage directly: GC_BLOBS small files under blobs/ and their rows in
the blob table (the migration's trigger queues each for review, as an upload
would). Then, with the server up again, CLIENTS threads push small images (two
uploads and a manifest) and pull them (manifest and blob GETs) for BENCH_DURATION
seconds as a baseline, then while one collection (POST /system/gc/schedule,
Manual, GC_WORKERS workers) deletes the garbage. Prints the collection's time and
rate, and p50/p99 of push and pull requests before and during it; checks that the
blob directory holds only what the pushed images use afterwards.

usage: python3 bench/gc.py [WHARF_BIN]
Everything stays on loopback, every phase is bounded in time, and the server this
script starts is stopped by its PID.
"""
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_storm  # noqa: E402
from login_storm import ACCEPT, free_port, push_image, req, server_env, start_wharf, stop_wharf  # noqa: E402

BLOBS = int(os.environ.get("GC_BLOBS", "100000"))
WORKERS = int(os.environ.get("GC_WORKERS", "1"))
CLIENTS = int(os.environ.get("CLIENTS", "4"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
GC_TIMEOUT = 1800


def seed(data_dir, n):
    """n unreferenced 64-byte blobs: files and rows, queued by the blob trigger."""
    db = sqlite3.connect(os.path.join(data_dir, "wharf.db"))
    now = int(time.time() * 1000)
    rows = []
    for i in range(n):
        data = i.to_bytes(8, "big") + os.urandom(56)
        hexd = hashlib.sha256(data).hexdigest()
        d = os.path.join(data_dir, "blobs", "sha256", hexd[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, hexd), "wb") as f:
            f.write(data)
        rows.append(("sha256:" + hexd, len(data), now))
    with db:
        db.executemany("INSERT INTO blob(digest, size, created_ms) VALUES(?, ?, ?)", rows)
    db.close()


def blob_files(data_dir):
    return sum(len(files) for _, _, files in os.walk(os.path.join(data_dir, "blobs")))


class Load:
    """CLIENTS threads pushing and pulling; latencies (ms) by kind and phase."""

    def __init__(self, base):
        self.base, self.phase = base, "before"
        self.stop = threading.Event()
        self.lat = {}
        self.lock = threading.Lock()
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(CLIENTS)]

    def note(self, kind, ms):
        with self.lock:
            self.lat.setdefault((self.phase, kind), []).append(ms)

    def run(self, n):
        i = 0
        while not self.stop.is_set():
            repo, tag = f"library/load{n}", f"t{i % 20}"
            t = time.monotonic()
            try:
                push_image(self.base, repo, tag)
                self.note("push", (time.monotonic() - t) * 1000)
                t = time.monotonic()
                _, _, body = req(f"{self.base}/v2/{repo}/manifests/{tag}",
                                 headers={"Accept": ACCEPT})
                self.note("pull", (time.monotonic() - t) * 1000)
                layer = json.loads(body)["layers"][0]["digest"]
                t = time.monotonic()
                req(f"{self.base}/v2/{repo}/blobs/{layer}")
                self.note("pull", (time.monotonic() - t) * 1000)
            except (OSError, urllib.error.HTTPError) as e:
                self.errors.append(f"{repo}:{tag}: {e}")
            i += 1


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def main():
    if len(sys.argv) > 1:
        login_storm.WHARF = sys.argv[1]
    work = tempfile.mkdtemp(prefix="wharf-gcbench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(server_env(work, port), WHARF_GC_REVIEW_DELAY="0")
    log = open(f"{work}/log", "w")
    proc = start_wharf(env, log, base)
    try:
        proc.terminate()
        proc.wait(30)
        t = time.monotonic()
        seed(f"{work}/data", BLOBS)
        print(f"seeded {BLOBS} unreferenced blobs in {time.monotonic() - t:.1f} s", flush=True)
        proc = start_wharf(env, log, base)
        load = Load(base)
        for th in load.threads:
            th.start()
        time.sleep(DURATION)  # the baseline's length, not a synchronisation
        load.phase = "during"
        body = json.dumps({"schedule": {"type": "Manual"},
                           "parameters": {"workers": WORKERS}}).encode()
        t0 = time.monotonic()
        _, hdr, _ = req(f"{base}/api/v2.0/system/gc/schedule", "POST", body,
                        {"Content-Type": "application/json"})
        gc_id = hdr["Location"].rsplit("/", 1)[1]
        while True:
            _, _, b = req(f"{base}/api/v2.0/system/gc/{gc_id}")
            run = json.loads(b)
            if run["job_status"] not in ("Pending", "Running"):
                break
            if time.monotonic() - t0 > GC_TIMEOUT:
                sys.exit("the collection did not end in time")
            time.sleep(0.2)  # polling interval
        took = time.monotonic() - t0
        load.phase = "after"
        load.stop.set()
        for th in load.threads:
            th.join(60)
        print(f"collection {gc_id}: {run['job_status']}, {run['blobs_deleted']} blobs, "
              f"{run['bytes_freed']} bytes in {took:.1f} s "
              f"({run['blobs_deleted'] / took:.0f} blobs/s, {WORKERS} workers), "
              f"{CLIENTS} clients pushing and pulling beside it")
        print("| phase | push n | push p50 ms | push p99 ms | pull n | pull p50 ms | pull p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for phase in ("before", "during"):
            p, q = load.lat.get((phase, "push"), []), load.lat.get((phase, "pull"), [])
            print(f"| {phase} | {len(p)} | {pct(p, .5):.1f} | {pct(p, .99):.1f} | {len(q)} "
                  f"| {pct(q, .5):.1f} | {pct(q, .99):.1f} |")
        if load.errors:
            print(f"{len(load.errors)} client errors, first: {load.errors[0]}")
        left = blob_files(f"{work}/data")
        print(f"blob files left: {left} (the load's images; the seeded ones: "
              f"{'all gone' if run['blobs_deleted'] >= BLOBS else 'NOT all gone'})")
        if run["job_status"] != "Success":
            sys.exit(1)
    finally:
        stop_wharf(proc, log, work)


if __name__ == "__main__":
    main()
