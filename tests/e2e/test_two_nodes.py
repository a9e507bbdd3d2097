"""Two nodes sharing one store and one database.

A second `wharf serve` on the same data directory is refused (the lock of
test_single_instance.py), so the second node gets a data directory of its own
whose database, blob store, staging area and token key are the first node's
(symbolic links): on one machine that is what N nodes sharing a database and
an object store look like. Upload sessions live in the database and the
store only, so the chunks of one push may go to either node, and a node
killed mid-push loses nothing the other cannot finish.
"""

import os
import threading

import pytest
import requests

from conftest import wait_until
from ocilayout import sha256_digest
from regclient import ADMIN_PASSWORD, ADMIN_USER, describe, expect_error

OCTET = {"Content-Type": "application/octet-stream"}
SHARED = ("wharf.db", "blobs", "uploads", "token.key")


@pytest.fixture
def nodes(servers, tmp_path):
    a = servers.new(name="node-a")
    b_dir = tmp_path / "node-b" / "data"
    b_dir.mkdir(parents=True, mode=0o700)
    for name in SHARED:
        os.symlink(os.path.join(a.data_dir, name), b_dir / name)
    b = servers.new(data_dir=str(b_dir), name="node-b")
    return a, b


def chunk(reg, loc, data, start):
    r = reg.patch(loc, data=data, headers={
        **OCTET, "Content-Range": f"{start}-{start + len(data) - 1}"})
    assert r.status_code == 202, describe(r)
    assert r.headers["Range"] == f"0-{start + len(data) - 1}", describe(r)
    return r.headers["Location"]


