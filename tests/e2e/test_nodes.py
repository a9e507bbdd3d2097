"""Several nodes (docs/deploy.md): a throwaway PostgreSQL (scripts/pg-up.sh), two
`wharf serve` with `db.driver: postgres` on the same database, the same token key
(`auth.token_key`), and nginx in front (round robin, request buffering off, as the page
says). Every test runs twice, once for each blob store the nodes can share (the
`cluster` fixture's parameter):

  * `dir`: one directory both nodes' data directories link `blobs` and `uploads` to;
  * `s3`: a bucket of radosgw (Ceph's S3 gateway, `storage.driver: s3`), each node's
    keys under the test's own prefix: blobs, multipart uploads and the tails of chunked
    uploads in the bucket, the state of a session's multipart upload (upload id, part
    ETags, hash state) in the database's `upload` row.

Each node keeps its own data directory, lock and vulnerability database. Shown, through
nginx unless the point is to pick a node:

  * a chunked push whose PATCHes alternate between the nodes (their access logs say so),
    the session's state in the database between them (on S3: a multipart upload with a
    part out), the blob pulled back bit-identical and nothing left staged;
  * a skopeo push through nginx pulled from each node directly, bit-identical;
  * a scan queued on a node whose scan workers all ended (the failpoint `scan.worker`)
    run by the other, its result read through the first;
  * forty images pushed at once through nginx into an `auto_scan` project: each scanned
    exactly once, by one node or the other, both taking part;
  * a node SIGKILLed between two chunks of a push, the push finished through nginx on the
    other, nothing lost;
  * a node SIGKILLed in the middle of a chunk (on S3, after a part of it went out): the
    client's PATCH gets nginx's 502, the same chunk sent again answers 416 while the dead
    node's upload lease (10 s) runs on S3, at once in a shared directory (the staged file's
    lock died with the node), then 202 through the other node; the blob whole,
    the dead node's stray part or bytes gone;
  * (S3 only) radosgw unreachable for a while: chunks, monolithic pushes and pulls
    answer OCI errors, no half blob is visible, the session keeps what it had accepted,
    health says storage is unhealthy; once it is back the same requests succeed;
  * failed logins alternating between the nodes throttled at the count of one node, and a
    portal session made on one node honoured by the other;
  * a project setting, the system's CVE allowlist and a project's own list changed on one
    node obeyed by the other's pull gate at the next pull (the gate's caches follow the
    database's data version);
  * a scan job held Running by a node that is then SIGKILLed taken back by the other node
    once its lease ended (`scan.lease` set to 5 s), not before;
  * (`dir` only) garbage collection: a run whose node is SIGKILLed finished by the other;
    a run started on one node worked by both (their counts adding up exactly); a run both
    work stopped through the API, the helping node stopping within about a second;
  * (dir only) the same vulnerability database update imported on both nodes: one
    re-match run (named by the database's content), done by one node, the other finding
    it done; the changes answered through either node;
  * (dir only) a node SIGKILLed mid-re-match (the failpoint `rematch.hold`): the other,
    with the same database, finishes the run from its cursor once the lease ended.

Skipped where PostgreSQL 15 or nginx is missing (scripts/deps.sh test), unless
WHARF_NODES_TESTS=1 (CI), where that is a failure. The `s3` variants need radosgw
(WHARF_S3_TEST_*, see s3bucket.py): tests/run.sh runs them in its Ceph window, where
radosgw is up (`-k s3` there); elsewhere they are skipped, unless WHARF_NODES_TESTS=1 and
WHARF_S3_TESTS=1, where a missing radosgw is a failure.
"""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apiclient import Api, describe
from conftest import REPO_ROOT, free_port, wait_until
from ocilayout import MT_CONFIG, MT_LAYER_GZIP, MT_MANIFEST, descriptor, sha256_digest
from regclient import ADMIN_PASSWORD, ADMIN_USER, Registry
from s3bucket import S3, s3_empty, s3_env, s3_keys, s3_multipart
from test_deploy import Nginx
from test_gc import admin, assert_disk_is, referenced, start_gc, wait_gc_end, wait_gc_progress
from test_gc import small_image as gc_image
from test_scan_registry import (MIME, REPO, Scans, assert_matches_cli, cli_report, import_db,  # noqa: F401
                                proj)  # (a fixture)
from test_skopeo import assert_layout_holds_image

OCTET = {"Content-Type": "application/octet-stream"}
REQUIRED = os.environ.get("WHARF_NODES_TESTS") == "1"
S3_REQUIRED = REQUIRED and os.environ.get("WHARF_S3_TESTS") == "1"
MIB = 1024 * 1024


def missing(what):
    if REQUIRED:
        pytest.fail(f"WHARF_NODES_TESTS=1 but {what} (bash scripts/deps.sh test)", pytrace=False)
    pytest.skip(f"{what} (bash scripts/deps.sh test)")


@pytest.fixture(scope="module")
def pg():
    """The DSN of a throwaway PostgreSQL, stopped after the module."""
    if not os.path.exists("/usr/lib/postgresql/15/bin/initdb"):
        missing("postgresql-15 is not installed")
    out = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "pg-up.sh")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    env = dict(line.split("=", 1) for line in out.stdout.split())
    yield env["WHARF_TEST_PG_DSN"]
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "pg-down.sh"), env["WHARF_PG_ROOT"]],
                   check=True, timeout=60)


class Front:
    """nginx in front of the nodes: what a client sees."""

    def __init__(self, port):
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"

    def registry(self):
        return Registry(self.url)


