"""A real Docker engine against wharf: Debian's dockerd (docker.io) and the
containerd it starts, driven by the docker CLI of the same package and by
containerd's `ctr`.

The suite starts its own dockerd once per session: vfs storage, no iptables,
no bridge, a private data root, exec root, config file and API socket under a
short temp dir (unix socket paths are limited to 108 bytes), and no proxy
variables.  It never talks to a docker engine the machine may run.  Every
client command gets DOCKER_HOST pointing at that socket and a DOCKER_CONFIG
of its own test, so a login never leaks into another test.  Images come from
ocilayout (conftest fixtures `image_layout`, `multiarch_layout`), turned into
`docker save`-format archives by skopeo for `docker load`.

dockerd treats 127.0.0.0/8 as an insecure registry: it speaks plain HTTP to
wharf on the loopback address without being told.

Where dockerd cannot run (not root, docker.io not installed, the kernel
refuses it) every test here is skipped and says why; a dockerd that started
but does not answer within START_DEADLINE is a failure.
"""

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import ocilayout
from apiclient import Api
from apiclient import describe as api_describe
from regclient import ADMIN_PASSWORD, ADMIN_USER, Registry, describe, expect_error

START_DEADLINE = 60.0  # dockerd answers /_ping in well under 5 s here
STOP_DEADLINE = 30.0
COMMAND_TIMEOUT = 180
PROXY_VARS = {"http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy"}
# dockerd 20.10 keeps its identity key here whatever --data-root says; the
# fixture removes it again when it was the one to create it.
TRUST_KEY = Path("/etc/docker/key.json")

PUSHED = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: (\d+)$", re.M)
PULLED = re.compile(r"^Digest: (sha256:[0-9a-f]{64})$", re.M)


def clean_env() -> dict:
    """The caller's environment without proxies or docker settings."""
    return {k: v for k, v in os.environ.items()
            if k.lower() not in PROXY_VARS and not k.startswith("DOCKER_")}


def engine_binaries():
    """(dockerd, docker CLI) from Debian's docker.io, or a reason to skip.

    The CLI is the one installed beside dockerd (/usr/sbin/dockerd ->
    /usr/bin/docker), not whichever `docker` comes first on PATH: a CLI of
    another release speaks to registries differently (`docker manifest
    inspect` of OCI images, for one), and the tests must not depend on it.
    """
    if os.geteuid() != 0:
        return None, None, "dockerd needs root (these tests run it as root with a private data root)"
    dockerd = shutil.which("dockerd") or next(
        (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.access(p, os.X_OK)), None)
    if dockerd is None:
        return None, None, ("dockerd is not installed: Debian's docker.io package provides it "
                            "(bash scripts/deps.sh test)")
    real = Path(dockerd).resolve()
    cli = real.parents[1] / "bin" / "docker"
    if not os.access(cli, os.X_OK):
        return None, None, f"no docker CLI beside {real} (expected {cli}, from the docker.io package)"
    if shutil.which("containerd") is None:
        return None, None, "containerd is not installed (a dependency of docker.io)"
    return str(real), str(cli), None


class EngineRefused(Exception):
    """dockerd exited during start-up: this machine cannot run it."""


