"""Push and pull with skopeo: a multi-layer image and a multi-arch index go
in, come back out unchanged, and the registry serves them by tag and digest.
"""

import json

from conftest import Skopeo
from ocilayout import (
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_INDEX,
    MT_MANIFEST,
    layout_ref,
    read_layout,
    sha256_digest,
)
from regclient import CREDS, check_api_version, describe, expect_error


def assert_layout_holds_image(path, ref, img):
    """The layout at `path` has `ref` -> exactly img's manifest, config and layers."""
    desc = layout_ref(path, ref)
    _, blob = read_layout(path)
    assert desc["digest"] == img.manifest_digest
    manifest = blob(desc["digest"])
    assert manifest == img.manifest, "pulled manifest differs from the pushed bytes"
    doc = json.loads(manifest)
    assert [l["digest"] for l in doc["layers"]] == img.layers
    for digest, data in img.blobs.items():
        got = blob(digest)
        assert sha256_digest(got) == digest
        assert got == data


def test_push_pull_multilayer_image(server, registry, skopeo, image_layout, tmp_path, unique):
    src, img = image_layout
    repo = f"library/{unique}"
    ref = f"docker://{server.host}/{repo}:v1"

    skopeo.copy(f"oci:{src}:v1", ref)
    # skopeo kept what it learnt in its private cache, not the machine's.
    assert skopeo.blob_info_cache.exists()

    # The registry serves the manifest byte for byte, by tag and by digest.
    for reference in ("v1", img.manifest_digest):
        r = registry.get_manifest(repo, reference)
        assert r.status_code == 200, describe(r)
        check_api_version(r)
        assert r.content == img.manifest
        assert r.headers.get("Docker-Content-Digest") == img.manifest_digest
        assert r.headers.get("Content-Type") == MT_MANIFEST

    # Every blob was uploaded and is served with its digest.
    for digest, data in img.blobs.items():
        r = registry.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200, describe(r)
        assert r.content == data
        assert r.headers.get("Docker-Content-Digest") == digest

    # Pull back with a client that has never seen these blobs.
    puller = Skopeo(tmp_path / "puller")
    out = tmp_path / "pulled"
    puller.copy(ref, f"oci:{out}:v1")
    assert_layout_holds_image(str(out), "v1", img)

    # skopeo inspect reads the same image.
    info = skopeo.inspect(ref)
    assert info["Digest"] == img.manifest_digest
    assert info["Layers"] == img.layers
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert skopeo.inspect(ref, raw=True).encode() == img.manifest
    tags = json.loads(skopeo.run(["skopeo", "list-tags", "--tls-verify=false", "--creds", CREDS,
                                  f"docker://{server.host}/{repo}"]).stdout)
    assert tags["Tags"] == ["v1"]


def test_multiarch_index_push_pull(server, registry, skopeo, multiarch_layout, tmp_path, unique):
    src, idx = multiarch_layout
    repo = f"library/{unique}"
    ref = f"docker://{server.host}/{repo}:multi"

    skopeo.copy(f"oci:{src}:multi", ref, "--all", "--preserve-digests")

    r = registry.get_manifest(repo, "multi", accept=MT_INDEX)
    assert r.status_code == 200, describe(r)
    assert r.content == idx.index, "index not served byte for byte"
    assert r.headers.get("Content-Type") == MT_INDEX
    assert r.headers.get("Docker-Content-Digest") == idx.index_digest

    # Pull every platform back into a fresh layout: the index and each child
    # come back identical.
    puller = Skopeo(tmp_path / "puller")
    out = tmp_path / "pulled"
    puller.copy(ref, f"oci:{out}:multi", "--all", "--preserve-digests")
    desc = layout_ref(str(out), "multi")
    _, blob = read_layout(str(out))
    assert desc["digest"] == idx.index_digest
    assert blob(idx.index_digest) == idx.index
    for img in idx.images:
        assert blob(img.manifest_digest) == img.manifest
        for digest, data in img.blobs.items():
            assert blob(digest) == data

    # Inspecting for arm64 resolves the arm64 child (skopeo reports the
    # digest of the index it started from).
    arm = idx.images[1]
    info = skopeo.inspect(ref, "--override-arch", "arm64")
    assert info["Digest"] == idx.index_digest
    assert info["Architecture"] == "arm64"
    assert info["Layers"] == arm.layers


