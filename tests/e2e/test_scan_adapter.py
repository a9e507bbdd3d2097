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
import csv
import hashlib
import io
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from apiclient import Api, describe
from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER
from test_scan_registry import (DATA, MIME, REPO, Scans, cli_report, expected_summary,
                                import_db, keys)

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


# ---- the security hub and the CVE export, as an administrator reads them ----

SEV_CNT = {"Critical": "critical_cnt", "High": "high_cnt", "Medium": "medium_cnt",
           "Low": "low_cnt", "Negligible": "none_cnt", "Unknown": "unknown_cnt"}


def hub_summary(api):
    return api.ok(api.get("/security/summary", params={
        "with_dangerous_cve": "true", "with_dangerous_artifact": "true"})).json()


def assert_summary_of(summ, reports):
    """The hub's totals are those of these reports' items, counted here."""
    items = [v for rep in reports for v in rep["vulnerabilities"]]
    assert summ["scanned_cnt"] == len(reports)
    assert summ["total_vuls"] == len(items)
    assert summ["fixable_cnt"] == sum(1 for v in items if v.get("fix_version"))
    for sev, key in SEV_CNT.items():
        assert summ[key] == sum(1 for v in items if v["severity"] == sev), (sev, summ)


def hub_rows(api, digest):
    """Every /security/vul row of the artifact, page by page, as (id, package, version,
    severity, fixed version) with repeats kept."""
    rows, page = [], 1
    while True:
        r = api.get("/security/vul", params={"q": f"digest={digest}", "page_size": "100",
                                             "page": str(page)})
        assert r.status_code == 200, describe(r)
        got = r.json()
        rows += [(v["cve_id"], v["package"], v["version"], v["severity"], v["fixed_version"])
                 for v in got]
        if len(rows) >= int(r.headers["X-Total-Count"]) or not got:
            return sorted(rows)
        page += 1


def report_rows(rep):
    return sorted((v["id"], v["package"], v["version"], v["severity"], v.get("fix_version", ""))
                  for v in rep["vulnerabilities"])


def export_csv(api, pid):
    """The project's CVE export (a job, then its CSV) as a list of dicts."""
    r = api.post("/export/cve", {"job_name": "ext", "projects": [pid]},
                 headers={"X-Scan-Data-Type": MIME})
    assert r.status_code == 200, describe(r)
    eid = r.json()["id"]

    def finished():
        e = api.ok(api.get(f"/export/cve/execution/{eid}")).json()
        return e if e["status"] in ("Success", "Error") else None
    e = wait_until(finished, 60, "the export job")
    assert e["status"] == "Success", e
    r = api.get(f"/export/cve/download/{eid}")
    assert r.status_code == 200, describe(r)
    return list(csv.DictReader(io.StringIO(r.text)))


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


