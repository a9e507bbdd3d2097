"""Access control, cell by cell: every principal against a public and a
private project, through /v2/ (Basic credentials and the token service) and
through the REST API, each cell a real operation whose outcome is checked
against the expected table below (Harbor's role policies and token service; docs/security.md).

The principals: a system administrator (not the bootstrap `admin`, which
only sets things up and checks outcomes), a member of each role
(projectAdmin, maintainer, developer, guest, limitedGuest), a project robot
with pull+push and one with pull only (each used on its own project), the
pull+push robot of the *other* project, a user who is no member, and an
anonymous caller.

How the table is read from Harbor's role policies:
  * pull / tag list: "repository pull / read / list" is every role's; a
    public project adds "repository list/pull" for everybody, anonymous
    callers included.
  * push: "repository push, artifact create" is projectAdmin, maintainer and
    developer; nothing public adds it.
  * /v2/ DELETE of a manifest and the API's artifact DELETE: "artifact
    delete, repository delete, tag delete" is projectAdmin and maintainer.
  * repository list, artifact list, artifact read with the scan overview:
    every role; a public project adds "repository list", "artifact
    read/list" and "scan read" for everybody.
  * member create/update/delete, project update (its metadata such as
    auto_scan, the "configuration changes"), robot create: projectAdmin only.
  * a system administrator may do everything.
  * robots have exactly the access their policy lists (here repository pull
    and push, or pull) in their own project, plus what a public project gives
    everybody (Harbor's public-project policy). So on the private project a robot
    may pull (and push) through /v2/ but may not list repositories or
    artifacts through the REST API, whose checks are "repository list" and
    "artifact list/read", which its policy lacks. A robot of one project has
    nothing in another beyond that project's public rights.
  * anonymous callers pull from and browse public projects; nothing else.
    Without a token, wharf serves them public pulls directly (docs/security.md,
    "Anonymous callers read public projects without a token").

A token from the token service is a grant on /v2/, not an identity: on the
REST API every principal's token is refused with 401 UNAUTHORIZED, whatever
the token grants and the principal's role, and changes nothing
(test_api_token; more in test_api_identity.py).

Denials: on /v2/ anonymous and token callers get 401 UNAUTHORIZED with a
Bearer challenge, callers who sent Basic credentials get 403 DENIED; on the
REST API anonymous callers get 401 UNAUTHORIZED, authenticated ones 403
FORBIDDEN (docs/api.md). Every denied change is also checked
not to have happened; every allowed one to have happened.
"""

from urllib.parse import quote

import pytest
import requests

from apiclient import ADMIN_PASSWORD, Api, start_server
from apiclient import describe as api_describe
from apiclient import expect_error as api_expect_error
from conftest import WharfServer
from ocilayout import make_image
from regclient import Registry, describe
from regclient import expect_error as v2_expect_error
from test_auth import bearer, challenge_params, token_claims

PASSWORD = "Passw0rd-x"  # apiclient.Api.create_user's default
PROJECTS = {"public": "secpub", "private": "secpriv"}
ROLE_IDS = {"projectAdmin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limitedGuest": 5}

PRINCIPALS = ["sysadmin", "projectAdmin", "maintainer", "developer", "guest", "limitedGuest",
              "robot-rw", "robot-ro", "robot-foreign", "nonmember", "anonymous"]

# The expected table. One row per action, one column per principal (in the
# order of PRINCIPALS); each cell is two characters, the public project then
# the private one: Y allowed, - denied.
#
#                   sys pAdm main dev  gst  lGst rRW  rRO  rFor nMem anon
TABLE_TEXT = """
v2-pull             YY  YY   YY   YY   YY   YY   YY   YY   Y-   Y-   Y-
v2-list             YY  YY   YY   YY   YY   YY   YY   YY   Y-   Y-   Y-
v2-push             YY  YY   YY   YY   --   --   YY   --   --   --   --
v2-delete           YY  YY   YY   --   --   --   --   --   --   --   --
api-repo-list       YY  YY   YY   YY   YY   YY   Y-   Y-   Y-   Y-   Y-
api-artifact-list   YY  YY   YY   YY   YY   YY   Y-   Y-   Y-   Y-   Y-
api-scan-read       YY  YY   YY   YY   YY   YY   Y-   Y-   Y-   Y-   Y-
api-artifact-delete YY  YY   YY   --   --   --   --   --   --   --   --
api-member-create   YY  YY   --   --   --   --   --   --   --   --   --
api-member-update   YY  YY   --   --   --   --   --   --   --   --   --
api-member-delete   YY  YY   --   --   --   --   --   --   --   --   --
api-config-update   YY  YY   --   --   --   --   --   --   --   --   --
api-robot-create    YY  YY   --   --   --   --   --   --   --   --   --
"""


