"""End-to-end tests of the pluggable scanner API, both ways (docs/scanning.md,
"External scanners"):

* a second `wharf serve` acting as the scanner adapter of the first: the
  first registers it, hands it its project's scans, and the second pulls
  the image from the first with the short-lived token it was given;
* the adapter API wharf serves (/api/v1), called directly, with and without
  its token, with requests naming unreachable or giant registries;
* hostile adapters (garbage, huge answers, reports never ready, closed ports),
  played by small HTTP servers of the test, and the token an adapter gets
  being revoked when the job ends.
"""
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from apiclient import Api, describe, enc_repo
from conftest import free_port, wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER
from test_scan_registry import (MIME, REPO, Scans, cli_report, expected_summary, import_db,
                                keys)

TOKEN = "adapter-token-0123456789abcdef"
NATIVE = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
SCAN_REQ = "application/vnd.scanner.adapter.scan.request+json; version=1.0"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def proj(unique) -> str:
    return "adp-" + hashlib.sha256(unique.encode()).hexdigest()[:12]


def adapter_env(**extra):
    env = {"WHARF_SCAN_ADAPTER_ENABLED": "true", "WHARF_SCAN_ADAPTER_TOKEN": TOKEN}
    env.update(extra)
    return env


def v1(srv, method, path, token=TOKEN, **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    kw.setdefault("timeout", 60)
    kw.setdefault("allow_redirects", False)
    return requests.request(method, f"{srv.url}/api/v1{path}", headers=headers, **kw)


def register(api, name, url, **extra) -> str:
    body = {"name": name, "url": url, "auth": "Bearer", "access_credential": TOKEN}
    body.update(extra)
    r = api.post("/scanners", body)
    assert r.status_code == 201, describe(r)
    uuid = r.headers["Location"].rsplit("/", 1)[1]
    assert len(uuid) == 36
    return uuid


def use_scanner(api, project, uuid):
    r = api.put(f"/projects/{project}/scanner", {"uuid": uuid})
    assert r.status_code == 200, describe(r)


def scan_request(registry_url, repository, digest, authorization=None, mime=OCI_MANIFEST):
    reg = {"url": registry_url}
    if authorization:
        reg["authorization"] = authorization
    return {"registry": reg,
            "artifact": {"repository": repository, "digest": digest, "mime_type": mime}}


def log_of(srv, s, report_id, digest):
    r = s.api.get(f"{s.base}/{digest}/scan/{report_id}/log")
    assert r.status_code == 200, describe(r)
    return r.text


# ---- test servers playing adapters and registries ----

class Peer:
    """An HTTP server of the test on 127.0.0.1; `handler(req)` answers each
    request: (status, headers, body bytes). Requests are recorded."""

    def __init__(self, handler):
        self.handler = handler
        self.requests = []
        peer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = {"method": self.command, "path": self.path,
                       "headers": dict(self.headers), "body": body}
                peer.requests.append(req)
                status, headers, out = peer.handler(req)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    if callable(out):
                        out(self.wfile)
                    else:
                        self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_HEAD = _do

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def peers():
    made = []

    def make(handler):
        p = Peer(handler)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


METADATA = {"scanner": {"name": "Hostile", "vendor": "Test", "version": "1"},
            "capabilities": [{"consumes_mime_types": [OCI_MANIFEST, DOCKER_MANIFEST],
                              "produces_mime_types": [MIME]}],
            "properties": {}}


def adapter_handler(scan=None, report=None, metadata=None):
    """An adapter whose scan and report answers are given (status, headers, body)."""
    def h(req):
        path = req["path"]
        if path == "/api/v1/metadata":
            return 200, {"Content-Type": "application/json"}, json.dumps(
                metadata or METADATA).encode()
        if path == "/api/v1/scan" and req["method"] == "POST":
            return scan or (202, {}, b'{"id":"abc"}')
        if path.startswith("/api/v1/scan/") and path.endswith("/report"):
            return report or (302, {"Refresh-After": "1"}, b"")
        return 404, {}, b"{}"
    return h


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


# ---- a second wharf as the scanner of the first ----

def test_second_wharf_as_scanner_matches_builtin(servers, skopeo, pinned_bookworm, proj):
    scanner = servers.new(env=adapter_env(), name="adapter")
    import_db(scanner)
    srv = servers.new(name="registry")
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj)
    digest = pinned_bookworm.manifest_digest

    # the built-in scanner is listed first and is the default; it is immutable
    r = s.api.get("/scanners")
    assert r.status_code == 200, describe(r)
    (builtin,) = r.json()
    assert builtin["name"] == "wharf" and builtin["is_default"] is True
    assert s.api.put(f"/scanners/{builtin['uuid']}", {"name": "x"}).status_code == 403
    assert s.api.delete(f"/scanners/{builtin['uuid']}").status_code == 403

    # ping, register, the metadata through the registration
    r = s.api.post("/scanners/ping", {"name": "b", "url": scanner.url, "auth": "Bearer",
                                      "access_credential": TOKEN})
    assert r.status_code == 200, describe(r)
    uuid = register(s.api, "second-wharf", scanner.url)
    r = s.api.post("/scanners", {"name": "second-wharf", "url": scanner.url + "/x"})
    assert r.status_code == 409, describe(r)
    r = s.api.get("/scanners")
    assert [x["uuid"] for x in r.json()] == [builtin["uuid"], uuid]
    assert "access_credential" not in r.json()[1]
    r = s.api.get(f"/scanners/{uuid}/metadata")
    assert r.status_code == 200, describe(r)
    meta = r.json()
    assert meta["scanner"]["name"] == "wharf"
    assert DOCKER_MANIFEST in meta["capabilities"][0]["consumes_mime_types"]
    assert MIME in meta["capabilities"][0]["produces_mime_types"]
    assert meta["properties"]["harbor.scanner-adapter/scanner-type"] == "os-package-vulnerability"
    assert "harbor.scanner-adapter/vulnerability-database-updated-at" in meta["properties"]
    r = s.api.get(f"/scanners/{uuid}")
    assert r.status_code == 200 and r.json()["health"] == "healthy", describe(r)

    # the project's scanner: the default until chosen, then the second wharf
    r = s.api.get(f"/projects/{proj}/scanner")
    assert r.status_code == 200 and r.json()["uuid"] == builtin["uuid"], describe(r)
    r = s.api.get(f"/projects/{proj}/scanner/candidates")
    assert r.status_code == 200 and len(r.json()) == 2, describe(r)
    use_scanner(s.api, proj, uuid)
    r = s.api.get(f"/projects/{proj}/scanner")
    assert r.json()["uuid"] == uuid and r.json()["health"] == "healthy", describe(r)

    # a scan through the second wharf, which pulls the image from the first
    s.push(skopeo, pinned_bookworm)
    srv.mark_log()
    assert s.scan(digest).status_code == 202
    o = s.wait_status(digest, "Success", "Error")
    assert o["scan_status"] == "Success", log_of(srv, s, o["report_id"], digest)
    rep = cli_report(srv, pinned_bookworm)
    assert rep["vulnerabilities"]
    assert o["summary"] == expected_summary(rep)
    assert o["severity"] == rep["severity"]
    assert o["scanner"] == {"name": "wharf", "vendor": "wharf", "version": rep["scanner"]["version"]}
    doc = s.vulnerabilities(digest)[MIME]
    assert keys(doc) == keys(rep)
    assert all(v["artifact_digests"] == [digest] for v in doc["vulnerabilities"])
    # the pull came from the second wharf, with the scan's own token
    log = srv.log_since_mark()
    pulls = [l for l in log.splitlines()
             if f"GET /v2/{proj}/{REPO}/manifests/{digest} 200" in l]
    assert pulls and all("user=robot$scanner-" in l for l in pulls), log[-3000:]
    assert "scanner adapter: scan" in scanner.log_text()

    # the same image scanned by the built-in scanner of another project: equal counts
    s2 = Scans(srv, proj + "-b")
    s2.api.create_project(proj + "-b")
    s2.push(skopeo, pinned_bookworm)
    assert s2.scan(digest).status_code == 202
    o2 = s2.wait_status(digest, "Success", "Error")
    assert o2["scan_status"] == "Success"
    assert o2["summary"] == o["summary"] and o2["severity"] == o["severity"]
    assert keys(s2.vulnerabilities(digest)[MIME]) == keys(doc)

    # the gate reads the adapter's report as the built-in one's
    r = s.api.put(f"/projects/{proj}", {"metadata": {"prevent_vul": "true", "severity": "low"}})
    assert r.status_code == 200, describe(r)
    r = requests.get(f"{srv.url}/v2/{proj}/{REPO}/manifests/{digest}",
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30,
                     headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 412, describe(r)

    # the default scanner: the registration, then back; a default cannot be deleted
    assert s.api.patch(f"/scanners/{uuid}", {"is_default": True}).status_code == 200
    assert [x["is_default"] for x in s.api.get("/scanners").json()] == [False, True]
    assert s.api.delete(f"/scanners/{uuid}").status_code == 403
    assert s.api.patch(f"/scanners/{builtin['uuid']}", {"is_default": True}).status_code == 200
    r = s.api.delete(f"/scanners/{uuid}")
    assert r.status_code == 200, describe(r)
    r = s.api.get(f"/projects/{proj}/scanner")
    assert r.json()["uuid"] == builtin["uuid"]  # the choice went with the registration


def test_token_handed_to_adapter_is_scoped_and_revoked(servers, skopeo, pinned_bookworm, proj,
                                                       peers):
    # an adapter that records the request and never finishes: the job's deadline ends it
    adapter = peers(adapter_handler())
    srv = servers.new(env={"WHARF_SCAN_EXTERNAL_TIMEOUT": "4"})
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"prevent_vul": "true", "severity": "low"})
    uuid = register(s.api, "recorder", adapter.url)
    use_scanner(s.api, proj, uuid)
    s.push(skopeo, pinned_bookworm)
    skopeo.copy(pinned_bookworm.oci, f"docker://{srv.host}/{proj}/other:1")
    digest = pinned_bookworm.manifest_digest
    assert s.scan(digest).status_code == 202
    wait_until(lambda: any(r["path"] == "/api/v1/scan" for r in adapter.requests), 30,
               "the scan request to reach the adapter")
    req = next(r for r in adapter.requests if r["path"] == "/api/v1/scan")
    assert req["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert req["headers"]["Content-Type"] == SCAN_REQ
    body = json.loads(req["body"])
    assert body["registry"]["url"] == srv.url
    assert body["artifact"]["repository"] == f"{proj}/{REPO}"
    assert body["artifact"]["digest"] == digest
    assert body["artifact"]["mime_type"] in (OCI_MANIFEST, DOCKER_MANIFEST)
    authz = body["registry"]["authorization"]
    assert authz.startswith("Bearer ")

    url = f"{srv.url}/v2/{proj}/{REPO}/manifests/{digest}"
    hdr = {"Authorization": authz, "Accept": OCI_MANIFEST}
    # while the job runs: pull (through the gate: scanner-pull) of that repository only
    r = requests.get(url, headers=hdr, timeout=30)
    assert r.status_code == 200, describe(r)
    r = requests.get(f"{srv.url}/v2/{proj}/other/manifests/{digest}", headers=hdr, timeout=30)
    assert r.status_code in (401, 403), describe(r)
    r = requests.put(f"{srv.url}/v2/{proj}/{REPO}/manifests/x", headers=hdr, data=b"{}",
                     timeout=30)
    assert r.status_code in (401, 403), describe(r)

    o = s.wait_status(digest, "Error", "Success")
    assert o["scan_status"] == "Error"
    log = log_of(srv, s, o["report_id"], digest)
    assert "recorder" in log and "not ready within 4 s" in log, log
    # Refresh-After: 1 was honoured: about one poll a second until the deadline
    polls = [r for r in adapter.requests if r["path"] == "/api/v1/scan/abc/report"]
    assert 2 <= len(polls) <= 6, len(polls)
    assert all(r["headers"]["Accept"] == MIME for r in polls)
    # the job is over: the token is refused at once, long before it would expire,
    # and still after a restart (the server forgets nothing it revoked)
    r = requests.get(url, headers=hdr, timeout=30)
    assert r.status_code == 401, describe(r)
    srv.restart()
    r = requests.get(url, headers=hdr, timeout=30)
    assert r.status_code == 401, describe(r)


# ---- hostile adapters ----

@pytest.mark.parametrize("case", ["garbage-report", "huge-report", "bad-status", "no-id",
                                  "bad-item"])
def test_hostile_adapter_ends_job_in_error(servers, skopeo, pinned_bookworm, proj, peers, case):
    def huge(w):
        w.write(b'{"vulnerabilities":[' + b'{"id":"x"},' * 8_000_000)

    answers = {
        "garbage-report": dict(report=(200, {}, b"\x00not json at all")),
        "huge-report": dict(report=(200, {"Content-Length": str(80 << 20)}, huge)),
        "bad-status": dict(scan=(500, {}, b'{"error":{"message":"disk on fire"}}')),
        "no-id": dict(scan=(202, {}, b'{"id":"../../etc"}')),
        "bad-item": dict(report=(200, {}, json.dumps(
            {"vulnerabilities": [{"id": "CVE-1", "package": "p", "version": "1",
                                  "severity": "Apocalyptic"}]}).encode())),
    }
    adapter = peers(adapter_handler(**answers[case]))
    srv = servers.new(env={"WHARF_SCAN_EXTERNAL_TIMEOUT": "20"})
    s = Scans(srv, proj)
    s.api.create_project(proj)
    use_scanner(s.api, proj, register(s.api, "hostile", adapter.url))
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert s.scan(digest).status_code == 202
    o = s.wait_status(digest, "Error", "Success")
    assert o["scan_status"] == "Error"
    log = log_of(srv, s, o["report_id"], digest)
    expect = {"garbage-report": "not JSON",
              "huge-report": "larger than",
              "bad-status": "unexpected status code: 500, expected: 202: disk on fire",
              "no-id": "no usable scan id",
              "bad-item": "known severity"}[case]
    assert log.startswith("scanner hostile: ") and expect in log, log
    assert s.vulnerabilities(digest) == {}
    assert srv.running()


def test_adapter_down_and_registration_rules(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new()
    s = Scans(srv, proj)
    s.api.create_project(proj)
    down = closed_port_url()

    # ping of a closed port: 400 naming the failure
    r = s.api.post("/scanners/ping", {"name": "down", "url": down})
    assert r.status_code == 400 and "does not answer" in r.text, describe(r)
    # bad registrations
    for body in ({"url": down}, {"name": "n"}, {"name": "n", "url": "file:///etc/passwd"},
                 {"name": "n", "url": down, "auth": "Magic"},
                 {"name": "n", "url": down, "auth": "Basic", "access_credential": "nocolon"},
                 {"name": "wharf", "url": down + "/other"}):
        r = s.api.post("/scanners", body)
        assert r.status_code in (400, 409), (body, describe(r))
        assert r.json()["errors"][0]["message"], describe(r)
    # non-administrators cannot register, list or choose what a project uses without rights
    s.api.create_user("plain", password="Passw0rd-x")
    plain = Api(srv.url, auth=("plain", "Passw0rd-x"))
    assert plain.post("/scanners", {"name": "x", "url": down}).status_code == 403
    assert plain.get("/scanners").status_code == 403
    assert plain.post("/scanners/ping", {"name": "x", "url": down}).status_code == 403
    assert plain.put(f"/projects/{proj}/scanner", {"uuid": "x"}).status_code in (403, 404)
    assert Api(srv.url).post("/scanners", {"name": "x", "url": down}).status_code == 401

    uuid = register(s.api, "down", down)
    r = s.api.get(f"/scanners/{uuid}")
    assert r.json()["health"] == "unhealthy", describe(r)
    r = s.api.get(f"/scanners/{uuid}/metadata")
    assert r.status_code == 500 and "down" in r.json()["errors"][0]["message"], describe(r)
    r = s.api.put(f"/projects/{proj}/scanner", {"uuid": "nope"})
    assert r.status_code == 404, describe(r)
    use_scanner(s.api, proj, uuid)
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert s.scan(digest).status_code == 202
    o = s.wait_status(digest, "Error", "Success")
    log = log_of(srv, s, o["report_id"], digest)
    assert o["scan_status"] == "Error" and log.startswith("scanner down: "), log

    # disabled: the job says so; it cannot be chosen or made default
    r = s.api.put(f"/scanners/{uuid}", {"disabled": True})
    assert r.status_code == 200, describe(r)
    assert s.api.patch(f"/scanners/{uuid}", {"is_default": True}).status_code == 400
    assert s.scan(digest).status_code == 202
    o = s.wait_status(digest, "Error", "Success")
    assert "disabled" in log_of(srv, s, o["report_id"], digest)


# ---- the adapter API wharf serves ----

def test_adapter_api_auth_and_requests(servers, peers):
    off = servers.new(name="off")
    r = v1(off, "GET", "/metadata")
    assert r.status_code == 404 and "scan.adapter.enabled" in r.json()["error"]["message"]

    srv = servers.new(env=adapter_env(WHARF_SCAN_ADAPTER_MAX_CONCURRENT="1",
                                      WHARF_SCAN_ADAPTER_TIMEOUT="10",
                                      WHARF_SCAN_ADAPTER_MAX_IMAGE_BYTES="64MiB"))
    for token, extra in ((None, {}), ("wrong-token-wrong-token", {}),
                         (None, {"X-ScannerAdapter-API-Key": "nope"}),
                         (None, {"Authorization": "Basic " + "YWRtaW46SGFyYm9yMTIzNDU="})):
        r = v1(srv, "GET", "/metadata", token=token, headers=extra)
        assert r.status_code == 401, (token, extra, r.status_code)
        assert r.json()["error"]["message"].startswith("unauthorized")
    r = v1(srv, "GET", "/metadata", token=None, headers={"X-ScannerAdapter-API-Key": TOKEN})
    assert r.status_code == 200
    r = v1(srv, "GET", "/metadata")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/vnd.scanner.adapter.metadata+json")
    meta = r.json()
    assert meta["scanner"]["name"] == "wharf"
    assert meta["capabilities"][0]["produces_mime_types"] == [NATIVE, MIME]

    # bad requests
    r = v1(srv, "POST", "/scan", data=b"{not json", headers={"Content-Type": SCAN_REQ})
    assert r.status_code == 400, r.text
    for body, word in ((scan_request("", "a/b", "sha256:" + "0" * 64), "registry.url"),
                       (scan_request("http://x", "", "sha256:" + "0" * 64), "artifact.repository"),
                       (scan_request("http://x", "a/b", "nope"), "artifact.digest"),
                       (scan_request("gopher://x", "a/b", "sha256:" + "0" * 64), "registry.url"),
                       (scan_request("http://x", "a/b", "sha256:" + "0" * 64,
                                     mime="application/vnd.oci.image.index.v1+json"), "mime_type")):
        r = v1(srv, "POST", "/scan", json=body)
        assert r.status_code == 422 and word in r.json()["error"]["message"], (body, r.text)
    r = v1(srv, "POST", "/scan", data=b"x" * (128 << 10))
    assert r.status_code in (400, 413), r.status_code
    assert v1(srv, "GET", "/scan/" + "0" * 32 + "/report").status_code == 404

    def report_of(scan_id, timeout=60):
        def done():
            r = v1(srv, "GET", f"/scan/{scan_id}/report", headers={"Accept": MIME})
            if r.status_code == 302:
                assert int(r.headers["Refresh-After"]) >= 1
                assert "Location" not in r.headers  # Go clients would follow it
                return None
            return [r]  # a Response of status >= 400 is false
        return wait_until(done, timeout, f"report of {scan_id}", interval=0.2)[0]

    # an unreachable registry: the report is a 500 naming the failure
    r = v1(srv, "POST", "/scan", json=scan_request(closed_port_url(), "a/b", "sha256:" + "1" * 64))
    assert r.status_code == 202, r.text
    assert r.headers["Content-Type"].startswith("application/vnd.scanner.adapter.scan.response")
    r2 = v1(srv, "GET", f"/scan/{r.json()['id']}/report", headers={"Accept": "text/csv"})
    assert r2.status_code == 501, r2.text
    r = report_of(r.json()["id"])
    assert r.status_code == 500 and "127.0.0.1" in r.json()["error"]["message"], r.text

    # a giant image: refused from its declared sizes, before a layer byte is read
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(cfg).hexdigest(), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + "2" * 64, "size": 100 << 30}]}).encode()
    mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()

    def giant(req):
        if "/manifests/" in req["path"]:
            return 200, {"Content-Type": OCI_MANIFEST}, manifest
        return 200, {}, b"\0" * 1024  # blobs (never asked for)
    reg = peers(giant)
    r = v1(srv, "POST", "/scan", json=scan_request(reg.url, "a/b", mdigest, "Basic eDp5"))
    assert r.status_code == 202, r.text
    r = report_of(r.json()["id"])
    assert r.status_code == 500 and "max_image_bytes" in r.json()["error"]["message"], r.text
    assert not any("/blobs/" in q["path"] for q in reg.requests)
    assert reg.requests[0]["headers"]["Authorization"] == "Basic eDp5"

    # Basic credentials are exchanged for a token when the registry asks for one
    def challenging(req):
        auth = req["headers"].get("Authorization", "")
        if req["path"].startswith("/token?"):
            if auth != "Basic eDp5":
                return 401, {}, b""
            return 200, {"Content-Type": "application/json"}, b'{"token":"T0K"}'
        if auth != "Bearer T0K":
            return 401, {"WWW-Authenticate":
                         f'Bearer realm="{chal.url}/token",service="reg x",scope="x"'}, b""
        return giant(req)
    chal = peers(challenging)
    r = v1(srv, "POST", "/scan", json=scan_request(chal.url, "a/b", mdigest, "Basic eDp5"))
    r = report_of(r.json()["id"])
    assert r.status_code == 500 and "max_image_bytes" in r.json()["error"]["message"], r.text
    tok = [q for q in chal.requests if q["path"].startswith("/token?")]
    assert len(tok) == 1 and tok[0]["path"] == "/token?service=reg%20x&scope=repository%3Aa%2Fb%3Apull"
    # a registry that refuses the exchange: the scan fails naming the 401
    refuse = peers(lambda req: (401, {"WWW-Authenticate": 'Basic realm="x"'}, b""))
    r = v1(srv, "POST", "/scan", json=scan_request(refuse.url, "a/b", mdigest, "Basic eDp5"))
    r = report_of(r.json()["id"])
    assert r.status_code == 500 and "refused" in r.json()["error"]["message"], r.text

    # a blob longer than its manifest declares: cut at the declared size
    small = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(cfg).hexdigest(), "size": len(cfg)},
        "layers": []}).encode()
    sdigest = "sha256:" + hashlib.sha256(small).hexdigest()
    longer = peers(lambda req: (200, {"Content-Type": OCI_MANIFEST}, small)
                   if "/manifests/" in req["path"] else (200, {}, b"\0" * (1 << 20)))
    r = v1(srv, "POST", "/scan", json=scan_request(longer.url, "a/b", sdigest))
    r = report_of(r.json()["id"])
    assert r.status_code == 500, r.text
    assert f"larger than {len(cfg)} bytes" in r.json()["error"]["message"], r.text

    # a manifest larger than the cap, and one that is not what was asked for
    big = peers(lambda req: (200, {"Content-Type": OCI_MANIFEST}, b" " * (5 << 20)))
    r = v1(srv, "POST", "/scan", json=scan_request(big.url, "a/b", mdigest))
    r = report_of(r.json()["id"])
    assert r.status_code == 500 and "larger than" in r.json()["error"]["message"], r.text
    liar = peers(lambda req: (200, {"Content-Type": OCI_MANIFEST}, b"{}"))
    r = v1(srv, "POST", "/scan", json=scan_request(liar.url, "a/b", mdigest))
    r = report_of(r.json()["id"])
    assert r.status_code == 500 and "is not sha256:" in r.json()["error"]["message"], r.text

    # one scan at a time here: a registry that never answers holds the slot; the next is 429;
    # the pull's timeout frees it
    release = threading.Event()

    def stuck(req):
        release.wait(30)
        return 404, {}, b""
    hang = peers(stuck)
    r = v1(srv, "POST", "/scan", json=scan_request(hang.url, "a/b", mdigest))
    assert r.status_code == 202, r.text
    first = r.json()["id"]
    r = v1(srv, "POST", "/scan", json=scan_request(hang.url, "a/b", mdigest))
    assert r.status_code == 429 and "max_concurrent" in r.json()["error"]["message"], r.text
    assert r.headers.get("Retry-After")
    t0 = time.monotonic()
    r = report_of(first, timeout=40)
    release.set()
    assert r.status_code == 500, r.text
    assert time.monotonic() - t0 < 30
    r = v1(srv, "POST", "/scan", json=scan_request(closed_port_url(), "a/b", mdigest))
    assert r.status_code == 202, r.text


