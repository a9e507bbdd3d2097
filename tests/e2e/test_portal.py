"""The web portal's server side (docs/portal.md, docs/security.md): the
compiled files and Harbor's page addresses, security headers, ETags, paths
that try to leave the table; sign-in at POST /c/login with the session
cookie (flags, expiry, fixation, sign-out, a password change or a deleted
user ending it, another server not taking it), CSRF on the REST API for
session requests only, wrong credentials and the login throttle.

The browser half (Chromium driven by playwright-core) is test_portal_ui.py.
"""
import gzip
import http.client
import re

import requests

from apiclient import Api, describe
from regclient import ADMIN_PASSWORD, ADMIN_USER

PAGES = [
    "/", "/harbor", "/harbor/sign-in", "/harbor/projects", "/harbor/projects/1/repositories",
    "/harbor/projects/1/repositories/app/artifacts-tab",
    "/harbor/projects/1/repositories/a%2Fb/artifacts-tab/artifacts/sha256:" + "a" * 64,
    "/harbor/projects/1/configs", "/harbor/users", "/harbor/interrogation-services/vulnerability",
    "/harbor/interrogation-services/security-hub", "/harbor/anything/at/all",
]


def index_etag(srv):
    r = requests.get(srv.url + "/", timeout=30)
    assert r.status_code == 200, describe(r)
    return r.headers["ETag"]


def login(srv, user=ADMIN_USER, password=ADMIN_PASSWORD, session=None, **kw):
    s = session or requests.Session()
    r = s.post(srv.url + "/c/login", data={"principal": user, "password": password},
               timeout=60, **kw)
    return s, r


def raw_get(srv, path, headers=None):
    """A GET with the path sent exactly as given (no client normalisation)."""
    host, port = srv.host.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    c.putrequest("GET", path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body


def test_pages_files_and_headers(server):
    etag = index_etag(server)
    for path in PAGES:
        r = requests.get(server.url + path, timeout=30)
        assert r.status_code == 200, (path, describe(r))
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert r.headers["ETag"] == etag, path  # the same application everywhere
        assert '<script type="module" src="/static/app.js">' in r.text
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-cache"
    # no inline script anywhere: every <script> of the page has a src
    page = requests.get(server.url + "/", timeout=30).text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), page
    assert "style=" not in page
    for asset, ctype in [("/static/app.js", "text/javascript; charset=utf-8"),
                         ("/static/app.css", "text/css; charset=utf-8")]:
        r = requests.get(server.url + asset, timeout=30)
        assert r.status_code == 200 and r.headers["Content-Type"] == ctype, describe(r)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        # revalidation: 304 without a body
        r2 = requests.get(server.url + asset, headers={"If-None-Match": r.headers["ETag"]},
                          timeout=30)
        assert r2.status_code == 304 and r2.content == b"", describe(r2)
        r3 = requests.get(server.url + asset, headers={"If-None-Match": '"other"'}, timeout=30)
        assert r3.status_code == 200 and r3.content == r.content
    ident = {"Accept-Encoding": "identity"}
    h = requests.head(server.url + "/static/app.js", headers=ident, timeout=30)
    assert h.status_code == 200 and h.content == b""
    plain = requests.get(server.url + "/static/app.js", headers=ident, timeout=30)
    assert "Content-Encoding" not in plain.headers
    assert int(h.headers["Content-Length"]) == len(plain.content)
    # gzip when asked for (text only), with its own ETag and Vary
    for ae in ["gzip", "br, gzip;q=0.5", "*", "x-gzip"]:
        raw = requests.get(server.url + "/static/app.js", headers={"Accept-Encoding": ae},
                           timeout=30, stream=True)
        body = raw.raw.read(decode_content=False)
        assert raw.headers["Content-Encoding"] == "gzip", (ae, raw.headers)
        assert raw.headers["Vary"] == "Accept-Encoding"
        assert int(raw.headers["Content-Length"]) == len(body) < len(plain.content)
        assert gzip.decompress(body) == plain.content
        assert raw.headers["ETag"] != plain.headers["ETag"]
        r304 = requests.get(server.url + "/static/app.js", timeout=30,
                            headers={"Accept-Encoding": ae, "If-None-Match": raw.headers["ETag"]})
        assert r304.status_code == 304, describe(r304)
    for ae in ["gzip;q=0", "deflate", "br", "gzipx", "identity, gzip;q=0.000", ""]:
        r = requests.get(server.url + "/static/app.js", headers={"Accept-Encoding": ae},
                         timeout=30, stream=True)
        assert "Content-Encoding" not in r.headers, (ae, r.headers)
        assert r.raw.read(decode_content=False) == plain.content
        assert r.headers["ETag"] == plain.headers["ETag"]
    r = requests.post(server.url + "/harbor/projects", timeout=30)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD", describe(r)