class Cluster:
    """Nodes on one database schema, one blob store and one token key. The blob store:
    `dir`, a directory the nodes' data directories link `blobs` and `uploads` to; `s3`,
    the bucket under `prefix`, reached at `endpoint` (radosgw, or a relay to it)."""

    def __init__(self, servers, tmp_path, dsn, store, prefix=None):
        self.servers = servers
        self.tmp = tmp_path
        self.dsn = dsn
        self.store = store
        self.prefix = prefix
        self.endpoint = S3["ENDPOINT"]
        self.shared = tmp_path / "shared"
        if store == "dir":
            for name in ("blobs", "uploads"):
                (self.shared / name).mkdir(parents=True)
        self.key = tmp_path / "token.key"
        self.nodes = []

    def node(self, name, env=None, start=True):
        d = self.tmp / name / "data"
        d.mkdir(parents=True, mode=0o700)
        e = {"WHARF_DB_DRIVER": "postgres", "WHARF_DB_DSN": self.dsn, "WHARF_DB_POOL_SIZE": "4"}
        if self.store == "dir":
            for sub in ("blobs", "uploads"):
                os.symlink(self.shared / sub, d / sub)
        else:
            e.update(s3_env(self.prefix, WHARF_S3_ENDPOINT=self.endpoint))
        if self.key.exists():
            e["WHARF_TOKEN_KEY"] = str(self.key)
        e.update(env or {})
        srv = self.servers.new(env=e, data_dir=str(d), name=name, start=start)
        if start and not self.key.exists():
            # the first node generated the key: every node (it too, from now on) shares it
            shutil.copyfile(os.path.join(srv.data_dir, "token.key"), self.key)
            os.chmod(self.key, 0o600)
            srv.extra_env["WHARF_TOKEN_KEY"] = str(self.key)
        if start:  # the metadata is in PostgreSQL: no wharf.db beside the blobs
            assert not os.path.exists(os.path.join(srv.data_dir, "wharf.db"))
        self.nodes.append(srv)
        return srv

    def blobs(self):
        """Digest -> size of every blob in the shared store."""
        if self.store == "dir":
            root = self.shared / "blobs" / "sha256"
            return {"sha256:" + f.name: f.stat().st_size for f in root.glob("*/*")}
        keys = s3_keys(self.prefix + "blobs/")
        return {"sha256:" + k.rsplit("/", 1)[1]: n for k, n in keys.items()}

    def staged(self):
        """What the store holds for upload sessions: files of `uploads/`, or the bucket's
        objects and multipart uploads under `uploads/`."""
        if self.store == "dir":
            return sorted(f.name for f in (self.shared / "uploads").iterdir()
                          if not f.name.startswith(".tmp-"))
        return sorted(s3_keys(self.prefix + "uploads/")) + [
            "multipart " + k for k in s3_multipart(self.prefix + "uploads/")]

    def assert_blobs_in_shared_store(self):
        """On S3 no node keeps a blob on its own disk."""
        if self.store == "s3":
            for srv in self.nodes:
                assert not os.path.exists(os.path.join(srv.data_dir, "blobs", "sha256")), \
                    srv.name

    def sql(self, query):
        """Rows of `query` on the nodes' schema (psql's unaligned output; the separators
        are ASCII's record and unit separators: values may hold newlines)."""
        p = subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-F", "\x1f", "-R",
                            "\x1e", self.dsn, "-c", query],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return [row.split("\x1f") for row in p.stdout.rstrip("\n").split("\x1e") if row]


@pytest.fixture(params=["dir", "s3"])
def cluster(request, pg, servers, tmp_path, unique):
    store = request.param
    if store == "s3" and not S3["ENDPOINT"]:
        if S3_REQUIRED:
            pytest.fail("WHARF_NODES_TESTS=1 and WHARF_S3_TESTS=1 but no radosgw: "
                        "WHARF_S3_TEST_ENDPOINT is not set (tests/run.sh starts one with "
                        "scripts/ceph.sh and runs these in its Ceph window)", pytrace=False)
        pytest.skip("no S3 store (WHARF_S3_TEST_ENDPOINT; tests/run.sh runs the s3 variants "
                    "while radosgw is up)")
    schema = "n_" + hashlib.sha256(unique.encode()).hexdigest()[:16]
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", pg, "-c", f"CREATE SCHEMA {schema}"],
                   check=True, capture_output=True, timeout=30)
    prefix = f"n-{unique}/" if store == "s3" else None
    yield Cluster(servers, tmp_path, f"{pg}?options=-csearch_path%3D{schema}", store, prefix)
    if prefix:
        s3_empty(prefix)


@pytest.fixture
def front(tmp_path):
    """nginx as docs/deploy.md configures it for several nodes, over plain HTTP on a free
    loopback port: call it with the nodes."""
    if shutil.which("nginx") is None:
        missing("nginx is not installed")
    d = tmp_path / "nginx"
    d.mkdir()
    n = Nginx(d)
    started = []

    def start(*nodes):
        port = free_port()
        ups = "".join(f"    server {s.host} max_fails=3 fail_timeout=10s;\n" for s in nodes)
        n.write(
            "upstream wharf {\n" + ups + "    keepalive 32;\n}\n"
            "server {\n"
            f"  listen 127.0.0.1:{port};\n"
            "  client_max_body_size 0;\n"
            "  proxy_request_buffering off;\n"
            "  proxy_buffering off;\n"
            "  location / {\n"
            "    proxy_pass http://wharf;\n"
            "    proxy_http_version 1.1;\n"
            "    proxy_set_header Connection \"\";\n"
            "    proxy_set_header Host $http_host;\n"
            "    proxy_read_timeout 120s;\n"
            "    proxy_send_timeout 120s;\n"
            "  }\n"
            "}\n")
        n.start()
        started.append(n)
        return Front(port)

    yield start
    for x in started:
        x.stop()


def two_nodes(cluster, front, env_a=None, env_b=None):
    a = cluster.node("node-a", env_a)
    b = cluster.node("node-b", env_b)
    return a, b, front(a, b)


def patch_lines(srv, repo):
    """The PATCHes of `repo`'s uploads in the node's access log."""
    return re.findall(rf"access PATCH /v2/{re.escape(repo)}/blobs/uploads/\S+ 202 ",
                      srv.log_text())


def chunk(reg, loc, data, start):
    r = reg.patch(loc, data=data, headers={
        **OCTET, "Content-Range": f"{start}-{start + len(data) - 1}"})
    assert r.status_code == 202, describe(r)
    assert r.headers["Range"] == f"0-{start + len(data) - 1}", describe(r)
    return r.headers["Location"]


def upload_row(cluster, loc):
    """(accepted bytes, writer state) of the session `loc` names, from the database."""
    uid = urllib.parse.urlsplit(loc).path.rsplit("/", 1)[1]
    rows = cluster.sql(f"SELECT accepted_bytes, state FROM upload WHERE id = '{uid}'")
    assert len(rows) == 1, (uid, rows)
    return int(rows[0][0]), rows[0][1]


