"""wharf with its blobs in S3 (storage.driver: s3), against a real radosgw.

tests/run.sh starts a throwaway Ceph (scripts/ceph.sh) and exports its
settings as WHARF_S3_TEST_ENDPOINT, _BUCKET, _REGION, _ACCESS_KEY,
_SECRET_KEY and _PATH_STYLE. Without them the module is skipped, unless
WHARF_S3_TESTS=1 (CI), where their absence is a failure. Every test keeps
its keys under a prefix of its own (storage.s3.prefix), and looks at the
bucket itself with curl --aws-sigv4 to see what wharf left there.
"""

import os
import threading
import time

import pytest
import requests

from ocilayout import Layout, make_image, sha256_digest, write_image
from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER, describe
from s3bucket import (S3, assert_nothing_staged, blob_key, s3_empty, s3_env, s3_keys,
                      s3_multipart, s3_put)

OCTET = {"Content-Type": "application/octet-stream"}
MIB = 1024 * 1024

if not S3["ENDPOINT"]:
    if os.environ.get("WHARF_S3_TESTS") == "1":
        pytest.fail("WHARF_S3_TESTS=1 but no radosgw: WHARF_S3_TEST_ENDPOINT is not set "
                    "(tests/run.sh starts one with scripts/ceph.sh)", pytrace=False)
    pytestmark = pytest.mark.skip(reason="no S3 store (WHARF_S3_TEST_ENDPOINT; tests/run.sh "
                                         "starts radosgw where Ceph is installed)")


@pytest.fixture
def prefix(unique):
    """The test's own key prefix, emptied afterwards (radosgw keeps its data in RAM)."""
    p = f"t-{unique}/"
    yield p
    s3_empty(p)


@pytest.fixture
def s3srv(servers, prefix):
    return servers.new(env=s3_env(prefix))


def chunk(reg, loc, data, start):
    r = reg.patch(loc, data=data, headers={
        **OCTET, "Content-Range": f"{start}-{start + len(data) - 1}"})
    assert r.status_code == 202, describe(r)
    assert r.headers["Range"] == f"0-{start + len(data) - 1}", describe(r)
    return r.headers["Location"]


def test_skopeo_push_pull_bit_identical(s3srv, skopeo, tmp_path, prefix, unique):
    # one layer larger than a part (8 MiB): skopeo streams it in one PATCH
    img = make_image(layers=2, files_per_layer=3, file_size=7 * MIB)
    big = max(len(b) for b in img.blobs.values())
    assert big > 16 * MIB
    src = tmp_path / "src"
    write_image(Layout(str(src)), img, "v1")
    ref = f"docker://{s3srv.host}/library/{unique}:v1"
    skopeo.copy(f"oci:{src}:v1", ref)

    keys = s3_keys(prefix + "blobs/")
    for digest, data in img.blobs.items():
        assert keys.get(blob_key(prefix, digest)) == len(data)
    assert keys.get(blob_key(prefix, img.manifest_digest)) == len(img.manifest)
    assert_nothing_staged(prefix)
    # nothing of the blobs on the local disk
    assert not os.path.exists(os.path.join(s3srv.data_dir, "blobs", "sha256"))

    dst = tmp_path / "dst"
    skopeo.copy(ref, f"oci:{dst}:v1")
    for digest, data in list(img.blobs.items()) + [(img.manifest_digest, img.manifest)]:
        got = (dst / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
        assert got == data, digest

    # the same image again (every blob known): a second push stores nothing new
    skopeo.copy(f"oci:{src}:v1", f"docker://{s3srv.host}/library/{unique}-again:v1")
    assert s3_keys(prefix + "blobs/") == keys


def test_blob_head_get_range(s3srv, prefix, unique):
    reg = s3srv.registry()
    repo = f"library/{unique}"
    data = os.urandom(5 * MIB + 321)  # several reader windows
    digest = reg.push_blob(repo, data)  # monolithic: POST then PUT with the body
    empty = reg.push_blob(repo, b"")
    assert blob_key(prefix, digest) in s3_keys(prefix + "blobs/")

    r = reg.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data), describe(r)
    r = reg.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and r.content == data, describe(r)
    for first, last in ((0, 0), (100, 299_999), (len(data) - 10, len(data) - 1),
                        (4 * MIB - 5, 5 * MIB + 5)):
        r = reg.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={first}-{last}"})
        assert r.status_code == 206, describe(r)
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert r.content == data[first:last + 1]
    r = reg.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416, describe(r)
    r = reg.get(f"/v2/{repo}/blobs/{empty}")
    assert r.status_code == 200 and r.content == b"", describe(r)
    assert_nothing_staged(prefix)


