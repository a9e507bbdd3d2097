"""bench/regload.py — the load and bookkeeping bench/scaleout.py and bench/ab_embedded.py share.

  * Images: IMAGES images of LAYERS layers of LAYER_MIB MiB of random bytes each (every
    layer distinct, so that nothing is deduplicated), pushed and pulled by a small client
    of the distribution API (one thread and one keep-alive connection per image): a push
    is, as docker and skopeo do it, a token from the token service, then for each blob a
    POST, one PATCH with the whole blob and a PUT ?digest=, then the manifest; a pull is
    the manifest and each layer read to the end (sizes checked, no digest: the client's
    CPU stays small next to the server's).
  * hey (HEAD; wrk cannot measure HEAD) and wrk (GET) for fixed durations and fixed
    connection counts.
  * CPU seconds from /proc: a process with all its descendants (threads included; the
    children it has reaped count through cutime/cstime), this process with the children it
    waited for (the load generator), and the whole machine (/proc/stat).

Nothing here starts a server; everything connects to the URLs it is given.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import resource
import subprocess
import threading
import time
import urllib.parse

ADMIN = ("admin", "Bench-Admin-Passw0rd")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = OCI_MANIFEST + ", application/vnd.docker.distribution.manifest.v2+json"
MIB = 1024 * 1024
TCK = os.sysconf("SC_CLK_TCK")


# ---- CPU accounting -----------------------------------------------------------------------

def _stat(pid):
    """(ppid, own CPU ticks + reaped children's ticks) of one process, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(x) for x in fields[11:15])


def _table():
    t = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = _stat(int(name))
            if s:
                t[int(name)] = s
    return t


def proc_io(pid):
    """{syscr, syscw, write_bytes, ...} of a process (all its threads, ended ones too)."""
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def proc_cpu(pid):
    """utime + stime of one process (all its threads), seconds."""
    return _stat(pid)[1] / TCK


def machine_ticks():
    """(busy, idle) ticks of the whole machine since boot (iowait counts as idle)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, idle


class Cpu:
    """CPU seconds used by groups of processes between two snapshots.

    groups: {name: [pid, ...]}, each pid counted with all its descendants. The group
    "client" is this process (all its threads) and the children it has waited for (hey,
    wrk); "rest" is what the machine's other processes and the kernel used besides; "idle"
    is the cores' idle time. All as seconds; divided by the wall time they are cores."""

    def __init__(self, groups):
        self.groups = groups

    def snap(self):
        t = _table()
        kids = {}
        for pid, (ppid, _) in t.items():
            kids.setdefault(ppid, []).append(pid)
        out = {}
        for name, roots in self.groups.items():
            total, seen, stack = 0, set(), list(roots)
            while stack:
                p = stack.pop()
                if p in seen or p not in t:
                    continue
                seen.add(p)
                total += t[p][1]
                stack.extend(kids.get(p, []))
            out[name] = total / TCK
        me = resource.getrusage(resource.RUSAGE_SELF)
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["client"] = me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime
        busy, idle = machine_ticks()
        out["_busy"], out["idle"] = busy / TCK, idle / TCK
        out["_t"] = time.monotonic()
        return out

    @staticmethod
    def delta(a, b):
        d = {k: b[k] - a[k] for k in a}
        known = sum(v for k, v in d.items() if not k.startswith("_") and k != "idle")
        d["rest"] = max(0.0, d["_busy"] - known)
        d["wall"] = d.pop("_t")
        d.pop("_busy")
        return d


def measure(cpu, fn, *args, **kw):
    """Runs fn under a CPU snapshot pair: (fn's result, the CPU delta)."""
    a = cpu.snap()
    r = fn(*args, **kw)
    return r, Cpu.delta(a, cpu.snap())


# ---- hey and wrk --------------------------------------------------------------------------

def hey_head(url, duration, conns, headers=None):
    """hey -z DURATION -c CONNS -m HEAD: (req/s, p99 ms, {status: count}, errors)."""
    argv = ["hey", "-z", f"{duration}s", "-c", str(conns), "-m", "HEAD"]
    for k, v in (headers or {"Accept": ACCEPT}).items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"hey printed no rate: {out[-500:]}")
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    codes = {k: int(v) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = 0
    if "Error distribution" in out:
        tail = out.split("Error distribution", 1)[1]
        errors = sum(int(x) for x in re.findall(r"^\s+\[(\d+)\]", tail, re.M))
    return float(m.group(1)), float(p99.group(1)) * 1000 if p99 else float("nan"), codes, errors


def wrk_get(url, duration, conns, headers=None):
    """wrk -t 2 -c CONNS -d DURATION --latency: (req/s, p99 ms, non-2xx count, socket errors,
    requests)."""
    argv = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{duration}s", "--latency"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no rate: {out[-500:]}")
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    ms = float("nan")
    if p99:
        ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return (float(m.group(1)), ms, int(non2xx.group(1)) if non2xx else 0,
            sum(int(x) for x in errs.groups()) if errs else 0, int(total.group(1)) if total else 0)