def test_chunked_push_alternates_between_nodes(cluster, front, unique):
    a, b, fr = two_nodes(cluster, front)
    reg = fr.registry()
    repo = f"library/{unique}"
    # on S3 parts are 8 MiB: the first PATCH leaves a tail, the second sends part 1 from
    # the tail read back and its own bytes, the PUT sends part 2 and completes the upload
    data = os.urandom(17 * MIB + 777)
    digest = sha256_digest(data)
    parts = [data[:5 * MIB], data[5 * MIB:12 * MIB], data[12 * MIB:]]
    loc = reg.start_upload(repo)                                   # POST
    loc = chunk(reg, loc, parts[0], 0)                             # PATCH
    accepted, state = upload_row(cluster, loc)
    assert accepted == len(parts[0]), (accepted, state)
    loc = chunk(reg, loc, parts[1], len(parts[0]))                 # PATCH
    accepted, state = upload_row(cluster, loc)
    assert accepted == 12 * MIB, (accepted, state)
    if cluster.store == "s3":
        # the multipart upload the next node resumes: its id and part 1's ETag in the row,
        # the 4 MiB past the part in a tail object
        mpu = re.search(r"^mpu (\S+)$", state, re.M)
        assert mpu and re.search(rf"^part 1 {8 * MIB} \S+$", state, re.M), state
        assert not re.search(r"^part 2 ", state, re.M), state
        assert len(s3_multipart(cluster.prefix + "uploads/")) == 1
        tails = {k.rsplit("/", 1)[1]: n for k, n in s3_keys(cluster.prefix + "uploads/").items()}
        assert tails.get(f"tail-{12 * MIB}") == 4 * MIB, tails
    r = reg.put(loc, params={"digest": digest}, data=parts[2], headers=OCTET)  # PUT
    assert r.status_code == 201, describe(r)
    # round robin: each node served one of the two PATCHes
    assert len(patch_lines(a, repo)) == 1 and len(patch_lines(b, repo)) == 1, (
        patch_lines(a, repo), patch_lines(b, repo))
    assert cluster.sql("SELECT id FROM upload") == []
    assert cluster.staged() == []
    assert cluster.blobs() == {digest: len(data)}
    cluster.assert_blobs_in_shared_store()
    g = reg.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and sha256_digest(g.content) == digest, describe(g)
    for srv in (a, b):
        g = srv.registry().get(f"/v2/{repo}/blobs/{digest}")
        assert g.status_code == 200 and g.content == data, describe(g)


def test_skopeo_push_through_nginx_pulled_from_each_node(cluster, front, skopeo, image_layout,
                                                         tmp_path, unique):
    a, b, fr = two_nodes(cluster, front)
    src, img = image_layout
    skopeo.copy(f"oci:{src}:v1", f"docker://{fr.host}/library/{unique}:v1")
    stored = cluster.blobs()
    for digest, data in list(img.blobs.items()) + [(img.manifest_digest, img.manifest)]:
        assert stored.get(digest) == len(data), digest
    assert cluster.staged() == []
    cluster.assert_blobs_in_shared_store()
    for srv in (a, b):
        out = tmp_path / f"pulled-{srv.name}"
        skopeo.copy(f"docker://{srv.host}/library/{unique}:v1", f"oci:{out}:v1")
        assert_layout_holds_image(str(out), "v1", img)  # byte for byte, digests checked


def test_scan_queued_on_one_node_run_by_the_other(cluster, front, skopeo, pinned_bookworm, proj):
    # A's scan workers all end at their start: A queues, it cannot scan
    a = cluster.node("node-a", {"WHARF_SCAN_WORKERS": "2", "WHARF_FAILPOINTS": "scan.worker=1+:EIO"})
    b = cluster.node("node-b", {"WHARF_SCAN_WORKERS": "1"})
    import_db(b)  # the vulnerability database is each node's own file
    health = Api(a.url, auth=(ADMIN_USER, ADMIN_PASSWORD)).get("/health").json()
    jobs = {c["name"]: c for c in health["components"]}["jobservice"]
    assert jobs["error"] == "2 of 2 scan workers have stopped", health
    fr = front(a, b)
    sa = Scans(a, proj)
    sa.api.create_project(proj)
    skopeo.copy(pinned_bookworm.oci, f"docker://{fr.host}/{proj}/{REPO}:1")
    digest = pinned_bookworm.manifest_digest
    b.mark_log()
    r = sa.scan(digest)                      # queued through A
    assert r.status_code == 202, describe(r)
    o = sa.wait_status(digest, "Success")    # read through A
    assert o["summary"]["total"] > 0, o
    started = f"scan {o['report_id']} of {digest} started"
    assert started in b.log_since_mark(), b.log_since_mark()
    assert started not in a.log_text()
    # B read the layer from the shared store (on S3 through the S3 reader: no node has
    # a blob on its disk) and found what `wharf scan` finds in the image
    assert digest in cluster.blobs()
    cluster.assert_blobs_in_shared_store()
    assert_matches_cli(o, cli_report(b, pinned_bookworm), digest)