def parse_table(text):
    table = {}
    for line in text.strip().splitlines():
        action, *cells = line.split()
        assert len(cells) == len(PRINCIPALS), line
        for who, cell in zip(PRINCIPALS, cells):
            assert len(cell) == 2 and set(cell) <= {"Y", "-"}, line
            table[(action, who, "public")] = cell[0] == "Y"
            table[(action, who, "private")] = cell[1] == "Y"
    return table


EXPECTED = parse_table(TABLE_TEXT)
V2_ACTIONS = ["v2-pull", "v2-list", "v2-push", "v2-delete"]
API_ACTIONS = [a.split()[0] for a in TABLE_TEXT.strip().splitlines() if a.startswith("api-")]
# The scope a client asks the token service for before each /v2/ operation.
V2_SCOPE = {"v2-pull": ["pull"], "v2-list": ["pull"], "v2-push": ["pull", "push"],
            "v2-delete": ["delete"]}
# Which row of the table says whether a token action is granted.
GRANT_ROW = {"pull": "v2-pull", "push": "v2-push", "delete": "v2-delete"}


def tiny_image(seed):
    return make_image(layers=1, files_per_layer=1, file_size=256, seed=seed)


class World:
    """The server, its two projects, the principals' credentials and the
    image every read cell reads."""

    def __init__(self, srv):
        self.srv = srv
        self.admin = Api(srv.url, ("admin", ADMIN_PASSWORD))
        self.reg = srv.registry()
        self.pid = {}
        self.creds = {}  # (principal, visibility) -> (name, secret) or None
        self.fixture = {}  # visibility -> Image at <project>/app:v1

    def setup(self):
        a = self.admin
        self.pid["public"] = a.create_project(PROJECTS["public"], metadata={"public": "true"})
        self.pid["private"] = a.create_project(PROJECTS["private"])
        users = {"sysadmin": "secsysadmin", "nonmember": "secnonmember", "target": "sectarget"}
        users.update({role: "sec" + role.lower() for role in ROLE_IDS})
        for who, name in users.items():
            a.create_user(name, PASSWORD, admin=(who == "sysadmin"))
        self.target = users["target"]
        robots = {}
        for vis, pname in PROJECTS.items():
            for role, rid in ROLE_IDS.items():
                a.add_member(self.pid[vis], users[role], rid)
            for kind, actions in (("rw", ["pull", "push"]), ("ro", ["pull"])):
                r = a.post("/robots", {
                    "name": kind, "level": "project", "duration": -1,
                    "permissions": [{"kind": "project", "namespace": pname,
                                     "access": [{"resource": "repository", "action": x}
                                                for x in actions]}]})
                assert r.status_code == 201, api_describe(r)
                robots[(kind, vis)] = (r.json()["name"], r.json()["secret"])
            img = tiny_image(f"fixture-{vis}")
            self.reg.push_image(f"{pname}/app", img, "v1")
            self.fixture[vis] = img
        other = {"public": "private", "private": "public"}
        for vis in PROJECTS:
            for who in PRINCIPALS:
                if who == "anonymous":
                    cred = None
                elif who == "robot-rw":
                    cred = robots[("rw", vis)]
                elif who == "robot-ro":
                    cred = robots[("ro", vis)]
                elif who == "robot-foreign":
                    cred = robots[("rw", other[vis])]
                else:
                    cred = (users[who], PASSWORD)
                self.creds[(who, vis)] = cred
        return self

    # -- clients

    def token(self, who, vis, scope):
        """A token for `scope`; returns (token, granted actions for it)."""
        cred = self.creds[(who, vis)]
        r = requests.get(f"{self.srv.url}/service/token", params={"service": "wharf", "scope": scope},
                         auth=cred, timeout=30)
        assert r.status_code == 200, describe(r)
        tok = r.json()["token"]
        name = scope.split(":")[1]
        acts = [a for a in token_claims(tok).get("access", []) if a.get("name") == name]
        return tok, set(acts[0]["actions"]) if acts else set()

    def v2(self, who, vis, mode, repo=None, actions=None):
        """A /v2/ client for the principal: Basic (or nothing, for anonymous)
        or a Bearer token asked for `actions` on `repo`. Returns (client,
        granted actions or None)."""
        if mode == "basic":
            return Registry(self.srv.url, auth=self.creds[(who, vis)]), None
        tok, granted = self.token(who, vis, f"repository:{repo}:{','.join(actions)}")
        return bearer(self.srv, tok), granted

    def api(self, who, vis):
        return Api(self.srv.url, self.creds[(who, vis)])


