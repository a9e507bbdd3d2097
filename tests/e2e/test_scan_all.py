"""End-to-end tests of scan-all (docs/scanning.md, "Scan all"): Harbor's
/system/scanAll/schedule (Manual runs, cron schedules), /system/scanAll/stop
and the Stats of /scans/all/metrics and /scans/schedule/metrics, and the
audit entries (operation "scan") of the scans that end.

Images are small random ones (ocilayout.py) pushed through the registry
API, with an index of two image children, a non-image OCI artifact and a
signature tagged the cosign way beside them: a run must queue exactly the
images.  The vulnerability database is the fixture database (its Alpine
feed), imported into each server.
"""
import hashlib
import json
import os
import threading
import time


import ocilayout
from apiclient import Api, describe, enc_repo, expect_error
from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "vulndb")
MIME = "application/vnd.security.vulnerability.report; version=1.1"
RUN_TIMEOUT = 120.0
SCHEDULE = "/system/scanAll/schedule"
METRICS = "/scans/all/metrics"
SCHEDULED_METRICS = "/scans/schedule/metrics"
STATUSES = {"Pending", "Running", "Success", "Error", "Stopped"}
CONFLICT = "a previous scan all job aleady exits, its status is Running"


def import_db(srv):
    p = srv.cli("vulndb", "import", os.path.join(DATA, "alpine"), timeout=300)
    assert p.returncode == 0, p.stderr


def admin(srv) -> Api:
    return Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))


def small_image(seed):
    return ocilayout.make_image(layers=1, files_per_layer=1, file_size=256, seed=seed)


def desc(mt, b):
    return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b)}


class Content:
    """What a test pushed: the digests a run must queue and those it must not."""

    def __init__(self):
        self.images = []  # (repository, digest) of every image, index children included
        self.others = []  # (repository, digest) of what is not to be scanned


def push_images(srv, project, n, repo="app", seed=0) -> Content:
    reg = srv.registry()
    c = Content()
    for i in range(n):
        img = small_image(f"{project}-{repo}-{seed}-{i}")
        reg.push_image(f"{project}/{repo}", img, f"v{i}")
        c.images.append((f"{project}/{repo}", img.manifest_digest))
    return c


def push_mixed(srv, project) -> Content:
    """Three images, an index of two more, a non-image artifact and a cosign-style signature."""
    reg = srv.registry()
    c = push_images(srv, project, 3)
    kids = [small_image(f"{project}-kid-{a}") for a in ("amd64", "arm64")]
    idx = ocilayout.make_index(kids)
    for k in kids:
        reg.push_image(f"{project}/multi", k)
        c.images.append((f"{project}/multi", k.manifest_digest))
    r = reg.push_manifest(f"{project}/multi", "latest", idx.index, ocilayout.MT_INDEX)
    assert r.status_code == 201, describe(r)
    c.others.append((f"{project}/multi", idx.index_digest))
    # an OCI artifact that is not an image
    layer, config = b"not an image layer", b'{"k":"v"}'
    reg.push_blob(f"{project}/thing", layer)
    reg.push_blob(f"{project}/thing", config)
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "artifactType": "application/vnd.example.thing",
                       "config": desc("application/vnd.example.thing.config.v1+json", config),
                       "layers": [desc("application/octet-stream", layer)]}).encode()
    r = reg.push_manifest(f"{project}/thing", "1", body)
    assert r.status_code == 201, describe(r)
    c.others.append((f"{project}/thing", "sha256:" + hashlib.sha256(body).hexdigest()))
    # an image-shaped signature, tagged as cosign tags them
    sig = small_image(f"{project}-sig")
    target = c.images[0][1]
    reg.push_image(f"{project}/app", sig, "sha256-" + target.split(":", 1)[1] + ".sig")
    c.others.append((f"{project}/app", sig.manifest_digest))
    return c


def overview(api, repo, digest):
    project, name = repo.split("/", 1)
    r = api.get(f"/projects/{project}/repositories/{enc_repo(name)}/artifacts/{digest}",
                params={"with_scan_overview": "true"})
    assert r.status_code == 200, describe(r)
    return r.json().get("scan_overview", {}).get(MIME)


def metrics(api, path=METRICS):
    r = api.get(path)
    assert r.status_code == 200, describe(r)
    return r.json()


def wait_done(api, path=METRICS, total=None):
    def done():
        m = metrics(api, path)
        if not m or m["ongoing"] or m["completed"] != m["total"]:
            return None
        return m if total is None or m["total"] == total else None
    return wait_until(done, RUN_TIMEOUT, f"the scan-all run of {path} to finish")


