"""End-to-end tests of online garbage collection and the audit-log purge
(docs/operations.md, "Garbage collection"): Harbor's /system/gc and
/system/purgeaudit APIs and `wharf gc`, against a real server whose review
delay (gc.review_delay) is 0, so what a delete leaves unreferenced is due at
once.

After each collection the blob directory holds exactly the blobs the
surviving images reference (manifests, configs, layers): its size on disk
equals the sum of their sizes. The race test pushes over HTTP while
collections run back to back, and checks that a manifest the registry
accepted never refers to a blob it lost.
"""
import hashlib
import json
import os
import threading
import time

import ocilayout
import requests
from apiclient import Api, describe, expect_error
from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER, MT_MANIFEST

RUN_TIMEOUT = 60.0
FAST = {"WHARF_GC_REVIEW_DELAY": "0"}


def admin(srv) -> Api:
    return Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))


def small_image(seed, layers=2):
    return ocilayout.make_image(layers=layers, files_per_layer=1, file_size=512, seed=seed)


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def blob_dir_usage(srv) -> dict:
    """digest -> size of every file under the blob directory."""
    out = {}
    root = os.path.join(srv.data_dir, "blobs")
    for dirpath, _, files in os.walk(root):
        for f in files:
            alg = os.path.basename(os.path.dirname(dirpath))
            out[f"{alg}:{f}"] = os.path.getsize(os.path.join(dirpath, f))
    return out


def referenced(*images, indexes=()) -> dict:
    """digest -> size of what the given images and indexes reference."""
    out = {}
    for img in images:
        out[img.manifest_digest] = len(img.manifest)
        for d, data in img.blobs.items():
            out[d] = len(data)
    for idx in indexes:
        out[idx.index_digest] = len(idx.index)
    return out


def assert_disk_is(srv, want: dict):
    have = blob_dir_usage(srv)
    assert set(have) == set(want), (
        f"missing {sorted(set(want) - set(have))}, left over {sorted(set(have) - set(want))}")
    assert sum(have.values()) == sum(want.values())


def start_gc(api, **params):
    """Starts a Manual run through the API; returns its id."""
    r = api.post("/system/gc/schedule", {"schedule": {"type": "Manual"},
                                         "parameters": params})
    assert r.status_code == 201, describe(r)
    return r.headers["Location"].rsplit("/", 1)[1]


def wait_gc_progress(api, gc_id, timeout, what):
    """Waits until run `gc_id` is Running with blobs deleted; returns its history item."""
    def progressed():
        item = api.get(f"/system/gc/{gc_id}").json()
        return item if item["job_status"] == "Running" and item["blobs_deleted"] > 0 else None

    return wait_until(progressed, timeout, what, interval=0.05)


def wait_gc_end(api, gc_id, timeout, what=None):
    """Waits until run `gc_id` is neither Pending nor Running; returns its history item."""
    item = {}

    def ended():
        nonlocal item
        item = api.get(f"/system/gc/{gc_id}").json()
        return item["job_status"] not in ("Pending", "Running")

    wait_until(ended, timeout, what or f"gc run {gc_id} to end")
    return item


def run_gc(srv, **params) -> dict:
    """A Manual run through the API, waited for; returns its history item."""
    api = admin(srv)

    def idle():
        return all(h["job_status"] not in ("Pending", "Running")
                   for h in api.get("/system/gc", params={"page_size": 5}).json())

    wait_until(idle, RUN_TIMEOUT, "the gc run going on to end")
    r = api.post("/system/gc/schedule", {"schedule": {"type": "Manual"}, "parameters": params})
    assert r.status_code == 201, describe(r)
    loc = r.headers["Location"]
    assert loc.startswith("/api/v2.0/system/gc/"), loc
    gc_id = int(loc.rsplit("/", 1)[1])
    item = {}

    def done():
        nonlocal item
        item = api.get(f"/system/gc/{gc_id}").json()
        return item["job_status"] in ("Success", "Error", "Stopped")

    wait_until(done, RUN_TIMEOUT, f"gc run {gc_id} to end")
    assert item["job_status"] == "Success", item
    return item


def delete_repo(srv, project, repo):
    r = admin(srv).delete(f"/projects/{project}/repositories/{repo}")
    assert r.status_code == 200, describe(r)


def summarised(srv):
    """The manifest digests whose list summaries the database holds."""
    import sqlite3

    db = sqlite3.connect(os.path.join(srv.data_dir, "wharf.db"))
    try:
        return {r[0] for r in db.execute("SELECT digest FROM manifest_summary")}
    finally:
        db.close()


