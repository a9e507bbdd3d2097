"""End-to-end tests of the scanner inside the registry (docs/scanning.md):
scan on push in a project with auto_scan, Harbor's scan API (scan, stop,
log, the vulnerabilities addition, scan_overview) and the durable job queue.

Each test has servers of its own (the vulnerability database lives in the
data directory).  The image is the Debian bookworm minbase image pinned in
the repository, pushed with skopeo; the database is the fixture database in
tests/data/vulndb, imported with `wharf vulndb import`.  What the registry
reports is compared with what `wharf scan` reports for the same image and
the same database file.
"""
import hashlib
import json
import os
import shutil

import pytest

from apiclient import Api, describe, enc_repo
from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "vulndb")
MIME = "application/vnd.security.vulnerability.report; version=1.1"
SCAN_TIMEOUT = 120.0
REPO = "bookworm"


def import_db(srv, *feeds):
    feeds = feeds or ("debian", "nvd", "alpine", "osv")
    p = srv.cli("vulndb", "import", *[os.path.join(DATA, f) for f in feeds], timeout=300)
    assert p.returncode == 0, p.stderr


def cli_report(srv, image) -> dict:
    """`wharf scan --format json` of the image with the server's own database."""
    p = srv.cli("scan", "--format", "json", "--no-cache",
                "--db", os.path.join(srv.data_dir, "vulndb.sqlite"), image.oci, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    return doc[MIME]


def index_layout(image, dst) -> str:
    """A copy of the image's layout with an image index `idx` whose one child
    (linux/amd64) is the image: returns the skopeo source."""
    shutil.copytree(image.layout, dst)
    with open(os.path.join(dst, "index.json")) as f:
        top = json.load(f)
    desc = next(m for m in top["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "bookworm")
    child = {k: desc[k] for k in ("mediaType", "digest", "size")}
    child["platform"] = {"os": "linux", "architecture": "amd64"}
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [child]}).encode()
    digest = hashlib.sha256(body).hexdigest()
    with open(os.path.join(dst, "blobs", "sha256", digest), "wb") as f:
        f.write(body)
    top["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                             "digest": "sha256:" + digest, "size": len(body),
                             "annotations": {"org.opencontainers.image.ref.name": "idx"}})
    with open(os.path.join(dst, "index.json"), "w") as f:
        json.dump(top, f)
    return f"oci:{dst}:idx"


def expected_summary(rep) -> dict:
    """Harbor's overview summary of a report, counted here from its items."""
    counts = {}
    for v in rep["vulnerabilities"]:
        counts[v["severity"]] = counts.get(v["severity"], 0) + 1
    return {"total": len(rep["vulnerabilities"]),
            "fixable": sum(1 for v in rep["vulnerabilities"] if v.get("fix_version")),
            "summary": counts}


def keys(rep) -> set:
    return {(v["id"], v["package"], v["version"], v["severity"], v.get("fix_version", ""))
            for v in rep["vulnerabilities"]}


@pytest.fixture
def proj(unique) -> str:
    """A project name unique to the test (Harbor's rules: no doubled separators)."""
    return "scan-" + hashlib.sha256(unique.encode()).hexdigest()[:12]


class Scans:
    def __init__(self, srv, project):
        self.srv = srv
        self.api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
        self.project = project
        self.base = f"/projects/{project}/repositories/{enc_repo(REPO)}/artifacts"

    def push(self, skopeo, image, tag="1"):
        skopeo.copy(image.oci, f"docker://{self.srv.host}/{self.project}/{REPO}:{tag}")

    def artifact(self, ref):
        r = self.api.get(f"{self.base}/{ref}", params={"with_scan_overview": "true"})
        assert r.status_code == 200, describe(r)
        return r.json()

    def overview(self, ref):
        return self.artifact(ref).get("scan_overview", {}).get(MIME)

    def wait_status(self, ref, *statuses):
        def done():
            o = self.overview(ref)
            return o if o and o["scan_status"] in statuses else None
        return wait_until(done, SCAN_TIMEOUT, f"scan of {ref} to be {'/'.join(statuses)}",
                          interval=0.1)

    def scan(self, ref):
        return self.api.post(f"{self.base}/{ref}/scan")

    def stop(self, ref):
        return self.api.post(f"{self.base}/{ref}/scan/stop")

    def vulnerabilities(self, ref, **kw):
        r = self.api.get(f"{self.base}/{ref}/additions/vulnerabilities", **kw)
        assert r.status_code == 200, describe(r)
        return r.json()