@pytest.fixture
def nodes(servers, tmp_path, prefix):
    """Two processes sharing the database (the trick of test_two_nodes.py: the second's
    data directory links to the first's wharf.db and token key) and the bucket."""
    a = servers.new(env=s3_env(prefix), name="node-a")
    b_dir = tmp_path / "node-b" / "data"
    b_dir.mkdir(parents=True, mode=0o700)
    for name in ("wharf.db", "token.key"):  # blobs and staging are in the bucket
        os.symlink(os.path.join(a.data_dir, name), b_dir / name)
    b = servers.new(env=s3_env(prefix), data_dir=str(b_dir), name="node-b")
    return a, b


def test_chunked_upload_across_two_nodes(nodes, prefix, unique):
    a, b = nodes
    ra, rb = a.registry(), b.registry()
    repo = f"library/{unique}"
    # chunks below, across and exactly at part boundaries (parts are 8 MiB)
    sizes = [3 * MIB + 17, 7 * MIB, 6 * MIB - 17, 9 * MIB + 5, 1]
    data = os.urandom(sum(sizes))
    digest = sha256_digest(data)

    loc = ra.start_upload(repo)
    off = 0
    for i, n in enumerate(sizes):
        loc = chunk((rb, ra)[i % 2], loc, data[off:off + n], off)
        off += n
    st = ra.get(loc)
    assert st.status_code == 204 and st.headers["Range"] == f"0-{len(data) - 1}", describe(st)
    # staged meanwhile: one multipart upload and the tail past its last part
    assert len(s3_multipart(prefix + "uploads/")) == 1
    r = rb.put(loc, params={"digest": digest}, headers=OCTET)
    assert r.status_code == 201, describe(r)

    for reg in (ra, rb):
        r = reg.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200 and r.content == data, describe(r)
    assert s3_keys(prefix + "blobs/") == {blob_key(prefix, digest): len(data)}
    assert_nothing_staged(prefix)


def test_node_killed_mid_chunk(nodes, prefix, unique):
    """A node dies after its chunk sent a part: the part and its multipart upload are
    no part of the session; the chunk sent again through the other node completes the
    blob, and the dead node's multipart upload is aborted by the commit."""
    a, b = nodes
    ra, rb = a.registry(), b.registry()
    repo = f"library/{unique}"
    data = os.urandom(20 * MIB)
    loc = ra.start_upload(repo)
    loc = chunk(ra, loc, data[:3 * MIB], 0)
    sent, finished = threading.Event(), threading.Event()

    def slow_body():
        yield data[3 * MIB:14 * MIB]  # a part goes out (3 MiB tail + 5 MiB)
        sent.set()
        finished.wait(60)
        yield data[14 * MIB:]

    def push_to_a():
        try:
            requests.patch(ra.url(loc), data=slow_body(), headers=OCTET,
                           auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=90)
        except requests.RequestException:
            pass

    t = threading.Thread(target=push_to_a, daemon=True)
    t.start()
    try:
        assert sent.wait(30)
        wait_until(lambda: s3_multipart(prefix + "uploads/"), 30,
                   "node A to send a part of the chunk")
        a.kill()
        st = rb.get(loc)
        assert st.status_code == 204 and st.headers["Range"] == f"0-{3 * MIB - 1}", describe(st)

        def retried():
            r = rb.patch(loc, data=data[3 * MIB:], headers={
                **OCTET, "Content-Range": f"{3 * MIB}-{len(data) - 1}"})
            if r.status_code == 416 and "another request" in r.text:
                return False  # node A's lease has not run out yet
            assert r.status_code == 202, describe(r)
            return True

        wait_until(retried, 40, "the dead node's lease on the session to run out",
                   interval=0.5)
        digest = sha256_digest(data)
        r = rb.put(loc, params={"digest": digest}, headers=OCTET)
        assert r.status_code == 201, describe(r)
        g = rb.get(f"/v2/{repo}/blobs/{digest}")
        assert g.status_code == 200 and g.content == data
        assert_nothing_staged(prefix)
    finally:
        finished.set()
        t.join(30)


