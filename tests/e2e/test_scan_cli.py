"""End-to-end tests of `wharf scan` and `wharf vulndb` as a user runs them.

The images are real: the Debian bookworm minbase root filesystem built by
mmdebstrap (cached in tests/.cache/), packed into an OCI layout by umoci and
into a `docker save` archive by skopeo. The feeds for `vulndb update` are
served from tests/data by a local HTTP server.
"""
import functools
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, "tests", ".cache")
DATA = os.path.join(ROOT, "tests", "data", "vulndb")
MIME = "application/vnd.security.vulnerability.report; version=1.1"
WHARF = os.environ.get("WHARF_BIN") or os.path.join(ROOT, "build", "release", "wharf")


def run(*args, env=None, check=None):
    p = subprocess.run([WHARF, *args], capture_output=True, text=True, env=env, timeout=600)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return p


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["WHARF_DATA_DIR"] = str(tmp_path / "data")
    return e


@pytest.fixture
def db(env):
    run("vulndb", "import", os.path.join(DATA, "debian"), os.path.join(DATA, "nvd"),
        os.path.join(DATA, "alpine"), os.path.join(DATA, "osv"), env=env, check=0)
    return env


@functools.lru_cache(maxsize=None)
def bookworm_tar():
    tar = os.path.join(CACHE, "bookworm-minbase.tar")
    if not os.path.exists(tar):
        if not shutil.which("mmdebstrap"):
            pytest.skip("mmdebstrap is not installed")
        os.makedirs(CACHE, exist_ok=True)
        tmp = os.path.join(CACHE, "bookworm-minbase.tmp.tar")
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "bookworm", tmp], check=True,
                       capture_output=True, timeout=900)
        os.rename(tmp, tar)
    return tar


@pytest.fixture(scope="session")
def bookworm_oci():
    if not shutil.which("umoci"):
        pytest.skip("umoci is not installed")
    layout = os.path.join(CACHE, "bookworm-oci")
    if not os.path.exists(os.path.join(layout, "index.json")):
        tar = bookworm_tar()
        tmp = layout + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for cmd in (["init", "--layout", tmp], ["new", "--image", tmp + ":bookworm"],
                    ["raw", "add-layer", "--image", tmp + ":bookworm", tar], ["gc", "--layout", tmp]):
            subprocess.run(["umoci", *cmd], check=True, capture_output=True, timeout=600)
        os.rename(tmp, layout)
    return layout


@pytest.fixture(scope="session")
def bookworm_docker(bookworm_oci):
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed")
    archive = os.path.join(CACHE, "bookworm-docker.tar")
    if not os.path.exists(archive):
        tmp = archive + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        subprocess.run(["skopeo", "copy", "--quiet", "oci:%s:bookworm" % bookworm_oci,
                        "docker-archive:%s:test/bookworm:1" % tmp], check=True, capture_output=True,
                       timeout=600)
        os.rename(tmp, archive)
    return archive


def report(stdout):
    doc = json.loads(stdout)
    assert list(doc) == [MIME]
    return doc[MIME]


def keys(rep):
    return {(v["id"], v["package"], v["version"]) for v in rep["vulnerabilities"]}


def test_scan_oci_layout_made_by_umoci(db, bookworm_oci):
    p = run("scan", "--format", "json", "oci:%s:bookworm" % bookworm_oci, env=db, check=0)
    rep = report(p.stdout)
    assert rep["severity"] == "Critical"
    assert rep["scanner"]["name"] == "wharf"
    ids = {v["id"] for v in rep["vulnerabilities"]}
    assert len(ids) == 22  # SCANNING.md §F.1: 22 report rows
    assert not ids & {"CVE-2023-4911", "CVE-2024-2961", "CVE-2024-3094", "CVE-2022-1664"}
    z = [v for v in rep["vulnerabilities"] if v["id"] == "CVE-2023-45853"]
    assert [v["package"] for v in z] == ["zlib1g"]
    assert z[0]["severity"] == "Critical" and z[0]["status"] == "affected" and z[0]["fix_version"] == ""
    assert z[0]["preferred_cvss"]["score_v3"] == 9.8
    assert z[0]["source_package"] == "zlib"
    digest = json.load(open(os.path.join(bookworm_oci, "index.json")))["manifests"][0]["digest"]
    assert z[0]["artifact_digests"] == [digest]
    libc = {v["package"] for v in rep["vulnerabilities"] if v["id"] == "CVE-2018-20796"}
    assert {"libc6", "libc-bin"} <= libc


