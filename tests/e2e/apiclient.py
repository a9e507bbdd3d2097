"""Helpers of the REST API tests: a server with a known admin password, a
small client for /api/v2.0, and the checks every answer must pass (Harbor's
error body, pagination headers)."""

import os
from urllib.parse import quote

import requests

from regclient import ADMIN_PASSWORD  # the administrator of every test server
TIMEOUT = 60


def enc_repo(name: str) -> str:
    """A repository name as Harbor's API takes it in a path: URL-encoded twice."""
    return quote(quote(name, safe=""), safe="")


class Api:
    def __init__(self, base: str, auth=None):
        self.base = base.rstrip("/") + "/api/v2.0"
        self.s = requests.Session()
        self.s.auth = auth

    def req(self, method, path, **kw):
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return self.s.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def head(self, path, **kw):
        return self.req("HEAD", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, json=body, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, json=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.req("PATCH", path, json=body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def ok(self, r, status=200):
        assert r.status_code == status, describe(r)
        return r

    def create_project(self, name, **extra):
        body = {"project_name": name}
        body.update(extra)
        r = self.post("/projects", body)
        assert r.status_code == 201, describe(r)
        return int(r.headers["Location"].rsplit("/", 1)[1])

    def create_user(self, name, password="Passw0rd-x", admin=False):
        r = self.post("/users", {"username": name, "password": password, "email": f"{name}@example.com",
                                 "realname": name.title()})
        assert r.status_code == 201, describe(r)
        uid = int(r.headers["Location"].rsplit("/", 1)[1])
        if admin:
            self.ok(self.put(f"/users/{uid}/sysadmin", {"sysadmin_flag": True}))
        return uid

    def add_member(self, project, username, role):
        r = self.post(f"/projects/{project}/members", {"role_id": role, "member_user": {"username": username}})
        assert r.status_code == 201, describe(r)
        return int(r.headers["Location"].rsplit("/", 1)[1])

    def audit(self, **q):
        terms = ",".join(f"{k}={v}" for k, v in q.items())
        r = self.get("/audit-logs", params={"q": quote(terms, safe=""), "page_size": 100})
        assert r.status_code == 200, describe(r)
        return r.json()


def describe(r: requests.Response) -> str:
    return f"{r.request.method} {r.request.url} -> {r.status_code} {dict(r.headers)} {r.content[:600]!r}"


def expect_error(r: requests.Response, status: int, code: str, message: str = None):
    """Harbor's error body: {"errors":[{"code","message"}]}."""
    assert r.status_code == status, describe(r)
    assert "json" in r.headers.get("Content-Type", ""), describe(r)
    doc = r.json()
    assert isinstance(doc.get("errors"), list) and len(doc["errors"]) == 1, describe(r)
    e = doc["errors"][0]
    assert set(e) == {"code", "message"}, describe(r)
    assert e["code"] == code, describe(r)
    if message is not None:
        assert e["message"] == message, describe(r)
    return e


def start_server(factory_cls, binary, base, name="api"):
    os.makedirs(base, exist_ok=True)
    srv = factory_cls(binary, os.path.join(base, "data"), os.path.join(base, "stderr.log"),
                      env={"WHARF_ADMIN_PASSWORD": ADMIN_PASSWORD}, name=name)
    srv.start()
    return srv