def assert_matches_cli(o, rep, digest):
    assert o["scan_status"] == "Success"
    assert o["summary"] == expected_summary(rep)
    assert o["severity"] == rep["severity"]
    assert o["complete_percent"] == 100
    assert o["scanner"]["name"] == "wharf"
    assert o["start_time"] <= o["end_time"]
    assert o["duration"] >= 0 and len(o["report_id"]) == 32


def test_auto_scan_on_push_matches_wharf_scan(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new()
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true"})
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    o = s.wait_status(digest, "Success", "Error")
    rep = cli_report(srv, pinned_bookworm)
    assert rep["vulnerabilities"], "the fixture database finds nothing in the pinned image"
    assert_matches_cli(o, rep, digest)

    # the same overview by tag and in the list; the link to the report
    art = s.artifact("1")
    assert art["scan_overview"][MIME] == o
    assert art["addition_links"]["vulnerabilities"] == {
        "href": f"/api/v2.0/projects/{proj}/repositories/{REPO}/artifacts/{digest}"
                "/additions/vulnerabilities",
        "absolute": False}
    r = s.api.get(s.base, params={"with_scan_overview": "true"})
    assert r.status_code == 200, describe(r)
    assert [a["scan_overview"][MIME]["report_id"] for a in r.json()] == [o["report_id"]]
    r = s.api.get(s.base)
    assert "scan_overview" not in r.json()[0]  # only when asked

    # the report: Harbor's shape, the findings `wharf scan` reports
    doc = s.vulnerabilities(digest)
    assert list(doc) == [MIME]
    got = doc[MIME]
    assert keys(got) == keys(rep)
    assert got["severity"] == rep["severity"]
    assert got["scanner"] == rep["scanner"]
    for v in got["vulnerabilities"]:
        assert v["artifact_digests"] == [digest]
        for k in ("id", "package", "version", "severity", "description", "links",
                  "preferred_cvss", "cwe_ids"):
            assert k in v, (k, v)
    # a client that accepts only the native 1.0 report gets none
    assert s.vulnerabilities(digest, headers={
        "X-Accept-Vulnerabilities":
            "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"}) == {}

    # the scan log of the report
    r = s.api.get(f"{s.base}/{digest}/scan/{o['report_id']}/log")
    assert r.status_code == 200, describe(r)
    r = s.api.get(f"{s.base}/{digest}/scan/{'0' * 32}/log")
    assert r.status_code == 404, describe(r)

    # the same image in another repository: its layers' inventories come from
    # the per-layer cache, no layer is read again
    skopeo.copy(pinned_bookworm.oci, f"docker://{srv.host}/{proj}/again:1")
    again = Scans(srv, proj)
    again.base = f"/projects/{proj}/repositories/again/artifacts"
    o2 = again.wait_status(digest, "Success", "Error")
    assert o2["report_id"] != o["report_id"]
    assert o2["summary"] == o["summary"]
    assert f"scan {o2['report_id']}: {digest}: 0 layers read, 1 from cache" in srv.log_text()


def test_no_auto_scan_scan_api_and_database_picked_up(servers, skopeo, pinned_bookworm, proj):
    # two workers; the first job taken is held Running until the server stops
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "2", "WHARF_FAILPOINTS": "scan.hold=1:EIO"})
    s = Scans(srv, proj)
    s.api.create_project(proj)  # auto_scan off
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    art = s.artifact(digest)
    assert "scan_overview" not in art  # never scanned
    assert s.vulnerabilities(digest) == {}
    assert "vulnerabilities" in art["addition_links"]

    # stop with nothing to stop; unknown artifacts
    assert s.stop(digest).status_code == 404
    assert s.scan("sha256:" + "0" * 64).status_code == 404

    # held Running: a second request is refused, stop works once
    assert s.scan(digest).status_code == 202
    s.wait_status(digest, "Running")
    r = s.scan(digest)
    assert r.status_code == 409, describe(r)
    assert r.json()["errors"][0] == {"code": "CONFLICT",
                                     "message": "a previous scan process is Running"}
    assert s.stop(digest).status_code == 202
    assert s.overview(digest)["scan_status"] == "Stopped"
    r = s.stop(digest)
    assert r.status_code == 409, describe(r)

    # no vulnerability database yet: the scan is an Error whose log says what to do
    assert s.scan(digest).status_code == 202
    o = s.wait_status(digest, "Success", "Error")
    assert o["scan_status"] == "Error"
    r = s.api.get(f"{s.base}/{digest}/scan/{o['report_id']}/log")
    assert r.status_code == 200 and "wharf vulndb import" in r.text, describe(r)

    # a database imported while the server runs is used by the next scan, and
    # a newer one replacing it on disk too
    import_db(srv, "debian")
    assert s.scan(digest).status_code == 202
    first = s.wait_status(digest, "Success", "Error")
    rep1 = cli_report(srv, pinned_bookworm)
    assert_matches_cli(first, rep1, digest)
    import_db(srv, "nvd")
    rep2 = cli_report(srv, pinned_bookworm)
    assert expected_summary(rep2) != expected_summary(rep1), "the second import changed nothing"
    assert s.scan(digest).status_code == 202
    second = s.wait_status(digest, "Success", "Error")
    assert second["report_id"] != first["report_id"]
    assert_matches_cli(second, rep2, digest)
    assert keys(s.vulnerabilities(digest)[MIME]) == keys(rep2)


