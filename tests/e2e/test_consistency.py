"""Deletes, quotas and administrators stay consistent, whatever the order or
the concurrency of the requests:

- /v2/ refuses to delete a manifest that an index of the repository lists
  (405 UNSUPPORTED naming the index), as the REST API refuses it (412);
- a blob DELETE never breaks an image: a blob that a manifest of the
  repository references is refused (405 UNSUPPORTED naming the manifest);
- parallel pushes against a project quota accept exactly what fits: the
  quota is reserved in the transaction that records the blob;
- the last system administrator can never be demoted or deleted, even by
  two administrators removing each other at the same moment.
"""

import json
import socket
import threading

import pytest

from apiclient import Api
from apiclient import expect_error as api_expect_error
from conftest import unread_by_server, wait_until
from ocilayout import MT_INDEX, make_image, make_index, sha256_digest
from regclient import ADMIN_PASSWORD, ADMIN_USER, Registry, basic_auth, describe, expect_error

KiB = 1024
OCTET = "application/octet-stream"


def small_image(seed, arch="amd64"):
    return make_image(layers=2, files_per_layer=1, file_size=512, seed=seed, arch=arch)


def pull_ok(reg: Registry, repo: str, ref: str, img):
    """The image pulls whole: its manifest, config and every layer."""
    r = reg.get_manifest(repo, ref)
    assert r.status_code == 200, describe(r)
    for digest, data in img.blobs.items():
        b = reg.get(f"/v2/{repo}/blobs/{digest}")
        assert b.status_code == 200 and b.content == data, describe(b)


# ---------------------------------------------------------------- deletes


def test_index_child_delete_is_refused(server, registry, unique):
    repo = f"library/{unique}"
    imgs = [small_image(unique + "a", "amd64"), small_image(unique + "b", "arm64")]
    for img in imgs:
        registry.push_image(repo, img)
    idx = make_index(imgs)
    r = registry.push_manifest(repo, "multi", idx.index, MT_INDEX)
    assert r.status_code == 201, describe(r)

    child = imgs[0].manifest_digest
    r = registry.delete(f"/v2/{repo}/manifests/{child}")
    e = expect_error(r, 405, "UNSUPPORTED")
    assert idx.index_digest in e["message"] and "multi" in e["message"], e
    # nothing moved: the index and its child still pull
    r = registry.get_manifest(repo, "multi")
    assert r.status_code == 200 and r.content == idx.index, describe(r)
    pull_ok(registry, repo, child, imgs[0])

    # the REST API gives the same decision in its own shape
    api = Api(server.url, (ADMIN_USER, ADMIN_PASSWORD))
    name = unique  # the repository part after "library/"
    api_expect_error(api.delete(f"/projects/library/repositories/{name}/artifacts/{child}"), 412,
                     "VIOLATE_FOREIGN_KEY_CONSTRAINT")

    # once the index is gone, so may its children go
    assert registry.delete(f"/v2/{repo}/manifests/{idx.index_digest}").status_code == 202
    assert registry.delete(f"/v2/{repo}/manifests/{child}").status_code == 202
    expect_error(registry.get_manifest(repo, child), 404, "MANIFEST_UNKNOWN")


