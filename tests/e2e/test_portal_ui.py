"""The web portal in real browsers: Debian's Chromium and Firefox ESR driven by
playwright-core (tests/ui, installed by `npm ci` from its lock file;
`scripts/deps.sh test` does it; Firefox through WebDriver BiDi). Each test
runs in both browsers: it prepares a real wharf (the fixture vulnerability
database imported, the pinned bookworm image's expected scan computed with
`wharf scan`), then runs one script of tests/ui with node, which fails on the
first check that does not hold. Screenshots go to
build/ui-screenshots/<test>[-firefox]/.
"""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from apiclient import Api, describe
from regclient import ADMIN_PASSWORD, ADMIN_USER
from test_rematch import feed_server  # noqa: F401 (fixture)
from test_scan_all import small_image
from test_scan_registry import cli_report, expected_summary, import_db

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UI = os.path.join(ROOT, "tests", "ui")
SEV_ORDER = ["Critical", "High", "Medium", "Low", "Negligible", "Unknown"]
BROWSERS = {"chromium": "chromium", "firefox": "firefox-esr"}  # name: Debian's command
_browser = {"name": "chromium"}


@pytest.fixture(autouse=True, params=sorted(BROWSERS))
def ui_browser(request):
    """Every test of this file runs once per browser."""
    _browser["name"] = request.param
    yield request.param
    _browser["name"] = "chromium"


def run_ui(script, srv, tmp_path, name, env=None, skopeo=None, timeout=600):
    browser = _browser["name"]
    if not os.path.isdir(os.path.join(UI, "node_modules", "playwright-core")):
        pytest.fail("playwright-core is not installed: run `bash scripts/deps.sh test` "
                    "(npm ci in tests/ui)", pytrace=False)
    if not shutil.which(BROWSERS[browser]) or not shutil.which("node"):
        pytest.fail(f"{BROWSERS[browser]} and node are needed: run `bash scripts/deps.sh test`",
                    pytrace=False)
    if browser != "chromium":
        name += "-" + browser
    shots = os.path.join(ROOT, "build", "ui-screenshots", name)
    shutil.rmtree(shots, ignore_errors=True)
    e = skopeo.env() if skopeo else dict(os.environ)
    e.update({"WHARF_URL": srv.url, "WHARF_HOST": srv.host, "WHARF_USER": ADMIN_USER,
              "WHARF_PASSWORD": ADMIN_PASSWORD, "WHARF_SHOTS": shots, "WORK": str(tmp_path),
              "BROWSER": browser})
    e.update(env or {})
    # the browsers' profiles (and their sockets, whose paths are capped at 107 bytes) in a
    # short temporary directory of their own
    short = tempfile.mkdtemp(prefix="wharf-ui-")
    e["TMPDIR"] = short
    try:
        p = subprocess.run(["node", os.path.join(UI, script)], cwd=UI, env=e, capture_output=True,
                           text=True, timeout=timeout)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    print(p.stdout)
    assert p.returncode == 0, f"{script} failed (screenshots in {shots}):\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}"
    return p.stdout


def test_portal_story(servers, skopeo, pinned_bookworm, unique, tmp_path):
    srv = servers.new()
    import_db(srv)
    rep = cli_report(srv, pinned_bookworm)
    summary = expected_summary(rep)
    vulns = rep["vulnerabilities"]
    severity = max((v["severity"] for v in vulns), key=lambda s: -SEV_ORDER.index(s))
    # the CVE the story follows: the first critical one, with a link and a CVSS3 score
    top = [v for v in vulns if v["severity"] == "Critical" and v.get("links")]
    assert top, "the fixture database finds no critical CVE with a link in the pinned image"
    cve = top[0]
    assert all(((v.get("preferred_cvss") or {}).get("score_v3") or 0)
               <= cve["preferred_cvss"]["score_v3"] for v in vulns)
    member = unique + "-dev"
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    r = api.post("/users", {"username": member, "email": f"{member}@example.com", "realname": "d",
                            "password": "Member-Passw0rd"})
    assert r.status_code == 201, describe(r)
    expect = {
        "total": summary["total"], "fixable": summary["fixable"], "summary": summary["summary"],
        "severity": severity, "cve": cve["id"], "description": cve["description"],
        "link": cve["links"][0], "cve_rows": sum(1 for v in vulns if v["id"] == cve["id"]),
    }
    out = run_ui("story.mjs", srv, tmp_path, "story", skopeo=skopeo, env={
        "PROJECT": unique, "IMAGE": pinned_bookworm.oci, "MEMBER": member,
        "EXPECT": json.dumps(expect)})
    assert "ok   skopeo pulls the image now" in out
    # what the browser saved is what the API holds
    p = api.get(f"/projects/{unique}").json()
    assert p["metadata"]["prevent_vul"] == "true" and p["metadata"]["severity"] == "critical"
    assert p["metadata"]["auto_scan"] == "true"
    assert p["metadata"]["reuse_sys_cve_allowlist"] == "false"
    assert [i["cve_id"] for i in p["cve_allowlist"]["items"]] == [cve["id"]]


