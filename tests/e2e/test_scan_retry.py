"""End-to-end tests of scan job retries (docs/scanning.md, "Retries"): a job
that fails for a cause that may pass is queued again with a growing delay,
staying Pending (Harbor's state) meanwhile, up to scan.max_attempts; a
permanent failure is not retried; a job during which its node dies each
time ends in Error instead of looping.

* an external scanner (a second `wharf serve` as the adapter) that is down
  when the job starts and up a few seconds later: the job is retried and
  succeeds; one that stays down: Error after the attempts, each in the log,
  the waits between them growing;
* storage that cannot be read (a layer blob replaced by a directory: read
  fails with EISDIR) until it is put back: retried, then Success; a layer
  whose bytes are damaged is an Error at once (no retry);
* a node SIGKILLed while it runs the job, twice, with scan.max_attempts 2:
  at its next start the job is an Error whose log names both cut-off attempts.
"""
import hashlib
import os
import re
from datetime import datetime

import pytest
import requests

from conftest import free_port, wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER
from test_scan_adapter import adapter_env, log_of, register, use_scanner
from test_scan_registry import REPO, Scans, import_db

RETRY = {"WHARF_SCAN_RETRY_DELAY": "1"}


@pytest.fixture
def proj(unique) -> str:
    return "rty-" + hashlib.sha256(unique.encode()).hexdigest()[:12]


def pending_log(s, srv, digest, needle, timeout=60):
    """Waits until the job's log holds `needle` while it waits Pending for its next
    attempt (a window of scan.retry_delay at least); returns (overview, log)."""
    def seen():
        o = s.overview(digest)
        if not o or not o.get("report_id"):
            return None
        assert o["scan_status"] in ("Pending", "Running"), o
        text = log_of(srv, s, o["report_id"], digest)
        after = s.overview(digest)
        assert after["scan_status"] in ("Pending", "Running"), after
        return (after, text) if needle in text and after["scan_status"] == "Pending" else None
    return wait_until(seen, timeout, f"the scan log to say {needle!r}", interval=0.2)


def attempt_starts(srv, digest) -> list:
    """The times the server log says the job's attempts started, in order."""
    out = []
    for line in srv.log_text().splitlines():
        m = re.match(r"(\S+Z) info scan \S+ of (\S+) started \(attempt (\d+)\)", line)
        if m and m.group(2) == digest:
            out.append(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp())
    return out


def layer_path(srv, proj, digest) -> str:
    r = requests.get(f"{srv.url}/v2/{proj}/{REPO}/manifests/{digest}",
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30)
    assert r.status_code == 200, r.text
    (layer,) = r.json()["layers"]
    hexd = layer["digest"].split(":", 1)[1]
    path = os.path.join(srv.data_dir, "blobs", "sha256", hexd[:2], hexd)
    assert os.path.isfile(path), path
    return path


def test_adapter_down_then_up_job_retried_to_success(servers, skopeo, pinned_bookworm, proj):
    # the adapter's data directory made and loaded, then the adapter stopped
    scanner = servers.new(env=adapter_env(), name="adapter")
    import_db(scanner)
    port = scanner.port
    assert scanner.stop() == 0
    srv = servers.new(env={**RETRY, "WHARF_SCAN_MAX_ATTEMPTS": "8"}, name="registry")
    s = Scans(srv, proj)
    s.api.create_project(proj)
    use_scanner(s.api, proj, register(s.api, "later", f"http://127.0.0.1:{port}"))
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert s.scan(digest).status_code == 202

    # nothing listens yet: the first attempt fails, the job waits Pending (not Error)
    o, text = pending_log(s, srv, digest, "attempt 1 of 8 failed: scanner later: ")
    assert o["scan_status"] == "Pending", o
    assert "retried in 1 s" in text, text
    # a second request is refused meanwhile, as for any Pending scan
    assert s.scan(digest).status_code == 409

    scanner.start(port)
    o = s.wait_status(digest, "Success", "Error")
    assert o["scan_status"] == "Success", log_of(srv, s, o["report_id"], digest)
    assert o["scanner"]["name"] == "wharf"
    assert s.vulnerabilities(digest)
    starts = attempt_starts(srv, digest)
    assert len(starts) >= 2, srv.log_text()[-3000:]
    assert "attempt 1 failed" in srv.log_text()


