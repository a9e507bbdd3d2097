"""REST API: users, project members and robot accounts — who may do what,
Harbor's object shapes, secrets shown once, and the audit entries."""

import time
from urllib.parse import quote

import pytest

from apiclient import ADMIN_PASSWORD, Api, describe, expect_error, start_server
from conftest import WharfServer


@pytest.fixture(scope="module")
def srv(wharf_bin, session_tmp):
    s = start_server(WharfServer, wharf_bin, str(session_tmp / "api-accounts"))
    yield s
    s.stop()


@pytest.fixture
def admin(srv):
    return Api(srv.url, ("admin", ADMIN_PASSWORD))


def uname(unique):
    return ("u" + unique.replace("-", ""))[:40]


def test_api_users(admin, srv, unique):
    name = uname(unique)
    expect_error(admin.post("/users", {"username": name, "password": "short"}), 400, "BAD_REQUEST",
                 "The password must be at least 8 characters long with at least one uppercase letter, "
                 "one lowercase letter and one number")
    uid = admin.create_user(name)
    expect_error(admin.post("/users", {"username": name, "password": "Passw0rd-x"}), 409, "CONFLICT")
    u = admin.ok(admin.get(f"/users/{uid}")).json()
    assert u["username"] == name and u["sysadmin_flag"] is False and u["email"] == f"{name}@example.com"
    assert "password" not in u
    r = admin.ok(admin.get("/users", params={"q": quote(f"username=~{name}", safe="")}))
    assert r.headers["X-Total-Count"] == "1"

    me = Api(srv.url, (name, "Passw0rd-x"))
    cur = me.ok(me.get("/users/current")).json()
    assert cur["user_id"] == uid and cur["username"] == name
    expect_error(me.get("/users"), 403, "FORBIDDEN")
    expect_error(Api(srv.url).get("/users"), 401, "UNAUTHORIZED")
    expect_error(Api(srv.url).get("/users/current"), 401, "UNAUTHORIZED")
    found = me.ok(me.get("/users/search", params={"username": name})).json()
    assert found == [{"user_id": uid, "username": name}]
    # profile and password
    me.ok(me.put(f"/users/{uid}", {"realname": "New Name"}))
    assert admin.ok(admin.get(f"/users/{uid}")).json()["realname"] == "New Name"
    expect_error(me.put(f"/users/{uid}/password", {"old_password": "nope", "new_password": "Passw0rd-y"}),
                 403, "FORBIDDEN")
    me.ok(me.put(f"/users/{uid}/password", {"old_password": "Passw0rd-x", "new_password": "Passw0rd-y"}))
    expect_error(me.get("/users/current"), 401, "UNAUTHORIZED")
    me = Api(srv.url, (name, "Passw0rd-y"))
    me.ok(me.get("/users/current"))
    # sysadmin flag
    expect_error(me.put(f"/users/{uid}/sysadmin", {"sysadmin_flag": True}), 403, "FORBIDDEN")
    admin.ok(admin.put(f"/users/{uid}/sysadmin", {"sysadmin_flag": True}))
    assert me.ok(me.get("/users/current")).json()["sysadmin_flag"] is True
    assert me.ok(me.get("/users")).status_code == 200
    perms = me.ok(me.get("/users/current/permissions", params={"scope": "/project/1", "relative": "true"})).json()
    assert {"resource": "repository", "action": "push"} in perms
    # delete
    admin.ok(admin.delete(f"/users/{uid}"))
    expect_error(admin.get(f"/users/{uid}"), 404, "NOT_FOUND")
    ops = {(e["resource"], e["operation"]) for e in admin.get("/audit-logs", params={"page_size": 100}).json()
           if e["resource"] == name and e["resource_type"] == "user"}
    assert {(name, "create"), (name, "update"), (name, "delete")} <= ops