@pytest.fixture(scope="module")
def world(wharf_bin, session_tmp):
    srv = start_server(WharfServer, wharf_bin, str(session_tmp / "security-matrix"), name="security-matrix")
    try:
        yield World(srv).setup()
    finally:
        srv.stop()


def cell_id(*parts):
    return "-".join(parts)


def v2_denied(r, who, mode, cell):
    """A /v2/ denial in the form the caller's kind calls for."""
    if who == "anonymous" or mode == "token":
        v2_expect_error(r, 401, "UNAUTHORIZED")
        params = challenge_params(r)
        assert params.get("realm", "").endswith("/service/token"), f"{cell}: " + describe(r)
    else:
        assert r.status_code == 403, f"{cell}: expected 403 DENIED: " + describe(r)
        v2_expect_error(r, 403, "DENIED")


def api_denied(r, who, cell):
    if who == "anonymous":
        assert r.status_code == 401, f"{cell}: expected 401 UNAUTHORIZED: " + api_describe(r)
        api_expect_error(r, 401, "UNAUTHORIZED")
    else:
        assert r.status_code == 403, f"{cell}: expected 403 FORBIDDEN: " + api_describe(r)
        api_expect_error(r, 403, "FORBIDDEN")


V2_CELLS = [(a, m, w, v) for a in V2_ACTIONS for m in ("basic", "token") for w in PRINCIPALS
            for v in PROJECTS]


@pytest.mark.parametrize("action,mode,who,vis", V2_CELLS, ids=[cell_id(*c) for c in V2_CELLS])
def test_v2(world, action, mode, who, vis):
    cell = f"[{action} {mode} {who} {vis}: expected {'allow' if EXPECTED[(action, who, vis)] else 'deny'}]"
    allowed = EXPECTED[(action, who, vis)]
    pname = PROJECTS[vis]
    tag = f"{who}-{mode}".lower()
    repo = {"v2-push": f"{pname}/push", "v2-delete": f"{pname}/del"}.get(action, f"{pname}/app")
    img = world.fixture[vis]
    if action == "v2-push":
        img = tiny_image(f"push-{tag}-{vis}")
        # The blobs are in the repository already, so a manifest PUT that is
        # refused is refused for want of the right, not of its blobs.
        for data in img.blobs.values():
            world.reg.push_blob(repo, data)
    if action == "v2-delete":
        img = tiny_image(f"del-{tag}-{vis}")
        world.reg.push_image(repo, img, tag)

    client, granted = world.v2(who, vis, mode, repo, V2_SCOPE[action])
    if granted is not None:
        want = {a for a in V2_SCOPE[action] if EXPECTED[(GRANT_ROW[a], who, vis)]}
        assert granted == want, f"{cell}: token for {repo}:{V2_SCOPE[action]} granted {granted}, expected {want}"

    if action == "v2-pull":
        r = client.get_manifest(repo, "v1")
        if allowed:
            assert r.status_code == 200 and r.content == img.manifest, f"{cell}: " + describe(r)
            b = client.get(f"/v2/{repo}/blobs/{img.layers[0]}")
            assert b.status_code == 200 and b.content == img.blobs[img.layers[0]], f"{cell}: " + describe(b)
        else:
            v2_denied(r, who, mode, cell)
            v2_denied(client.get(f"/v2/{repo}/blobs/{img.layers[0]}"), who, mode, cell)
    elif action == "v2-list":
        r = client.get(f"/v2/{repo}/tags/list")
        if allowed:
            assert r.status_code == 200 and "v1" in r.json()["tags"], f"{cell}: " + describe(r)
        else:
            v2_denied(r, who, mode, cell)
    elif action == "v2-push":
        if allowed:
            client.push_blob(repo, img.blobs[img.layers[0]])
            r = client.push_manifest(repo, tag, img.manifest)
            assert r.status_code == 201, f"{cell}: " + describe(r)
            r = world.reg.get_manifest(repo, tag)
            assert r.status_code == 200 and r.content == img.manifest, f"{cell}: " + describe(r)
        else:
            v2_denied(client.post(f"/v2/{repo}/blobs/uploads/"), who, mode, cell)
            data = img.blobs[img.layers[0]]
            v2_denied(client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": img.layers[0]}, data=data,
                                  headers={"Content-Type": "application/octet-stream"}), who, mode, cell)
            v2_denied(client.push_manifest(repo, tag, img.manifest), who, mode, cell)
            r = world.reg.get_manifest(repo, tag)
            assert r.status_code == 404, f"{cell}: a refused push left a tag: " + describe(r)
    elif action == "v2-delete":
        r = client.delete(f"/v2/{repo}/manifests/{img.manifest_digest}")
        if allowed:
            assert r.status_code == 202, f"{cell}: " + describe(r)
            r = world.reg.get_manifest(repo, img.manifest_digest)
            assert r.status_code == 404, f"{cell}: the manifest is still there: " + describe(r)
        else:
            v2_denied(r, who, mode, cell)
            r = world.reg.get_manifest(repo, img.manifest_digest)
            assert r.status_code == 200, f"{cell}: a refused delete removed the manifest: " + describe(r)


