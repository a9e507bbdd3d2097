#!/usr/bin/env python3
"""bench/scaleout.py — the embedded mode next to PostgreSQL + radosgw, one node and two.

Four setups, one after the other, all on 127.0.0.1 with fresh directories:
  embedded      one `wharf serve` on SQLite and the filesystem (the default), alone on
                the machine (PostgreSQL and Ceph are started after it has been measured);
  1 node        one node on PostgreSQL (scripts/pg-up.sh) and radosgw (scripts/ceph.sh:
                monitor, one memstore OSD, radosgw), clients straight to the node;
  1 node+nginx  the same node behind nginx, configured as docs/deploy.md prints it for
                several nodes (request and response buffering off, keepalive 32; no TLS);
  2 nodes       a second node on the same database, bucket and token key, both behind
                nginx (round robin).
Each setup gets the same loads, every one bounded in time:
  push   batches of IMAGES images of LAYERS layers of LAYER_MIB MiB, each batch all at once
         (bench/regload.py's client: a token, then POST, one PATCH and a PUT per blob, then
         the manifest), every layer new, batch after batch for DURATION seconds or until
         PUSH_MAX_MIB have been pushed;
  pull   those batches again and again, each image by PULL_COPIES clients at once, layers
         read to the end, for DURATION seconds;
  HEAD manifest by tag: hey -z DURATION -c CONNS (anonymous, public project);
  GET manifest by tag, GET of a 4 KiB blob: wrk -t 2 -c CONNS -d DURATION.
During each load, the CPU seconds of each process group are read from /proc (a process
with its descendants and threads): the wharf nodes, PostgreSQL (postmaster and its
backends), radosgw, ceph-osd with ceph-mon, nginx (master and workers), the load generator
(this script's threads, hey, wrk), the rest of the machine (other processes and the
kernel, /proc/stat) and the idle time, all divided by the load's wall time: cores. On a
machine whose cores are all busy the throughput is CPU-bound, and the split says who
spends it. radosgw's request counter (perf counter rgw.req, read through its admin
socket) gives the S3 requests each client request or image cost. Every WHARF_* variable
of the environment reaches the nodes (WHARF_THREADS=8, say).

usage: python3 bench/scaleout.py [WHARF_BIN]     (default build/release/wharf, made if missing)
Environment: BENCH_DURATION (10 s), BENCH_CONNECTIONS (16), IMAGES (4), LAYERS (3),
LAYER_MIB (8), PULL_COPIES (2), PUSH_MAX_MIB (768),
SCALEOUT_SETUPS (embedded,1node,1node-nginx,2nodes: a subset, in that order),
SCALEOUT_TIMEOUT (900 s), SCALEOUT_OUT (also write the report there).
Packages: hey, wrk (scripts/deps.sh bench), postgresql-15 and nginx (scripts/deps.sh test),
Ceph (scripts/deps.sh s3). Every process this script starts is stopped by its PID (or by
the PID files of scripts/pg-down.sh and scripts/ceph.sh down) on exit, normal or not.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import regload as rl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHARF = (os.path.abspath(sys.argv[1]) if len(sys.argv) > 1
         else os.path.join(ROOT, "build", "release", "wharf"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
IMAGES = int(os.environ.get("IMAGES", "4"))
LAYERS = int(os.environ.get("LAYERS", "3"))
LAYER_MIB = int(os.environ.get("LAYER_MIB", "8"))
PULL_COPIES = int(os.environ.get("PULL_COPIES", "2"))
PUSH_MAX_MIB = int(os.environ.get("PUSH_MAX_MIB", "768"))
SETUPS = os.environ.get("SCALEOUT_SETUPS", "embedded,1node,1node-nginx,2nodes").split(",")
TIMEOUT = int(os.environ.get("SCALEOUT_TIMEOUT", "900"))
LABELS = {"embedded": "embedded (SQLite + fs)", "1node": "1 node (PostgreSQL + radosgw)",
          "1node-nginx": "1 node behind nginx", "2nodes": "2 nodes behind nginx"}
COLUMNS = ["wharf", "postgres", "radosgw", "ceph-osd+mon", "nginx", "client", "rest", "idle"]

PROCS = []      # processes started here (wharf nodes, nginx), stopped by PID at exit
CLEANUP = []    # callables run at exit, last first


def log(msg):
    print(f"[scaleout {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    CLEANUP.append(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


class Node:
    """One `wharf serve` with its own data directory (its lock, token key, vulnerability
    database; on PostgreSQL + S3 no metadata and no blob lives there)."""

    def __init__(self, name, extra_env):
        self.name = name
        self.work = tmpdir(f"wharf-scaleout-{name}-")
        self.data = os.path.join(self.work, "data")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, WHARF_LISTEN=f"127.0.0.1:{self.port}", WHARF_DATA_DIR=self.data,
                   WHARF_ADMIN_PASSWORD=rl.ADMIN[1], WHARF_ACCESS_LOG="false",
                   WHARF_SCAN_DB_UPDATE_INTERVAL="0", **extra_env)
        self.logf = open(os.path.join(self.work, "log"), "wb")
        self.proc = subprocess.Popen([WHARF, "serve"], env=env, stdout=self.logf, stderr=self.logf)
        PROCS.append(self.proc)
        try:
            rl.wait_http(self.base, self.proc, 60, f"wharf {name}")
        except RuntimeError:
            self.logf.flush()
            sys.stderr.write(open(os.path.join(self.work, "log")).read()[-2000:])
            raise

    def stop(self):
        rl.stop_proc(self.proc)
        self.logf.close()


class Nginx:
    """nginx in front of nodes, docs/deploy.md's block for several nodes minus TLS."""

    def __init__(self, nodes):
        self.dir = tmpdir("wharf-scaleout-nginx-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        d = self.dir
        ups = "".join(f"        server {n.base[7:]} max_fails=3 fail_timeout=10s;\n" for n in nodes)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(("user root;\n" if os.geteuid() == 0 else "") +
                    "worker_processes auto;\n"
                    f"pid {d}/nginx.pid;\n"
                    f"error_log {d}/error.log warn;\n"
                    "events { worker_connections 1024; }\n"
                    "http {\n"
                    "    access_log off;\n"
                    f"    client_body_temp_path {d}/client_body;\n"
                    f"    proxy_temp_path {d}/proxy_temp;\n"
                    f"    fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; "
                    f"scgi_temp_path {d}/scgi;\n"
                    "    upstream wharf {\n" + ups + "        keepalive 32;\n    }\n"
                    "    server {\n"
                    f"        listen 127.0.0.1:{self.port};\n"
                    "        client_max_body_size 0;\n"
                    "        proxy_request_buffering off;\n"
                    "        proxy_buffering off;\n"
                    "        location / {\n"
                    "            proxy_pass http://wharf;\n"
                    "            proxy_http_version 1.1;\n"
                    "            proxy_set_header Connection \"\";\n"
                    "            proxy_set_header Host $http_host;\n"
                    "            proxy_set_header X-Forwarded-Proto $scheme;\n"
                    "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                    "            proxy_read_timeout 900s;\n"
                    "            proxy_send_timeout 900s;\n"
                    "        }\n"
                    "    }\n"
                    "}\n")
        self.logf = open(os.path.join(d, "stderr"), "wb")
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"],
                                     stdout=self.logf, stderr=self.logf)
        PROCS.append(self.proc)
        rl.wait_http(self.base, self.proc, 20, "nginx")

    def stop(self):
        # SIGQUIT: nginx's graceful stop (workers finish, then exit with the master)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                rl.stop_proc(self.proc)
        self.logf.close()


