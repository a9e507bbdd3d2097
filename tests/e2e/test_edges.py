"""Edge cases real clients run into: chunked transfer encoding, Accept
headers as Docker sends them, Docker schema 2 manifests, deep repository
names, empty blobs, tag overwrites, racing uploads of one blob, dropped
connections, and blobs that belong to another repository."""

import http.client
import json
import os
import socket
import threading
from urllib.parse import urlsplit

import pytest

from conftest import Skopeo, wait_until
from datadir import check_blob_store, has_blob, staged_size
from ocilayout import MT_DOCKER_MANIFEST, MT_EMPTY, MT_INDEX, MT_MANIFEST, make_image, sha256_digest
from regclient import CREDS, basic_auth, check_error_body, describe, expect_error

OCTET = "application/octet-stream"
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def small_image(**kw):
    kw.setdefault("layers", 1)
    kw.setdefault("files_per_layer", 1)
    kw.setdefault("file_size", 2048)
    return make_image(**kw)


def path_of(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


def test_chunked_transfer_encoding(registry, unique):
    """docker and containerd stream PATCH bodies with Transfer-Encoding: chunked."""
    repo = f"library/{unique}"
    parts = [os.urandom(70_000) for _ in range(5)]
    data = b"".join(parts)
    loc = registry.start_upload(repo)
    r = registry.patch(loc, data=iter(parts), headers={"Content-Type": OCTET})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Range") == f"0-{len(data) - 1}", describe(r)
    p = registry.put(r.headers["Location"], params={"digest": sha256_digest(data)})
    assert p.status_code == 201, describe(p)
    g = registry.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
    assert g.status_code == 200 and g.content == data

    img = small_image()
    for d, b in img.blobs.items():
        registry.push_blob(repo, b)
    r = registry.put(f"/v2/{repo}/manifests/v1", data=iter([img.manifest[:100], img.manifest[100:]]),
                     headers={"Content-Type": MT_MANIFEST})
    assert r.status_code == 201, describe(r)
    assert registry.get_manifest(repo, "v1").content == img.manifest


def test_accept_forms(server, registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "v1")
    path = f"/v2/{repo}/manifests/v1"

    # No Accept header: any type is acceptable (RFC 9110, 12.5.1).
    r = registry.get(path, headers={"Accept": None})
    assert "Accept" not in r.request.headers
    assert r.status_code == 200 and r.content == img.manifest, describe(r)

    for accept in (f"{MT_MANIFEST};q=0.9", f"text/plain, {MT_MANIFEST} ; q=0.5",
                   "application/*", f"{MT_DOCKER_MANIFEST},{MT_MANIFEST}"):
        r = registry.get(path, headers={"Accept": accept})
        assert r.status_code == 200 and r.content == img.manifest, f"Accept {accept}: " + describe(r)

    # Docker sends one Accept header line per media type.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", basic_auth())
        conn.putheader("Accept", MT_DOCKER_MANIFEST)
        conn.putheader("Accept", MT_MANIFEST)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200 and body == img.manifest, (resp.status, resp.getheaders(), body[:200])


def test_docker_schema2_image(server, registry, skopeo, image_layout, tmp_path, unique):
    src, img = image_layout
    repo = f"library/{unique}"
    ref = f"docker://{server.host}/{repo}:v2s2"
    skopeo.copy(f"oci:{src}:v1", ref, "--format", "v2s2")
    r = registry.get_manifest(repo, "v2s2", accept=MT_DOCKER_MANIFEST)
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type") == MT_DOCKER_MANIFEST
    doc = json.loads(r.content)
    assert doc["mediaType"] == MT_DOCKER_MANIFEST
    assert r.headers.get("Docker-Content-Digest") == sha256_digest(r.content)
    expect_error(registry.get_manifest(repo, "v2s2", accept=MT_MANIFEST), 404, "MANIFEST_UNKNOWN")

    out = tmp_path / "pulled"
    Skopeo(tmp_path / "puller").copy(ref, f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == r.content
    for layer in doc["layers"]:
        hexpart = layer["digest"].split(":")[1]
        assert sha256_digest((out / hexpart).read_bytes()) == layer["digest"]


def test_manifest_without_media_type_field(registry, unique):
    """mediaType is optional in an OCI manifest: the PUT's Content-Type says it."""
    repo = f"library/{unique}"
    img = small_image()
    for b in img.blobs.values():
        registry.push_blob(repo, b)
    doc = json.loads(img.manifest)
    del doc["mediaType"]
    body = json.dumps(doc).encode()
    r = registry.push_manifest(repo, "bare", body, MT_MANIFEST)
    assert r.status_code == 201, describe(r)
    g = registry.get_manifest(repo, "bare", accept=MT_MANIFEST)
    assert g.status_code == 200 and g.content == body, describe(g)
    assert g.headers.get("Content-Type") == MT_MANIFEST


def test_deep_and_punctuated_repository_names(server, registry, skopeo, image_layout, unique):
    src, img = image_layout
    for repo in (f"library/{unique}/a/b/c", f"library/{unique}.x_y__z-w"):
        skopeo.copy(f"oci:{src}:v1", f"docker://{server.host}/{repo}:v1")
        r = registry.get_manifest(repo, "v1")
        assert r.status_code == 200 and r.content == img.manifest, describe(r)
        assert registry.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
    r = registry.get("/v2/_catalog", params={"n": 10000})
    repos = r.json()["repositories"]
    assert f"library/{unique}/a/b/c" in repos and f"library/{unique}.x_y__z-w" in repos


def test_empty_blob(server, registry, unique):
    repo = f"library/{unique}"
    r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": EMPTY_SHA256}, data=b"",
                      headers={"Content-Type": OCTET})
    assert r.status_code == 201, describe(r)
    g = registry.get(f"/v2/{repo}/blobs/{EMPTY_SHA256}")
    assert g.status_code == 200 and g.content == b"", describe(g)
    assert int(g.headers.get("Content-Length", -1)) == 0
    h = registry.head(f"/v2/{repo}/blobs/{EMPTY_SHA256}")
    assert h.status_code == 200 and int(h.headers.get("Content-Length", -1)) == 0, describe(h)
    assert has_blob(server.data_dir, EMPTY_SHA256)
    r = registry.get(f"/v2/{repo}/blobs/{EMPTY_SHA256}", headers={"Range": "bytes=0-0"})
    assert r.status_code == 416, describe(r)


def test_tag_overwrite_and_repush_after_delete(registry, unique):
    repo = f"library/{unique}"
    a, b = small_image(), small_image()
    registry.push_image(repo, a, "t")
    registry.push_image(repo, b, "t")
    r = registry.get_manifest(repo, "t")
    assert r.content == b.manifest, "tag does not follow the latest push"
    assert registry.get_manifest(repo, a.manifest_digest).content == a.manifest
    d = registry.delete(f"/v2/{repo}/manifests/{b.manifest_digest}")
    assert d.status_code == 202, describe(d)
    r = registry.push_manifest(repo, "t", b.manifest)
    assert r.status_code == 201, describe(r)
    assert registry.get_manifest(repo, "t").content == b.manifest


def test_invalid_tag(registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    for blob in img.blobs.values():
        registry.push_blob(repo, blob)
    for tag in ("-lead", ".lead", "x" * 129, "a+b"):
        r = registry.push_manifest(repo, tag, img.manifest)
        assert r.status_code == 400, f"tag {tag!r}: " + describe(r)
        check_error_body(r)
    assert registry.push_manifest(repo, "_Ok.tag-1", img.manifest).status_code == 201


def test_racing_uploads_of_one_blob(server, registry, unique):
    """Eight clients finish an upload of the same blob at the same moment."""
    repo = f"library/{unique}"
    data = os.urandom(3 << 20)
    digest = sha256_digest(data)
    locs = [registry.start_upload(repo) for _ in range(8)]
    barrier = threading.Barrier(len(locs))
    results = [None] * len(locs)

    def finish(i):
        reg = server.registry()
        barrier.wait()
        try:
            results[i] = reg.put(locs[i], params={"digest": digest}, data=data,
                                 headers={"Content-Type": OCTET}).status_code
        except Exception as e:  # reported below
            results[i] = repr(e)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(locs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [201] * len(locs), results
    g = registry.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data
    stored = check_blob_store(server.data_dir)
    assert stored[digest] == len(data)


def test_dropped_connection_mid_patch(server, registry, unique):
    repo = f"library/{unique}"
    loc = registry.start_upload(repo)
    data = os.urandom(2 << 20)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.sendall(
        (f"PATCH {path_of(registry.url(loc))} HTTP/1.1\r\nHost: {server.host}\r\n"
         f"Authorization: {basic_auth()}\r\n"
         f"Content-Type: {OCTET}\r\nContent-Length: {len(data)}\r\n\r\n").encode())
    s.sendall(data[: 1 << 20])
    wait_until(lambda: staged_size(server.data_dir, loc) == 1 << 20, 30,
               "the server to stage the first MiB of the PATCH")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # reset, half the body sent

    def released():
        # A status request never waits for the dropped PATCH; a new chunk does
        # until the server has let go of the session (416 meanwhile).
        r = registry.patch(loc, data=data, headers={
            "Content-Type": OCTET, "Content-Range": f"0-{len(data) - 1}"})
        return None if r.status_code == 416 and "another request" in r.text else r

    st = registry.get(loc)
    assert st.status_code == 204, describe(st)
    # A chunk is taken whole or not at all (its bytes may become one part of
    # an object store's multipart upload): the dropped one is not in the session.
    assert st.headers.get("Range") == "0-0", describe(st)
    r = wait_until(released, 30, "the server to let go of the dropped PATCH's session")
    assert server.running(), "the server died when a client dropped an upload"
    assert not has_blob(server.data_dir, sha256_digest(data[: 1 << 20]))
    # The chunk sent again in the same session completes the blob.
    assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}", describe(r)
    p = registry.put(r.headers["Location"], params={"digest": sha256_digest(data)})
    assert p.status_code == 201, describe(p)
    assert registry.get(f"/v2/{repo}/blobs/{sha256_digest(data)}").content == data


def test_blob_of_another_repository_is_not_served(registry, unique):
    """Blobs are stored once, but a repository only serves what was pushed or
    mounted into it: knowing a digest from a private project gives no access
    through another repository."""
    owner, other = f"library/{unique}-owner", f"library/{unique}-other"
    img = small_image()
    registry.push_image(owner, img, "v1")
    registry.push_blob(other, b"other exists")
    layer = img.layers[0]
    assert registry.head(f"/v2/{other}/blobs/{layer}").status_code == 404
    expect_error(registry.get(f"/v2/{other}/blobs/{layer}"), 404, "BLOB_UNKNOWN")
    r = registry.push_manifest(other, "borrowed", img.manifest)
    expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert registry.get(f"/v2/{other}/blobs/{layer}").status_code == 404


def test_tags_list_edges(registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "a")
    for t in ("b", "d"):
        registry.push_manifest(repo, t, img.manifest)
    r = registry.get(f"/v2/{repo}/tags/list", params={"last": "c"})
    assert r.status_code == 200 and r.json()["tags"] == ["d"], describe(r)
    r = registry.get(f"/v2/{repo}/tags/list", params={"n": 3})
    assert r.json()["tags"] == ["a", "b", "d"]
    expect_error(registry.get(f"/v2/{repo}/tags/list", params={"n": "abc"}), 400,
                 "PAGINATION_NUMBER_INVALID")
    r = registry.get(f"/v2/library/{unique}-never/tags/list")
    expect_error(r, 404, "NAME_UNKNOWN")


def test_mount_without_from(registry, unique):
    src, dst = f"library/{unique}-src", f"library/{unique}-dst"
    digest = registry.push_blob(src, os.urandom(300))
    r = registry.post(f"/v2/{dst}/blobs/uploads/", params={"mount": digest})
    assert r.status_code in (201, 202), describe(r)
    assert r.headers.get("Location"), describe(r)


def test_referrers_filter_with_plus_sign(registry, unique):
    """artifactType values often contain '+', which must not become a space."""
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "v1")
    registry.push_blob(repo, b"{}")
    payload = os.urandom(40)
    registry.push_blob(repo, payload)
    atype = "application/vnd.example.sbom+json"
    art = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST, "artifactType": atype,
        "config": {"mediaType": MT_EMPTY, "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [{"mediaType": OCTET, "digest": sha256_digest(payload), "size": len(payload)}],
        "subject": img.manifest_descriptor,
    }).encode()
    r = registry.push_manifest(repo, sha256_digest(art), art)
    assert r.status_code == 201, describe(r)
    r = registry.get(f"/v2/{repo}/referrers/{img.manifest_digest}", params={"artifactType": atype})
    assert r.status_code == 200, describe(r)
    assert [d["digest"] for d in r.json()["manifests"]] == [sha256_digest(art)], describe(r)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"