class DockerEngine:
    """One dockerd with everything it writes under a short temp dir."""

    def __init__(self, dockerd: str, cli: str):
        self.dockerd = dockerd
        self.cli = cli
        self.root = Path(tempfile.mkdtemp(prefix="wdk-", dir="/tmp"))
        self.sock = self.root / "sock"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.pidfile = self.root / "dockerd.pid"
        self.config_file = self.root / "daemon.json"
        self.log_path = self.root / "dockerd.log"
        self.proc = None
        self.containerd_pid = None
        self.made_trust_key = False

    @property
    def containerd_sock(self) -> Path:
        return self.exec_root / "containerd" / "containerd.sock"

    def argv(self):
        return [
            self.dockerd,
            "--config-file", str(self.config_file),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
            "-H", f"unix://{self.sock}",
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--debug",  # the log then tells which mounts a push tried
        ]

    def ping(self) -> bool:
        """True when the engine's API answers GET /_ping with OK."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.sock))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                data = b""
                while len(data) < 65536:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return False
        return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] \
            and data.endswith(b"OK")

    def start(self):
        # The docker.io package may ship an /etc/docker/daemon.json of the
        # machine; this engine reads only its own (empty) one.
        self.config_file.write_text("{}\n")
        self.made_trust_key = not TRUST_KEY.exists()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         env=clean_env(), cwd=str(self.root), start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise EngineRefused(f"dockerd exited with status {rc} during start-up "
                                    f"({' '.join(self.argv())}):\n{self.log_tail()}")
            if self.ping():
                self.containerd_pid = self._read_pid(self.exec_root / "containerd" / "containerd.pid")
                return self
            time.sleep(0.1)
        raise RuntimeError(f"dockerd (pid {self.proc.pid}) did not answer /_ping within "
                           f"{START_DEADLINE}s:\n{self.log_tail()}")

    @staticmethod
    def _read_pid(path: Path):
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_tail(self, since: int = None, limit: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                if since is not None:
                    f.seek(since)
                return f.read().decode(errors="replace")[-limit:]
        except OSError:
            return ""

    @staticmethod
    def _alive(pid: int, name: str) -> bool:
        """Is `pid` still a process running `name` (not a reused pid)?"""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0]
        except OSError:
            return False
        return os.path.basename(argv0.decode(errors="replace")) == name

    def stop(self) -> list:
        """SIGTERM dockerd (it stops its containerd), wait with a deadline,
        then remove everything it wrote.  Returns the problems seen."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_DEADLINE)
                if rc != 0:
                    problems.append(f"dockerd exited with status {rc} after SIGTERM")
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append(f"dockerd did not exit within {STOP_DEADLINE}s of SIGTERM")
        if self.containerd_pid:
            deadline = time.monotonic() + STOP_DEADLINE
            while self._alive(self.containerd_pid, "containerd") and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._alive(self.containerd_pid, "containerd"):
                os.kill(self.containerd_pid, signal.SIGKILL)
                problems.append(f"dockerd left its containerd (pid {self.containerd_pid}) running")
        # dockerd bind-mounts its data root onto itself; it undoes that on a
        # clean exit, but not when killed.
        for mnt in reversed(self._mounts()):
            subprocess.run(["umount", mnt], capture_output=True)
        if os.environ.get("WHARF_E2E_KEEP") != "1":
            shutil.rmtree(self.root, ignore_errors=True)
        if self.made_trust_key:
            TRUST_KEY.unlink(missing_ok=True)
        return problems

    def _mounts(self) -> list:
        prefix = str(self.root) + "/"
        out = []
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    mnt = line.split()[4]
                    if mnt.startswith(prefix):
                        out.append(mnt)
        except OSError:
            pass
        return out


@pytest.fixture(scope="session")
def engine():
    dockerd, cli, reason = engine_binaries()
    if reason:
        pytest.skip(reason)
    eng = DockerEngine(dockerd, cli)
    try:
        eng.start()
    except EngineRefused as e:
        eng.stop()
        pytest.skip(f"dockerd cannot run on this machine: {e}")
    except RuntimeError as e:
        eng.stop()
        pytest.fail(str(e), pytrace=False)
    yield eng
    problems = eng.stop()
    if problems:
        pytest.fail("; ".join(problems) + "\n" + eng.log_tail(), pytrace=False)


class Docker:
    """The docker CLI against the session's engine, with a config dir (the
    logins, the local manifest lists) private to one test."""

    def __init__(self, eng: DockerEngine, root: Path):
        self.engine = eng
        self.root = root
        self.config = root / "docker-config"
        self.config.mkdir(parents=True)
        (root / "home").mkdir()

    def env(self) -> dict:
        env = clean_env()
        env.update({"DOCKER_HOST": f"unix://{self.engine.sock}", "DOCKER_CONFIG": str(self.config),
                    "HOME": str(self.root / "home")})
        return env

    def __call__(self, *args, input=None, check=True, timeout=COMMAND_TIMEOUT):
        argv = [self.engine.cli, *args]
        mark = self.engine.log_size()
        p = subprocess.run(argv, env=self.env(), input=input, capture_output=True, text=True,
                           timeout=timeout)
        p.output = p.stdout + p.stderr
        if check and p.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {p.returncode}\nstdout:\n{p.stdout[-4000:]}\n"
                f"stderr:\n{p.stderr[-4000:]}\ndockerd log meanwhile:\n{self.engine.log_tail(mark)}")
        return p

    def refused(self, *args, input=None):
        """Run a command that must fail; return its output, lower-cased."""
        p = self(*args, input=input, check=False)
        assert p.returncode != 0, f"docker {' '.join(args)} succeeded:\n{p.output}"
        return p.output.lower()

    def login(self, host, user, password, check=True):
        return self("login", "--username", user, "--password-stdin", host, input=password + "\n",
                    check=check)

    def auths(self) -> dict:
        try:
            return json.loads((self.config / "config.json").read_text()).get("auths", {})
        except FileNotFoundError:
            return {}

    def inspect(self, ref) -> dict:
        return json.loads(self("image", "inspect", ref).stdout)[0]

    def load(self, archive) -> str:
        out = self("load", "--input", str(archive)).stdout
        m = re.search(r"^Loaded image: (\S+)$", out, re.M)
        assert m, out
        return m.group(1)

    def push(self, ref) -> str:
        """Push; return the manifest digest docker reports."""
        p = self("push", ref)
        m = PUSHED.search(p.stdout)
        assert m, p.output
        return m.group(2)

    def has(self, image_id) -> bool:
        return image_id in self("image", "ls", "--all", "--quiet", "--no-trunc").stdout.split()

    def forget(self, image_id):
        """Remove every local reference to an image, so that a pull must
        download its layers again."""
        self("image", "rm", "--force", image_id)
        assert not self.has(image_id)