def test_stop_while_waiting_on_adapter_requeues_job(servers, skopeo, pinned_bookworm, proj, peers):
    adapter = peers(adapter_handler())  # never ready
    srv = servers.new(env={"WHARF_SCAN_EXTERNAL_TIMEOUT": "3600"})
    s = Scans(srv, proj)
    s.api.create_project(proj)
    use_scanner(s.api, proj, register(s.api, "slow", adapter.url))
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert s.scan(digest).status_code == 202
    posts = lambda: [r for r in adapter.requests if r["path"] == "/api/v1/scan"]  # noqa: E731
    wait_until(lambda: posts(), 30, "the scan request to reach the adapter")
    # a stop does not wait for the adapter: the job is left Running, not failed
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 10
    srv.restart()
    s = Scans(srv, proj)
    o = s.overview(digest)
    assert o["scan_status"] in ("Pending", "Running"), o
    wait_until(lambda: len(posts()) >= 2, 30, "the requeued job to reach the adapter again")
    # the new attempt has a token of its own
    first = json.loads(posts()[0]["body"])["registry"]["authorization"]
    second = json.loads(posts()[1]["body"])["registry"]["authorization"]
    assert first != second


def test_adapter_api_needs_a_token(servers):
    for token in ("", "short", "has space in the middle of it"):
        srv = servers.new(env={"WHARF_SCAN_ADAPTER_ENABLED": "true",
                               "WHARF_SCAN_ADAPTER_TOKEN": token}, start=False)
        with pytest.raises(RuntimeError) as e:
            srv.start()
        assert "scan.adapter.token" in str(e.value)
    srv = servers.new(env={"WHARF_SCAN_REGISTRY_URL": "ftp://x"}, start=False)
    with pytest.raises(RuntimeError) as e:
        srv.start()
    assert "scan.registry_url" in str(e.value)