def test_index_children_scanned_on_push(servers, skopeo, pinned_bookworm, proj, tmp_path):
    srv = servers.new()
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true"})
    src = index_layout(pinned_bookworm, tmp_path / "idx-layout")
    skopeo.copy(src, f"docker://{srv.host}/{proj}/{REPO}:idx", "--all")
    digest = pinned_bookworm.manifest_digest
    o = s.wait_status(digest, "Success", "Error")
    rep = cli_report(srv, pinned_bookworm)
    assert_matches_cli(o, rep, digest)

    # the index: its child's scan, merged as Harbor merges children
    io = s.overview("idx")
    assert_matches_cli(io, rep, digest)
    assert io["report_id"] == o["report_id"]
    idx = s.artifact("idx")
    assert idx["addition_links"]["vulnerabilities"]["href"].endswith(
        f"/artifacts/{idx['digest']}/additions/vulnerabilities")
    merged = s.vulnerabilities("idx")[MIME]
    assert keys(merged) == keys(rep)
    assert all(v["artifact_digests"] == [digest] for v in merged["vulnerabilities"])

    # a scan of the index scans its child again
    r = s.scan("idx")
    assert r.status_code == 202, describe(r)
    def rescanned():
        x = s.overview("idx")
        return x if x["report_id"] != o["report_id"] and x["scan_status"] == "Success" else None
    again = wait_until(rescanned, SCAN_TIMEOUT, "the index's child scanned again", interval=0.1)
    assert again["summary"] == io["summary"]
    assert s.overview(digest)["report_id"] == again["report_id"]