def test_referrers_include_index_artifacts(registry, unique):
    """An index may carry a subject too; its artifactType is listed when set."""
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "v1")
    child = small_image()
    registry.push_image(repo, child)
    idx = json.dumps({
        "schemaVersion": 2, "mediaType": MT_INDEX, "artifactType": "application/vnd.example.bundle",
        "manifests": [child.manifest_descriptor], "subject": img.manifest_descriptor,
    }).encode()
    r = registry.push_manifest(repo, sha256_digest(idx), idx, MT_INDEX)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("OCI-Subject") == img.manifest_digest, describe(r)
    r = registry.get(f"/v2/{repo}/referrers/{img.manifest_digest}")
    listed = r.json()["manifests"]
    assert len(listed) == 1, listed
    assert listed[0]["digest"] == sha256_digest(idx)
    assert listed[0]["mediaType"] == MT_INDEX
    assert listed[0]["artifactType"] == "application/vnd.example.bundle"


def test_sha512_manifest_reference(registry, unique):
    """A manifest pushed by a sha512 digest is stored and served under it."""
    import hashlib

    repo = f"library/{unique}"
    img = small_image()
    for b in img.blobs.values():
        registry.push_blob(repo, b)
    ref = "sha512:" + hashlib.sha512(img.manifest).hexdigest()
    r = registry.push_manifest(repo, ref, img.manifest)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == ref, describe(r)
    g = registry.get_manifest(repo, ref)
    assert g.status_code == 200 and g.content == img.manifest, describe(g)
    assert g.headers.get("Docker-Content-Digest") == ref