def test_api_account_texts_never_cut(admin, unique):
    """Text fields longer than what is stored are refused with 400, never stored cut short:
    a user's email, realname and comment (255 bytes), a robot's description (1023)."""
    name = uname(unique)
    for field, value in (("email", "a" * 250 + "@example.com"), ("realname", "r" * 256),
                         ("comment", "c" * 300)):
        body = {"username": name, "password": "Passw0rd-x", "email": f"{name}@example.com", field: value}
        e = expect_error(admin.post("/users", body), 400, "BAD_REQUEST")
        assert field in e["message"]
    uid = admin.create_user(name)
    e = expect_error(admin.put(f"/users/{uid}", {"realname": "r" * 256}), 400, "BAD_REQUEST")
    assert "realname" in e["message"]
    ok = "r" * 255
    admin.ok(admin.put(f"/users/{uid}", {"realname": ok}))
    assert admin.ok(admin.get(f"/users/{uid}")).json()["realname"] == ok
    admin.create_project(unique)
    perms = [{"kind": "project", "namespace": unique,
              "access": [{"resource": "repository", "action": "pull"}]}]
    r = admin.post("/robots", {"name": "long", "level": "project", "duration": -1, "permissions": perms,
                               "description": "d" * 1024})
    e = expect_error(r, 400, "BAD_REQUEST")
    assert "description" in e["message"]
    r = admin.post("/robots", {"name": "long", "level": "project", "duration": -1, "permissions": perms,
                               "description": "d" * 1023})
    assert r.status_code == 201, describe(r)
    rid = r.json()["id"]
    assert admin.ok(admin.get(f"/robots/{rid}")).json()["description"] == "d" * 1023
    e = expect_error(admin.put(f"/robots/{rid}", {"name": f"robot${unique}+long", "level": "project",
                                                   "duration": -1, "permissions": perms,
                                                   "description": "e" * 2000}), 400, "BAD_REQUEST")
    assert "description" in e["message"]


def test_api_members(admin, srv, unique):
    name = uname(unique)
    admin.create_user(name)
    pid = admin.create_project(unique)
    me = Api(srv.url, (name, "Passw0rd-x"))
    expect_error(me.get(f"/projects/{pid}/members"), 403, "FORBIDDEN")
    mid = admin.add_member(pid, name, 2)
    expect_error(admin.post(f"/projects/{pid}/members", {"role_id": 2, "member_user": {"username": name}}),
                 409, "CONFLICT")
    expect_error(admin.post(f"/projects/{pid}/members", {"role_id": 9, "member_user": {"username": name}}),
                 400, "BAD_REQUEST")
    expect_error(admin.post(f"/projects/{pid}/members", {"role_id": 2, "member_user": {"username": "nobody-x"}}),
                 404, "NOT_FOUND")
    ms = admin.ok(admin.get(f"/projects/{pid}/members")).json()
    entry = [m for m in ms if m["entity_name"] == name][0]
    assert entry == {"id": mid, "project_id": pid, "entity_name": name, "role_name": "developer",
                     "role_id": 2, "entity_id": entry["entity_id"], "entity_type": "u"}
    assert me.ok(me.get(f"/projects/{pid}/members")).status_code == 200
    # a developer may not manage members
    expect_error(me.put(f"/projects/{pid}/members/{mid}", {"role_id": 1}), 403, "FORBIDDEN")
    admin.ok(admin.put(f"/projects/{pid}/members/{mid}", {"role_id": 4}))
    assert admin.ok(admin.get(f"/projects/{pid}/members/{mid}")).json()["role_name"] == "maintainer"
    s = admin.ok(admin.get(f"/projects/{pid}/summary")).json()
    assert s["maintainer_count"] == 1 and s["project_admin_count"] == 1
    admin.ok(admin.delete(f"/projects/{pid}/members/{mid}"))
    expect_error(admin.get(f"/projects/{pid}/members/{mid}"), 404, "NOT_FOUND")
    logs = admin.ok(admin.get(f"/projects/{unique}/logs", params={"page_size": 50})).json()
    ops = [(e["resource_type"], e["operation"]) for e in logs]
    assert ("member", "create") in ops and ("member", "update") in ops and ("member", "delete") in ops


