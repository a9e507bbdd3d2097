"""Protocol details clients and operators rely on: wrong credentials are
refused even where anonymous access is allowed, 405 answers carry `Allow`,
the `Location` of a new tag resolves, `registry.delete_enabled: false` holds
on the REST API too, `page=0` is refused, and `GET /v2/` without credentials
answers as docs/api.md says."""

import os

import requests

from apiclient import Api
from apiclient import expect_error as api_error
from ocilayout import make_image, sha256_digest
from regclient import ADMIN_PASSWORD, ADMIN_USER, describe, expect_error


def public_image(srv, unique):
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(unique, metadata={"public": "true"})
    img = make_image(layers=1, files_per_layer=1, file_size=1024)
    srv.registry().push_image(f"{unique}/app", img, "v1")
    return img


def test_wrong_basic_credentials_on_a_public_repository_are_refused(server, unique):
    public_image(server, unique)
    path = f"{server.url}/v2/{unique}/app/manifests/v1"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    assert requests.get(path, headers=accept, timeout=10).status_code == 200  # anonymous pull
    r = requests.get(path, headers=accept, auth=(ADMIN_USER, "not-the-password"), timeout=10)
    expect_error(r, 401, "UNAUTHORIZED")
    assert r.headers["WWW-Authenticate"].startswith("Bearer realm="), r.headers
    r = requests.get(path, headers=accept, auth=("nobody-at-all", "whatever"), timeout=10)
    expect_error(r, 401, "UNAUTHORIZED")
    # a token asked for with them is refused too, so a client cannot go on as anonymous
    r = requests.get(f"{server.url}/service/token",
                     params={"service": "wharf", "scope": f"repository:{unique}/app:pull"},
                     auth=(ADMIN_USER, "not-the-password"), timeout=10)
    assert r.status_code == 401, describe(r)
    # (the REST API keeps Harbor's rule, wrong Basic credentials are anonymous: docs/api.md)


def test_405_answers_carry_allow(server, unique):
    reg = server.registry()
    cases = [
        ("DELETE", "/v2/", "GET, HEAD"),
        ("POST", "/v2/_catalog", "GET"),
        ("PUT", f"/v2/library/{unique}/tags/list", "GET"),
        ("PATCH", f"/v2/library/{unique}/manifests/v1", "GET, HEAD, PUT, DELETE"),
        ("PUT", f"/v2/library/{unique}/blobs/uploads/", "POST"),
        ("POST", "/v2/library/x/blobs/sha256:" + "0" * 64, "GET, HEAD, DELETE"),
    ]
    for method, path, allow in cases:
        r = reg.request(method, path)
        assert r.status_code == 405, (method, path, describe(r))
        assert r.headers.get("Allow") == allow, (method, path, r.headers)
    api = Api(server.url, (ADMIN_USER, ADMIN_PASSWORD))
    r = api.req("POST", "/health")
    api_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers.get("Allow") == "GET", r.headers
    r = api.req("PATCH", "/projects/library")
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {
        "GET", "PUT", "DELETE"}, (describe(r), r.headers)


def test_location_of_a_created_tag_resolves(server, unique):
    img = public_image(server, unique)
    api = Api(server.url, (ADMIN_USER, ADMIN_PASSWORD))
    base = f"/projects/{unique}/repositories/app/artifacts/{img.manifest_digest}"
    r = api.ok(api.post(f"{base}/tags", {"name": "stable"}), 201)
    loc = r.headers["Location"]
    assert loc.startswith("/api/v2.0/"), loc
    r = requests.get(server.url + loc, auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=10)
    assert r.status_code == 200, describe(r)
    assert r.json()["name"] == "stable", r.json()
    r = requests.get(server.url + loc.replace("/stable", "/nope"),
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=10)
    api_error(r, 404, "NOT_FOUND")


