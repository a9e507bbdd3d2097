"""The OCI distribution API at the HTTP level: each push flow, pulls with
ranges, listing with pagination, deletes, and the errors the spec and
wharf's contract name, checked request by request."""

import json
import os
import re
import uuid
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from datadir import blob_path, has_blob, staging_files
from ocilayout import (
    MT_CONFIG,
    MT_INDEX,
    MT_MANIFEST,
    canonical_json,
    make_image,
    sha256_digest,
    sha512_digest,
)
from regclient import (
    check_api_version,
    check_error_body,
    describe,
    expect_error,
    raw_request,
)

OCTET = {"Content-Type": "application/octet-stream"}


def location(registry, r) -> str:
    loc = r.headers.get("Location")
    assert loc, "no Location header: " + describe(r)
    return urljoin(registry.base + "/", loc)


def small_image(**kw):
    kw.setdefault("layers", 2)
    kw.setdefault("files_per_layer", 1)
    kw.setdefault("file_size", 2048)
    return make_image(**kw)


def check_raw_error(status, headers, body, want_status, want_code, what):
    hl = {k.lower(): v for k, v in headers.items()}
    ctx = f"{what} -> {status} {headers} {body[:300]!r}"
    assert status == want_status, ctx
    assert hl.get("docker-distribution-api-version") == "registry/2.0", ctx
    doc = json.loads(body)
    codes = [e["code"] for e in doc["errors"]]
    assert want_code in codes, ctx
    return doc["errors"]


# ------------------------------------------------------------ blob uploads


def test_monolithic_post_with_digest(server, registry, unique):
    repo = f"library/{unique}"
    data = os.urandom(10_000)
    digest = sha256_digest(data)
    r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, data=data,
                      headers=OCTET)
    assert r.status_code == 201, describe(r)
    check_api_version(r)
    assert r.headers.get("Docker-Content-Digest") == digest
    assert location(registry, r)
    g = registry.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data, describe(g)
    assert has_blob(server.data_dir, digest)


def test_post_then_put(server, registry, unique):
    repo = f"library/{unique}"
    data = os.urandom(50_000)
    digest = sha256_digest(data)
    r = registry.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, describe(r)
    check_api_version(r)
    assert r.headers.get("Docker-Upload-UUID"), describe(r)
    loc = location(registry, r)
    p = registry.put(loc, params={"digest": digest}, data=data, headers=OCTET)
    assert p.status_code == 201, describe(p)
    assert p.headers.get("Docker-Content-Digest") == digest
    blob_loc = location(registry, p)
    g = registry.get(blob_loc)
    assert g.status_code == 200 and g.content == data, describe(g)
    h = registry.head(f"/v2/{repo}/blobs/{digest}")
    assert h.status_code == 200, describe(h)
    assert int(h.headers["Content-Length"]) == len(data)
    assert h.headers.get("Docker-Content-Digest") == digest
    assert h.content == b""
    with open(blob_path(server.data_dir, digest), "rb") as f:
        assert f.read() == data


def test_chunked_upload(server, registry, unique):
    repo = f"library/{unique}"
    chunks = [os.urandom(n) for n in (100_000, 70_000, 30_001)]
    data = b"".join(chunks)
    digest = sha256_digest(data)
    loc = registry.start_upload(repo)
    offset = 0
    for chunk in chunks[:2]:
        end = offset + len(chunk) - 1
        r = registry.patch(loc, data=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{end}",
        })
        assert r.status_code == 202, describe(r)
        check_api_version(r)
        assert r.headers.get("Range") == f"0-{end}", describe(r)
        assert r.headers.get("Docker-Upload-UUID"), describe(r)
        loc = location(registry, r)
        offset = end + 1

    # Upload status: 204 with the range received so far.
    s = registry.get(loc)
    assert s.status_code == 204, describe(s)
    check_api_version(s)
    assert s.headers.get("Range") == f"0-{offset - 1}", describe(s)
    assert s.headers.get("Docker-Upload-UUID"), describe(s)
    assert location(registry, s)

    # A chunk that does not start where the upload stands is refused with 416
    # and the range the server holds.
    bad = registry.patch(loc, data=chunks[2], headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{offset + 10}-{offset + 10 + len(chunks[2]) - 1}",
    })
    expect_error(bad, 416, "BLOB_UPLOAD_INVALID")
    assert bad.headers.get("Range") == f"0-{offset - 1}", describe(bad)

    # The session survives the refused chunk: resume at the right offset and
    # send the last chunk with the closing PUT.
    p = registry.put(loc, params={"digest": digest}, data=chunks[2], headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{offset}-{offset + len(chunks[2]) - 1}",
    })
    assert p.status_code == 201, describe(p)
    assert p.headers.get("Docker-Content-Digest") == digest
    g = registry.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data, describe(g)