@pytest.fixture
def docker(engine, tmp_path) -> Docker:
    return Docker(engine, tmp_path / "docker")


@pytest.fixture
def admin_api(server) -> Api:
    return Api(server.url, (ADMIN_USER, ADMIN_PASSWORD))


def archive_of(skopeo, layout: str, ref: str, name: str, tmp_path: Path, arch: str = None) -> Path:
    """A `docker save`-format tar of `layout`:`ref`, named `name`."""
    out = tmp_path / (re.sub(r"[^a-z0-9]+", "-", name) + ".tar")
    extra = ["--override-arch", arch] if arch else []
    skopeo.copy(f"oci:{layout}:{ref}", f"docker-archive:{out}:{name}", *extra)
    return out


def loaded(docker, skopeo, layout, ref, name, tmp_path, img, arch=None) -> str:
    """Load the image into the engine under `name`; check its id."""
    assert docker.load(archive_of(skopeo, layout, ref, name, tmp_path, arch)) == name
    info = docker.inspect(name)
    # An image's id is the digest of its config, whatever carried it.
    assert info["Id"] == img.config_digest, info
    return name


def gunzip_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()


def head_digest(registry, repo, ref) -> str:
    r = registry.get_manifest(repo, ref)
    assert r.status_code == 200, describe(r)
    return r.headers["Docker-Content-Digest"]


# ------------------------------------------------------------------ tests


def test_docker_login(server, docker):
    """`docker login` with the right password is stored in the test's config;
    a wrong password or an unknown user is refused with docker's
    "unauthorized" and stores nothing; `docker logout` removes the entry."""
    host = server.host
    out = docker.refused("login", "--username", ADMIN_USER, "--password-stdin", host,
                         input="Wrong-Passw0rd\n")
    assert "unauthorized" in out, out
    out = docker.refused("login", "--username", "nobody-here", "--password-stdin", host,
                         input=ADMIN_PASSWORD + "\n")
    assert "unauthorized" in out, out
    assert host not in docker.auths()

    p = docker.login(host, ADMIN_USER, ADMIN_PASSWORD)
    assert "Login Succeeded" in p.stdout, p.output
    entry = docker.auths()[host]
    stored = base64.b64decode(entry["auth"]).decode()
    # the token service hands out a refresh token: docker keeps it (identitytoken), not the
    # password, and uses it through the OAuth2 refresh grant from then on
    assert stored == f"{ADMIN_USER}:" and entry.get("identitytoken"), entry
    assert ADMIN_PASSWORD not in json.dumps(entry)

    p = docker("logout", host)
    assert f"Removing login credentials for {host}" in p.output, p.output
    assert host not in docker.auths()


