"""wharf's own container image (`make image`, scripts/build-image.sh), built by
buildah from a Debian bookworm minbase root file system made by mmdebstrap and
run by podman on the host network.

The image is built once per module into a temp dir, with buildah's storage of its
own; the root file system is cached in tests/.cache (building it needs Debian's
mirror the first time: marked slow). The binary is a release build: WHARF_IMAGE_BIN,
else WHARF_BIN when it is not a sanitizer build, else build/release/wharf.

podman runs as root with private vfs storage (conftest's Podman), runc as the
runtime where installed (crun refuses hybrid cgroup hierarchies), and file and
process limits below the ones the runtime would ask for, which a sandbox without
CAP_SYS_RESOURCE cannot raise. Where containers cannot be started at all (a probe
running /bin/true in the image fails) the test is skipped with podman's answer.
"""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import REPO_ROOT, free_port, wait_until
from regclient import ADMIN_PASSWORD, CREDS, Registry, describe

pytestmark = pytest.mark.slow

BUILD_TIMEOUT = 1500  # the first mmdebstrap run downloads ~40 MB; later builds take ~20 s
START_DEADLINE = 30.0
UID = "10001"
TAG = "localhost/wharf:e2e"


def release_binary(wharf_bin: str) -> str:
    explicit = os.environ.get("WHARF_IMAGE_BIN")
    candidates = [explicit] if explicit else [wharf_bin, str(REPO_ROOT / "build/release/wharf")]
    for c in candidates:
        if not c or not os.access(c, os.X_OK):
            continue
        libs = subprocess.run(["ldd", c], capture_output=True, text=True, timeout=30).stdout
        if "libasan" not in libs and "libubsan" not in libs:
            return c
    pytest.skip(f"the image takes a release build and none was found among {candidates}: "
                "run make (or set WHARF_IMAGE_BIN)")


@pytest.fixture(scope="module")
def image_tar(wharf_bin, tmp_path_factory):
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (bash scripts/deps.sh test)", pytrace=False)
    if os.geteuid() != 0:
        pytest.skip("buildah and podman run as root here (vfs storage, no user namespace)")
    binary = release_binary(wharf_bin)
    d = tmp_path_factory.mktemp("image")
    out = d / "wharf-image.tar"
    storage = d / "buildah"
    env = dict(os.environ, BUILDAH_STORAGE=str(storage), WHARF_IMAGE_TAG=TAG)
    p = subprocess.run(["bash", str(REPO_ROOT / "scripts/build-image.sh"), binary, str(out)],
                       capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT)
    assert p.returncode == 0, f"build-image.sh exited {p.returncode}:\n{p.stderr[-6000:]}"
    yield out
    shutil.rmtree(storage, ignore_errors=True)


def image_config(archive) -> dict:
    with tarfile.open(archive) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        assert len(manifest) == 1 and manifest[0]["RepoTags"] == [TAG], manifest
        return json.load(t.extractfile(manifest[0]["Config"]))


def test_image_config(image_tar, wharf_bin):
    """Non-root user, /data volume, HEALTHCHECK, entrypoint: the docker-archive's config."""
    cfg = image_config(image_tar)["config"]
    assert cfg["User"] == f"{UID}:{UID}"
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["WorkingDir"] == "/data"
    assert cfg["Entrypoint"] == ["/usr/local/bin/wharf"] and cfg["Cmd"] == ["serve"]
    assert "WHARF_DATA_DIR=/data" in cfg["Env"]
    assert cfg["ExposedPorts"] == {"5000/tcp": {}}
    hc = cfg["Healthcheck"]
    assert hc["Test"] == ["CMD", "/usr/local/bin/wharf-healthcheck"], hc
    assert hc["Retries"] == 3 and hc["Interval"] == 30 * 10**9, hc


def run_args(podman, *args):
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    return ["run", *runtime, "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
            "--network", "host", *args]


