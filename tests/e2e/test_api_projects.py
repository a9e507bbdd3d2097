"""REST API: projects — creation rules and messages, listing with filters and
pagination, visibility for anonymous and non-member callers, metadata,
summary, deletion rules, audit entries (Harbor's API)."""

from urllib.parse import quote

import pytest

from apiclient import ADMIN_PASSWORD, Api, describe, expect_error, start_server
from conftest import WharfServer


@pytest.fixture(scope="module")
def srv(wharf_bin, session_tmp):
    s = start_server(WharfServer, wharf_bin, str(session_tmp / "api-projects"))
    yield s
    s.stop()


@pytest.fixture
def admin(srv):
    return Api(srv.url, ("admin", ADMIN_PASSWORD))


@pytest.fixture
def anon(srv):
    return Api(srv.url)


def test_api_project_create_rules(admin, anon, unique):
    r = admin.post("/projects", {"project_name": "Bad_Name"})
    expect_error(r, 400, "BAD_REQUEST", "project name is not in lower case or contains illegal characters")
    r = admin.post("/projects", {"project_name": "x" * 256})
    expect_error(r, 400, "BAD_REQUEST",
                 f"Project name {'x' * 256} is illegal in length. (greater than 255 or less than 1)")
    r = admin.post("/projects", {"project_name": unique, "metadata": {"public": "yes"}})
    expect_error(r, 400, "BAD_REQUEST", "metadata.public should only be 'true' or 'false', but got: 'yes'")
    expect_error(anon.post("/projects", {"project_name": unique}), 401, "UNAUTHORIZED", "unauthorized")
    # wrong credentials count as anonymous
    bad = Api(admin.base[: -len("/api/v2.0")], ("admin", "wrong"))
    expect_error(bad.post("/projects", {"project_name": unique}), 401, "UNAUTHORIZED", "unauthorized")

    r = admin.post("/projects", {"project_name": unique, "metadata": {"auto_scan": "true", "severity": "High"}})
    assert r.status_code == 201, describe(r)
    pid = int(r.headers["Location"].rsplit("/", 1)[1])
    assert r.headers["Location"] == f"/api/v2.0/projects/{pid}"
    expect_error(admin.post("/projects", {"project_name": unique}), 409, "CONFLICT",
                 f"The project named {unique} already exists")

    p = admin.ok(admin.get(f"/projects/{pid}")).json()
    assert p["name"] == unique and p["project_id"] == pid
    assert p["metadata"] == {"public": "false", "auto_scan": "true", "severity": "high"}
    assert "reuse_sys_cve_allowlist" not in p["metadata"]
    assert p["cve_allowlist"]["items"] == []
    assert p["owner_name"] == "admin" and p["repo_count"] == 0 and p["deleted"] is False
    for k in ("creation_time", "update_time", "current_user_role_id", "owner_id", "registry_id"):
        assert k in p
    # by name, and the X-Is-Resource-Name rule
    assert admin.ok(admin.get(f"/projects/{unique}")).json()["project_id"] == pid
    assert admin.head("/projects", params={"project_name": unique}).status_code == 200
    assert admin.head("/projects", params={"project_name": unique + "-no"}).status_code == 404
    expect_error(admin.get("/projects/999999"), 404, "NOT_FOUND")