def test_sweeps_remove_expired_and_orphaned_sessions(servers, prefix):
    """At start, with uploads.idle_ttl passed: a session whose row expired is removed
    through its saved state, and the staged objects of a session the database does not
    know (a monolithic push cut short by a crash) are removed too."""
    srv = servers.new(env=s3_env(prefix, WHARF_UPLOAD_IDLE_TTL="1"))
    reg = srv.registry()
    loc = reg.start_upload("library/idle")
    loc = chunk(reg, loc, os.urandom(9 * MIB), 0)  # a part and a tail staged
    srv.stop()
    s3_put(f"{prefix}uploads/mono-0123456789abcdef/tail-5", b"12345")
    assert len(s3_keys(prefix + "uploads/")) == 2 and len(s3_multipart(prefix + "uploads/")) == 1
    t0 = time.time()
    wait_until(lambda: time.time() - t0 > 1.5, 5, "both to be idle for uploads.idle_ttl")
    srv.mark_log()
    srv.start()
    wait_until(lambda: not s3_keys(prefix + "uploads/") and not s3_multipart(prefix + "uploads/"),
               10, "both sessions to be swept")
    assert "removed 2 abandoned upload session(s)" in srv.log_since_mark()
    r = srv.registry().get(loc)
    assert r.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in r.text, describe(r)


def test_cancel_leaves_nothing_staged(s3srv, prefix, unique):
    reg = s3srv.registry()
    repo = f"library/{unique}"
    loc = reg.start_upload(repo)
    loc = chunk(reg, loc, os.urandom(10 * MIB), 0)  # one part out, a tail kept
    assert s3_multipart(prefix + "uploads/") != []
    assert s3_keys(prefix + "uploads/") != {}
    r = reg.delete(loc)
    assert r.status_code == 204, describe(r)
    assert_nothing_staged(prefix)
    r = reg.get(loc)
    assert r.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in r.text, describe(r)
    assert s3_keys(prefix) == {}


def test_digest_mismatch_stores_nothing(s3srv, prefix, unique):
    reg = s3srv.registry()
    repo = f"library/{unique}"
    for sizes in ([1000], [9 * MIB, 2 * MIB]):  # in the buffer only; with parts
        data = os.urandom(sum(sizes))
        wrong = sha256_digest(data + b"x")
        loc = reg.start_upload(repo)
        off = 0
        for n in sizes:
            loc = chunk(reg, loc, data[off:off + n], off)
            off += n
        r = reg.put(loc, params={"digest": wrong}, headers=OCTET)
        assert r.status_code == 400 and "DIGEST_INVALID" in r.text, describe(r)
        r = reg.head(f"/v2/{repo}/blobs/{wrong}")
        assert r.status_code == 404, describe(r)
    assert s3_keys(prefix + "blobs/") == {}
    assert_nothing_staged(prefix)


def test_wrong_secret_or_bucket_fails_the_start(servers, prefix):
    for over, says in (({"WHARF_S3_SECRET_KEY": "not-the-secret"},
                        "the access key or secret key is refused"),
                       ({"WHARF_S3_BUCKET": "no-such-bucket-here"}, "there is no such bucket")):
        srv = servers.new(env=s3_env(prefix, **over), start=False)
        with pytest.raises(RuntimeError) as e:
            srv.start()
        msg = str(e.value)
        assert "storage (s3)" in msg and says in msg, msg
        assert "not-the-secret" not in msg
    srv = servers.new(env=s3_env(prefix, WHARF_S3_BUCKET=""), start=False)
    with pytest.raises(RuntimeError) as e:
        srv.start()
    assert "storage.s3.bucket" in str(e.value), str(e.value)


def test_config_check_masks_the_secret(servers, prefix):
    srv = servers.new(env=s3_env(prefix), start=False)
    p = srv.cli("config", "check")
    assert p.returncode == 0, p.stderr
    assert 'storage.driver: "s3"' in p.stdout or "driver: \"s3\"" in p.stdout, p.stdout
    assert S3["SECRET_KEY"] not in p.stdout
    assert "********" in p.stdout


def test_backup_refuses_with_s3(s3srv):
    p = s3srv.cli("backup", os.path.join(os.path.dirname(s3srv.data_dir), "bk"))
    assert p.returncode != 0
    assert "bucket versioning" in p.stderr and "docs/deploy.md" in p.stderr, p.stderr