def test_manifest_accept_negotiation(server, registry, skopeo, multiarch_layout, unique):
    """HEAD and GET of an index and of an image manifest with each Accept type."""
    src, idx = multiarch_layout
    repo = f"library/{unique}"
    skopeo.copy(f"oci:{src}:multi", f"docker://{server.host}/{repo}:multi", "--all",
                "--preserve-digests")
    child = idx.images[0]

    cases = [
        # (reference, Accept, stored bytes or None when it must not be served)
        ("multi", MT_INDEX, idx.index),
        ("multi", f"{MT_MANIFEST}, {MT_INDEX}", idx.index),
        ("multi", "*/*", idx.index),
        (idx.index_digest, MT_INDEX, idx.index),
        ("multi", MT_DOCKER_LIST, None),
        ("multi", MT_DOCKER_MANIFEST, None),
        (child.manifest_digest, MT_MANIFEST, child.manifest),
        (child.manifest_digest, f"{MT_DOCKER_MANIFEST}, {MT_MANIFEST}", child.manifest),
        (child.manifest_digest, "*/*", child.manifest),
        (child.manifest_digest, MT_INDEX, None),
        (child.manifest_digest, MT_DOCKER_MANIFEST, None),
    ]
    for reference, accept, body in cases:
        path = f"/v2/{repo}/manifests/{reference}"
        h = registry.head(path, headers={"Accept": accept})
        g = registry.get(path, headers={"Accept": accept})
        check_api_version(h)
        check_api_version(g)
        if body is None:
            assert h.status_code == 404, f"Accept {accept}: " + describe(h)
            expect_error(g, 404, "MANIFEST_UNKNOWN")
            continue
        digest = sha256_digest(body)
        media_type = json.loads(body)["mediaType"]
        for r in (h, g):
            assert r.status_code == 200, f"Accept {accept}: " + describe(r)
            assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
            assert r.headers.get("Content-Type") == media_type, describe(r)
            assert int(r.headers.get("Content-Length", -1)) == len(body), describe(r)
        assert h.content == b""
        assert g.content == body


def test_skopeo_delete(server, registry, skopeo, image_layout, unique):
    src, img = image_layout
    repo = f"library/{unique}"
    ref = f"docker://{server.host}/{repo}:v1"
    skopeo.copy(f"oci:{src}:v1", ref)
    skopeo.run(["skopeo", "delete", "--tls-verify=false", "--creds", CREDS, ref])
    expect_error(registry.get_manifest(repo, img.manifest_digest), 404, "MANIFEST_UNKNOWN")
    expect_error(registry.get_manifest(repo, "v1"), 404, "MANIFEST_UNKNOWN")
    p = skopeo.run(["skopeo", "inspect", "--tls-verify=false", "--creds", CREDS, ref],
                   check=False, timeout=60)
    assert p.returncode != 0


def test_zstd_layers(server, registry, skopeo, image_layout, tmp_path, unique):
    """Layers of any media type are stored as given: here zstd, recompressed
    by skopeo on the way in."""
    src, img = image_layout
    repo = f"library/{unique}"
    ref = f"docker://{server.host}/{repo}:zstd"
    skopeo.copy(f"oci:{src}:v1", ref, "--dest-compress", "--dest-compress-format", "zstd",
                "--format", "oci")
    r = registry.get_manifest(repo, "zstd")
    assert r.status_code == 200, describe(r)
    doc = json.loads(r.content)
    assert doc["config"]["digest"] == img.config_digest
    types = {l["mediaType"] for l in doc["layers"]}
    assert types == {"application/vnd.oci.image.layer.v1.tar+zstd"}, types
    out = tmp_path / "pulled"
    Skopeo(tmp_path / "puller").copy(ref, f"oci:{out}:zstd")
    _, blob = read_layout(str(out))
    assert blob(layout_ref(str(out), "zstd")["digest"]) == r.content
    for l in doc["layers"]:
        assert sha256_digest(blob(l["digest"])) == l["digest"]
