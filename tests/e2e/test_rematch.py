"""End-to-end tests of re-matching, the security hub and the CVE export
(docs/scanning.md): after `wharf vulndb import` of a database that drops two
CVEs and adds one (tests/data/vulndb/rematch, derived from the fixture), the
stored inventory of the pinned bookworm image is matched again without
reading a layer (its layer blobs and the layer cache are deleted first): the
overview, the report, the pull gate's verdict, GET /vulnerabilities/changes,
the log, the security hub and the CSV export all follow; importing the first
database again brings the CVE and the 412 back.  The background update
(scan.db_update_interval) is tested against a feed on a local HTTP server and
against a feed that cannot be reached.  Hostile inputs: bad `since`, huge
page_size, bad q, non-administrators on the hub, another user's export.
"""
import csv
import datetime
import functools
import http.server
import io
import json
import os
import socket
import threading

import pytest

from apiclient import Api, describe
from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER, Registry
from test_scan_registry import DATA, MIME, REPO, Scans, import_db, proj  # noqa: F401 (fixture)

CVE = "CVE-2023-45853"       # zlib, Critical: dropped by the update
TAR_CVE = "CVE-2005-2541"    # tar: dropped by the update
DPKG_CVE = "CVE-2022-1664"   # dpkg: added by the update
GATED = {"prevent_vul": "true", "severity": "critical", "auto_scan": "true"}
TIMEOUT = 60.0


def ids(rep):
    return {v["id"] for v in rep["vulnerabilities"]}


def layer_blobs(srv, image):
    """Paths of the image's layer blobs in the server's store."""
    manifest = json.loads((image.layout / "blobs" / "sha256" / image.manifest_digest[7:]).read_bytes())
    return [os.path.join(srv.data_dir, "blobs", "sha256", l["digest"][7:9], l["digest"][7:])
            for l in manifest["layers"]]


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def changes(api, since, **params):
    r = api.get("/vulnerabilities/changes", params={"since": since, **params})
    assert r.status_code == 200, describe(r)
    return r


def wait_new_report(s, digest, old_id):
    def done():
        o = s.overview(digest)
        return o if o and o["report_id"] != old_id and o["scan_status"] == "Success" else None
    return wait_until(done, TIMEOUT, "the re-match's new report", interval=0.1)


