"""REST API fidelity to Harbor (issue 7, item 3): what third-party Harbor
clients read and call beyond the basics.

  * `addition_links` (build_history for images) and the build_history
    addition itself, read from the image config's `history`;
  * `{project_name}` in repository, artifact and tag routes is a name, even
    when all digits, while `{project_name_or_id}` routes keep Harbor's rule;
  * copying an artifact with `POST .../artifacts?from=` (an index with its
    children, tags of the source, quota, permissions on both ends);
  * labels (global and project scope) and labels on artifacts;
  * the quota API, /systeminfo/volumes, /users/current/permissions;
  * X-Request-Id on every answer and in the access log, and the never-pulled
    pull_time Harbor shows ("0001-01-01T00:00:00.000Z").
"""

import json
import os
import socket
import time
import uuid

import pytest

from apiclient import ADMIN_PASSWORD, Api, describe, enc_repo, expect_error, start_server
from conftest import WharfServer
from ocilayout import (
    MT_CONFIG,
    MT_LAYER_GZIP,
    MT_MANIFEST,
    canonical_json,
    descriptor,
    make_image,
    make_index,
    sha256_digest,
)

NEVER = "0001-01-01T00:00:00.000Z"
DEADLINE = 15.0


@pytest.fixture(scope="module")
def srv(wharf_bin, session_tmp):
    s = start_server(WharfServer, wharf_bin, str(session_tmp / "api-fidelity"))
    yield s
    s.stop()


@pytest.fixture
def admin(srv):
    return Api(srv.url, ("admin", ADMIN_PASSWORD))


@pytest.fixture
def reg(srv):
    return srv.registry()


@pytest.fixture
def unique(request) -> str:
    """A project-safe name unique to this test (projects allow single separators only)."""
    words = "".join(c if c.isalnum() else " " for c in request.node.name.lower()).split()
    return "-".join(words[1:4] + [os.urandom(3).hex()])


def small_image(seed, arch="amd64"):
    return make_image(layers=1, files_per_layer=1, file_size=512, seed=seed, arch=arch)


def user_api(srv, admin, name, project=None, role=None):
    """A new user (optionally a member of `project` with `role`) and their client."""
    password = "Passw0rd-" + name
    admin.create_user(name, password)
    if project is not None:
        admin.add_member(project, name, role)
    return Api(srv.url, (name, password))


def poll(fn, what, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def push_custom_image(reg, repo, ref, config_obj, config_type=MT_CONFIG, artifact_type=None):
    """Push a one-layer manifest whose config is `config_obj` (JSON)."""
    layer = b"layer bytes of " + repo.encode()
    config = canonical_json(config_obj)
    reg.push_blob(repo, layer)
    reg.push_blob(repo, config)
    m = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
         "config": descriptor(config_type, config), "layers": [descriptor(MT_LAYER_GZIP, layer)]}
    if artifact_type:
        m["artifactType"] = artifact_type
    body = json.dumps(m).encode()
    r = reg.push_manifest(repo, ref, body)
    assert r.status_code == 201, describe(r)
    return sha256_digest(body)


# ---------------------------------------------------------------- additions