def test_blob_delete_never_breaks_an_image(registry, unique):
    repo = f"library/{unique}"
    img = small_image(unique)
    registry.push_image(repo, img, "v1")
    shared = img.layers[0]
    # the same layer under a second, untagged manifest of the repository
    other = small_image(unique + "-2")
    other_man = json.loads(img.manifest)
    other_man["config"] = json.loads(other.manifest)["config"]
    registry.push_blob(repo, other.config)
    body = json.dumps(other_man).encode()
    r = registry.push_manifest(repo, sha256_digest(body), body)
    assert r.status_code == 201, describe(r)

    for digest in [img.config_digest, *img.layers]:
        r = registry.delete(f"/v2/{repo}/blobs/{digest}")
        e = expect_error(r, 405, "UNSUPPORTED")
        assert "manifest" in e["message"] and "sha256:" in e["message"], e
    # the manifest's own bytes are not a loose blob either
    expect_error(registry.delete(f"/v2/{repo}/blobs/{img.manifest_digest}"), 405, "UNSUPPORTED")
    pull_ok(registry, repo, "v1", img)

    # a blob no manifest uses goes at once
    loose = b"loose bytes " + unique.encode()
    registry.push_blob(repo, loose)
    assert registry.delete(f"/v2/{repo}/blobs/{sha256_digest(loose)}").status_code == 202
    expect_error(registry.get(f"/v2/{repo}/blobs/{sha256_digest(loose)}"), 404, "BLOB_UNKNOWN")

    # once the tagged manifest is gone, the layer it shared is still held by the other one
    assert registry.delete(f"/v2/{repo}/manifests/{img.manifest_digest}").status_code == 202
    assert registry.delete(f"/v2/{repo}/blobs/{img.config_digest}").status_code == 202
    r = registry.delete(f"/v2/{repo}/blobs/{shared}")
    assert sha256_digest(body) in expect_error(r, 405, "UNSUPPORTED")["message"]
    assert registry.delete(f"/v2/{repo}/manifests/{sha256_digest(body)}").status_code == 202
    assert registry.delete(f"/v2/{repo}/blobs/{shared}").status_code == 202
    expect_error(registry.get(f"/v2/{repo}/blobs/{shared}"), 404, "BLOB_UNKNOWN")


# ---------------------------------------------------------------- quota


def parallel(fns):
    """Run the callables at once (released together); return their results in order."""
    gate = threading.Barrier(len(fns))
    out = [None] * len(fns)

    def run(i):
        gate.wait()
        try:
            out[i] = fns[i]()
        except Exception as e:  # reported by the caller's assertions
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


@pytest.mark.parametrize("flow", ["chunked", "monolithic"])
def test_parallel_pushes_respect_the_quota(servers, unique, flow):
    """Ten 300 KiB blobs pushed at once into a project with 1 MiB of quota:
    exactly three fit, the seven others are refused with Harbor's message,
    and the usage never passes the limit."""
    srv = servers.new()
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(unique, storage_limit=1024 * KiB)
    blobs = [bytes([i]) * 8 + __import__("os").urandom(300 * KiB - 8) for i in range(10)]
    clients = [Registry(srv.url) for _ in blobs]

    if flow == "chunked":
        # every body is staged first, so that the ten commits race
        locs = []
        for reg, data in zip(clients, blobs):
            loc = reg.start_upload(f"{unique}/r{len(locs)}")
            r = reg.patch(loc, data=data, headers={"Content-Type": OCTET})
            assert r.status_code == 202, describe(r)
            locs.append(r.headers["Location"])
        fns = [lambda reg=reg, loc=loc, data=data: reg.put(loc, params={"digest": sha256_digest(data)})
               for reg, loc, data in zip(clients, locs, blobs)]
    else:
        fns = [lambda i=i, reg=reg, data=data: reg.post(
            f"/v2/{unique}/r{i}/blobs/uploads/", params={"digest": sha256_digest(data)}, data=data,
            headers={"Content-Type": OCTET}) for i, (reg, data) in enumerate(zip(clients, blobs))]
    answers = parallel(fns)
    for a in answers:
        assert not isinstance(a, Exception), repr(a)
    accepted = [i for i, a in enumerate(answers) if a.status_code == 201]
    for i, a in enumerate(answers):
        if i not in accepted:
            e = expect_error(a, 403, "DENIED")
            assert "exceed the configured upper limit of 1.0 MiB" in e["message"], e
    assert len(accepted) == 3, f"{len(accepted)} of 10 accepted: {[a.status_code for a in answers]}"

    summary = api.ok(api.get(f"/projects/{unique}/summary")).json()
    assert summary["quota"]["used"]["storage"] == 3 * 300 * KiB, summary["quota"]
    reg = Registry(srv.url)
    for i, data in enumerate(blobs):
        r = reg.head(f"/v2/{unique}/r{i}/blobs/{sha256_digest(data)}")
        assert r.status_code == (200 if i in accepted else 404), describe(r)