# ---- a small registry client --------------------------------------------------------------

class Conn:
    """One keep-alive HTTP/1.1 connection to a base URL (http://host:port)."""

    def __init__(self, base, timeout=120):
        u = urllib.parse.urlsplit(base)
        self.base, self.host, self.port = base, u.hostname, u.port
        self.timeout = timeout
        self.c = None

    def request(self, method, path, body=None, headers=None, sink=None):
        """(status, headers, body bytes); with `sink` (a bytearray) the body is read into it
        in pieces and only its length is returned as body."""
        if path.startswith("http://") or path.startswith("https://"):
            u = urllib.parse.urlsplit(path)
            path = u.path + ("?" + u.query if u.query else "")
        for attempt in (0, 1):
            reused = self.c is not None
            if not reused:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                if sink is None:
                    data = r.read()
                else:
                    data, mv = 0, memoryview(sink)
                    while True:
                        n = r.readinto(mv)
                        if not n:
                            break
                        data += n
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, r, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a kept-alive connection the server (or nginx) closed between two requests
                self.close()
                if attempt or not reused:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def check(status, want, what, resp=None, body=b""):
    if status != want:
        raise RuntimeError(f"{what}: HTTP {status}, wanted {want}: {body[:300]!r}")


def token(base, repo, actions="pull,push", auth=ADMIN):
    """A bearer token for `repo` from the token service the registry's challenge names."""
    c = Conn(base)
    try:
        st, r, _ = c.request("GET", "/v2/")
        chal = r.getheader("WWW-Authenticate", "")
        realm = re.search(r'realm="([^"]+)"', chal)
        service = re.search(r'service="([^"]+)"', chal)
        if st != 401 or not realm:
            raise RuntimeError(f"GET /v2/: {st}, no Bearer challenge ({chal!r})")
        q = urllib.parse.urlencode({"service": service.group(1) if service else "wharf",
                                    "scope": f"repository:{repo}:{actions}"})
        basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        for _ in range(20):
            st, r, body = c.request("GET", f"{urllib.parse.urlsplit(realm.group(1)).path}?{q}",
                                    headers={"Authorization": f"Basic {basic}"})
            if st != 429:
                break
            # the server's password checks are all busy: wait as it says, then ask again
            time.sleep(min(float(r.getheader("Retry-After", "1") or 1), 5.0))
        check(st, 200, "token", body=body)
        return json.loads(body)["token"]
    finally:
        c.close()


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Image:
    """Layers and a config; the manifest is made once."""

    def __init__(self, layers):
        self.layers = [(digest_of(b), b) for b in layers]
        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers", "diff_ids": [d for d, _ in self.layers]},
                          "config": {}}).encode()
        self.config = (digest_of(cfg), cfg)
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.config[0], "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": d, "size": len(b)} for d, b in self.layers]}).encode()
        self.bytes = sum(len(b) for _, b in self.layers) + len(cfg) + len(self.manifest)


def make_images(n, layers, layer_bytes, seed=b""):
    """n images of `layers` distinct random layers of `layer_bytes` each (one random buffer,
    each layer's first 32 bytes its own)."""
    base = os.urandom(layer_bytes)
    out = []
    for i in range(n):
        ls = []
        for j in range(layers):
            head = hashlib.sha256(seed + f"{i}/{j}".encode() + base[:64]).digest()
            ls.append(head + base[len(head):])
        out.append(Image(ls))
    return out


def push_image(conn, img, repo, tag, tok):
    """Pushes one image through `conn` with the bearer token `tok`."""
    auth = {"Authorization": f"Bearer {tok}"}
    for d, data in img.layers + [img.config]:
        st, r, body = conn.request("POST", f"/v2/{repo}/blobs/uploads/", b"",
                                   {**auth, "Content-Length": "0"})
        check(st, 202, f"POST upload {repo}", body=body)
        loc = r.getheader("Location")
        st, r, body = conn.request("PATCH", loc, memoryview(data),
                                   {**auth, "Content-Type": "application/octet-stream",
                                    "Content-Length": str(len(data))})
        check(st, 202, f"PATCH {repo}", body=body)
        loc = r.getheader("Location")
        sep = "&" if "?" in loc else "?"
        st, _, body = conn.request("PUT", f"{loc}{sep}digest={d}", b"",
                                   {**auth, "Content-Length": "0"})
        check(st, 201, f"PUT blob {repo}", body=body)
    st, _, body = conn.request("PUT", f"/v2/{repo}/manifests/{tag}", img.manifest,
                               {**auth, "Content-Type": OCI_MANIFEST})
    check(st, 201, f"PUT manifest {repo}:{tag}", body=body)


