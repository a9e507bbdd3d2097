"""Who the REST API believes the caller is, and what a robot may do there.

A registry token is not an API identity: /api/v2.0 takes Basic credentials
(users, robots) and nothing else; a Bearer token from /service/token is
refused with 401 UNAUTHORIZED in Harbor's error body, whoever it was issued
to, and changes nothing. Writes are all-or-nothing: a failing step (a
duplicate name, a database error injected with an SQLite trigger on the
live database) leaves no half-created project, member, robot or user behind.

Robots see and do only what they were given (Harbor's
ListProjects, CreateProject and robot handlers): a system robot lists the
public projects plus the projects its permissions name (every project only
with namespace "*"); creating a project takes the system permission
project:create; a robot can neither create nor update a robot with
permissions it lacks itself, nor take over one by refreshing its secret; a
robot adding or promoting a member must itself hold everything the role
grants; a robot's namespace and level cannot be changed (400).
"""

import os
import sqlite3
import threading
from urllib.parse import quote

import pytest
import requests

from apiclient import ADMIN_PASSWORD, Api, describe, expect_error, start_server
from conftest import WharfServer
from ocilayout import make_image
from test_auth import token_claims

PASSWORD = "Passw0rd-x"  # apiclient.Api.create_user's default
PUB, PRIV_A, PRIV_B = "idpub", "idpriva", "idprivb"


def access(*pairs):
    return [{"resource": r, "action": a} for r, a in pairs]


def perm(namespace, *pairs, kind="project"):
    return {"kind": kind, "namespace": namespace, "access": access(*pairs)}


class World:
    def __init__(self, srv):
        self.srv = srv
        self.admin = Api(srv.url, ("admin", ADMIN_PASSWORD))
        self.pid = {}

    def setup(self):
        a = self.admin
        self.pid[PUB] = a.create_project(PUB, metadata={"public": "true"})
        self.pid[PRIV_A] = a.create_project(PRIV_A)
        self.pid[PRIV_B] = a.create_project(PRIV_B)
        reg = self.srv.registry()
        for i, p in enumerate((PUB, PRIV_A, PRIV_B)):
            reg.push_image(f"{p}/app", make_image(layers=1, files_per_layer=1, file_size=128, seed=f"id-{i}"), "v1")
        return self

    def robot(self, name, level, perms, creator=None):
        """Creates a robot (as `creator`, default the administrator);
        returns (id, full name, secret)."""
        api = creator or self.admin
        r = api.post("/robots", {"name": name, "level": level, "duration": -1, "permissions": perms})
        assert r.status_code == 201, describe(r)
        return r.json()["id"], r.json()["name"], r.json()["secret"]

    def user(self, name):
        uid = self.admin.create_user(name, PASSWORD)
        return uid, Api(self.srv.url, (name, PASSWORD))

    def token(self, cred, scope):
        r = requests.get(f"{self.srv.url}/service/token", params={"service": "wharf", "scope": scope},
                         auth=cred, timeout=30)
        assert r.status_code == 200, describe(r)
        return r.json()["token"]

    def bearer(self, tok):
        api = Api(self.srv.url)
        api.s.headers["Authorization"] = f"Bearer {tok}"
        return api

    def project_exists(self, name):
        r = self.admin.head("/projects", params={"project_name": name})
        assert r.status_code in (200, 404), describe(r)
        return r.status_code == 200

    def members(self, project):
        ms = self.admin.ok(self.admin.get(f"/projects/{project}/members", params={"page_size": 100})).json()
        return {m["entity_name"]: m["role_id"] for m in ms}

    def robot_names(self, project=None):
        params = {"page_size": 100}
        if project:
            params["q"] = quote(f"Level=project,ProjectID={self.pid[project]}", safe="")
        return [x["name"] for x in self.admin.ok(self.admin.get("/robots", params=params)).json()]

    def granted(self, cred, repo):
        """Actions a token for `repo` grants to `cred` (what it may do on /v2/)."""
        tok = self.token(cred, f"repository:{repo}:pull,push,delete")
        acts = [x for x in token_claims(tok).get("access", []) if x.get("name") == repo]
        return set(acts[0]["actions"]) if acts else set()

    def db(self):
        return sqlite3.connect(os.path.join(self.srv.data_dir, "wharf.db"), timeout=30)