# ---------------------------------------------------------------- administrators


def staged(port: int, method: str, path: str, creds, body: bytes):
    """Open a connection and send a request but for the last byte of its body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {basic_auth(*creds)}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    s.sendall(head + body[:-1])
    return s, body[-1:]


def finish(s: socket.socket, last: bytes):
    """Send the last byte; return the answer's status and body (the server
    closes the connection after it)."""
    s.sendall(last)
    data = b""
    while True:
        more = s.recv(65536)
        if not more:
            break
        data += more
    s.close()
    assert data.startswith(b"HTTP/"), data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def admins(api: Api) -> list:
    users = api.ok(api.get("/users", params={"page_size": 100})).json()
    return sorted(u["username"] for u in users if u["sysadmin_flag"])


@pytest.mark.parametrize("moves", [("demote", "demote"), ("delete", "delete"), ("demote", "delete")])
def test_two_administrators_removing_each_other(servers, unique, moves):
    """Two administrators each remove the other at the same moment. Both
    requests are sent but for the last byte of their bodies (the server
    identifies a caller on its first body bytes, so each is still an
    administrator then), then the last byte of each is sent: one removal goes
    through, the other is refused with 403, and one administrator remains.

    That the server has read a request's bytes does not prove it has already
    identified the caller (its thread may not have run yet): when the second
    request is refused by the role check ("forbidden") rather than by the
    last-administrator rule, the race was not staged and is staged again with
    a fresh administrator; every attempt keeps the invariants."""
    srv = servers.new()
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    admin_id = next(u["user_id"] for u in api.ok(api.get("/users")).json() if u["username"] == ADMIN_USER)
    # verified once, so that the request does not wait on a password check
    api.ok(api.get("/users/current"))

    def request(move, target_id, creds):
        if move == "demote":
            return staged(srv.port, "PUT", f"/api/v2.0/users/{target_id}/sysadmin", creds,
                          b'{"sysadmin_flag": false}')
        return staged(srv.port, "DELETE", f"/api/v2.0/users/{target_id}", creds, b"{}")

    for attempt in range(8):
        other = f"{unique[:28]}-r{attempt}"
        other_pw = "Other-Passw0rd"
        other_id = api.create_user(other, password=other_pw, admin=True)
        assert admins(api) == sorted([ADMIN_USER, other])
        Api(srv.url, (other, other_pw)).ok(Api(srv.url, (other, other_pw)).get("/users/current"))

        a, a_last = request(moves[0], other_id, (ADMIN_USER, ADMIN_PASSWORD))
        b, b_last = request(moves[1], admin_id, (other, other_pw))
        wait_until(lambda: unread_by_server(a) == 0 and unread_by_server(b) == 0, 10,
                   "the server to read both requests but their last byte")
        first, body = finish(a, a_last)
        assert first == 200, body
        second, body = finish(b, b_last)
        assert admins(api) == [ADMIN_USER], f"the last administrator was removed too: {second}"
        message = json.loads(body)
        if (second, message) in (
                (403, {"errors": [{"code": "FORBIDDEN", "message": "forbidden"}]}),
                (401, {"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]})):
            # identified after the first removal: refused by its role (demoted) or
            # unknown (deleted)
            assert (moves[0] == "demote") == (second == 403), (second, body)
            continue
        assert second == 403, f"{second} {body!r}"
        assert message == {"errors": [{
            "code": "FORBIDDEN", "message": "the last system administrator cannot be removed"}]}, body
        break
    else:
        pytest.fail("the race was never staged: every second request was identified late")
    # the survivor still manages users: a new administrator, demoted again
    third = api.create_user(f"{unique[:30]}-new", admin=True)
    api.ok(api.put(f"/users/{third}/sysadmin", {"sysadmin_flag": False}))
    assert admins(api) == [ADMIN_USER]