def test_chunked_upload_then_empty_put(registry, unique):
    repo = f"library/{unique}"
    data = os.urandom(90_000)
    digest = sha256_digest(data)
    loc = registry.start_upload(repo)
    for off in range(0, len(data), 30_000):
        chunk = data[off:off + 30_000]
        r = registry.patch(loc, data=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{off}-{off + len(chunk) - 1}",
        })
        assert r.status_code == 202, describe(r)
        loc = location(registry, r)
    p = registry.put(loc, params={"digest": digest})
    assert p.status_code == 201, describe(p)
    g = registry.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data, describe(g)


def test_upload_cancel(server, registry, unique):
    repo = f"library/{unique}"
    before = staging_files(server.data_dir)
    loc = registry.start_upload(repo)
    r = registry.patch(loc, data=os.urandom(20_000), headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-19999"})
    assert r.status_code == 202, describe(r)
    loc = location(registry, r)
    created = staging_files(server.data_dir) - before
    assert created, "an upload in progress left no staging file under uploads/"

    d = registry.delete(loc)
    assert d.status_code == 204 and d.content == b"", describe(d)
    check_api_version(d)
    expect_error(registry.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(registry.patch(loc, data=b"x", headers={
        "Content-Type": "application/octet-stream", "Content-Range": "20000-20000"}),
        404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(registry.put(loc, params={"digest": sha256_digest(b"")}), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    leftover = created & staging_files(server.data_dir)
    assert not leftover, f"staging files of a cancelled upload remain: {leftover}"


def test_unknown_upload_session(registry, unique):
    repo = f"library/{unique}"
    registry.push_blob(repo, b"make the repository exist")
    fake = f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"
    expect_error(registry.get(fake), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(registry.patch(fake, data=b"abc", headers=OCTET), 404, "BLOB_UPLOAD_UNKNOWN")


def test_cross_repo_mount(registry, unique):
    src, dst, other = (f"library/{unique}-{s}" for s in ("src", "dst", "other"))
    data = os.urandom(5000)
    digest = registry.push_blob(src, data)

    r = registry.post(f"/v2/{dst}/blobs/uploads/", params={"mount": digest, "from": src})
    assert r.status_code == 201, describe(r)
    check_api_version(r)
    assert r.headers.get("Docker-Content-Digest") == digest
    assert location(registry, r)
    g = registry.get(f"/v2/{dst}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data, describe(g)

    # Not in `from` (here: nowhere): a plain upload session instead.
    missing = sha256_digest(os.urandom(32))
    r = registry.post(f"/v2/{dst}/blobs/uploads/", params={"mount": missing, "from": src})
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Docker-Upload-UUID"), describe(r)
    fresh = os.urandom(300)
    p = registry.put(location(registry, r), params={"digest": sha256_digest(fresh)}, data=fresh,
                     headers=OCTET)
    assert p.status_code == 201, describe(p)

    # Stored, but in another repository than `from`: no mount either.
    only_other = registry.push_blob(other, os.urandom(700))
    r = registry.post(f"/v2/{dst}/blobs/uploads/", params={"mount": only_other, "from": src})
    assert r.status_code == 202, describe(r)
    h = registry.head(f"/v2/{dst}/blobs/{only_other}")
    assert h.status_code == 404, describe(h)


def test_blob_range_requests(registry, unique):
    repo = f"library/{unique}"
    data = os.urandom(1000)
    digest = registry.push_blob(repo, data)
    path = f"/v2/{repo}/blobs/{digest}"

    for rng, lo, hi in (("bytes=10-19", 10, 19), ("bytes=990-", 990, 999), ("bytes=0-0", 0, 0)):
        r = registry.get(path, headers={"Range": rng})
        assert r.status_code == 206, f"{rng}: " + describe(r)
        assert r.content == data[lo:hi + 1], rng
        assert r.headers.get("Content-Range") == f"bytes {lo}-{hi}/1000", describe(r)
        assert int(r.headers["Content-Length"]) == hi - lo + 1

    r = registry.get(path, headers={"Range": "bytes=2000-3000"})
    assert r.status_code == 416, describe(r)
    check_api_version(r)
    cr = r.headers.get("Content-Range")
    assert cr is None or cr == "bytes */1000", describe(r)

    full = registry.get(path)
    assert full.status_code == 200 and full.content == data


def test_wrong_digest_is_refused_and_nothing_stored(server, registry, unique):
    repo = f"library/{unique}"
    data = os.urandom(4096)
    actual = sha256_digest(data)
    claimed = sha256_digest(b"something else")

    r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, data=data,
                      headers=OCTET)
    expect_error(r, 400, "DIGEST_INVALID")

    loc = registry.start_upload(repo)
    r = registry.put(loc, params={"digest": claimed}, data=data, headers=OCTET)
    expect_error(r, 400, "DIGEST_INVALID")

    for d in (claimed, actual):
        assert not has_blob(server.data_dir, d), f"{d} stored after a digest mismatch"
        h = registry.head(f"/v2/{repo}/blobs/{d}")
        assert h.status_code == 404, describe(h)


def test_bad_digests(registry, unique):
    repo = f"library/{unique}"
    data = b"payload"
    malformed = ["sha256:xyz", "sha256:" + "0" * 63, "sha256:" + "A" * 64, "nocolon"]
    for d in malformed:
        r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": d}, data=data,
                          headers=OCTET)
        expect_error(r, 400, "DIGEST_INVALID")
    md5 = "md5:" + "0" * 32
    r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": md5}, data=data,
                      headers=OCTET)
    assert r.status_code == 400, describe(r)
    codes = {e["code"] for e in check_error_body(r)}
    assert codes & {"DIGEST_INVALID", "UNSUPPORTED"}, describe(r)


def test_sha512_blob(server, registry, unique):
    repo = f"library/{unique}"
    data = os.urandom(30_000)
    digest = sha512_digest(data)
    r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, data=data,
                      headers=OCTET)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest
    g = registry.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data, describe(g)
    assert g.headers.get("Docker-Content-Digest") == digest
    h = registry.head(f"/v2/{repo}/blobs/{digest}")
    assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(data)
    assert has_blob(server.data_dir, digest)

    # The POST-PUT flow takes a sha512 digest too.
    data2 = os.urandom(1000)
    loc = registry.start_upload(repo)
    p = registry.put(loc, params={"digest": sha512_digest(data2)}, data=data2, headers=OCTET)
    assert p.status_code == 201, describe(p)
    g = registry.get(f"/v2/{repo}/blobs/{sha512_digest(data2)}")
    assert g.status_code == 200 and g.content == data2


# ------------------------------------------------------------ manifests


def test_manifest_put_get_head(registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    for data in img.blobs.values():
        registry.push_blob(repo, data)
    r = registry.push_manifest(repo, "v1", img.manifest)
    assert r.status_code == 201, describe(r)
    check_api_version(r)
    assert r.headers.get("Docker-Content-Digest") == img.manifest_digest
    assert location(registry, r)
    for ref in ("v1", img.manifest_digest):
        h = registry.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": MT_MANIFEST})
        assert h.status_code == 200, describe(h)
        assert h.headers.get("Docker-Content-Digest") == img.manifest_digest
        assert int(h.headers["Content-Length"]) == len(img.manifest)
        assert h.headers.get("Content-Type") == MT_MANIFEST
        g = registry.get_manifest(repo, ref)
        assert g.status_code == 200 and g.content == img.manifest, describe(g)

    # Pushing by digest works as well; a digest that does not match the body
    # is refused.
    img2 = small_image()
    for data in img2.blobs.values():
        registry.push_blob(repo, data)
    r = registry.push_manifest(repo, img2.manifest_digest, img2.manifest)
    assert r.status_code == 201, describe(r)
    wrong = registry.push_manifest(repo, img.manifest_digest, img2.manifest)
    assert wrong.status_code == 400, describe(wrong)
    assert {e["code"] for e in check_error_body(wrong)} & {"DIGEST_INVALID", "MANIFEST_INVALID"}


def test_manifest_with_missing_blobs(registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    # Config present, one layer missing.
    registry.push_blob(repo, img.config)
    registry.push_blob(repo, img.blobs[img.layers[0]])
    r = registry.push_manifest(repo, "v1", img.manifest)
    expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN")

    # Layers present, config missing.
    img2 = small_image()
    for d in img2.layers:
        registry.push_blob(repo, img2.blobs[d])
    r = registry.push_manifest(repo, "v2", img2.manifest)
    expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    g = registry.get_manifest(repo, "v2")
    assert g.status_code == 404, describe(g)


def test_index_with_missing_child(registry, unique):
    repo = f"library/{unique}"
    present = small_image(arch="amd64")
    registry.push_image(repo, present)
    absent = small_image(arch="arm64")
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            dict(present.manifest_descriptor, platform=present.platform),
            dict(absent.manifest_descriptor, platform=absent.platform),
        ],
    }).encode()
    r = registry.push_manifest(repo, "multi", index, MT_INDEX)
    expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN")

    registry.push_image(repo, absent)
    r = registry.push_manifest(repo, "multi", index, MT_INDEX)
    assert r.status_code == 201, describe(r)


@pytest.mark.parametrize("body", [
    b"{not json",
    b"",
    b"[]",
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": "nope", "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
    b' "config": {"mediaType": "application/vnd.oci.image.config.v1+json",'
    b' "digest": "sha256:zz", "size": 2}, "layers": []}',
], ids=["truncated", "empty", "array", "no-config", "config-string", "bad-digest"])
def test_malformed_manifest(registry, unique, body):
    repo = f"library/{unique}"
    registry.push_blob(repo, b"{}")
    r = registry.push_manifest(repo, "bad", body)
    expect_error(r, 400, "MANIFEST_INVALID")


def padded_manifest(repo, registry, size: int) -> bytes:
    """A valid manifest of exactly `size` bytes (padded in an annotation)."""
    config = canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                                                                               "diff_ids": []}})
    registry.push_blob(repo, config)
    doc = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
           "config": {"mediaType": MT_CONFIG, "digest": sha256_digest(config), "size": len(config)},
           "layers": [], "annotations": {"pad": ""}}
    base = len(json.dumps(doc).encode())
    doc["annotations"]["pad"] = "x" * (size - base)
    out = json.dumps(doc).encode()
    assert len(out) == size
    return out