def test_addition_links_and_build_history(srv, admin, reg, unique):
    admin.create_project(unique)
    repo = f"{unique}/team/app"
    history = [
        {"created": "2024-02-03T04:05:06.789Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /",
         "comment": "base layer"},
        {"created": "2024-02-03T04:05:07Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
         "empty_layer": True, "author": "someone", "unknown_field": "dropped"},
        {"created_by": "no date"},
    ]
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": []}, "history": history}
    digest = push_custom_image(reg, repo, "v1", config)
    base = f"/projects/{unique}/repositories/{enc_repo('team/app')}/artifacts"
    href = f"/api/v2.0/projects/{unique}/repositories/team%252Fapp/artifacts/{digest}/additions/build_history"

    a = admin.ok(admin.get(f"{base}/v1")).json()
    vhref = href.replace("/build_history", "/vulnerabilities")
    # an image is scannable: Harbor links its vulnerabilities too
    assert a["addition_links"] == {"build_history": {"href": href, "absolute": False},
                                   "vulnerabilities": {"href": vhref, "absolute": False}}, a
    listed = admin.ok(admin.get(base)).json()
    assert listed[0]["addition_links"] == a["addition_links"]

    # The link is usable as it is (Harbor clients follow it).
    r = admin.s.get(srv.url + href, timeout=30)
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == "application/json; charset=utf-8", describe(r)
    keys = ("created", "created_by", "author", "comment", "empty_layer")
    assert r.json() == [{k: h[k] for k in keys if k in h} for h in history]
    by_tag = admin.ok(admin.get(f"{base}/v1/additions/build_history"))
    assert by_tag.json() == r.json()

    # An image config without history: an empty list.
    d2 = push_custom_image(reg, f"{unique}/bare", "v1", {"architecture": "arm64", "os": "linux"})
    r = admin.ok(admin.get(f"/projects/{unique}/repositories/bare/artifacts/{d2}/additions/build_history"))
    assert r.json() == []

    # An index has no build history.
    img1, img2 = small_image(unique + "a"), small_image(unique + "b", "arm64")
    idx = make_index([img1, img2])
    for img in (img1, img2):
        reg.push_image(f"{unique}/multi", img)
    r = reg.push_manifest(f"{unique}/multi", "v1", idx.index, "application/vnd.oci.image.index.v1+json")
    assert r.status_code == 201, describe(r)
    ia = admin.ok(admin.get(f"/projects/{unique}/repositories/multi/artifacts/v1")).json()
    # ... but its vulnerabilities (its image children's, merged) as Harbor does
    assert set(ia["addition_links"]) == {"vulnerabilities"}
    expect_error(admin.get(f"/projects/{unique}/repositories/multi/artifacts/v1/additions/build_history"),
                 400, "BAD_REQUEST")
    # A child of the index is an image of its own.
    ca = admin.ok(admin.get(f"/projects/{unique}/repositories/multi/artifacts/{img1.manifest_digest}")).json()
    assert set(ca["addition_links"]) == {"build_history", "vulnerabilities"}

    # Not an image: no addition.
    d3 = push_custom_image(reg, f"{unique}/other", "v1", {"k": "v"},
                           config_type="application/vnd.example.thing.config.v1+json")
    oa = admin.ok(admin.get(f"/projects/{unique}/repositories/other/artifacts/{d3}")).json()
    assert oa["addition_links"] == {}
    expect_error(admin.get(f"/projects/{unique}/repositories/other/artifacts/v1/additions/build_history"),
                 400, "BAD_REQUEST")

    # Additions Harbor knows but images lack, and ones it does not know.
    expect_error(admin.get(f"{base}/v1/additions/values.yaml"), 400, "BAD_REQUEST")
    expect_error(admin.get(f"{base}/v1/additions/nothing"), 422, "UNPROCESSABLE_ENTITY")
    # Never scanned: the vulnerabilities addition is empty.
    r = admin.ok(admin.get(f"{base}/v1/additions/vulnerabilities"))
    assert r.json() == {}
    expect_error(admin.get(f"{base}/v9/additions/build_history"), 404, "NOT_FOUND")

    # Reading additions is artifact-addition:read: anonymous callers on a
    # private project are refused, on a public one served.
    anon = Api(srv.url)
    expect_error(anon.get(f"{base}/v1/additions/build_history"), 401, "UNAUTHORIZED")
    admin.ok(admin.put(f"/projects/{unique}", {"metadata": {"public": "true"}}))
    assert anon.get(f"{base}/v1/additions/build_history").status_code == 200


def test_never_pulled_pull_time(admin, reg, unique):
    admin.create_project(unique)
    img = small_image(unique)
    digest = reg.push_image(f"{unique}/app", img, "v1")
    base = f"/projects/{unique}/repositories/app/artifacts"
    a = admin.ok(admin.get(f"{base}/v1")).json()
    assert a["pull_time"] == NEVER and a["push_time"] != NEVER
    assert a["tags"][0]["pull_time"] == NEVER
    assert admin.ok(admin.get(f"{base}/v1/tags")).json()[0]["pull_time"] == NEVER
    assert admin.ok(admin.get(base)).json()[0]["pull_time"] == NEVER
    assert reg.get_manifest(f"{unique}/app", "v1").status_code == 200
    # pulls are written in batches: wait for it
    pulled = poll(lambda: (lambda x: x if x["pull_time"] != NEVER else None)(
        admin.ok(admin.get(f"{base}/{digest}")).json()), "the pull time")
    assert pulled["pull_time"].startswith(time.strftime("%Y-", time.gmtime()))