def small_image(i):
    """A one-file layer and a config of its own: image `i`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        body = f"file {i}\n".encode()
        info = tarfile.TarInfo(f"f{i}.txt")
        info.size = len(body)
        t.addfile(info, io.BytesIO(body))
    layer = gzip.compress(buf.getvalue(), mtime=0)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created_by": f"image {i}",
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                           "config": descriptor(MT_CONFIG, cfg),
                           "layers": [descriptor(MT_LAYER_GZIP, layer)]}).encode()
    return layer, cfg, manifest


def test_scan_queue_shared_each_job_run_once(cluster, front, proj):
    env = {"WHARF_SCAN_WORKERS": "3"}
    a = cluster.node("node-a", env)
    b = cluster.node("node-b", env, start=False)
    for srv in (a, b):
        import_db(srv, "debian")
    b.start()
    fr = front(a, b)
    api = Api(fr.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(proj, metadata={"auto_scan": "true"})
    reg = fr.registry()
    n = 40

    def push(i):
        layer, cfg, manifest = small_image(i)
        reg.push_blob(f"{proj}/app", layer)
        reg.push_blob(f"{proj}/app", cfg)
        r = reg.push_manifest(f"{proj}/app", f"t{i}", manifest)
        assert r.status_code == 201, describe(r)
        return sha256_digest(manifest)

    with ThreadPoolExecutor(8) as ex:
        digests = set(ex.map(push, range(n)))

    def statuses():
        r = api.get(f"/projects/{proj}/repositories/app/artifacts",
                    params={"with_scan_overview": "true", "page_size": 100})
        assert r.status_code == 200, describe(r)
        st = {x["digest"]: next(iter(x.get("scan_overview", {}).values()), {}).get("scan_status")
              for x in r.json()}
        return st if len(st) == n and all(v in ("Success", "Error") for v in st.values()) else None

    st = wait_until(statuses, 120, "every image scanned")
    assert set(st) == digests and set(st.values()) == {"Success"}, st
    pattern = r"scan \w+ of (sha256:\w+) started \(attempt (\d+)\)"
    runs = {srv.name: re.findall(pattern, srv.log_text()) for srv in (a, b)}
    every = runs["node-a"] + runs["node-b"]
    assert sorted(d for d, _ in every) == sorted(digests), runs  # each once, none twice
    assert all(att == "1" for _, att in every), runs
    assert runs["node-a"] and runs["node-b"], runs               # both nodes took part


def test_node_killed_between_chunks_push_finished_through_the_other(cluster, front, unique):
    a, b, fr = two_nodes(cluster, front)
    reg = fr.registry()
    repo = f"library/{unique}"
    # the first chunk fills a part: on S3 the dead node leaves a multipart upload open
    data = os.urandom(20 * MIB)
    digest = sha256_digest(data)
    loc = reg.start_upload(repo)
    loc = chunk(reg, loc, data[:9 * MIB], 0)
    if cluster.store == "s3":
        assert len(s3_multipart(cluster.prefix + "uploads/")) == 1
    served = a if patch_lines(a, repo) else b
    served.kill()                            # SIGKILL: no clean-up at all
    # nginx finds the dead node refusing connections and passes the requests to the other
    st = reg.get(loc)
    assert st.status_code == 204 and st.headers["Range"] == f"0-{9 * MIB - 1}", describe(st)
    loc = chunk(reg, loc, data[9 * MIB:15 * MIB], 9 * MIB)
    r = reg.put(loc, params={"digest": digest}, data=data[15 * MIB:], headers=OCTET)
    assert r.status_code == 201, describe(r)
    other = b if served is a else a
    assert len(patch_lines(other, repo)) >= 1
    assert cluster.staged() == [] and cluster.blobs() == {digest: len(data)}
    g = reg.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data, describe(g)
    served.start()                           # back, it serves the blob too
    g = served.registry().get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and sha256_digest(g.content) == digest, describe(g)


def test_node_killed_mid_chunk_chunk_sent_again_through_the_other(cluster, front, unique):
    """What a client sees when the node streaming its chunk dies: nginx's 502 for that
    PATCH; the same chunk sent again (the session's status says where it stands). On S3
    it answers 416 while the dead node's lease on the session runs (UPLOAD_LEASE_MS, 10 s,
    from its last renewal), then 202 through the other node; in a shared directory the
    session is held by a lock of the staged file, which ended with the dead process: 202
    at the first try."""
    a, b, fr = two_nodes(cluster, front)
    reg = fr.registry()
    repo = f"library/{unique}"
    data = os.urandom(20 * MIB)
    digest = sha256_digest(data)
    loc = reg.start_upload(repo)
    loc = chunk(reg, loc, data[:3 * MIB], 0)
    # round robin (one nginx worker): the next request goes to the node that did not
    # take this chunk; it is the one killed (the 502 below confirms it had the chunk)
    victim = a if patch_lines(b, repo) else b
    sent, finish = threading.Event(), threading.Event()
    answer = {}

    sent_at = []

    def slow_body():
        yield data[3 * MIB:14 * MIB]  # past a part: on S3 part 1 goes out
        sent_at.append(time.monotonic())
        sent.set()
        finish.wait(60)
        yield data[14 * MIB:]

    def patch_through_nginx():
        try:
            r = reg.patch(loc, data=slow_body(), headers=OCTET)
            answer["status"] = r.status_code
        except requests.RequestException as e:
            answer["error"] = e

    t = threading.Thread(target=patch_through_nginx, daemon=True)
    t.start()
    try:
        assert sent.wait(30)

        def part_out():
            if cluster.store == "s3":
                return s3_multipart(cluster.prefix + "uploads/")
            f = cluster.shared / "uploads" / urllib.parse.urlsplit(loc).path.rsplit("/", 1)[1]
            return f.exists() and f.stat().st_size > 8 * MIB
        wait_until(part_out, 30, "the node to store bytes of the chunk")
        victim.kill()
        killed = time.monotonic()
        finish.set()
        t.join(30)
        # the client's PATCH failed: nginx answers 502 (or the connection ends)
        assert answer.get("status") == 502 or "error" in answer, answer
        st = reg.get(loc)
        assert st.status_code == 204 and st.headers["Range"] == f"0-{3 * MIB - 1}", describe(st)
        seen = []

        def sent_again():
            seen.append(time.monotonic())
            r = reg.patch(loc, data=data[3 * MIB:], headers={
                **OCTET, "Content-Range": f"{3 * MIB}-{len(data) - 1}"})
            seen[-1] = (seen[-1], r.status_code)
            if r.status_code == 416:
                err = r.json()["errors"][0]
                assert err["code"] == "BLOB_UPLOAD_INVALID", describe(r)
                assert err["message"] == "another request is writing to this upload", describe(r)
                return False
            assert r.status_code == 202, describe(r)
            assert r.headers["Range"] == f"0-{len(data) - 1}", describe(r)
            return r.headers["Location"]

        loc = wait_until(sent_again, 30, "the dead node's lease on the session to end",
                         interval=0.5)
        if cluster.store != "s3":
            assert len(seen) == 1, seen  # the lock died with its process
        # the dead node renewed its lease (10 s) at the latest when the last bytes came,
        # at least every 3.3 s before: a retry within 6.6 s of that meets it
        elif seen[0][0] - sent_at[0] < 6.6:
            assert seen[0][1] == 416, seen
        assert all(st == 416 for _, st in seen[:-1]), seen
        assert seen[-1][0] - killed < 12, (killed, seen)  # soon after the lease ended
        r = reg.put(loc, params={"digest": digest}, headers=OCTET)
        assert r.status_code == 201, describe(r)
        assert cluster.staged() == [] and cluster.blobs() == {digest: len(data)}
        g = reg.get(f"/v2/{repo}/blobs/{digest}")
        assert g.status_code == 200 and g.content == data, describe(g)
    finally:
        finish.set()
        t.join(30)


class Relay:
    """A TCP relay from a loopback port to radosgw, which the test cuts (every connection
    closed, nothing listening: connections are refused) and opens again on the same port:
    the object store unreachable from the nodes for a while, radosgw itself untouched."""

    def __init__(self, endpoint):
        u = urllib.parse.urlsplit(endpoint)
        self.upstream = (u.hostname, u.port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.conns = set()
        self.listener = None
        self.open()

    def open(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return  # cut
            try:
                u = socket.create_connection(self.upstream, timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns.update((c, u))
            for src, dst in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        ls, self.listener = self.listener, None
        ls.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        ls.close()
        with self.lock:
            conns, self.conns = self.conns, set()
        for x in conns:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        if self.listener:
            self.cut()


def storage_health(srv):
    h = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD)).get("/health").json()
    return {c["name"]: c["status"] for c in h["components"]}["storage"]


@pytest.mark.parametrize("cluster", ["s3"], indirect=True)
def test_object_store_unreachable_for_a_while(cluster, front, unique):
    """radosgw out of the nodes' reach (the relay cut) for a while: every push answers an
    OCI error, no half blob is visible, a session keeps the bytes it had accepted, pulls
    answer an error (never a blob cut short), health reports storage unhealthy; once the
    store is back, the same requests succeed, through either node."""
    relay = Relay(S3["ENDPOINT"])
    cluster.endpoint = relay.url
    try:
        a, b, fr = two_nodes(cluster, front)
        reg = fr.registry()
        repo = f"library/{unique}"
        data = os.urandom(12 * MIB)
        digest = sha256_digest(data)
        old = os.urandom(300_000)
        old_digest = reg.push_blob(repo, old)
        mono = os.urandom(2 * MIB)
        mono_digest = sha256_digest(mono)
        layer, cfg, manifest = small_image(unique)
        ra = a.registry()
        for blob in (layer, cfg):
            ra.push_blob(repo, blob)
        assert ra.push_manifest(repo, "v1", manifest).status_code == 201
        loc = reg.start_upload(repo)
        loc = chunk(reg, loc, data[:3 * MIB], 0)   # a tail object, no part yet
        relay.cut()

        def oci_error(r, status):
            assert r.status_code == status, describe(r)
            assert r.headers["Content-Type"].startswith("application/json"), describe(r)
            errs = r.json()["errors"]
            assert errs and errs[0]["code"], describe(r)
            return errs[0]

        # each node in turn: a chunk that sends a part, a chunk kept in the tail, a PUT
        for srv in (a, b):
            node = srv.registry()
            r = node.patch(loc, data=data[3 * MIB:12 * MIB], headers={
                **OCTET, "Content-Range": f"{3 * MIB}-{12 * MIB - 1}"})
            oci_error(r, 500)
            r = node.patch(loc, data=data[3 * MIB:4 * MIB], headers={
                **OCTET, "Content-Range": f"{3 * MIB}-{4 * MIB - 1}"})
            oci_error(r, 500)
            r = node.put(loc, params={"digest": digest}, data=data[3 * MIB:], headers=OCTET)
            oci_error(r, 500)
            st = node.get(loc)                       # the session is as it was
            assert st.status_code == 204 and st.headers["Range"] == f"0-{3 * MIB - 1}", \
                describe(st)
            # a monolithic push: refused, and no blob to be seen
            r = node.post(f"/v2/{repo}/blobs/uploads/", params={"digest": mono_digest},
                          data=mono, headers=OCTET)
            oci_error(r, 500)
            r = node.head(f"/v2/{repo}/blobs/{mono_digest}")
            assert r.status_code == 404, describe(r)
            r = node.head(f"/v2/{repo}/blobs/{digest}")
            assert r.status_code == 404, describe(r)
            # a pull of a stored blob: an error, not a 200 cut short
            # a pull of a stored blob or manifest: the server's error, not "unknown" (the
            # blob is there: a client would give up on it, a cache keep the answer for a
            # year, as it keeps the blob's own)
            r = node.get(f"/v2/{repo}/blobs/{old_digest}")
            assert oci_error(r, 500)["code"] == "UNKNOWN", describe(r)
            assert "Cache-Control" not in r.headers and "ETag" not in r.headers, describe(r)
            if srv is b:  # A keeps the manifest it was pushed in memory; B reads the store
                r = node.get(f"/v2/{repo}/manifests/v1")
                assert oci_error(r, 500)["code"] == "UNKNOWN", describe(r)
            assert storage_health(srv) == "unhealthy"
        assert cluster.sql("SELECT accepted_bytes FROM upload") == [[str(3 * MIB)]]

        relay.open()                                 # back: the same requests succeed
        loc = chunk(reg, loc, data[3 * MIB:12 * MIB], 3 * MIB)
        r = reg.put(loc, params={"digest": digest}, headers=OCTET)
        assert r.status_code == 201, describe(r)
        r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": mono_digest}, data=mono,
                     headers=OCTET)
        assert r.status_code == 201, describe(r)
        for srv in (a, b):
            node = srv.registry()
            for d, blob in ((digest, data), (mono_digest, mono), (old_digest, old)):
                g = node.get(f"/v2/{repo}/blobs/{d}")
                assert g.status_code == 200 and sha256_digest(g.content) == d, describe(g)
                assert g.content == blob
            # the storage probe's outcome is kept for a second
            wait_until(lambda: storage_health(srv) == "healthy", 10,
                       f"{srv.name} to find its storage healthy again")
            r = node.get(f"/v2/{repo}/manifests/v1")
            assert r.status_code == 200 and r.content == manifest, describe(r)
        assert cluster.staged() == []
        stored = {digest: len(data), mono_digest: len(mono), old_digest: len(old)}
        for blob in (layer, cfg, manifest):
            stored[sha256_digest(blob)] = len(blob)
        assert cluster.blobs() == stored
    finally:
        relay.close()


def test_login_throttle_and_portal_session_across_nodes(cluster, front):
    a, b, fr = two_nodes(cluster, front)
    # a portal session made on A works on B
    s = requests.Session()
    r = s.post(a.url + "/c/login", data={"principal": ADMIN_USER, "password": ADMIN_PASSWORD},
               timeout=60)
    assert r.status_code == 200, describe(r)
    sid = re.match(r"sid=([0-9a-f]{64});", r.headers["Set-Cookie"]).group(1)
    me = requests.get(b.url + "/api/v2.0/users/current", cookies={"sid": sid}, timeout=30)
    assert me.status_code == 200 and me.json()["username"] == ADMIN_USER, describe(me)
    # test_auth.py's numbers (as on one node), the attempts alternating between the nodes
    statuses = []
    for i in range(8):
        srv = (a, b)[i % 2]
        statuses.append(requests.get(srv.url + "/v2/", auth=(ADMIN_USER, "Not-The-Passw0rd"),
                                     timeout=60).status_code)
    assert statuses[:6] == [401] * 6 and statuses[6:] == [429, 429], statuses
    for url in (a.url, b.url, fr.url):
        r = requests.get(url + "/v2/", auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=60)
        assert r.status_code == 429 and r.headers.get("Retry-After"), describe(r)


def test_project_setting_changed_on_one_node_obeyed_by_the_others_gate(cluster, front, skopeo,
                                                                        image_layout, proj):
    a, b, fr = two_nodes(cluster, front)
    api_a = Api(a.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    api_a.create_project(proj)
    src, img = image_layout
    skopeo.copy(f"oci:{src}:v1", f"docker://{fr.host}/{proj}/app:v1")
    path = f"/v2/{proj}/app/manifests/v1"

    def status_on_b():
        return b.registry().get(path).status_code

    assert status_on_b() == 200              # B's gate has read the project: cached
    api_a.ok(api_a.put(f"/projects/{proj}", {"metadata": {"prevent_vul": "true",
                                                           "severity": "critical"}}))
    r = b.registry().get(path)               # the next pull on B: gated (not scanned)
    assert r.status_code == 412 and r.json()["errors"][0]["code"] == "PROJECTPOLICYVIOLATION", \
        describe(r)
    api_a.ok(api_a.put(f"/projects/{proj}", {"metadata": {"prevent_vul": "false"}}))
    assert status_on_b() == 200


def test_scan_job_of_a_killed_node_taken_back_after_its_lease(cluster, front, skopeo,
                                                              pinned_bookworm, proj):
    """scan.lease set to 5 s on both nodes (the default, 60 s, would make this a minute)."""
    lease = {"WHARF_SCAN_LEASE": "5", "WHARF_SCAN_WORKERS": "1"}
    # A holds every job it claims Running (the failpoint scan.hold); B is not started yet,
    # so the job is A's
    a = cluster.node("node-a", {**lease, "WHARF_FAILPOINTS": "scan.hold=1+:EIO"})
    sa = Scans(a, proj)
    sa.api.create_project(proj)
    sa.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert sa.scan(digest).status_code == 202
    running = sa.wait_status(digest, "Running")
    wait_until(lambda: "failpoint scan.hold" in a.log_text(), 30, "A to hold the scan")
    b = cluster.node("node-b", lease, start=False)
    import_db(b)  # before it starts: its worker must find a database
    a.kill()
    killed = time.monotonic()
    b.start()
    sb = Scans(b, proj)
    o = sb.overview(digest)
    if time.monotonic() - killed < 3:  # A renewed within 1.25 s of its death: lease holds
        # a node starting takes back only its own jobs: A's stays Running until its lease ends
        assert o["scan_status"] == "Running", o
    o = sb.wait_status(digest, "Success")
    took = time.monotonic() - killed
    assert 3.5 <= took < 30, took  # not before A's lease (5 s after its last renewal) ended
    assert o["report_id"] == running["report_id"]  # the same job, taken back
    assert "queued again" in b.log_text()
    assert f"scan {o['report_id']} of {digest} started (attempt 2)" in b.log_text()


def seed_unreferenced(cluster, n, tag):
    """n blobs nothing references: files of the shared blob directory and rows in
    PostgreSQL (the blob trigger queues their reviews, as uploads would)."""
    values = []
    for i in range(n):
        data = i.to_bytes(4, "big") + tag
        hexd = hashlib.sha256(data).hexdigest()
        d = cluster.shared / "blobs" / "sha256" / hexd[:2]
        d.mkdir(parents=True, exist_ok=True)
        (d / hexd).write_bytes(data)
        values.append(f"('sha256:{hexd}', {len(data)}, 0)")
    sql = "INSERT INTO blob(digest, size, created_ms) VALUES " + ",".join(values) + ";"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", cluster.dsn, "-f", "-"], input=sql,
                   text=True, check=True, capture_output=True, timeout=120)


def blob_files(cluster):
    """How many blob files the shared directory holds (names only: a collector may be
    deleting them meanwhile)."""
    return sum(1 for _ in (cluster.shared / "blobs" / "sha256").glob("*/*"))


def gc_deleted(srv):
    """The node's own count of blobs its collectors deleted (/metrics)."""
    text = srv.registry(anonymous=True).get("/metrics").text
    m = re.search(r"^wharf_gc_blobs_deleted_total (\d+)$", text, re.M)
    assert m, text
    return int(m.group(1))


