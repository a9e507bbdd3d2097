"""End-to-end tests of `wharf scan` and `wharf vulndb` as a user runs them.

The default tests scan the Debian bookworm minbase image pinned in the
repository (tests/data/images/bookworm-minbase, built into an OCI layout and
a `docker save` archive by conftest.py, no network) against the fixture
database in tests/data/vulndb, so they assert exact results.  Each exact
expectation is also checked against debian_oracle.py, an independent
implementation of the Debian tracker rules over `dpkg --compare-versions`.

The tests marked slow scan today's bookworm from the Debian mirror
(mmdebstrap); what they expect is computed by the same oracle from that
image's own dpkg status.  The feeds for `vulndb update` are served from
tests/data by a local HTTP server.
"""
import functools
import http.server
import json
import os
import socketserver
import subprocess
import threading

import pytest

import debian_oracle as oracle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "vulndb")
MIME = "application/vnd.security.vulnerability.report; version=1.1"
WHARF = os.environ.get("WHARF_BIN") or os.path.join(ROOT, "build", "release", "wharf")
SEVERITIES = ["Unknown", "Negligible", "Low", "Medium", "High", "Critical"]

# What the pinned image gives with the fixture database (tests/data/images/
# bookworm-minbase/PROVENANCE.md); test_pinned_expectations_follow_from_oracle
# checks every number and version here against the oracle.
PINNED_PACKAGES = 96
PINNED_FINDINGS = 54
PINNED_VULNS = 22
PINNED_ZLIB = "1:1.2.13.dfsg-1+deb12u1"
PINNED_GLIBC = "2.36-9+deb12u14"


def run(*args, env=None, check=None):
    p = subprocess.run([WHARF, *args], capture_output=True, text=True, env=env, timeout=600)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return p


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["WHARF_DATA_DIR"] = str(tmp_path / "data")
    os.mkdir(e["WHARF_DATA_DIR"])  # only `wharf serve` creates a data directory
    return e


@pytest.fixture
def db(env):
    run("vulndb", "import", os.path.join(DATA, "debian"), os.path.join(DATA, "nvd"),
        os.path.join(DATA, "alpine"), os.path.join(DATA, "osv"), env=env, check=0)
    return env


def report(stdout):
    doc = json.loads(stdout)
    assert list(doc) == [MIME]
    return doc[MIME]


def keys(rep):
    return {(v["id"], v["package"], v["version"]) for v in rep["vulnerabilities"]}


def top_severity(found) -> str:
    return max((f.severity for f in found), key=SEVERITIES.index, default="None")


@functools.lru_cache(maxsize=None)
def oracle_for(rootfs) -> frozenset:
    """The oracle's findings for a root file system and the fixture database."""
    return frozenset(oracle.rootfs_findings(rootfs))


def test_pinned_expectations_follow_from_oracle(pinned_bookworm):
    """The literal numbers and versions the tests below assert are what the
    oracle computes from the pinned dpkg status and the fixture database."""
    want = oracle_for(pinned_bookworm.rootfs)
    pkgs = oracle.installed_packages(pinned_bookworm.read("var/lib/dpkg/status"))
    assert len(pkgs) == PINNED_PACKAGES
    assert len(want) == PINNED_FINDINGS and len({f.id for f in want}) == PINNED_VULNS
    by_name = {p.name: p for p in pkgs}
    assert by_name["zlib1g"].version == PINNED_ZLIB
    assert by_name["libc6"].version == by_name["libc-bin"].version == PINNED_GLIBC
    assert top_severity(want) == "Critical"
    assert {(f.package, f.severity) for f in want if f.severity in ("High", "Critical")} == {
        ("zlib1g", "Critical")}
    assert {(f.id, f.package, f.status) for f in want if f.severity == "Low"} == {
        ("CVE-2016-2781", "coreutils", "will_not_fix")}
    assert not {f for f in want if f.status == "fixed"}