# ---------------------------------------------------------------- project names


def test_numeric_project_name_in_repository_routes(admin, reg, unique):
    """A project named like another project's id: repository, artifact and
    tag routes take {project_name} as a name, project routes keep Harbor's
    name-or-id rule (an integer is an id unless X-Is-Resource-Name: true)."""
    other = admin.create_project(unique)
    reg.push_image(f"{unique}/decoy", small_image(unique + "d"), "v1")
    name = str(other)
    r = admin.post("/projects", {"project_name": name})
    assert r.status_code == 201, describe(r)
    img = small_image(unique)
    digest = reg.push_image(f"{name}/app", img, "v1")

    repos = admin.ok(admin.get(f"/projects/{name}/repositories")).json()
    assert [x["name"] for x in repos] == [f"{name}/app"]
    one = admin.ok(admin.get(f"/projects/{name}/repositories/app")).json()
    assert one["name"] == f"{name}/app"
    arts = admin.ok(admin.get(f"/projects/{name}/repositories/app/artifacts")).json()
    assert [x["digest"] for x in arts] == [digest]
    assert admin.ok(admin.get(f"/projects/{name}/repositories/app/artifacts/v1")).json()["digest"] == digest
    tags = admin.ok(admin.get(f"/projects/{name}/repositories/app/artifacts/v1/tags")).json()
    assert [t["name"] for t in tags] == ["v1"]
    r = admin.post(f"/projects/{name}/repositories/app/artifacts/v1/tags", {"name": "v2"})
    assert r.status_code == 201, describe(r)
    admin.ok(admin.delete(f"/projects/{name}/repositories/app/artifacts/v1/tags/v2"))
    # the decoy project (whose id is `name`) is not reached
    expect_error(admin.get(f"/projects/{name}/repositories/decoy"), 404, "NOT_FOUND")
    logs = admin.ok(admin.get(f"/projects/{name}/logs", params={"page_size": 100})).json()
    assert logs and all(not x["resource"].startswith(f"{unique}/") for x in logs)

    # {project_name_or_id}: the number is the other project's id...
    assert admin.ok(admin.get(f"/projects/{name}")).json()["name"] == unique
    # ...unless the caller says it is a name
    p = admin.ok(admin.get(f"/projects/{name}", headers={"X-Is-Resource-Name": "true"})).json()
    assert p["name"] == name
    # a name that does not exist is 404 even when it looks like an id
    expect_error(admin.get("/projects/99999999/repositories"), 404, "NOT_FOUND")


# ---------------------------------------------------------------- copy


