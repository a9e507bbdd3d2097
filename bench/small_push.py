#!/usr/bin/env python3
"""bench/small_push.py — what a push of a small image costs the server, binary against binary.

Two measurements of the fixed cost of a push (images of one 4 KiB layer: two blob uploads
of POST, PATCH and PUT, then the manifest PUT), for the embedded mode (SQLite + filesystem):

  python3 bench/small_push.py cpu BIN [BIN ...]
      PUSHERS clients (4) push images one after the other for DURATION seconds (8) against
      each binary in turn, ROUNDS times (3), after a 2-second warm-up; per image: the
      server's user and system CPU time (every thread, /proc/PID/task/*/stat) and the
      rate. With STRACE=1 the same with `strace -f -c` attached, and the system calls per
      image by name (the rate then says nothing: strace slows every call).
  python3 bench/small_push.py wal BIN [BIN ...]
      IMAGES images (25) pushed by one client with `strace` recording the server's writes
      to its write-ahead log: the WAL frames (pages) and commits per image, and the frames
      per table or index (a frame's page number, from its header, mapped by SQLite's dbstat
      over the database afterwards). strace slows the server, so writes that a busier
      server would group into one commit here commit one by one: an upper bound, and the
      same for every binary.

Data directories go under BENCH_TMP (default /dev/shm: tmpfs, so that the file system's own
work stays out of it). Everything listens on 127.0.0.1, every load is bounded in time, and
every process started is stopped by its PID. Packages: `scripts/deps.sh bench` (strace).
"""
import collections
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import regload as rl  # noqa: E402

PUSHERS = int(os.environ.get("PUSHERS", "4"))
DURATION = float(os.environ.get("DURATION", "8"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
IMAGES = int(os.environ.get("IMAGES", "25"))
STRACE = os.environ.get("STRACE", "0") == "1"
TMP = os.environ.get("BENCH_TMP", "/dev/shm")


class Server:
    def __init__(self, binary):
        self.binary = binary
        self.work = tempfile.mkdtemp(prefix="wharf-small-", dir=TMP)
        self.data = os.path.join(self.work, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, WHARF_LISTEN=f"127.0.0.1:{port}", WHARF_DATA_DIR=self.data,
                   WHARF_ADMIN_PASSWORD=rl.ADMIN[1], WHARF_ACCESS_LOG="false",
                   WHARF_SCAN_DB_UPDATE_INTERVAL="0")
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(self.work, "log"), "wb")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        rl.wait_http(self.base, self.proc, 30, binary)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def strace(pid, args, out):
    """strace attached to every thread of `pid`, once it says so."""
    err = out + ".err"
    with open(err, "w") as ef:
        st = subprocess.Popen(["strace", "-f", "-p", str(pid), "-o", out] + args, stderr=ef)
    deadline = time.monotonic() + 30
    while "attached" not in open(err).read():
        if time.monotonic() > deadline or st.poll() is not None:
            st.kill()
            raise RuntimeError(f"strace did not attach: {open(err).read()[-300:]}")
        time.sleep(0.05)  # polling interval
    return st


def threads_cpu(pid):
    user = system = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a thread that ended meanwhile
        user += int(fields[11])
        system += int(fields[12])
    hz = os.sysconf("SC_CLK_TCK")
    return user / hz, system / hz


def cpu(binaries):
    for rnd in range(ROUNDS):
        for b in binaries:
            srv = Server(b)
            st = None
            try:
                rl.push_loop(srv.base, PUSHERS, 2, "library/warm-")
                if STRACE:
                    st = strace(srv.proc.pid, ["-c"], os.path.join(srv.work, "st"))
                u0, s0 = threads_cpu(srv.proc.pid)
                secs, n = rl.push_loop(srv.base, PUSHERS, DURATION, "library/m-")[:2]
                u1, s1 = threads_cpu(srv.proc.pid)
                n = max(n, 1)
                print(f"round {rnd + 1} {b}: {n} images in {secs:.1f} s ({n / secs:.0f}/s);"
                      f" per image user {1e3 * (u1 - u0) / n:.3f} ms, system"
                      f" {1e3 * (s1 - s0) / n:.3f} ms", flush=True)
                if st:
                    st.send_signal(signal.SIGINT)
                    st.wait(30)
                    rows = []
                    for line in open(os.path.join(srv.work, "st")):
                        f = line.split()
                        if len(f) >= 5 and f[3].isdigit() and f[-1] != "total":
                            rows.append((int(f[3]) / n, f[-1]))
                    rows.sort(reverse=True)
                    print("  system calls per image: " +
                          ", ".join(f"{name} {c:.1f}" for c, name in rows if c >= 0.5) +
                          f"; total {sum(c for c, _ in rows):.1f}", flush=True)
            finally:
                if st and st.poll() is None:
                    st.kill()
                srv.stop()


# a 24-byte WAL frame header written by pwrite64, as `strace -xx -s 24` prints it
FRAME = re.compile(r'pwrite64\(\d+<[^>]*\\x2d\\x77\\x61\\x6c>, "((?:\\x[0-9a-f]{2}){24})", 24,')


def wal(binaries):
    for b in binaries:
        srv = Server(b)
        st = None
        try:
            imgs = rl.make_images(IMAGES + 3, 1, 4096, seed=b"small-push-wal")
            toks = [rl.token(srv.base, f"library/w{i}") for i in range(IMAGES + 3)]
            conn = rl.Conn(srv.base, timeout=60)
            for k in range(3):  # warm-up: first uses of tables and threads
                rl.push_image(conn, imgs[k], f"library/w{k}", "v1", toks[k])
            out = os.path.join(srv.work, "st")
            st = strace(srv.proc.pid, ["-e", "trace=pwrite64", "-y", "-xx", "-s", "24"], out)
            for k in range(3, IMAGES + 3):
                rl.push_image(conn, imgs[k], f"library/w{k}", "v1", toks[k])
            conn.close()
            st.send_signal(signal.SIGINT)
            st.wait(30)
            srv.proc.kill()  # no checkpoint at exit: the WAL keeps the frames' pages
            srv.proc.wait()
            frames = []
            for line in open(out):
                m = FRAME.search(line)
                if m:
                    hdr = bytes.fromhex(m.group(1).replace("\\x", ""))
                    frames.append(struct.unpack(">II", hdr[:8]))  # page number, commit size
            db = os.path.join(srv.data, "wharf.db")
            copy = os.path.join(srv.work, "copy.db")
            shutil.copy(db, copy)
            if os.path.exists(db + "-wal"):
                shutil.copy(db + "-wal", copy + "-wal")
            c = sqlite3.connect(copy)
            try:
                names = dict(c.execute("SELECT pageno, name FROM dbstat"))
            finally:
                c.close()
            commits = sum(1 for _, size in frames if size)
            print(f"{b}: {len(frames) / IMAGES:.1f} WAL frames and {commits / IMAGES:.1f}"
                  f" commits per image ({IMAGES} images)")
            per = collections.Counter(names.get(pg, "(freed since)") for pg, _ in frames)
            print("  " + ", ".join(f"{name} {n / IMAGES:.2f}" for name, n in per.most_common()))
        finally:
            if st and st.poll() is None:
                st.kill()
            srv.stop()


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("cpu", "wal"):
        sys.exit(__doc__)
    binaries = [os.path.abspath(b) for b in sys.argv[2:]]
    (cpu if sys.argv[1] == "cpu" else wal)(binaries)


if __name__ == "__main__":
    main()