def pull_image(conn, img, repo, tag, sink, auth=None):
    """Pulls one image: its manifest, its config and each layer read to the end. Bytes."""
    h = dict(auth or {})
    st, _, body = conn.request("GET", f"/v2/{repo}/manifests/{tag}",
                               headers={**h, "Accept": ACCEPT})
    check(st, 200, f"GET manifest {repo}:{tag}", body=body)
    got = len(body)
    for d, data in [img.config] + img.layers:
        st, _, n = conn.request("GET", f"/v2/{repo}/blobs/{d}", headers=h, sink=sink)
        if st != 200 or n != len(data):
            raise RuntimeError(f"GET blob {repo}@{d}: HTTP {st}, {n} bytes of {len(data)}")
        got += n
    return got


def _parallel(jobs):
    """Runs the callables at once, one thread each; the first exception is raised."""
    errors = []

    def run(f):
        try:
            f()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    ts = [threading.Thread(target=run, args=(f,), daemon=True) for f in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def push_all(base, images, repo_prefix, tag="v1"):
    """Pushes every image at once (a thread and a connection each) into
    `{repo_prefix}{i}`: (seconds, bytes). The tokens are fetched first, outside the timing
    (one argon2id password check each, as a client logging in once)."""
    toks = [token(base, f"{repo_prefix}{i}") for i in range(len(images))]
    conns = [Conn(base) for _ in images]

    def job(i):
        return lambda: push_image(conns[i], images[i], f"{repo_prefix}{i}", tag, toks[i])
    t = time.monotonic()
    try:
        _parallel([job(i) for i in range(len(images))])
    finally:
        for c in conns:
            c.close()
    return time.monotonic() - t, sum(i.bytes for i in images)


def pull_all(base, images, repo_prefix, copies=1, tag="v1"):
    """Pulls every image `copies` times at once (a thread and a connection each), anonymous
    (the project is public): (seconds, bytes)."""
    n = len(images) * copies
    conns = [Conn(base) for _ in range(n)]
    sinks = [bytearray(MIB) for _ in range(n)]
    got = [0] * n

    def job(k):
        i = k % len(images)

        def f():
            got[k] = pull_image(conns[k], images[i], f"{repo_prefix}{i}", tag, sinks[k])
        return f
    t = time.monotonic()
    try:
        _parallel([job(k) for k in range(n)])
    finally:
        for c in conns:
            c.close()
    return time.monotonic() - t, sum(got)


def push_for(base, batches, seconds, repo_prefix):
    """Pushes batch after batch (each a list of images, pushed all at once by push_all into
    repositories of its own) until `seconds` have passed or the batches are used up:
    (seconds, bytes, [(repo prefix, images) pushed])."""
    t, n, done = 0.0, 0, []
    for i, batch in enumerate(batches):
        if t >= seconds:
            break
        dt, dn = push_all(base, batch, f"{repo_prefix}{i}-")
        t, n = t + dt, n + dn
        done.append((f"{repo_prefix}{i}-", batch))
    return t, n, done


def pull_for(base, pushed, seconds, copies):
    """Pulls the batches `pushed` (push_for's list), each by pull_all with `copies`
    clients an image, round after round until `seconds` have passed: (seconds, bytes)."""
    t, n, i = 0.0, 0, 0
    while t < seconds:
        prefix, batch = pushed[i % len(pushed)]
        dt, dn = pull_all(base, batch, prefix, copies)
        t, n, i = t + dt, n + dn, i + 1
    return t, n


def push_loop(base, clients, duration, repo_prefix):
    """`clients` threads each pushing images of one 4 KiB random layer, one after the
    other, into a repository of its own (`{repo_prefix}{i}`, tags n0, n1, ...) for
    `duration` seconds: (seconds, images pushed). Tokens are fetched first, outside the
    timing."""
    toks = [token(base, f"{repo_prefix}{i}") for i in range(clients)]
    conns = [Conn(base) for _ in range(clients)]
    counts = [0] * clients
    end = time.monotonic() + duration

    def job(i):
        def f():
            while time.monotonic() < end:
                img = Image([os.urandom(4096)])
                push_image(conns[i], img, f"{repo_prefix}{i}", f"n{counts[i]}", toks[i])
                counts[i] += 1
        return f
    t = time.monotonic()
    try:
        _parallel([job(i) for i in range(clients)])
    finally:
        for c in conns:
            c.close()
    return time.monotonic() - t, sum(counts)


def small_image(base, repo, tag="v1"):
    """Pushes a one-layer image whose layer is 4 KiB of random bytes: returns that layer's
    digest (the 4 KiB blob the request-rate tests read)."""
    img = Image([os.urandom(4096)])
    c = Conn(base)
    try:
        push_image(c, img, repo, tag, token(base, repo))
    finally:
        c.close()
    return img.layers[0][0]


def wait_http(base, proc=None, seconds=30, what="server"):
    """Polls GET /v2/ until the server answers at all (any status), `seconds` at most."""
    deadline = time.monotonic() + seconds
    while True:
        c = Conn(base, timeout=2)
        try:
            c.request("GET", "/v2/")
            return
        except OSError:
            pass
        finally:
            c.close()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer at {base} within {seconds} s")
        time.sleep(0.1)  # polling interval


def stop_proc(proc, seconds=30):
    """TERM the process this bench started, KILL after `seconds`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