def test_other_paths_keep_their_behaviour(server):
    r = requests.get(server.url + "/v2/", timeout=30)
    assert r.status_code == 401 and "Bearer realm" in r.headers["Www-Authenticate"], describe(r)
    r = requests.get(server.url + "/api/v2.0/ping", timeout=30)
    assert r.status_code == 200, describe(r)
    for path in ["/nope", "/static/nope.js", "/index.htm", "/c/", "/c/other", "/harborx",
                 "/static/", "/v2"]:
        r = requests.get(server.url + path, timeout=30)
        assert r.status_code == 404, (path, describe(r))
        assert r.json() == {"errors": [{"code": "NOT_FOUND", "message": "resource not found"}]}


def test_asset_paths_cannot_leave_the_table(server):
    for path in ["/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
                 "/static/..%2f..%2f..%2fetc%2fpasswd", "//etc/passwd", "/static//etc/passwd",
                 "/static/app.js/../../../etc/passwd", "/static/app.js%00.html",
                 "/static/%2fetc%2fpasswd", "/../../etc/passwd", "/static/./app.js",
                 "/static/APP.JS", "/static/app.js/", "/static\\..\\..\\etc\\passwd",
                 "/harbor/../../etc/passwd"]:
        status, headers, body = raw_get(server, path)
        assert b"root:" not in body, path
        if status == 200:
            # only the application page itself, never a file from the disk
            assert body.startswith(b"<!doctype html>"), (path, body[:200])
        else:
            assert status in (400, 404), (path, status, body[:200])
    assert server.running()


def test_sign_in_cookie_flags_and_current_user(server):
    s, r = login(server)
    assert r.status_code == 200, describe(r)
    assert r.json() == {"username": ADMIN_USER}
    cookie = r.headers["Set-Cookie"]
    m = re.fullmatch(r"sid=([0-9a-f]{64}); Path=/; Max-Age=(\d+); HttpOnly; SameSite=Strict",
                     cookie)
    assert m, cookie  # no Secure on plain http, no Domain (this host only)
    assert int(m.group(2)) == 12 * 3600
    assert r.headers["Cache-Control"] == "no-store"
    csrf = r.headers["X-Harbor-CSRF-Token"]
    assert re.fullmatch(r"[0-9a-f]{64}", csrf)
    me = s.get(server.url + "/api/v2.0/users/current", timeout=30)
    assert me.status_code == 200 and me.json()["username"] == ADMIN_USER, describe(me)
    assert me.headers["X-Harbor-CSRF-Token"] == csrf
    # the session is named in the access log, never its id
    assert m.group(1) not in server.log_text()


