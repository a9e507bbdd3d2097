"""Crash safety and concurrent pushes: a SIGKILL mid-upload leaves no
partial blob and loses nothing acknowledged; two clients pushing the same
image at once both succeed and every blob is stored once."""

import hashlib
import base64
import os
import socket
import time
from urllib.parse import urlsplit

import pytest

from conftest import Skopeo
from datadir import check_blob_store, has_blob, staging_files
from ocilayout import make_image, sha256_digest
from regclient import describe, expect_error
from conftest import ADMIN_CREDS

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
            f"Authorization: Basic {base64.b64encode(ADMIN_CREDS.encode()).decode()}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {len(big)}\r\n"
            f"Content-Range: 0-{len(big) - 1}\r\n\r\n"
        )
        sock.sendall(head.encode())
        # Stream a quarter of the blob, slowly, then pull the plug.
        for off in range(0, 16 * MiB, MiB):
            sock.sendall(big[off:off + MiB])
            time.sleep(0.05)
        time.sleep(0.5)
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