def size_named(message: str, limit: int) -> bool:
    m = message.replace(",", "").replace(" ", "").lower()
    forms = {str(limit)}
    if limit % 1024 == 0:
        forms |= {f"{limit // 1024}kib", f"{limit // 1024}k"}
    if limit % (1 << 20) == 0:
        forms |= {f"{limit >> 20}mib", f"{limit >> 20}m"}
    return any(f in m for f in forms)


def test_oversize_manifest_default_limit(registry, unique):
    repo = f"library/{unique}"
    limit = 4 * 1024 * 1024
    body = padded_manifest(repo, registry, limit + 1)
    r = registry.push_manifest(repo, "big", body)
    err = expect_error(r, 413, "MANIFEST_INVALID")
    assert size_named(err.get("message", ""), limit), f"message does not state the limit: {err}"


def test_manifest_size_limit_is_configurable(servers, unique):
    limit = 65536
    srv = servers.new(env={"WHARF_MAX_MANIFEST": str(limit)})
    reg = srv.registry()
    repo = f"library/{unique}"
    ok = padded_manifest(repo, reg, limit)
    r = reg.push_manifest(repo, "at-limit", ok)
    assert r.status_code == 201, describe(r)
    big = padded_manifest(repo, reg, limit + 1)
    r = reg.push_manifest(repo, "over-limit", big)
    err = expect_error(r, 413, "MANIFEST_INVALID")
    assert size_named(err.get("message", ""), limit), f"message does not state the limit: {err}"


