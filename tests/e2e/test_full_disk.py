"""A full disk is an answer, not a 500.

The server's data dir lives on a 20 MiB tmpfs (mount needs root or
CAP_SYS_ADMIN; without it the tests are skipped and say why). The disk is
filled for real, by a push or by another process, and the test proves:
pushes answer 507 with an OCI error body, nothing half-written is visible,
reads keep working, DELETE works, /api/v2.0/health reports the storage as
unhealthy, and pushes work again once space is freed. It ends with SQLite's
`PRAGMA integrity_check`, a re-hash of every blob, and a check that every
blob the database knows is on disk whole.
"""

import os
import sqlite3
import subprocess
import time

import pytest

from datadir import blob_path, check_blob_store
from ocilayout import make_image, sha256_digest
from regclient import describe, expect_error

KiB = 1 << 10
MiB = 1 << 20
STORAGE_FULL = "storage is full"


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MiB tmpfs, unmounted at the end."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{p.stderr.strip() or p.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path, leave=0):
    """Writes a file until the disk is full; then gives back `leave` bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block = os.urandom(64 * KiB)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                break
        # the last few KiB, a page at a time
        while True:
            try:
                os.write(fd, block[:4096])
            except OSError:
                break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def health(reg):
    r = reg.get("/api/v2.0/health")
    assert r.status_code == 200, describe(r)
    doc = r.json()
    storage = [c for c in doc["components"] if c["name"] == "storage"]
    assert len(storage) == 1, doc
    return doc, storage[0]


def wait_health(reg, status, timeout=10.0):
    """Polls /health until the storage component has `status`."""
    deadline = time.monotonic() + timeout
    while True:
        doc, storage = health(reg)
        if storage["status"] == status:
            return doc, storage
        assert time.monotonic() < deadline, f"storage still {storage} after {timeout}s: {doc}"
        time.sleep(0.1)


def assert_full_answer(r):
    e = expect_error(r, 507, "DENIED")
    assert STORAGE_FULL in e["message"], describe(r)


def assert_reads(reg, repo, ref, img):
    """The image can be pulled: manifest by tag and digest, every blob, HEADs."""
    r = reg.get_manifest(repo, ref)
    assert r.status_code == 200 and r.content == img.manifest, describe(r)
    assert reg.head(f"/v2/{repo}/manifests/{img.manifest_digest}",
                    headers={"Accept": r.headers["Content-Type"]}).status_code == 200
    for d, data in img.blobs.items():
        b = reg.get(f"/v2/{repo}/blobs/{d}")
        assert b.status_code == 200 and b.content == data, describe(b)
        assert reg.head(f"/v2/{repo}/blobs/{d}").status_code == 200


def check_consistent(data_dir):
    """After the server stopped: SQLite's integrity check, every blob file
    hashes to its name, every blob the database records is on disk whole."""
    db = sqlite3.connect(os.path.join(data_dir, "wharf.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        recorded = db.execute(
            "SELECT b.digest, b.size FROM blob b WHERE b.digest IN (SELECT digest FROM repo_blob)"
        ).fetchall()
    finally:
        db.close()
    stored = check_blob_store(data_dir)
    for digest, size in recorded:
        assert stored.get(digest) == size, f"{digest} recorded ({size} bytes) but not stored whole"
    return stored


def test_disk_fills_during_push(servers, small_disk, unique):
    srv = servers.new(data_dir=str(small_disk / "data"))
    reg = srv.registry()
    repo = f"library/{unique}"
    img = make_image(layers=2, files_per_layer=2, file_size=128 * KiB)
    reg.push_image(repo, img, "before")

    # Someone else takes the disk, leaving 700 KiB; the next push runs out.
    filler = small_disk / "filler"
    fill(filler, leave=700 * KiB)
    big = os.urandom(3 * MiB)
    digest = sha256_digest(big)
    r = reg.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, describe(r)
    loc = r.headers["Location"]
    offset, failed = 0, None
    while offset < len(big):
        part = big[offset:offset + 256 * KiB]
        r = reg.patch(loc, data=part, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(part) - 1}"})
        if r.status_code != 202:
            failed = r
            break
        loc = r.headers["Location"]
        offset += len(part)
    assert failed is not None, "3 MiB fitted in 700 KiB"
    assert_full_answer(failed)
    for method in ("HEAD", "GET"):
        assert reg.request(method, f"/v2/{repo}/blobs/{digest}").status_code == 404

    # The session is where it was before the refused chunk.
    r = reg.get(loc)
    assert r.status_code == 204 and r.headers["Range"] == f"0-{offset - 1}", describe(r)

    doc, storage = wait_health(reg, "unhealthy")
    assert doc["status"] == "unhealthy"
    assert STORAGE_FULL in storage["error"]

    # Reads work; new pushes are refused at once, before any byte is sent.
    assert_reads(reg, repo, "before", img)
    assert_reads(srv.registry(anonymous=True), repo, "before", img)  # public project
    assert_full_answer(reg.post(f"/v2/{repo}/blobs/uploads/"))
    assert_full_answer(reg.push_manifest(repo, "other", img.manifest))
    other = os.urandom(10 * KiB)
    assert_full_answer(reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256_digest(other)},
                                data=other))
    # DELETE works on the full disk.
    r = reg.delete(f"/v2/{repo}/manifests/{img.manifest_digest}")
    assert r.status_code == 202, describe(r)
    assert reg.get_manifest(repo, "before").status_code == 404

    # Space comes back: health recovers, the session resumes, pushes work.
    filler.unlink()
    wait_health(reg, "healthy")
    while offset < len(big):
        part = big[offset:offset + 256 * KiB]
        r = reg.patch(loc, data=part, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(part) - 1}"})
        assert r.status_code == 202, describe(r)
        loc = r.headers["Location"]
        offset += len(part)
    r = reg.put(loc, params={"digest": digest})
    assert r.status_code == 201, describe(r)
    assert reg.get(f"/v2/{repo}/blobs/{digest}").content == big
    img2 = make_image(layers=2, files_per_layer=2, file_size=64 * KiB)
    reg.push_image(repo, img2, "after")
    assert_reads(reg, repo, "after", img2)

    assert srv.stop() == 0
    stored = check_consistent(srv.data_dir)
    assert stored[digest] == len(big)


def test_disk_filled_by_another_process(servers, small_disk, skopeo, image_layout, unique):
    """The disk is full before wharf writes anything: the first request is a
    DELETE, which must work; a real client's push is refused and works once
    space is back."""
    srv = servers.new(data_dir=str(small_disk / "data"))
    reg = srv.registry()
    repo = f"library/{unique}"
    imgs = [make_image(layers=1, files_per_layer=2, file_size=64 * KiB) for _ in range(3)]
    for i, img in enumerate(imgs):
        reg.push_image(repo, img, f"t{i}")

    filler = small_disk / "filler"
    fill(filler)
    assert free_bytes(small_disk) < 64 * KiB

    # Deletes first, on a disk with no byte free: a tag, a manifest, a blob.
    r = reg.delete(f"/v2/{repo}/manifests/t0")
    assert r.status_code == 202, describe(r)
    r = reg.delete(f"/v2/{repo}/manifests/{imgs[1].manifest_digest}")
    assert r.status_code == 202, describe(r)
    # (a layer of the manifest just deleted: one a tagged image uses cannot be deleted)
    layer = next(d for d in imgs[1].blobs if d != imgs[1].config_digest)
    r = reg.delete(f"/v2/{repo}/blobs/{layer}")
    assert r.status_code == 202, describe(r)
    assert reg.head(f"/v2/{repo}/blobs/{layer}").status_code == 404

    wait_health(reg, "unhealthy")
    r = reg.get_manifest(repo, "t2")
    assert r.status_code == 200 and r.content == imgs[2].manifest
    cfg = reg.get(f"/v2/{repo}/blobs/{imgs[2].config_digest}")
    assert cfg.status_code == 200 and cfg.content == imgs[2].blobs[imgs[2].config_digest]

    layout, img = image_layout
    dest = f"docker://{srv.host}/library/{unique}-skopeo:v1"
    p = skopeo.copy(f"oci:{layout}:v1", dest, check=False)
    assert p.returncode != 0, "skopeo pushed to a full disk"
    assert "507 Insufficient Storage" in p.stderr, p.stderr[-3000:]

    # The REST API answers a write it cannot make the same way.
    r = reg.post("/api/v2.0/projects", json={"project_name": f"p{unique[-6:]}",
                                             "metadata": {"public": "false"}})
    assert r.status_code in (201, 507), describe(r)

    filler.unlink()
    wait_health(reg, "healthy")
    skopeo.copy(f"oci:{layout}:v1", dest)
    assert skopeo.inspect(dest, raw=True).encode() == img.manifest

    assert srv.stop() == 0
    stored = check_consistent(srv.data_dir)
    for d in img.blobs:
        assert d in stored
    assert os.path.isfile(blob_path(srv.data_dir, layer))  # unlinked, not yet collected


def test_start_on_a_full_disk_serves_reads(servers, small_disk, unique):
    """A server started on a disk someone filled while it was stopped serves
    pulls and reports the disk (it frees its reserve before SQLite opens its
    write-ahead log)."""
    srv = servers.new(data_dir=str(small_disk / "data"))
    reg = srv.registry()
    repo = f"library/{unique}"
    img = make_image(layers=1, files_per_layer=1, file_size=64 * KiB)
    reg.push_image(repo, img, "v1")
    assert srv.stop() == 0
    reserve = os.path.join(srv.data_dir, "storage.reserve")
    assert os.path.getsize(reserve) >= MiB
    filler = small_disk / "filler"
    fill(filler)
    srv.start()
    reg = srv.registry()
    assert not os.path.exists(reserve)
    assert_reads(reg, repo, "v1", img)
    _, storage = wait_health(reg, "unhealthy")
    assert_full_answer(reg.post(f"/v2/{repo}/blobs/uploads/"))
    r = reg.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code == 202, describe(r)
    filler.unlink()
    wait_health(reg, "healthy")
    assert os.path.getsize(reserve) >= MiB
    reg.push_image(repo, img, "v1")
    assert_reads(reg, repo, "v1", img)
    assert srv.stop() == 0
    check_consistent(srv.data_dir)