def test_wrong_credentials_and_throttle(servers):
    srv = servers.new()
    for user, pw in [(ADMIN_USER, "Not-The-Passw0rd"), ("nobody", "Whatever-1"),
                     (ADMIN_USER, "x" * 5000)]:
        s, r = login(srv, user, pw)
        assert r.status_code in (401, 413), describe(r)
        if r.status_code == 401:
            assert r.json()["errors"][0]["message"] == "Invalid user name or password."
        assert "Set-Cookie" not in r.headers
    # malformed forms
    r = requests.post(srv.url + "/c/login", data="principal=admin", timeout=30,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400, describe(r)
    r = requests.post(srv.url + "/c/login", json={"principal": "a", "password": "b"}, timeout=30)
    assert r.status_code == 415, describe(r)
    r = requests.get(srv.url + "/c/login", timeout=30)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    # the login throttle of Basic credentials holds here too: repeated failures,
    # then even the right password waits (429 with Retry-After)
    statuses = [login(srv, ADMIN_USER, "Not-The-Passw0rd")[1].status_code for _ in range(8)]
    assert 429 in statuses, statuses
    s, r = login(srv)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, describe(r)
    assert "Set-Cookie" not in r.headers


def test_csrf_on_session_requests_only(server, unique):
    s, r = login(server)
    csrf = r.headers["X-Harbor-CSRF-Token"]
    url = server.url + "/api/v2.0/projects"
    admin = Api(server.url, auth=(ADMIN_USER, ADMIN_PASSWORD))

    def exists(name):
        return admin.get(f"/projects/{name}").status_code == 200

    r = s.post(url, json={"project_name": unique + "-a"}, timeout=30)
    assert r.status_code == 403, describe(r)
    assert r.json()["errors"][0] == {"code": "FORBIDDEN",
                                     "message": "CSRF token not found in request"}
    r = s.post(url, json={"project_name": unique + "-a"}, timeout=30,
               headers={"X-Harbor-CSRF-Token": "0" * 64})
    assert r.status_code == 403 and r.json()["errors"][0]["message"] == "CSRF token invalid"
    # another session's token is not this one's
    s2, r2 = login(server)
    r = s.post(url, json={"project_name": unique + "-a"}, timeout=30,
               headers={"X-Harbor-CSRF-Token": r2.headers["X-Harbor-CSRF-Token"]})
    assert r.status_code == 403, describe(r)
    for method, target in [("PUT", url + "/library"), ("DELETE", url + "/library"),
                           ("PATCH", server.url + "/api/v2.0/robots/1")]:
        r = s.request(method, target, json={}, timeout=30)
        assert r.status_code == 403, (method, describe(r))
        assert r.json()["errors"][0]["message"] == "CSRF token not found in request"
    assert not exists(unique + "-a")
    r = s.post(url, json={"project_name": unique + "-a"}, timeout=30,
               headers={"X-Harbor-CSRF-Token": csrf})
    assert r.status_code == 201, describe(r)
    assert exists(unique + "-a")
    # Basic credentials need no token, even with a session cookie beside them
    r = requests.post(url, json={"project_name": unique + "-b"}, auth=(ADMIN_USER, ADMIN_PASSWORD),
                      cookies=s.cookies, timeout=30)
    assert r.status_code == 201, describe(r)
    # reads need none
    assert s.get(url, timeout=30).status_code == 200


def test_session_fixation_and_sign_out(server):
    planted = "ab" * 32
    jar = requests.Session()
    jar.cookies.set("sid", planted)
    s, r = login(server, session=jar)
    assert r.status_code == 200, describe(r)
    sid = re.match(r"sid=([0-9a-f]+);", r.headers["Set-Cookie"]).group(1)
    assert sid != planted
    assert requests.get(server.url + "/api/v2.0/users/current", cookies={"sid": planted},
                        timeout=30).status_code == 401
    # a second sign-in from a browser with a live session ends the old one
    s2, r2 = login(server, session=requests.Session())
    sid2 = re.match(r"sid=([0-9a-f]+);", r2.headers["Set-Cookie"]).group(1)
    s3, r3 = login(server, session=s2)
    sid3 = re.match(r"sid=([0-9a-f]+);", r3.headers["Set-Cookie"]).group(1)
    assert sid3 != sid2
    assert requests.get(server.url + "/api/v2.0/users/current", cookies={"sid": sid2},
                        timeout=30).status_code == 401
    # sign-out ends the session on the server, not just in the browser
    r = s.get(server.url + "/c/log_out", timeout=30)
    assert r.status_code == 200, describe(r)
    assert re.match(r"sid=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict", r.headers["Set-Cookie"])
    r = requests.get(server.url + "/api/v2.0/users/current", cookies={"sid": sid}, timeout=30)
    assert r.status_code == 401, describe(r)
    assert "X-Harbor-CSRF-Token" not in r.headers
    # junk cookies are anonymous, never an error of the server
    for junk in ["", "x", "z" * 64, "a" * 300, "ab" * 32 + ";sid=" + "cd" * 32]:
        r = requests.get(server.url + "/api/v2.0/projects", headers={"Cookie": "sid=" + junk},
                         timeout=30)
        assert r.status_code == 200, (junk, describe(r))


def test_password_change_and_user_delete_end_sessions(server, unique):
    admin = Api(server.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    r = admin.post("/users", {"username": unique, "email": f"{unique}@example.com",
                              "realname": "x", "password": "First-Passw0rd"})
    assert r.status_code == 201, describe(r)
    uid = int(r.headers["Location"].rsplit("/", 1)[1])
    s, r = login(server, unique, "First-Passw0rd")
    assert r.status_code == 200, describe(r)
    me = server.url + "/api/v2.0/users/current"
    assert s.get(me, timeout=30).status_code == 200
    r = admin.put(f"/users/{uid}/password", {"new_password": "Second-Passw0rd"})
    assert r.status_code == 200, describe(r)
    assert s.get(me, timeout=30).status_code == 401
    s, r = login(server, unique, "Second-Passw0rd")
    assert s.get(me, timeout=30).status_code == 200
    assert admin.delete(f"/users/{uid}").status_code == 200
    assert s.get(me, timeout=30).status_code == 401
    # robots prove their secret but have no portal session
    r = admin.post("/robots", {"name": unique, "level": "system", "duration": -1,
                               "permissions": [{"kind": "project", "namespace": "*",
                                                "access": [{"resource": "repository",
                                                            "action": "pull"}]}]})
    assert r.status_code == 201, describe(r)
    s, r = login(server, r.json()["name"], r.json()["secret"])
    assert r.status_code == 403 and "Set-Cookie" not in r.headers, describe(r)


def test_cookie_of_another_server_or_origin(servers):
    a, b = servers.new(), servers.new()
    s, r = login(a)
    sid = s.cookies["sid"]
    # same host, another port: the browser would send the cookie; B does not know it
    r = requests.get(b.url + "/api/v2.0/users/current", cookies={"sid": sid}, timeout=30)
    assert r.status_code == 401, describe(r)
    # a sign-in posted from another site's page is refused (login CSRF)
    s2, r = login(a, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "Set-Cookie" not in r.headers, describe(r)
    s2, r = login(a, headers={"Origin": a.url})
    assert r.status_code == 200, describe(r)


def test_secure_cookie_behind_tls_proxy(servers):
    srv = servers.new(env={"WHARF_TRUSTED_PROXIES": "127.0.0.1"})
    s, r = login(srv, headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 200, describe(r)
    assert r.headers["Set-Cookie"].endswith("; HttpOnly; SameSite=Strict; Secure")
    s, r = login(srv)
    assert "Secure" not in r.headers["Set-Cookie"]
