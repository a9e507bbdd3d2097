"""Fixtures of the end-to-end suite: the real `wharf serve` on a loopback
port with a temp data dir, real clients (skopeo, podman) with their own state,
and test images built without a container engine.

Environment:
  WHARF_BIN     the binary under test (default <repo>/build/release/wharf)
  WHARF_E2E_KEEP=1  keep temp dirs (data dirs, logs) after the run
"""

import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import ocilayout
from regclient import ADMIN_PASSWORD, ADMIN_USER, CREDS, Registry

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / "tests" / ".cache"
START_TIMEOUT = 20.0

# Servers started during the current test, so that their logs can be
# attached to its report when it fails.
_servers_in_test = []
_session_server = None


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow test (real Debian image); runs last")


def pytest_collection_modifyitems(session, config, items):
    # Slow tests run last, so that a quick failure shows up first.
    items.sort(key=lambda it: 1 if it.get_closest_marker("slow") else 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    seen = set()
    servers = list(_servers_in_test)
    if _session_server is not None:
        servers.insert(0, _session_server)
    for srv in servers:
        if id(srv) in seen:
            continue
        seen.add(id(srv))
        text = srv.log_since_mark() if srv is _session_server else srv.log_text()
        rep.sections.append((f"wharf stderr ({srv.name}, {srv.data_dir})", text[-20000:]))


@pytest.fixture(autouse=True)
def _track_servers():
    _servers_in_test.clear()
    if _session_server is not None:
        _session_server.mark_log()
    yield
    _servers_in_test.clear()


# ---------------------------------------------------------------- waiting

POLL_INTERVAL = 0.02


def polling(cond, timeout: float, what: str, interval: float = POLL_INTERVAL):
    """Iterate while `cond()` is false, `interval` seconds apart; stop as soon
    as it is true.  After `timeout` seconds the test fails, naming `what`.

    For loops that must act between checks (keep an upload busy, send the
    next chunk of a slow body); wait_until() is the plain form."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        yield
        time.sleep(interval)


def wait_until(cond, timeout: float, what: str, interval: float = POLL_INTERVAL):
    """Poll `cond()` until it returns a true value and return that value; fail
    the test, naming `what`, if it has not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _tcp_queues() -> dict:
    """{(local port, remote port): (tx queue, rx queue)} of the IPv4 TCP
    sockets on 127.0.0.1, from /proc/net/tcp."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if not (local.startswith("0100007F:") and remote.startswith("0100007F:")):
                continue
            tx, rx = (int(q, 16) for q in queues.split(":"))
            out[(int(local[9:], 16), int(remote[9:], 16))] = (tx, rx)
    return out


def unread_by_server(sock: socket.socket) -> int:
    """Bytes a client sent on `sock` that the server has not read yet: what
    waits in the client's send queue and in the server socket's receive
    queue (0 once the server has read everything sent so far)."""
    mine, peer = sock.getsockname()[1], sock.getpeername()[1]
    q = _tcp_queues()
    if (mine, peer) not in q:
        raise AssertionError(f"no TCP socket 127.0.0.1:{mine} -> {peer} in /proc/net/tcp")
    client_tx = q[(mine, peer)][0]
    server_rx = q.get((peer, mine), (0, 0))[1]  # gone: the server closed it
    return client_tx + server_rx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_server_env(env: dict, data_dir: str):
    """With WHARF_TEST_PG_DSN set (a PostgreSQL database, e.g. from scripts/pg-up.sh), a
    server keeps its metadata in a schema of its own there (one per data dir, so a restart
    finds it again) instead of data_dir/wharf.db. Opt-in, to run suites on PostgreSQL; a test
    that reads wharf.db itself cannot pass that way."""
    dsn = os.environ.get("WHARF_TEST_PG_DSN")
    if not dsn or "WHARF_DB_DRIVER" in env:
        return
    import hashlib

    schema = "e2e_" + hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:16]
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c",
                    f"SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS {schema}"],
                   check=True, stdout=subprocess.DEVNULL)
    sep = "&" if "?" in dsn else "?"
    env["WHARF_DB_DRIVER"] = "postgres"
    env["WHARF_DB_DSN"] = f"{dsn}{sep}options=-csearch_path%3D{schema}"


class WharfServer:
    """One `wharf serve` process; it can be stopped, killed and restarted on
    the same data dir."""

    def __init__(self, binary: str, data_dir: str, log_path: str, env: dict = None, name="wharf"):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_env = dict(env or {})
        pg_server_env(self.extra_env, data_dir)
        self.name = name
        self.proc = None
        self.port = None
        self._log = None
        self._mark = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        scheme = "https" if self.extra_env.get("WHARF_TLS_CERT") else "http"
        return f"{scheme}://{self.host}"

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            {
                "WHARF_LISTEN": self.host,
                "WHARF_DATA_DIR": self.data_dir,
                "WHARF_ADMIN_PASSWORD": ADMIN_PASSWORD,
                # hermetic: no background vulnerability database download
                # (a test that wants one sets the interval and a local feed)
                "WHARF_SCAN_DB_UPDATE_INTERVAL": "0",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, port: int = None):
        """Start the process and wait until GET /v2/ answers 200."""
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = port or free_port()
        self._log = open(self.log_path, "ab")
        self._log.write(f"---- start on {self.host}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [self.binary, "serve"],
            env=self.env(),
            stdout=self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            cwd=os.path.dirname(self.data_dir),
        )
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reap()
                raise RuntimeError(
                    f"wharf serve exited with {self.proc.returncode} during start-up:\n"
                    + self.log_text()[-4000:]
                )
            try:
                r = requests.get(self.url + "/v2/", timeout=2, auth=(ADMIN_USER, ADMIN_PASSWORD),
                                 verify=self.extra_env.get("WHARF_TLS_CERT", True))
                if r.status_code == 200:
                    return self
                last = f"GET /v2/ -> {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(
            f"wharf serve not ready after {START_TIMEOUT}s (last: {last}):\n" + self.log_text()[-4000:]
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; return the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"wharf did not exit within {timeout}s of SIGTERM")
        return self._reap()

    def kill(self) -> int:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self._reap()

    def _reap(self) -> int:
        rc = self.proc.returncode
        if self._log:
            self._log.write(f"---- exited with {rc}\n".encode())
            self._log.close()
            self._log = None
        return rc

    def restart(self, same_port: bool = True):
        if self.running():
            self.stop()
        port = self.port if same_port else None
        try:
            return self.start(port)
        except RuntimeError:
            if not same_port:
                raise
            # The old port may linger in TIME_WAIT on some kernels; any port will do.
            return self.start(None)

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def mark_log(self):
        try:
            self._mark = os.path.getsize(self.log_path)
        except OSError:
            self._mark = 0

    def log_since_mark(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._mark)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def registry(self, anonymous: bool = False) -> Registry:
        return Registry(self.url, auth=None if anonymous else (ADMIN_USER, ADMIN_PASSWORD))

    def cli(self, *args, check=False, timeout=30) -> subprocess.CompletedProcess:
        """Run `wharf ARGS...` against this server's data dir."""
        env = dict(os.environ)
        env["WHARF_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        env.update(self.extra_env)
        env["WHARF_DATA_DIR"] = self.data_dir
        return subprocess.run(
            [self.binary, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )


@pytest.fixture(scope="session")
def wharf_bin() -> str:
    path = os.environ.get("WHARF_BIN") or str(REPO_ROOT / "build" / "release" / "wharf")
    if not os.access(path, os.X_OK):
        pytest.fail(f"wharf binary not found at {path}: build it (make) or set WHARF_BIN", pytrace=False)
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def session_tmp():
    d = tempfile.mkdtemp(prefix="wharf-e2e-")
    yield Path(d)
    if os.environ.get("WHARF_E2E_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)


class ServerFactory:
    """Starts extra servers with their own data dir and environment."""

    def __init__(self, binary: str, root: Path):
        self.binary = binary
        self.root = root
        self.servers = []

    def new(self, env: dict = None, data_dir: str = None, name: str = None, start=True) -> WharfServer:
        n = len(self.servers)
        base = self.root / f"srv{n}-{os.getpid()}-{time.monotonic_ns()}"
        base.mkdir(parents=True)
        srv = WharfServer(
            self.binary,
            data_dir or str(base / "data"),
            str(base / "stderr.log"),
            env=env,
            name=name or f"extra-{n}",
        )
        self.servers.append(srv)
        _servers_in_test.append(srv)
        if start:
            srv.start()
        return srv

    def cleanup(self) -> list:
        """Stop every server still running; return the problems seen."""
        problems = []
        for srv in self.servers:
            if srv.running():
                try:
                    rc = srv.stop()
                except AssertionError as e:
                    problems.append(f"{srv.name}: {e}")
                    continue
                if rc != 0:
                    problems.append(f"{srv.name}: exit status {rc} after SIGTERM")
            problems += sanitizer_reports(srv)
        return problems


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(srv) -> list:
    """Reports of a sanitizer build (make BUILD=check) in a server's log."""
    text = srv.log_text()
    return [f"{srv.name}: {m} in its log" for m in SANITIZER_MARKS if m in text]


@pytest.fixture(scope="session")
def server(wharf_bin, session_tmp):
    """The shared server of the run."""
    global _session_server
    base = session_tmp / "main"
    base.mkdir()
    srv = WharfServer(wharf_bin, str(base / "data"), str(base / "stderr.log"), name="session")
    try:
        srv.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    _session_server = srv
    yield srv
    _session_server = None
    problems = []
    if srv.running():
        rc = srv.stop()
        if rc != 0:
            problems.append(f"exit status {rc} after SIGTERM")
    problems += sanitizer_reports(srv)
    if problems:
        pytest.fail("session server: " + "; ".join(problems) + "\n" + srv.log_text()[-6000:],
                    pytrace=False)


@pytest.fixture
def registry(server) -> Registry:
    if not server.running():
        rc = server.proc.returncode if server.proc else None
        pytest.fail(f"the session server is not running (exit status {rc}; it stopped during "
                    "an earlier test):\n" + server.log_text()[-4000:], pytrace=False)
    return server.registry()


@pytest.fixture
def servers(wharf_bin, tmp_path):
    """Factory for servers private to one test; all are killed at its end."""
    f = ServerFactory(wharf_bin, tmp_path)
    yield f
    problems = f.cleanup()
    if problems:
        pytest.fail("; ".join(problems) + "\n"
                    + "\n".join(s.log_text()[-4000:] for s in f.servers), pytrace=False)


@pytest.fixture
def unique(request) -> str:
    """A repository-safe name unique to this test and run."""
    base = request.node.name.lower()
    base = "".join(c if c.isalnum() else "-" for c in base).strip("-")[:40]
    return f"{base}-{os.urandom(3).hex()}"


# ---------------------------------------------------------------- clients


class Tool:
    """Runs a client tool with a private HOME, XDG dirs and blob-info cache.

    As root, containers/image keeps the blob-info cache in
    /var/lib/containers/cache and turns later pushes of known blobs into
    cross-repository mounts.  Declaring the process rootless through
    _CONTAINERS_ROOTLESS_UID makes it use $XDG_DATA_HOME/containers/cache
    instead, which is private to each Tool, so pushes really upload.
    """

    def __init__(self, root: Path):
        self.root = root
        for d in ("home", "data", "config", "run", "tmp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "run", 0o700)

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            {
                "HOME": str(self.root / "home"),
                "XDG_DATA_HOME": str(self.root / "data"),
                "XDG_CONFIG_HOME": str(self.root / "config"),
                "XDG_RUNTIME_DIR": str(self.root / "run"),
                "TMPDIR": str(self.root / "tmp"),
                "_CONTAINERS_ROOTLESS_UID": "1000",
            }
        )
        return env

    @property
    def blob_info_cache(self) -> Path:
        return self.root / "data" / "containers" / "cache" / "blob-info-cache-v1.boltdb"

    def run(self, argv, timeout=300, check=True, env=None) -> subprocess.CompletedProcess:
        e = self.env()
        if env:
            e.update(env)
        p = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {p.returncode}\nstdout:\n{p.stdout[-4000:]}\n"
                f"stderr:\n{p.stderr[-6000:]}"
            )
        return p

    def popen(self, argv) -> subprocess.Popen:
        return subprocess.Popen(
            argv, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


class Skopeo(Tool):
    def copy(self, src, dst, *extra, timeout=300, check=True):
        return self.run(self.copy_argv(src, dst, *extra), timeout=timeout, check=check)

    def copy_argv(self, src, dst, *extra):
        creds = []
        if src.startswith("docker://"):
            creds += ["--src-creds", CREDS]
        if dst.startswith("docker://"):
            creds += ["--dest-creds", CREDS]
        return ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", *creds,
                *extra, src, dst]

    def inspect(self, ref, *extra, raw=False):
        argv = ["skopeo", "inspect", "--tls-verify=false", "--creds", CREDS, *extra]
        if raw:
            argv.append("--raw")
        p = self.run(argv + [ref], timeout=120)
        return p.stdout if raw else json.loads(p.stdout)


class Podman(Tool):
    """podman as root without a daemon, with storage in a temp dir."""

    def __init__(self, root: Path):
        super().__init__(root)
        # podman refuses a run root longer than 50 characters, so the
        # storage lives in a short temp dir of its own.
        self.storage = Path(tempfile.mkdtemp(prefix="wpod-", dir="/tmp"))

    def cleanup(self):
        shutil.rmtree(self.storage, ignore_errors=True)

    def base(self):
        s = self.storage
        return [
            "podman",
            "--root", str(s / "root"),
            "--runroot", str(s / "runroot"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "none",
            "--tmpdir", str(self.root / "tmp"),
        ]

    def __call__(self, *args, timeout=300, check=True):
        return self.run(self.base() + list(args), timeout=timeout, check=check)


@pytest.fixture
def skopeo(tmp_path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo")


@pytest.fixture
def podman(tmp_path):
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed", pytrace=False)
    p = Podman(tmp_path / "podman")
    yield p
    p.cleanup()


# ---------------------------------------------------------------- images


@pytest.fixture
def image_layout(tmp_path):
    """A layout with one random three-layer image tagged `v1`."""
    path = tmp_path / "src-layout"
    layout = ocilayout.Layout(str(path))
    img = ocilayout.write_image(layout, ocilayout.make_image(layers=3), "v1")
    return str(path), img


@pytest.fixture
def multiarch_layout(tmp_path):
    """A layout with an image index `multi` of an amd64 and an arm64 image."""
    path = tmp_path / "multi-layout"
    layout = ocilayout.Layout(str(path))
    idx = ocilayout.make_index(
        [
            ocilayout.make_image(layers=2, arch="amd64"),
            ocilayout.make_image(layers=2, arch="arm64"),
        ]
    )
    ocilayout.write_index(layout, idx, "multi")
    return str(path), idx


# ---------------------------------------------------------------- Debian images
#
# One builder and one cache (tests/.cache/) for every suite that needs a Debian
# image.  Two images:
#
#  - pinned_bookworm: the files of a bookworm minbase root file system that the
#    scanner reads, committed under tests/data/images/bookworm-minbase/ (see its
#    PROVENANCE.md).  Built here, with no network, into a deterministic
#    one-layer OCI layout and a docker-archive.  Default tests use this one and
#    may assert exact results.
#  - real_bookworm: a whole minbase root file system built by mmdebstrap from
#    today's Debian mirror.  Only tests marked `slow` may use it (it needs the
#    network), and they compute what they expect from the image's own files.

PINNED_BOOKWORM = REPO_ROOT / "tests" / "data" / "images" / "bookworm-minbase" / "rootfs"
BOOKWORM_TAG = "bookworm"
ARCHIVE_REF = "test/bookworm:1"
REAL_BOOKWORM_KEY = "bookworm-real-v2"
# Bump when the bytes the builder writes for the same files change.
PINNED_BUILDER_VERSION = "1"
# Every entry of the pinned layer gets this owner and time (2026-12-02, when it was pinned).
PINNED_MTIME = 1796245484
# The paths (relative to a root file system) the scanner reads in a Debian image.
SCANNED_DEBIAN_FILES = ("etc/debian_version", "etc/os-release", "usr/lib/os-release",
                        "var/lib/dpkg/status")


@dataclass
class DebianImage:
    """A Debian image ready for the scanner and the registry."""

    layout: Path  # OCI image layout; the image is tagged BOOKWORM_TAG
    rootfs: Path  # a directory with the image's SCANNED_DEBIAN_FILES
    archive: Path = None  # a `docker save` archive of the same image (ARCHIVE_REF)

    @property
    def oci(self) -> str:
        return f"oci:{self.layout}:{BOOKWORM_TAG}"

    @property
    def docker_archive(self) -> str:
        return f"docker-archive:{self.archive}"

    @property
    def manifest_digest(self) -> str:
        return ocilayout.layout_ref(str(self.layout), BOOKWORM_TAG)["digest"]

    def read(self, rel: str) -> str:
        return (self.rootfs / rel).read_text()


def _run_logged(argv, log, timeout):
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(argv) + "\n").encode())
        f.flush()
        return subprocess.run(argv, stdout=f, stderr=f, timeout=timeout).returncode


def _build_failed(what: str, log: Path):
    pytest.fail(f"{what} failed:\n" + log.read_text(errors="replace")[-3000:], pytrace=False)


def cached_build(cache: Path, build):
    """Run `build(cache)` once for a cache directory, under a lock shared by
    concurrent test processes; later calls find the `complete` marker and
    build nothing.  Delete the directory to rebuild."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if not (cache / "complete").exists():
            build(cache)
            (cache / "complete").write_text("ok\n")
    return cache


def _tree_entries(root: Path):
    """(relative path, TarInfo type, bytes or link target) for a directory
    tree, parents first, in a fixed order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        if str(rel_dir) != ".":
            out.append((rel_dir.as_posix(), tarfile.DIRTYPE, b""))
        for name in sorted(filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]):
            p = Path(dirpath) / name
            rel = (rel_dir / name).as_posix()
            if p.is_symlink():
                out.append((rel, tarfile.SYMTYPE, os.readlink(p).encode()))
            elif p.is_file():
                out.append((rel, tarfile.REGTYPE, p.read_bytes()))
    return out


def deterministic_tar(root: Path) -> bytes:
    """An uncompressed tar of a directory tree whose bytes depend only on the
    tree's names and contents (root owner, fixed modes and time)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for rel, kind, data in _tree_entries(root):
            ti = tarfile.TarInfo(rel)
            ti.type = kind
            ti.mtime = PINNED_MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            if kind == tarfile.DIRTYPE:
                ti.mode = 0o755
                tf.addfile(ti)
            elif kind == tarfile.SYMTYPE:
                ti.mode = 0o777
                ti.linkname = data.decode()
                tf.addfile(ti)
            else:
                ti.mode = 0o644
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def write_one_layer_layout(path: Path, raw_tar: bytes, created_by: str):
    """An OCI layout holding one amd64 image of one gzip layer, tagged BOOKWORM_TAG."""
    gz = gzip.compress(raw_tar, compresslevel=9, mtime=0)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(PINNED_MTIME))
    config = ocilayout.canonical_json({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": [ocilayout.sha256_digest(raw_tar)]},
        "history": [{"created": created, "created_by": created_by}],
    })
    layer_desc = ocilayout.descriptor(ocilayout.MT_LAYER_GZIP, gz)
    config_desc = ocilayout.descriptor(ocilayout.MT_CONFIG, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": ocilayout.MT_MANIFEST,
                           "config": config_desc, "layers": [layer_desc]}, indent=2).encode()
    layout = ocilayout.Layout(str(path))
    layout.add_blob(gz)
    layout.add_blob(config)
    layout.add_blob(manifest)
    layout.tag(ocilayout.descriptor(ocilayout.MT_MANIFEST, manifest), BOOKWORM_TAG)


def write_docker_archive(layout: Path, archive: Path, log: Path):
    """A `docker save` archive of the layout's image, written by skopeo."""
    tmp = archive.with_name(archive.name + ".tmp")
    tmp.unlink(missing_ok=True)
    argv = ["skopeo", "copy", "--quiet", f"oci:{layout}:{BOOKWORM_TAG}",
            f"docker-archive:{tmp}:{ARCHIVE_REF}"]
    if _run_logged(argv, log, 600) != 0:
        _build_failed(" ".join(argv), log)
    tmp.rename(archive)


def pinned_tree_key(root: Path) -> str:
    """A key for the pinned files: any change to them gives a new cache entry."""
    h = hashlib.sha256(f"builder {PINNED_BUILDER_VERSION}\n".encode())
    for rel, kind, data in _tree_entries(root):
        h.update(f"{rel}\0{kind!r}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def build_pinned_bookworm(root: Path = PINNED_BOOKWORM) -> DebianImage:
    """The pinned image as an OCI layout and a docker-archive (no network)."""
    cache = CACHE_DIR / f"bookworm-pinned-{pinned_tree_key(root)}"

    def build(d: Path):
        shutil.rmtree(d / "layout", ignore_errors=True)
        write_one_layer_layout(d / "layout", deterministic_tar(root),
                               "files pinned in tests/data/images/bookworm-minbase")
        write_docker_archive(d / "layout", d / "docker.tar", d / "build.log")

    cached_build(cache, build)
    return DebianImage(layout=cache / "layout", rootfs=root, archive=cache / "docker.tar")


def build_real_bookworm() -> DebianImage:
    """Build (once) a whole Debian bookworm minbase image from the mirror.

    mmdebstrap writes the root file system as a tar; umoci turns it into a
    one-layer OCI layout; the files the scanner reads are extracted beside
    it (`scanned/`), so that tests can compute what to expect from them.
    Needs the network; only tests marked `slow` use it."""
    cache = CACHE_DIR / REAL_BOOKWORM_KEY

    def build(d: Path):
        log = d / "build.log"
        rootfs = d / "rootfs.tar"
        if not rootfs.exists():
            tmp = d / "rootfs.tmp.tar"  # mmdebstrap picks the format from the name
            tmp.unlink(missing_ok=True)
            rc = _run_logged(["mmdebstrap", "--variant=minbase", "bookworm", str(tmp)], log, 1200)
            if rc != 0 or not tmp.exists() or tmp.stat().st_size == 0:
                pytest.fail(
                    "mmdebstrap could not build the Debian bookworm root file system "
                    f"(exit {rc}); is a Debian mirror reachable from this machine?\n"
                    + log.read_text(errors="replace")[-3000:],
                    pytrace=False,
                )
            tmp.rename(rootfs)
        layout = d / "layout"
        shutil.rmtree(layout, ignore_errors=True)
        img = f"{layout}:{BOOKWORM_TAG}"
        steps = [
            ["umoci", "init", "--layout", str(layout)],
            ["umoci", "new", "--image", img],
            ["umoci", "raw", "add-layer", "--image", img, str(rootfs)],
            ["umoci", "config", "--image", img, "--config.cmd", "/bin/bash",
             "--os", "linux", "--architecture", "amd64"],
            ["umoci", "gc", "--layout", str(layout)],
        ]
        for argv in steps:
            if _run_logged(argv, log, 600) != 0:
                _build_failed(" ".join(argv), log)
        scanned = d / "scanned"
        shutil.rmtree(scanned, ignore_errors=True)
        scanned.mkdir()
        with tarfile.open(rootfs) as tf:
            for m in tf:
                rel = m.name[2:] if m.name.startswith("./") else m.name
                if rel not in SCANNED_DEBIAN_FILES:
                    continue
                dest = scanned / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if m.issym():
                    os.symlink(m.linkname, dest)
                elif m.isfile():
                    dest.write_bytes(tf.extractfile(m).read())

    cached_build(cache, build)
    return DebianImage(layout=cache / "layout", rootfs=cache / "scanned")


@pytest.fixture(scope="session")
def pinned_bookworm() -> DebianImage:
    """The bookworm image pinned in the repository (no network)."""
    return build_pinned_bookworm()


@pytest.fixture(scope="session")
def _real_bookworm_session() -> DebianImage:
    return build_real_bookworm()


@pytest.fixture
def real_bookworm(request) -> DebianImage:
    """Today's Debian bookworm minbase, built with mmdebstrap: slow tests only."""
    if request.node.get_closest_marker("slow") is None:
        pytest.fail("real_bookworm needs the network: only tests marked slow may use it; "
                    "use pinned_bookworm", pytrace=False)
    return request.getfixturevalue("_real_bookworm_session")
