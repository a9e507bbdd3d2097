#!/usr/bin/env python3
"""bench/audit_growth.py — how much the audit log grows under a pull storm.

Starts wharf (release build) on 127.0.0.1 with a fresh data directory,
pushes a small public image, runs `wrk` GETs of its manifest for
BENCH_DURATION seconds (default 20) from 32 connections, then stops the
server (which flushes the audit writer and checkpoints the WAL) and reports
the pulls served, the audit rows and the pull count they hold, and the
database's growth per million pulls.

usage: python3 bench/audit_growth.py [WHARF_BIN]
Everything stays on loopback, the load is bounded in time, and the server
this script starts is stopped by its PID.
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login_storm  # noqa: E402
from login_storm import (ACCEPT, free_port, push_image, server_env, start_wharf,  # noqa: E402
                         stop_wharf)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHARF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release", "wharf")
DURATION = int(os.environ.get("BENCH_DURATION", "20"))


def db_bytes(data):
    return sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
               if f.startswith("wharf.db"))


def main():
    if not shutil.which("wrk"):
        sys.exit("missing wrk (bash scripts/deps.sh bench installs it)")
    work = tempfile.mkdtemp(prefix="wharf-audit-")
    data = f"{work}/data"
    port = free_port()
    env = server_env(work, port)
    log = open(f"{work}/wharf.log", "wb")
    base = f"http://127.0.0.1:{port}"
    login_storm.WHARF = WHARF
    proc = start_wharf(env, log, base)
    try:
        push_image(base, "library/bench", "v1")
        proc.terminate()
        proc.wait(30)
        before = db_bytes(data)
        proc = start_wharf(env, log, base)
        out = subprocess.run(["wrk", "-t2", "-c32", f"-d{DURATION}s", "-H", f"Accept: {ACCEPT}",
                              f"{base}/v2/library/bench/manifests/v1"],
                             capture_output=True, text=True, timeout=DURATION + 60).stdout
        served = int(re.search(r"(\d+) requests in", out).group(1))
        proc.terminate()
        proc.wait(60)
        after = db_bytes(data)
        db = sqlite3.connect(f"{data}/wharf.db")
        rows, pulls = db.execute("SELECT count(*), coalesce(sum(count), 0) FROM audit_log"
                                 " WHERE operation = 'pull'").fetchone()
        db.close()
        growth = after - before
        print(f"\n`python3 bench/audit_growth.py` (wrk -t2 -c32 -d{DURATION}s, GET manifest, "
              "anonymous, one client address)\n")
        print("| pulls served | pull rows | pulls they count | database growth | per million pulls |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {served} | {rows} | {pulls} | {growth / 1024:.0f} KiB |"
              f" {growth / 1024 / (served / 1e6):.1f} KiB |")
    finally:
        stop_wharf(proc, log, work)


if __name__ == "__main__":
    main()