def test_adapter_staying_down_ends_in_error_after_attempts(servers, skopeo, pinned_bookworm,
                                                           proj):
    srv = servers.new(env={**RETRY, "WHARF_SCAN_MAX_ATTEMPTS": "3"})
    s = Scans(srv, proj)
    s.api.create_project(proj)
    use_scanner(s.api, proj, register(s.api, "gone", f"http://127.0.0.1:{free_port()}"))
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert s.scan(digest).status_code == 202
    o = s.wait_status(digest, "Error", "Success")
    assert o["scan_status"] == "Error"
    text = log_of(srv, s, o["report_id"], digest)
    for n in (1, 2, 3):
        assert re.search(f"attempt {n} of 3 failed: scanner gone: .*/api/v1/metadata: .*connect",
                         text), text
    assert "retried in 1 s" in text and "retried in 2 s" in text, text
    assert text.rstrip().endswith("gave up after 3 attempts"), text
    # the waits grew: 1 s, then 2 s (scan.retry_delay doubled)
    starts = attempt_starts(srv, digest)
    assert len(starts) == 3, starts
    assert starts[1] - starts[0] >= 0.95 and starts[2] - starts[1] >= 1.95, starts
    assert "failed after 3 attempts" in srv.log_text()


def test_storage_read_error_retried_bad_layer_not(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new(env={**RETRY, "WHARF_SCAN_MAX_ATTEMPTS": "10"})
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj)
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    path = layer_path(srv, proj, digest)

    # the layer cannot be read (a directory where its file was: read fails with EISDIR)
    os.rename(path, path + ".aside")
    os.mkdir(path)
    try:
        assert s.scan(digest).status_code == 202
        o, text = pending_log(s, srv, digest, "attempt 1 of 10 failed: the image could not be "
                                              "read from storage")
        assert o["scan_status"] == "Pending"
        assert "reading from storage failed" in srv.log_text()
    finally:
        os.rmdir(path)
        os.rename(path + ".aside", path)
    o = s.wait_status(digest, "Success", "Error")
    assert o["scan_status"] == "Success", log_of(srv, s, o["report_id"], digest)
    assert s.vulnerabilities(digest)

    # damaged bytes are no passing trouble: Error at the first attempt, no retry
    with open(path, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    shutil_cache = os.path.join(srv.data_dir, "scan-cache")
    for root, _dirs, files in os.walk(shutil_cache):
        for name in files:
            os.unlink(os.path.join(root, name))  # the layer is read again, not taken from cache
    assert s.scan(digest).status_code == 202
    o = s.wait_status(digest, "Error", "Success")
    assert o["scan_status"] == "Error"
    text = log_of(srv, s, o["report_id"], digest)
    assert "does not match its digest" in text and "attempt" not in text, text


def test_job_that_kills_its_node_ends_in_error(servers, skopeo, pinned_bookworm, proj):
    # the failpoint scan.hold keeps each attempt Running, so that the SIGKILL lands mid-job
    srv = servers.new(env={"WHARF_SCAN_MAX_ATTEMPTS": "2", "WHARF_FAILPOINTS": "scan.hold=1+:EIO"})
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj)
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    assert s.scan(digest).status_code == 202
    for attempt in (1, 2):
        wait_until(lambda: len(attempt_starts(srv, digest)) == attempt, 60,
                   f"attempt {attempt} to start")
        wait_until(lambda: srv.log_text().count("failpoint scan.hold: scan") == attempt, 30,
                   f"attempt {attempt} to be held")
        assert s.overview(digest)["scan_status"] == "Running"
        srv.kill()
        srv.start(srv.port)
    # the second start gave up on it: no third attempt
    o = s.wait_status(digest, "Error", "Success")
    text = log_of(srv, s, o["report_id"], digest)
    assert "attempt 1 of 2 was cut off: the node running it stopped" in text, text
    assert "attempt 2 of 2 was cut off: the node running it stopped" in text, text
    assert text.rstrip().endswith("gave up after 2 attempts"), text
    assert len(attempt_starts(srv, digest)) == 2
    assert srv.running()