@pytest.fixture(scope="module")
def world(wharf_bin, session_tmp):
    srv = start_server(WharfServer, wharf_bin, str(session_tmp / "api-identity"), name="api-identity")
    try:
        yield World(srv).setup()
    finally:
        srv.stop()


class failing_insert:
    """An SQLite trigger on the live database that makes every INSERT into
    `table` (matching `when`) fail: a step that fails half-way through a
    write, with the real server and the real database."""

    def __init__(self, world, table, when="1"):
        self.world, self.table, self.when = world, table, when

    def __enter__(self):
        with self.world.db() as db:
            db.execute(f"CREATE TRIGGER e2e_fail_{self.table} BEFORE INSERT ON {self.table} WHEN {self.when}"
                       " BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
        return self

    def __exit__(self, *exc):
        with self.world.db() as db:
            db.execute(f"DROP TRIGGER e2e_fail_{self.table}")


def expect_internal_error(r):
    expect_error(r, 500, "UNKNOWN", "internal server error")


# ------------------------------------------------ item 5: tokens are not API identities


def test_registry_tokens_are_refused_by_the_rest_api(world):
    """A token from the token service, whoever it was issued to, gets 401
    UNAUTHORIZED on /api/v2.0 and changes nothing; the same principal with
    Basic credentials is judged as itself."""
    _, alice = world.user("idalice")
    world.admin.add_member(world.pid[PRIV_A], "idalice", 1)
    _, ro_name, ro_secret = world.robot("ro", "project", [perm(PRIV_A, ("repository", "pull"))])
    principals = {
        "admin": ("admin", ADMIN_PASSWORD),
        "user": ("idalice", PASSWORD),
        "robot": (ro_name, ro_secret),
    }
    for who, cred in principals.items():
        tok = world.token(cred, f"repository:{PRIV_A}/app:pull,push")
        api = world.bearer(tok)
        name = f"bytoken-{who}"
        r = api.post("/projects", {"project_name": name, "storage_limit": 1024})
        expect_error(r, 401, "UNAUTHORIZED")
        assert not world.project_exists(name), f"{who}: a refused token created project {name}"
        for path in ("/projects", f"/projects/{PRIV_A}/repositories", "/users/current",
                     "/repositories", "/systeminfo"):
            expect_error(api.get(path), 401, "UNAUTHORIZED")
        expect_error(api.post(f"/projects/{world.pid[PRIV_A]}/members",
                              {"role_id": 1, "member_user": {"username": "idalice"}}), 401, "UNAUTHORIZED")
    # the same principals with Basic credentials
    alice.ok(alice.get(f"/projects/{PRIV_A}/repositories"))
    robot = Api(world.srv.url, principals["robot"])
    expect_error(robot.post("/projects", {"project_name": "bybasic-robot", "storage_limit": 1024}),
                 403, "FORBIDDEN", "Only system level robot can create project")
    assert not world.project_exists("bybasic-robot")


def test_token_of_a_deleted_user_creates_nothing(world):
    uid, _ = world.user("idgone")
    tok = world.token(("idgone", PASSWORD), f"repository:{PUB}/app:pull")
    world.admin.ok(world.admin.delete(f"/users/{uid}"))
    expect_error(world.bearer(tok).post("/projects", {"project_name": "ghost-project"}), 401, "UNAUTHORIZED")
    assert not world.project_exists("ghost-project")


@pytest.mark.parametrize("header", ["Bearer not-a-token", "bearer eyJhbGciOiJub25lIn0.e30.", "Token abc",
                                    "Negotiate YIIB"])
def test_other_schemes_are_refused(world, header):
    """Only Basic identifies a REST API caller: anything else is 401, not
    silently anonymous."""
    for method, path in (("GET", "/projects"), ("GET", "/health"), ("POST", "/projects")):
        r = requests.request(method, f"{world.srv.url}/api/v2.0{path}", headers={"Authorization": header},
                             json={"project_name": "other-scheme"} if method == "POST" else None, timeout=30)
        expect_error(r, 401, "UNAUTHORIZED")
    assert not world.project_exists("other-scheme")
    # anonymous callers and wrong Basic credentials stay anonymous (Harbor's rule)
    assert requests.get(f"{world.srv.url}/api/v2.0/projects", timeout=30).status_code == 200
    r = requests.get(f"{world.srv.url}/api/v2.0/projects", auth=("admin", "wrong"), timeout=30)
    assert r.status_code == 200 and PRIV_A not in [p["name"] for p in r.json()], describe(r)


# ------------------------------------------------ item 5: all-or-nothing writes


def test_project_creation_is_all_or_nothing(world):
    uid, bob = world.user("idbob")
    _, carol = world.user("idcarol")
    bob.create_project("bobs")
    # a duplicate name: 409, and the existing project keeps its owner and members
    expect_error(carol.post("/projects", {"project_name": "bobs"}), 409, "CONFLICT",
                 "The project named bobs already exists")
    assert world.members("bobs") == {"idbob": 1}
    assert world.admin.ok(world.admin.get("/projects/bobs", headers={"X-Is-Resource-Name": "true"})).json()[
        "owner_name"] == "idbob"
    # the creator's membership cannot be written: no project is left behind
    with failing_insert(world, "member", f"NEW.user_id = {uid}"):
        expect_internal_error(bob.post("/projects", {"project_name": "halfmade"}))
    assert not world.project_exists("halfmade"), "a failed creation left the project behind"
    # nothing of it remains: the name is free and the next creation is whole
    bob.create_project("halfmade")
    assert world.members("halfmade") == {"idbob": 1}


def test_member_add_is_all_or_nothing(world):
    world.user("idmem")
    pid = world.pid[PRIV_B]
    world.admin.add_member(pid, "idmem", 3)
    expect_error(world.admin.post(f"/projects/{pid}/members", {"role_id": 1, "member_user": {"username": "idmem"}}),
                 409, "CONFLICT")
    assert world.members(PRIV_B)["idmem"] == 3, "a refused add changed the member's role"
    world.user("idmem2")
    with failing_insert(world, "member"):
        expect_internal_error(world.admin.post(f"/projects/{pid}/members",
                                               {"role_id": 2, "member_user": {"username": "idmem2"}}))
    assert "idmem2" not in world.members(PRIV_B)


def test_concurrent_member_adds_make_one_member(world):
    """Adding one user to a project from several clients at once: exactly
    one add succeeds (201), the others are 409, and the role is the one
    the successful add asked for (never silently overwritten)."""
    pid = world.pid[PRIV_B]
    roles = (1, 2, 3, 4, 5, 1, 2, 3)
    for round_ in range(6):
        name = f"idrace{round_}"
        world.user(name)
        results = [None] * len(roles)
        barrier = threading.Barrier(len(roles))

        def add(i):
            api = Api(world.srv.url, ("admin", ADMIN_PASSWORD))
            api.get("/ping")  # connected, credentials verified, before the race
            barrier.wait()
            results[i] = api.post(f"/projects/{pid}/members",
                                  {"role_id": roles[i], "member_user": {"username": name}})

        threads = [threading.Thread(target=add, args=(i,)) for i in range(len(roles))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = sorted(r.status_code for r in results)
        assert codes == [201] + [409] * (len(roles) - 1), f"round {round_}: {codes}"
        winner = [roles[i] for i, r in enumerate(results) if r.status_code == 201][0]
        role = world.members(PRIV_B)[name]
        assert role == winner, f"round {round_}: role {role}, the add that succeeded asked for {winner}"


def test_robot_and_user_creation_are_all_or_nothing(world):
    _, name, secret = world.robot("dup", "project", [perm(PRIV_B, ("repository", "pull"))])
    r = world.admin.post("/robots", {"name": "dup", "level": "project", "duration": -1,
                                     "permissions": [perm(PRIV_B, ("repository", "pull"), ("repository", "push"))]})
    expect_error(r, 409, "CONFLICT")
    assert "secret" not in r.text
    assert world.granted((name, secret), f"{PRIV_B}/app") == {"pull"}, "the refused duplicate changed the robot"
    with failing_insert(world, "robot"):
        expect_internal_error(world.admin.post("/robots", {"name": "never", "level": "project", "duration": -1,
                                                           "permissions": [perm(PRIV_B, ("repository", "pull"))]}))
    assert f"robot${PRIV_B}+never" not in world.robot_names(PRIV_B)

    world.user("iddupuser")
    expect_error(world.admin.post("/users", {"username": "iddupuser", "password": "Other-Passw0rd"}),
                 409, "CONFLICT")
    dup = Api(world.srv.url, ("iddupuser", PASSWORD))
    dup.ok(dup.get("/users/current"))  # the first password still works
    with failing_insert(world, "user"):
        expect_internal_error(world.admin.post("/users", {"username": "idneveruser", "password": PASSWORD}))
    r = world.admin.ok(world.admin.get("/users", params={"q": quote("username=~idneveruser", safe="")}))
    assert r.json() == [], describe(r)


# ------------------------------------------------ item 6: robots see what they were given


def names(r):
    assert r.status_code == 200, describe(r)
    return {p["name"] for p in r.json()}


def test_system_robot_lists_public_projects_and_its_own(world):
    _, name, secret = world.robot("lister", "system", [perm(PRIV_A, ("repository", "pull"))])
    bot = Api(world.srv.url, (name, secret))
    seen = names(bot.get("/projects", params={"page_size": 100}))
    assert {PUB, PRIV_A, "library"} <= seen and PRIV_B not in seen, seen
    repos = {x["name"] for x in bot.ok(bot.get("/repositories", params={"page_size": 100})).json()}
    assert {f"{PUB}/app", f"{PRIV_A}/app"} <= repos and f"{PRIV_B}/app" not in repos, repos
    found = bot.ok(bot.get("/search", params={"q": "idpriv"})).json()
    assert {p["name"] for p in found["project"]} == {PRIV_A}, found
    assert {x["repository_name"] for x in found["repository"]} == {f"{PRIV_A}/app"}, found
    stats = bot.ok(bot.get("/statistics")).json()
    assert stats["private_project_count"] == 1 and stats["private_repo_count"] == 1, stats
    assert "total_storage_consumption" not in stats, stats
    expect_error(bot.get(f"/projects/{world.pid[PRIV_B]}"), 403, "FORBIDDEN")
    expect_error(bot.get(f"/projects/{PRIV_B}/repositories"), 403, "FORBIDDEN")
    bot.ok(bot.get(f"/projects/{world.pid[PRIV_A]}"))
    # a project robot: the public projects and its project
    _, pname, psecret = world.robot("lister", "project", [perm(PRIV_B, ("repository", "pull"))])
    pbot = Api(world.srv.url, (pname, psecret))
    seen = names(pbot.get("/projects", params={"page_size": 100}))
    assert PRIV_B in seen and PRIV_A not in seen, seen
    # namespace "*" covers every project, as in Harbor
    _, aname, asecret = world.robot("everywhere", "system", [perm("*", ("repository", "pull"))])
    abot = Api(world.srv.url, (aname, asecret))
    assert {PRIV_A, PRIV_B} <= names(abot.get("/projects", params={"page_size": 100}))


def test_project_creation_needs_project_create(world):
    _, name, secret = world.robot("nocreate", "system", [perm(PRIV_A, ("repository", "pull"))])
    bot = Api(world.srv.url, (name, secret))
    expect_error(bot.post("/projects", {"project_name": "byrobot", "storage_limit": 1048576}), 403, "FORBIDDEN")
    assert not world.project_exists("byrobot")
    # with the system permission project:create, as Harbor's CreateProject
    _, cname, csecret = world.robot("creator", "system", [perm("/", ("project", "create"), kind="system")])
    creator = Api(world.srv.url, (cname, csecret))
    r = creator.post("/projects", {"project_name": "byrobot", "storage_limit": 1048576})
    assert r.status_code == 201, describe(r)
    p = world.admin.ok(world.admin.get("/projects/byrobot", headers={"X-Is-Resource-Name": "true"})).json()
    # a robot's project is owned by the first administrator, who is its projectAdmin
    assert p["owner_name"] == "admin" and p["owner_id"] > 0, p
    assert world.members("byrobot") == {"admin": 1}
    summary = world.admin.ok(world.admin.get(f"/projects/{p['project_id']}/summary")).json()
    assert summary["quota"]["hard"]["storage"] == 1048576, summary


def test_robot_cannot_grant_what_it_lacks(world):
    pa = world.pid[PRIV_A]
    _, mname, msecret = world.robot("mgr", "project",
                                    [perm(PRIV_A, ("robot", "create"), ("robot", "list"), ("repository", "pull"))])
    mgr = Api(world.srv.url, (mname, msecret))
    r = mgr.post("/robots", {"name": "escalated", "level": "project", "duration": -1,
                             "permissions": [perm(PRIV_A, ("repository", "pull"), ("repository", "push"))]})
    e = expect_error(r, 403, "DENIED")
    assert "permission scope is invalid" in e["message"] and mname in e["message"], e
    assert f"robot${PRIV_A}+escalated" not in world.robot_names(PRIV_A)
    for wild in (("repository", "*"), ("*", "*")):
        r = mgr.post("/robots", {"name": "wild", "level": "project", "duration": -1,
                                 "permissions": [perm(PRIV_A, wild)]})
        expect_error(r, 403, "DENIED")
    # within its own permissions it may
    r = mgr.post("/robots", {"name": "lesser", "level": "project", "duration": -1,
                             "permissions": [perm(PRIV_A, ("repository", "pull"), ("robot", "create"))]})
    assert r.status_code == 201, describe(r)
    assert world.granted((r.json()["name"], r.json()["secret"]), f"{PRIV_A}/app") == {"pull"}
    # not in another project
    expect_error(mgr.post("/robots", {"name": "elsewhere", "level": "project", "duration": -1,
                                      "permissions": [perm(PRIV_B, ("repository", "pull"))]}), 403, "FORBIDDEN")
    # a project administrator gives what the role holds
    _, alice = world.user("idpadmin")
    world.admin.add_member(pa, "idpadmin", 1)
    r = alice.post("/robots", {"name": "byadmin", "level": "project", "duration": -1,
                               "permissions": [perm(PRIV_A, ("repository", "push"), ("member", "create"))]})
    assert r.status_code == 201, describe(r)
    expect_error(alice.post("/robots", {"name": "sysbyadmin", "level": "system", "duration": -1,
                                        "permissions": [perm(PRIV_A, ("repository", "pull"))]}), 403, "FORBIDDEN")
    # a system robot with robot:create makes system robots within its own permissions
    _, sname, ssecret = world.robot("sysmgr", "system", [perm("/", ("robot", "create"), kind="system"),
                                                          perm(PRIV_A, ("repository", "pull"))])
    smgr = Api(world.srv.url, (sname, ssecret))
    expect_error(smgr.post("/robots", {"name": "sysesc", "level": "system", "duration": -1,
                                       "permissions": [perm(PRIV_B, ("repository", "pull"))]}), 403, "DENIED")
    expect_error(smgr.post("/robots", {"name": "sysesc", "level": "system", "duration": -1,
                                       "permissions": [perm("/", ("project", "create"), kind="system")]}),
                 403, "DENIED")
    assert "robot$sysesc" not in world.robot_names()
    r = smgr.post("/robots", {"name": "syslesser", "level": "system", "duration": -1,
                              "permissions": [perm(PRIV_A, ("repository", "pull"))]})
    assert r.status_code == 201, describe(r)


def test_robot_cannot_raise_a_robot(world):
    """robot:update does not let a robot give itself or another robot more
    than it has, nor take over a stronger robot by refreshing its secret."""
    rid, name, secret = world.robot("updater", "project",
                                    [perm(PRIV_A, ("robot", "update"), ("robot", "read"), ("repository", "pull"))])
    bot = Api(world.srv.url, (name, secret))
    r = bot.put(f"/robots/{rid}", {"permissions": [perm(PRIV_A, ("robot", "update"), ("robot", "read"),
                                                         ("repository", "pull"), ("repository", "push"))]})
    expect_error(r, 403, "DENIED")
    assert world.granted((name, secret), f"{PRIV_A}/app") == {"pull"}
    sid, sname, ssecret = world.robot("stronger", "project",
                                      [perm(PRIV_A, ("repository", "pull"), ("repository", "push"))])
    expect_error(bot.patch(f"/robots/{sid}", {}), 403, "DENIED")
    expect_error(bot.patch(f"/robots/{sid}", {"secret": "Taken-Over1"}), 403, "DENIED")
    assert world.granted((sname, ssecret), f"{PRIV_A}/app") == {"pull", "push"}, "the secret was changed"
    expect_error(bot.put(f"/robots/{sid}", {"disable": True}), 403, "DENIED")
    # a weaker robot it may change
    wid, wname, wsecret = world.robot("weaker", "project", [perm(PRIV_A, ("repository", "pull"))])
    bot.ok(bot.put(f"/robots/{wid}", {"description": "changed by a robot"}))


def test_robot_cannot_make_members_stronger_than_itself(world):
    pa = world.pid[PRIV_A]
    world.user("idpromo")
    _, hname, hsecret = world.robot("hr", "project", [perm(PRIV_A, ("member", "create"), ("member", "update"),
                                                           ("member", "list"), ("repository", "pull"))])
    hr = Api(world.srv.url, (hname, hsecret))
    for role in (1, 4, 2, 3, 5):
        expect_error(hr.post(f"/projects/{pa}/members", {"role_id": role, "member_user": {"username": "idpromo"}}),
                     403, "FORBIDDEN")
        assert "idpromo" not in world.members(PRIV_A)
    # a robot holding everything a limited guest may do can add limited guests, no more
    limited = [("repository", "pull"), ("repository", "read"), ("repository", "list"), ("artifact", "read"),
               ("artifact", "list"), ("artifact-addition", "read"), ("tag", "list"), ("scan", "read"),
               ("sbom", "read"), ("scanner", "read"), ("accessory", "list"), ("quota", "read"),
               ("project", "read")]
    _, gname, gsecret = world.robot("hr2", "project", [perm(PRIV_A, ("member", "create"), ("member", "update"),
                                                            *limited)])
    hr2 = Api(world.srv.url, (gname, gsecret))
    expect_error(hr2.post(f"/projects/{pa}/members", {"role_id": 3, "member_user": {"username": "idpromo"}}),
                 403, "FORBIDDEN")
    r = hr2.post(f"/projects/{pa}/members", {"role_id": 5, "member_user": {"username": "idpromo"}})
    assert r.status_code == 201, describe(r)
    mid = int(r.headers["Location"].rsplit("/", 1)[1])
    expect_error(hr2.put(f"/projects/{pa}/members/{mid}", {"role_id": 1}), 403, "FORBIDDEN")
    assert world.members(PRIV_A)["idpromo"] == 5


def test_robot_namespace_and_level_cannot_change(world):
    rid, name, secret = world.robot("fixed", "project", [perm(PRIV_A, ("repository", "pull"))])
    expect_error(world.admin.put(f"/robots/{rid}", {"permissions": [perm(PRIV_B, ("repository", "pull"))]}),
                 400, "BAD_REQUEST")
    expect_error(world.admin.put(f"/robots/{rid}", {"level": "system"}), 400, "BAD_REQUEST")
    robot = world.admin.ok(world.admin.get(f"/robots/{rid}")).json()
    assert robot["level"] == "project" and robot["permissions"] == [perm(PRIV_A, ("repository", "pull"))], robot
    assert world.granted((name, secret), f"{PRIV_A}/app") == {"pull"}
    # the actions within its namespace can change
    world.admin.ok(world.admin.put(f"/robots/{rid}", {"permissions": [perm(PRIV_A, ("repository", "pull"),
                                                                           ("repository", "push"))]}))
    assert world.granted((name, secret), f"{PRIV_A}/app") == {"pull", "push"}
    # a system robot's namespaces are its list: they may change
    sid, sname, ssecret = world.robot("movable", "system", [perm(PRIV_A, ("repository", "pull"))])
    world.admin.ok(world.admin.put(f"/robots/{sid}", {"permissions": [perm(PRIV_B, ("repository", "pull"))]}))
    assert world.granted((sname, ssecret), f"{PRIV_B}/app") == {"pull"}
    expect_error(world.admin.put(f"/robots/{sid}", {"level": "project"}), 400, "BAD_REQUEST")


@pytest.mark.parametrize("perms,status,code", [
    ([perm(PRIV_A, ("repository", "pull"), kind="bogus")], 400, "BAD_REQUEST"),
    ([perm(PRIV_A, ("helm-chart", "read"))], 400, "BAD_REQUEST"),
    ([perm(PRIV_A, ("repository", "fly"))], 400, "BAD_REQUEST"),
    ([{"kind": "project", "namespace": PRIV_A, "access": []}], 400, "BAD_REQUEST"),
    ([perm("nosuchproject", ("repository", "pull"))], 404, "NOT_FOUND"),
    ([perm("/", ("project", "create"), kind="system"), perm(PRIV_A, ("repository", "pull"), kind="system")],
     400, "BAD_REQUEST"),
])
def test_robot_permissions_are_validated(world, perms, status, code):
    r = world.admin.post("/robots", {"name": "invalid", "level": "system", "duration": -1, "permissions": perms})
    expect_error(r, status, code)
    assert "robot$invalid" not in world.robot_names()