def test_docker_push_pull(server, registry, docker, skopeo, image_layout, tmp_path, unique):
    """Load, tag, push, pull: the registry holds what docker pushed (its own
    gzip of each layer, whose content is the image's diff_id), a second
    repository of the project gets the layers by cross-repository mount,
    and a pull after the image is gone downloads every layer again and
    yields the same image id and digest."""
    src, img = image_layout
    local = loaded(docker, skopeo, src, "v1", f"wharf-e2e/{unique}:v1", tmp_path, img)
    docker.login(server.host, ADMIN_USER, ADMIN_PASSWORD)
    repo = f"library/{unique}"
    ref = f"{server.host}/{repo}:v1"
    docker("tag", local, ref)
    digest = docker.push(ref)

    assert head_digest(registry, repo, "v1") == digest
    r = registry.get_manifest(repo, digest)
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == ocilayout.MT_DOCKER_MANIFEST, describe(r)
    man = r.json()
    assert man["config"]["digest"] == img.config_digest
    assert len(man["layers"]) == len(img.diff_ids)
    for layer, diff_id in zip(man["layers"], img.diff_ids):
        b = registry.get(f"/v2/{repo}/blobs/{layer['digest']}")
        assert b.status_code == 200, describe(b)
        assert len(b.content) == layer["size"]
        assert gunzip_digest(b.content) == diff_id

    # Another repository of the project: docker mounts the layers it pushed.
    repo2 = f"library/{unique}-copy"
    ref2 = f"{server.host}/{repo2}:v1"
    docker("tag", local, ref2)
    p = docker("push", ref2)
    assert p.stdout.count(f"Mounted from {repo}") == len(img.diff_ids), p.output
    assert PUSHED.search(p.stdout).group(2) == digest, p.output

    docker.forget(img.config_digest)
    p = docker("pull", ref)
    assert p.stdout.count("Pull complete") == len(img.diff_ids), p.output
    assert PULLED.search(p.stdout).group(1) == digest, p.output
    info = docker.inspect(ref)
    assert info["Id"] == img.config_digest
    assert f"{server.host}/{repo}@{digest}" in info["RepoDigests"], info["RepoDigests"]

    # By digest, from the other repository.
    docker.forget(img.config_digest)
    p = docker("pull", f"{server.host}/{repo2}@{digest}")
    assert p.stdout.count("Pull complete") == len(img.diff_ids), p.output
    assert docker.inspect(f"{server.host}/{repo2}@{digest}")["Id"] == img.config_digest

    out = docker.refused("pull", f"{server.host}/{repo}:no-such-tag")
    assert "manifest unknown" in out, out


def test_docker_private_project_after_logout(server, registry, admin_api, docker, skopeo,
                                             image_layout, tmp_path, unique):
    """After `docker logout` a private project's image cannot be pulled or
    pushed, and docker says "unauthorized"; a public project's still pulls."""
    src, img = image_layout
    admin_api.create_project(unique)  # private: Harbor's default
    local = loaded(docker, skopeo, src, "v1", f"wharf-e2e/{unique}:v1", tmp_path, img)
    docker.login(server.host, ADMIN_USER, ADMIN_PASSWORD)
    private = f"{server.host}/{unique}/app:v1"
    public = f"{server.host}/library/{unique}:v1"
    for ref in (private, public):
        docker("tag", local, ref)
        docker.push(ref)
    docker("logout", server.host)
    docker.forget(img.config_digest)

    out = docker.refused("pull", private)
    assert "unauthorized" in out or "denied" in out, out
    assert not docker.has(img.config_digest)

    p = docker("pull", public)
    assert docker.inspect(public)["Id"] == img.config_digest, p.output
    docker("tag", public, f"{server.host}/{unique}/app:anon")
    out = docker.refused("push", f"{server.host}/{unique}/app:anon")
    assert "unauthorized" in out or "denied" in out, out
    r = registry.get_manifest(f"{unique}/app", "anon")
    assert r.status_code == 404, describe(r)