def test_volumes_and_health(s3srv):
    from apiclient import Api
    api = Api(s3srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    r = api.get("/systeminfo/volumes")
    assert r.status_code == 200 and r.json() == {"storage": []}, describe(r)
    r = api.get("/health")
    assert r.status_code == 200, describe(r)
    comps = {c["name"]: c["status"] for c in r.json()["components"]}
    assert comps["storage"] == "healthy", r.json()


def test_scan_reads_layers_from_s3(s3srv, skopeo, pinned_bookworm, prefix):
    from test_scan_registry import REPO, Scans, assert_matches_cli, cli_report, import_db
    import_db(s3srv, "debian")
    s = Scans(s3srv, "s3scan")
    s.api.create_project("s3scan")
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert blob_key(prefix, digest) in s3_keys(prefix + "blobs/")
    r = s.scan(digest)
    assert r.status_code == 202, describe(r)
    o = s.wait_status(digest, "Success", "Error")
    rep = cli_report(s3srv, pinned_bookworm)
    assert rep["vulnerabilities"], "the fixture database finds nothing in the pinned image"
    assert_matches_cli(o, rep, digest)
    assert REPO


def test_redirect_to_presigned_urls(servers, skopeo, tmp_path, prefix, unique):
    srv = servers.new(env=s3_env(prefix, WHARF_S3_REDIRECT="true"))
    reg = srv.registry()
    repo = f"library/{unique}"
    data = os.urandom(3 * MIB + 1)
    digest = reg.push_blob(repo, data)
    r = reg.get(f"/v2/{repo}/blobs/{digest}", allow_redirects=False)
    assert r.status_code == 307, describe(r)
    loc = r.headers["Location"]
    assert loc.startswith(f"{S3['ENDPOINT']}/{S3['BUCKET']}/{blob_key(prefix, digest)}?"), loc
    assert "X-Amz-Signature=" in loc and S3["SECRET_KEY"] not in loc
    # the store checks the signature: the URL reads the blob, a changed one is refused
    got = requests.get(loc, timeout=30)
    assert got.status_code == 200 and got.content == data
    got = requests.get(loc, headers={"Range": "bytes=10-19"}, timeout=30)
    assert got.status_code == 206 and got.content == data[10:20]
    assert requests.get(loc.replace("X-Amz-Expires=1200", "X-Amz-Expires=1201"),
                        timeout=30).status_code == 403
    other = blob_key(prefix, sha256_digest(b"x"))
    assert requests.get(loc.replace(blob_key(prefix, digest), other),
                        timeout=30).status_code == 403
    # HEAD is answered by wharf; a client following the redirect gets the bytes
    r = reg.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data), describe(r)
    r = reg.get(f"/v2/{repo}/blobs/{digest}", allow_redirects=True)
    assert r.status_code == 200 and r.content == data, describe(r)
    assert r.history and r.history[0].status_code == 307

    # skopeo pulls through the redirects, bit-identical
    img = make_image(layers=2, file_size=256 * 1024)
    src = tmp_path / "src"
    write_image(Layout(str(src)), img, "v1")
    ref = f"docker://{srv.host}/library/{unique}:v1"
    skopeo.copy(f"oci:{src}:v1", ref)
    dst = tmp_path / "dst"
    skopeo.copy(ref, f"oci:{dst}:v1")
    for d, blob in img.blobs.items():
        assert (dst / "blobs" / "sha256" / d.split(":")[1]).read_bytes() == blob, d


def test_gc_frees_the_bucket(servers, prefix):
    """Garbage collection on the S3 driver: after a repository is deleted and a run,
    the bucket holds exactly the blobs of what is still referenced (a blob shared with
    a surviving image stays), and a dry run before deletes nothing."""
    from test_gc import FAST, delete_repo, referenced, run_gc, small_image

    srv = servers.new(env=s3_env(prefix, **FAST))
    reg = srv.registry()
    shared, own = small_image("s3gc-shared"), small_image("s3gc-own")
    reg.push_image("library/a", shared, "v1")
    reg.push_image("library/a", own, "v2")
    reg.push_image("library/b", shared, "v1")

    def in_bucket() -> dict:
        keys = s3_keys(prefix + "blobs/")
        return {"sha256:" + k.rsplit("/", 1)[1]: size for k, size in keys.items()}

    assert in_bucket() == referenced(shared, own)
    delete_repo(srv, "library", "a")
    dry = run_gc(srv, dry_run=True)
    assert dry["blobs_deleted"] == len(referenced(own)), dry
    assert in_bucket() == referenced(shared, own), "a dry run deleted something"
    item = run_gc(srv)
    assert item["blobs_deleted"] == len(referenced(own)), item
    assert item["bytes_freed"] == sum(referenced(own).values()), item
    assert in_bucket() == referenced(shared)
    for d, data in shared.blobs.items():  # the surviving image is whole
        r = reg.get(f"/v2/library/b/blobs/{d}")
        assert r.status_code == 200 and r.content == data, describe(r)
    assert_nothing_staged(prefix)
