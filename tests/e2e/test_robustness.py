"""Hostile or unlucky input must not hurt the server or its data: path
tricks in upload ids and digests, deeply nested JSON, idle connections,
unread request bodies, write storms against SQLite, and a SIGKILL in the
middle of many pushes."""

import json
import os
import random
import socket
import threading
import time

import pytest

from conftest import wait_until
from datadir import check_blob_store
from ocilayout import MT_MANIFEST, make_image, sha256_digest
from regclient import check_error_body, describe, expect_error, raw_request


def small_image():
    return make_image(layers=1, files_per_layer=1, file_size=1024)


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
@pytest.mark.parametrize("session", ["../../wharf.db", "..%2F..%2Fwharf.db", "%2e%2e/%2e%2e/wharf.db",
                                     "..", "."])
def test_upload_id_cannot_reach_other_files(server, registry, unique, method, session):
    repo = f"library/{unique}"
    registry.push_blob(repo, b"repository exists")
    db = os.path.join(server.data_dir, "wharf.db")
    assert os.path.exists(db)
    size = os.path.getsize(db)
    body = b"junk" if method in ("PATCH", "PUT") else None
    path = f"/v2/{repo}/blobs/uploads/{session}"
    if method == "PUT":
        path += "?digest=" + sha256_digest(b"junk")
    status, hdrs, data = raw_request(server, method, path, body,
                                     {"Content-Type": "application/octet-stream"})
    assert 400 <= status < 500, f"{method} {path} -> {status} {data[:200]!r}"
    assert os.path.exists(db), f"{method} {path} removed the database"
    assert os.path.getsize(db) >= size
    assert b"SQLite format" not in data
    assert server.running()


@pytest.mark.parametrize("digest", ["sha256:../../../wharf.db", "sha256:..%2F..%2Fwharf.db",
                                    "sha256:%2e%2e", "../wharf.db"])
def test_digest_cannot_reach_other_files(server, registry, unique, digest):
    repo = f"library/{unique}"
    registry.push_blob(repo, b"repository exists")
    for method in ("GET", "HEAD", "DELETE"):
        status, hdrs, data = raw_request(server, method, f"/v2/{repo}/blobs/{digest}")
        assert 400 <= status < 500, f"{method} blobs/{digest} -> {status}"
        assert b"SQLite format" not in data
        status, hdrs, data = raw_request(server, method, f"/v2/{repo}/manifests/{digest}")
        assert 400 <= status < 500, f"{method} manifests/{digest} -> {status}"
    assert os.path.exists(os.path.join(server.data_dir, "wharf.db"))
    assert server.running()


def test_deeply_nested_manifest(server, registry, unique):
    repo = f"library/{unique}"
    depth = 200_000
    bomb = b'{"schemaVersion":2,"mediaType":"' + MT_MANIFEST.encode() + b'","annotations":' + \
        b"[" * depth + b"]" * depth + b"}"
    r = registry.push_manifest(repo, "bomb", bomb)
    expect_error(r, 400, "MANIFEST_INVALID")
    assert server.running()
    assert registry.get("/v2/").status_code == 200


def test_manifest_with_many_missing_layers(server, registry, unique):
    repo = f"library/{unique}"
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    registry.push_blob(repo, cfg)
    layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
               "digest": sha256_digest(os.urandom(8)), "size": 10} for _ in range(20_000)]
    body = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": sha256_digest(cfg), "size": len(cfg)},
                       "layers": layers}).encode()
    t0 = time.monotonic()
    r = registry.push_manifest(repo, "many", body)
    # Refused either for the missing blobs or by a cap on the layer count.
    assert r.status_code == 400, describe(r)
    codes = {e["code"] for e in check_error_body(r)}
    assert codes & {"MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID"}, describe(r)
    assert time.monotonic() - t0 < 10, "checking 20000 missing layers took over 10 s"
    assert server.running()


def test_unread_body_keeps_connection_usable(server, unique):
    """An error answered before the body is read must not corrupt the next
    request on the same keep-alive connection."""
    reg = server.registry()
    big = os.urandom(1 << 20)
    r = reg.put("/v2/UPPER/x/manifests/v1", data=big, headers={"Content-Type": MT_MANIFEST})
    assert r.status_code == 400, describe(r)
    r = reg.post(f"/v2/nosuch{unique.replace('-', '')[:10]}/x/blobs/uploads/",
                 params={"digest": sha256_digest(big)}, data=big)
    assert r.status_code == 404, describe(r)
    for _ in range(3):
        r = reg.get("/v2/")
        assert r.status_code == 200, describe(r)
        assert r.content.strip() in (b"{}", b""), describe(r)