def test_docker_robot_account(server, registry, admin_api, docker, skopeo, image_layout,
                              tmp_path, unique):
    """A system robot created through the REST API with push+pull on one
    private project and pull on another logs in with docker and works within
    exactly that: push and pull in the first, pull in the second, no push
    there, nothing in a third private project; a wrong secret is refused."""
    src, img = image_layout
    rw, ro, other = (f"{unique[:50]}-{x}" for x in ("rw", "ro", "no"))
    for p in (rw, ro, other):
        admin_api.create_project(p)
        skopeo.copy(f"oci:{src}:v1", f"docker://{server.host}/{p}/app:v1")
    name = "d" + unique.replace("-", "")[:30]
    r = admin_api.post("/robots", {
        "name": name, "level": "system", "duration": -1,
        "permissions": [
            {"kind": "project", "namespace": rw,
             "access": [{"resource": "repository", "action": "pull"},
                        {"resource": "repository", "action": "push"}]},
            {"kind": "project", "namespace": ro,
             "access": [{"resource": "repository", "action": "pull"}]},
        ]})
    assert r.status_code == 201, api_describe(r)
    robot, secret = r.json()["name"], r.json()["secret"]
    assert robot == f"robot${name}"

    out = docker.refused("login", "--username", robot, "--password-stdin", server.host,
                         input=secret + "x\n")
    assert "unauthorized" in out, out
    p = docker.login(server.host, robot, secret)
    assert "Login Succeeded" in p.stdout, p.output

    # pull within its permissions
    for proj in (rw, ro):
        ref = f"{server.host}/{proj}/app:v1"
        p = docker("pull", ref)
        assert PULLED.search(p.stdout).group(1) == img.manifest_digest, p.output
        assert docker.inspect(ref)["Id"] == img.config_digest
    # push within them
    mine = f"{server.host}/{rw}/app:robot"
    docker("tag", f"{server.host}/{rw}/app:v1", mine)
    digest = docker.push(mine)
    assert head_digest(registry, f"{rw}/app", "robot") == digest

    # refused outside them
    theirs = f"{server.host}/{ro}/app:robot"
    docker("tag", mine, theirs)
    out = docker.refused("push", theirs)
    assert "unauthorized" in out or "denied" in out, out
    r = registry.get_manifest(f"{ro}/app", "robot")
    assert r.status_code == 404, describe(r)
    out = docker.refused("pull", f"{server.host}/{other}/app:v1")
    assert "unauthorized" in out or "denied" in out, out

    # Layers docker last saw in a project the robot cannot read: docker asks
    # to mount them from there, wharf opens uploads instead, and the push
    # uploads them (it never borrows them from that project).
    secret_img = ocilayout.make_image(layers=2, files_per_layer=2, file_size=16 * 1024)
    layout = tmp_path / "secret-layout"
    ocilayout.write_image(ocilayout.Layout(str(layout)), secret_img, "v1")
    skopeo.copy(f"oci:{layout}:v1", f"docker://{server.host}/{other}/app:secret")
    docker("logout", server.host)
    docker.login(server.host, ADMIN_USER, ADMIN_PASSWORD)
    docker("pull", f"{server.host}/{other}/app:secret")
    docker("logout", server.host)
    docker.login(server.host, robot, secret)
    copied = f"{server.host}/{rw}/app:copied"
    docker("tag", f"{server.host}/{other}/app:secret", copied)
    mark = docker.engine.log_size()
    p = docker("push", copied)
    log = docker.engine.log_tail(mark, limit=200000)
    tried = re.findall(rf"attempting to mount layer \S+ \(\S+\) from {re.escape(server.host)}/{other}/app\"",
                       log)
    assert len(tried) == len(secret_img.layers), log
    assert "Mounted from" not in p.stdout and p.stdout.count("Pushed") == len(secret_img.layers), p.output
    r = registry.get_manifest(f"{rw}/app", "copied")
    assert r.status_code == 200 and r.json()["config"]["digest"] == secret_img.config_digest, describe(r)


def test_docker_push_beside_an_upload_flood(servers, docker, skopeo, image_layout, tmp_path,
                                            unique):
    """One user opens every upload session the server lets them open, in
    their own project, and leaves them idle: they are stopped at their own
    cap (limits.max_uploads_per_user), and the administrator's `docker push`
    of a three-layer image goes through beside them."""
    srv = servers.new()
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(unique)
    api.create_user(f"{unique}-m", password="Flood-Passw0rd")
    api.add_member(unique, f"{unique}-m", 2)
    flooder = Registry(srv.url, auth=(f"{unique}-m", "Flood-Passw0rd"))
    opened = 0
    while opened < 400:
        r = flooder.post(f"/v2/{unique}/flood/blobs/uploads/")
        if r.status_code != 202:
            break
        opened += 1
    refusal = r

    src, img = image_layout
    local = loaded(docker, skopeo, src, "v1", f"wharf-e2e/{unique}:v1", tmp_path, img)
    docker.login(srv.host, ADMIN_USER, ADMIN_PASSWORD)
    ref = f"{srv.host}/library/{unique}:v1"
    docker("tag", local, ref)
    p = docker("push", ref)
    assert p.stdout.count("Pushed") == len(img.diff_ids), p.output
    assert head_digest(srv.registry(), f"library/{unique}", "v1") == PUSHED.search(p.stdout).group(2)
    e = expect_error(refusal, 429, "TOO_MANY_REQUESTS")
    assert f"for {unique}-m (" in e["message"], e