def test_copy_artifact(srv, admin, reg, unique):
    src, dst = f"{unique}-src", f"{unique}-dst"
    admin.create_project(src)
    admin.create_project(dst)
    img = small_image(unique)
    digest = reg.push_image(f"{src}/app", img, "v1")
    r = reg.push_manifest(f"{src}/app", "also", img.manifest)
    assert r.status_code == 201, describe(r)

    r = admin.post(f"/projects/{dst}/repositories/copy/artifacts", params={"from": f"{src}/app:v1"})
    assert r.status_code == 201, describe(r)
    assert r.headers["Location"] == f"/api/v2.0/projects/{dst}/repositories/copy/artifacts/v1"
    a = admin.ok(admin.get(f"/projects/{dst}/repositories/copy/artifacts/v1")).json()
    assert a["digest"] == digest
    assert sorted(t["name"] for t in a["tags"]) == ["also", "v1"]  # Harbor copies every tag
    # the copy is served by /v2/ byte for byte
    m = reg.get_manifest(f"{dst}/copy", "v1")
    assert m.status_code == 200 and m.content == img.manifest
    for d, data in img.blobs.items():
        b = reg.get(f"/v2/{dst}/copy/blobs/{d}")
        assert b.status_code == 200 and b.content == data, describe(b)
    # the source is untouched
    assert admin.ok(admin.get(f"/projects/{src}/repositories/app/artifacts/v1")).json()["digest"] == digest

    # by digest, into a repository with a slash; copying again is fine
    for _ in range(2):
        r = admin.post(f"/projects/{dst}/repositories/{enc_repo('a/b')}/artifacts",
                       params={"from": f"{src}/app@{digest}"})
        assert r.status_code == 201, describe(r)
        assert r.headers["Location"] == f"/api/v2.0/projects/{dst}/repositories/a%2Fb/artifacts/{digest}"
    assert reg.get_manifest(f"{dst}/a/b", digest).status_code == 200

    # an index comes with its children
    img1, img2 = small_image(unique + "1"), small_image(unique + "2", "arm64")
    idx = make_index([img1, img2])
    for i in (img1, img2):
        reg.push_image(f"{src}/multi", i)
    r = reg.push_manifest(f"{src}/multi", "latest", idx.index, "application/vnd.oci.image.index.v1+json")
    assert r.status_code == 201, describe(r)
    r = admin.post(f"/projects/{dst}/repositories/multi/artifacts", params={"from": f"{src}/multi:latest"})
    assert r.status_code == 201, describe(r)
    for d, body in ((idx.index_digest, idx.index), (img1.manifest_digest, img1.manifest),
                    (img2.manifest_digest, img2.manifest)):
        m = reg.get_manifest(f"{dst}/multi", d)
        assert m.status_code == 200 and m.content == body, describe(m)
        assert admin.get(f"/projects/{dst}/repositories/multi/artifacts/{d}").status_code == 200
    ia = admin.ok(admin.get(f"/projects/{dst}/repositories/multi/artifacts/latest")).json()
    assert sorted(x["child_digest"] for x in ia["references"]) == sorted([img1.manifest_digest, img2.manifest_digest])

    # within one project the bytes are not counted twice
    used = lambda p: admin.ok(admin.get(f"/projects/{p}/summary")).json()["quota"]["used"]["storage"]
    before = used(dst)
    r = admin.post(f"/projects/{dst}/repositories/again/artifacts", params={"from": f"{dst}/copy:v1"})
    assert r.status_code == 201, describe(r)
    assert used(dst) == before

    # quota of the target project
    small = f"{unique}-small"
    admin.ok(admin.post("/projects", {"project_name": small, "storage_limit": 100}), 201)
    r = admin.post(f"/projects/{small}/repositories/x/artifacts", params={"from": f"{src}/app:v1"})
    e = expect_error(r, 403, "DENIED")
    assert "exceed the configured upper limit of 100 B" in e["message"], e
    expect_error(admin.get(f"/projects/{small}/repositories/x/artifacts/v1"), 404, "NOT_FOUND")
    assert used(small) == 0

    # malformed and missing sources
    base = f"/projects/{dst}/repositories/bad/artifacts"
    expect_error(admin.post(base), 422, "UNPROCESSABLE_ENTITY")
    for bad in ("nope", f"{src}/app", f"{src}/app@sha256:zz", f"{src}/app:bad tag", ":v1", f"{src}/APP:v1",
                "a" * 3000):
        expect_error(admin.post(base, params={"from": bad}), 400, "BAD_REQUEST")
    expect_error(admin.post(base, params={"from": f"{src}/app:nosuch"}), 404, "NOT_FOUND")
    expect_error(admin.post(base, params={"from": f"{src}/nosuch:v1"}), 404, "NOT_FOUND")
    expect_error(admin.post(base, params={"from": f"{unique}-nosuch/app:v1"}), 403, "FORBIDDEN")
    expect_error(admin.post(f"/projects/{unique}-nosuch/repositories/x/artifacts",
                            params={"from": f"{src}/app:v1"}), 404, "NOT_FOUND")

    # permissions: pull on the source, push on the target
    dev_both = user_api(srv, admin, f"{unique}-dev", dst, 2)
    admin.add_member(src, f"{unique}-dev", 3)  # guest: may pull
    r = dev_both.post(f"/projects/{dst}/repositories/bydev/artifacts", params={"from": f"{src}/app:v1"})
    assert r.status_code == 201, describe(r)
    dev_dst = user_api(srv, admin, f"{unique}-dd", dst, 2)  # no role in the private source
    expect_error(dev_dst.post(f"/projects/{dst}/repositories/x/artifacts", params={"from": f"{src}/app:v1"}),
                 403, "FORBIDDEN")
    guest = user_api(srv, admin, f"{unique}-guest", dst, 3)
    admin.add_member(src, f"{unique}-guest", 2)
    expect_error(guest.post(f"/projects/{dst}/repositories/x/artifacts", params={"from": f"{src}/app:v1"}),
                 403, "FORBIDDEN")
    expect_error(Api(srv.url).post(f"/projects/{dst}/repositories/x/artifacts", params={"from": f"{src}/app:v1"}),
                 401, "UNAUTHORIZED")
    # audit: the copy is recorded as a create in the target project
    logs = admin.ok(admin.get(f"/projects/{dst}/logs", params={"page_size": 100})).json()
    assert any(x["operation"] == "create" and x["resource"] == f"{dst}/copy@{digest}" for x in logs), logs


