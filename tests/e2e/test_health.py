"""GET /api/v2.0/health: Harbor's OverallHealthStatus, component by component.

Each component is proven to turn unhealthy by a real fault where one can be made
from outside (the blob directory replaced by a file: every write of a blob fails,
as on a broken mount), else by a failpoint (docs/testing.md): a scan worker that
ended. The container image's HEALTHCHECK script (contrib/wharf-healthcheck) is
run against the same servers: Harbor answers 200 whatever the state, so the
script must read the body.
"""

import os
import subprocess

import requests

from apiclient import Api, enc_repo
from conftest import wait_until
from ocilayout import make_image
from regclient import ADMIN_PASSWORD, describe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEALTHCHECK = os.path.join(ROOT, "contrib", "wharf-healthcheck")
NAMES = ["core", "database", "jobservice", "registry", "storage"]


def health(srv):
    r = requests.get(f"{srv.url}/api/v2.0/health", timeout=30)  # anonymous
    assert r.status_code == 200, describe(r)  # Harbor's answer, healthy or not
    assert r.headers["Content-Type"].startswith("application/json"), describe(r)
    doc = r.json()
    assert set(doc) == {"status", "components"}, doc
    assert [c["name"] for c in doc["components"]] == NAMES, doc  # sorted, as Harbor sorts
    for c in doc["components"]:
        assert c["status"] in ("healthy", "unhealthy"), c
        assert ("error" in c) == (c["status"] == "unhealthy"), c
    unhealthy = [c for c in doc["components"] if c["status"] == "unhealthy"]
    assert doc["status"] == ("unhealthy" if unhealthy else "healthy"), doc
    return doc, {c["name"]: c for c in doc["components"]}


def healthcheck(srv) -> int:
    env = dict(os.environ, WHARF_LISTEN=srv.host)
    return subprocess.run(["sh", HEALTHCHECK], env=env, timeout=30,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def blob_files(data_dir):
    out = []
    for d, _, files in os.walk(os.path.join(data_dir, "blobs")):
        out += [os.path.join(d, f) for f in files]
    return sorted(out)


def test_health_all_healthy_and_probe_leaves_nothing(servers):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "3"})
    before = blob_files(srv.data_dir)
    doc, comp = health(srv)
    assert doc["status"] == "healthy", doc
    assert comp["jobservice"] == {"name": "jobservice", "status": "healthy", "workers": 3,
                                  "workers_alive": 3, "queue_depth": 0, "running": 0,
                                  "oldest_pending_seconds": 0}, doc
    for name in ("core", "database", "registry", "storage"):
        assert comp[name] == {"name": name, "status": "healthy"}, doc
    # the storage probe wrote, read and deleted a blob of its own: none is left
    assert blob_files(srv.data_dir) == before
    assert healthcheck(srv) == 0
    # only GET (and HEAD) is served
    r = requests.post(f"{srv.url}/api/v2.0/health", timeout=30)
    assert r.status_code == 405, describe(r)


def test_health_storage_that_refuses_writes(servers):
    srv = servers.new()
    blobs = os.path.join(srv.data_dir, "blobs")
    away = blobs + ".away"
    os.rename(blobs, away)
    try:
        with open(blobs, "w") as f:  # a file where the blob directory was: writes fail
            f.write("not a directory\n")
        doc, comp = wait_until(
            lambda: (lambda h: h if h[1]["storage"]["status"] == "unhealthy" else None)(
                health(srv)),
            10, "the storage component to turn unhealthy")
        assert doc["status"] == "unhealthy", doc
        assert comp["storage"]["error"] == (
            "storage does not accept writes: a test blob could not be written, read back and "
            "deleted (see the server log)"), doc
        assert blobs not in comp["storage"]["error"]  # no path for anonymous callers
        for name in ("core", "database", "jobservice", "registry"):
            assert comp[name]["status"] == "healthy", doc
        assert healthcheck(srv) == 1
        assert "health: the storage probe could not be written" in srv.log_text()
    finally:
        os.remove(blobs)
        os.rename(away, blobs)
    # repaired: healthy again without a restart (the probe's outcome is kept 1 s at most)
    wait_until(lambda: health(srv)[0]["status"] == "healthy", 10, "health to recover")
    assert healthcheck(srv) == 0


def test_health_a_scan_worker_that_ended(servers):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "2", "WHARF_FAILPOINTS": "scan.worker=1:EIO"})
    doc, comp = health(srv)
    assert doc["status"] == "unhealthy", doc
    assert comp["jobservice"]["status"] == "unhealthy", doc
    assert comp["jobservice"]["error"] == "1 of 2 scan workers have stopped", doc
    assert comp["jobservice"]["workers"] == 2 and comp["jobservice"]["workers_alive"] == 1, doc
    for name in ("core", "database", "registry", "storage"):
        assert comp[name]["status"] == "healthy", doc
    assert healthcheck(srv) == 1


def test_health_queue_depth_and_oldest_pending_age(servers):
    # one worker, held by the first job it takes: the second job waits
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "1", "WHARF_FAILPOINTS": "scan.hold=1:EIO"})
    reg = srv.registry()
    api = Api(srv.url, ("admin", ADMIN_PASSWORD))
    digests = [reg.push_image("library/h", make_image(layers=1), f"t{i}") for i in range(2)]
    base = f"/projects/library/repositories/{enc_repo('h')}/artifacts"
    r = api.post(f"{base}/{digests[0]}/scan")
    assert r.status_code == 202, describe(r)
    wait_until(lambda: health(srv)[1]["jobservice"]["running"] == 1, 20,
               "the first scan to be taken")
    r = api.post(f"{base}/{digests[1]}/scan")
    assert r.status_code == 202, describe(r)
    doc, comp = wait_until(
        lambda: (lambda h: h if h[1]["jobservice"]["oldest_pending_seconds"] >= 2 else None)(
            health(srv)),
        20, "the waiting scan to be two seconds old")
    job = comp["jobservice"]
    assert job["queue_depth"] == 1 and job["running"] == 1, doc
    assert job["oldest_pending_seconds"] < 20, doc
    # a backlog is load, not a fault: every worker is alive
    assert job["status"] == "healthy" and doc["status"] == "healthy", doc