def test_external_findings_in_hub_and_export_replaced_by_rescan(servers, skopeo,
                                                               pinned_bookworm, proj):
    """An artifact scanned by an external adapter (a second wharf) is in the security hub
    and the CVE export as the built-in scanner's are; a re-match of the registry's
    database leaves its findings alone and says so; a new scan with other results
    replaces its rows."""
    scanner = servers.new(env=adapter_env(), name="adapter")
    import_db(scanner)
    srv = servers.new(name="registry")
    s = Scans(srv, proj)
    pid = s.api.create_project(proj)
    use_scanner(s.api, proj, register(s.api, "second-wharf", scanner.url))
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    admin = s.api
    assert s.scan(digest).status_code == 202
    o1 = s.wait_status(digest, "Success", "Error")
    assert o1["scan_status"] == "Success", log_of(srv, s, o1["report_id"], digest)
    rep1 = s.vulnerabilities(digest)[MIME]
    assert rep1["vulnerabilities"] and o1["summary"] == expected_summary(rep1)
    ids1 = {v["id"] for v in rep1["vulnerabilities"]}
    CVE, TAR_CVE, DPKG_CVE = "CVE-2023-45853", "CVE-2005-2541", "CVE-2022-1664"
    assert {CVE, TAR_CVE} <= ids1 and DPKG_CVE not in ids1

    # the hub: totals per severity, the most dangerous CVE and artifact, every row
    summ = hub_summary(admin)
    assert_summary_of(summ, [rep1])
    assert summ["dangerous_cves"][0]["cve_id"] == CVE
    assert summ["dangerous_artifacts"][0]["digest"] == digest
    r = admin.get("/security/vul", params={"q": f"cve_id={CVE}"})
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "1", describe(r)
    item = r.json()[0]
    assert (item["digest"], item["repository_name"], item["project_id"]) == (
        digest, f"{proj}/{REPO}", pid)
    assert (item["package"], item["severity"]) == ("zlib1g", "Critical")
    assert item["cvss_v3_score"] == pytest.approx(9.8)
    assert hub_rows(admin, digest) == report_rows(rep1)

    # the CVE export lists them, the scanner named
    rows = export_csv(admin, pid)
    assert sorted((x["CVE"], x["Package"], x["Current Version"], x["Severity"],
                   x["Fixed in version"]) for x in rows) == report_rows(rep1)
    assert all(x["Scanner"] == "wharf" and x["Artifact Digest"] == digest for x in rows)
    zlib = next(x for x in rows if x["CVE"] == CVE)
    assert zlib["CVSS V3 Score"] == "9.8" and zlib["CWE Ids"] == "CWE-190"

    # a database imported into the registry: its re-match cannot evaluate the external
    # report (no inventory), leaves it and its rows as they are, and says so
    srv.mark_log()
    p = srv.cli("vulndb", "import", os.path.join(DATA, "rematch"), timeout=300)
    assert p.returncode == 0, p.stderr
    wait_until(lambda: "re-match: 1 scanned artifacts have no stored package inventory"
               in srv.log_since_mark(), 60, "the re-match's line on reports it cannot re-match")
    log = srv.log_since_mark()
    assert "scan them again (scan all) to refresh them" in log, log
    assert "vulnerabilities added" not in log, log
    assert s.overview(digest)["report_id"] == o1["report_id"]
    assert hub_rows(admin, digest) == report_rows(rep1)
    assert admin.ok(admin.get("/vulnerabilities/changes", params={"since": "0"})).json() == []

    # the adapter's database changes (drops two CVEs, adds one): a new scan replaces the rows
    p = scanner.cli("vulndb", "import", os.path.join(DATA, "rematch"), timeout=300)
    assert p.returncode == 0, p.stderr
    assert s.scan(digest).status_code == 202
    o2 = s.wait_status(digest, "Success", "Error")
    assert o2["scan_status"] == "Success" and o2["report_id"] != o1["report_id"]
    rep2 = s.vulnerabilities(digest)[MIME]
    assert {v["id"] for v in rep2["vulnerabilities"]} == (ids1 - {CVE, TAR_CVE}) | {DPKG_CVE}
    assert hub_rows(admin, digest) == report_rows(rep2)  # replaced, nothing doubled
    assert_summary_of(hub_summary(admin), [rep2])
    assert admin.get("/security/vul", params={"q": f"cve_id={CVE}"}).headers[
        "X-Total-Count"] == "0"
    r = admin.get("/security/vul", params={"q": f"cve_id={DPKG_CVE}"})
    assert r.headers["X-Total-Count"] == "1", describe(r)
    assert r.json()[0]["package"] == "dpkg" and r.json()[0]["severity"] == "High"
    rows = export_csv(admin, pid)
    assert sorted((x["CVE"], x["Package"], x["Current Version"], x["Severity"],
                   x["Fixed in version"]) for x in rows) == report_rows(rep2)

    # gone with the artifact
    assert admin.delete(f"{s.base}/{digest}").status_code == 200
    assert admin.get("/security/vul").headers["X-Total-Count"] == "0"


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
    srv = servers.new(env={"WHARF_SCAN_EXTERNAL_TIMEOUT": "20", "WHARF_SCAN_MAX_ATTEMPTS": "2",
                           "WHARF_SCAN_RETRY_DELAY": "1"})
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
    if case == "bad-status":
        # a 5xx may pass: tried again (scan.max_attempts), then given up
        assert log.startswith("attempt 1 of 2 failed: scanner hostile: "), log
        assert "attempt 2 of 2 failed: scanner hostile: " in log, log
        assert log.rstrip().endswith("gave up after 2 attempts") and expect in log, log
        assert sum(r["path"] == "/api/v1/scan" for r in adapter.requests) == 2
    else:
        # what the adapter answered cannot change on its own: not tried again
        assert log.startswith("scanner hostile: ") and expect in log, log
    assert s.vulnerabilities(digest) == {}
    assert srv.running()


def peak_rss_mb(srv) -> float:
    """The server's peak resident memory so far (VmHWM), in MiB."""
    with open(f"/proc/{srv.proc.pid}/status") as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    return kb / 1024


GOOD_REPORT = {"vulnerabilities": [
    {"id": "CVE-2099-0001", "package": "libfoo", "version": "1.0", "fix_version": "1.1",
     "severity": "Critical", "description": "d" * 100_000, "links": ["https://x/1"],
     "cwe_ids": ["CWE-79"], "preferred_cvss": {"score_v3": 9.1, "vector_v3": "CVSS:3.1/AV:N"}},
    {"id": "CVE-2099-0002", "package": "libbar", "version": "2", "severity": "Low"},
]}
TINY = b'{"id":"C","package":"p","version":"1","severity":"Low"}'