def gc_roles(a, b, gc_id):
    """(holder, helper) of run `gc_id`: the node that took it and the one helping it. A
    run started through A's API is usually taken by A, whose gc thread the request wakes,
    but B's own tick may come first: either may hold it."""
    def helper():
        helping = [n for n in (a, b) if f"gc: helping run {gc_id} (" in n.log_text()]
        return helping[0] if len(helping) == 1 else None
    h = wait_until(helper, 60, f"one node helping run {gc_id}")
    return (b if h is a else a), h


# the blobs are seeded as files of the shared directory (garbage collection on S3:
# test_s3_storage.py)
@pytest.mark.parametrize("cluster", ["dir"], indirect=True)
def test_gc_run_started_on_one_node_worked_by_both(cluster):
    """A collection of 20000 unreferenced blobs started on A is worked by B too: B's gc
    thread finds the Running run within a tick and runs workers of its own on it, claiming
    batches of the shared review queues as A's do. Both nodes delete (each node's
    wharf_gc_blobs_deleted_total), the two counts add up to exactly the seeded blobs, and
    so does the run's own count (increments from both, never overwritten); B's lines are in
    the run's log under its node name; exactly the referenced blobs remain, pullable from
    both nodes."""
    env = {"WHARF_GC_REVIEW_DELAY": "0"}
    a, b = cluster.node("node-a", env), cluster.node("node-b", env)
    keep, other = gc_image("nodes-help-keep"), gc_image("nodes-help-other")
    a.registry().push_image("library/keep", keep, "v1")
    b.registry().push_image("library/other", other, "v1")
    n = 20000
    seed_unreferenced(cluster, n, b"nodes-help")
    api = admin(a)
    gc_id = start_gc(api, workers=2)
    holder, helper = gc_roles(a, b, gc_id)
    item = wait_gc_end(api, gc_id, 300)
    log = api.get(f"/system/gc/{gc_id}/log").text
    assert item["job_status"] == "Success", (item, log[-3000:])
    # a helper's batch committed as A ended the run is added right after: the exact total
    # (never more) once the helper wrote its last progress
    item = wait_until(lambda: (lambda i: i if i["blobs_deleted"] >= n else None)(
        api.get(f"/system/gc/{gc_id}").json()), 10, "the helper's last counts")
    assert item["blobs_deleted"] == n, item
    by_holder, by_helper = gc_deleted(holder), gc_deleted(helper)
    assert by_holder > 0 and by_helper > 0, (by_holder, by_helper)
    assert by_holder + by_helper == n, (by_holder, by_helper)
    log = api.get(f"/system/gc/{gc_id}/log").text
    assert f"]:{helper.port}: helping this run: workers=2\n" in log, log[:3000]
    helped = sum(int(x) for x in re.findall(rf"\]:{helper.port}: helped: (\d+) blobs", log))
    assert helped == by_helper, (helped, by_helper, log[-3000:])
    assert re.search(rf"\]:{helper.port}: deleted blob sha256:[0-9a-f]{{64}} \(", log), \
        log[:3000]
    assert f"]:{holder.port}: helping" not in log  # the holder does not help itself
    assert f"gc: helping run {gc_id} (workers=2)" in helper.log_text()
    assert_disk_is(a, referenced(keep, other))
    for srv in (a, b):
        reg = srv.registry()
        for repo, img in (("library/keep", keep), ("library/other", other)):
            r = reg.get(f"/v2/{repo}/manifests/v1",
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            assert r.status_code == 200 and r.content == img.manifest, describe(r)
            for d, data in img.blobs.items():
                r = reg.get(f"/v2/{repo}/blobs/{d}")
                assert r.status_code == 200 and r.content == data, describe(r)


@pytest.mark.parametrize("cluster", ["dir"], indirect=True)
def test_gc_run_stopped_stops_the_helping_node_too(cluster):
    """A run that one node holds and the other helps, stopped through the API (PUT
    /system/gc/{id}) while both delete: the helper's workers stop within about a second of
    the request (its progress write reads the stop), as the holder's do; the run ends
    Stopped with blobs left, and its count is exactly what both nodes deleted. A second run
    collects the rest."""
    env = {"WHARF_GC_REVIEW_DELAY": "0"}
    a, b = cluster.node("node-a", env), cluster.node("node-b", env)
    keep = gc_image("nodes-stop-keep")
    a.registry().push_image("library/keep", keep, "v1")
    n = 40000
    seed_unreferenced(cluster, n, b"nodes-stop")
    api = admin(a)
    gc_id = start_gc(api, workers=1)
    holder, helper = gc_roles(a, b, gc_id)
    wait_until(lambda: gc_deleted(helper) > 0, 60, "the helper to delete")
    asked = time.monotonic()
    r = api.put(f"/system/gc/{gc_id}")
    assert r.status_code == 200, describe(r)
    item = wait_gc_end(api, gc_id, 30)
    assert item["job_status"] == "Stopped", item
    # the helper stops within about a second of the request: from 1.5 s after it to 3 s,
    # its count stays put (an observation window, not a wait for a condition)
    seen = []
    while time.monotonic() < asked + 3.0:
        seen.append((round(time.monotonic() - asked, 2), gc_deleted(helper)))
        time.sleep(0.1)
    late = {count for t, count in seen if t >= 1.5}
    assert len(late) == 1, ("the helper went on deleting after the stop", seen)
    by_helper = late.pop()
    left = blob_files(cluster) - len(referenced(keep))
    assert left > 0, "the run finished before the stop: seed more blobs"
    by_holder = by_holder_then = gc_deleted(holder)
    item = wait_until(
        lambda: (lambda i: i if i["blobs_deleted"] == by_holder + by_helper else None)(
            api.get(f"/system/gc/{gc_id}").json()), 10, "the run's count to be both nodes'")
    assert item["blobs_deleted"] == n - left, (item, left)
    assert gc_deleted(holder) == by_holder_then
    log = api.get(f"/system/gc/{gc_id}/log").text
    assert f"]:{helper.port}: helping this run: workers=1\n" in log, log[:3000]
    rest = start_gc(api, workers=1)
    item = wait_gc_end(api, rest, 300)
    assert item["job_status"] == "Success", item
    assert_disk_is(a, referenced(keep))


@pytest.mark.parametrize("cluster", ["dir"], indirect=True)
def test_gc_run_of_a_killed_node_finished_by_the_other(cluster, tmp_path):
    """A collection of 20000 unreferenced blobs (rows seeded into PostgreSQL, files into
    the shared blob directory) runs on A, which is SIGKILLed mid-run; B, started meanwhile,
    takes the run over once A's lease (scan.lease, 3 s) passed without progress, goes on
    from A's counts and log, and ends it Success: exactly the referenced blobs remain."""
    env = {"WHARF_GC_REVIEW_DELAY": "0", "WHARF_SCAN_LEASE": "3"}
    a = cluster.node("node-a", env)
    keep = gc_image("nodes-gc-keep")
    a.registry().push_image("library/keep", keep, "v1")
    n = 20000
    seed_unreferenced(cluster, n, b"nodes-gc")
    api = admin(a)
    gc_id = start_gc(api, workers=1)
    before = wait_gc_progress(api, gc_id, 60, "A's run to make progress")
    b = cluster.node("node-b", env)
    a.kill()
    left = blob_files(cluster) - len(referenced(keep))  # B may be deleting (it helps)
    assert 0 < left < n, left  # A died mid-run
    api = admin(b)
    item = wait_gc_end(api, gc_id, 300, "B to finish the run")
    log = api.get(f"/system/gc/{gc_id}/log").text
    assert item["job_status"] == "Success", (item, log[-3000:])
    assert_disk_is(b, referenced(keep))
    assert before["blobs_deleted"] <= item["blobs_deleted"] <= n, (before, item)
    assert "was cut off: the node running it stopped (" in log and ":" + str(a.port) in log, log
    assert "attempt 2: taken over by " in log and ":" + str(b.port) in log, log
    assert "queued again" in b.log_text()
    assert f"gc: run {gc_id} started" in b.log_text()
    reg = b.registry()
    for d, data in keep.blobs.items():
        r = reg.get(f"/v2/library/keep/blobs/{d}")
        assert r.status_code == 200 and r.content == data, describe(r)


def test_cve_allowlists_changed_on_one_node_obeyed_by_the_others_gate(cluster, front, skopeo,
                                                                      pinned_bookworm, proj):
    """The system's and the project's CVE allowlists, changed through A, decide B's next
    pull; B scans (A has no scan workers left: its scans are B's)."""
    a = cluster.node("node-a", {"WHARF_SCAN_WORKERS": "1", "WHARF_FAILPOINTS": "scan.worker=1+:EIO"})
    b = cluster.node("node-b", {"WHARF_SCAN_WORKERS": "1"}, start=False)
    import_db(b)
    b.start()
    fr = front(a, b)
    sa = Scans(a, proj)
    sa.api.create_project(proj, metadata={"auto_scan": "true", "prevent_vul": "true",
                                          "severity": "critical"})
    skopeo.copy(pinned_bookworm.oci, f"docker://{fr.host}/{proj}/{REPO}:1")
    digest = pinned_bookworm.manifest_digest
    sa.wait_status(digest, "Success")
    rep = sa.vulnerabilities(digest)["application/vnd.security.vulnerability.report; version=1.1"]
    crit = sorted({v["id"] for v in rep["vulnerabilities"] if v["severity"] == "Critical"})
    assert crit, rep
    reg_b = b.registry()

    def pull_on_b():
        return reg_b.get_manifest(f"{proj}/{REPO}", "1").status_code

    assert pull_on_b() == 412                # B's gate has read the policy and the lists
    sa.api.ok(sa.api.put("/system/CVEAllowlist", {"items": [{"cve_id": c} for c in crit]}))
    assert pull_on_b() == 200                # the system list, changed on A, at B's next pull
    sa.api.ok(sa.api.put(f"/projects/{proj}", {"metadata": {"reuse_sys_cve_allowlist": "false"},
                                               "cve_allowlist": {"items": []}}))
    assert pull_on_b() == 412                # the project's own (empty) list now
    sa.api.ok(sa.api.put(f"/projects/{proj}",
                         {"cve_allowlist": {"items": [{"cve_id": c} for c in crit]}}))
    assert pull_on_b() == 200
    sa.api.ok(sa.api.put(f"/projects/{proj}",
                         {"cve_allowlist": {"items": [{"cve_id": c} for c in crit[1:]]}}))
    assert pull_on_b() == 412                # one critical no longer allowed


REMATCHED = re.compile(r"re-match: (\d+) inventories of (\d+) artifacts matched again")


def deb_image(i):
    """A Debian 12 image of zlib1g 1:1.2.13.dfsg-1 (CVE-2023-45853, which the database
    update drops) and a package of its own: an inventory of its own."""
    from test_scan_hostile import OS_RELEASE, STATUS, tar_bytes
    status = STATUS + f"\nPackage: extra{i}\nStatus: install ok installed\nVersion: 1.0\n".encode()
    layer = gzip.compress(tar_bytes([("etc/os-release", OS_RELEASE),
                                     ("var/lib/dpkg/status", status)]), mtime=0)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created_by": f"deb {i}",
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                           "config": descriptor(MT_CONFIG, cfg),
                           "layers": [descriptor(MT_LAYER_GZIP, layer)]}).encode()
    return layer, cfg, manifest


