"""`wharf backup DIR` and `wharf restore DIR` on the single-node mode, with the
server running.

The main test pushes images (skopeo and the protocol client), keeps pushing
from a thread while `wharf backup` runs, restores into a fresh data directory,
starts a server there and pulls every image the backup holds back
bit-identical; users, robots and a token issued before the backup still work
(the signing key travels with the backup). The hostile tests: a backup into a
path that exists, a damaged or missing blob (restore refuses and names it, the
data directory stays empty), a backup description of a newer schema, a
restore into a running server's data directory, a blob file gone from the
data directory (the backup names it and fails), and a full disk during the
backup (a 20 MiB tmpfs; needs root).
"""

import hashlib
import json
import os
import subprocess
import threading
import time

import pytest
import requests

from apiclient import Api
from datadir import blob_path, check_blob_store
from ocilayout import Layout, make_image, make_index, write_image, write_index
from regclient import ADMIN_PASSWORD, Registry, describe

MANIFEST = "wharf-backup.json"


def wharf(srv, *args, data_dir=None, timeout=120):
    """`wharf ARGS` on `data_dir` (default: the server's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_DATA_DIR"] = data_dir or srv.data_dir
    return subprocess.run([srv.binary, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def ok(p, what):
    assert p.returncode == 0, f"{what}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    return p


def token(srv, scope, user="admin", password=ADMIN_PASSWORD):
    r = requests.get(f"{srv.url}/service/token", params={"service": "wharf", "scope": scope},
                     auth=(user, password), timeout=30)
    assert r.status_code == 200, describe(r)
    return r.json()["token"]


def pull_all(reg: Registry, repo: str, ref: str) -> dict:
    """{"manifest": bytes, digest: bytes for every blob and child manifest} of one image."""
    r = reg.get_manifest(repo, ref)
    assert r.status_code == 200, describe(r)
    out = {"manifest": r.content}
    doc = json.loads(r.content)
    for child in doc.get("manifests", []):
        sub = pull_all(reg, repo, child["digest"])
        out[child["digest"]] = sub.pop("manifest")
        out.update(sub)
    for desc in [doc["config"]] + doc["layers"] if "config" in doc else []:
        b = reg.get(f"/v2/{repo}/blobs/{desc['digest']}")
        assert b.status_code == 200, describe(b)
        assert "sha256:" + hashlib.sha256(b.content).hexdigest() == desc["digest"]
        out[desc["digest"]] = b.content
    return out


class Pusher(threading.Thread):
    """Pushes small images one after another until stopped, recording when
    each push began and when its manifest was accepted."""

    def __init__(self, srv, repo):
        super().__init__(daemon=True)
        self.reg = srv.registry()
        self.repo = repo
        self.done = []  # (tag, image, began, accepted)
        self.failed = None
        self.stopping = threading.Event()

    def run(self):
        n = 0
        try:
            while not self.stopping.is_set():
                img = make_image(layers=2, files_per_layer=2, file_size=8 * 1024)
                tag = f"t{n}"
                began = time.monotonic()
                self.reg.push_image(self.repo, img, tag)
                self.done.append((tag, img, began, time.monotonic()))
                n += 1
        except Exception as e:  # reported by the test
            self.failed = e

    def stop(self):
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "the pushing thread did not stop"
        assert self.failed is None, f"a push failed during the backup: {self.failed!r}"


def test_backup_while_pushing_and_restore(servers, skopeo, tmp_path, unique):
    srv = servers.new()
    api = Api(srv.url, ("admin", ADMIN_PASSWORD))
    api.create_project("team")
    api.create_user("alice", password="Alice-Passw0rd")
    api.add_member("team", "alice", 2)  # developer
    robot = ok(wharf(srv, "robot", "create", "ci", "--project", "team", "--permission",
                     "pull,push"), "robot create")
    fields = dict(line.split(": ", 1) for line in robot.stdout.splitlines())
    robot_name, robot_secret = fields["name"], fields["secret"]

    # images pushed by skopeo (one of them an index) and by the protocol client
    layout = Layout(str(tmp_path / "layout"))
    images = {}
    for i in range(3):
        img = write_image(layout, make_image(layers=3, seed=f"{unique}-{i}"), f"v{i}")
        skopeo.copy(f"oci:{layout.path}:v{i}", f"docker://{srv.host}/team/app{i}:v{i}")
        images[(f"team/app{i}", f"v{i}")] = img.manifest_digest
    idx = write_index(layout, make_index([make_image(layers=1, arch="amd64"),
                                          make_image(layers=1, arch="arm64")]), "multi")
    skopeo.copy(f"oci:{layout.path}:multi", f"docker://{srv.host}/team/multi:m", "--all",
                "--preserve-digests")
    images[("team/multi", "m")] = idx.index_digest
    reg = srv.registry()
    for i in range(3):
        img = make_image(layers=2)
        reg.push_image("library/plain", img, f"p{i}")
        images[("library/plain", f"p{i}")] = img.manifest_digest
    before = {key: pull_all(reg, *key) for key in images}
    old_token = token(srv, "repository:team/app0:pull")

    # the backup, with pushes going on
    pusher = Pusher(srv, "team/busy")
    pusher.start()
    deadline = time.monotonic() + 30
    while len(pusher.done) < 2 and pusher.failed is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(pusher.done) >= 2, f"the pushing thread did not get going: {pusher.failed!r}"
    backup_dir = tmp_path / "backup"
    t0 = time.monotonic()
    p = ok(wharf(srv, "backup", str(backup_dir)), "backup")
    t1 = time.monotonic()
    n_during = len(pusher.done)
    deadline = time.monotonic() + 30
    while len(pusher.done) < n_during + 2 and pusher.failed is None and time.monotonic() < deadline:
        time.sleep(0.02)
    pusher.stop()
    assert "backup of" in p.stdout and "linked" in p.stdout, p.stdout
    assert not [e for e in os.listdir(tmp_path) if e.startswith("backup.tmp-")]
    desc = json.loads((backup_dir / MANIFEST).read_text())
    assert desc["format"] == "wharf-backup" and desc["version"] == 1
    assert desc["blobs"]["count"] > 0 and desc["blobs"]["linked"] == desc["blobs"]["count"]
    assert {f["name"] for f in desc["files"]} >= {"token.key"}
    # the backup directory is as private as the data directory
    assert os.stat(backup_dir).st_mode & 0o077 == 0

    # restore into a fresh data directory and serve it
    restored_dir = str(tmp_path / "restored" / "data")
    p = ok(wharf(srv, "restore", str(backup_dir), data_dir=restored_dir), "restore")
    assert "restored" in p.stdout, p.stdout
    found = check_blob_store(restored_dir)
    assert len(found) == desc["blobs"]["count"]
    assert sum(found.values()) == desc["blobs"]["bytes"]
    new = servers.new(data_dir=restored_dir, name="restored")
    rreg = new.registry()

    # every image of the backup, bit-identical
    for key, digest in images.items():
        got = pull_all(rreg, *key)
        assert got == before[key], f"{key} differs after the restore"
        assert "sha256:" + hashlib.sha256(got["manifest"]).hexdigest() == digest
    # skopeo pulls them too, digests preserved
    for i in range(3):
        out = tmp_path / f"pulled{i}"
        skopeo.copy(f"docker://{new.host}/team/app{i}:v{i}", f"oci:{out}:x", "--preserve-digests")
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == images[(f"team/app{i}", f"v{i}")]

    # the pushes around the backup: done before it began -> there; begun after it ended -> not;
    # in between -> whole or absent
    r = rreg.get("/v2/team/busy/tags/list")
    assert r.status_code == 200, describe(r)
    tags = set(r.json().get("tags") or [])
    for tag, img, began, accepted in pusher.done:
        if accepted < t0:
            assert tag in tags, f"{tag} was pushed before the backup began but is not restored"
        elif began > t1:
            assert tag not in tags, f"{tag} was pushed after the backup ended but is restored"
        if tag in tags:
            got = pull_all(rreg, "team/busy", tag)
            assert got["manifest"] == img.manifest
            for d, data in img.blobs.items():
                assert got[d] == data

    # accounts, robots and tokens
    r = requests.get(f"{new.url}/api/v2.0/users/current", auth=("alice", "Alice-Passw0rd"),
                     timeout=30)
    assert r.status_code == 200 and r.json()["username"] == "alice", describe(r)
    robot_reg = Registry(new.url, auth=(robot_name, robot_secret))
    assert robot_reg.get_manifest("team/app1", "v1").status_code == 200
    bearer = Registry(new.url, auth=None)
    bearer.session.headers["Authorization"] = f"Bearer {old_token}"
    r = bearer.get_manifest("team/app0", "v0")
    assert r.status_code == 200, "a token issued before the backup: " + describe(r)
    # and the restored registry takes pushes
    img = make_image(layers=1)
    rreg.push_image("team/after", img, "a")
    assert pull_all(rreg, "team/after", "a")["manifest"] == img.manifest
    # the original is untouched by all this
    assert pull_all(reg, "team/app2", "v2") == before[("team/app2", "v2")]


@pytest.fixture
def small_backup(servers, tmp_path):
    """A server with two images, and a backup of it on the same file system."""
    srv = servers.new()
    reg = srv.registry()
    imgs = [make_image(layers=2) for _ in range(2)]
    for i, img in enumerate(imgs):
        reg.push_image("library/small", img, f"s{i}")
    backup_dir = tmp_path / "bk"
    ok(wharf(srv, "backup", str(backup_dir)), "backup")
    return srv, imgs, backup_dir


def replace_file(path, data: bytes):
    """Replaces a file by a new one (a backup's blobs are hard links to the
    server's: writing into them would damage the server's copy too)."""
    tmp = str(path) + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def assert_refused(p, *words):
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}{p.stderr}"
    for w in words:
        assert w in p.stderr, p.stderr


def assert_nothing_restored(data_dir):
    assert not os.path.exists(data_dir) or os.listdir(data_dir) in ([], ["wharf.lock"]), (
        os.listdir(data_dir))


def test_backup_refuses_existing_paths_and_bad_usage(small_backup, tmp_path):
    srv, _, backup_dir = small_backup
    before = sorted(os.listdir(backup_dir))
    p = wharf(srv, "backup", str(backup_dir))
    assert_refused(p, "exists and is not an empty directory")
    assert sorted(os.listdir(backup_dir)) == before
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_refused(wharf(srv, "backup", str(a_file)), "not an empty directory")
    assert a_file.read_text() == "x"
    # an empty directory is taken
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(wharf(srv, "backup", str(empty)), "backup into an empty directory")
    assert (empty / MANIFEST).is_file()
    for argv in (["backup"], ["backup", "a", "b"], ["backup", "--frob", "x"], ["restore"],
                 ["restore", "a", "b"]):
        p = wharf(srv, *argv)
        assert p.returncode == 2, (argv, p.returncode, p.stderr)
        assert "--help" in p.stderr, p.stderr
    # a data directory without a registry has nothing to back up
    p = wharf(srv, "backup", str(tmp_path / "x"), data_dir=str(tmp_path / "nothing"))
    assert p.returncode == 1 and not (tmp_path / "x").exists(), p.stderr
    assert_refused(wharf(srv, "restore", str(tmp_path / "nothing"), data_dir=str(tmp_path / "r")))
    assert_nothing_restored(str(tmp_path / "r"))
    assert_refused(wharf(srv, "restore", str(tmp_path), data_dir=str(tmp_path / "r")),
                   "not a wharf backup")
    assert_nothing_restored(str(tmp_path / "r"))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "missing"])
def test_restore_refuses_a_damaged_blob(small_backup, tmp_path, damage):
    srv, imgs, backup_dir = small_backup
    layer = imgs[1].layers[0]
    path = blob_path(str(backup_dir), layer)
    data = open(path, "rb").read()
    if damage == "truncated":
        replace_file(path, data[: len(data) // 2])
    elif damage == "flipped":
        replace_file(path, data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        os.unlink(path)
    target = str(tmp_path / "restored")
    p = wharf(srv, "restore", str(backup_dir), data_dir=target)
    assert_refused(p, layer, {"truncated": "damaged", "flipped": "does not match its digest",
                              "missing": "missing"}[damage])
    assert_nothing_restored(target)
    # the server's own copy is whole
    assert pull_all(srv.registry(), "library/small", "s1")["manifest"] == imgs[1].manifest


def test_restore_refuses_a_damaged_description_or_metadata(small_backup, tmp_path):
    srv, _, backup_dir = small_backup
    desc_path = backup_dir / MANIFEST
    good = desc_path.read_text()
    target = str(tmp_path / "restored")

    desc = json.loads(good)
    desc["schema_version"] = 9999
    desc_path.write_text(json.dumps(desc))
    assert_refused(wharf(srv, "restore", str(backup_dir), data_dir=target),
                   "schema version 9999, newer than this wharf knows")
    assert_nothing_restored(target)

    desc = json.loads(good)
    desc["blobs"]["count"] += 1
    desc_path.write_text(json.dumps(desc))
    assert_refused(wharf(srv, "restore", str(backup_dir), data_dir=target), "not what")
    assert_nothing_restored(target)

    desc_path.write_text("{not json")
    assert_refused(wharf(srv, "restore", str(backup_dir), data_dir=target), "not valid JSON")

    desc_path.write_text(good)
    db = backup_dir / "wharf.db"
    data = db.read_bytes()
    replace_file(db, data[:4096] + bytes([data[4096] ^ 0xFF]) + data[4097:])
    assert_refused(wharf(srv, "restore", str(backup_dir), data_dir=target), "wharf.db",
                   "damaged")
    assert_nothing_restored(target)

    # a name outside what a backup holds is refused (no path tricks)
    replace_file(db, data)
    desc = json.loads(good)
    desc["files"].append({"name": "../escape", "sha256": "0" * 64, "bytes": 1})
    desc_path.write_text(json.dumps(desc))
    assert_refused(wharf(srv, "restore", str(backup_dir), data_dir=target), "../escape")
    assert_nothing_restored(target)
    assert not (tmp_path / "escape").exists()

    desc_path.write_text(good)
    ok(wharf(srv, "restore", str(backup_dir), data_dir=target), "restore of the repaired backup")


def test_restore_refuses_a_running_servers_data_dir(small_backup, servers, tmp_path):
    srv, imgs, backup_dir = small_backup
    other = servers.new()
    listing = sorted(os.listdir(other.data_dir))
    p = wharf(srv, "restore", str(backup_dir), data_dir=other.data_dir)
    assert_refused(p, "in use by a running wharf server", f"PID {other.proc.pid}")
    assert sorted(os.listdir(other.data_dir)) == listing
    assert other.registry().get("/v2/").status_code == 200
    # stopped, its directory is still not empty: refused too
    other.stop()
    assert_refused(wharf(srv, "restore", str(backup_dir), data_dir=other.data_dir), "not empty")
    # a server cannot start on a directory being restored: the restore holds the lock
    # (seen from the other side: the lock file is there and free once it is done)
    target = str(tmp_path / "fresh")
    ok(wharf(srv, "restore", str(backup_dir), data_dir=target), "restore")
    assert sorted(os.listdir(target)) == ["blobs", "token.key", "wharf.db", "wharf.lock"]


def test_backup_names_a_blob_gone_from_the_data_dir(servers, tmp_path):
    srv = servers.new()
    img = make_image(layers=2)
    srv.registry().push_image("library/gone", img, "g")
    os.unlink(blob_path(srv.data_dir, img.layers[1]))
    p = wharf(srv, "backup", str(tmp_path / "bk"))
    assert_refused(p, img.layers[1], "missing", "no backup written")
    assert not (tmp_path / "bk").exists()
    assert not [e for e in os.listdir(tmp_path) if e.startswith("bk.tmp-")]


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MiB tmpfs, unmounted at the end (as in test_full_disk.py)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{p.stderr.strip() or p.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_backup_on_a_full_disk_fails_cleanly(servers, small_disk):
    srv = servers.new()
    reg = srv.registry()
    small = make_image(layers=2)
    reg.push_image("library/small", small, "s")
    # on another file system the blobs are copied (and checked), not linked
    p = ok(wharf(srv, "backup", str(small_disk / "first")), "backup onto the tmpfs")
    desc = json.loads((small_disk / "first" / MANIFEST).read_text())
    assert desc["blobs"]["copied"] == desc["blobs"]["count"] == 4 and desc["blobs"]["linked"] == 0
    check_blob_store(str(small_disk / "first"))
    ok(wharf(srv, "restore", str(small_disk / "first"), data_dir=str(small_disk.parent / "r")),
       "restore from the tmpfs")
    subprocess.run(["rm", "-rf", str(small_disk / "first")], check=True)
    # ~32 MiB of blobs that do not compress: more than the 20 MiB disk holds
    for i in range(4):
        reg.push_blob("library/big", os.urandom(8 << 20))
    img = make_image(layers=1)
    reg.push_image("library/big", img, "b")
    target = small_disk / "bk"
    p = wharf(srv, "backup", str(target))
    assert_refused(p, "no space left", "no backup written")
    assert os.listdir(small_disk) == [], os.listdir(small_disk)
    # a disk with room takes the same backup
    ok(wharf(srv, "backup", str(small_disk.parent / "roomy")), "backup")
    # the server never noticed
    assert pull_all(reg, "library/big", "b")["manifest"] == img.manifest
