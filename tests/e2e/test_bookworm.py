"""Today's Debian bookworm root file system (mmdebstrap + umoci, built once by
conftest.py into tests/.cache) is pushed to wharf and pulled back unchanged.
Slow (needs a Debian mirror): runs last."""

import gzip
import hashlib
import json
import tarfile

import pytest

from conftest import Skopeo
from ocilayout import layout_ref, read_layout
from regclient import describe


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


@pytest.mark.slow
def test_bookworm_push_pull(server, registry, skopeo, real_bookworm, tmp_path):
    bookworm_layout = str(real_bookworm.layout)
    src_desc = layout_ref(bookworm_layout, "bookworm")
    _, src_blob = read_layout(bookworm_layout)
    manifest = src_blob(src_desc["digest"])
    doc = json.loads(manifest)
    layers = [l["digest"] for l in doc["layers"]]
    assert layers, "the bookworm image has no layer"

    repo = "library/debian"
    ref = f"docker://{server.host}/{repo}:bookworm"
    skopeo.copy(f"oci:{bookworm_layout}:bookworm", ref, timeout=600)

    r = registry.get_manifest(repo, "bookworm")
    assert r.status_code == 200, describe(r)
    assert r.content == manifest
    assert r.headers.get("Docker-Content-Digest") == src_desc["digest"]
    for l in doc["layers"]:
        h = registry.head(f"/v2/{repo}/blobs/{l['digest']}")
        assert h.status_code == 200, describe(h)
        assert int(h.headers["Content-Length"]) == l["size"]

    out = tmp_path / "pulled"
    Skopeo(tmp_path / "puller").copy(ref, f"oci:{out}:bookworm", timeout=600)
    desc = layout_ref(str(out), "bookworm")
    _, blob = read_layout(str(out))
    assert desc["digest"] == src_desc["digest"]
    assert blob(desc["digest"]) == manifest
    for digest in layers:
        alg, hexpart = digest.split(":")
        assert file_digest(out / "blobs" / alg / hexpart) == digest

    # The root file system survived: Debian 12 is in the first layer.
    alg, hexpart = layers[0].split(":")
    with gzip.open(out / "blobs" / alg / hexpart) as gz, tarfile.open(fileobj=gz, mode="r|") as tf:
        version = None
        for member in tf:
            if member.name.lstrip("./") == "etc/debian_version":
                version = tf.extractfile(member).read().decode().strip()
                break
    assert version and version.startswith("12"), f"etc/debian_version is {version!r}"
    assert version == real_bookworm.read("etc/debian_version").strip()
