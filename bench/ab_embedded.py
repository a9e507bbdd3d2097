#!/usr/bin/env python3
"""bench/ab_embedded.py — the embedded mode (SQLite + filesystem) of two wharf binaries, A/B.

Shows whether a change made the default single-process mode slower, two ways:

1. Wall clock, interleaved: both binaries run at once (fresh data directories, loopback,
   no access log), and each round measures one then the other, the order swapped every
   round, so that a drift of the machine's load hits both alike:
     - HEAD manifest by tag: hey -z DURATION -c CONNS (anonymous, public project);
     - GET manifest by tag and GET of a 4 KiB blob: wrk -t 2 -c CONNS -d DURATION;
     - push of small images: PUSHERS clients each pushing images of one 4 KiB layer one
       after the other for DURATION seconds (images/s: the fixed cost of an upload);
     - push: IMAGES images of LAYERS layers of LAYER_MIB MiB, all at once (bench/regload.py's
       client: POST, one PATCH, PUT per blob, then the manifest), each round into new
       repositories; then pull: each image by PULL_COPIES clients, all at once.
   Besides the rates: the server's CPU time (utime + stime, /proc/PID/stat) per request or
   per MiB, which other load on the machine disturbs far less than rates, and its file
   read/write system calls per request or MiB (syscr + syscw of /proc/PID/io: read, pread,
   write and the like on files; socket sends and receives and sendfile are not counted).
2. Instructions, deterministic: each binary runs under valgrind's callgrind on its own; the
   counters are zeroed (callgrind_control -z) before and dumped (-d) after each step of the
   same request mix, sent by one client over one keep-alive connection: CG_REQUESTS HEAD
   manifest, as many GET manifest, as many GET 4 KiB blob, one idle second, CG_IMAGES
   pushes of an image of two 1 MiB layers, their pulls, and as many pushes of an image of
   one 4 KiB layer (the fixed cost of an upload, which the large push hides). The mix
   runs three times: the first warms up (a thread's, a file's first use), the other two
   are reported, to show how repeatable each step is. Instructions of every thread of the
   server between the two marks (the background threads included: the idle second shows
   what they cost).
3. System calls, near deterministic: the same mix against each binary (not under valgrind),
   with `strace -f -c` attached to every thread of the server for each step: the kernel's
   share (fsync, file opens, SQLite's writes), which callgrind does not see.

usage: python3 bench/ab_embedded.py [OLD_BIN NEW_BIN]
Without binaries, OLD is built from AB_OLD_REV (default 2e42175^, the commit before the
metadata driver table and the storage contract) in a temporary git worktree (removed at the
end) and NEW is build/release/wharf (built with make if missing).
Environment: ROUNDS (5), BENCH_DURATION (5 s), BENCH_CONNECTIONS (16), IMAGES (4), LAYERS (2),
LAYER_MIB (8), PULL_COPIES (2: each image pulled by that many clients at once), PUSHERS (4),
CG_REQUESTS (500), CG_IMAGES (4), AB_WALL / AB_CALLGRIND / AB_STRACE (1: run that part), AB_TMP (the
data directories' parent, default $TMPDIR or /tmp: on disk, as deployed), AB_TIMEOUT
(1200 s), AB_CG_KEEP (a directory to keep the callgrind dumps in, named old.N and new.N in
the order of the steps, for callgrind_annotate).
Everything listens on 127.0.0.1 only, every load is bounded in time, and every process this
script starts is stopped by its PID on exit.
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import regload as rl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
IMAGES = int(os.environ.get("IMAGES", "4"))
LAYERS = int(os.environ.get("LAYERS", "2"))
LAYER_MIB = int(os.environ.get("LAYER_MIB", "8"))
PUSHERS = int(os.environ.get("PUSHERS", "4"))
PULL_COPIES = int(os.environ.get("PULL_COPIES", "2"))
CG_REQUESTS = int(os.environ.get("CG_REQUESTS", "500"))
CG_IMAGES = int(os.environ.get("CG_IMAGES", "4"))
OLD_REV = os.environ.get("AB_OLD_REV", "2e42175^")
TMP = os.environ.get("AB_TMP") or tempfile.gettempdir()
TOTAL_TIMEOUT = int(os.environ.get("AB_TIMEOUT", "1200"))

PROCS = []       # every server process started, stopped at exit
CLEANUP = []     # callables run at exit, last first


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data, port):
    return dict(os.environ, WHARF_LISTEN=f"127.0.0.1:{port}", WHARF_DATA_DIR=data,
                WHARF_ADMIN_PASSWORD=rl.ADMIN[1], WHARF_ACCESS_LOG="false",
                WHARF_SCAN_DB_UPDATE_INTERVAL="0")


class Server:
    def __init__(self, name, binary, wrap=()):
        self.name, self.binary = name, binary
        self.work = tempfile.mkdtemp(prefix=f"wharf-ab-{name}-", dir=TMP)
        CLEANUP.append(lambda: shutil.rmtree(self.work, ignore_errors=True))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.work, "log"), "wb")
        self.proc = subprocess.Popen(list(wrap) + [binary, "serve"], cwd=self.work,
                                     env=server_env(os.path.join(self.work, "data"), self.port),
                                     stdout=self.log, stderr=self.log)
        PROCS.append(self.proc)
        rl.wait_http(self.base, self.proc, 180 if wrap else 30, f"{name} ({binary})")

    def stop(self):
        rl.stop_proc(self.proc)
        self.log.close()


# ---- the old binary -----------------------------------------------------------------------

def build_old():
    """Builds OLD_REV in a temporary worktree; returns its binary (the worktree is removed
    at exit)."""
    wt = tempfile.mkdtemp(prefix="wharf-ab-old-", dir="/tmp")
    os.rmdir(wt)
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", wt, OLD_REV], check=True,
                   capture_output=True, timeout=120)

    def remove():
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", wt],
                       capture_output=True, timeout=120)
        shutil.rmtree(wt, ignore_errors=True)
        subprocess.run(["git", "-C", ROOT, "worktree", "prune"], capture_output=True, timeout=60)
    CLEANUP.append(remove)
    rev = subprocess.run(["git", "-C", wt, "log", "-1", "--format=%h %s"], capture_output=True,
                         text=True, check=True).stdout.strip()
    print(f"building {rev} in {wt}", file=sys.stderr, flush=True)
    subprocess.run(["make", "-s", "-C", wt], check=True, timeout=1800,
                   stdout=subprocess.DEVNULL)
    return os.path.join(wt, "build", "release", "wharf"), rev


# ---- 1. wall clock, interleaved -------------------------------------------------------------

def one_round(srv, rnd, images, blob):
    """One of each measurement against one server: {metric: (value, server cost)}."""
    pid, out = srv.proc.pid, {}
    man = f"{srv.base}/v2/library/ab/manifests/v1"

    def cost(fn, unit_count):
        c0, io0 = rl.proc_cpu(pid), rl.proc_io(pid)
        r = fn()
        c1, io1 = rl.proc_cpu(pid), rl.proc_io(pid)
        n = max(unit_count(r), 1)
        return r, (c1 - c0) / n, (io1["syscr"] + io1["syscw"] - io0["syscr"] - io0["syscw"]) / n

    r, cpu, sc = cost(lambda: rl.hey_head(man, DURATION, CONNS), lambda r: sum(r[2].values()))
    bad = sum(v for k, v in r[2].items() if k != "200") + r[3]
    out["HEAD manifest"] = (r[0], r[1], cpu * 1e6, sc, bad)
    r, cpu, sc = cost(lambda: rl.wrk_get(man, DURATION, CONNS, {"Accept": rl.ACCEPT}),
                      lambda r: r[4])
    out["GET manifest"] = (r[0], r[1], cpu * 1e6, sc, r[2] + r[3])
    r, cpu, sc = cost(lambda: rl.wrk_get(f"{srv.base}/v2/library/ab/blobs/{blob}", DURATION, CONNS),
                      lambda r: r[4])
    out["GET 4 KiB blob"] = (r[0], r[1], cpu * 1e6, sc, r[2] + r[3])
    r, cpu, sc = cost(lambda: rl.push_loop(srv.base, PUSHERS, DURATION, f"library/s{rnd}-"),
                      lambda r: r[1])
    out["push 4 KiB images"] = (r[1] / r[0], float("nan"), cpu * 1e6, sc, 0)
    prefix = f"library/r{rnd}-"
    r, cpu, sc = cost(lambda: rl.push_all(srv.base, images, prefix), lambda r: r[1] / rl.MIB)
    out["push"] = (r[1] / rl.MIB / r[0], float("nan"), cpu * 1e3, sc, 0)
    r, cpu, sc = cost(lambda: rl.pull_all(srv.base, images, prefix, PULL_COPIES),
                      lambda r: r[1] / rl.MIB)
    out["pull"] = (r[1] / rl.MIB / r[0], float("nan"), cpu * 1e3, sc, 0)
    return out


METRICS = [("HEAD manifest", "req/s", "µs/req"), ("GET manifest", "req/s", "µs/req"),
           ("GET 4 KiB blob", "req/s", "µs/req"), ("push 4 KiB images", "images/s", "µs/image"),
           ("push", "MiB/s", "ms/MiB"),
           ("pull", "MiB/s", "ms/MiB")]


def wall(old_bin, new_bin):
    images = rl.make_images(IMAGES, LAYERS, LAYER_MIB * rl.MIB)
    servers = {"old": Server("old", old_bin), "new": Server("new", new_bin)}
    blobs = {k: rl.small_image(s.base, "library/ab") for k, s in servers.items()}
    res = {k: [] for k in servers}
    for rnd in range(ROUNDS):
        order = ("old", "new") if rnd % 2 == 0 else ("new", "old")
        for k in order:
            r = one_round(servers[k], rnd, images, blobs[k])
            res[k].append(r)
            print(f"round {rnd + 1} {k}: " + "  ".join(
                f"{m} {r[m][0]:.0f} {u} ({r[m][2]:.1f} {cu})" for m, u, cu in METRICS),
                file=sys.stderr, flush=True)
    for s in servers.values():
        s.stop()
    return res


def wall_table(res):
    lines = ["| measurement | old | new | new/old | old range | new range | server CPU old | "
             "server CPU new | new/old | file I/O calls/unit old | new | bad answers |",
             "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for m, unit, cunit in METRICS:
        v = {k: [r[m][0] for r in res[k]] for k in res}
        c = {k: [r[m][2] for r in res[k]] for k in res}
        s = {k: [r[m][3] for r in res[k]] for k in res}
        bad = sum(r[m][4] for k in res for r in res[k])
        med = {k: statistics.median(v[k]) for k in res}
        cmed = {k: statistics.median(c[k]) for k in res}
        lines.append(
            f"| {m} ({unit}) | {med['old']:.0f} | {med['new']:.0f} | {med['new'] / med['old']:.2f} "
            f"| {min(v['old']):.0f}–{max(v['old']):.0f} "
            f"| {min(v['new']):.0f}–{max(v['new']):.0f} "
            f"| {cmed['old']:.2f} {cunit} | {cmed['new']:.2f} {cunit} "
            f"| {cmed['new'] / cmed['old']:.2f} "
            f"| {statistics.median(s['old']):.2f} | {statistics.median(s['new']):.2f} | {bad} |")
    return "\n".join(lines)


# ---- 2. callgrind -------------------------------------------------------------------------

def cg_total(path):
    """The instruction count (Ir) a callgrind dump file totals."""
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def request_mix(srv, marked, reps):
    """The request mix against `srv`, each step between the marks `marked(fn)` sets (it
    runs fn and returns what it measured: a number, or a {name: number} dict): {step:
    [measure per unit of each rep but the first]}. The first rep warms up (a thread's, a
    file's, a cache's first use)."""
    blob = rl.small_image(srv.base, "library/ab")
    images = rl.make_images(CG_IMAGES * reps, 2, rl.MIB, seed=b"cg")
    smalls = rl.make_images(CG_IMAGES * reps, 1, 4096, seed=b"cg-small")
    toks = [rl.token(srv.base, f"library/cg{i}") for i in range(len(images))]
    conn = rl.Conn(srv.base, timeout=300)
    sink = bytearray(rl.MIB)
    man = "/v2/library/ab/manifests/v1"

    def many(method, path, hdrs):
        def f():
            for _ in range(CG_REQUESTS):
                st, _, _ = conn.request(method, path, headers=hdrs, sink=sink)
                if st != 200:
                    raise RuntimeError(f"{method} {path}: {st}")
        return f

    def idle():
        time.sleep(1)  # the window measured: what the idle threads cost in a second

    def per(v, units):
        return {k: x / units for k, x in v.items()} if isinstance(v, dict) else v / units
    res = {}
    try:
        for rep in range(reps):
            for step, fn, units in (
                    ("HEAD manifest", many("HEAD", man, {"Accept": rl.ACCEPT}), CG_REQUESTS),
                    ("GET manifest", many("GET", man, {"Accept": rl.ACCEPT}), CG_REQUESTS),
                    ("GET 4 KiB blob", many("GET", f"/v2/library/ab/blobs/{blob}", {}),
                     CG_REQUESTS)):
                res.setdefault(step, []).append(per(marked(fn), units))
            res.setdefault("idle (1 s)", []).append(marked(idle))
            ks = range(rep * CG_IMAGES, (rep + 1) * CG_IMAGES)

            def push():
                for k in ks:
                    rl.push_image(conn, images[k], f"library/cg{k}", "v1", toks[k])

            def pull():
                for k in ks:
                    rl.pull_image(conn, images[k], f"library/cg{k}", "v1", sink)

            def push_small():
                for k in ks:
                    rl.push_image(conn, smalls[k], f"library/cg{k}", "small", toks[k])
            res.setdefault("push (image of 2 × 1 MiB)", []).append(per(marked(push), CG_IMAGES))
            res.setdefault("pull (image of 2 × 1 MiB)", []).append(per(marked(pull), CG_IMAGES))
            res.setdefault("push (image of one 4 KiB layer)", []).append(
                per(marked(push_small), CG_IMAGES))
    finally:
        conn.close()
    return {k: v[1:] for k, v in res.items()}


def callgrind(binary, name):
    """{step: [Ir per unit, run 1 and 2]} of the request mix against `binary` under callgrind."""
    out_dir = tempfile.mkdtemp(prefix=f"wharf-cg-{name}-", dir=TMP)
    CLEANUP.append(lambda: shutil.rmtree(out_dir, ignore_errors=True))
    cg_file = os.path.join(out_dir, "cg.out")
    srv = Server(f"cg-{name}", binary, ["valgrind", "--tool=callgrind", "--vgdb=yes",
                                        "--compress-strings=no", f"--callgrind-out-file={cg_file}"])
    dumps = [0]

    def marked(fn):
        subprocess.run(["callgrind_control", "-z", str(srv.proc.pid)], check=True,
                       capture_output=True, timeout=120)
        fn()
        subprocess.run(["callgrind_control", "-d", str(srv.proc.pid)], check=True,
                       capture_output=True, timeout=120)
        dumps[0] += 1
        f = f"{cg_file}.{dumps[0]}"
        deadline = time.monotonic() + 60
        while not os.path.exists(f):
            if time.monotonic() > deadline:
                raise RuntimeError(f"callgrind wrote no {f}")
            time.sleep(0.1)  # polling interval
        if os.environ.get("AB_CG_KEEP"):
            os.makedirs(os.environ["AB_CG_KEEP"], exist_ok=True)
            shutil.copy(f, os.path.join(os.environ["AB_CG_KEEP"], f"{name}.{dumps[0]}"))
        return cg_total(f)
    try:
        return request_mix(srv, marked, 3)
    finally:
        srv.stop()


def strace_counts(binary, name):
    """{step: [{syscall: calls per unit}, run 1 and 2]} of the request mix against `binary`,
    counted by `strace -c` attached to every thread of the server for each step."""
    out_dir = tempfile.mkdtemp(prefix=f"wharf-st-{name}-", dir=TMP)
    CLEANUP.append(lambda: shutil.rmtree(out_dir, ignore_errors=True))
    srv = Server(f"st-{name}", binary)
    n = [0]

    def marked(fn):
        n[0] += 1
        out, err = os.path.join(out_dir, f"c{n[0]}"), os.path.join(out_dir, f"e{n[0]}")
        with open(err, "w") as ef:
            # -f with the process's PID: strace attaches to each of its threads
            st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(srv.proc.pid)],
                                  stderr=ef)
        PROCS.append(st)
        try:
            deadline = time.monotonic() + 30
            while "attached" not in open(err).read():  # "Process N attached with M threads"
                if time.monotonic() > deadline or st.poll() is not None:
                    raise RuntimeError(f"strace did not attach: {open(err).read()[-500:]}")
                time.sleep(0.05)  # polling interval
            fn()
        finally:
            st.send_signal(signal.SIGINT)
            st.wait(30)
        calls = {}
        for line in open(out):
            f = line.split()
            if len(f) >= 5 and f[3].isdigit() and f[-1] != "total":
                calls[f[-1]] = int(f[3])
        return calls
    try:
        return request_mix(srv, marked, 2)
    finally:
        srv.stop()


def cg_table(old, new):
    lines = ["| step | old Ir/unit (run 1, run 2) | new Ir/unit (run 1, run 2) | new/old |",
             "|---|---:|---:|---:|"]
    for step in old:
        o, n = old[step], new[step]
        lines.append(f"| {step} | {o[0]:,.0f}, {o[1]:,.0f} | {n[0]:,.0f}, {n[1]:,.0f} "
                     f"| {statistics.mean(n) / statistics.mean(o):.3f} |")
    return "\n".join(lines)


def st_table(old, new):
    lines = ["| step | old syscalls/unit | new syscalls/unit | new/old "
             "| largest changes per unit |",
             "|---|---:|---:|---:|---|"]
    for step in old:
        o, n = old[step][0], new[step][0]
        to, tn = sum(o.values()), sum(n.values())
        ch = sorted(((n.get(k, 0) - o.get(k, 0), k) for k in set(o) | set(n)),
                    key=lambda x: -abs(x[0]))
        ch = ", ".join(f"{k} {d:+.2f}" for d, k in ch[:4] if abs(d) >= 0.05 * max(tn, to) / 20)
        lines.append(f"| {step} | {to:.2f} | {tn:.2f} | {tn / to if to else float('nan'):.2f} "
                     f"| {ch or '–'} |")
    return "\n".join(lines)


def main():
    if len(sys.argv) not in (1, 3):
        sys.exit(__doc__.split("usage: ")[1].split("\n")[0])
    for tool in ("hey", "wrk", "valgrind", "callgrind_control", "strace", "git", "make"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool} (bash scripts/deps.sh bench installs it)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"timed out after {TOTAL_TIMEOUT} s"))
    signal.alarm(TOTAL_TIMEOUT)
    t0 = time.monotonic()
    try:
        if len(sys.argv) == 3:
            old_bin, new_bin = (os.path.abspath(b) for b in sys.argv[1:])
            old_rev = old_bin
        else:
            old_bin, old_rev = build_old()
            new_bin = os.path.join(ROOT, "build", "release", "wharf")
            if not os.path.exists(new_bin):
                subprocess.run(["make", "-s", "-C", ROOT], check=True, stdout=subprocess.DEVNULL)
        new_rev = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                                 capture_output=True, text=True).stdout.strip()
        load0 = os.getloadavg()
        report = [f"old: {old_rev}", f"new: {new_bin} (worktree at {new_rev})", ""]
        if os.environ.get("AB_WALL", "1") == "1":
            res = wall(old_bin, new_bin)
            report += [f"Wall clock: {ROUNDS} rounds, order swapped each round; {DURATION} s per "
                       f"rate test, {CONNS} connections (hey for HEAD, wrk -t 2 for GET); push and "
                       f"pull: {IMAGES} images × {LAYERS} layers × {LAYER_MIB} MiB at once "
                       f"(pulled by "
                       f"{PULL_COPIES} clients each); medians "
                       f"(ranges over the rounds); server CPU per request (rates) or per MiB "
                       f"(push, pull); data directories in {TMP}.", "", wall_table(res), ""]
        if os.environ.get("AB_CALLGRIND", "1") == "1":
            cg_old = callgrind(old_bin, "old")
            cg_new = callgrind(new_bin, "new")
            report += [f"callgrind: instructions of the whole server (every thread) per request "
                       f"({CG_REQUESTS} a step, one keep-alive connection), per image pushed or "
                       f"pulled ({CG_IMAGES} a step), or in one idle second; each step twice, "
                       f"after a warm-up run.", "",
                       cg_table(cg_old, cg_new), ""]
        if os.environ.get("AB_STRACE", "1") == "1":
            st_old = strace_counts(old_bin, "old")
            st_new = strace_counts(new_bin, "new")
            report += ["System calls (`strace -f -c` on every thread of the server, one run "
                       "of the same mix after a warm-up): per request, per image or in one idle "
                       "second.",
                       "", st_table(st_old, st_new), ""]
        load1 = os.getloadavg()
        report.append(f"load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end; "
                      f"{os.cpu_count()} cores; {time.monotonic() - t0:.0f} s in all.")
        print("\n" + "\n".join(report))
    finally:
        signal.alarm(0)
        for p in PROCS:
            rl.stop_proc(p)
        for f in reversed(CLEANUP):
            f()


if __name__ == "__main__":
    main()