def postgres():
    """scripts/pg-up.sh: (DSN, postmaster PID); pg-down.sh at exit."""
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg-up.sh")], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"pg-up.sh failed: {out.stderr[-2000:]}")
    env = dict(line.split("=", 1) for line in out.stdout.split())
    root = env["WHARF_PG_ROOT"]
    down = os.path.join(ROOT, "scripts", "pg-down.sh")
    CLEANUP.append(lambda: subprocess.run(["bash", down, root], capture_output=True, timeout=60))
    with open(os.path.join(root, "data", "postmaster.pid")) as f:
        pid = int(f.readline())
    return env["WHARF_TEST_PG_DSN"], pid


def ceph():
    """scripts/ceph.sh up in a directory and on ports of its own: (WHARF_S3_* settings,
    {group: [pids]}); scripts/ceph.sh down at exit."""
    d = tempfile.mkdtemp(prefix="wharf-scaleout-ceph-")
    # memstore keeps the objects in RAM: room for three setups' pushes
    env = dict(os.environ, WHARF_CEPH_DIR=d, WHARF_CEPH_PORT=str(free_port()),
               WHARF_CEPH_MEM_BYTES=os.environ.get("WHARF_CEPH_MEM_BYTES", str(4 << 30)),
               WHARF_CEPH_MON_PORT=str(free_port()), WHARF_CEPH_BUCKET="wharf-bench")
    script = os.path.join(ROOT, "scripts", "ceph.sh")
    CLEANUP.append(lambda: subprocess.run(["bash", script, "down"], env=env, capture_output=True,
                                          timeout=120))
    out = subprocess.run(["bash", script, "up"], env=env, capture_output=True, text=True,
                         timeout=240)
    if out.returncode != 0:
        raise RuntimeError(f"ceph.sh up failed: {out.stderr[-2000:]}")
    s3 = dict(line.split("=", 1) for line in out.stdout.split() if line.startswith("WHARF_S3_"))
    pids = {}
    asok = os.path.join(d, "run", "client.rgw.gw.asok")

    def rgw_requests():
        """radosgw's count of S3 requests served (its perf counter rgw.req)."""
        p = subprocess.run(["ceph", "--admin-daemon", asok, "perf", "dump", "rgw"],
                           capture_output=True, text=True, timeout=30)
        return json.loads(p.stdout)["rgw"]["req"] if p.returncode == 0 else None
    for f in os.listdir(os.path.join(d, "run")):
        if f.endswith(".pid"):
            with open(os.path.join(d, "run", f)) as fh:
                pid = int(fh.read().strip())
            pids.setdefault("radosgw" if "rgw" in f else "ceph-osd+mon", []).append(pid)
    return s3, pids, rgw_requests


