"""Fixtures of the end-to-end suite: the real `wharf serve` on a loopback
port with a temp data dir, real clients (skopeo, podman) with their own state,
and test images built without a container engine.

Environment:
  WHARF_BIN     the binary under test (default <repo>/build/release/wharf)
  WHARF_E2E_KEEP=1  keep temp dirs (data dirs, logs) after the run
"""

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WharfServer:
    """One `wharf serve` process; it can be stopped, killed and restarted on
    the same data dir."""

    def __init__(self, binary: str, data_dir: str, log_path: str, env: dict = None, name="wharf"):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_env = dict(env or {})
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


BOOKWORM_KEY = "bookworm-minbase-v1"


def _run_logged(argv, log, timeout):
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(argv) + "\n").encode())
        f.flush()
        return subprocess.run(argv, stdout=f, stderr=f, timeout=timeout).returncode


def build_bookworm_layout(cache: Path) -> Path:
    """Build (once) a Debian bookworm minbase image as an OCI layout.

    mmdebstrap writes the root file system as a tar; umoci turns it into a
    one-layer image.  The result is kept under tests/.cache/<key>/layout and
    reused while it is there; delete the directory to rebuild.
    """
    cache.mkdir(parents=True, exist_ok=True)
    layout = cache / "layout"
    done = cache / "complete"
    log = cache / "build.log"
    with open(cache / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if done.exists() and (layout / "index.json").exists():
            return layout
        rootfs = cache / "rootfs.tar"
        if not rootfs.exists():
            tmp = cache / "rootfs.tmp.tar"  # mmdebstrap picks the format from the name
            tmp.unlink(missing_ok=True)
            rc = _run_logged(["mmdebstrap", "--variant=minbase", "bookworm", str(tmp)], log, 1200)
            if rc != 0 or not tmp.exists() or tmp.stat().st_size == 0:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(
                    "mmdebstrap could not build the Debian bookworm root file system "
                    f"(exit {rc}); is a Debian mirror reachable from this machine?\n{tail}",
                    pytrace=False,
                )
            tmp.rename(rootfs)
        shutil.rmtree(layout, ignore_errors=True)
        img = f"{layout}:bookworm"
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
                pytest.fail(f"{' '.join(argv)} failed:\n" + log.read_text(errors="replace")[-3000:],
                            pytrace=False)
        done.write_text("ok\n")
        return layout


@pytest.fixture(scope="session")
def bookworm_layout() -> str:
    return str(build_bookworm_layout(CACHE_DIR / BOOKWORM_KEY))