# ------------------------------------------------------------ listing


LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def next_link(r):
    link = r.headers.get("Link")
    if not link:
        return None
    m = LINK_RE.search(link)
    assert m, f"malformed Link header {link!r}"
    return m.group(1)


def test_tags_list_pagination(registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "t0")
    tags = ["t0", "t1", "t2", "t3", "t4"]
    for t in tags[1:]:
        r = registry.push_manifest(repo, t, img.manifest)
        assert r.status_code == 201, describe(r)

    r = registry.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, describe(r)
    check_api_version(r)
    assert r.json() == {"name": repo, "tags": tags}

    r = registry.get(f"/v2/{repo}/tags/list", params={"n": 2})
    assert r.status_code == 200, describe(r)
    assert r.json()["tags"] == ["t0", "t1"]
    link = next_link(r)
    assert link, "first page of two has no Link: " + describe(r)
    parts = urlsplit(link)
    assert parts.path == f"/v2/{repo}/tags/list", link
    assert "n=2" in parts.query and "last=t1" in parts.query, link

    seen = list(r.json()["tags"])
    pages = 1
    while link and pages < 10:
        r = registry.get(link)
        assert r.status_code == 200, describe(r)
        page = r.json()["tags"]
        assert len(page) <= 2
        seen += page
        link = next_link(r)
        pages += 1
    assert seen == tags

    r = registry.get(f"/v2/{repo}/tags/list", params={"n": 10, "last": "t2"})
    assert r.json()["tags"] == ["t3", "t4"]
    assert not r.headers.get("Link"), describe(r)


