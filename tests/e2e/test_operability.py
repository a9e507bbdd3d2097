"""Operability: configuration file and environment, limits that answer with
the spec's error codes (TOO_MANY_REQUESTS, DENIED, UNSUPPORTED, SIZE_INVALID),
the access log, pull statistics, and slow clients."""

import os
import socket
import sqlite3
import subprocess
import time

from conftest import wait_until
from ocilayout import make_image, sha256_digest
from regclient import describe, expect_error


def test_config_file_and_env_override(servers, tmp_path, wharf_bin):
    data = tmp_path / "cfgdata"
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text(
        f"data_dir: {data}\n"
        "limits:\n"
        "  max_manifest_bytes: 1K\n"
        "  max_uploads: 3\n"
        "log:\n"
        "  access: true\n"
    )
    srv = servers.new(env={"WHARF_CONFIG": str(cfg)}, data_dir=str(data), start=False)
    srv.start()
    reg = srv.registry()
    # the file's manifest cap (1 KiB) is in force
    r = reg.put("/v2/library/cfg/manifests/t", data=b"{" + b" " * 2000 + b"}",
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    expect_error(r, 413, "MANIFEST_INVALID")
    assert os.path.exists(data / "wharf.db")
    srv.stop()
    # the environment wins over the file
    srv.extra_env["WHARF_MAX_MANIFEST"] = "64K"
    srv.start()
    r = srv.registry().put("/v2/library/cfg/manifests/t", data=b"{" + b" " * 2000 + b"}",
                           headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    expect_error(r, 400, "MANIFEST_INVALID")


def test_bad_config_is_refused_with_the_key(tmp_path, wharf_bin):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("limits:\n  max_uploads: lots\n")
    p = subprocess.run([wharf_bin, "serve", "--config", str(cfg)], capture_output=True, text=True,
                       timeout=10, env={**os.environ, "WHARF_DATA_DIR": str(tmp_path / "d")})
    assert p.returncode != 0
    assert "limits.max_uploads" in p.stderr and ":2" in p.stderr, p.stderr
    p = subprocess.run([wharf_bin, "serve"], capture_output=True, text=True, timeout=10,
                       env={**os.environ, "WHARF_DATA_DIR": str(tmp_path / "d"),
                            "WHARF_LISTEN": "nowhere"})
    assert p.returncode != 0 and "WHARF_LISTEN" in p.stderr, p.stderr


def test_too_many_uploads(servers):
    srv = servers.new(env={"WHARF_MAX_UPLOADS": "2"})
    reg = srv.registry()
    locs = [reg.start_upload("library/many") for _ in range(2)]
    r = reg.post("/v2/library/many/blobs/uploads/")
    expect_error(r, 429, "TOO_MANY_REQUESTS")
    assert r.headers.get("Retry-After")
    # finishing one frees a slot
    r = reg.delete(locs[0])
    assert r.status_code == 204, describe(r)
    reg.start_upload("library/many")


def test_read_only_registry_denies_writes(servers):
    srv = servers.new()
    reg = srv.registry()
    digest = reg.push_blob("library/ro", b"kept")
    srv.stop()
    srv.extra_env["WHARF_READ_ONLY"] = "true"
    srv.start()
    reg = srv.registry()
    for r in (reg.post("/v2/library/ro/blobs/uploads/"),
              reg.put("/v2/library/ro/manifests/x", data=b"{}"),
              reg.delete(f"/v2/library/ro/blobs/{digest}")):
        e = expect_error(r, 403, "DENIED")
        assert "read only" in e["message"], describe(r)
    r = reg.get(f"/v2/library/ro/blobs/{digest}")
    assert r.status_code == 200 and r.content == b"kept", describe(r)


def test_unsupported(servers, registry):
    r = registry.get("/v2/library/x/blobs/md5:5d41402abc4b2a76b9719d911017c592")
    expect_error(r, 400, "UNSUPPORTED")
    r = registry.post("/v2/library/x/blobs/uploads/?digest=sha1:aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
                      data=b"x")
    expect_error(r, 400, "UNSUPPORTED")
    r = registry.request("OPTIONS", "/v2/library/x/tags/list")
    expect_error(r, 405, "UNSUPPORTED")
    srv = servers.new(env={"WHARF_DELETE_ENABLED": "false"})
    reg = srv.registry()
    digest = reg.push_blob("library/nodelete", b"abc")
    r = reg.delete(f"/v2/library/nodelete/blobs/{digest}")
    expect_error(r, 405, "UNSUPPORTED")


def test_blob_size_cap(servers):
    srv = servers.new(env={"WHARF_MAX_BLOB": "1K"})
    reg = srv.registry()
    data = os.urandom(4096)
    r = reg.post(f"/v2/library/big/blobs/uploads/?digest={sha256_digest(data)}", data=data)
    expect_error(r, 413, "SIZE_INVALID")
    assert reg.head(f"/v2/library/big/blobs/{sha256_digest(data)}").status_code == 404
    blobs = os.path.join(srv.data_dir, "blobs")
    assert not any(files for _, _, files in os.walk(blobs))


def test_access_log_and_pull_statistics(servers):
    srv = servers.new()
    reg = srv.registry()
    img = make_image(layers=1, files_per_layer=2, file_size=1024, seed=7)
    digest = reg.push_image("library/stats", img, "v1")
    for _ in range(3):
        r = reg.get_manifest("library/stats", "v1")
        assert r.status_code == 200, describe(r)
    assert reg.head("/v2/library/stats/manifests/v1").status_code == 200  # HEAD is not a pull

    def pulls():
        db = sqlite3.connect(os.path.join(srv.data_dir, "wharf.db"))
        try:
            (count,) = db.execute("SELECT pull_count FROM repository WHERE name='library/stats'").fetchone()
            (pull_ms,) = db.execute("SELECT pull_ms FROM artifact WHERE digest=?", (digest,)).fetchone()
        finally:
            db.close()
        return count, pull_ms

    # Pulls are written in batches, about once a second.
    wait_until(lambda: pulls()[0] >= 3, 30, "the three pulls to reach the database")
    count, pull_ms = pulls()
    assert count == 3  # the HEAD counted would show at the end, after the stop
    assert pull_ms and abs(pull_ms / 1000 - time.time()) < 60
    log = srv.log_text()
    assert "access GET /v2/library/stats/manifests/v1 200 " in log
    line = [l for l in log.splitlines() if " access PUT /v2/library/stats/manifests/v1 " in l][0]
    fields = line.split()[1:]  # after the time
    assert fields[3] == "201" and fields[4].isdigit() and fields[5].endswith("ms"), line
    # a stop flushes what is pending
    for _ in range(2):
        reg.get_manifest("library/stats", "v1")
    assert srv.stop() == 0
    db = sqlite3.connect(os.path.join(srv.data_dir, "wharf.db"))
    (count,) = db.execute("SELECT pull_count FROM repository WHERE name='library/stats'").fetchone()
    db.close()
    assert count == 5


def test_slow_client_is_cut_and_others_are_served(servers):
    srv = servers.new(env={"WHARF_IDLE_TIMEOUT": "2", "WHARF_THREADS": "1"})
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # headers never finish
    # with one worker thread, other clients are still served meanwhile
    for _ in range(5):
        assert srv.registry().get("/v2/").status_code == 200
    s.settimeout(10)
    t0 = time.monotonic()
    data = s.recv(100)
    assert data == b"", data  # the connection is closed, with no answer
    assert time.monotonic() - t0 < 8
    s.close()