def test_large_but_reasonable_header_accepted(registry):
    """Bearer tokens and cookies run to several KiB: 12 KiB of headers is fine."""
    r = registry.get("/v2/", headers={"X-Token": "t" * (12 * 1024)})
    assert r.status_code == 200, describe(r)


def test_idle_connections_do_not_starve_others(server, registry):
    socks = []
    try:
        # from another address: one address holds at most 64 connections
        # (http.max_connections_per_ip), which is not what this test is about
        for _ in range(128):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                         source_address=("127.0.0.2", 0))
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # never finished
            socks.append(s)
        t0 = time.monotonic()
        r = server.registry().get("/v2/", timeout=10)
        assert r.status_code == 200, describe(r)
        assert time.monotonic() - t0 < 5, "a request waited behind idle connections"
    finally:
        for s in socks:
            s.close()
    assert server.running()


def test_write_storm(servers, unique):
    """Sixteen clients push manifests and move tags at once: SQLite contention
    must never reach the client as an error."""
    srv = servers.new()
    repo = f"library/{unique}"
    seed = srv.registry()
    imgs = [small_image() for _ in range(16)]
    for img in imgs:
        for b in img.blobs.values():
            seed.push_blob(repo, b)
    failures = []
    barrier = threading.Barrier(len(imgs))

    def worker(i):
        reg = srv.registry()
        barrier.wait()
        for n in range(10):
            for ref in (f"own-{i}", "shared", imgs[i].manifest_digest):
                r = reg.push_manifest(repo, ref, imgs[i].manifest)
                if r.status_code != 201:
                    failures.append(describe(r))
            g = reg.get_manifest(repo, "shared")
            if g.status_code != 200:
                failures.append(describe(g))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(imgs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not failures, f"{len(failures)} failures, first: {failures[0]}"
    tags = seed.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert sorted(tags) == sorted([f"own-{i}" for i in range(16)] + ["shared"])
    shared = seed.get_manifest(repo, "shared").content
    assert shared in {img.manifest for img in imgs}


def test_sigkill_during_push_storm(servers, unique):
    """Kill the server while clients push; after a restart every tag still
    resolves to a whole manifest whose blobs are all there."""
    srv = servers.new()
    stop = threading.Event()
    acked = []  # (repo, tag, image) acknowledged with 201

    def pusher(i):
        reg = srv.registry()
        n = 0
        while not stop.is_set():
            img = make_image(layers=2, files_per_layer=1, file_size=random.randint(1, 200_000))
            repo = f"library/{unique}-{i}"
            try:
                for b in img.blobs.values():
                    reg.push_blob(repo, b)
                r = reg.push_manifest(repo, f"t{n}", img.manifest)
                if r.status_code == 201:
                    acked.append((repo, f"t{n}", img))
            except Exception:
                return  # the server is gone
            n += 1

    threads = [threading.Thread(target=pusher, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    # Kill while the pushers are busy: once each has had pushes acknowledged.
    wait_until(lambda: all(sum(1 for a in acked if a[0] == f"library/{unique}-{i}") >= 2
                           for i in range(len(threads))),
               120, "two acknowledged pushes from each pusher")
    srv.kill()
    stop.set()
    for t in threads:
        t.join(60)
    assert acked, "no push completed before the kill"

    srv.restart()
    reg = srv.registry()
    for repo, tag, img in acked:
        r = reg.get_manifest(repo, tag)
        assert r.status_code == 200 and r.content == img.manifest, (
            "an acknowledged push was lost: " + describe(r))
    # Everything listed is whole, acknowledged or not.
    catalog = reg.get("/v2/_catalog", params={"n": 10000}).json()["repositories"]
    for repo in [c for c in catalog if c.startswith(f"library/{unique}-")]:
        for tag in reg.get(f"/v2/{repo}/tags/list").json().get("tags") or []:
            m = reg.get_manifest(repo, tag)
            assert m.status_code == 200, describe(m)
            doc = json.loads(m.content)
            for d in [doc["config"]] + doc["layers"]:
                b = reg.get(f"/v2/{repo}/blobs/{d['digest']}")
                assert b.status_code == 200, f"{repo}:{tag} lost blob: " + describe(b)
                assert sha256_digest(b.content) == d["digest"]
    check_blob_store(srv.data_dir)