def push_deb_images(reg, proj, n):
    digests = []
    for i in range(n):
        layer, cfg, manifest = deb_image(i)
        reg.push_blob(f"{proj}/{REPO}", layer)
        reg.push_blob(f"{proj}/{REPO}", cfg)
        r = reg.push_manifest(f"{proj}/{REPO}", f"d{i}", manifest)
        assert r.status_code == 201, describe(r)
        digests.append(sha256_digest(manifest))
    return digests


def import_update(srv):
    p = srv.cli("vulndb", "import", os.path.join(REPO_ROOT, "tests", "data", "vulndb", "rematch"),
                timeout=300)
    assert p.returncode == 0, p.stderr


def rematch_runs(cluster):
    return cluster.sql("SELECT vulndb, status, after_id, attempts, inventories, changed, holder"
                       " FROM rematch_run ORDER BY created_ms")


@pytest.mark.parametrize("cluster", ["dir"], indirect=True)
def test_rematch_run_done_once_across_nodes(cluster, front, proj):
    """The same database update imported on both nodes: one re-match run (the database's
    content names it), done by one node; the other finds it done. The changes it recorded
    answer through either node."""
    a = cluster.node("node-a", start=False)
    b = cluster.node("node-b", start=False)
    for srv in (a, b):
        import_db(srv, "debian", "nvd")
    a.start()
    b.start()
    fr = front(a, b)
    api = Api(fr.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(proj, metadata={"auto_scan": "true"})
    digests = push_deb_images(fr.registry(), proj, 2)
    s = Scans(a, proj)
    first = {d: s.wait_status(d, "Success") for d in digests}
    # both loaded the same first database: its one run, done (by either)
    wait_until(lambda: [r[1] for r in rematch_runs(cluster)] == ["Success"], 60,
               "the first database's run")
    t0 = int(time.time() * 1000) - 1000
    a.mark_log()
    b.mark_log()
    with ThreadPoolExecutor(2) as ex:  # the same update on both nodes at once
        list(ex.map(import_update, (a, b)))

    def ended():
        runs = rematch_runs(cluster)
        return runs if len(runs) == 2 and runs[1][1] == "Success" else None

    runs = ended() or wait_until(ended, 60, "the update's run")
    _vdb, _status, _after, attempts, inventories, changed, holder = runs[1]
    assert (attempts, inventories, changed) == ("1", "2", "2"), runs

    # one node matched, the other found the run done (or waited for it, then found it done)
    def both_told():
        logs = {srv.name: srv.log_since_mark() for srv in (a, b)}
        did = [n for n, t in logs.items() if REMATCHED.search(t)]
        saw = [n for n, t in logs.items() if "ended already (Success" in t]
        return (did, saw, logs) if len(did) + len(saw) >= 2 else None
    did, saw, logs = wait_until(both_told, 60, "both nodes to tell about the run")
    assert len(did) == 1 and saw == [n for n in ("node-a", "node-b") if n not in did], logs
    assert REMATCHED.search(logs[did[0]]).groups() == ("2", "2"), logs[did[0]]
    for d in digests:
        o = s.overview(d)
        assert o["report_id"] != first[d]["report_id"], o
    # one change per image, recorded once, answered by either node
    for srv in (a, b):
        got = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD)).get(
            "/vulnerabilities/changes", params={"since": str(t0)})
        assert got.status_code == 200, describe(got)
        rows = got.json()
        assert sorted(r["digest"] for r in rows) == sorted(digests), rows
        assert all("CVE-2023-45853" in r["removed"] for r in rows), rows
    assert cluster.sql("SELECT count(*) FROM vuln_change") == [["2"]]