def test_scan_oci_layout(db, pinned_bookworm):
    p = run("scan", "--format", "json", pinned_bookworm.oci, env=db, check=0)
    rep = report(p.stdout)
    assert oracle.report_findings(rep) == oracle_for(pinned_bookworm.rootfs)
    assert rep["severity"] == "Critical"
    assert rep["scanner"]["name"] == "wharf"
    assert len(rep["vulnerabilities"]) == PINNED_FINDINGS
    ids = {v["id"] for v in rep["vulnerabilities"]}
    assert len(ids) == PINNED_VULNS  # 22 report rows (tests/data/images/bookworm-minbase/PROVENANCE.md)
    # fixed for bookworm (rows 7, 8, 24) or not affected (row 23)
    assert not ids & {"CVE-2023-4911", "CVE-2024-2961", "CVE-2024-3094", "CVE-2022-1664"}
    z = [v for v in rep["vulnerabilities"] if v["id"] == "CVE-2023-45853"]
    assert [(v["package"], v["version"]) for v in z] == [("zlib1g", PINNED_ZLIB)]
    assert z[0]["severity"] == "Critical" and z[0]["status"] == "affected" and z[0]["fix_version"] == ""
    assert z[0]["preferred_cvss"]["score_v3"] == 9.8
    assert z[0]["source_package"] == "zlib"
    assert z[0]["artifact_digests"] == [pinned_bookworm.manifest_digest]
    libc = {(v["package"], v["version"]) for v in rep["vulnerabilities"] if v["id"] == "CVE-2018-20796"}
    assert libc == {("libc6", PINNED_GLIBC), ("libc-bin", PINNED_GLIBC)}
    wnf = [(v["package"], v["severity"]) for v in rep["vulnerabilities"] if v["status"] == "will_not_fix"]
    assert wnf == [("coreutils", "Low")]


def test_docker_archive_matches_oci(db, pinned_bookworm):
    a = report(run("scan", "--format", "json", "--no-cache", pinned_bookworm.oci,
                   env=db, check=0).stdout)
    b = report(run("scan", "--format", "json", "--no-cache", pinned_bookworm.docker_archive,
                   env=db, check=0).stdout)
    want = {(f.id, f.package, f.version) for f in oracle_for(pinned_bookworm.rootfs)}
    assert keys(a) == keys(b) == want


def test_layer_cache_second_scan_reads_no_layer(db, pinned_bookworm, tmp_path):
    cache = str(tmp_path / "cache")
    target = pinned_bookworm.oci
    first = run("scan", "-v", "--cache-dir", cache, target, env=db, check=0)
    assert "1 layers read, 0 from cache" in first.stderr
    second = run("scan", "-v", "--cache-dir", cache, target, env=db, check=0)
    assert "0 layers read, 1 from cache" in second.stderr
    assert first.stdout == second.stdout


def test_table_severity_filter_and_exit_code(db, pinned_bookworm):
    target = pinned_bookworm.oci
    p = run("scan", target, env=db, check=0)
    header = p.stdout.splitlines()[2].split()
    assert header[:6] == ["PACKAGE", "INSTALLED", "VULNERABILITY", "SEVERITY", "STATUS", "FIXED"]
    assert "CVE-2023-45853" in p.stdout
    assert f"Total: {PINNED_FINDINGS} (Critical: 1, High: 0, Medium: 0, Low: 1," in p.stdout
    p = run("scan", "--severity", "HIGH,CRITICAL", "--exit-code", "5", target, env=db, check=5)
    rows = [l for l in p.stdout.splitlines() if "CVE-" in l]
    assert len(rows) == 1 and rows[0].split()[:4] == ["zlib1g", PINNED_ZLIB, "CVE-2023-45853", "Critical"]
    run("scan", "--severity", "MEDIUM", "--exit-code", "5", target, env=db, check=0)
    rep = report(run("scan", "--format", "json", "--severity", "low", target, env=db, check=0).stdout)
    assert [v["id"] for v in rep["vulnerabilities"]] == ["CVE-2016-2781"]
    assert rep["vulnerabilities"][0]["status"] == "will_not_fix"


def test_saved_inventory_is_matched_again_without_layers(env, pinned_bookworm, tmp_path):
    """Index once, match often: a database update is applied to a saved inventory."""
    inv = tmp_path / "inv.json"
    run("scan", "--format", "inventory", "--output", str(inv), pinned_bookworm.oci, env=env, check=0)
    run("vulndb", "import", os.path.join(DATA, "nvd"), os.path.join(DATA, "alpine"), env=env, check=0)
    before = report(run("scan", "--format", "json", "inventory:%s" % inv, env=env, check=0).stdout)
    assert before["vulnerabilities"] == [] and before["severity"] == "None"
    run("vulndb", "import", os.path.join(DATA, "debian"), env=env, check=0)
    p = run("scan", "-v", "--format", "json", "inventory:%s" % inv, env=env, check=0)
    assert "0 layers read, 0 from cache" in p.stderr
    after = report(p.stdout)
    direct = report(run("scan", "--format", "json", pinned_bookworm.oci, env=env, check=0).stdout)
    assert keys(after) == keys(direct)
    assert oracle.report_findings(after) == oracle_for(pinned_bookworm.rootfs)