def test_catalog_pagination(registry, unique):
    mine = [f"library/{unique}-{i}" for i in range(3)]
    for repo in mine:
        registry.push_image(repo, small_image(layers=1), "v1")
    r = registry.get("/v2/_catalog")
    assert r.status_code == 200, describe(r)
    check_api_version(r)
    full = r.json()["repositories"]
    assert set(mine) <= set(full)
    assert full == sorted(full)

    link = "/v2/_catalog?n=2"
    seen, pages = [], 0
    while link and pages < 1000:
        r = registry.get(link)
        assert r.status_code == 200, describe(r)
        page = r.json()["repositories"]
        assert len(page) <= 2, describe(r)
        seen += page
        link = next_link(r)
        if link:
            assert "n=2" in link and f"last={page[-1]}" in unquote(link), link
        pages += 1
    assert seen == sorted(set(seen)), "pages overlap or are out of order"
    assert set(mine) <= set(seen)
    assert set(full) <= set(seen)


# ------------------------------------------------------------ deletes


def test_deletes(server, registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "gone")
    r = registry.push_manifest(repo, "kept", img.manifest)
    assert r.status_code == 201, describe(r)

    # By tag: the tag goes, the manifest stays.
    d = registry.delete(f"/v2/{repo}/manifests/gone")
    assert d.status_code == 202, describe(d)
    check_api_version(d)
    expect_error(registry.get_manifest(repo, "gone"), 404, "MANIFEST_UNKNOWN")
    assert registry.get_manifest(repo, img.manifest_digest).status_code == 200
    assert registry.get_manifest(repo, "kept").status_code == 200
    assert "gone" not in (registry.get(f"/v2/{repo}/tags/list").json().get("tags") or [])

    # By digest: the manifest goes.
    d = registry.delete(f"/v2/{repo}/manifests/{img.manifest_digest}")
    assert d.status_code == 202, describe(d)
    expect_error(registry.get_manifest(repo, img.manifest_digest), 404, "MANIFEST_UNKNOWN")
    h = registry.head(f"/v2/{repo}/manifests/{img.manifest_digest}")
    assert h.status_code == 404, describe(h)
    expect_error(registry.delete(f"/v2/{repo}/manifests/{img.manifest_digest}"), 404,
                 "MANIFEST_UNKNOWN")
    # Tags on a deleted manifest go with it.
    expect_error(registry.get_manifest(repo, "kept"), 404, "MANIFEST_UNKNOWN")
    assert "kept" not in (registry.get(f"/v2/{repo}/tags/list").json().get("tags") or [])

    # A blob.
    layer = img.layers[0]
    d = registry.delete(f"/v2/{repo}/blobs/{layer}")
    assert d.status_code == 202, describe(d)
    expect_error(registry.get(f"/v2/{repo}/blobs/{layer}"), 404, "BLOB_UNKNOWN")
    assert registry.head(f"/v2/{repo}/blobs/{layer}").status_code == 404
    expect_error(registry.delete(f"/v2/{repo}/blobs/{layer}"), 404, "BLOB_UNKNOWN")


# ------------------------------------------------------------ names and unknowns


@pytest.mark.parametrize("method,path", [
    ("GET", "/v2/UPPER/x/manifests/latest"),
    ("GET", "/v2/library/UPPER/manifests/latest"),
    ("GET", "/v2/a/../b/manifests/x"),
    ("GET", "/v2/library/../etc/manifests/x"),
    ("GET", "/v2/library/a..b/manifests/x"),
    ("GET", "/v2/library/-x/manifests/x"),
    ("GET", "/v2/noslash/manifests/x"),
    ("GET", "/v2/noslash/tags/list"),
    ("HEAD", "/v2/UPPER/x/blobs/sha256:" + "0" * 64),
    ("POST", "/v2/UPPER/x/blobs/uploads/"),
    ("POST", "/v2/noslash/blobs/uploads/"),
    ("PUT", "/v2/library/a%2F..%2Fb/manifests/x"),
])
def test_invalid_names(server, method, path):
    body = b"{}" if method == "PUT" else None
    headers = {"Content-Type": MT_MANIFEST} if method == "PUT" else {}
    status, hdrs, data = raw_request(server, method, path, body, headers)
    if method == "HEAD":
        assert status == 400, f"{method} {path} -> {status} {hdrs}"
        return
    check_raw_error(status, hdrs, data, 400, "NAME_INVALID", f"{method} {path}")