GRANT_CELLS = [(w, v) for w in PRINCIPALS for v in PROJECTS]


@pytest.mark.parametrize("who,vis", GRANT_CELLS, ids=[cell_id("token-grants", *c) for c in GRANT_CELLS])
def test_token_grants(world, who, vis):
    """Asking for pull, push and delete at once grants exactly the allowed
    subset (the intersection the token service grants)."""
    repo = f"{PROJECTS[vis]}/app"
    _, granted = world.token(who, vis, f"repository:{repo}:pull,push,delete")
    want = {a for a in ("pull", "push", "delete") if EXPECTED[(GRANT_ROW[a], who, vis)]}
    assert granted == want, f"[token {who} {vis}] granted {sorted(granted)}, expected {sorted(want)}"


API_CELLS = [(a, w, v) for a in API_ACTIONS for w in PRINCIPALS for v in PROJECTS]


def member_of(world, vis, name):
    ms = world.admin.ok(world.admin.get(f"/projects/{world.pid[vis]}/members",
                                        params={"page_size": 100})).json()
    found = [m for m in ms if m["entity_name"] == name]
    return found[0] if found else None


def drop_member(world, vis, name):
    m = member_of(world, vis, name)
    if m:
        world.admin.ok(world.admin.delete(f"/projects/{world.pid[vis]}/members/{m['id']}"))


@pytest.mark.parametrize("action,who,vis", API_CELLS, ids=[cell_id(*c) for c in API_CELLS])
def test_api(world, action, who, vis):
    allowed = EXPECTED[(action, who, vis)]
    cell = f"[{action} {who} {vis}: expected {'allow' if allowed else 'deny'}]"
    api = world.api(who, vis)
    admin = world.admin
    pname, pid = PROJECTS[vis], world.pid[vis]
    img = world.fixture[vis]
    tag = who.lower()

    def check(r, status=200):
        if allowed:
            assert r.status_code == status, f"{cell}: " + api_describe(r)
        else:
            api_denied(r, who, cell)
        return r

    if action == "api-repo-list":
        r = check(api.get(f"/projects/{pname}/repositories", params={"page_size": 100}))
        if allowed:
            assert f"{pname}/app" in [x["name"] for x in r.json()], f"{cell}: " + api_describe(r)
    elif action == "api-artifact-list":
        r = check(api.get(f"/projects/{pname}/repositories/app/artifacts"))
        if allowed:
            assert img.manifest_digest in [x["digest"] for x in r.json()], f"{cell}: " + api_describe(r)
    elif action == "api-scan-read":
        r = check(api.get(f"/projects/{pname}/repositories/app/artifacts/v1",
                          params={"with_scan_overview": "true"}))
        if allowed:
            assert r.json()["digest"] == img.manifest_digest, f"{cell}: " + api_describe(r)
    elif action == "api-artifact-delete":
        victim = tiny_image(f"apidel-{tag}-{vis}")
        world.reg.push_image(f"{pname}/apidel", victim, tag)
        check(api.delete(f"/projects/{pname}/repositories/apidel/artifacts/{victim.manifest_digest}"))
        r = admin.get(f"/projects/{pname}/repositories/apidel/artifacts/{victim.manifest_digest}")
        assert r.status_code == (404 if allowed else 200), f"{cell}: after the delete: " + api_describe(r)
    elif action == "api-member-create":
        drop_member(world, vis, world.target)
        try:
            check(api.post(f"/projects/{pid}/members", {"role_id": 3, "member_user": {"username": world.target}}),
                  201)
            m = member_of(world, vis, world.target)
            assert (m is not None) == allowed, f"{cell}: member afterwards: {m}"
        finally:
            drop_member(world, vis, world.target)
    elif action in ("api-member-update", "api-member-delete"):
        drop_member(world, vis, world.target)
        mid = admin.add_member(pid, world.target, 3)
        try:
            if action == "api-member-update":
                check(api.put(f"/projects/{pid}/members/{mid}", {"role_id": 2}))
                m = member_of(world, vis, world.target)
                assert m["role_id"] == (2 if allowed else 3), f"{cell}: member afterwards: {m}"
            else:
                check(api.delete(f"/projects/{pid}/members/{mid}"))
                m = member_of(world, vis, world.target)
                assert (m is None) == allowed, f"{cell}: member afterwards: {m}"
        finally:
            drop_member(world, vis, world.target)
    elif action == "api-config-update":
        before = admin.ok(admin.get(f"/projects/{pid}")).json()["metadata"]
        new = "false" if before.get("auto_scan") == "true" else "true"
        check(api.put(f"/projects/{pid}", {"metadata": {"auto_scan": new}}))
        after = admin.ok(admin.get(f"/projects/{pid}")).json()["metadata"]
        assert after.get("auto_scan") == (new if allowed else before.get("auto_scan")), (
            f"{cell}: metadata {before} -> {after}")
        assert after.get("public") == before.get("public"), f"{cell}: metadata {before} -> {after}"
    elif action == "api-robot-create":
        name = f"made-by-{tag}"
        r = check(api.post("/robots", {
            "name": name, "level": "project", "duration": -1,
            "permissions": [{"kind": "project", "namespace": pname,
                             "access": [{"resource": "repository", "action": "pull"}]}]}), 201)
        if allowed:
            assert r.json()["name"] == f"robot${pname}+{name}" and r.json()["secret"], f"{cell}: " + api_describe(r)
        else:
            assert "secret" not in r.text, f"{cell}: " + api_describe(r)
        robots = admin.ok(admin.get("/robots", params={"q": quote(f"Level=project,ProjectID={pid}", safe=""),
                                                       "page_size": 100})).json()
        assert (f"robot${pname}+{name}" in [x["name"] for x in robots]) == allowed, (
            f"{cell}: robots afterwards: {[x['name'] for x in robots]}")
    else:
        raise AssertionError(f"unknown action {action}")