def test_cyclonedx_needs_no_database(env, pinned_bookworm, tmp_path):
    out = tmp_path / "bom.json"
    run("scan", "--format", "cyclonedx", "--output", str(out), pinned_bookworm.oci, env=env, check=0)
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    comps = bom["components"]
    assert comps[0]["type"] == "operating-system" and comps[0]["name"] == "debian"
    assert comps[0]["version"] == "12.15"
    purls = {c.get("purl", "") for c in comps}
    assert "pkg:deb/debian/zlib1g@1.2.13.dfsg-1%2Bdeb12u1?arch=amd64&epoch=1&distro=debian-12.15" in purls
    assert len(comps) == 1 + PINNED_PACKAGES


def older_rootfs(pinned_bookworm, root, versions: dict):
    """A copy of the pinned files whose dpkg status gives some packages older versions."""
    stanzas = pinned_bookworm.read("var/lib/dpkg/status").split("\n\n")
    out = []
    for st in stanzas:
        lines = st.split("\n")
        name = next((l[9:] for l in lines if l.startswith("Package: ")), None)
        if name in versions:
            lines = [f"Version: {versions.pop(name)}" if l.startswith("Version: ") else l for l in lines]
        out.append("\n".join(lines))
    assert not versions, f"not in the pinned status: {sorted(versions)}"
    (root / "var" / "lib" / "dpkg").mkdir(parents=True)
    (root / "var" / "lib" / "dpkg" / "status").write_text("\n\n".join(out))
    (root / "etc").mkdir()
    (root / "etc" / "debian_version").write_text(pinned_bookworm.read("etc/debian_version"))
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "os-release").write_text(pinned_bookworm.read("usr/lib/os-release"))
    return root


def test_fixed_in_a_later_version_is_reported_with_its_fix(db, pinned_bookworm, tmp_path):
    """The pinned image is past every fix in the fixture; the same image with
    the glibc and dpkg of bookworm's first release shows the "fixed" rows
    (7, 8, 24 of the pinned image's expected findings): DSA fixes compared as dpkg versions."""
    root = older_rootfs(pinned_bookworm, tmp_path / "root",
                        {"libc6": "2.36-9", "libc-bin": "2.36-9", "dpkg": "1.21.7"})
    want = oracle.rootfs_findings(root)
    rep = report(run("scan", "--format", "json", "rootfs:%s" % root, env=db, check=0).stdout)
    assert oracle.report_findings(rep) == want
    fixed = {(f.id, f.package, f.version, f.fix_version) for f in want if f.status == "fixed"}
    assert fixed == {
        ("CVE-2023-4911", "libc6", "2.36-9", "2.36-9+deb12u3"),
        ("CVE-2023-4911", "libc-bin", "2.36-9", "2.36-9+deb12u3"),
        ("CVE-2024-2961", "libc6", "2.36-9", "2.36-9+deb12u6"),
        ("CVE-2024-2961", "libc-bin", "2.36-9", "2.36-9+deb12u6"),
        ("CVE-2022-1664", "dpkg", "1.21.7", "1.21.8"),
    }
    assert len(want) == PINNED_FINDINGS + len(fixed)


# ---------------------------------------------------------------- today's image (network)


@pytest.mark.slow
def test_real_image_matches_oracle(db, real_bookworm):
    """Today's bookworm from the mirror: whatever its versions, wharf reports
    what the oracle computes from its own dpkg status."""
    want = oracle.rootfs_findings(real_bookworm.rootfs)
    rep = report(run("scan", "--format", "json", real_bookworm.oci, env=db, check=0).stdout)
    assert oracle.report_findings(rep) == want
    assert rep["severity"] == top_severity(want)
    digest = real_bookworm.manifest_digest
    assert {d for v in rep["vulnerabilities"] for d in v["artifact_digests"]} <= {digest}


@pytest.mark.slow
def test_real_image_reads_only_pinned_files(env, real_bookworm):
    """The scanner finds in the whole root file system exactly what it finds
    in the few files pinned for the default tests: the pinned image stands
    for a real one."""
    whole = json.loads(run("scan", "--format", "inventory", "--no-cache", real_bookworm.oci,
                           env=env, check=0).stdout)
    files = json.loads(run("scan", "--format", "inventory", "--no-cache",
                           "rootfs:%s" % real_bookworm.rootfs, env=env, check=0).stdout)
    assert whole["os"] == files["os"] and whole["os"]["codename"] == "bookworm"
    assert whole["packages"] == files["packages"]
    status = real_bookworm.read("var/lib/dpkg/status")
    assert len(whole["packages"]) == len(oracle.installed_packages(status))


