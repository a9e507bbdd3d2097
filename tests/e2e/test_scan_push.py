"""Scan on push, as the process runs it (docs/scanning.md, "Scans inside the
registry"): the scan workers are threads named `wharf-scan`, one per
`scan.workers`, scheduled SCHED_BATCH, so that a push that wakes one is
answered before the worker runs (bench/scan_push.py measures what that
saves); and the queue they read still drains while a client keeps pushing.
Workers wait for a pause in the requests that change something before they
take a job, but not for longer than a moment: an upload held open for
minutes does not hold the scans back.
"""
import os
import socket
import time
from urllib.parse import urlsplit

from regclient import Registry, basic_auth
from test_gate import push_artifact
from ocilayout import MT_CONFIG, canonical_json
from test_scan_registry import REPO, Scans, proj  # noqa: F401 (fixture)

SCHED_BATCH = 3  # linux/sched.h


def threads(pid):
    """(name, scheduling policy) of each thread of process `pid`, from /proc."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        out.append((name, int(fields[38])))  # field 41, policy: 39th after "(comm)"
    return out


def test_scan_workers_are_named_batch_threads(servers):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "3"})
    mine = threads(srv.proc.pid)
    scan = [policy for name, policy in mine if name == "wharf-scan"]
    assert len(scan) == 3, mine
    assert scan == [SCHED_BATCH] * 3, mine
    # the request threads keep the normal policy
    assert all(policy == 0 for name, policy in mine if name != "wharf-scan"), mine


def test_batch_workers_drain_the_queue_during_pushes(servers, proj):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "1"})
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true"})
    reg = Registry(srv.url)
    digests = []
    for i in range(30):
        digests.append(push_artifact(reg, f"{proj}/{REPO}", f"t{i}", MT_CONFIG,
                                     config=canonical_json({
                                         "architecture": "amd64", "os": "linux", "n": i,
                                         "rootfs": {"type": "layers", "diff_ids": []}})))
    for d in digests:
        # no vulnerability database: each scan ends, as an Error that says so
        o = s.wait_status(d, "Success", "Error")
        assert o["scan_status"] == "Error"


def test_an_upload_held_open_does_not_hold_the_scans_back(servers, proj):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "1"})
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true"})
    reg = Registry(srv.url)
    loc = urlsplit(reg.start_upload(f"{proj}/{REPO}"))
    path = loc.path + (f"?{loc.query}" if loc.query else "")
    # a PATCH whose body never comes whole while the scans run: a push in flight
    held = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    held.sendall((f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: {basic_auth()}\r\n"
                  "Content-Type: application/octet-stream\r\n"
                  "Content-Length: 8\r\n\r\nhalf").encode())
    try:
        t0 = time.monotonic()
        digests = [push_artifact(reg, f"{proj}/{REPO}", f"t{i}", MT_CONFIG,
                                 config=canonical_json({
                                     "architecture": "amd64", "os": "linux", "n": i,
                                     "rootfs": {"type": "layers", "diff_ids": []}}))
                   for i in range(10)]
        for d in digests:
            assert s.wait_status(d, "Success", "Error")["scan_status"] == "Error"  # no DB
        # each job waited for a pause at most 100 ms: far from the 30 s the test allows
        assert time.monotonic() - t0 < 20
        held.sendall(b"more")  # the held push still completes
        head = held.recv(4096).decode()
        assert head.startswith("HTTP/1.1 202"), head
    finally:
        held.close()
