#!/usr/bin/env python3
"""Writes the hostile seeds of the scanner's fuzz corpora (small versions of
the inputs tests/unit/test_scan_hostile.c builds at full size):

  rpmdb/          rpmdb.sqlite whose Packages is a recursive view, a zeroblob
                  view, a generated column; Berkeley DB entries sharing one
                  overflow chain; NDB slots sharing one blob
  tar/            a layer without padding and end-of-archive blocks (plain and
                  gzip), gzip inside gzip, "a/../" paths, text that is not UTF-8
  dpkg/           a status file with Latin-1 bytes in Version: and Package:
  dockerarchive/  legacy `docker save` archives storing a layer as a symbolic or
                  hard link, a link loop, a link out of the archive, a
                  compressed archive

Run from the repository root: python3 tests/fuzz/hostile_seeds.py
"""
import gzip
import io
import json
import os
import sqlite3
import struct
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rpm_header(name, version, release):
    strings = [name.encode(), version.encode(), release.encode()]
    data = b"".join(s + b"\0" for s in strings)
    index, off = b"", 0
    for i, s in enumerate(strings):
        index += struct.pack(">IIII", 1000 + i, 6, off, 1)
        off += len(s) + 1
    return struct.pack(">II", 3, len(data)) + index + data


def sqlite_db(*statements, row=True):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rpmdb.sqlite")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE Packages(hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)")
        if row:
            db.execute("INSERT INTO Packages(blob) VALUES (?)", (rpm_header("bash", "5.1.8", "6.el9"),))
        for s in statements:
            db.execute(s)
        db.commit()
        db.close()
        with open(path, "rb") as f:
            return f.read()


def bdb_shared_chain(pagesize=512, npages=64, hash_pages=4, item=400):
    d = bytearray(pagesize * npages)
    struct.pack_into("<I", d, 12, 0x061561)
    struct.pack_into("<I", d, 20, pagesize)
    chain, used = hash_pages + 1, pagesize - 26
    for pg in range(1, hash_pages + 1):
        p = pg * pagesize
        n = (item - 26) // 2
        d[p + 25] = 13
        struct.pack_into("<H", d, p + 20, n)
        for i in range(n):
            struct.pack_into("<H", d, p + 26 + 2 * i, item)
        d[p + item] = 3
        struct.pack_into("<II", d, p + item + 4, chain, used * (npages - chain))
    for pg in range(chain, npages):
        p = pg * pagesize
        d[p + 25] = 7
        struct.pack_into("<H", d, p + 22, used)
        struct.pack_into("<I", d, p + 16, pg + 1 if pg + 1 < npages else 0)
    return bytes(d)


def ndb_shared_blob(slot_pages=2, il=2048):
    blob = struct.pack(">II", il, 0) + bytes(16 * il)
    blob_at = slot_pages * 4096
    size = (16 + len(blob) + 15) // 16 * 16
    d = bytearray(blob_at + size)
    struct.pack_into("<IIII", d, 0, 0x506D7052, 0, 0, slot_pages)
    for o in range(32, blob_at, 16):
        struct.pack_into("<IIII", d, o, 0x746F6C53, 1, blob_at // 16, size // 16)
    struct.pack_into("<IIII", d, blob_at, 0x53626C42, 1, 0, len(blob))
    d[blob_at + 16:blob_at + 16 + len(blob)] = blob
    return bytes(d)


def tar_bytes(entries):
    """entries: (name, data) for files, (name, None, type, link) for links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for e in entries:
            info = tarfile.TarInfo(e[0])
            if e[1] is None:
                info.type, info.linkname = e[2], e[3]
                t.addfile(info)
            else:
                info.size = len(e[1])
                t.addfile(info, io.BytesIO(e[1]))
    return buf.getvalue()


def without_end(tar):
    """Cuts a tar right after its last entry's data: no padding, no end blocks."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        last = t.getmembers()[-1]
    return tar[:last.offset_data + last.size]


def docker_archive(layer, second, extra=None, compress=False):
    import hashlib
    dg = "sha256:" + hashlib.sha256(layer).hexdigest()
    layers = ["aaa/layer.tar", "bbb/layer.tar"] + ([extra[0]] if extra else [])
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [dg] * len(layers)}}).encode()
    man = json.dumps([{"Config": "cfg.json", "RepoTags": ["t:1"], "Layers": layers}]).encode()
    entries = [("aaa/layer.tar", layer), ("bbb/layer.tar", None) + second]
    if extra:
        entries.append((extra[0], None) + extra[1:])
    entries += [("cfg.json", cfg), ("manifest.json", man)]
    tar = tar_bytes(entries)
    return gzip.compress(tar, mtime=0) if compress else tar


