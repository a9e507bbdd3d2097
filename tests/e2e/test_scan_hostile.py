"""`wharf scan` on hostile and unusual images, as a user runs it.

Every image is generated here (Python's tarfile, gzip and sqlite3), except
the umoci-built layers, which come from the real umoci and skopeo: tars
without their end-of-archive blocks, rpm databases whose reading never ends
or grows without bound, text that is not UTF-8, ".." inside entry names,
layers compressed twice, docker archives that store a layer as a link or
hide gigabytes of zeros before manifest.json, and a package database behind
a symbolic link in a root filesystem. Each scan runs under a subprocess
timeout, so a hang fails the test instead of the CI job.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "vulndb")
MIME = "application/vnd.security.vulnerability.report; version=1.1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

STATUS = (b"Package: zlib1g\nStatus: install ok installed\nPriority: optional\nSource: zlib\n"
          b"Version: 1:1.2.13.dfsg-1\nArchitecture: amd64\n")
OS_RELEASE = (b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
              b"VERSION_CODENAME=bookworm\n")


@pytest.fixture
def scan(wharf_bin, tmp_path):
    """Runs `wharf scan` with a private data dir; returns the completed process and its duration."""
    env = dict(os.environ)
    env["WHARF_DATA_DIR"] = str(tmp_path / "data")
    os.makedirs(env["WHARF_DATA_DIR"], exist_ok=True)  # only `serve` creates a data directory

    def run(*args, timeout=60, check=None):
        t0 = time.monotonic()
        p = subprocess.run([wharf_bin, "scan", "--no-cache", *args], capture_output=True, timeout=timeout,
                           env=env)
        took = time.monotonic() - t0
        err = p.stderr.decode(errors="replace")
        for mark in SANITIZER_MARKS:
            assert mark not in err, err[-4000:]
        if check is not None:
            assert p.returncode == check, (p.returncode, p.stdout[-2000:], err[-2000:])
        return p, err, took

    run.env = env
    run.bin = wharf_bin
    return run


@pytest.fixture
def vulndb(scan):
    p = subprocess.run([scan.bin, "vulndb", "import", os.path.join(DATA, "debian"), os.path.join(DATA, "nvd")],
                       capture_output=True, text=True, env=scan.env, timeout=120)
    assert p.returncode == 0, p.stderr
    return scan


# ---- image builders ----

def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, bytes) for files, (name, None, type, target) for links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            info = tarfile.TarInfo(e[0])
            info.mtime = 1700000000
            if e[1] is None:
                info.type, info.linkname = e[2], e[3]
                t.addfile(info)
            else:
                info.size = len(e[1])
                info.mode = 0o644
                t.addfile(info, io.BytesIO(e[1]))
    return buf.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layout(path, layers, tag="t"):
    """An OCI image layout holding one image made of the given layer blobs (gzip or plain)."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)

    def blob(data):
        with open(os.path.join(path, "blobs", "sha256", hashlib.sha256(data).hexdigest()), "wb") as f:
            f.write(data)
        return sha256(data)

    descs = []
    for data in layers:
        gz = data[:2] == b"\x1f\x8b"
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else ""),
                      "digest": blob(data), "size": len(data)})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": blob(config), "size": len(config)},
                           "layers": descs}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return "oci:%s:%s" % (path, tag)