def test_push_to_missing_project(registry):
    project = f"nosuch{os.urandom(3).hex()}"
    repo = f"{project}/app"
    r = registry.post(f"/v2/{repo}/blobs/uploads/")
    err = expect_error(r, 404, "NAME_UNKNOWN")
    assert project in err.get("message", ""), f"message does not name the project: {err}"
    data = b"x" * 10
    r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256_digest(data)},
                      data=data, headers=OCTET)
    expect_error(r, 404, "NAME_UNKNOWN")
    img = small_image(layers=1)
    r = registry.push_manifest(repo, "v1", img.manifest)
    err = expect_error(r, 404, "NAME_UNKNOWN")
    assert project in err.get("message", "")


def test_unknown_manifest_and_blob(registry, unique):
    repo = f"library/{unique}"
    registry.push_image(repo, small_image(layers=1), "v1")
    expect_error(registry.get_manifest(repo, "nope"), 404, "MANIFEST_UNKNOWN")
    expect_error(registry.get_manifest(repo, sha256_digest(os.urandom(8))), 404, "MANIFEST_UNKNOWN")
    assert registry.head(f"/v2/{repo}/manifests/nope").status_code == 404
    missing = sha256_digest(os.urandom(8))
    expect_error(registry.get(f"/v2/{repo}/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    h = registry.head(f"/v2/{repo}/blobs/{missing}")
    assert h.status_code == 404 and h.content == b"", describe(h)
    # A repository nobody pushed to, in an existing project.
    r = registry.get_manifest(f"library/{unique}-never", "v1")
    assert r.status_code == 404, describe(r)
    assert {e["code"] for e in check_error_body(r)} & {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"}


def test_version_header_and_error_bodies_everywhere(server, registry, unique):
    """Every /v2 answer, success or failure, carries the API version header;
    every failure with a body carries an OCI error document."""
    repo = f"library/{unique}"
    img = small_image(layers=1)
    registry.push_image(repo, img, "v1")
    layer = img.layers[0]
    missing = sha256_digest(b"missing")
    calls = [
        ("GET", "/v2/", {}),
        ("GET", "/v2/_catalog", {}),
        ("GET", f"/v2/{repo}/tags/list", {}),
        ("GET", f"/v2/{repo}/manifests/v1", {"headers": {"Accept": MT_MANIFEST}}),
        ("HEAD", f"/v2/{repo}/manifests/v1", {"headers": {"Accept": MT_MANIFEST}}),
        ("GET", f"/v2/{repo}/blobs/{layer}", {}),
        ("HEAD", f"/v2/{repo}/blobs/{layer}", {}),
        ("GET", f"/v2/{repo}/blobs/{layer}", {"headers": {"Range": "bytes=0-3"}}),
        ("POST", f"/v2/{repo}/blobs/uploads/", {}),
        ("GET", f"/v2/{repo}/referrers/{img.manifest_digest}", {}),
        ("GET", f"/v2/{repo}/manifests/nope", {}),
        ("HEAD", f"/v2/{repo}/manifests/nope", {}),
        ("GET", f"/v2/{repo}/blobs/{missing}", {}),
        ("HEAD", f"/v2/{repo}/blobs/{missing}", {}),
        ("DELETE", f"/v2/{repo}/blobs/{missing}", {}),
        ("GET", f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}", {}),
        ("PUT", f"/v2/{repo}/manifests/bad", {"data": b"{", "headers": {"Content-Type": MT_MANIFEST}}),
        ("POST", f"/v2/{repo}/blobs/uploads/", {"params": {"digest": "sha256:00"}, "data": b"x"}),
        ("GET", "/v2/UPPER/x/tags/list", {}),
        ("GET", f"/v2/nosuch{os.urandom(2).hex()}/x/tags/list", {}),
        ("GET", f"/v2/{repo}/blobs/{layer}", {"headers": {"Range": "bytes=99999-"}}),
    ]
    for method, path, kw in calls:
        r = registry.request(method, path, **kw)
        check_api_version(r)
        if r.status_code >= 400 and method != "HEAD" and r.status_code != 416:
            check_error_body(r)
        if r.status_code == 416 and r.content:
            check_error_body(r)