def check_stats(m, trigger):
    assert set(m) == {"total", "completed", "metrics", "ongoing", "trigger"}, m
    assert set(m["metrics"]) == STATUSES, m
    assert m["trigger"] == trigger, m
    assert m["total"] == sum(m["metrics"].values()), m
    assert m["completed"] == m["metrics"]["Success"] + m["metrics"]["Error"] + m["metrics"]["Stopped"]


def scan_audit(api):
    """The audit entries of scans, newest first."""
    return [e for e in api.audit(operation="scan") if e["resource_type"] == "artifact"]


def run_audit(api):
    """(operation, result) of the audit entries of scan-all requests, newest first."""
    return [(e["operation"], e["operation_result"]) for e in api.audit()
            if e["resource_type"] == "scan_all"]


def test_manual_run_scans_every_image_once(servers, unique):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "2"})
    import_db(srv)
    api = admin(srv)
    assert metrics(api) == {} and metrics(api, SCHEDULED_METRICS) == {}
    p1, p2 = f"{unique[:20]}-a", f"{unique[:20]}-b"
    api.create_project(p1)
    api.create_project(p2, metadata={"public": "false"})
    c = push_mixed(srv, p1)
    c2 = push_images(srv, p2, 2, repo="private")
    images = c.images + c2.images

    t0 = time.monotonic()
    r = api.post(SCHEDULE, {"schedule": {"type": "Manual"}})
    assert r.status_code == 201, describe(r)
    assert time.monotonic() - t0 < 5, "the request waited for the run"
    m = wait_done(api, total=len(images))
    check_stats(m, "Manual")
    assert m["metrics"]["Success"] == len(images), m
    assert m["ongoing"] is False
    for repo, digest in images:
        o = overview(api, repo, digest)
        assert o and o["scan_status"] == "Success", (repo, digest, o)
    for repo, digest in c.others[1:]:  # the index shows its children's; the rest nothing
        assert overview(api, repo, digest) is None, (repo, digest)

    # one audit entry per scan, by whoever started the run, in the project's log too
    rows = scan_audit(api)
    assert sorted(e["resource"] for e in rows) == sorted(f"{r}@{d}" for r, d in images)
    for e in rows:
        assert e["username"] == ADMIN_USER and e["operation_result"] is True, e
        assert e["operation_description"].startswith("scan finished, severity "), e
        assert "(scan all " in e["operation_description"], e
    r = api.get(f"/projects/{p2}/logs", params={"page_size": 100})
    assert r.status_code == 200, describe(r)
    assert sorted(e["resource"] for e in r.json() if e["operation"] == "scan") == sorted(
        f"{r}@{d}" for r, d in c2.images)
    assert run_audit(api) == [("scan", True)]

    # a second run when the first is over: the same images again, the metrics of the new run
    r = api.post(SCHEDULE, {"schedule": {"type": "Manual"}})
    assert r.status_code == 201, describe(r)
    def second():
        m2 = metrics(api)
        return m2 if len(scan_audit(api)) == 2 * len(images) and not m2["ongoing"] else None
    m2 = wait_until(second, RUN_TIMEOUT, "the second run")
    assert m2["total"] == len(images) and m2["metrics"]["Success"] == len(images), m2
    # nothing scheduled ever ran
    assert metrics(api, SCHEDULED_METRICS) == {}