# ---------------------------------------------------------------- labels


def label_body(name, scope="g", project_id=None, color="#FF0000", description=""):
    b = {"name": name, "scope": scope, "color": color, "description": description}
    if project_id is not None:
        b["project_id"] = project_id
    return b


def create_label(api, body):
    r = api.post("/labels", body)
    assert r.status_code == 201, describe(r)
    loc = r.headers["Location"]
    assert loc.startswith("/api/v2.0/labels/"), loc
    return int(loc.rsplit("/", 1)[1])


def test_labels(srv, admin, reg, unique):
    pid = admin.create_project(unique)
    other = admin.create_project(unique + "-o")
    gid = create_label(admin, label_body(f"g-{unique}", description="global one"))
    g = admin.ok(admin.get(f"/labels/{gid}")).json()
    assert {k: g[k] for k in ("id", "name", "description", "color", "scope", "project_id")} == \
        {"id": gid, "name": f"g-{unique}", "description": "global one", "color": "#FF0000", "scope": "g",
         "project_id": 0}
    assert g["creation_time"].endswith("Z") and g["update_time"].endswith("Z")
    expect_error(admin.post("/labels", label_body(f"g-{unique}")), 409, "CONFLICT")
    expect_error(admin.post("/labels", label_body("")), 400, "BAD_REQUEST")
    expect_error(admin.post("/labels", label_body("x" * 129)), 400, "BAD_REQUEST")
    expect_error(admin.post("/labels", label_body("ok", scope="x")), 400, "BAD_REQUEST")
    expect_error(admin.post("/labels", label_body("ok", scope="p")), 400, "BAD_REQUEST")
    expect_error(admin.post("/labels", {"name": 5, "scope": "g"}), 400, "BAD_REQUEST")
    expect_error(admin.post("/labels", label_body("ok", scope="p", project_id=99999999)), 404, "NOT_FOUND")

    # project labels: the same name may live in several projects and globally
    p1 = create_label(admin, label_body(f"g-{unique}", scope="p", project_id=pid, color="#00FF00"))
    p2 = create_label(admin, label_body(f"g-{unique}", scope="p", project_id=other))
    expect_error(admin.post("/labels", label_body(f"g-{unique}", scope="p", project_id=pid)), 409, "CONFLICT")
    assert admin.ok(admin.get(f"/labels/{p1}")).json()["project_id"] == pid

    r = admin.ok(admin.get("/labels", params={"scope": "g", "name": f"g-{unique}"}))
    assert [x["id"] for x in r.json()] == [gid] and r.headers["X-Total-Count"] == "1"
    r = admin.ok(admin.get("/labels", params={"scope": "p", "project_id": pid}))
    assert [x["id"] for x in r.json()] == [p1]
    expect_error(admin.get("/labels"), 400, "BAD_REQUEST", "invalid scope: ")
    expect_error(admin.get("/labels", params={"scope": "p"}), 400, "BAD_REQUEST",
                 "must with project ID when to query project labels")

    # who may do what: global labels are the administrators'; project labels
    # are managed by maintainers and read by members (anyone on public projects)
    maint = user_api(srv, admin, f"{unique}-m", pid, 4)
    dev = user_api(srv, admin, f"{unique}-d", pid, 2)
    guest = user_api(srv, admin, f"{unique}-g", pid, 3)
    outsider = user_api(srv, admin, f"{unique}-x")
    anon = Api(srv.url)
    expect_error(maint.post("/labels", label_body(f"g2-{unique}")), 403, "FORBIDDEN")
    expect_error(anon.post("/labels", label_body(f"g2-{unique}")), 401, "UNAUTHORIZED")
    expect_error(dev.post("/labels", label_body("d", scope="p", project_id=pid)), 403, "FORBIDDEN")
    p3 = create_label(maint, label_body(f"m-{unique}", scope="p", project_id=pid))
    assert guest.ok(guest.get("/labels", params={"scope": "p", "project_id": pid})).headers["X-Total-Count"] == "2"
    assert guest.ok(guest.get(f"/labels/{p1}")).json()["id"] == p1
    expect_error(outsider.get("/labels", params={"scope": "p", "project_id": pid}), 403, "FORBIDDEN")
    expect_error(outsider.get(f"/labels/{p1}"), 403, "FORBIDDEN")
    expect_error(anon.get(f"/labels/{p1}"), 401, "UNAUTHORIZED")
    assert anon.get("/labels", params={"scope": "g"}).status_code == 200  # as Harbor: global list is open
    expect_error(dev.put(f"/labels/{p1}", label_body("renamed", scope="p", project_id=pid)), 403, "FORBIDDEN")
    expect_error(maint.delete(f"/labels/{gid}"), 403, "FORBIDDEN")

    # update
    admin.ok(admin.put(f"/labels/{p1}", {"name": f"p1-{unique}", "color": "#0000FF", "description": "new"}))
    p = admin.ok(admin.get(f"/labels/{p1}")).json()
    assert (p["name"], p["color"], p["description"], p["scope"], p["project_id"]) == \
        (f"p1-{unique}", "#0000FF", "new", "p", pid)
    expect_error(admin.put(f"/labels/{p1}", {"name": f"m-{unique}"}), 409, "CONFLICT")
    expect_error(admin.put(f"/labels/{p1}", {"name": ""}), 400, "BAD_REQUEST")
    expect_error(admin.get("/labels/99999999"), 404, "NOT_FOUND")
    expect_error(admin.get("/labels/abc"), 400, "BAD_REQUEST")

    # labels on artifacts
    digest = reg.push_image(f"{unique}/app", small_image(unique), "v1")
    art = f"/projects/{unique}/repositories/app/artifacts/v1"
    assert admin.ok(admin.get(art)).json()["labels"] is None  # only with with_label=true
    assert admin.ok(admin.get(art, params={"with_label": "true"})).json()["labels"] == []
    assert admin.ok(dev.post(f"{art}/labels", {"id": gid})).status_code == 200
    assert admin.ok(dev.post(f"{art}/labels", {"id": p1})).status_code == 200
    expect_error(dev.post(f"{art}/labels", {"id": gid}), 409, "CONFLICT")
    expect_error(dev.post(f"{art}/labels", {"id": 99999999}), 404, "NOT_FOUND")
    expect_error(dev.post(f"{art}/labels", {"id": p2}), 404, "NOT_FOUND")  # another project's label
    expect_error(dev.post(f"{art}/labels", {}), 400, "BAD_REQUEST")
    expect_error(guest.post(f"{art}/labels", {"id": p3}), 403, "FORBIDDEN")
    got = admin.ok(admin.get(art, params={"with_label": "true"})).json()["labels"]
    assert sorted(x["id"] for x in got) == sorted([gid, p1])
    assert {x["name"] for x in got} == {f"g-{unique}", f"p1-{unique}"}
    listed = admin.ok(admin.get(f"/projects/{unique}/repositories/app/artifacts",
                                params={"with_label": "true"})).json()
    assert sorted(x["id"] for x in listed[0]["labels"]) == sorted([gid, p1])
    expect_error(guest.delete(f"{art}/labels/{gid}"), 403, "FORBIDDEN")
    admin.ok(dev.delete(f"{art}/labels/{gid}"))
    expect_error(dev.delete(f"{art}/labels/{gid}"), 404, "NOT_FOUND")
    # deleting a label takes it off the artifacts
    admin.ok(maint.delete(f"/labels/{p1}"))
    expect_error(admin.get(f"/labels/{p1}"), 404, "NOT_FOUND")
    assert admin.ok(admin.get(f"/projects/{unique}/repositories/app/artifacts/{digest}",
                              params={"with_label": "true"})).json()["labels"] == []
    admin.ok(admin.delete(f"/labels/{gid}"))
    expect_error(admin.delete(f"/labels/{gid}"), 404, "NOT_FOUND")


