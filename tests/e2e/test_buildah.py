"""buildah (no daemon, private vfs storage) logs in with --creds and pushes;
a wrong password is refused by the token service."""

import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import Tool
from regclient import ADMIN_USER, CREDS, describe


class Buildah(Tool):
    def __init__(self, root: Path):
        super().__init__(root)
        self.storage = Path(tempfile.mkdtemp(prefix="wbah-", dir="/tmp"))

    def cleanup(self):
        shutil.rmtree(self.storage, ignore_errors=True)

    def __call__(self, *args, timeout=300, check=True):
        s = self.storage
        argv = ["buildah", "--root", str(s / "root"), "--runroot", str(s / "runroot"),
                "--storage-driver", "vfs", *args]
        return self.run(argv, timeout=timeout, check=check)


@pytest.fixture
def buildah(tmp_path):
    if shutil.which("buildah") is None:
        pytest.fail("buildah is not installed", pytrace=False)
    b = Buildah(tmp_path / "buildah")
    yield b
    b.cleanup()


def test_buildah_push_with_creds(server, registry, buildah, image_layout, unique):
    src, img = image_layout
    image_id = buildah("pull", "--quiet", f"oci:{src}:v1").stdout.split()[-1]
    name = f"{server.host}/library/{unique}"
    # without credentials a push is refused
    p = buildah("push", "--tls-verify=false", image_id, f"docker://{name}:anon", check=False)
    assert p.returncode != 0 and "unauthorized" in (p.stderr + p.stdout).lower(), p.stderr
    # a wrong password is refused by the token service
    p = buildah("push", "--tls-verify=false", "--creds", f"{ADMIN_USER}:Wrong-Passw0rd",
                image_id, f"docker://{name}:bad", check=False)
    assert p.returncode != 0, p.stderr
    buildah("push", "--tls-verify=false", "--creds", CREDS, image_id, f"docker://{name}:v1")
    r = registry.get_manifest(f"library/{unique}", "v1")
    assert r.status_code == 200, describe(r)
    assert r.json()["config"]["digest"] == img.config_digest