def test_stop_skips_busy_scans_and_one_run_at_a_time(servers, unique):
    # one worker, whose first scan is held Running until the server stops
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "1", "WHARF_FAILPOINTS": "scan.hold=1:EIO"})
    import_db(srv)
    api = admin(srv)
    r = api.post("/system/scanAll/stop")
    expect_error(r, 400, "BAD_REQUEST", "no scan all job is found currently")
    proj = unique[:30]
    api.create_project(proj)
    c = push_images(srv, proj, 4)
    busy_repo, busy = c.images[0]
    r = api.post(f"/projects/{proj}/repositories/app/artifacts/{busy}/scan")
    assert r.status_code == 202, describe(r)
    wait_until(lambda: (overview(api, busy_repo, busy) or {}).get("scan_status") == "Running",
               RUN_TIMEOUT, "the held scan to run")

    # two managers start a run at once: one run, the other hears Harbor's 409
    answers = []
    def start():
        answers.append(admin(srv).post(SCHEDULE, {"schedule": {"type": "Manual"}}))
    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 409], [describe(a) for a in answers]
    expect_error(next(a for a in answers if a.status_code == 409), 409, "CONFLICT", CONFLICT)

    # the busy image is left alone: three queued, none can run (the worker is held)
    m = wait_until(lambda: (lambda m: m if m["total"] == 3 else None)(metrics(api)), RUN_TIMEOUT,
                   "three scans queued")
    check_stats(m, "Manual")
    assert m["ongoing"] is True and m["metrics"]["Pending"] == 3, m
    expect_error(api.post(SCHEDULE, {"schedule": {"type": "Manual"}}), 409, "CONFLICT", CONFLICT)

    r = api.post("/system/scanAll/stop")
    assert r.status_code == 202, describe(r)
    m = metrics(api)
    check_stats(m, "Manual")
    assert m["metrics"]["Stopped"] == 3 and m["completed"] == 3 and m["ongoing"] is False, m
    for repo, digest in c.images[1:]:
        assert overview(api, repo, digest)["scan_status"] == "Stopped"
    assert overview(api, busy_repo, busy)["scan_status"] == "Running"
    # queued scans a stop cancels are not listed one by one; the stop is
    assert scan_audit(api) == []
    assert run_audit(api) == [("stop", True), ("scan", True)]
    # stopping an ended run is accepted, as Harbor does
    assert api.post("/system/scanAll/stop").status_code == 202

    # the held scan, stopped on its own, is audited (who asked for it, "scan stopped")
    r = api.post(f"/projects/{proj}/repositories/app/artifacts/{busy}/scan/stop")
    assert r.status_code == 202, describe(r)
    rows = scan_audit(api)
    assert [(e["resource"], e["username"], e["operation_result"], e["operation_description"])
            for e in rows] == [(f"{busy_repo}@{busy}", ADMIN_USER, False, "scan stopped")]

    # after a restart without the held worker, a new run queues all four
    del srv.extra_env["WHARF_FAILPOINTS"]
    srv.restart()
    r = api.post(SCHEDULE, {"schedule": {"type": "Manual"}})
    assert r.status_code == 201, describe(r)
    m = wait_done(api, total=4)
    assert m["metrics"]["Success"] == 4, m


def test_schedule_fires_persists_and_catches_up_once(servers, unique):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "2"})
    import_db(srv)
    api = admin(srv)
    proj = unique[:30]
    api.create_project(proj)
    c = push_images(srv, proj, 2)
    r = api.get(SCHEDULE)
    assert r.status_code == 200 and r.json() == {}, describe(r)

    r = api.post(SCHEDULE, {"schedule": {"type": "Custom", "cron": "*/2 * * * * *"}})
    assert r.status_code == 201, describe(r)
    s = api.get(SCHEDULE).json()
    assert s["schedule"]["type"] == "Custom" and s["schedule"]["cron"] == "*/2 * * * * *", s
    assert s["schedule"]["next_scheduled_time"].endswith("Z")
    assert set(s) >= {"id", "status", "creation_time", "update_time", "schedule"}
    # a second schedule through POST: Harbor's 412
    expect_error(api.post(SCHEDULE, {"schedule": {"type": "Daily"}}), 412, "PRECONDITION",
                 "fail to set schedule for scan all as always had one, please delete it firstly "
                 "then to re-schedule")

    m = wait_done(api, SCHEDULED_METRICS, total=2)
    check_stats(m, "Schedule")
    assert m["metrics"]["Success"] == 2
    rows = scan_audit(api)
    assert rows and {e["username"] for e in rows} == {"system"}, rows
    assert {e["resource"] for e in rows} == {f"{r}@{d}" for r, d in c.images}

    # the schedule survives a restart, and a fire time missed while the server was down
    # fires once when it is back, then the schedule goes on
    srv.stop()
    stopped_at = time.time()
    wait_until(lambda: time.time() > stopped_at + 5, 10, "two fire times to pass")
    srv.mark_log()
    srv.start(srv.port)
    s2 = api.get(SCHEDULE).json()
    assert [s2[k] for k in ("id", "creation_time", "update_time")] == [
        s[k] for k in ("id", "creation_time", "update_time")]
    assert (s2["schedule"]["type"], s2["schedule"]["cron"]) == ("Custom", "*/2 * * * * *")
    def fired():
        log = srv.log_since_mark()
        lines = [ln for ln in log.splitlines() if "scan all: scheduled run" in ln]
        return lines if len(lines) >= 2 else None
    lines = wait_until(fired, 30, "two scheduled runs after the restart")
    late = [int(ln.split("(due ")[1].split(" ms")[0]) for ln in lines]
    assert late[0] > 2000, lines  # the one missed while down
    assert all(x < 2000 for x in late[1:]), lines  # then on time, never twice for the past

    # PUT changes it, None removes it
    r = api.put(SCHEDULE, {"schedule": {"type": "Weekly", "cron": ""}})
    assert r.status_code == 200, describe(r)
    s = api.get(SCHEDULE).json()
    assert (s["schedule"]["type"], s["schedule"]["cron"]) == ("Weekly", "0 0 0 * * 0"), s
    r = api.put(SCHEDULE, {"schedule": {"type": "None"}})
    assert r.status_code == 200, describe(r)
    assert api.get(SCHEDULE).json() == {}
    srv.restart()
    assert api.get(SCHEDULE).json() == {}