# ---------------------------------------------------------------- quotas


def test_quota_api(srv, admin, reg, unique):
    r = admin.post("/projects", {"project_name": unique, "storage_limit": 1 << 20})
    assert r.status_code == 201, describe(r)
    pid = int(r.headers["Location"].rsplit("/", 1)[1])
    r = admin.ok(admin.get("/quotas", params={"reference": "project", "reference_id": str(pid)}))
    assert r.headers["X-Total-Count"] == "1"
    q = r.json()[0]
    assert q["ref"] == {"id": pid, "name": unique, "owner_name": "admin"}
    assert q["hard"] == {"storage": 1 << 20} and q["used"] == {"storage": 0}
    assert q["creation_time"].endswith("Z") and q["update_time"].endswith("Z")
    qid = q["id"]
    assert admin.ok(admin.get(f"/quotas/{qid}")).json() == q

    img = small_image(unique)
    reg.push_image(f"{unique}/app", img, "v1")
    size = len(img.manifest) + sum(len(b) for b in img.blobs.values())
    assert admin.ok(admin.get(f"/quotas/{qid}")).json()["used"] == {"storage": size}

    everything = admin.ok(admin.get("/quotas", params={"page_size": 100}))
    assert int(everything.headers["X-Total-Count"]) >= 2  # library too
    for sort in ("used.storage", "-used.storage", "hard.storage", "-hard.storage", "creation_time",
                 "-update_time"):
        rows = admin.ok(admin.get("/quotas", params={"sort": sort, "page_size": 100})).json()
        key = sort.lstrip("-")
        vals = [x[key.split(".")[0]][key.split(".")[1]] if "." in key else x[key] for x in rows]
        # as Harbor's, the order is numeric: -1 (unlimited) sorts first
        assert vals == sorted(vals, reverse=sort.startswith("-")), (sort, vals)
    expect_error(admin.get("/quotas", params={"sort": "nope"}), 400, "BAD_REQUEST")
    assert admin.ok(admin.get("/quotas", params={"reference": "nothing"})).json() == []

    # change the hard limit: pushes beyond it are refused
    admin.ok(admin.put(f"/quotas/{qid}", {"hard": {"storage": size + 10}}))
    assert admin.ok(admin.get(f"/projects/{pid}/summary")).json()["quota"]["hard"]["storage"] == size + 10
    big = make_image(layers=1, files_per_layer=1, file_size=4096, seed=unique + "big")
    r = reg.post(f"/v2/{unique}/big/blobs/uploads/")
    loc = r.headers["Location"]
    layer = big.blobs[big.layers[0]]
    r = reg.put(loc, params={"digest": big.layers[0]}, data=layer)
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", describe(r)
    for body, msg in (({}, "hard required in body"), ({"hard": {}}, "hard required in body"),
                      ({"hard": {"storage": 0}}, "invalid value for resource storage"),
                      ({"hard": {"storage": -2}}, "invalid value for resource storage"),
                      ({"hard": {"count": 5}}, "resource count not support"),
                      ({"hard": {"storage": "x"}}, None), ({"hard": {"storage": 1.5}}, None),
                      ({"hard": [1]}, None)):
        expect_error(admin.put(f"/quotas/{qid}", body), 400, "BAD_REQUEST", msg)
    admin.ok(admin.put(f"/quotas/{qid}", {"hard": {"storage": -1}}))
    assert admin.ok(admin.get(f"/quotas/{qid}")).json()["hard"] == {"storage": -1}
    expect_error(admin.get("/quotas/99999999"), 404, "NOT_FOUND")
    expect_error(admin.put("/quotas/99999999", {"hard": {"storage": 5}}), 404, "NOT_FOUND")
    expect_error(admin.get("/quotas/x"), 400, "BAD_REQUEST")

    # the quota API is the administrators'
    member = user_api(srv, admin, f"{unique}-pa", pid, 1)
    expect_error(member.get("/quotas"), 403, "FORBIDDEN")
    expect_error(member.get(f"/quotas/{qid}"), 403, "FORBIDDEN")
    expect_error(member.put(f"/quotas/{qid}", {"hard": {"storage": 5}}), 403, "FORBIDDEN")
    expect_error(Api(srv.url).get("/quotas"), 401, "UNAUTHORIZED")