def run_loads(front, groups, tag, s3_requests=None):
    """The five loads against `front`: ({load: (value, p99 ms or None, bad answers,
    S3 requests per unit or None)}, {load: CPU delta}). Units: a client request (rates),
    an image (push, pull)."""
    cpu = rl.Cpu(groups)
    res, cpus = {}, {}

    def timed(load, fn, *args):
        s0 = s3_requests() if s3_requests else None
        r, cpus[load] = rl.measure(cpu, fn, *args)
        s1 = s3_requests() if s3_requests else None
        return r, (s1 - s0 if s0 is not None and s1 is not None else None)

    def per(n, units):
        return None if n is None else n / max(units, 1)
    # warm-up, not measured: the first upload into a fresh bucket makes radosgw create its
    # pools (seconds); the small image is what the rate tests read
    blob = rl.small_image(front, "library/small")
    rl.push_all(front, rl.make_images(1, 1, LAYER_MIB * rl.MIB, seed=b"warm" + tag.encode()),
                f"library/{tag}-warm-")
    nbatch = max(1, PUSH_MAX_MIB // (IMAGES * LAYERS * LAYER_MIB))
    batches = [rl.make_images(IMAGES, LAYERS, LAYER_MIB * rl.MIB, seed=f"{tag}/{i}".encode())
               for i in range(nbatch)]
    (t, n, pushed), s = timed("push", rl.push_for, front, batches, DURATION, f"library/{tag}-")
    res["push"] = (n / rl.MIB / t, None, 0, per(s, len(pushed) * IMAGES))
    del batches
    (t, n), s = timed("pull", rl.pull_for, front, pushed, DURATION, PULL_COPIES)
    res["pull"] = (n / rl.MIB / t, None, 0, per(s, n / (pushed[0][1][0].bytes)))
    man = f"{front}/v2/library/small/manifests/v1"
    (rate, p99, codes, errs), s = timed("HEAD manifest", rl.hey_head, man, DURATION, CONNS)
    res["HEAD manifest"] = (rate, p99, sum(v for k, v in codes.items() if k != "200") + errs,
                            per(s, sum(codes.values())))
    r, s = timed("GET manifest", rl.wrk_get, man, DURATION, CONNS, {"Accept": rl.ACCEPT})
    res["GET manifest"] = (r[0], r[1], r[2] + r[3], per(s, r[4]))
    r, s = timed("GET 4 KiB blob", rl.wrk_get, f"{front}/v2/library/small/blobs/{blob}",
                 DURATION, CONNS)
    res["GET 4 KiB blob"] = (r[0], r[1], r[2] + r[3], per(s, r[4]))
    for k, v in res.items():
        log(f"{tag}: {k} {v[0]:.0f}" + (f" (p99 {v[1]:.1f} ms)" if v[1] is not None else "")
            + (f", {v[2]} bad answers" if v[2] else ""))
    return res, cpus


LOADS = ["push", "pull", "HEAD manifest", "GET manifest", "GET 4 KiB blob"]


def report(results, meta):
    out = [f"`python3 bench/scaleout.py` — {meta}", "",
           "| setup | push MiB/s | pull MiB/s | HEAD manifest req/s (p99 ms) | "
           "GET manifest req/s (p99 ms) | GET 4 KiB blob req/s (p99 ms) |",
           "|---|---:|---:|---:|---:|---:|"]
    bad = []
    for setup, (res, _) in results.items():
        cells = []
        for load in LOADS:
            v, p99, nbad, _ = res[load]
            cells.append(f"{v:.0f}" if p99 is None else f"{v:.0f} ({p99:.1f})")
            if nbad:
                bad.append(f"{LABELS[setup]}, {load}: {nbad} non-2xx answers or socket errors")
        out.append(f"| {LABELS[setup]} | " + " | ".join(cells) + " |")
    if bad:
        out += ["", "Bad answers: " + "; ".join(bad) + "."]
    out += ["", "CPU during each load, in cores (CPU seconds ÷ the load's wall seconds; "
            f"{os.cpu_count()} cores in all; `rest`: other processes and the kernel; "
            "`client`: this script's threads, hey, wrk):", "",
            "| setup | load | wall s | " + " | ".join(COLUMNS) + " | S3 requests per unit |",
            "|---|---|---:|" + "---:|" * (len(COLUMNS) + 1)]
    for setup, (_, cpus) in results.items():
        for load in LOADS:
            d = cpus[load]
            wall = d["wall"]
            wh = sum(v for k, v in d.items() if k.startswith("wharf"))
            cells = []
            for c in COLUMNS:
                v = wh if c == "wharf" else d.get(c)
                cells.append("–" if v is None else f"{v / wall:.2f}")
            nodes = sorted(k for k in d if k.startswith("wharf:"))
            if len(nodes) > 1:
                cells[0] += " (" + " + ".join(f"{d[k] / wall:.2f}" for k in nodes) + ")"
            s3 = results[setup][0][load][3]
            cells.append("–" if s3 is None else f"{s3:.2f}")
            out.append(f"| {LABELS[setup]} | {load} | {wall:.1f} | " + " | ".join(cells) + " |")
    out += ["", "S3 requests per unit: radosgw's request counter (perf counter rgw.req) over the "
            "load, per client request (rates) or per image pushed or pulled."]
    return "\n".join(out)


def main():
    for tool in ("hey", "wrk", "nginx", "ceph-mon", "radosgw", "/usr/lib/postgresql/15/bin/initdb"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool} (bash scripts/deps.sh bench; scripts/deps.sh test; "
                     "scripts/deps.sh s3)")
    if not os.path.exists(WHARF):
        subprocess.run(["make", "-s", "-C", ROOT], check=True, stdout=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"timed out after {TIMEOUT} s"))
    signal.alarm(TIMEOUT)
    t0, load0 = time.monotonic(), os.getloadavg()
    results = {}
    try:
        if "embedded" in SETUPS:
            log("embedded: SQLite + filesystem")
            n = Node("embedded", {})
            results["embedded"] = run_loads(n.base, {"wharf:a": [n.proc.pid]}, "emb")
            n.stop()
        rest = [s for s in SETUPS if s != "embedded"]
        if rest:
            log("starting PostgreSQL and Ceph")
            dsn, pg_pid = postgres()
            s3, ceph_pids, s3_requests = ceph()
            shared = {"WHARF_DB_DRIVER": "postgres", "WHARF_DB_DSN": dsn,
                      "WHARF_STORAGE_DRIVER": "s3", "WHARF_S3_PREFIX": "bench/", **s3}
            a = Node("node-a", shared)
            key = os.path.join(a.work, "token.key")   # every node signs with node a's key
            shutil.copyfile(os.path.join(a.data, "token.key"), key)
            os.chmod(key, 0o600)
            groups = {"wharf:a": [a.proc.pid], "postgres": [pg_pid], **ceph_pids}
            if "1node" in rest:
                log("1 node: PostgreSQL + radosgw")
                results["1node"] = run_loads(a.base, groups, "one", s3_requests)
            if "1node-nginx" in rest:
                log("1 node behind nginx")
                ng = Nginx([a])
                results["1node-nginx"] = run_loads(ng.base, {**groups, "nginx": [ng.proc.pid]},
                                                   "onenginx", s3_requests)
                ng.stop()
            if "2nodes" in rest:
                log("2 nodes behind nginx")
                b = Node("node-b", {**shared, "WHARF_TOKEN_KEY": key})
                ng = Nginx([a, b])
                results["2nodes"] = run_loads(ng.base, {**groups, "wharf:b": [b.proc.pid],
                                                        "nginx": [ng.proc.pid]}, "two", s3_requests)
                ng.stop()
                b.stop()
            a.stop()
        load1 = os.getloadavg()
        meta = (f"{DURATION} s per rate test, {CONNS} connections (hey for HEAD, "
                f"wrk -t 2 for GET); "
                f"push: batches of {IMAGES} images × {LAYERS} layers × {LAYER_MIB} MiB at once, "
                f"for {DURATION} s or {PUSH_MAX_MIB} MiB; pull: each image by {PULL_COPIES} "
                f"clients at once, for {DURATION} s; load average {load0[0]:.1f} at the start, "
                f"{load1[0]:.1f} at the end; {time.monotonic() - t0:.0f} s in all")
        text = report(results, meta)
        print("\n" + text)
        if os.environ.get("SCALEOUT_OUT"):
            with open(os.environ["SCALEOUT_OUT"], "w") as f:
                f.write(text + "\n")
    finally:
        signal.alarm(0)
        for p in reversed(PROCS):
            rl.stop_proc(p)
        for f in reversed(CLEANUP):
            try:
                f()
            except Exception as e:  # noqa: BLE001 (cleanup goes on)
                log(f"cleanup: {e}")


if __name__ == "__main__":
    main()