def zero_bomb_gzip(zeros, tail, name="zeros.bin"):
    """gzip of a tar whose first file is `zeros` bytes of zeros followed by the tar `tail`, made of
    repeated gzip members (one 64 MiB member of zeros), so a GiB is built in a fraction of a second."""
    chunk = 64 << 20
    assert zeros % chunk == 0
    head = tarfile.TarInfo(name)
    head.size = zeros
    head.mtime = 1700000000
    parts = [gzip.compress(head.tobuf(format=tarfile.USTAR_FORMAT), compresslevel=1, mtime=0)]
    member = gzip.compress(bytes(chunk), compresslevel=1, mtime=0)
    parts += [member] * (zeros // chunk)
    parts.append(gzip.compress(tail, compresslevel=1, mtime=0))
    return b"".join(parts)


def inventory(stdout):
    doc = json.loads(stdout)
    assert doc["inventory_version"] == 1
    return doc


# ---- text that is not UTF-8 ----

def test_invalid_utf8_keeps_every_package(vulndb, tmp_path):
    """Latin-1 bytes in os-release, debian_version and Version: are kept, escaped, and matched."""
    status = STATUS.replace(b"Version: 1:1.2.13.dfsg-1", b"Version: 1:1.2.13.dfsg-1\xff") + \
        b"\nPackage: caf\xe9\nStatus: install ok installed\nVersion: 1.0\n"
    layer = gzip.compress(tar_bytes([
        ("etc/os-release", OS_RELEASE.replace(b"PRETTY_NAME=\"Debian", b"PRETTY_NAME=\"D\xe9bian")),
        ("etc/debian_version", b"12.4\xff\n"),
        ("var/lib/dpkg/status", status),
    ]), mtime=0)
    target = oci_layout(str(tmp_path / "img"), [layer])
    p, err, _ = vulndb("--format", "inventory", target, check=0)
    inv = inventory(p.stdout)
    assert inv["os"]["family"] == "debian" and inv["os"]["version"] == "12.4\\xff"
    assert inv["os"]["name"].startswith("D\\xe9bian")
    pkgs = {(x["name"], x["version"]) for x in inv["packages"]}
    assert pkgs == {("zlib1g", "1:1.2.13.dfsg-1\\xff"), ("caf\\xe9", "1.0")}

    # the saved inventory matches again: the zlib CVE is found, its package whole in the report
    saved = tmp_path / "inv.json"
    saved.write_bytes(p.stdout)
    for t in (target, "inventory:%s" % saved):
        p, err, _ = vulndb("--format", "json", t, check=0)
        rep = json.loads(p.stdout)[MIME]
        z = [v for v in rep["vulnerabilities"] if v["id"] == "CVE-2023-45853"]
        assert [(v["package"], v["version"], v["source_package"]) for v in z] == \
            [("zlib1g", "1:1.2.13.dfsg-1\\xff", "zlib")]
    p, err, _ = vulndb("--format", "cyclonedx", target, check=0)
    names = {c["name"] for c in json.loads(p.stdout)["components"]}
    assert {"zlib1g", "caf\\xe9"} <= names


# ---- tar framing and paths ----

def test_umoci_insert_layers_without_end_blocks(vulndb, tmp_path, skopeo):
    """umoci 0.4.7 `insert` writes layers that stop after the last file's data; they scan like any other."""
    if not shutil.which("umoci"):
        pytest.skip("umoci is not installed")
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "var/lib/dpkg/status").write_bytes(STATUS)
    (root / "etc/os-release").write_bytes(OS_RELEASE)
    layout = str(tmp_path / "umoci")
    for argv in (["init", "--layout", layout], ["new", "--image", layout + ":t"],
                 ["insert", "--image", layout + ":t", str(root / "var"), "/var"],
                 ["insert", "--image", layout + ":t", str(root / "etc"), "/etc"]):
        subprocess.run(["umoci", *argv], check=True, capture_output=True, timeout=120)
    # the layers really lack the end-of-archive blocks (else this test proves nothing)
    idx = json.load(open(os.path.join(layout, "index.json")))
    man = json.load(open(os.path.join(layout, "blobs", *idx["manifests"][0]["digest"].split(":"))))
    raw = gzip.decompress(open(os.path.join(layout, "blobs", *man["layers"][0]["digest"].split(":")), "rb").read())
    assert raw[-1024:] != bytes(1024)

    p, err, _ = vulndb("--format", "json", "oci:%s:t" % layout, check=0)
    ids = {(v["id"], v["package"]) for v in json.loads(p.stdout)[MIME]["vulnerabilities"]}
    assert ("CVE-2023-45853", "zlib1g") in ids
    # skopeo copies those layers into a docker archive as they are
    archive = str(tmp_path / "umoci.tar")
    skopeo.run(["skopeo", "copy", "--quiet", "oci:%s:t" % layout, "docker-archive:%s:t/t:1" % archive])
    p, err, _ = vulndb("--format", "inventory", "docker-archive:%s" % archive, check=0)
    assert [x["name"] for x in inventory(p.stdout)["packages"]] == ["zlib1g"]


def test_dotdot_inside_an_entry_name_is_cataloged(scan, tmp_path):
    layer = tar_bytes([("a/../var/lib/dpkg/status", STATUS), ("../../etc/os-release", OS_RELEASE)])
    p, err, _ = scan("--format", "inventory", oci_layout(str(tmp_path / "img"), [layer]), check=0)
    inv = inventory(p.stdout)
    assert [(x["name"], x["path"]) for x in inv["packages"]] == [("zlib1g", "var/lib/dpkg/status")]
    assert inv["os"]["codename"] == "bookworm"