def wait_healthy(base: str, what: str):
    import requests

    def up():
        try:
            return requests.get(f"{base}/api/v2.0/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(up, START_DEADLINE, what)


def test_image_serves_push_and_pull_and_keeps_data(image_tar, podman, skopeo, image_layout,
                                                   unique):
    podman("load", "-i", str(image_tar))
    probe = podman(*run_args(podman, "--rm", "--entrypoint", "/bin/true", TAG), check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run containers here: {probe.stderr.strip()[-600:]}")

    port = free_port()
    host = f"127.0.0.1:{port}"
    base = f"http://{host}"
    volume = f"wharf-e2e-{unique}"[:60]
    env = ["-e", f"WHARF_LISTEN={host}", "-e", f"WHARF_ADMIN_PASSWORD={ADMIN_PASSWORD}"]
    names = []

    def start(name):
        names.append(name)
        podman(*run_args(podman, "-d", "--name", name, "-v", f"{volume}:/data", *env, TAG))
        wait_healthy(base, f"wharf in container {name} answering on {host}")

    def stop(name):
        podman("stop", "-t", "30", name, timeout=60)
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        # SIGTERM: the server finishes and exits 0.
        assert state["ExitCode"] == 0, podman("logs", name, check=False).stderr[-3000:]

    try:
        start("wharf-a")
        # The server runs as the image's user, not root.
        assert podman("exec", "wharf-a", "id", "-u").stdout.strip() == UID
        # The image's HEALTHCHECK passes against the running server...
        hc = podman("healthcheck", "run", "wharf-a", check=False)
        assert hc.returncode == 0, hc.stdout + hc.stderr
        assert json.loads(podman("inspect", "wharf-a").stdout)[0]["State"]["Health"][
            "Status"] == "healthy"
        # ... and fails (1, "unhealthy") where nothing answers.
        idle = podman(*run_args(podman, "--rm", "-e", f"WHARF_LISTEN=127.0.0.1:{free_port()}",
                                "--entrypoint", "/usr/local/bin/wharf-healthcheck", TAG),
                      check=False)
        assert idle.returncode == 1, idle.stdout + idle.stderr

        # Push with skopeo, pull with podman, through the container.
        src, img = image_layout
        repo = f"library/{unique}"
        skopeo.copy(f"oci:{src}:v1", f"docker://{host}/{repo}:v1")
        podman("pull", "--tls-verify=false", "--creds", CREDS, f"docker://{host}/{repo}:v1")
        info = json.loads(podman("image", "inspect", f"{host}/{repo}:v1").stdout)[0]
        assert info["Digest"] == img.manifest_digest
        reg = Registry(base)

        def intact(when):
            r = reg.get_manifest(repo, "v1")
            assert r.status_code == 200, f"{when}: {describe(r)}"
            assert r.headers["Docker-Content-Digest"] == img.manifest_digest, when
            for layer in json.loads(r.content)["layers"]:
                b = reg.get(f"/v2/{repo}/blobs/{layer['digest']}")
                assert b.status_code == 200, f"{when}: {describe(b)}"

        intact("after the push")

        # A restart of the same container keeps everything.
        podman("restart", "-t", "30", "wharf-a", timeout=90)
        wait_healthy(base, "wharf answering after podman restart")
        intact("after podman restart")

        # A new container on the same volume (an upgrade's path) keeps it too.
        stop("wharf-a")
        podman("rm", "wharf-a")
        names.remove("wharf-a")
        start("wharf-b")
        intact("in a new container on the volume")
        skopeo.copy(f"docker://{host}/{repo}:v1", f"oci:{podman.root}/pulled:v1")
        with open(f"{podman.root}/pulled/index.json") as f:
            assert json.load(f)["manifests"][0]["digest"] == img.manifest_digest
        logs = podman("logs", "wharf-b").stderr
        assert "created the administrator" not in logs, logs[-2000:]
        # /data is private to the wharf user: no warning about its mode at any start.
        assert "readable by other users" not in logs, logs[-2000:]
        stop("wharf-b")
    finally:
        for n in names:
            podman("rm", "-f", n, check=False, timeout=60)
        podman("volume", "rm", "-f", volume, check=False)