def test_gc_frees_a_deleted_repository_keeps_shared_blobs_and_dry_run_deletes_nothing(servers):
    srv = servers.new(env=FAST)
    reg = srv.registry()
    shared, own = small_image("gc-shared"), small_image("gc-own")
    reg.push_image("library/a", shared, "v1")
    reg.push_image("library/a", own, "v2")
    reg.push_image("library/b", shared, "v1")  # the same image in another repository
    assert_disk_is(srv, referenced(shared, own))
    assert {own.manifest_digest, shared.manifest_digest} <= summarised(srv)

    delete_repo(srv, "library", "a")
    before = blob_dir_usage(srv)
    dry = run_gc(srv, dry_run=True)
    assert blob_dir_usage(srv) == before, "a dry run deleted something"
    freed = referenced(own)
    assert dry["blobs_deleted"] == len(freed), dry
    assert dry["bytes_freed"] == sum(freed.values()), dry
    assert json.loads(dry["job_parameters"])["dry_run"] is True
    log = admin(srv).get(f"/system/gc/{dry['id']}/log")
    assert log.status_code == 200 and log.headers["Content-Type"].startswith("text/plain")
    assert f"would delete blob {own.manifest_digest}" in log.text, log.text

    item = run_gc(srv)
    assert item["blobs_deleted"] == len(freed) and item["bytes_freed"] == sum(freed.values())
    assert_disk_is(srv, referenced(shared))
    # what lists showed of the collected manifest goes with its bytes
    assert own.manifest_digest not in summarised(srv)
    assert shared.manifest_digest in summarised(srv)
    for d, data in shared.blobs.items():  # the surviving image is whole
        r = reg.get(f"/v2/library/b/blobs/{d}")
        assert r.status_code == 200 and r.content == data, describe(r)
    r = reg.get_manifest("library/b", "v1")
    assert r.status_code == 200 and r.content == shared.manifest
    # nothing left to do: a second run frees nothing
    again = run_gc(srv)
    assert again["blobs_deleted"] == 0 and again["bytes_freed"] == 0
    # history, newest first, with Harbor's fields
    r = admin(srv).get("/system/gc", params={"page": 1, "page_size": 2})
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "3", describe(r)
    hist = r.json()
    assert [h["id"] for h in hist] == [again["id"], item["id"]]
    for h in hist:
        assert h["job_name"] == "GARBAGE_COLLECTION" and h["job_kind"] == "MANUAL"
        assert h["deleted"] is False and h["creation_time"] and h["update_time"]
    # /metrics shows the queues and what was freed
    m = requests.get(srv.url + "/metrics", timeout=10).text
    assert "wharf_gc_blob_reviews_queued 0" in m, m
    assert f"wharf_gc_blobs_deleted_total {len(freed)}" in m
    assert f"wharf_gc_bytes_freed_total {sum(freed.values())}" in m


def test_gc_cli_tags_manifests_and_delete_untagged(servers):
    srv = servers.new(env=FAST)
    reg = srv.registry()
    old, new, kept = small_image("gc-old"), small_image("gc-new"), small_image("gc-kept")
    reg.push_image("library/app", old, "v1")
    reg.push_image("library/app", new, "v1")  # the tag moves: old is untagged now
    reg.push_image("library/app", kept, "stable")

    p = srv.cli("gc")  # the server keeps running beside it
    assert p.returncode == 0, p.stdout + p.stderr
    assert "freed: 0 blobs, 0 bytes, 0 artifacts" in p.stdout, p.stdout
    assert_disk_is(srv, referenced(old, new, kept))  # untagged artifacts are kept by default

    p = srv.cli("gc", "--dry-run", "--delete-untagged")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"would delete artifact library/app@{old.manifest_digest}" in p.stdout, p.stdout
    assert "would free: 0 blobs, 0 bytes, 1 artifacts" in p.stdout, p.stdout
    assert_disk_is(srv, referenced(old, new, kept))

    p = srv.cli("gc", "--delete-untagged")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"deleted artifact library/app@{old.manifest_digest}" in p.stdout, p.stdout
    assert_disk_is(srv, referenced(new, kept))
    r = reg.get_manifest("library/app", old.manifest_digest)
    assert r.status_code == 404

    # a tag deleted through the API: untagged, collected the same way
    r = admin(srv).delete("/projects/library/repositories/app/artifacts/stable/tags/stable")
    assert r.status_code == 200, describe(r)
    run_gc(srv, delete_untagged=True)
    assert_disk_is(srv, referenced(new))
    # a manifest deleted through /v2/: its blobs go without delete_untagged
    r = reg.delete(f"/v2/library/app/manifests/{new.manifest_digest}")
    assert r.status_code == 202, describe(r)
    item = run_gc(srv)
    assert item["blobs_deleted"] == len(referenced(new)), item
    assert_disk_is(srv, {})
    # the CLI's runs are in the history
    hist = admin(srv).get("/system/gc").json()
    assert [h["job_trigger"] for h in hist].count("CLI") == 3, hist


