#!/usr/bin/env python3
"""bench/portal.py: the portal's artifacts page on a repository of many artifacts.

Fills a fresh data directory with bench/listfill (one public project, one
repository, 10,000 artifacts by default), starts the real `wharf serve` on it
(127.0.0.1, a free port), and runs tests/ui/bench_artifacts.mjs in Debian's
Chromium (playwright-core from tests/ui, `npm ci` there first): sign in, open
the repository's artifacts page and walk --pages pages of 15. Reports the
server's time for each page's one list request (`with_tag`, `with_label`,
`with_scan_overview`: the duration in the access log), the browser's time
from the click to the new rows, the API requests per page, and the long tasks
(over 50 ms on the main thread). Prints a markdown report.

usage: python3 bench/portal.py --wharf build/release/wharf --fill build/release/bench/listfill
       [--artifacts 10000] [--pages 20]
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lists import Server, log, pct, server_times  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = "/api/v2.0/projects/bench000/repositories/app0000/artifacts"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wharf", default="build/release/wharf")
    ap.add_argument("--fill", default="build/release/bench/listfill")
    ap.add_argument("--artifacts", type=int, default=10000)
    ap.add_argument("--pages", type=int, default=20)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="wharf-bench-portal-")
    srv = None
    try:
        data = os.path.join(tmp, "data")
        log(f"filling {a.artifacts} artifacts into one repository")
        p = subprocess.run([a.fill, data, str(a.artifacts), "1", "1"], capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise RuntimeError("listfill failed:\n" + p.stderr[-2000:])
        password = "Bench-" + secrets.token_hex(8) + "-Aa1"
        srv = Server(a.wharf, data, os.path.join(tmp, "server.log"), password)
        srv.wait_ready()
        start = os.path.getsize(srv.logpath)
        env = dict(os.environ, WHARF_URL=f"http://127.0.0.1:{srv.port}", WHARF_USER="admin",
                   WHARF_PASSWORD=password, PAGES=str(a.pages),
                   PAGE_PATH="/harbor/projects/2/repositories/app0000/artifacts-tab")
        p = subprocess.run(["node", "bench_artifacts.mjs"], cwd=os.path.join(ROOT, "tests", "ui"),
                           env=env, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("bench_artifacts.mjs failed:\n" + p.stderr[-4000:])
        r = json.loads(p.stdout.strip().splitlines()[-1])
        st = server_times(srv.logpath, start, "GET", LIST)
        long = r["longTasks"]
        print(f"## The artifacts page of a repository of {a.artifacts} artifacts\n")
        print(f"- pages walked: {a.pages} of 15 rows ({r['pager']})")
        print(f"- API requests per page: {sorted(set(r['callsPerPage']))}")
        print(f"- server time of the list request: median {pct(st, 50):.1f} ms, "
              f"p95 {pct(st, 95):.1f} ms, max {max(st):.1f} ms ({len(st)} requests)")
        print(f"- first page, navigation to rows on screen: {r['firstLoad']} ms")
        print(f"- next page, click to new rows: median {pct(r['perPage'], 50)} ms, "
              f"max {max(r['perPage'])} ms")
        print(f"- long tasks (> 50 ms) on the main thread: {len(long)}"
              + (f", longest {max(long):.0f} ms" if long else ""))
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
