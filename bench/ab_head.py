#!/usr/bin/env python3
"""bench/ab_head.py — two wharf binaries side by side on anonymous HEAD manifest.

Starts both binaries (fresh data directories, loopback, no access log), pushes
the same small image into each, then loads them in turn with `hey` (16
connections, BENCH_DURATION seconds a run, ROUNDS rounds, the order swapped
every round so that a drift of the machine's load hits both alike). Besides
requests/s and p99 it reports the server's own CPU time per request (utime +
stime from /proc), which a busy shared machine disturbs far less than
throughput. Prints each run and the medians.

usage: python3 bench/ab_head.py BEFORE_BIN AFTER_BIN
Everything stays on loopback, every load is bounded in time, and the servers
this script starts are stopped by their PIDs.
"""
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gate  # noqa: E402
import login_storm  # noqa: E402
from login_storm import ACCEPT, free_port, hey, server_env, start_wharf, stop_wharf  # noqa: E402


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[-2])
    bins = {"before": sys.argv[1], "after": sys.argv[2]}
    rounds = int(os.environ.get("ROUNDS", "6"))
    servers, results = {}, {k: [] for k in bins}
    try:
        for name, binary in bins.items():
            login_storm.WHARF = binary
            work = tempfile.mkdtemp(prefix="wharf-ab-")
            port = free_port()
            log = open(f"{work}/log", "w")
            base = f"http://127.0.0.1:{port}"
            proc = start_wharf(server_env(work, port), log, base)
            servers[name] = (proc, log, work, base)
            gate.push(base, "library/ab", "v1")
        for r in range(rounds):
            for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
                proc, _, _, base = servers[name]
                c0 = cpu_seconds(proc.pid)
                rate, p99, codes = hey(f"{base}/v2/library/ab/manifests/v1", {"Accept": ACCEPT})
                n = sum(int(v) for v in codes.values())
                us = (cpu_seconds(proc.pid) - c0) / max(n, 1) * 1e6
                results[name].append((rate, p99, us))
                print(f"{name:6} {rate:8.0f} req/s  p99 {p99:5.2f} ms  server CPU {us:6.2f} us/req"
                      f"  {codes}", flush=True)
    finally:
        for proc, log, work, _ in servers.values():
            stop_wharf(proc, log, work)
    print(f"\n`python3 bench/ab_head.py` ({login_storm.DURATION} s a run, {rounds} rounds, "
          "hey -c 16, anonymous HEAD manifest; medians)\n")
    print("| binary | req/s | p99 ms | server CPU µs/request |\n|---|---:|---:|---:|")
    for name, rs in results.items():
        med = [statistics.median(x[i] for x in rs) for i in range(3)]
        print(f"| {name} | {med[0]:.0f} | {med[1]:.2f} | {med[2]:.2f} |")


if __name__ == "__main__":
    main()