def test_gc_index_delete_takes_unreferenced_children(servers):
    srv = servers.new(env=FAST)
    reg = srv.registry()
    kids = [small_image(f"gc-kid-{a}", layers=1) for a in ("amd64", "arm64", "s390x")]
    for k in kids:
        reg.push_image("library/multi", k)
    idx = ocilayout.make_index(kids)
    r = reg.push_manifest("library/multi", "latest", idx.index, ocilayout.MT_INDEX)
    assert r.status_code == 201, describe(r)
    # the s390x child is tagged on its own: it stays
    r = reg.push_manifest("library/multi", "s390x", kids[2].manifest)
    assert r.status_code == 201, describe(r)
    run_gc(srv)
    assert_disk_is(srv, referenced(*kids, indexes=[idx]))

    r = reg.delete(f"/v2/library/multi/manifests/{idx.index_digest}")
    assert r.status_code == 202, describe(r)
    item = run_gc(srv)  # without delete_untagged: an index's children go with it
    assert item["artifacts_deleted"] == 2, item
    assert_disk_is(srv, referenced(kids[2]))
    for k in kids[:2]:
        assert reg.get_manifest("library/multi", k.manifest_digest).status_code == 404
    assert reg.get_manifest("library/multi", "s390x").status_code == 200


def race(srv, iterations: int) -> tuple:
    """Pushes `iterations` images (a fresh config and layer, and one of a few
    shared layers pushed again and again) while collections run back to back;
    half of the accepted manifests are deleted again at once. Returns
    (accepted, refused, runs, survivors)."""
    deadline = time.monotonic() + 240
    shared = [os.urandom(64) for _ in range(3)]
    stop = threading.Event()
    runs, errors = [0], []

    def collector():
        api = admin(srv)
        while not stop.is_set():
            r = api.post("/system/gc/schedule",
                         {"schedule": {"type": "Manual"}, "parameters": {"workers": 2}})
            if r.status_code == 409:  # one is going on: wait for it
                gc_id = api.get("/system/gc", params={"page_size": 1}).json()[0]["id"]
            elif r.status_code == 201:
                runs[0] += 1
                gc_id = r.headers["Location"].rsplit("/", 1)[1]
            else:
                errors.append(describe(r))
                return
            while not stop.is_set():
                s = api.get(f"/system/gc/{gc_id}").json()["job_status"]
                if s in ("Success", "Error", "Stopped"):
                    if s != "Success":
                        errors.append(f"run {gc_id} ended {s}")
                    break

    reg = srv.registry()

    def upload(data: bytes) -> str:
        for _ in range(20):
            r = reg.post("/v2/library/race/blobs/uploads/")
            assert r.status_code == 202, describe(r)
            r = reg.put(r.headers["Location"], params={"digest": sha(data)}, data=data,
                        headers={"Content-Type": "application/octet-stream"})
            if r.status_code == 201:
                return sha(data)
            # the bytes were collected while they were stored: the client sends them again
            assert r.status_code == 400 and "BLOB_UPLOAD_INVALID" in r.text, describe(r)
        raise AssertionError("an upload kept being collected")

    t = threading.Thread(target=collector, daemon=True)
    t.start()
    accepted = refused = 0
    survivors = {}  # what the manifests left in place reference: digest -> size
    try:
        for i in range(iterations):
            assert time.monotonic() < deadline, f"only {i} iterations in time"
            config = json.dumps({"architecture": "amd64", "os": "linux", "i": i}).encode()
            layers = [os.urandom(32) + str(i).encode(), shared[i % len(shared)]]
            for b in [config] + layers:
                upload(b)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": sha(b), "size": len(b)} for b in layers],
            }).encode()
            r = reg.push_manifest("library/race", sha(manifest), manifest)
            if r.status_code != 201:
                # a blob was collected before the manifest came: refused, never half-accepted
                assert r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text, describe(r)
                refused += 1
                continue
            accepted += 1
            for b in [config] + layers:
                g = reg.get(f"/v2/library/race/blobs/{sha(b)}")
                assert g.status_code == 200 and g.content == b, \
                    f"iteration {i}: blob {sha(b)} of an accepted manifest: " + describe(g)
            g = reg.get_manifest("library/race", sha(manifest))
            assert g.status_code == 200 and g.content == manifest, describe(g)
            if i % 2:  # half go again at once: their blobs become garbage
                d = reg.delete(f"/v2/library/race/manifests/{sha(manifest)}")
                assert d.status_code == 202, describe(d)
            else:
                for b in [config, manifest] + layers:
                    survivors[sha(b)] = len(b)
    finally:
        stop.set()
        t.join(timeout=RUN_TIMEOUT)
    assert not errors, errors
    assert runs[0] >= 10, f"only {runs[0]} collections ran beside the pushes"
    return accepted, refused, survivors