def test_api_project_list_filters_and_pages(admin, anon, unique):
    names = [f"{unique}-{i}" for i in range(5)]
    for i, n in enumerate(names):
        admin.create_project(n, metadata={"public": "true" if i % 2 == 0 else "false"})
    r = admin.ok(admin.get("/projects", params={"name": unique, "page_size": 2}))
    assert r.headers["X-Total-Count"] == "5"
    assert [p["name"] for p in r.json()] == names[:2]
    assert r.headers["Link"] == f'</api/v2.0/projects?page=2&page_size=2&name={unique}>; rel="next"'
    r = admin.ok(admin.get("/projects", params={"name": unique, "page_size": 2, "page": 2}))
    assert [p["name"] for p in r.json()] == names[2:4]
    assert r.headers["Link"] == (f'</api/v2.0/projects?page=1&page_size=2&name={unique}>; rel="prev" , '
                                 f'</api/v2.0/projects?page=3&page_size=2&name={unique}>; rel="next"')
    r = admin.ok(admin.get("/projects", params={"name": unique, "page_size": 2, "page": 3}))
    assert r.headers["Link"] == f'</api/v2.0/projects?page=2&page_size=2&name={unique}>; rel="prev"'
    expect_error(admin.get("/projects", params={"page_size": 101}), 422, "UNPROCESSABLE_ENTITY")

    r = admin.ok(admin.get("/projects", params={"name": unique, "public": "true"}))
    assert [p["name"] for p in r.json()] == names[0::2]
    q = quote(f"name=~{unique}-,public=false", safe="")
    r = admin.ok(admin.get("/projects", params={"q": q}))
    assert [p["name"] for p in r.json()] == names[1::2]
    r = admin.ok(admin.get("/projects", params={"q": quote(f"name={names[3]}", safe="")}))
    assert [p["name"] for p in r.json()] == [names[3]]
    r = admin.ok(admin.get("/projects", params={"name": unique, "sort": "-name"}))
    assert [p["name"] for p in r.json()] == names[::-1]

    # anonymous callers see public projects only, and may not read private ones
    r = anon.get("/projects", params={"name": unique})
    assert r.status_code == 200 and [p["name"] for p in r.json()] == names[0::2]
    expect_error(anon.get(f"/projects/{names[1]}"), 401, "UNAUTHORIZED", "unauthorized")
    assert anon.get(f"/projects/{names[0]}").status_code == 200


def test_api_project_visibility_for_users(admin, srv, unique):
    user = f"u{unique.replace('-', '')}"[:30]
    admin.create_user(user)
    me = Api(srv.url, (user, "Passw0rd-x"))
    priv = admin.create_project(unique)
    expect_error(me.get(f"/projects/{priv}"), 403, "FORBIDDEN", "forbidden")
    assert unique not in [p["name"] for p in me.ok(me.get("/projects", params={"name": unique})).json()]
    admin.add_member(priv, user, 3)
    p = me.ok(me.get(f"/projects/{priv}")).json()
    assert p["current_user_role_id"] == 3 and p["current_user_role_ids"] == [3]
    assert [p["name"] for p in me.ok(me.get("/projects", params={"name": unique})).json()] == [unique]
    # a guest cannot change the project
    expect_error(me.put(f"/projects/{priv}", {"metadata": {"public": "true"}}), 403, "FORBIDDEN")
    # a user creates a project and becomes its projectAdmin
    own = me.create_project(unique + "-own")
    p = me.ok(me.get(f"/projects/{own}")).json()
    assert p["owner_name"] == user and p["current_user_role_id"] == 1