def test_docker_pull_multiplatform_index(server, registry, docker, skopeo, multiarch_layout, unique):
    """An OCI index of amd64 and arm64 pushed by skopeo: `docker pull` takes
    the amd64 child and records the index digest; `--platform linux/arm64`
    takes the other child."""
    src, idx = multiarch_layout
    amd64, arm64 = idx.images
    repo = f"library/{unique}"
    ref = f"{server.host}/{repo}:multi"
    skopeo.copy(f"oci:{src}:multi", f"docker://{ref}", "--all")
    assert head_digest(registry, repo, "multi") == idx.index_digest

    p = docker("pull", ref)
    assert PULLED.search(p.stdout).group(1) == idx.index_digest, p.output
    assert p.stdout.count("Pull complete") == len(amd64.layers), p.output
    info = docker.inspect(ref)
    assert info["Id"] == amd64.config_digest
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert f"{server.host}/{repo}@{idx.index_digest}" in info["RepoDigests"], info["RepoDigests"]

    p = docker("pull", "--platform", "linux/arm64", ref)
    info = docker.inspect(ref)
    assert info["Id"] == arm64.config_digest, p.output
    assert info["Architecture"] == "arm64"


def test_docker_manifest_list(server, registry, docker, skopeo, multiarch_layout, tmp_path, unique):
    """docker builds a manifest list in wharf: each platform's image pushed by
    docker, `docker manifest create` and `push` of the list, `docker
    manifest inspect` reads it back from the registry, and `docker pull`
    of the list takes the amd64 image.  These commands run in the CLI, which
    tries HTTPS first and falls back to HTTP only when the plain-text port
    answers its TLS hello in HTTP (a 400; see test_parsing.py)."""
    src, idx = multiarch_layout
    docker.login(server.host, ADMIN_USER, ADMIN_PASSWORD)
    repo = f"library/{unique}"
    pushed = {}
    for img in idx.images:
        arch = img.platform["architecture"]
        local = loaded(docker, skopeo, src, "multi", f"wharf-e2e/{unique}:{arch}", tmp_path, img, arch)
        ref = f"{server.host}/{repo}:{arch}"
        docker("tag", local, ref)
        pushed[arch] = docker.push(ref)
    lst = f"{server.host}/{repo}:all"
    docker("manifest", "create", "--insecure", lst, *(f"{server.host}/{repo}:{a}" for a in pushed))
    p = docker("manifest", "push", "--insecure", "--purge", lst)
    digest = p.stdout.strip().splitlines()[-1]
    assert head_digest(registry, repo, "all") == digest, p.output

    r = registry.get_manifest(repo, "all")
    assert r.headers["Content-Type"] == ocilayout.MT_DOCKER_LIST, describe(r)
    got = {(m["platform"]["architecture"], m["digest"]) for m in r.json()["manifests"]}
    assert got == set(pushed.items()), r.json()

    # --purge removed the local copy: this reads the registry.
    shown = json.loads(docker("manifest", "inspect", "--insecure", lst).stdout)
    assert shown["mediaType"] == ocilayout.MT_DOCKER_LIST
    assert {(m["platform"]["architecture"], m["digest"]) for m in shown["manifests"]} == got

    for img in idx.images:
        docker.forget(img.config_digest)
    p = docker("pull", lst)
    assert PULLED.search(p.stdout).group(1) == digest, p.output
    assert docker.inspect(lst)["Id"] == idx.images[0].config_digest


def ctr_run(engine, namespace, *args, check=True):
    argv = ["ctr", "--address", str(engine.containerd_sock), "--namespace", namespace, *args]
    p = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    p.output = p.stdout + p.stderr
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {p.returncode}\n{p.output[-6000:]}")
    return p