def test_sigkill_mid_scan_job_finishes_after_restart(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new(env={"WHARF_FAILPOINTS": "scan.hold=1:EIO"})
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true"})
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    running = s.wait_status(digest, "Running")
    srv.kill()
    del srv.extra_env["WHARF_FAILPOINTS"]
    srv.restart()
    o = s.wait_status(digest, "Success", "Error")
    assert o["report_id"] == running["report_id"]  # the same job, retried
    assert_matches_cli(o, cli_report(srv, pinned_bookworm), digest)
    assert "queued again" in srv.log_text()


def test_scan_refused_for_non_images_and_guests(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new()
    s = Scans(srv, proj)
    s.api.create_project(proj)
    s.push(skopeo, pinned_bookworm)
    # an OCI artifact that is not an image: nothing to scan
    reg = srv.registry()
    layer, config = b"not an image layer", b'{"k":"v"}'
    reg.push_blob(f"{proj}/{REPO}", layer)
    reg.push_blob(f"{proj}/{REPO}", config)
    def desc(mt, b):
        return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b)}
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "artifactType": "application/vnd.example.thing",
                       "config": desc("application/vnd.example.thing.config.v1+json", config),
                       "layers": [desc("application/octet-stream", layer)]}).encode()
    r = reg.push_manifest(f"{proj}/{REPO}", "thing", body)
    assert r.status_code == 201, describe(r)
    thing = s.artifact("thing")
    r = s.scan("thing")
    assert r.status_code == 400, describe(r)
    assert r.json()["errors"][0]["message"] == (
        "the configured scanner wharf does not support scanning artifact with mime type "
        "application/vnd.example.thing")
    assert "vulnerabilities" not in thing["addition_links"] and "scan_overview" not in thing
    assert s.vulnerabilities("thing") == {}
    # a guest may read but not scan
    s.api.create_user(f"{proj}-g")
    s.api.add_member(proj, f"{proj}-g", 3)
    guest = Api(srv.url, auth=(f"{proj}-g", "Passw0rd-x"))
    r = guest.post(f"{s.base}/{pinned_bookworm.manifest_digest}/scan")
    assert r.status_code == 403, describe(r)
    r = Api(srv.url).post(f"{s.base}/{pinned_bookworm.manifest_digest}/scan")
    assert r.status_code == 401, describe(r)


def test_failed_scan_is_an_error_with_a_log_and_can_be_retried(servers, skopeo, pinned_bookworm,
                                                               proj):
    srv = servers.new(env={"WHARF_FAILPOINTS": "scan.run=1:EIO"})
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "1"})
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    o = s.wait_status(digest, "Success", "Error")
    assert o["scan_status"] == "Error"
    assert "summary" not in o and "severity" not in o
    assert o["complete_percent"] == 0
    assert s.vulnerabilities(digest) == {}
    # the cause stays in the server's log; the API's log says where to look
    r = s.api.get(f"{s.base}/{digest}/scan/{o['report_id']}/log")
    assert r.status_code == 200, describe(r)
    assert r.text == "internal error (the server log has the details)"
    assert "failpoint scan.run" in srv.log_text()
    assert s.scan(digest).status_code == 202
    assert_matches_cli(s.wait_status(digest, "Success", "Error"), cli_report(srv, pinned_bookworm),
                       digest)


def test_copy_into_auto_scan_project_is_scanned(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new()
    import_db(srv)
    src = Scans(srv, proj)
    src.api.create_project(proj)  # auto_scan off: nothing queued at push
    src.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    dst = Scans(srv, proj + "-auto")
    dst.api.create_project(dst.project, metadata={"auto_scan": "true"})
    r = dst.api.post(f"/projects/{dst.project}/repositories/{REPO}/artifacts",
                     params={"from": f"{proj}/{REPO}:1"})
    assert r.status_code == 201, describe(r)
    o = dst.wait_status(digest, "Success", "Error")
    assert_matches_cli(o, cli_report(srv, pinned_bookworm), digest)
    assert "scan_overview" not in src.artifact(digest)  # the source is left as it was