@pytest.mark.parametrize("cluster", ["dir"], indirect=True)
def test_rematch_run_of_a_killed_node_finished_from_its_cursor(cluster, front, proj):
    """A holds the update's run after its first inventory (the failpoint rematch.hold) and
    is SIGKILLed; B, with the same database, takes the run over once A's lease (scan.lease,
    3 s) ended, and goes on from the run's cursor: the first image is not matched again."""
    env = {"WHARF_SCAN_LEASE": "3", "WHARF_SCAN_WORKERS": "1"}
    a = cluster.node("node-a", {**env, "WHARF_FAILPOINTS": "rematch.hold=2:EIO"}, start=False)
    import_db(a, "debian", "nvd")
    a.start()
    api = Api(a.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(proj, metadata={"auto_scan": "true"})
    digests = push_deb_images(a.registry(), proj, 3)
    s = Scans(a, proj)
    for d in digests:
        s.wait_status(d, "Success")
    wait_until(lambda: [r[1] for r in rematch_runs(cluster)] == ["Success"], 60,
               "the first database's run")
    import_update(a)
    wait_until(lambda: "failpoint rematch.hold: re-match held after inventory" in a.log_text(),
               60, "A to hold the run after its first inventory")
    runs = rematch_runs(cluster)
    assert runs[1][1] == "Running" and runs[1][4] == "1" and runs[1][5] == "1", runs
    cursor = runs[1][2]
    assert cluster.sql("SELECT count(*) FROM vuln_change") == [["1"]]
    b = cluster.node("node-b", env, start=False)
    import_db(b, "debian", "nvd")
    import_update(b)  # the same content: the same run
    a.kill()
    killed = time.monotonic()
    b.start()

    def done():
        r = rematch_runs(cluster)
        return r if r[1][1] == "Success" else None
    runs = wait_until(done, 60, "B to finish A's run")
    assert time.monotonic() - killed >= 2, "taken before A's lease ended"
    _vdb, _status, after, attempts, inventories, changed, _holder = runs[1]
    assert (attempts, inventories, changed) == ("2", "3", "3"), runs
    assert int(after) > int(cursor)
    log = b.log_text()
    assert f"re-match: going on from inventory {cursor} (attempt 2 of the run)" in log, log
    assert "re-match: 3 inventories of 3 artifacts matched again" in log, log
    # B matched the two others only: one change line each, and one change per image
    assert len(re.findall(r"re-match: \S+@sha256:\S+: vulnerabilities", log)) == 2, log
    assert cluster.sql("SELECT count(*), count(DISTINCT artifact_id) FROM vuln_change") == \
        [["3", "3"]]
    for d in digests:
        rep = Scans(b, proj).vulnerabilities(d)[MIME]
        assert "CVE-2023-45853" not in {v["id"] for v in rep["vulnerabilities"]}