def settled(srv, survivors: dict):
    """Runs collections until the blob directory holds exactly `survivors`."""
    def exact():
        run_gc(srv)
        return set(blob_dir_usage(srv)) == set(survivors)

    try:
        wait_until(exact, 30, "the last garbage to be collected")
    except AssertionError:
        have = blob_dir_usage(srv)
        raise AssertionError(f"missing {sorted(set(survivors) - set(have))}, "
                             f"left over {sorted(set(have) - set(survivors))}")
    assert_disk_is(srv, survivors)


def test_gc_push_racing_collections_never_loses_a_referenced_blob(servers):
    """No grace delay: a fresh blob is due for review the moment it is
    stored, so collections win most races against the manifest that would
    reference it. The registry must then refuse the manifest
    (MANIFEST_BLOB_UNKNOWN), or the upload whose bytes were collected while
    being stored (BLOB_UPLOAD_INVALID); a manifest it accepts must have every
    blob readable. Then with a delay of one second, where pushes win."""
    srv = servers.new(env=FAST)
    accepted, refused, survivors = race(srv, 700)
    assert accepted + refused == 700
    settled(srv, survivors)

    srv = servers.new(env={"WHARF_GC_REVIEW_DELAY": "1"})
    accepted, refused, survivors = race(srv, 500)
    assert accepted >= 450, f"{accepted} accepted, {refused} refused"
    settled(srv, survivors)


def test_gc_api_validation_and_schedule(servers):
    srv = servers.new(env=FAST)
    api = admin(srv)
    r = api.post("/system/gc/schedule",
                 {"schedule": {"type": "Manual"}, "parameters": {"workers": 0}})
    e = expect_error(r, 400, "BAD_REQUEST")
    assert "Invalid number of workers:0" in e["message"], e
    r = api.post("/system/gc/schedule",
                 {"schedule": {"type": "Manual"}, "parameters": {"workers": 11}})
    expect_error(r, 400, "BAD_REQUEST")
    r = api.post("/system/gc/schedule",
                 {"schedule": {"type": "Manual"}, "parameters": {"dry_run": "yes"}})
    expect_error(r, 400, "BAD_REQUEST")
    r = api.post("/system/gc/schedule", {"schedule": {"type": "Custom", "cron": "61 * * * * *"}})
    expect_error(r, 400, "BAD_REQUEST")
    expect_error(api.post("/system/gc/schedule", {"parameters": {}}), 422, "UNPROCESSABLE_ENTITY")
    expect_error(api.post("/system/gc/schedule", {"schedule": {"type": "Yearly"}}), 422,
                 "UNPROCESSABLE_ENTITY")
    expect_error(api.get("/system/gc/999"), 404, "NOT_FOUND")
    expect_error(api.get("/system/gc/abc"), 400, "BAD_REQUEST")
    expect_error(api.put("/system/gc/999"), 404, "NOT_FOUND")
    expect_error(api.get("/system/gc/999/log"), 404, "NOT_FOUND")

    assert api.get("/system/gc/schedule").json() == {}
    r = api.put("/system/gc/schedule", {"schedule": {"type": "Daily"},
                                         "parameters": {"delete_untagged": True, "workers": 3}})
    assert r.status_code == 200, describe(r)
    s = api.get("/system/gc/schedule").json()
    assert s["schedule"]["type"] == "Daily" and s["schedule"]["cron"] == "0 0 0 * * *", s
    assert s["parameters"] == {"delete_untagged": True, "dry_run": False, "workers": 3}, s
    assert s["schedule"]["next_scheduled_time"]
    # a schedule every two seconds fires a run with its parameters
    r = api.put("/system/gc/schedule", {"schedule": {"type": "Custom", "cron": "*/2 * * * * *"},
                                         "parameters": {"dry_run": True}})
    assert r.status_code == 200, describe(r)

    def fired():
        h = api.get("/system/gc").json()
        return [x for x in h if x["job_kind"] == "SCHEDULE" and x["job_status"] == "Success"]

    wait_until(fired, 30, "a scheduled gc run")
    item = fired()[0]
    assert json.loads(item["job_parameters"])["dry_run"] is True
    assert item["schedule"]["cron"] == "*/2 * * * * *"
    r = api.put("/system/gc/schedule", {"schedule": {"type": "None"}})
    assert r.status_code == 200
    assert api.get("/system/gc/schedule").json() == {}
    # administrators only
    user = api.create_user("gcuser")
    other = Api(srv.url, auth=("gcuser", "Passw0rd-x"))
    for method, path in [("GET", "/system/gc"), ("GET", "/system/gc/schedule"),
                         ("POST", "/system/gc/schedule"), ("GET", "/system/purgeaudit")]:
        expect_error(other.req(method, path, json={"schedule": {"type": "Manual"}}), 403,
                     "FORBIDDEN")
        expect_error(Api(srv.url).req(method, path), 401, "UNAUTHORIZED")
    assert user


