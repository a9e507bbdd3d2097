#!/usr/bin/env bash
# Rebuilds the rpm database fixtures in this directory with Debian's own rpm
# tools (package `rpm`) and Berkeley DB's db_load (package `db-util`):
#   rpmdb.sqlite  - the SQLite backend (rpm's default on Debian 12)
#   Packages      - a Berkeley DB hash file holding the same header blobs,
#                   keyed by the 4-byte package index as rpm's bdb backend does
#                   (Debian's rpm cannot write bdb any more, so db_load writes it)
#   Packages.db   - an NDB file holding the same blobs, written below after the
#                   layout of rpm's lib/backend/ndb/rpmpkg.c (Debian's rpm is
#                   built without the ndb backend)
# Two binary packages from one source: demo (Epoch 1) and demo-libs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/SPECS"
cat >"$work/SPECS/demo.spec" <<'SPEC'
Name: demo
Epoch: 1
Version: 2.3
Release: 4.el9
Summary: wharf rpm fixture
License: MIT
BuildArch: noarch
%description
Fixture package for the wharf rpm cataloger tests.
%package libs
Summary: wharf rpm fixture library
%description libs
Fixture subpackage.
%files
%files libs
SPEC
rpmbuild --quiet --define "_topdir $work" -bb "$work/SPECS/demo.spec" >/dev/null
rpms=$(find "$work/RPMS" -name '*.rpm' | sort)

db="$work/db-sqlite"
mkdir -p "$db"
rpm --define "_db_backend sqlite" --dbpath "$db" --initdb 2>/dev/null
rpm --define "_db_backend sqlite" --dbpath "$db" -i --justdb --nodeps --noscripts $rpms 2>/dev/null
# a compact copy (no WAL, no free pages)
rm -f "$here/rpmdb.sqlite"
python3 -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("VACUUM INTO ?", (sys.argv[2],))' \
    "$db/rpmdb.sqlite" "$here/rpmdb.sqlite"

# NDB: 32-byte header ("RpmP", version 0, generation, slot pages, next index),
# 16-byte slots ("Slot", pkgidx, blkoff, blkcnt) filling the slot pages, then
# blobs in 16-byte blocks: "BlbS", pkgidx, timestamp, length, header blob,
# then adler32, length, "BlbE".
python3 - "$db/rpmdb.sqlite" "$here/Packages.db" <<'PY'
import sqlite3, struct, sys, zlib
rows = list(sqlite3.connect(sys.argv[1]).execute("SELECT hnum, blob FROM Packages ORDER BY hnum"))
page, slots_per_page = 4096, 4096 // 16
blobs, slots, blk = b"", [], page // 16
for hnum, blob in rows:
    blob = bytes(blob)
    body = struct.pack("<4sIII", b"BlbS", hnum, 0, len(blob)) + blob
    body += struct.pack("<II4s", zlib.adler32(body), len(blob), b"BlbE")
    body += b"\0" * (-len(body) % 16)
    slots.append(struct.pack("<4sIII", b"Slot", hnum, blk, len(body) // 16))
    blk += len(body) // 16
    blobs += body
head = struct.pack("<4sIIII", b"RpmP", 0, 1, 1, len(rows) + 1) + b"\0" * 12
table = b"".join(slots) + struct.pack("<4sIII", b"Slot", 0, 0, 0) * (slots_per_page - 2 - len(slots))
open(sys.argv[2], "wb").write(head + table + blobs)
PY

# Berkeley DB hash: key = package index (host order), value = header blob.
python3 - "$db/rpmdb.sqlite" >"$work/dump.txt" <<'PY'
import sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
print("VERSION=3\nformat=bytevalue\ntype=hash\nh_ffactor=8\nHEADER=END")
for hnum, blob in db.execute("SELECT hnum, blob FROM Packages ORDER BY hnum"):
    print(" " + struct.pack("<I", hnum).hex())
    print(" " + bytes(blob).hex())
print("DATA=END")
PY
rm -f "$here/Packages"
db_load -f "$work/dump.txt" "$here/Packages"
ls -l "$here"
