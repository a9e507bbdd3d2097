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


def read_until_closed(sock, deadline_s=10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(deadline_s)
    data = b""
    while len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# The start of a TLS ClientHello as Go writes it, whose random bytes hold a
# line feed before any space: libmicrohttpd finds no method/URI separator in
# that "line". docker's CLI (`docker manifest --insecure`) sends such hellos
# to a plain-HTTP registry and falls back to HTTP only when the answer is in HTTP.
TLS_HELLO = (b"\x16\x03\x01\x00\xdf\x01\x00\x00\xdb\x03\x03\xb5\x5a\x08\n\x81\xf5"
             + bytes(range(0x21, 0x7f)) + b"\x00\x10\x20\xc0\x2b")


@pytest.mark.parametrize("first", [TLS_HELLO, b"GARBAGE\r\n\r\n"], ids=["tls-hello", "no-space"])
def test_request_line_without_space_gets_400(server, registry, first):
    """A first line with no space is answered 400 in HTTP, not dropped in
    silence; an idle connection that sent nothing gets nothing."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(first)
        data = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert_up(server, registry)


def test_idle_connection_closed_without_a_word(servers):
    """The idle timeout closes a connection that never sent a byte with no
    answer, and a kept-alive connection that was answered gets no second one."""
    import socket

    srv = servers.new(env={"WHARF_IDLE_TIMEOUT": "1"})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as idle, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=10) as used:
        used.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        used.settimeout(10)
        while b"\r\n\r\n" not in first:
            chunk = used.recv(4096)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 401 "), first[:200]
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        rest = body[length:] + read_until_closed(used)
        assert rest == b"", rest[:200]
        assert read_until_closed(idle) == b""