def test_ctr_pull(server, registry, admin_api, engine, skopeo, multiarch_layout, unique):
    """containerd's `ctr` pulls a two-platform index from a private project:
    refused without credentials and with a wrong password, done with a
    project robot's; it fetches the amd64 child's blobs, byte for byte, and
    leaves the arm64 child's layer alone."""
    if shutil.which("ctr") is None:
        pytest.skip("ctr is not installed (Debian's containerd package provides it)")
    src, idx = multiarch_layout
    amd64, arm64 = idx.images
    admin_api.create_project(unique)
    ref = f"{server.host}/{unique}/multi:m"
    skopeo.copy(f"oci:{src}:multi", f"docker://{ref}", "--all")
    r = admin_api.post("/robots", {
        "name": "ctr", "level": "project", "duration": -1,
        "permissions": [{"kind": "project", "namespace": unique,
                         "access": [{"resource": "repository", "action": "pull"}]}]})
    assert r.status_code == 201, api_describe(r)
    robot, secret = r.json()["name"], r.json()["secret"]

    ns = f"wharf-e2e-{os.urandom(4).hex()}"
    pull = ["images", "pull", "--plain-http", "--snapshotter", "native"]
    p = ctr_run(engine, ns, *pull, ref, check=False)
    assert p.returncode != 0 and "401 unauthorized" in p.output.lower(), p.output
    p = ctr_run(engine, ns, *pull, "--user", f"{robot}:{secret}x", ref, check=False)
    assert p.returncode != 0 and "401 unauthorized" in p.output.lower(), p.output
    p = ctr_run(engine, ns, *pull, "--user", f"{robot}:{secret}", ref)
    assert f"unpacking linux/amd64 {idx.index_digest}" in p.output, p.output

    rows = [line.split() for line in ctr_run(engine, ns, "images", "ls").stdout.splitlines()[1:]]
    row = next(r for r in rows if r[0] == ref)
    assert row[1] == ocilayout.MT_INDEX and row[2] == idx.index_digest, row
    assert "linux/amd64" in row[-2] and "linux/arm64" in row[-2], row

    def content(digest):
        return subprocess.run(["ctr", "--address", str(engine.containerd_sock), "--namespace", ns,
                               "content", "get", digest], env=clean_env(), capture_output=True,
                              timeout=COMMAND_TIMEOUT)

    for digest, data in [(idx.index_digest, idx.index), (amd64.manifest_digest, amd64.manifest),
                         *amd64.blobs.items()]:
        c = content(digest)
        assert c.returncode == 0 and c.stdout == data, (digest, c.stderr)
    c = content(arm64.layers[0])
    assert c.returncode != 0 and b"not found" in c.stderr, c.stderr


def test_docker_pull_refused_by_the_vulnerability_gate(servers, docker, skopeo, pinned_bookworm,
                                                       unique):
    """Issue 9, item 10 with the Docker engine: the pinned bookworm image,
    scanned on push with the fixture database in a project with prevent_vul
    and threshold critical: `docker pull` is refused (the registry answers the
    manifest GET with 412) with the message naming CVE-2023-45853; with the
    critical CVEs on the system allowlist the same pull goes through; an
    expired allowlist blocks it again."""
    from test_gate import CVE, criticals
    from test_scan_registry import MIME, REPO, Scans, import_db

    srv = servers.new()
    import_db(srv)
    proj = "gate-" + hashlib.sha256(unique.encode()).hexdigest()[:12]
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true", "prevent_vul": "true",
                                         "severity": "critical"})
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    s.wait_status(digest, "Success")
    crit = criticals(s.vulnerabilities(digest)[MIME])
    assert CVE in crit

    docker.login(srv.host, ADMIN_USER, ADMIN_PASSWORD)  # an administrator is judged too
    ref = f"{srv.host}/{proj}/{REPO}:1"
    manifest_get = re.compile(rf"GET /v2/{proj}/{REPO}/manifests/\S+ (\d+) ")
    srv.mark_log()
    out = docker.refused("pull", ref)
    assert CVE.lower() in out and "cannot be pulled due to configured policy" in out, out
    assert "412" in manifest_get.findall(srv.log_since_mark()), srv.log_since_mark()[-2000:]

    p = srv.cli("allowlist", "set", *crit)
    assert p.returncode == 0, p.stderr
    p = docker("pull", ref)
    assert PULLED.search(p.stdout).group(1) == digest, p.output
    image_id = docker.inspect(ref)["Id"]
    docker.forget(image_id)

    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    p = srv.cli("allowlist", "set", *crit, "--expires-at", past)
    assert p.returncode == 0, p.stderr
    srv.mark_log()
    out = docker.refused("pull", ref)
    assert CVE.lower() in out, out
    assert "412" in manifest_get.findall(srv.log_since_mark())
