"""REST API: ids are never reused. A project, user, robot, member, repository,
artifact or tag created after a delete gets an id of its own: a new project
does not inherit the audit entries of a deleted one, and a client holding an
old id gets 404, never another object. Each deleted object is the newest of
its kind when it goes, the case where a reused id would show."""

import time
from urllib.parse import quote

import pytest

from apiclient import ADMIN_PASSWORD, Api, describe, expect_error, start_server
from conftest import WharfServer
from ocilayout import make_image


@pytest.fixture(scope="module")
def srv(wharf_bin, session_tmp):
    s = start_server(WharfServer, wharf_bin, str(session_tmp / "api-ids"))
    yield s
    s.stop()


@pytest.fixture
def admin(srv):
    return Api(srv.url, ("admin", ADMIN_PASSWORD))


@pytest.fixture
def reg(srv):
    r = srv.registry()
    r.session.auth = ("admin", ADMIN_PASSWORD)
    return r


def logs_of(admin, project, want, deadline=10.0):
    """The project's (by name, as Harbor's route takes it) audit entries once `want(entries)` holds (entries are
    written by a background writer), or the last answer at the deadline."""
    end = time.monotonic() + deadline
    while True:
        entries = admin.ok(admin.get(f"/projects/{project}/logs", params={"page_size": 100})).json()
        if want(entries) or time.monotonic() > end:
            return entries
        time.sleep(0.05)


def test_project_id_not_reused(admin, unique):
    old_name, new_name = f"{unique}-old", f"{unique}-new"
    old = admin.create_project(old_name)
    uid = admin.create_user(("u" + unique.replace("-", ""))[:40])
    user = admin.ok(admin.get(f"/users/{uid}")).json()["username"]
    admin.add_member(old_name, user, 2)
    entries = logs_of(admin, old_name, lambda e: len(e) >= 2)
    assert {(e["resource_type"], e["operation"]) for e in entries} >= {("project", "create"),
                                                                       ("member", "create")}
    admin.ok(admin.delete(f"/projects/{old}"))

    new = admin.create_project(new_name)
    assert new > old
    # the deleted project's id answers 404, by id and by name
    expect_error(admin.get(f"/projects/{old}"), 404, "NOT_FOUND")
    expect_error(admin.get(f"/projects/{old_name}/logs"), 404, "NOT_FOUND")
    expect_error(admin.get(f"/projects/{old_name}"), 404, "NOT_FOUND")
    assert admin.ok(admin.get(f"/projects/{new}")).json()["name"] == new_name
    # the new project's log has its own entries only
    entries = logs_of(admin, new_name, lambda e: any(x["operation"] == "create" for x in e))
    assert [(e["resource"], e["resource_type"], e["operation"]) for e in entries] == [
        (new_name, "project", "create")]
    # ... and the old entries are still in the system log, under the old name
    system = admin.ok(admin.get("/audit-logs", params={
        "q": quote(f"resource={old_name}", safe=""), "page_size": 100})).json()
    assert {e["operation"] for e in system} >= {"create", "delete"}


def test_user_robot_member_ids_not_reused(admin, unique):
    name = ("u" + unique.replace("-", ""))[:40]
    u1 = admin.create_user(name)
    admin.ok(admin.delete(f"/users/{u1}"))
    u2 = admin.create_user(name)
    assert u2 > u1
    expect_error(admin.get(f"/users/{u1}"), 404, "NOT_FOUND")

    admin.create_project(unique)
    m1 = admin.add_member(unique, name, 2)
    admin.ok(admin.delete(f"/projects/{unique}/members/{m1}"))
    m2 = admin.add_member(unique, name, 2)
    assert m2 > m1
    expect_error(admin.get(f"/projects/{unique}/members/{m1}"), 404, "NOT_FOUND")

    perms = [{"kind": "project", "namespace": unique,
              "access": [{"resource": "repository", "action": "pull"}]}]
    body = {"name": "ci", "level": "project", "duration": -1, "permissions": perms}
    r = admin.post("/robots", body)
    assert r.status_code == 201, describe(r)
    b1 = r.json()["id"]
    admin.ok(admin.delete(f"/robots/{b1}"))
    r = admin.post("/robots", body)
    assert r.status_code == 201, describe(r)
    b2 = r.json()["id"]
    assert b2 > b1
    expect_error(admin.get(f"/robots/{b1}"), 404, "NOT_FOUND")


def test_repository_artifact_tag_ids_not_reused(admin, reg, unique):
    admin.create_project(unique)
    repo = f"{unique}/app"
    img = make_image(layers=1, files_per_layer=1, file_size=256, seed=unique)
    path = f"/projects/{unique}/repositories/app"

    def ids():
        r = admin.ok(admin.get(path)).json()
        a = admin.ok(admin.get(f"{path}/artifacts/v1")).json()
        return r["id"], a["id"], a["tags"][0]["id"]

    reg.push_image(repo, img, "v1")
    repo1, art1, tag1 = ids()
    # a second push of the same manifest and tag changes nothing
    reg.push_image(repo, img, "v1")
    assert ids() == (repo1, art1, tag1)
    # a deleted tag and artifact come back with new ids
    admin.ok(admin.delete(f"{path}/artifacts/v1/tags/v1"))
    r = reg.push_manifest(repo, "v1", img.manifest)
    assert r.status_code == 201, describe(r)
    _, art, tag2 = ids()
    assert art == art1 and tag2 > tag1
    admin.ok(admin.delete(f"{path}/artifacts/{img.manifest_digest}"))
    reg.push_image(repo, img, "v1")
    _, art2, tag3 = ids()
    assert art2 > art1 and tag3 > tag2
    # so does a deleted repository, with its artifact and tag
    admin.ok(admin.delete(path))
    expect_error(admin.get(path), 404, "NOT_FOUND")
    reg.push_image(repo, img, "v1")
    repo2, art3, tag4 = ids()
    assert repo2 > repo1 and art3 > art2 and tag4 > tag3
