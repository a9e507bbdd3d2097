"""Numbers and strings from the client that a C server must parse with care:
Content-Range, Range, `n`, NUL bytes and very long paths.  None may crash
the server or be answered with a 5xx; valid parts must still be right."""

import os
import re

import pytest

from ocilayout import sha256_digest
from regclient import check_error_body, describe, raw_request

OCTET = "application/octet-stream"


def assert_up(server, registry):
    assert server.running(), "the server died"
    assert registry.get("/v2/").status_code == 200


@pytest.mark.parametrize("content_range", [
    "0-18446744073709551615",
    "0-18446744073709551616",
    "18446744073709551615-0",
    "-5-10",
    "5-3",
    "abc",
    "0-",
    "bytes 0-9/10",
    "0-9-9",
    "0x0-0x9",
    "99999999999999999999999999-99999999999999999999999999",
])
def test_bad_content_range(server, registry, unique, content_range):
    repo = f"library/{unique}"
    loc = registry.start_upload(repo)
    r = registry.patch(loc, data=b"0123456789",
                       headers={"Content-Type": OCTET, "Content-Range": content_range})
    assert r.status_code < 500, describe(r)
    if r.status_code >= 400:
        check_error_body(r)
    assert_up(server, registry)
    if r.status_code == 202:
        # Accepted only if it meant the ten bytes sent.
        assert r.headers.get("Range") == "0-9", describe(r)


@pytest.mark.parametrize("rng", [
    "bytes=0-99999999999999999999999",
    "bytes=18446744073709551615-",
    "bytes=-18446744073709551616",
    "bytes=abc",
    "bytes=5-3",
    "bytes=--1",
    "bytes=0-1,3-4",
    "chars=0-1",
    "bytes=",
])
def test_odd_range_headers(server, registry, unique, rng):
    repo = f"library/{unique}"
    data = os.urandom(100)
    digest = registry.push_blob(repo, data)
    r = registry.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": rng})
    assert r.status_code in (200, 206, 400, 416), describe(r)
    if r.status_code == 200:
        assert r.content == data
    if r.status_code == 206:
        m = re.fullmatch(r"bytes (\d+)-(\d+)/100", r.headers.get("Content-Range", ""))
        assert m, describe(r)
        lo, hi = int(m.group(1)), int(m.group(2))
        assert r.content == data[lo:hi + 1]
    assert_up(server, registry)


@pytest.mark.parametrize("n", ["99999999999999999999", "-1", "0", "1e3", "", "18446744073709551617"])
def test_odd_page_sizes(server, registry, unique, n):
    repo = f"library/{unique}"
    registry.push_blob(repo, b"x")
    for path in (f"/v2/{repo}/tags/list", "/v2/_catalog"):
        r = registry.get(path, params={"n": n})
        assert r.status_code in (200, 400, 404), describe(r)
        if r.status_code >= 400:
            check_error_body(r)
    assert_up(server, registry)


@pytest.mark.parametrize("path", [
    "/v2/library/a%00b/manifests/x",
    "/v2/library/app/manifests/v1%00x",
    "/v2/library/app/blobs/sha256:" + "0" * 32 + "%00" + "0" * 31,
    "/v2/library%00/app/tags/list",
    "/v2/library/app/blobs/uploads/%00",
])
def test_nul_bytes(server, registry, path):
    status, hdrs, body = raw_request(server, "GET", path)
    assert 400 <= status < 500, f"GET {path} -> {status} {body[:200]!r}"
    assert_up(server, registry)


@pytest.mark.parametrize("length", [4096, 70_000])
def test_very_long_names(server, registry, length):
    name = "library/" + "/".join(["a" * 50] * (length // 51))
    status, hdrs, body = raw_request(server, "GET", f"/v2/{name}/tags/list")
    assert 400 <= status < 500, f"{length}-byte name -> {status}"
    if status == 400 and body:
        codes = [e["code"] for e in __import__("json").loads(body)["errors"]]
        assert "NAME_INVALID" in codes, body[:300]
    tag = "t" * length
    status, hdrs, body = raw_request(server, "GET", f"/v2/library/app/manifests/{tag}")
    assert 400 <= status < 500, f"{length}-byte tag -> {status}"
    assert_up(server, registry)


def test_digest_of_wrong_length_in_upload(server, registry, unique):
    repo = f"library/{unique}"
    data = b"abc"
    for d in ("sha256:" + "a" * 65, "sha512:" + "a" * 64, "sha256:" + "a" * 10000):
        r = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": d}, data=data,
                          headers={"Content-Type": OCTET})
        assert r.status_code == 400, describe(r)
        check_error_body(r)
    good = registry.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256_digest(data)},
                         data=data, headers={"Content-Type": OCTET})
    assert good.status_code == 201, describe(good)
    assert_up(server, registry)