def test_systeminfo_volumes(srv, admin, unique):
    v = admin.ok(admin.get("/systeminfo/volumes")).json()
    assert set(v) == {"storage"} and len(v["storage"]) == 1
    s = v["storage"][0]
    assert isinstance(s["total"], int) and isinstance(s["free"], int) and 0 <= s["free"] <= s["total"]
    assert s["total"] > 0
    user = user_api(srv, admin, f"{unique}-v")
    expect_error(user.get("/systeminfo/volumes"), 403, "FORBIDDEN")
    expect_error(Api(srv.url).get("/systeminfo/volumes"), 401, "UNAUTHORIZED")


# ---------------------------------------------------------------- permissions


def perms(api, **params):
    r = api.ok(api.get("/users/current/permissions", params=params))
    return {(p["resource"], p["action"]) for p in r.json()}


def test_current_user_permissions(srv, admin, unique):
    pid = admin.create_project(unique)
    dev = user_api(srv, admin, f"{unique}-dev", pid, 2)
    rel = perms(dev, scope=f"/project/{pid}", relative="true")
    assert {("repository", "pull"), ("repository", "push"), (".", "read"), ("artifact", "create"),
            ("artifact-label", "create"), ("label", "list")} <= rel, rel
    assert not {("repository", "delete"), ("member", "create"), (".", "delete")} & rel, rel
    absolute = perms(dev, scope=f"/project/{pid}")
    assert (f"/project/{pid}/repository", "push") in absolute and (f"/project/{pid}", "read") in absolute
    assert {(r.replace(f"/project/{pid}/", "").replace(f"/project/{pid}", "."), a) for r, a in absolute} == rel

    # an administrator: every policy of the project, and nothing Harbor does not define
    adm = perms(admin, scope=f"/project/{pid}", relative="true")
    assert {("repository", "delete"), ("member", "create"), (".", "delete"), ("robot", "create"),
            ("quota", "read"), ("label", "create")} <= adm
    assert rel < adm
    assert not {("project", "read"), ("repository", "create"), ("artifact", "pull")} & adm, adm
    system = perms(admin, scope="/system", relative="true")
    assert {("system-volumes", "read"), ("catalog", "read"), ("project", "create"), ("quota", "read"),
            ("label", "create"), ("user", "list"), ("audit-log", "list")} <= system, system
    assert ("/system/quota", "read") in perms(admin, scope="/system")
    assert perms(dev, scope="/system", relative="true") == set()

    # Harbor's namespaces take a project id; anything else grants nothing
    assert perms(dev) == set()
    assert perms(dev, scope=f"/project/{unique}") == set()
    assert perms(dev, scope="/project/99999999") == set()
    assert perms(dev, scope="nonsense") == set()
    expect_error(Api(srv.url).get("/users/current/permissions", params={"scope": f"/project/{pid}"}),
                 401, "UNAUTHORIZED")