def test_purgeaudit(servers):
    srv = servers.new(env=FAST)
    api = admin(srv)
    reg = srv.registry()
    img = small_image("purge", layers=1)
    reg.push_image("library/p", img, "v1")
    for _ in range(3):
        assert reg.get_manifest("library/p", "v1").status_code == 200

    def ops():
        return [a["operation"] for a in api.get("/audit-logs", params={"page_size": 100}).json()]

    wait_until(lambda: "pull" in ops() and "create" in ops(), 30, "audit entries")
    pulls = ops().count("pull")

    def purge(**params):
        r = api.post("/system/purgeaudit/schedule",
                     {"schedule": {"type": "Manual"}, "parameters": params})
        assert r.status_code == 201, describe(r)
        pid = r.headers["Location"].rsplit("/", 1)[1]
        item = {}

        def done():
            nonlocal item
            item = api.get(f"/system/purgeaudit/{pid}").json()
            return item["job_status"] in ("Success", "Error", "Stopped")

        wait_until(done, RUN_TIMEOUT, "purge run")
        assert item["job_status"] == "Success" and item["job_name"] == "PURGE_AUDIT_LOG", item
        return item

    dry = purge(audit_retention_hour=0, include_operations="pull", dry_run=True)
    assert dry["audit_entries_purged"] == pulls, dry
    assert ops().count("pull") == pulls
    # a retention that keeps everything purges nothing
    assert purge(audit_retention_hour=24, include_operations="pull")["audit_entries_purged"] == 0
    item = purge(audit_retention_hour=0, include_operations="pull")
    assert item["audit_entries_purged"] == pulls
    left = ops()
    assert "pull" not in left and "create" in left, left
    log = api.get(f"/system/purgeaudit/{item['id']}/log").text
    assert f"purged {pulls} audit entries" in log, log
    # validation and the schedule
    r = api.post("/system/purgeaudit/schedule",
                 {"schedule": {"type": "Manual"}, "parameters": {"include_operations": "pull;rm"}})
    expect_error(r, 400, "BAD_REQUEST")
    r = api.post("/system/purgeaudit/schedule",
                 {"schedule": {"type": "Manual"}, "parameters": {"audit_retention_hour": -1}})
    expect_error(r, 400, "BAD_REQUEST")
    r = api.put("/system/purgeaudit/schedule",
                {"schedule": {"type": "Weekly"},
                 "parameters": {"audit_retention_hour": 168, "include_operations": "pull"}})
    assert r.status_code == 200, describe(r)
    s = api.get("/system/purgeaudit/schedule").json()
    assert s["job_name"] == "PURGE_AUDIT_LOG" and s["schedule"]["type"] == "Weekly", s
    assert s["parameters"]["audit_retention_hour"] == 168
    h = api.get("/system/purgeaudit")
    assert h.headers["X-Total-Count"] == "3"
    # the gc history is its own
    assert api.get("/system/gc").headers["X-Total-Count"] == "0"


