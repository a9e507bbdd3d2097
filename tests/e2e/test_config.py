"""Settings documented in docs/configuration.md, each on a server of its own:
upload session and blob size caps, read-only mode, deletes disabled, idle
connection timeout, and refusal of bad values at start."""

import os
import socket
import subprocess
import time

import pytest

from conftest import free_port
from datadir import has_blob
from ocilayout import make_image, sha256_digest
from regclient import describe, expect_error

OCTET = {"Content-Type": "application/octet-stream"}


def small_image():
    return make_image(layers=1, files_per_layer=1, file_size=1024)


def test_max_upload_sessions(servers, unique):
    srv = servers.new(env={"WHARF_MAX_UPLOADS": "3"})
    reg = srv.registry()
    repo = f"library/{unique}"
    locs = [reg.start_upload(repo) for _ in range(3)]
    r = reg.post(f"/v2/{repo}/blobs/uploads/")
    expect_error(r, 429, "TOO_MANY_REQUESTS")
    assert r.headers.get("Retry-After"), describe(r)
    # Finishing or cancelling a session frees its slot.
    d = reg.delete(locs[0])
    assert d.status_code == 204, describe(d)
    data = b"freed"
    p = reg.put(locs[1], params={"digest": sha256_digest(data)}, data=data, headers=OCTET)
    assert p.status_code == 201, describe(p)
    for _ in range(2):
        reg.start_upload(repo)
    expect_error(reg.post(f"/v2/{repo}/blobs/uploads/"), 429, "TOO_MANY_REQUESTS")
    assert reg.get(f"/v2/{repo}/blobs/{sha256_digest(data)}").status_code == 200


def test_max_blob_size(servers, unique):
    srv = servers.new(env={"WHARF_MAX_BLOB": "64K"})
    reg = srv.registry()
    repo = f"library/{unique}"
    ok = os.urandom(64 * 1024)
    assert reg.push_blob(repo, ok) == sha256_digest(ok)

    big = os.urandom(64 * 1024 + 1)
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256_digest(big)}, data=big,
                 headers=OCTET)
    expect_error(r, 413, "SIZE_INVALID")
    # In chunks: the chunk that crosses the limit is refused.
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=big[:40_000], headers={**OCTET, "Content-Range": "0-39999"})
    assert r.status_code == 202, describe(r)
    r = reg.patch(r.headers["Location"], data=big[40_000:],
                  headers={**OCTET, "Content-Range": f"40000-{len(big) - 1}"})
    expect_error(r, 413, "SIZE_INVALID")
    assert not has_blob(srv.data_dir, sha256_digest(big))


def test_read_only(servers, unique):
    srv = servers.new()
    reg = srv.registry()
    repo = f"library/{unique}"
    img = small_image()
    reg.push_image(repo, img, "v1")
    srv.stop()
    srv.extra_env["WHARF_READ_ONLY"] = "true"
    srv.start()
    reg = srv.registry()
    assert reg.get_manifest(repo, "v1").content == img.manifest
    expect_error(reg.post(f"/v2/{repo}/blobs/uploads/"), 403, "DENIED")
    expect_error(reg.push_manifest(repo, "v2", img.manifest), 403, "DENIED")
    expect_error(reg.delete(f"/v2/{repo}/manifests/{img.manifest_digest}"), 403, "DENIED")
    assert reg.get_manifest(repo, img.manifest_digest).status_code == 200


def test_deletes_disabled(servers, unique):
    srv = servers.new(env={"WHARF_DELETE_ENABLED": "false"})
    reg = srv.registry()
    repo = f"library/{unique}"
    img = small_image()
    reg.push_image(repo, img, "v1")
    for path in (f"/v2/{repo}/manifests/{img.manifest_digest}", f"/v2/{repo}/manifests/v1",
                 f"/v2/{repo}/blobs/{img.layers[0]}"):
        expect_error(reg.delete(path), 405, "UNSUPPORTED")
    assert reg.get_manifest(repo, "v1").content == img.manifest
    assert reg.get(f"/v2/{repo}/blobs/{img.layers[0]}").status_code == 200


def test_idle_connection_is_cut(servers):
    srv = servers.new(env={"WHARF_IDLE_TIMEOUT": "2"})
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    try:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        t0 = time.monotonic()
        try:
            data = s.recv(65536)
            while data and b"\r\n\r\n" not in data:
                more = s.recv(65536)
                if not more:
                    break
                data += more
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - t0
    finally:
        s.close()
    assert waited < 10, "a silent connection was kept open past the idle timeout"
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
    assert srv.registry().get("/v2/").status_code == 200


@pytest.mark.parametrize("var,value", [
    ("WHARF_UPLOAD_TTL", "soon"),
    ("WHARF_MAX_MANIFEST", "-1"),
    ("WHARF_LISTEN", "not-an-address"),
])
def test_bad_setting_stops_start(wharf_bin, tmp_path, var, value):
    env = dict(os.environ)
    env.update({"WHARF_DATA_DIR": str(tmp_path / "data"),
                "WHARF_LISTEN": f"127.0.0.1:{free_port()}", var: value})
    try:
        p = subprocess.run([wharf_bin, "serve"], env=env, capture_output=True, text=True,
                           timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wharf serve kept running with {var}={value!r}")
    assert p.returncode != 0
    key = var.split("_", 1)[1].lower()
    assert var in p.stderr or key.split("_")[-1] in p.stderr.lower(), (
        f"the message does not name the setting: {p.stderr!r}")


def test_port_in_use_stops_start(wharf_bin, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        env = dict(os.environ)
        env.update({"WHARF_DATA_DIR": str(tmp_path / "data"), "WHARF_LISTEN": f"127.0.0.1:{port}"})
        try:
            p = subprocess.run([wharf_bin, "serve"], env=env, capture_output=True, text=True,
                               timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("wharf serve kept running on a port it could not bind")
    assert p.returncode != 0
    assert str(port) in p.stderr, f"the message does not name the address: {p.stderr!r}"