def test_docker_archive_matches_oci(db, bookworm_oci, bookworm_docker):
    a = report(run("scan", "--format", "json", "--no-cache", "oci:%s:bookworm" % bookworm_oci,
                   env=db, check=0).stdout)
    b = report(run("scan", "--format", "json", "--no-cache", "docker-archive:%s" % bookworm_docker,
                   env=db, check=0).stdout)
    assert keys(a) == keys(b) and len(keys(a)) > 40


def test_layer_cache_second_scan_reads_no_layer(db, bookworm_oci, tmp_path):
    cache = str(tmp_path / "cache")
    target = "oci:%s:bookworm" % bookworm_oci
    first = run("scan", "-v", "--cache-dir", cache, target, env=db, check=0)
    assert "1 layers read, 0 from cache" in first.stderr
    second = run("scan", "-v", "--cache-dir", cache, target, env=db, check=0)
    assert "0 layers read, 1 from cache" in second.stderr
    assert first.stdout == second.stdout


def test_table_severity_filter_and_exit_code(db, bookworm_oci):
    target = "oci:%s:bookworm" % bookworm_oci
    p = run("scan", target, env=db, check=0)
    header = p.stdout.splitlines()[2].split()
    assert header[:6] == ["PACKAGE", "INSTALLED", "VULNERABILITY", "SEVERITY", "STATUS", "FIXED"]
    assert "CVE-2023-45853" in p.stdout and "Total:" in p.stdout
    p = run("scan", "--severity", "HIGH,CRITICAL", "--exit-code", "5", target, env=db, check=5)
    rows = [l for l in p.stdout.splitlines() if "CVE-" in l]
    assert len(rows) == 1 and "zlib1g" in rows[0]
    run("scan", "--severity", "MEDIUM", "--exit-code", "5", target, env=db, check=0)
    rep = report(run("scan", "--format", "json", "--severity", "low", target, env=db, check=0).stdout)
    assert [v["id"] for v in rep["vulnerabilities"]] == ["CVE-2016-2781"]
    assert rep["vulnerabilities"][0]["status"] == "will_not_fix"


def test_saved_inventory_is_matched_again_without_layers(env, bookworm_oci, tmp_path):
    """Index once, match often: a database update is applied to a saved inventory."""
    inv = tmp_path / "inv.json"
    run("scan", "--format", "inventory", "--output", str(inv), "oci:%s:bookworm" % bookworm_oci,
        env=env, check=0)
    run("vulndb", "import", os.path.join(DATA, "nvd"), os.path.join(DATA, "alpine"), env=env, check=0)
    before = report(run("scan", "--format", "json", "inventory:%s" % inv, env=env, check=0).stdout)
    assert before["vulnerabilities"] == [] and before["severity"] == "None"
    run("vulndb", "import", os.path.join(DATA, "debian"), env=env, check=0)
    p = run("scan", "-v", "--format", "json", "inventory:%s" % inv, env=env, check=0)
    assert "0 layers read, 0 from cache" in p.stderr
    after = report(p.stdout)
    direct = report(run("scan", "--format", "json", "oci:%s:bookworm" % bookworm_oci, env=env,
                        check=0).stdout)
    assert keys(after) == keys(direct) and len(keys(after)) > 40


def test_cyclonedx_needs_no_database(env, bookworm_oci, tmp_path):
    out = tmp_path / "bom.json"
    run("scan", "--format", "cyclonedx", "--output", str(out), "oci:%s:bookworm" % bookworm_oci,
        env=env, check=0)
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    comps = bom["components"]
    assert comps[0]["type"] == "operating-system" and comps[0]["name"] == "debian"
    purls = {c.get("purl", "") for c in comps}
    assert any(p.startswith("pkg:deb/debian/zlib1g@1.2.13.dfsg-1?arch=amd64&epoch=1") for p in purls)
    assert len(comps) > 80


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