BAD_CRONS = [
    "*/2 * * * *", "0 0 0 * * * *", "60 * * * * *", "0 0 24 * * *", "0 0 0 0 * *",
    "0 0 0 * 13 *", "0 0 0 * * 7", "*/0 * * * * *", "a b c d e f", "@daily", "5-1 * * * * *",
    "0 0 0 30 2 *", "", "   ", "1" * 5000, "0 0 0 * * \u00e9", "0 0 0 * * *\n0",
]


def test_bad_cron_is_refused(servers):
    srv = servers.new()
    api = admin(srv)
    for cron in BAD_CRONS:
        for method in (api.post, api.put):
            r = method(SCHEDULE, {"schedule": {"type": "Custom", "cron": cron}})
            e = expect_error(r, 400, "BAD_REQUEST")
            assert e["message"].startswith("invalid cron "), (cron, e)
            assert len(e["message"]) < 400, e
    assert api.get(SCHEDULE).json() == {}
    assert all(ok is False for _, ok in [(e["operation"], e["operation_result"])
                                         for e in api.audit(operation="update")])


def test_access_and_hostile_bodies(servers, unique):
    srv = servers.new()
    api = admin(srv)
    name = unique[:24]
    api.create_user(name)
    user = Api(srv.url, auth=(name, "Passw0rd-x"))
    anon = Api(srv.url)
    routes = [("get", SCHEDULE), ("post", SCHEDULE), ("put", SCHEDULE),
              ("post", "/system/scanAll/stop"), ("get", METRICS), ("get", SCHEDULED_METRICS)]
    body = {"schedule": {"type": "Manual"}}
    for method, path in routes:
        kw = {"body": body} if method in ("post", "put") else {}
        expect_error(getattr(user, method)(path, **kw), 403, "FORBIDDEN")
        expect_error(getattr(anon, method)(path, **kw), 401, "UNAUTHORIZED")
    assert metrics(api) == {}, "a refused caller started a run"

    # shapes Harbor's swagger refuses
    expect_error(api.post(SCHEDULE, {"schedule": {"type": "Monthly", "cron": "0 0 0 1 * *"}}),
                 422, "UNPROCESSABLE_ENTITY")
    expect_error(api.post(SCHEDULE, {"type": "Manual"}), 422, "UNPROCESSABLE_ENTITY")
    expect_error(api.post(SCHEDULE, {"schedule": "Manual"}), 422, "UNPROCESSABLE_ENTITY")
    expect_error(api.post(SCHEDULE, {"schedule": {"type": 1}}), 422, "UNPROCESSABLE_ENTITY")
    expect_error(api.post(SCHEDULE, {"schedule": {"type": "Custom", "cron": 5}}), 422,
                 "UNPROCESSABLE_ENTITY")
    expect_error(api.post(SCHEDULE, [1, 2]), 400, "BAD_REQUEST")
    r = api.req("post", SCHEDULE, data=b"{not json", headers={"Content-Type": "application/json"})
    expect_error(r, 400, "BAD_REQUEST")
    r = api.req("post", SCHEDULE, data=b'{"schedule":{"type":"Manual","x":"' + b"a" * (2 << 20)
                + b'"}}', headers={"Content-Type": "application/json"})
    expect_error(r, 413, "REQUEST_ENTITY_TOO_LARGE")
    expect_error(api.put(SCHEDULE, {"schedule": {"type": "Manual"}}), 400, "BAD_REQUEST",
                 "fail to update scan all schedule as wrong schedule type: Manual")
    # None through POST does nothing; nothing was started or scheduled by any of this
    assert api.post(SCHEDULE, {"schedule": {"type": "None"}}).status_code == 201
    assert api.get(SCHEDULE).json() == {} and metrics(api) == {}
    # unknown fields are ignored
    r = api.post(SCHEDULE, {"schedule": {"type": "Manual", "cron": None}, "parameters": {"x": 1}})
    assert r.status_code == 201, describe(r)
    assert wait_done(api)["total"] == 0