def test_api_project_update_metadata(admin, unique):
    pid = admin.create_project(unique)
    admin.ok(admin.put(f"/projects/{pid}", {"public": True, "metadata": {"prevent_vul": "true", "severity": "critical",
                                                                          "reuse_sys_cve_allowlist": "false"}}))
    p = admin.ok(admin.get(f"/projects/{pid}")).json()
    # the top-level public is ignored; only metadata.public changes visibility
    assert p["metadata"]["public"] == "false"
    assert p["metadata"]["prevent_vul"] == "true" and p["metadata"]["severity"] == "critical"
    assert p["metadata"]["reuse_sys_cve_allowlist"] == "false"
    admin.ok(admin.put(f"/projects/{pid}", {"metadata": {"public": "true"},
                                            "cve_allowlist": {"items": [{"cve_id": "CVE-2024-1"}], "expires_at": 4102444800}}))
    p = admin.ok(admin.get(f"/projects/{pid}")).json()
    assert p["metadata"]["public"] == "true"
    assert p["cve_allowlist"]["items"] == [{"cve_id": "CVE-2024-1"}]
    assert p["cve_allowlist"]["expires_at"] == 4102444800
    r = admin.put(f"/projects/{pid}", {"cve_allowlist": {"items": [{"cve_id": "CVE-1"}, {"cve_id": "CVE-1"}]}})
    expect_error(r, 400, "BAD_REQUEST", "duplicate CVE ID in allowlist: CVE-1")
    r = admin.put(f"/projects/{pid}", {"cve_allowlist": {"items": [{"cve_id": "  "}]}})
    expect_error(r, 400, "BAD_REQUEST", "empty or whitespace-only CVE ID in allowlist")
    r = admin.put(f"/projects/{pid}", {"metadata": {"severity": "extreme"}})
    expect_error(r, 400, "BAD_REQUEST")

    # the metadatas sub-resource
    meta = admin.ok(admin.get(f"/projects/{pid}/metadatas/")).json()
    assert meta["auto_scan"] if "auto_scan" in meta else True
    admin.ok(admin.post(f"/projects/{pid}/metadatas/", {"auto_scan": "true"}))
    assert admin.ok(admin.get(f"/projects/{pid}/metadatas/auto_scan")).json() == {"auto_scan": "true"}
    admin.ok(admin.put(f"/projects/{pid}/metadatas/auto_scan", {"auto_scan": "false"}))
    assert admin.ok(admin.get(f"/projects/{pid}/metadatas/auto_scan")).json() == {"auto_scan": "false"}
    admin.ok(admin.delete(f"/projects/{pid}/metadatas/auto_scan"))
    expect_error(admin.get(f"/projects/{pid}/metadatas/auto_scan"), 404, "NOT_FOUND")


def test_api_project_delete_and_summary(admin, srv, unique):
    pid = admin.create_project(unique, storage_limit=10 * 1024 * 1024)
    s = admin.ok(admin.get(f"/projects/{pid}/summary")).json()
    assert s["repo_count"] == 0 and s["project_admin_count"] == 1
    assert s["quota"] == {"hard": {"storage": 10 * 1024 * 1024}, "used": {"storage": 0}}
    # a repository in it blocks deletion (412)
    reg = srv.registry()
    reg.session.auth = ("admin", ADMIN_PASSWORD)
    blob = b"x" * 1000
    reg.push_blob(f"{unique}/app", blob)
    assert admin.ok(admin.get(f"/projects/{pid}/_deletable")).json() == {
        "deletable": False, "message": "the project contains repositories, can not be deleted"}
    s = admin.ok(admin.get(f"/projects/{pid}/summary")).json()
    assert s["repo_count"] == 1 and s["quota"]["used"]["storage"] == 1000
    # the same blob in a second repository of the project counts once
    reg.push_blob(f"{unique}/other", blob)
    assert admin.ok(admin.get(f"/projects/{pid}/summary")).json()["quota"]["used"]["storage"] == 1000
    expect_error(admin.delete(f"/projects/{pid}"), 412, "PRECONDITION",
                 "precondition failed: the project contains repositories, can not be deleted")
    for repo in ("app", "other"):
        admin.ok(admin.delete(f"/projects/{unique}/repositories/{repo}"))
    assert admin.ok(admin.get(f"/projects/{pid}/_deletable")).json() == {"deletable": True}
    admin.ok(admin.delete(f"/projects/{pid}"))
    expect_error(admin.get(f"/projects/{pid}"), 404, "NOT_FOUND")
    ops = [(e["resource"], e["operation"], e["operation_result"]) for e in admin.audit(username="admin")
           if e["resource_type"] == "project" and e["resource"] == unique]
    assert (unique, "create", True) in ops and (unique, "delete", True) in ops and (unique, "delete", False) in ops
    logs = admin.get("/audit-logs", params={"page_size": 1})
    assert logs.status_code == 200 and int(logs.headers["X-Total-Count"]) > 1 and len(logs.json()) == 1
    e = logs.json()[0]
    assert set(e) >= {"id", "username", "resource", "resource_type", "operation", "op_time"}