def test_api_robots(admin, srv, unique):
    pid = admin.create_project(unique)
    perms = [{"kind": "project", "namespace": unique,
              "access": [{"resource": "repository", "action": "pull"}]}]
    expect_error(admin.post("/robots", {"name": "Bad", "level": "project", "duration": -1, "permissions": perms}),
                 400, "BAD_REQUEST", "robot name is not in lower case or contains illegal characters")
    r = admin.post("/robots", {"name": "ci", "level": "project", "duration": -1, "permissions": perms,
                               "description": "for CI", "editable": True})
    assert r.status_code == 201, describe(r)
    created = r.json()
    assert created["name"] == f"robot${unique}+ci" and len(created["secret"]) >= 8
    assert created["expires_at"] == -1
    rid = created["id"]
    expect_error(admin.post("/robots", {"name": "ci", "level": "project", "duration": -1, "permissions": perms}),
                 409, "CONFLICT")
    robot = admin.ok(admin.get(f"/robots/{rid}")).json()
    assert "secret" not in robot
    assert robot["level"] == "project" and robot["disable"] is False and robot["duration"] == -1
    assert robot["permissions"] == perms and robot["description"] == "for CI"
    # the robot can log in with its secret
    bot = Api(srv.url, (created["name"], created["secret"]))
    assert bot.get(f"/projects/{pid}").status_code == 200
    # listing: without q only system robots; with q the project's
    sysl = admin.ok(admin.get("/robots")).json()
    assert all(x["level"] == "system" for x in sysl)
    q = quote(f"Level=project,ProjectID={pid}", safe="")
    r = admin.ok(admin.get("/robots", params={"q": q}))
    assert r.headers["X-Total-Count"] == "1" and r.json()[0]["id"] == rid
    # disable, then the secret no longer works
    admin.ok(admin.put(f"/robots/{rid}", {"disable": True, "duration": 7}))
    robot = admin.ok(admin.get(f"/robots/{rid}")).json()
    assert robot["disable"] is True and robot["duration"] == 7 and robot["expires_at"] > 0
    expect_error(bot.get(f"/projects/{pid}"), 401, "UNAUTHORIZED")
    admin.ok(admin.put(f"/robots/{rid}", {"disable": False}))
    # refresh the secret: the old one stops working
    expect_error(admin.patch(f"/robots/{rid}", {"secret": "weak"}), 400, "BAD_REQUEST")
    new = admin.ok(admin.patch(f"/robots/{rid}", {})).json()["secret"]
    assert new != created["secret"]
    expect_error(bot.get(f"/projects/{pid}"), 401, "UNAUTHORIZED")
    bot = Api(srv.url, (created["name"], new))
    assert bot.get(f"/projects/{pid}").status_code == 200
    chosen = admin.ok(admin.patch(f"/robots/{rid}", {"secret": "Chosen-Secret1"})).json()["secret"]
    assert chosen == "Chosen-Secret1"
    # system robots
    r = admin.post("/robots", {"name": f"sys{unique.replace('-', '')}"[:30], "level": "system", "duration": 30,
                               "permissions": [{"kind": "project", "namespace": "*",
                                                "access": [{"resource": "repository", "action": "pull"}]}]})
    assert r.status_code == 201, describe(r)
    assert r.json()["name"].startswith("robot$sys") and "+" not in r.json()["name"]
    assert r.json()["expires_at"] > 0
    user = ("u" + unique.replace("-", ""))[:40]
    admin.create_user(user)
    me = Api(srv.url, (user, "Passw0rd-x"))
    expect_error(me.get("/robots"), 403, "FORBIDDEN")
    expect_error(me.get(f"/robots/{rid}"), 403, "FORBIDDEN")
    # delete
    admin.ok(admin.delete(f"/robots/{rid}"))
    expect_error(admin.get(f"/robots/{rid}"), 404, "NOT_FOUND")
    ops = [(e["resource"], e["operation"]) for e in
           admin.ok(admin.get(f"/projects/{unique}/logs", params={"page_size": 50})).json() if e["resource_type"] == "robot"]
    assert (created["name"], "create") in ops and (created["name"], "delete") in ops


def test_api_failed_login_audited(admin, srv, unique):
    bad = Api(srv.url, ("admin", "not-the-password"))
    expect_error(bad.get("/users/current"), 401, "UNAUTHORIZED")
    # failed logins reach the log through the batch writer, within a second or so
    deadline = time.monotonic() + 10
    while True:
        logs = admin.ok(admin.get("/audit-logs", params={"page_size": 20})).json()
        found = any(e["username"] == "admin" and e["operation"] == "login"
                    and e["operation_result"] is False for e in logs)
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found, logs
