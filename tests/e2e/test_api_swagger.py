"""REST API: the OpenAPI document served at /api/v2.0/swagger.json describes
the routes the server answers. Every documented (method, path) is answered
by a route (never the router's "no route" 404 or a 405), and paths that are
not documented are not served. The C unit test test_api compares the route
table itself with the document in both directions."""

import re

import pytest

from apiclient import ADMIN_PASSWORD, Api, describe, start_server
from conftest import WharfServer


@pytest.fixture(scope="module")
def srv(wharf_bin, session_tmp):
    s = start_server(WharfServer, wharf_bin, str(session_tmp / "api-swagger"))
    yield s
    s.stop()


def no_route(r):
    if r.status_code == 405:
        return True
    if r.status_code != 404 or r.request.method == "HEAD":
        return False
    return r.json()["errors"][0]["message"].startswith("no route for ")


def test_api_swagger_document(srv):
    anon = Api(srv.url)
    r = anon.get("/swagger.json")
    assert r.status_code == 200 and "json" in r.headers["Content-Type"], describe(r)
    doc = r.json()
    assert doc["swagger"] == "2.0" and doc["basePath"] == "/api/v2.0"
    assert "/projects" in doc["paths"] and "get" in doc["paths"]["/projects"]


def test_api_documented_routes_are_served(srv):
    admin = Api(srv.url, ("admin", ADMIN_PASSWORD))
    doc = admin.get("/swagger.json").json()
    samples = {"project_name_or_id": "library", "repository_name": "nope", "reference": "latest",
               "tag_name": "t", "mid": "999999", "robot_id": "999999", "user_id": "999999",
               "meta_name": "auto_scan", "project_name": "library", "addition": "build_history",
               "label_id": "999999", "id": "999999", "report_id": "0" * 32,
               "execution_id": "999999",
               "registration_id": "999999", "gc_id": "999999", "purge_id": "999999"}
    seen = 0
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: samples[m.group(1)], path)
        for method in item:
            if method == "delete" and concrete in ("/projects/library",):
                continue  # keep the default project
            r = admin.req(method.upper(), concrete, json={} if method in ("post", "put", "patch") else None)
            assert not no_route(r), f"{method.upper()} {path} is documented but not served: " + describe(r)
            seen += 1
    assert seen > 40


def test_api_undocumented_paths_are_not_served(srv):
    admin = Api(srv.url, ("admin", ADMIN_PASSWORD))
    for method, path in [("GET", "/nothing"), ("GET", "/projects/library/nothing"),
                         ("POST", "/health"), ("DELETE", "/users/current/permissions"),
                         ("GET", "/projects/library/repositories/x/y/z/w")]:
        r = admin.req(method, path)
        assert no_route(r), describe(r)
        assert r.json()["errors"][0]["code"] in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