N_SEEDED = 50000


def test_gc_stop_a_running_collection_and_finish_later(servers):
    """50000 unreferenced blobs seeded into a stopped server (files and rows:
    the blob trigger queues them, as uploads would); a run is stopped while it
    goes (PUT /system/gc/{id}), ends Stopped with part of the work done, and
    the next run collects the rest."""
    srv = servers.new(env=FAST)
    assert srv.stop() == 0
    seed_unreferenced(srv, N_SEEDED, b"gc-stop")
    srv.start()
    api = admin(srv)
    r = api.post("/system/gc/schedule", {"schedule": {"type": "Manual"}})
    assert r.status_code == 201, describe(r)
    gc_id = r.headers["Location"].rsplit("/", 1)[1]
    wait_until(lambda: api.get(f"/system/gc/{gc_id}").json()["job_status"] == "Running", 30,
               "the run to start")
    r = api.put(f"/system/gc/{gc_id}")
    assert r.status_code == 200, describe(r)
    item = {}

    def ended():
        nonlocal item
        item = api.get(f"/system/gc/{gc_id}").json()
        return item["job_status"] not in ("Pending", "Running")

    wait_until(ended, RUN_TIMEOUT, "the stopped run to end")
    assert item["job_status"] == "Stopped", item
    assert 0 < len(blob_dir_usage(srv)) < N_SEEDED
    assert item["blobs_deleted"] == N_SEEDED - len(blob_dir_usage(srv)), item
    assert "stopped:" in api.get(f"/system/gc/{gc_id}/log").text
    rest = run_gc(srv)
    assert rest["blobs_deleted"] == N_SEEDED - item["blobs_deleted"], rest
    assert_disk_is(srv, {})


def seed_unreferenced(srv, n, tag):
    """n blobs nothing references, files and rows, seeded into the stopped server's
    SQLite database (the blob trigger queues their reviews, as uploads would)."""
    import sqlite3
    db = sqlite3.connect(os.path.join(srv.data_dir, "wharf.db"))
    rows = []
    for i in range(n):
        data = i.to_bytes(4, "big") + tag
        hexd = hashlib.sha256(data).hexdigest()
        d = os.path.join(srv.data_dir, "blobs", "sha256", hexd[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, hexd), "wb") as f:
            f.write(data)
        rows.append(("sha256:" + hexd, len(data), 0))
    with db:
        db.executemany("INSERT INTO blob(digest, size, created_ms) VALUES(?, ?, ?)", rows)
    db.close()


def test_gc_node_killed_mid_run_taken_back_at_restart(servers):
    """A server SIGKILLed in the middle of a collection of 50000 unreferenced
    blobs (one worker, so that it is still going): its run is not left Running
    forever nor ended as Error; the server starting again takes it back, goes on
    from the counts and log so far, and ends it Success. Nothing referenced is
    deleted, everything unreferenced is."""
    srv = servers.new(env={**FAST, "WHARF_SCAN_LEASE": "3"})
    reg = srv.registry()
    keep = small_image("gc-kill-keep")
    reg.push_image("library/keep", keep, "v1")
    assert srv.stop() == 0
    seed_unreferenced(srv, N_SEEDED, b"gc-kill")
    srv.start(srv.port)
    api = admin(srv)
    gc_id = start_gc(api, workers=1)
    before = wait_gc_progress(api, gc_id, 30, "the run to make progress")
    srv.kill()
    left = len(blob_dir_usage(srv)) - len(referenced(keep))
    assert 0 < left < N_SEEDED, left  # killed mid-run
    srv.start(srv.port)
    item = wait_gc_end(api, gc_id, RUN_TIMEOUT, "the run taken back to end")
    log = api.get(f"/system/gc/{gc_id}/log").text
    assert item["job_status"] == "Success", (item, log[-3000:])
    assert_disk_is(srv, referenced(keep))
    # the counts go on from the last progress written before the kill
    assert before["blobs_deleted"] <= item["blobs_deleted"] <= N_SEEDED, (before, item)
    assert "attempt 1 of 3 was cut off: the node running it stopped" in log, log
    assert "attempt 2: taken over" in log and "done:" in log, log
    assert "garbage collection %s started" % gc_id in log, log  # the first attempt's lines kept
    for d, data in keep.blobs.items():
        r = reg.get(f"/v2/library/keep/blobs/{d}")
        assert r.status_code == 200 and r.content == data, describe(r)
    assert run_gc(srv)["blobs_deleted"] == 0