def test_rootfs_symlinked_package_database_warns(scan, tmp_path):
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status.real").write_bytes(STATUS)
    os.symlink("status.real", root / "var/lib/dpkg/status")
    p, err, _ = scan("--format", "inventory", "rootfs:%s" % root, check=0)
    assert inventory(p.stdout)["packages"] == []
    assert "var/lib/dpkg/status is a symbolic link: not cataloged" in err


# ---- rpm databases ----

def rpm_header(name, version, release):
    strings = [name.encode(), version.encode(), release.encode()]
    data = b"".join(s + b"\0" for s in strings)
    index, off = b"", 0
    for i, s in enumerate(strings):
        index += struct.pack(">IIII", 1000 + i, 6, off, 1)
        off += len(s) + 1
    return struct.pack(">II", 3, len(data)) + index + data


def rpm_image(tmp_path, db_name, db_bytes):
    os_release = b'ID="rocky"\nVERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'
    layer = gzip.compress(tar_bytes([("etc/os-release", os_release), ("var/lib/rpm/" + db_name, db_bytes)]),
                          mtime=0)
    return oci_layout(str(tmp_path / "img"), [layer])


@pytest.mark.parametrize("schema", [
    "CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT x AS hnum, x AS blob FROM c",
    "CREATE VIEW Packages AS SELECT 1 AS hnum, zeroblob(890000000) AS blob",
], ids=["recursive-view", "zeroblob-view"])
def test_rpmdb_sqlite_view_is_refused(scan, tmp_path, schema):
    path = tmp_path / "rpmdb.sqlite"
    db = sqlite3.connect(path)
    db.execute(schema)
    db.commit()
    db.close()
    target = rpm_image(tmp_path, "rpmdb.sqlite", path.read_bytes())
    p, err, took = scan("--format", "inventory", target, timeout=60, check=0)
    assert took < 20
    assert inventory(p.stdout)["packages"] == []
    assert "rpmdb.sqlite: Packages is a view" in err


def test_berkeley_db_entries_sharing_one_overflow_chain(scan, tmp_path):
    """6.7 MB of Berkeley DB whose entries all point at one long overflow chain (54 s before)."""
    ps, npages, hash_pages, item = 4096, 1700, 100, 4000
    d = bytearray(ps * npages)
    struct.pack_into("<I", d, 12, 0x061561)
    struct.pack_into("<I", d, 20, ps)
    # one real package first, in a chain of its own
    hdr = rpm_header("bash", "5.1.8", "6.el9")
    chain, used = hash_pages + 2, ps - 26
    own = hash_pages + 1
    d[own * ps + 25] = 7
    struct.pack_into("<H", d, own * ps + 22, len(hdr))
    d[own * ps + 26:own * ps + 26 + len(hdr)] = hdr
    for pg in range(1, hash_pages + 1):
        p = pg * ps
        n = (item - 26) // 2
        d[p + 25] = 13
        struct.pack_into("<H", d, p + 20, n)
        for i in range(n):
            struct.pack_into("<H", d, p + 26 + 2 * i, item)
        d[p + item] = 3
        struct.pack_into("<II", d, p + item + 4, chain, used * (npages - chain))
        if pg == 1:  # the first value is the real package
            struct.pack_into("<H", d, p + 26 + 2, item + 16)
            d[p + item + 16] = 3
            struct.pack_into("<II", d, p + item + 20, own, len(hdr))
    for pg in range(chain, npages):
        p = pg * ps
        d[p + 25] = 7
        struct.pack_into("<H", d, p + 22, used)
        struct.pack_into("<I", d, p + 16, pg + 1 if pg + 1 < npages else 0)
    target = rpm_image(tmp_path, "Packages", bytes(d))
    p, err, took = scan("--format", "inventory", target, timeout=30, check=0)
    assert took < 10
    assert [(x["name"], x["version"]) for x in inventory(p.stdout)["packages"]] == [("bash", "5.1.8-6.el9")]
    assert "share overflow pages" in err


# ---- decompression and docker archives ----