TOKEN_CELLS = [(w, v) for w in PRINCIPALS if w != "anonymous" for v in PROJECTS]


@pytest.mark.parametrize("who,vis", TOKEN_CELLS, ids=[cell_id("api-token", *c) for c in TOKEN_CELLS])
def test_api_token(world, who, vis):
    """The principal's token for everything on the project's repository, sent
    to the REST API: 401 for reads and writes alike, and nothing changes."""
    cell = f"[api-token {who} {vis}]"
    pname, pid = PROJECTS[vis], world.pid[vis]
    tok, _ = world.token(who, vis, f"repository:{pname}/app:pull,push,delete")
    api = Api(world.srv.url)
    api.s.headers["Authorization"] = f"Bearer {tok}"
    admin = world.admin
    tag = who.lower()
    before = admin.ok(admin.get(f"/projects/{pid}")).json()["metadata"]
    drop_member(world, vis, world.target)
    attempts = [
        api.get(f"/projects/{pid}/repositories"),
        api.get(f"/projects/{pname}/repositories/app/artifacts"),
        api.post(f"/projects/{pid}/members", {"role_id": 1, "member_user": {"username": world.target}}),
        api.put(f"/projects/{pid}", {"metadata": {"auto_scan": "true", "public": "true"}}),
        api.post("/robots", {"name": f"tok-{tag}", "level": "project", "duration": -1,
                             "permissions": [{"kind": "project", "namespace": pname,
                                              "access": [{"resource": "repository", "action": "push"}]}]}),
        api.post("/projects", {"project_name": f"tok-{tag}-{vis}", "storage_limit": 1024}),
    ]
    for r in attempts:
        assert r.status_code == 401, f"{cell}: " + api_describe(r)
        api_expect_error(r, 401, "UNAUTHORIZED")
    assert member_of(world, vis, world.target) is None, f"{cell}: a token added a member"
    assert admin.ok(admin.get(f"/projects/{pid}")).json()["metadata"] == before, f"{cell}: metadata changed"
    robots = admin.ok(admin.get("/robots", params={"q": quote(f"Level=project,ProjectID={pid}", safe=""),
                                                   "page_size": 100})).json()
    assert f"robot${pname}+tok-{tag}" not in [x["name"] for x in robots], f"{cell}: a token created a robot"
    assert admin.head("/projects", params={"project_name": f"tok-{tag}-{vis}"}).status_code == 404, (
        f"{cell}: a token created a project")