def test_rematch_without_layers_changes_overview_gate_changes_and_hub(
        servers, skopeo, pinned_bookworm, proj):
    srv = servers.new()
    import_db(srv)
    s = Scans(srv, proj)
    pid = s.api.create_project(proj, metadata=GATED)
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    o1 = s.wait_status(digest, "Success", "Error")
    assert o1["scan_status"] == "Success"
    rep1 = s.vulnerabilities(digest)[MIME]
    assert {CVE, TAR_CVE} <= ids(rep1) and DPKG_CVE not in ids(rep1)
    reg = Registry(srv.url)
    assert reg.get_manifest(f"{proj}/{REPO}", "1").status_code == 412

    # the hub sees the stored findings
    admin = s.api
    summ = admin.ok(admin.get("/security/summary", params={
        "with_dangerous_cve": "true", "with_dangerous_artifact": "true"})).json()
    counts = o1["summary"]["summary"]
    assert summ["total_artifact"] >= 1 and summ["scanned_cnt"] == 1
    assert summ["critical_cnt"] == counts.get("Critical", 0)
    assert summ["high_cnt"] == counts.get("High", 0)
    assert summ["fixable_cnt"] == o1["summary"]["fixable"]
    assert summ["total_vuls"] == o1["summary"]["total"]
    assert summ["dangerous_cves"][0]["cve_id"] == CVE
    assert summ["dangerous_cves"][0]["cvss_score_v3"] == pytest.approx(9.8)
    assert summ["dangerous_artifacts"][0]["digest"] == digest
    r = admin.get("/security/vul", params={"q": f"cve_id={CVE}", "with_tag": "true"})
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "1", describe(r)
    item = r.json()[0]
    assert (item["digest"], item["repository_name"], item["tags"], item["project_id"]) == (
        digest, f"{proj}/{REPO}", ["1"], pid)
    assert item["package"] == "zlib1g" and item["severity"] == "Critical"
    r = admin.get("/security/vul", params={"q": "cvss_score_v3=[9~10]", "page_size": "100"})
    assert {v["cve_id"] for v in r.json()} == {CVE}
    total = int(admin.get("/security/vul").headers["X-Total-Count"])
    assert total == o1["summary"]["total"]

    # no layer can be read any more: the re-match must not need one
    for p in layer_blobs(srv, pinned_bookworm):
        os.unlink(p)
    cache = os.path.join(srv.data_dir, "scan-cache")
    for root, _dirs, files in os.walk(cache):
        for f in files:
            os.unlink(os.path.join(root, f))
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    p = srv.cli("vulndb", "import", os.path.join(DATA, "rematch"), timeout=300)
    assert p.returncode == 0, p.stderr
    o2 = wait_new_report(s, digest, o1["report_id"])
    rep2 = s.vulnerabilities(digest)[MIME]
    assert DPKG_CVE in ids(rep2) and CVE not in ids(rep2) and TAR_CVE not in ids(rep2)
    assert ids(rep2) == (ids(rep1) - {CVE, TAR_CVE}) | {DPKG_CVE}
    assert o2["summary"]["total"] == o1["summary"]["total"] - 1
    assert "Critical" not in o2["summary"]["summary"]
    assert [v["artifact_digests"] for v in rep2["vulnerabilities"]][0] == [digest]
    # the gate: nothing critical any more, the pull goes through
    assert reg.get_manifest(f"{proj}/{REPO}", "1").status_code == 200
    assert reg.head(f"/v2/{proj}/{REPO}/manifests/{digest}").status_code == 200
    log = srv.log_text()
    assert f"re-match: {proj}/{REPO}@{digest}: vulnerabilities added [\"{DPKG_CVE}\"]" in log
    assert "layers read" not in log.split("re-match: the vulnerability database changed")[-1]

    # the change, by RFC 3339 and by unix milliseconds
    got = changes(admin, rfc3339(t0)).json()
    assert len(got) == 1
    ch = got[0]
    assert (ch["digest"], ch["repository_name"], ch["project_id"], ch["tags"]) == (
        digest, f"{proj}/{REPO}", pid, ["1"])
    assert ch["added"] == [DPKG_CVE] and sorted(ch["removed"]) == sorted([CVE, TAR_CVE])
    ms = int(t0.timestamp() * 1000)
    assert changes(admin, str(ms)).json() == got
    assert changes(admin, str(ms + 3_600_000)).json() == []
    # the hub follows
    assert admin.get("/security/vul", params={"q": f"cve_id={CVE}"}).headers["X-Total-Count"] == "0"
    r = admin.get("/security/vul", params={"q": f"cve_id={DPKG_CVE},severity=High"})
    assert r.headers["X-Total-Count"] == "1", describe(r)

    # the first database again: the CVE and the 412 come back
    t1 = datetime.datetime.now(datetime.timezone.utc)
    import_db(srv, "debian")
    wait_new_report(s, digest, o2["report_id"])
    assert CVE in ids(s.vulnerabilities(digest)[MIME])
    assert reg.get_manifest(f"{proj}/{REPO}", "1").status_code == 412
    got = changes(admin, rfc3339(t1)).json()
    assert len(got) == 1 and sorted(got[0]["added"]) == sorted([CVE, TAR_CVE])
    assert got[0]["removed"] == [DPKG_CVE]
    assert len(changes(admin, rfc3339(t0)).json()) == 2

    # the CVE export of the project: a job, then its CSV, once
    r = admin.post("/export/cve", {"job_name": "j", "projects": [pid], "cveIds": "CVE-2023-*"},
                   headers={"X-Scan-Data-Type": MIME})
    assert r.status_code == 200, describe(r)
    eid = r.json()["id"]

    def finished():
        e = admin.ok(admin.get(f"/export/cve/execution/{eid}")).json()
        return e if e["status"] in ("Success", "Error") else None
    e = wait_until(finished, TIMEOUT, "the export job")
    assert e["status"] == "Success" and e["file_present"] and e["user_name"] == ADMIN_USER
    lst = admin.ok(admin.get("/export/cve/executions")).json()["items"]
    assert [x["id"] for x in lst] == [eid]
    r = admin.get(f"/export/cve/download/{eid}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), describe(r)
    assert f"scandata_export_{eid}.csv" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {x["CVE"] for x in rows} == {i for i in ids(s.vulnerabilities(digest)[MIME])
                                        if i.startswith("CVE-2023-")}
    assert all(x["Repository"] == f"{proj}/{REPO}" and x["Artifact Digest"] == digest
               for x in rows)
    zlib = next(x for x in rows if x["CVE"] == CVE)
    assert (zlib["Package"], zlib["Severity"], zlib["CVSS V3 Score"]) == ("zlib1g", "Critical", "9.8")
    assert zlib["CVSS V3 Vector"] == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert zlib["CWE Ids"] == "CWE-190" and zlib["Scanner"] == "wharf"
    assert admin.get(f"/export/cve/download/{eid}").status_code == 404  # gone once downloaded

    # gone with the artifact: findings, changes
    assert admin.delete(f"{s.base}/{digest}").status_code == 200
    assert admin.get("/security/vul").headers["X-Total-Count"] == "0"
    assert changes(admin, "0").json() == []


def test_rematch_hostile_inputs_and_who_reads_what(servers, proj):
    srv = servers.new()
    admin = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    pid = admin.create_project(proj)  # private
    admin.create_user("eve")
    admin.create_user("bob")
    admin.add_member(proj, "bob", 1)
    admin.create_user("gus")
    admin.add_member(proj, "gus", 3)  # guest: may read, may not export
    gus = Api(srv.url, auth=("gus", "Passw0rd-x"))
    eve = Api(srv.url, auth=("eve", "Passw0rd-x"))
    bob = Api(srv.url, auth=("bob", "Passw0rd-x"))
    anon = Api(srv.url)

    for bad in ("yesterday", "2026-13-45T00:00:00Z", "1e9", "2026-01-01T00:00:00",
                "2026-01-01T00:00:00+0100", "9" * 30, "9" * 16, "-5", "2026-01-01T00:00:00.Z",
                "2026-01-01T00:00:00Zjunk"):
        r = admin.get("/vulnerabilities/changes", params={"since": bad})
        assert r.status_code == 400, (bad, describe(r))
        assert r.json()["errors"][0]["code"] == "BAD_REQUEST"
    for good in ("0", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+02:00"):
        assert changes(admin, good).status_code == 200
    r = admin.get("/vulnerabilities/changes", params={"page_size": "100000"})
    assert r.status_code == 422, describe(r)
    r = admin.get("/security/vul", params={"page_size": "101"})
    assert r.status_code == 422, describe(r)
    assert changes(anon, "0").status_code == 200  # public projects only

    # the hub is the administrators'
    for who, status in ((anon, 401), (eve, 403), (bob, 403)):
        assert who.get("/security/summary").status_code == status
        assert who.get("/security/vul").status_code == status
    for q in ("nope=1", "cve_id=~CVE", "cvss_score_v3=5", "cvss_score_v3=[9~1]",
              "cvss_score_v3=[a~b]", "cvss_score_v3=[0~11]", "severity=Awful", "project_id=x",
              "x" * 5000):
        r = admin.get("/security/vul", params={"q": q})
        assert r.status_code == 400, (q, describe(r))
    r = admin.get("/security/vul", params={"q": "repository_name=no/such"})
    assert r.status_code == 200 and r.json() == []

    # the export: the header, one existing project, a role in it, the owner only
    body = {"projects": [pid]}
    mime = {"X-Scan-Data-Type": MIME}
    assert admin.post("/export/cve", body).status_code == 400
    assert admin.post("/export/cve", {"projects": [pid, pid]}, headers=mime).status_code == 400
    assert admin.post("/export/cve", {"projects": []}, headers=mime).status_code == 400
    assert admin.post("/export/cve", {"projects": [999999]}, headers=mime).status_code == 404
    assert admin.post("/export/cve", {"projects": [pid], "tags": "a b"},
                      headers=mime).status_code == 400
    assert admin.post("/export/cve", {"projects": [pid], "cveIds": "C" * 5000},
                      headers=mime).status_code == 400
    assert anon.post("/export/cve", body, headers=mime).status_code == 401
    assert eve.post("/export/cve", body, headers=mime).status_code == 403
    assert gus.post("/export/cve", body, headers=mime).status_code == 403
    r = bob.post("/export/cve", body, headers=mime)
    assert r.status_code == 200, describe(r)
    eid = r.json()["id"]
    wait_until(lambda: bob.get(f"/export/cve/execution/{eid}").json()["status"] == "Success",
               TIMEOUT, "bob's export")
    for who in (eve, admin):
        assert who.get(f"/export/cve/execution/{eid}").status_code == 403
        assert who.get(f"/export/cve/download/{eid}").status_code == 403
        assert who.get("/export/cve/executions").json() == {"items": []}
    assert admin.get("/export/cve/download/abc").status_code == 400
    assert admin.get("/export/cve/download/999999").status_code == 404
    r = bob.get(f"/export/cve/download/{eid}")
    assert r.status_code == 200 and r.text.startswith("RowId,Scanner,Repository"), describe(r)
    # at most 10 kept per user: the 11th is refused until one is downloaded
    kept = [bob.post("/export/cve", body, headers=mime) for _ in range(10)]
    assert [k.status_code for k in kept] == [200] * 10
    r = bob.post("/export/cve", body, headers=mime)
    assert r.status_code == 429 and r.json()["errors"][0]["code"] == "TOO_MANY_REQUEST", describe(r)
    last = kept[-1].json()["id"]
    wait_until(lambda: bob.get(f"/export/cve/execution/{last}").json()["status"] == "Success",
               TIMEOUT, "the tenth export")
    assert bob.get(f"/export/cve/download/{last}").status_code == 200
    assert bob.post("/export/cve", body, headers=mime).status_code == 200


class _Feed(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def feed_server():
    """A local HTTP server over tests/data/vulndb: the feeds of the background update."""
    handler = functools.partial(_Feed, directory=DATA)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_background_update_from_local_feed_and_failure(servers, feed_server):
    feeds = " ".join(f"{feed_server}/{f}" for f in (
        "debian/tracker-bookworm-fixture.json", "nvd/CVE-2023-45853.json"))
    srv = servers.new(env={"WHARF_SCAN_DB_UPDATE_INTERVAL": "3600", "WHARF_VULNDB_FEEDS": feeds})
    wait_until(lambda: "vulndb: background update done: 2 files" in srv.log_text(), TIMEOUT,
               "the background update")
    # the re-matcher sees the file the update wrote, as after an import
    wait_until(lambda: "re-match: the vulnerability database changed" in
               srv.log_text().split("vulndb: background update done")[-1], TIMEOUT,
               "the re-match after the background update")
    assert os.path.exists(os.path.join(srv.data_dir, "vulndb.sqlite"))
    p = srv.cli("vulndb", "status")
    assert p.returncode == 0 and "debian" in p.stdout, p.stdout + p.stderr
    srv.stop()

    # an unreachable feed: the failure is logged, the next attempt is planned
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    bad = servers.new(env={"WHARF_SCAN_DB_UPDATE_INTERVAL": "60",
                           "WHARF_VULNDB_FEEDS": f"http://127.0.0.1:{port}/feed.json"})
    wait_until(lambda: "vulndb: background update failed" in bad.log_text(), TIMEOUT,
               "the failed update to be logged")
    assert "(next attempt in 60 s)" in bad.log_text()
    assert not os.path.exists(os.path.join(bad.data_dir, "vulndb.sqlite"))

    # 0: never
    off = servers.new(env={"WHARF_SCAN_DB_UPDATE_INTERVAL": "0",
                           "WHARF_VULNDB_FEEDS": f"http://127.0.0.1:{port}/feed.json"})
    assert "background update off" in wait_until(
        lambda: off.log_text() if "background update" in off.log_text() else None, TIMEOUT,
        "the scan pool's start line")
    assert "vulndb: background update (" not in off.log_text()