def main():
    put("rpmdb", "sqlite-recursive-view", sqlite_db(
        "DROP TABLE Packages",
        "CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT x AS hnum, x AS blob FROM c"))
    put("rpmdb", "sqlite-zeroblob-view", sqlite_db(
        "DROP TABLE Packages", "CREATE VIEW Packages AS SELECT 1 AS hnum, zeroblob(890000000) AS blob"))
    put("rpmdb", "sqlite-generated-blob", sqlite_db(
        "DROP TABLE Packages",
        "CREATE TABLE Packages(hnum INTEGER, blob BLOB GENERATED ALWAYS AS (zeroblob(890000000)))"))
    put("rpmdb", "sqlite-one-package", sqlite_db())
    put("rpmdb", "bdb-shared-overflow-chain", bdb_shared_chain())
    put("rpmdb", "ndb-shared-blob", ndb_shared_blob())

    status = (b"Package: zlib1g\nStatus: install ok installed\nSource: zlib\n"
              b"Version: 1:1.2.13.dfsg-1\n")
    tar = tar_bytes([("etc/debian_version", b"12.4\n"), ("var/lib/dpkg/status", status)])
    cut = without_end(tar)
    put("tar", "no-end-blocks", cut)
    put("tar", "no-end-blocks.gz", gzip.compress(cut, mtime=0))
    put("tar", "gzip-of-gzip", gzip.compress(gzip.compress(tar, mtime=0), mtime=0))
    put("tar", "dotdot-inside", tar_bytes([("a/../var/lib/dpkg/status", status),
                                           ("../../etc/alpine-release", b"3.18.4\n")]))
    bad = (b"Package: caf\xe9\nStatus: install ok installed\nVersion: 1.0\xff\n\n" + status)
    put("tar", "not-utf8", tar_bytes([
        ("etc/os-release", b'PRETTY_NAME="D\xe9bian"\nID=debian\nVERSION_CODENAME=bookworm\n'),
        ("etc/debian_version", b"12.4\xff\n"), ("var/lib/dpkg/status", bad),
        # a name that is not UTF-8 (tarfile writes the surrogate as the byte 0xff)
        ("usr/lib/node_modules/\udcff/package.json", b'{"name":"x","version":"1.0.0"}'),
        ("var/lib/dpkg/status.d/\udcff.wh.x", b"")]))
    put("dpkg", "not-utf8", bad)

    layer = tar_bytes([("var/lib/dpkg/status", status)])
    put("dockerarchive", "legacy-symlink-layer", docker_archive(layer, (tarfile.SYMTYPE, "../aaa/layer.tar")))
    put("dockerarchive", "legacy-hardlink-layer", docker_archive(layer, (tarfile.LNKTYPE, "aaa/layer.tar")))
    put("dockerarchive", "link-loop", docker_archive(layer, (tarfile.SYMTYPE, "../aaa/layer.tar"),
                                                     ("ccc/layer.tar", tarfile.SYMTYPE, "../ccc/layer.tar")))
    put("dockerarchive", "link-out-of-archive", docker_archive(
        layer, (tarfile.SYMTYPE, "../aaa/layer.tar"),
        ("ccc/layer.tar", tarfile.SYMTYPE, "../../../../../etc/passwd")))
    put("dockerarchive", "compressed", docker_archive(layer, (tarfile.SYMTYPE, "../aaa/layer.tar"),
                                                      compress=True))


if __name__ == "__main__":
    main()