def test_missing_project_on_pull(registry):
    project = f"nosuch{os.urandom(3).hex()}"
    for path in (f"/v2/{project}/app/manifests/v1", f"/v2/{project}/app/tags/list",
                 f"/v2/{project}/app/blobs/{sha256_digest(b'x')}"):
        r = registry.get(path)
        expect_error(r, 404, "NAME_UNKNOWN")


def test_content_type_must_match_media_type(registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    for b in img.blobs.values():
        registry.push_blob(repo, b)
    r = registry.push_manifest(repo, "v1", img.manifest, MT_INDEX)
    expect_error(r, 400, "MANIFEST_INVALID")
    r = registry.push_manifest(repo, "v1", img.manifest, MT_DOCKER_MANIFEST)
    expect_error(r, 400, "MANIFEST_INVALID")
    assert registry.get_manifest(repo, "v1").status_code == 404


def test_upload_session_is_bound_to_its_repository(registry, unique):
    a, b = f"library/{unique}-a", f"library/{unique}-b"
    registry.push_blob(b, b"b exists")
    loc = registry.start_upload(a)
    session = loc.rstrip("/").split("/")[-1].split("?")[0]
    other = f"/v2/{b}/blobs/uploads/{session}"
    expect_error(registry.get(other), 404, "BLOB_UPLOAD_UNKNOWN")
    data = b"smuggled"
    expect_error(registry.put(other, params={"digest": sha256_digest(data)}, data=data,
                              headers={"Content-Type": OCTET}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert registry.head(f"/v2/{b}/blobs/{sha256_digest(data)}").status_code == 404
    # The session still works where it was opened.
    p = registry.put(loc, params={"digest": sha256_digest(data)}, data=data,
                     headers={"Content-Type": OCTET})
    assert p.status_code == 201, describe(p)


def test_concurrent_patches_to_one_session(server, registry, unique):
    """Two writers on one session: while one is writing, the other is told
    416 and nothing of its body is kept; the bytes are never interleaved."""
    repo = f"library/{unique}"
    loc = registry.start_upload(repo)
    first, second = os.urandom(1 << 20), os.urandom(1 << 20)
    step = 64 * 1024
    results = {}

    def first_body():
        yield first[:step]
        # Hold the session, mid-body, until the second writer has its answer.
        wait_until(lambda: "second" in results, 60, "the answer to the second writer")
        for off in range(step, len(first), step):
            yield first[off:off + step]

    def first_writer():
        try:
            results["first"] = server.registry().patch(loc, data=first_body(), headers={
                "Content-Type": OCTET, "Content-Range": f"0-{len(first) - 1}"})
        except Exception as e:  # reported below
            results["first"] = e

    t = threading.Thread(target=first_writer)
    t.start()
    try:
        wait_until(lambda: staged_size(server.data_dir, loc) >= step, 30,
                   "the first writer's first chunk to be staged")
        results["second"] = registry.patch(loc, data=second, headers={
            "Content-Type": OCTET, "Content-Range": f"0-{len(second) - 1}"})
    finally:
        results.setdefault("second", None)
        t.join(60)
    assert not t.is_alive(), "the first writer never finished"
    expect_error(results["second"], 416, "BLOB_UPLOAD_INVALID")
    r = results["first"]
    assert not isinstance(r, Exception), repr(r)
    assert r.status_code == 202, describe(r)
    st = registry.get(loc)
    assert st.status_code == 204 and st.headers.get("Range") == f"0-{len(first) - 1}", describe(st)
    p = registry.put(loc, params={"digest": sha256_digest(first)})
    assert p.status_code == 201, describe(p)
    assert registry.get(f"/v2/{repo}/blobs/{sha256_digest(first)}").content == first


@pytest.mark.parametrize("method,path", [
    ("PATCH", "/v2/{repo}/manifests/v1"),
    ("POST", "/v2/{repo}/manifests/v1"),
    ("PUT", "/v2/{repo}/blobs/{digest}"),
    ("POST", "/v2/{repo}/tags/list"),
    ("DELETE", "/v2/"),
])
def test_wrong_method(registry, unique, method, path):
    repo = f"library/{unique}"
    registry.push_blob(repo, b"exists")
    r = registry.request(method, path.format(repo=repo, digest=sha256_digest(b"exists")),
                         data=b"{}")
    expect_error(r, 405, "UNSUPPORTED")


def test_delete_in_one_repository_spares_the_others(server, registry, unique):
    """Blobs are stored once: deleting one from a repository must not take it
    from another repository that holds it too."""
    a, b = f"library/{unique}-a", f"library/{unique}-b"
    img = small_image()
    registry.push_image(a, img, "v1")
    registry.push_image(b, img, "v1")
    layer = img.layers[0]

    # (a blob the repository's manifest uses is not deleted: the manifest goes first)
    expect_error(registry.delete(f"/v2/{a}/blobs/{layer}"), 405, "UNSUPPORTED")
    assert registry.delete(f"/v2/{a}/manifests/{img.manifest_digest}").status_code == 202
    assert registry.delete(f"/v2/{a}/blobs/{layer}").status_code == 202
    expect_error(registry.get(f"/v2/{a}/blobs/{layer}"), 404, "BLOB_UNKNOWN")
    g = registry.get(f"/v2/{b}/blobs/{layer}")
    assert g.status_code == 200 and g.content == img.blobs[layer], describe(g)
    m = registry.get_manifest(b, "v1")
    assert m.status_code == 200 and m.content == img.manifest, describe(m)
    assert has_blob(server.data_dir, layer)

    # A mount from the repository that lost the blob is a fresh upload.
    c = f"library/{unique}-c"
    registry.push_blob(c, b"c exists")
    r = registry.post(f"/v2/{c}/blobs/uploads/", params={"mount": layer, "from": a})
    assert r.status_code == 202, describe(r)
    r = registry.post(f"/v2/{c}/blobs/uploads/", params={"mount": layer, "from": b})
    assert r.status_code == 201, describe(r)


def test_index_child_from_another_repository(registry, unique):
    owner, other = f"library/{unique}-owner", f"library/{unique}-other"
    child = small_image()
    registry.push_image(owner, child)
    registry.push_blob(other, b"other exists")
    idx = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX,
                      "manifests": [dict(child.manifest_descriptor, platform=child.platform)]}
                     ).encode()
    expect_error(registry.push_manifest(other, "multi", idx, MT_INDEX), 400,
                 "MANIFEST_BLOB_UNKNOWN")
    r = registry.push_manifest(owner, "multi", idx, MT_INDEX)
    assert r.status_code == 201, describe(r)


def test_curl_large_upload(server, registry, unique, tmp_path):
    """curl sends `Expect: 100-continue` before a large body."""
    import subprocess

    repo = f"library/{unique}"
    data = os.urandom(3 << 20)
    f = tmp_path / "blob"
    f.write_bytes(data)
    digest = sha256_digest(data)
    loc = registry.start_upload(repo)
    url = registry.url(loc)
    p = subprocess.run(["curl", "-sS", "-u", CREDS, "-o", "/dev/null", "-w", "%{http_code}",
                        "-X", "PUT",
                        "-H", "Content-Type: application/octet-stream",
                        "-H", "Expect: 100-continue", "--data-binary", f"@{f}",
                        f"{url}{'&' if '?' in url else '?'}digest={digest}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "201", p.stdout
    g = registry.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data


@pytest.mark.parametrize("case", ["short-body", "long-body"])
def test_refused_chunk_leaves_session_unchanged(registry, unique, case):
    """A PATCH whose body does not match its Content-Range is refused; the
    refusal must not keep part of that body, so the client can send the same
    chunk again at the same offset."""
    repo = f"library/{unique}"
    first = os.urandom(1000)
    loc = registry.start_upload(repo)
    r = registry.patch(loc, data=first, headers={"Content-Type": OCTET,
                                                 "Content-Range": "0-999"})
    assert r.status_code == 202, describe(r)
    loc = r.headers["Location"]

    chunk = os.urandom(200_000)
    if case == "short-body":
        bad = registry.patch(loc, data=chunk[:120_000], headers={
            "Content-Type": OCTET, "Content-Range": f"1000-{1000 + len(chunk) - 1}"})
    else:
        bad = registry.patch(loc, data=chunk + os.urandom(100_000), headers={
            "Content-Type": OCTET, "Content-Range": f"1000-{1000 + len(chunk) - 1}"})
    expect_error(bad, 416, "BLOB_UPLOAD_INVALID")

    st = registry.get(loc)
    assert st.status_code == 204, describe(st)
    assert st.headers.get("Range") == "0-999", (
        f"after a refused chunk the session holds {st.headers.get('Range')}, not 0-999")
    r = registry.patch(loc, data=chunk, headers={
        "Content-Type": OCTET, "Content-Range": f"1000-{1000 + len(chunk) - 1}"})
    assert r.status_code == 202, "retrying the refused chunk failed: " + describe(r)
    p = registry.put(r.headers["Location"], params={"digest": sha256_digest(first + chunk)})
    assert p.status_code == 201, describe(p)


def test_accept_media_types_are_case_insensitive(registry, unique):
    """Media type names are case-insensitive (RFC 9110, 8.3.1)."""
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "v1")
    r = registry.get_manifest(repo, "v1", accept=MT_MANIFEST.upper())
    assert r.status_code == 200 and r.content == img.manifest, describe(r)


def test_manifest_readable_as_blob(registry, unique):
    """containerd may fetch a manifest through the blobs endpoint by digest."""
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "v1")
    r = registry.get(f"/v2/{repo}/blobs/{img.manifest_digest}")
    assert r.status_code == 200 and r.content == img.manifest, describe(r)
    assert r.headers.get("Docker-Content-Digest") == img.manifest_digest


def test_oversize_manifest_without_content_length(registry, unique):
    """The cap holds when the body comes chunked, with no length announced."""
    repo = f"library/{unique}"

    def body():
        yield b'{"schemaVersion":2,"annotations":{"pad":"'
        for _ in range(5):
            yield b"x" * (1 << 20)
        yield b'"}}'

    r = registry.put(f"/v2/{repo}/manifests/big", data=body(),
                     headers={"Content-Type": MT_MANIFEST})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    expect_error(r, 413, "MANIFEST_INVALID")
    assert registry.get("/v2/").status_code == 200