XSS = ("<img src=x onerror=\"window.__xss='img'\">"
       "<script>window.__xss='script'</script><svg onload=\"window.__xss='svg'\">")


def hostile_vulndb(dst):
    """The fixture database's feeds with the NVD description of CVE-2023-45853
    replaced by markup that would run if the portal parsed it."""
    src = os.path.join(ROOT, "tests", "data", "vulndb")
    for feed in ("debian", "nvd"):
        shutil.copytree(os.path.join(src, feed), os.path.join(dst, feed))
    path = os.path.join(dst, "nvd", "CVE-2023-45853.json")
    with open(path) as f:
        doc = json.load(f)
    for d in doc["descriptions"]:
        d["value"] = "Hostile description " + XSS
    with open(path, "w") as f:
        json.dump(doc, f)
    return [os.path.join(dst, "debian"), os.path.join(dst, "nvd")]


def test_portal_renders_hostile_text_as_text(servers, skopeo, pinned_bookworm, unique, tmp_path):
    """A label, a robot's description and a CVE description holding markup, and
    a deep link whose repository name is markup: shown as text, no script runs."""
    srv = servers.new()
    p = srv.cli("vulndb", "import", *hostile_vulndb(tmp_path / "db"), timeout=300)
    assert p.returncode == 0, p.stderr
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    pid = api.create_project(unique, metadata={"auto_scan": "true"})
    skopeo.copy(pinned_bookworm.oci, f"docker://{srv.host}/{unique}/bookworm:1")
    base = f"/projects/{unique}/repositories/bookworm/artifacts"

    def scanned():
        r = api.get(f"{base}/1", params={"with_scan_overview": "true"})
        o = r.json().get("scan_overview", {}) if r.status_code == 200 else {}
        return any(v.get("scan_status") == "Success" for v in o.values())
    from conftest import wait_until
    wait_until(scanned, 120, "the scan")
    r = api.post("/labels", {"name": "lbl " + XSS[:100], "description": XSS, "color": "#000000",
                             "scope": "g"})
    assert r.status_code == 201, describe(r)
    lid = int(r.headers["Location"].rsplit("/", 1)[1])
    assert api.post(f"{base}/1/labels", {"id": lid}).status_code == 200
    r = api.post("/robots", {"name": "x", "description": XSS, "level": "project", "duration": -1,
                             "permissions": [{"kind": "project", "namespace": unique,
                                              "access": [{"resource": "repository",
                                                          "action": "pull"}]}]})
    assert r.status_code == 201, describe(r)
    run_ui("hostile.mjs", srv, tmp_path, "hostile", env={
        "PROJECT": unique, "PROJECT_ID": str(pid), "XSS": XSS, "LABEL": "lbl " + XSS[:100]})


def test_portal_index_opens_onto_its_children(servers, skopeo, pinned_bookworm, unique, tmp_path):
    """An image index lists as one row with its children's merged scan; its ▸
    button shows the child image under it, with its own scan."""
    from test_scan_registry import index_layout
    srv = servers.new()
    import_db(srv)
    summary = expected_summary(cli_report(srv, pinned_bookworm))
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    pid = api.create_project(unique, metadata={"auto_scan": "true"})
    src = index_layout(pinned_bookworm, tmp_path / "idx-layout")
    skopeo.copy(src, f"docker://{srv.host}/{unique}/multi:idx", "--all")
    run_ui("index.mjs", srv, tmp_path, "index", env={
        "PROJECT_ID": str(pid), "CHILD": pinned_bookworm.manifest_digest,
        "WANT": f"{summary['total']} Total · {summary['fixable']} Fixable"})