# ---------------------------------------------------------------- request ids


def raw(srv, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(request)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_request_id(srv, admin):
    r1, r2 = admin.get("/ping"), admin.get("/ping")
    id1, id2 = r1.headers.get("X-Request-Id"), r2.headers.get("X-Request-Id")
    assert id1 and id2 and id1 != id2
    uuid.UUID(id1)  # generated ids are UUIDs
    # echoed when the client sends a sane one, on every kind of answer
    mine = "client-" + uuid.uuid4().hex
    for path in ("/api/v2.0/ping", "/api/v2.0/nothing", "/v2/", "/v2/library/x/manifests/nope",
                 "/service/token?service=wharf", "/elsewhere"):
        r = admin.s.get(srv.url + path, headers={"X-Request-Id": mine}, timeout=30)
        assert r.headers.get("X-Request-Id") == mine, describe(r)
    # not echoed when it is too long or not printable ASCII: a new one is made
    for bad in ("x" * 200, "has space", "tab\there"):
        r = admin.get("/ping", headers={"X-Request-Id": bad})
        got = r.headers.get("X-Request-Id")
        assert got and got != bad and uuid.UUID(got), describe(r)
    head = raw(srv, b"GET /api/v2.0/ping HTTP/1.1\r\nHost: x\r\nX-Request-Id: caf\xc3\xa9\r\nConnection: close\r\n\r\n")
    lines = head.split(b"\r\n")
    rid = [l.split(b":", 1)[1].strip() for l in lines if l.lower().startswith(b"x-request-id:")]
    assert rid and uuid.UUID(rid[0].decode()), head  # a new id, not the client's bytes
    # the access log line carries the id
    poll(lambda: f" rid={mine}" in srv.log_text(), "the request id in the access log")
    line = [l for l in srv.log_text().splitlines() if f"rid={mine}" in l and "/api/v2.0/ping" in l][0]
    assert line.split(" ", 1)[1].startswith("access GET /api/v2.0/ping 200 "), line