def test_chunks_alternate_between_nodes(nodes, unique):
    a, b = nodes
    ra, rb = a.registry(), b.registry()
    repo = f"library/{unique}"
    data = os.urandom(3 * 1024 * 1024 + 12345)
    digest = sha256_digest(data)
    parts = [data[:1_000_003], data[1_000_003:2_500_000], data[2_500_000:]]

    loc = ra.start_upload(repo)                    # POST on A
    loc = chunk(rb, loc, parts[0], 0)              # PATCH on B
    st = ra.get(loc)                               # the status is the same on A
    assert st.status_code == 204 and st.headers["Range"] == f"0-{len(parts[0]) - 1}", describe(st)
    loc = chunk(ra, loc, parts[1], len(parts[0]))  # PATCH on A
    r = rb.put(loc, params={"digest": digest}, data=parts[2], headers=OCTET)  # PUT on B
    assert r.status_code == 201, describe(r)
    for reg in (ra, rb):
        g = reg.get(f"/v2/{repo}/blobs/{digest}")
        assert g.status_code == 200 and g.content == data, describe(g)
        rg = reg.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=1000000-1000009"})
        assert rg.status_code == 206 and rg.content == data[1_000_000:1_000_010], describe(rg)
    expect_error(rb.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")


def test_chunk_sent_to_the_wrong_offset_on_the_other_node(nodes, unique):
    """The offset a node checks a chunk against is the database's, not its memory's."""
    a, b = nodes
    ra, rb = a.registry(), b.registry()
    repo = f"library/{unique}"
    loc = ra.start_upload(repo)
    loc = chunk(ra, loc, b"x" * 1000, 0)
    r = rb.patch(loc, data=b"y" * 10, headers={**OCTET, "Content-Range": "0-9"})
    assert r.status_code == 416 and r.headers["Range"] == "0-999", describe(r)
    loc = chunk(rb, loc, b"y" * 10, 1000)
    data = b"x" * 1000 + b"y" * 10
    r = ra.put(loc, params={"digest": sha256_digest(data)})
    assert r.status_code == 201, describe(r)
    assert rb.get(f"/v2/{repo}/blobs/{sha256_digest(data)}").content == data


def test_node_killed_between_chunks(nodes, unique):
    a, b = nodes
    ra, rb = a.registry(), b.registry()
    repo = f"library/{unique}"
    data = os.urandom(2_000_000)
    loc = ra.start_upload(repo)
    loc = chunk(ra, loc, data[:1_200_000], 0)
    a.kill()                                       # SIGKILL: no clean-up at all
    loc = chunk(rb, loc, data[1_200_000:], 1_200_000)
    r = rb.put(loc, params={"digest": sha256_digest(data)})
    assert r.status_code == 201, describe(r)
    g = rb.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
    assert g.status_code == 200 and g.content == data


def test_node_killed_mid_chunk(nodes, unique):
    """A node dies while a chunk streams in: the bytes it staged past the
    accepted offset are no part of the session, and the chunk sent again
    through the other node completes the blob at once: the lock on the staged
    file that held the session ended with the dead process (no lease to wait
    out)."""
    a, b = nodes
    ra, rb = a.registry(), b.registry()
    repo = f"library/{unique}"
    data = os.urandom(3_000_000)
    loc = ra.start_upload(repo)
    loc = chunk(ra, loc, data[:1_000_000], 0)

    sent, finished = threading.Event(), threading.Event()

    def slow_body():
        yield data[1_000_000:1_500_000]
        sent.set()
        finished.wait(60)  # the server dies before the rest is asked for
        yield data[1_500_000:]

    def push_to_a():
        try:
            requests.patch(ra.url(loc), data=slow_body(), headers=OCTET,
                           auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=90)
        except requests.RequestException:
            pass

    t = threading.Thread(target=push_to_a, daemon=True)
    t.start()
    assert sent.wait(30)
    staged = os.path.join(a.data_dir, "uploads", loc.rstrip("/").rsplit("/", 1)[1])
    wait_until(lambda: os.path.getsize(staged) > 1_000_000, 30,
               "node A to stage part of the chunk")
    a.kill()
    st = rb.get(loc)
    assert st.status_code == 204 and st.headers["Range"] == "0-999999", describe(st)

    r = rb.patch(loc, data=data[1_000_000:], headers={
        **OCTET, "Content-Range": f"1000000-{len(data) - 1}"})
    assert r.status_code == 202, describe(r)
    r = rb.put(loc, params={"digest": sha256_digest(data)})
    assert r.status_code == 201, describe(r)
    g = rb.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
    assert g.status_code == 200 and g.content == data
    finished.set()


def test_chunk_streaming_on_one_node_holds_the_session_on_the_other(nodes, unique):
    """While a chunk streams into node A, node B refuses another chunk of the
    same session (416, nothing of it kept) but answers its status; once A has
    answered, B takes the next chunk and the blob is whole."""
    a, b = nodes
    ra, rb = a.registry(), b.registry()
    repo = f"library/{unique}"
    data = os.urandom(2_000_000)
    loc = ra.start_upload(repo)
    sent, finished = threading.Event(), threading.Event()
    answer = {}

    def slow_body():
        yield data[:500_000]
        sent.set()
        finished.wait(60)
        yield data[500_000:1_000_000]

    def push_to_a():
        answer["r"] = requests.patch(ra.url(loc), data=slow_body(), headers=OCTET,
                                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=90)

    t = threading.Thread(target=push_to_a, daemon=True)
    t.start()
    try:
        assert sent.wait(30)
        staged = os.path.join(a.data_dir, "uploads", loc.rstrip("/").rsplit("/", 1)[1])
        wait_until(lambda: os.path.getsize(staged) >= 500_000, 30,
                   "node A to stage the first bytes of the chunk")
        r = rb.patch(loc, data=b"intruder" * 1000, headers={
            **OCTET, "Content-Range": "0-7999"})
        expect_error(r, 416, "BLOB_UPLOAD_INVALID")
        assert "another request is writing" in r.text
        st = rb.get(loc)
        assert st.status_code == 204 and st.headers["Range"] == "0-0", describe(st)
    finally:
        finished.set()
        t.join(60)
    assert answer["r"].status_code == 202, describe(answer["r"])
    assert answer["r"].headers["Range"] == "0-999999"
    r = rb.patch(loc, data=data[1_000_000:], headers={
        **OCTET, "Content-Range": f"1000000-{len(data) - 1}"})
    assert r.status_code == 202, describe(r)
    r = rb.put(r.headers["Location"], params={"digest": sha256_digest(data)})
    assert r.status_code == 201, describe(r)
    g = ra.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
    assert g.status_code == 200 and g.content == data