def test_rootfs_alpine_and_language_packages(db, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "alpine-release").write_text("3.18.4\n")
    (root / "lib" / "apk" / "db").mkdir(parents=True)
    (root / "lib" / "apk" / "db" / "installed").write_text(
        "P:busybox\nV:1.36.1-r5\no:busybox\n\nP:musl\nV:1.2.4-r3\no:musl\n")
    nm = root / "srv" / "node_modules" / "lodash"
    nm.mkdir(parents=True)
    (nm / "package.json").write_text('{"name":"lodash","version":"4.17.11"}')
    di = root / "usr" / "lib" / "python3.11" / "site-packages" / "requests-2.30.0.dist-info"
    di.mkdir(parents=True)
    (di / "METADATA").write_text("Metadata-Version: 2.1\nName: requests\nVersion: 2.30.0\n")
    rep = report(run("scan", "--format", "json", "rootfs:%s" % root, env=db, check=0).stdout)
    got = {(v["package"], v["id"], v["fix_version"]) for v in rep["vulnerabilities"]}
    assert got == {
        ("busybox", "CVE-2023-42366", "1.36.1-r6"),
        ("busybox", "CVE-2023-42363", "1.36.1-r7"),
        ("busybox", "CVE-2023-42364", "1.36.1-r7"),
        ("busybox", "CVE-2023-42365", "1.36.1-r7"),
        ("lodash", "GHSA-jf85-cpcp-j695", "4.17.12"),
        ("requests", "GHSA-j8r2-6x86-q33q", "2.31.0"),
    }


def test_clear_errors(env, tmp_path):
    p = run("scan", "oci:/nonexistent", env=env, check=1)
    assert "does not exist" in p.stderr and "vulndb import" in p.stderr  # no database yet
    run("vulndb", "import", env=env, check=2)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    p = run("vulndb", "import", str(empty), env=env, check=1)
    assert "no format" in p.stderr and "database unchanged" in p.stderr
    # an empty database (created, nothing in it) is refused with a clear message
    run("vulndb", "import", os.path.join(DATA, "nvd"), env=env, check=0)
    p = run("scan", "rootfs:/nonexistent", env=env, check=1)
    assert "is empty" in p.stderr
    run("vulndb", "import", os.path.join(DATA, "alpine"), env=env, check=0)
    p = run("scan", "oci:/nonexistent/layout", env=env, check=1)
    assert "oci:/nonexistent/layout: no such directory" in p.stderr
    p = run("scan", "oci:%s" % tmp_path, env=env, check=1)
    assert "not an OCI image layout" in p.stderr
    p = run("scan", "docker-archive:/nonexistent.tar", env=env, check=1)
    assert "no such file" in p.stderr
    p = run("scan", "busybox:latest", env=env, check=1)
    assert "unknown target" in p.stderr
    run("scan", env=env, check=2)
    run("scan", "--format", "xml", "rootfs:/", env=env, check=2)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def feed_server():
    handler = functools.partial(_Quiet, directory=DATA)
    srv = socketserver.TCPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_vulndb_update_and_status(env, feed_server):
    p = run("vulndb", "update", "--feed", feed_server + "/debian/tracker-bookworm-fixture.json",
            "--feed", feed_server + "/alpine/3.11/main-busybox-musl.json", env=env, check=0)
    assert "updated" in p.stdout
    s = run("vulndb", "status", env=env, check=0).stdout
    assert "debian-tracker" in s and "alpine-secdb" in s
    assert "debian:12" in s and "alpine:3.11" in s
    # a feed that cannot be reached: named, explained, and the database keeps what it had
    p = run("vulndb", "update", "--feed", "http://127.0.0.1:9/none.json", env=env, check=1)
    assert "http://127.0.0.1:9/none.json" in p.stderr and "no network" in p.stderr
    assert "not changed" in p.stderr
    assert run("vulndb", "status", env=env, check=0).stdout.count("debian:12") == 1
    p = run("vulndb", "update", "--feed", feed_server + "/missing.json", env=env, check=1)
    assert "404" in p.stderr
    # the configured list in the data directory, with comments
    with open(os.path.join(env["WHARF_DATA_DIR"], "vulndb-feeds.txt"), "w") as f:
        f.write("# feeds for this site\n%s/osv/GHSA-jf85-cpcp-j695.json  # lodash\n" % feed_server)
    run("vulndb", "update", env=env, check=0)
    assert "npm" in run("vulndb", "status", env=env, check=0).stdout
