"""Crash safety and concurrent pushes: a SIGKILL mid-upload leaves no
partial blob and loses nothing acknowledged; two clients pushing the same
image at once both succeed and every blob is stored once."""

import hashlib
import os
import socket
from urllib.parse import urlsplit

import pytest

from conftest import Skopeo, wait_until
from datadir import check_blob_store, has_blob, staged_bytes, staging_files
from ocilayout import make_image, sha256_digest
from regclient import basic_auth, describe, expect_error

MiB = 1 << 20


def path_of(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


def verify_image(reg, repo, ref, img):
    r = reg.get_manifest(repo, ref)
    assert r.status_code == 200, describe(r)
    assert r.content == img.manifest
    for digest, data in img.blobs.items():
        b = reg.get(f"/v2/{repo}/blobs/{digest}")
        assert b.status_code == 200, describe(b)
        assert sha256_digest(b.content) == digest and b.content == data


def test_sigkill_mid_upload(servers, unique):
    srv = servers.new()
    reg = srv.registry()
    repo = f"library/{unique}"

    # Acknowledged before the crash: must survive it.
    img = make_image(layers=2, files_per_layer=2, file_size=256 * 1024)
    reg.push_image(repo, img, "before")

    big = os.urandom(64 * MiB)
    big_digest = sha256_digest(big)
    loc = reg.start_upload(repo)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        head = (
            f"PATCH {path_of(reg.url(loc))} HTTP/1.1\r\n"
            f"Host: {srv.host}\r\n"
            f"Authorization: {basic_auth()}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {len(big)}\r\n"
            f"Content-Range: 0-{len(big) - 1}\r\n\r\n"
        )
        sock.sendall(head.encode())
        # Send a quarter of the blob; once the server has written it to the
        # staging file, pull the plug.
        sock.sendall(big[:16 * MiB])
        wait_until(lambda: staged_bytes(srv.data_dir) >= 16 * MiB, 60,
                   "the server to stage the first 16 MiB of the PATCH")
        srv.kill()
    finally:
        sock.close()

    srv.restart()
    reg = srv.registry()

    # Nothing partial became a blob; everything stored is whole.
    stored = check_blob_store(srv.data_dir)
    assert big_digest not in stored
    assert not has_blob(srv.data_dir, big_digest)
    h = reg.head(f"/v2/{repo}/blobs/{big_digest}")
    assert h.status_code == 404, describe(h)
    expect_error(reg.get(f"/v2/{repo}/blobs/{big_digest}"), 404, "BLOB_UNKNOWN")

    verify_image(reg, repo, "before", img)

    # The same blob can be pushed again, in one PATCH and a closing PUT.
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=big, headers={"Content-Type": "application/octet-stream",
                                          "Content-Range": f"0-{len(big) - 1}"}, timeout=300)
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Range") == f"0-{len(big) - 1}"
    p = reg.put(r.headers["Location"], params={"digest": big_digest})
    assert p.status_code == 201, describe(p)
    h = reg.head(f"/v2/{repo}/blobs/{big_digest}")
    assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(big), describe(h)
    g = reg.get(f"/v2/{repo}/blobs/{big_digest}", stream=True, timeout=300)
    hasher = hashlib.sha256()
    for chunk in g.iter_content(MiB):
        hasher.update(chunk)
    assert "sha256:" + hasher.hexdigest() == big_digest
    assert check_blob_store(srv.data_dir).get(big_digest) == len(big)


def test_acknowledged_manifest_survives_sigkill(servers, unique):
    srv = servers.new()
    reg = srv.registry()
    repo = f"library/{unique}"
    img = make_image(layers=1, files_per_layer=1, file_size=4096)
    reg.push_image(repo, img, "v1")
    srv.kill()  # at once, after the 201
    srv.restart()
    verify_image(srv.registry(), repo, "v1", img)
    check_blob_store(srv.data_dir)


@pytest.mark.parametrize("layout", ["same-tag", "two-repos"])
def test_concurrent_pushes_of_one_image(servers, tmp_path, unique, layout):
    from ocilayout import Layout, write_image

    srv = servers.new()
    src = tmp_path / "src"
    img = write_image(Layout(str(src)),
                      make_image(layers=4, files_per_layer=4, file_size=512 * 1024), "v1")
    if layout == "same-tag":
        targets = [f"library/{unique}:v1", f"library/{unique}:v1"]
    else:
        targets = [f"library/{unique}-a:v1", f"library/{unique}-b:v1"]

    clients = [Skopeo(tmp_path / f"client{i}") for i in range(2)]
    procs = [c.popen(c.copy_argv(f"oci:{src}:v1", f"docker://{srv.host}/{t}"))
             for c, t in zip(clients, targets)]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=240)
        except Exception:
            p.kill()
            raise
        results.append((p.returncode, err))
    for rc, err in results:
        assert rc == 0, f"skopeo copy failed while another client pushed the same image:\n{err}"

    reg = srv.registry()
    for t in set(targets):
        repo, tag = t.rsplit(":", 1)
        verify_image(reg, repo, tag, img)

    stored = check_blob_store(srv.data_dir)
    expected = set(img.blobs) | {img.manifest_digest}
    assert expected <= set(stored)
    extra = set(stored) - expected
    assert not extra, f"unexpected blobs stored: {extra}"
    left = staging_files(srv.data_dir)
    assert not left, f"staging files remain after completed uploads: {left}"


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_acknowledged_chunks_survive_restart(servers, unique, how):
    """Bytes a PATCH acknowledged with 202 are still there after a restart:
    the client resumes where the Range header said and finishes."""
    srv = servers.new()
    reg = srv.registry()
    repo = f"library/{unique}"
    a, b = os.urandom(300_000), os.urandom(200_000)
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=a, headers={"Content-Type": "application/octet-stream",
                                        "Content-Range": f"0-{len(a) - 1}"})
    assert r.status_code == 202, describe(r)
    loc = path_of(reg.url(r.headers["Location"]))
    if how == "sigterm":
        assert srv.stop() == 0
    else:
        srv.kill()
    srv.restart()
    reg = srv.registry()
    st = reg.get(loc)
    assert st.status_code == 204, describe(st)
    assert st.headers.get("Range") == f"0-{len(a) - 1}", describe(st)
    r = reg.patch(loc, data=b, headers={"Content-Type": "application/octet-stream",
                                        "Content-Range": f"{len(a)}-{len(a) + len(b) - 1}"})
    assert r.status_code == 202, describe(r)
    p = reg.put(path_of(reg.url(r.headers["Location"])), params={"digest": sha256_digest(a + b)})
    assert p.status_code == 201, describe(p)
    g = reg.get(f"/v2/{repo}/blobs/{sha256_digest(a + b)}")
    assert g.status_code == 200 and g.content == a + b


def test_ranges_deep_into_a_large_blob(servers, unique):
    srv = servers.new()
    reg = srv.registry()
    repo = f"library/{unique}"
    data = os.urandom(24 * MiB)
    digest = reg.push_blob(repo, data)
    for lo, hi in ((0, MiB - 1), (20 * MiB + 7, 20 * MiB + 4096), (24 * MiB - 10, 24 * MiB - 1)):
        r = reg.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={lo}-{hi}"})
        assert r.status_code == 206, describe(r)
        assert r.headers.get("Content-Range") == f"bytes {lo}-{hi}/{len(data)}"
        assert r.content == data[lo:hi + 1]
    r = reg.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={20 * MiB}-"})
    assert r.status_code == 206 and r.content == data[20 * MiB:], describe(r)