def test_gzip_of_gzip_layer_is_refused_quickly(scan, tmp_path):
    tail = tar_bytes([("var/lib/dpkg/status", STATUS)])
    inner = zero_bomb_gzip(1 << 30, tail)
    layer = gzip.compress(inner, compresslevel=1, mtime=0)
    p, err, took = scan("--format", "inventory", oci_layout(str(tmp_path / "img"), [layer]), timeout=60,
                        check=1)
    assert took < 10
    assert "compressed twice" in err


def legacy_docker_save(path, layer, second):
    """A legacy `docker save` tarball: <id>/layer.tar dirs; the second layer is `second` (a link entry)."""
    dg = sha256(layer)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [dg, dg]}}).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    man = json.dumps([{"Config": cfg_name, "RepoTags": ["test/legacy:1"],
                       "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]).encode()
    with open(path, "wb") as f:
        f.write(tar_bytes([("aaa/VERSION", b"1.0"), ("aaa/layer.tar", layer),
                           ("bbb/VERSION", b"1.0"), ("bbb/layer.tar", None) + second,
                           (cfg_name, cfg), ("manifest.json", man)], fmt=tarfile.USTAR_FORMAT))
    return "docker-archive:%s" % path


@pytest.mark.parametrize("second", [(tarfile.SYMTYPE, "../aaa/layer.tar"), (tarfile.LNKTYPE, "aaa/layer.tar")],
                         ids=["symlink", "hardlink"])
def test_docker_archive_layer_stored_as_a_link(scan, tmp_path, second):
    layer = tar_bytes([("etc/os-release", OS_RELEASE), ("var/lib/dpkg/status", STATUS)])
    target = legacy_docker_save(str(tmp_path / "legacy.tar"), layer, second)
    p, err, _ = scan("--format", "inventory", target, check=0)
    assert [x["name"] for x in inventory(p.stdout)["packages"]] == ["zlib1g"]


def test_docker_archive_link_never_leaves_the_archive(scan, tmp_path):
    layer = tar_bytes([("var/lib/dpkg/status", STATUS)])
    target = legacy_docker_save(str(tmp_path / "evil.tar"), layer, (tarfile.SYMTYPE, "../../../../../../etc/passwd"))
    p, err, _ = scan("--format", "inventory", target, check=1)
    assert "has no etc/passwd" in err
    assert "root:" not in err and b"root:" not in p.stdout


def test_docker_archive_zeros_before_manifest_hit_max_total(scan, tmp_path):
    """A compressed docker archive hiding 1 GiB of zeros before manifest.json is capped by --max-total."""
    layer = tar_bytes([("var/lib/dpkg/status", STATUS)])
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    man = json.dumps([{"Config": "c.json", "Layers": ["l/layer.tar"]}]).encode()
    tail = tar_bytes([("l/layer.tar", layer), ("c.json", cfg), ("manifest.json", man)])
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(zero_bomb_gzip(1 << 30, tail))
    p, err, took = scan("--format", "inventory", "--max-total", str(256 << 20), "docker-archive:%s" % path,
                        timeout=60, check=1)
    assert took < 10
    assert "over the cap of %d decompressed bytes" % (256 << 20) in err
    # with room for it, the archive is indexed once and its entries read within the same budget
    p, err, took = scan("--format", "inventory", "--max-total", str(8 << 30), "docker-archive:%s" % path,
                        timeout=120, check=0)
    assert [x["name"] for x in inventory(p.stdout)["packages"]] == ["zlib1g"]


def test_package_database_cap_is_the_documented_one(scan, tmp_path):
    """docs/scanning.md: package databases are read up to --max-file, 256 MiB by default."""
    doc = open(os.path.join(ROOT, "docs", "scanning.md")).read()
    assert "`--max-file`, default 256 MiB" in doc
    big = STATUS + b"\n" + b"X-Padding: " + b"x" * (65 << 20) + b"\n"
    layer = gzip.compress(tar_bytes([("var/lib/dpkg/status", big)]), compresslevel=1, mtime=0)
    target = oci_layout(str(tmp_path / "img"), [layer])
    p, err, _ = scan("--format", "inventory", target, timeout=120, check=0)
    assert [x["name"] for x in inventory(p.stdout)["packages"]] == ["zlib1g"]
    p, err, _ = scan("--format", "inventory", "--max-file", str(64 << 20), target, timeout=120, check=1)
    assert "over the %d-byte cap" % (64 << 20) in err