def test_portal_scan_states_and_actions(servers, skopeo, pinned_bookworm, unique, tmp_path):
    """The Signed column (a cosign signature of the image); the Vulnerabilities
    cell through a scan's states, driven by the row's actions: Not Scanned, Scan → Scanning (held by the failpoint scan.hold),
    Stop scan → Scan stopped, Scan → Error with its log (failpoint scan.run),
    Scan → the summary; Copy and Delete."""
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "2",
                           "WHARF_FAILPOINTS": "scan.hold=1:EIO,scan.run=1:EIO"})
    import_db(srv)
    summary = expected_summary(cli_report(srv, pinned_bookworm))
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    pid = api.create_project(unique)  # no scan on push
    skopeo.copy(pinned_bookworm.oci, f"docker://{srv.host}/{unique}/app:1")
    skopeo.copy(pinned_bookworm.oci, f"docker://{srv.host}/{unique}/gone:1")
    # a signature of app:1 as cosign tags it: the Signed column says so
    sig = small_image(f"{unique}-sig")
    srv.registry().push_image(f"{unique}/app", sig,
                              "sha256-" + pinned_bookworm.manifest_digest[7:] + ".sig")
    run_ui("scan.mjs", srv, tmp_path, "scan", env={
        "PROJECT_ID": str(pid), "DIGEST": pinned_bookworm.manifest_digest,
        "SIGNATURE": sig.manifest_digest,
        "WANT": f"{summary['total']} Total · {summary['fixable']} Fixable"})
    r = api.get(f"/projects/{unique}/repositories/gone/artifacts")
    assert r.status_code == 200 and r.json() == [], describe(r)


def test_portal_administration(servers, unique, tmp_path):
    srv = servers.new()
    run_ui("admin.mjs", srv, tmp_path, "admin", env={"NEWUSER": unique[-20:]})
    r = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD)).get("/system/CVEAllowlist")
    assert r.status_code == 200, describe(r)
    al = r.json()
    assert [i["cve_id"] for i in al["items"]] == ["CVE-2024-1111", "CVE-2024-2222"]
    assert al["expires_at"] == 1580515199  # 2020-01-31T23:59:59Z


def test_portal_interrogation_services(servers, skopeo, pinned_bookworm, feed_server, unique,
                                       tmp_path):
    """Administration › Interrogation Services: the vulnerability database's
    status and UPDATE NOW (from a feed server of the test, with no database at
    the start), scan-all (SCAN NOW, its progress, a schedule), the security
    hub (totals, most dangerous CVEs and artifacts, the search by CVE), and a
    user who is not an administrator kept out. What the pages showed is checked
    against `wharf scan` of the same image with the database the update wrote."""
    feeds = " ".join(f"{feed_server}/{f}" for f in (
        "debian/tracker-bookworm-fixture.json", "nvd/CVE-2023-45853.json",
        "nvd/CVE-2011-3374.json"))
    srv = servers.new(env={"WHARF_SCAN_DB_UPDATE_INTERVAL": "0", "WHARF_VULNDB_FEEDS": feeds})
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(unique)  # no scan on push
    for repo in ("bookworm", "copy"):
        skopeo.copy(pinned_bookworm.oci, f"docker://{srv.host}/{unique}/{repo}:1")
    user = unique[-20:]
    api.create_user(user, password="User-Passw0rd")
    out = run_ui("interrogation.mjs", srv, tmp_path, "interrogation", env={
        "IMAGES": "2", "USER2": user, "USER2_PASSWORD": "User-Passw0rd"})
    seen = json.loads(next(l for l in out.splitlines() if l.startswith("SEEN "))[5:])
    # the numbers the pages showed are those of an independent scan of the image
    assert os.path.exists(os.path.join(srv.data_dir, "vulndb.sqlite"))
    rep = cli_report(srv, pinned_bookworm)
    summary = expected_summary(rep)
    want = {"Critical": summary["summary"].get("Critical", 0) * 2,
            "High": summary["summary"].get("High", 0) * 2,
            "Medium": summary["summary"].get("Medium", 0) * 2,
            "Low": summary["summary"].get("Low", 0) * 2,
            "Unknown": summary["summary"].get("Unknown", 0) * 2,
            "None": summary["summary"].get("Negligible", 0) * 2}
    assert seen["totals"] == want
    assert seen["total"] == 2 * summary["total"] and seen["fixable"] == 2 * summary["fixable"]
    top = max(rep["vulnerabilities"],
              key=lambda v: (v.get("preferred_cvss") or {}).get("score_v3") or 0)
    top_score = top["preferred_cvss"]["score_v3"]
    assert seen["topCve"] in {v["id"] for v in rep["vulnerabilities"]
                              if ((v.get("preferred_cvss") or {}).get("score_v3") or 0) == top_score}
    assert seen["searchRows"] == 2 * sum(1 for v in rep["vulnerabilities"] if v["id"] == seen["topCve"])
    st = api.get("/vulndb/status").json()
    assert seen["advisories"] == st["advisories"] > 0
    # the button asked for exactly one update, audited
    assert [a["username"] for a in api.audit(operation="update")
            if a["resource_type"] == "vulndb"] == [ADMIN_USER]