def test_delete_disabled_holds_on_the_rest_api(servers, unique):
    srv = servers.new(env={"WHARF_DELETE_ENABLED": "false"})
    img = public_image(srv, unique)
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    art = f"/projects/{unique}/repositories/app/artifacts/{img.manifest_digest}"
    api_error(api.delete(f"{art}/tags/v1"), 403, "DENIED")
    api_error(api.delete(art), 403, "DENIED")
    api_error(api.delete(f"/projects/{unique}/repositories/app"), 403, "DENIED")
    # nothing was deleted
    assert srv.registry().get_manifest(f"{unique}/app", "v1").status_code == 200
    assert [t["name"] for t in api.ok(api.get(f"{art}/tags")).json()] == ["v1"]
    # and /v2/ says so with the methods that remain
    r = srv.registry().delete(f"/v2/{unique}/app/manifests/{img.manifest_digest}")
    expect_error(r, 405, "UNSUPPORTED")
    assert r.headers.get("Allow") == "GET, HEAD, PUT", r.headers
    # what is not content can still be deleted
    lid = api.ok(api.post("/labels", {"name": f"l-{unique}", "scope": "g"}), 201)
    api.ok(api.delete(lid.headers["Location"][len("/api/v2.0"):]))


def test_page_zero_is_refused(server):
    api = Api(server.url, (ADMIN_USER, ADMIN_PASSWORD))
    for bad in ("abc", "0", "-1"):
        api_error(api.get("/projects", params={"page": bad}), 400, "BAD_REQUEST")
    assert api.get("/projects", params={"page": "1"}).status_code == 200


def test_v2_root_without_credentials_answers_as_documented(server):
    # docs/api.md: 401 with a Bearer challenge naming the token service, no scope
    r = requests.get(server.url + "/v2/", timeout=10)
    expect_error(r, 401, "UNAUTHORIZED")
    chal = r.headers["WWW-Authenticate"]
    assert chal == (f'Bearer realm="{server.url}/service/token",service="wharf"'), chal
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def used_storage(api, project):
    return api.ok(api.get(f"/projects/{project}/summary")).json()["quota"]["used"]["storage"]


def test_push_refused_for_quota_leaves_nothing_counted(servers, unique):
    srv = servers.new()
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    reg = srv.registry()
    kept = make_image(layers=1, files_per_layer=1, file_size=20 * 1024)
    size_kept = sum(len(b) for b in kept.blobs.values()) + len(kept.manifest)
    limit = size_kept + 300 * 1024
    api.create_project(unique, storage_limit=limit)
    reg.push_image(f"{unique}/app", kept, "kept")
    assert used_storage(api, unique) == size_kept

    # a layer past the quota: the layer the push sent before it stops counting
    first = os.urandom(200 * 1024)
    reg.push_blob(f"{unique}/app", first)
    assert used_storage(api, unique) == size_kept + len(first)
    second = os.urandom(150 * 1024)
    r = reg.post(f"/v2/{unique}/app/blobs/uploads/?digest={sha256_digest(second)}", data=second)
    expect_error(r, 403, "DENIED")
    assert used_storage(api, unique) == size_kept
    assert reg.head(f"/v2/{unique}/app/blobs/{sha256_digest(first)}").status_code == 404
    # the image already there keeps every blob
    assert reg.get_manifest(f"{unique}/app", "kept").status_code == 200
    for d in kept.blobs:
        assert reg.head(f"/v2/{unique}/app/blobs/{d}").status_code == 200, d

    # a manifest past the quota: its layers, all accepted, stop counting
    img = make_image(layers=2, files_per_layer=1, file_size=100 * 1024)
    blobs = sum(len(b) for b in img.blobs.values())
    assert blobs < 300 * 1024 < blobs + 300 * 1024
    for data in img.blobs.values():
        reg.push_blob(f"{unique}/app", data)
    api.ok(api.put(f"/quotas/{api.ok(api.get(f'/projects/{unique}')).json()['project_id']}",
                   {"hard": {"storage": size_kept + blobs + len(img.manifest) - 1}}))
    r = reg.push_manifest(f"{unique}/app", "big", img.manifest)
    expect_error(r, 403, "DENIED")
    assert used_storage(api, unique) == size_kept
    # with room again the same push goes through
    api.ok(api.put(f"/quotas/{api.ok(api.get(f'/projects/{unique}')).json()['project_id']}",
                   {"hard": {"storage": limit + blobs}}))
    reg.push_image(f"{unique}/app", img, "big")
    assert used_storage(api, unique) == size_kept + blobs + len(img.manifest)