@pytest.mark.parametrize("case", ["million-items", "long-id", "long-package", "deep"])
def test_hostile_report_refused_nothing_written(servers, skopeo, pinned_bookworm, proj, peers,
                                                case):
    """A report from an adapter that first answered well: a million items (within the
    64 MiB cap), an oversized id or package, nesting without end. The scan ends in Error
    with a log saying why, and the hub, the export and the report keep the first scan's."""
    hostile = {
        "million-items": b'{"vulnerabilities":[' + b",".join([TINY] * 1_000_000) + b"]}",
        "long-id": json.dumps({"vulnerabilities": [
            {"id": "CVE-2099-" + "9" * 2000, "package": "p", "version": "1",
             "severity": "Low"}]}).encode(),
        "long-package": json.dumps({"vulnerabilities": [
            {"id": "CVE-2099-0003", "package": "p" * (1 << 20), "version": "1",
             "severity": "Low"}]}).encode(),
        "deep": b'{"vulnerabilities":[{"id":"CVE-2099-0004","package":"p","version":"1",'
                b'"severity":"Low","vendor_attributes":' + b'{"a":' * 100 + b'1' + b'}' * 100
                + b'}]}',
    }[case]
    expect = {"million-items": "the report lists more than 100000 vulnerabilities",
              "long-id": "vulnerability 0 of the report: id is longer than 1024 bytes",
              "long-package": "vulnerability 0 of the report: package is longer than 1024 bytes",
              "deep": "the report is nested deeper than 32 levels"}[case]
    assert len(hostile) < 64 << 20
    answer = {"report": json.dumps(GOOD_REPORT).encode()}  # what the adapter answers now

    def handler(req):
        return adapter_handler(report=(200, {}, answer["report"]))(req)
    adapter = peers(handler)
    srv = servers.new(env={"WHARF_SCAN_EXTERNAL_TIMEOUT": "60"})
    s = Scans(srv, proj)
    pid = s.api.create_project(proj)
    use_scanner(s.api, proj, register(s.api, "hostile", adapter.url))
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    admin = s.api

    # a good report first: its rows, the description cut at 64 KiB, the scanner named
    assert s.scan(digest).status_code == 202
    o1 = s.wait_status(digest, "Success", "Error")
    assert o1["scan_status"] == "Success", log_of(srv, s, o1["report_id"], digest)
    rep1 = s.vulnerabilities(digest)[MIME]
    assert hub_rows(admin, digest) == report_rows(GOOD_REPORT)
    summ1 = hub_summary(admin)
    assert_summary_of(summ1, [GOOD_REPORT])
    r = admin.get("/security/vul", params={"q": "cve_id=CVE-2099-0001"})
    v = r.json()[0]
    assert v["desc"] == "d" * (64 << 10) and v["cvss_v3_score"] == pytest.approx(9.1)
    assert v["links"] == ["https://x/1"]
    rows1 = export_csv(admin, pid)
    assert {x["Scanner"] for x in rows1} == {"Hostile"}
    assert {x["CVE"] for x in rows1} == {"CVE-2099-0001", "CVE-2099-0002"}

    # then the hostile one: Error, a log naming the cap, nothing of it written
    answer["report"] = hostile
    srv.mark_log()
    peak = peak_rss_mb(srv)
    assert s.scan(digest).status_code == 202
    o2 = s.wait_status(digest, "Error", "Success")
    # refused before a parse: a million items parsed would cost about 900 MiB
    assert peak_rss_mb(srv) - peak < 400, (peak, peak_rss_mb(srv))
    assert o2["scan_status"] == "Error" and o2["report_id"] != o1["report_id"]
    log = log_of(srv, s, o2["report_id"], digest)
    assert log.startswith("scanner hostile: ") and expect in log, log
    line = f"scan {o2['report_id']} of {digest} failed: scanner hostile: "
    server_log = srv.log_since_mark()
    assert any(line in l and expect in l for l in server_log.splitlines()), server_log[-3000:]
    assert s.vulnerabilities(digest)[MIME] == rep1
    assert hub_rows(admin, digest) == report_rows(GOOD_REPORT)
    assert hub_summary(admin) == summ1
    assert admin.get("/security/vul", params={"q": "package=p"}).headers["X-Total-Count"] == "0"
    assert sorted(x["CVE"] for x in export_csv(admin, pid)) == sorted(x["CVE"] for x in rows1)
    assert srv.running()


def test_adapter_down_and_registration_rules(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new(env={"WHARF_SCAN_MAX_ATTEMPTS": "2", "WHARF_SCAN_RETRY_DELAY": "1"})
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
    # down may pass: tried again, then given up
    assert o["scan_status"] == "Error", log
    assert log.startswith("attempt 1 of 2 failed: scanner down: "), log
    assert "attempt 2 of 2 failed: scanner down: " in log, log

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
