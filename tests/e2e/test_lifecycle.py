"""Server lifecycle and limits: abandoned upload sessions expire, oversized
headers are refused, SIGTERM drains an upload in flight and exits 0, and the
project command line works on the data dir."""

import os
import re
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest

from conftest import free_port, polling, unread_by_server, wait_until
from datadir import staged_size, staging_files
from ocilayout import make_image, sha256_digest
from regclient import basic_auth, describe, expect_error

OCTET = "application/octet-stream"


def path_of(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


# ------------------------------------------------------------ upload idle TTL (uploads.idle_ttl)


def park_upload(reg, repo, srv) -> set:
    """Open an upload session, stage a few bytes in it and leave it idle;
    return its staging files."""
    before = staging_files(srv.data_dir)
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=os.urandom(10_000), headers={"Content-Type": OCTET,
                                                        "Content-Range": "0-9999"})
    assert r.status_code == 202, describe(r)
    staged = staging_files(srv.data_dir) - before
    assert staged, "no staging file under uploads/ for an upload in progress"
    return staged


def swept(srv, staged: set) -> bool:
    return not (staged & staging_files(srv.data_dir))


def sweep_deadline(ttl: int) -> float:
    """Time for an idle session to expire: the TTL, one sweep interval, and slack."""
    return ttl + min(ttl, 30) + 8


def test_abandoned_upload_expires(servers, unique):
    ttl = 2
    srv = servers.new(env={"WHARF_UPLOAD_IDLE_TTL": str(ttl)})
    reg = srv.registry()
    repo = f"library/{unique}"

    before = staging_files(srv.data_dir)
    idle = reg.start_upload(repo)
    r = reg.patch(idle, data=os.urandom(10_000),
                  headers={"Content-Type": OCTET, "Content-Range": "0-9999"})
    assert r.status_code == 202, describe(r)
    idle = r.headers["Location"]
    staged = staging_files(srv.data_dir) - before
    assert staged, "no staging file under uploads/ for an upload in progress"

    # A second session stays busy all along, a PATCH every quarter of the TTL:
    # idle time, not age, expires a session.
    busy = reg.start_upload(repo)
    sent = b""

    def keep_busy():
        nonlocal busy, sent
        chunk = os.urandom(1000)
        r = reg.patch(busy, data=chunk, headers={
            "Content-Type": OCTET, "Content-Range": f"{len(sent)}-{len(sent) + len(chunk) - 1}"})
        assert r.status_code == 202, "an active upload was expired: " + describe(r)
        busy = r.headers["Location"]
        sent += chunk

    for _ in polling(lambda: swept(srv, staged), sweep_deadline(ttl),
                     f"the idle session's staging files {staged} to expire", interval=ttl / 4):
        keep_busy()

    expect_error(reg.get(idle), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(reg.patch(idle, data=b"x", headers={"Content-Type": OCTET,
                                                     "Content-Range": "10000-10000"}),
                 404, "BLOB_UPLOAD_UNKNOWN")

    # Keep the busy one going until a session left idle now has expired as
    # well (the sweeper has passed again), then finish it.
    later = park_upload(reg, repo, srv)
    for _ in polling(lambda: swept(srv, later), sweep_deadline(ttl),
                     "a second idle session to expire", interval=ttl / 4):
        keep_busy()
    p = reg.put(busy, params={"digest": sha256_digest(sent)})
    assert p.status_code == 201, describe(p)
    g = reg.get(f"/v2/{repo}/blobs/{sha256_digest(sent)}")
    assert g.status_code == 200 and g.content == sent


# ------------------------------------------------------------ header caps


def send_raw(port: int, payload: bytes, timeout=20) -> bytes:
    """Send bytes, then read the answer until the server closes or times out."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading early; its answer still counts
        out = b""
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                out += data
                if b"\r\n\r\n" in out:
                    break
        except (ConnectionResetError, socket.timeout):
            pass
        return out
    finally:
        s.close()


@pytest.mark.parametrize("shape", ["many-headers", "one-huge-header"])
def test_oversized_headers_refused(server, registry, shape):
    if shape == "many-headers":
        line = "X-Pad-{}: " + "a" * 1000 + "\r\n"
        pad = "".join(line.format(i) for i in range(210))
    else:
        pad = "X-Huge: " + "b" * (200 * 1024) + "\r\n"
    req = (f"GET /v2/ HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: {basic_auth()}\r\n"
           f"{pad}Connection: close\r\n\r\n").encode()
    assert len(req) > 200 * 1024
    answer = send_raw(server.port, req)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert m, f"no HTTP answer to a request with 200 KiB of headers: {answer[:200]!r}"
    assert 400 <= int(m.group(1)) < 500, f"200 KiB of headers not refused: {answer[:300]!r}"
    assert server.running(), "the server died on a request with 200 KiB of headers"
    r = registry.get("/v2/")
    assert r.status_code == 200, describe(r)


# ------------------------------------------------------------ SIGTERM


def new_connection_answer(srv):
    """What a new connection asking for /v2/ gets back: the bytes of the
    answer (b"" when the server closes or refuses it without one)."""
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    except ConnectionRefusedError:
        return b""
    out = b""
    try:
        s.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {srv.host}\r\nConnection: close\r\n\r\n".encode())
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
    return out


def test_sigterm_drains_upload_in_flight(servers, unique):
    """SIGTERM arrives while a PATCH body is half sent; the rest of the body
    comes after the server has begun to stop.  The PATCH is finished and
    answered, the server exits 0, and after a restart the upload completes."""
    srv = servers.new()
    reg = srv.registry()
    repo = f"library/{unique}"
    data = os.urandom(4 << 20)
    half = len(data) // 2
    loc = reg.start_upload(repo)
    rest = threading.Event()
    result = {}

    def patch_in_two_halves():
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        try:
            s.sendall(
                (f"PATCH {path_of(reg.url(loc))} HTTP/1.1\r\nHost: {srv.host}\r\n"
                 f"Authorization: {basic_auth()}\r\nContent-Type: {OCTET}\r\nContent-Length: {len(data)}\r\n"
                 f"Content-Range: 0-{len(data) - 1}\r\nConnection: close\r\n\r\n").encode())
            try:
                s.sendall(data[:half])
                rest.wait(60)
                s.sendall(data[half:])
            except (BrokenPipeError, ConnectionResetError) as e:
                result["send_error"] = repr(e)
            out = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            except (ConnectionResetError, socket.timeout) as e:
                result["recv_error"] = repr(e)
            result["answer"] = out
        finally:
            s.close()

    t = threading.Thread(target=patch_in_two_halves)
    t.start()
    try:
        wait_until(lambda: staged_size(srv.data_dir, loc) == half, 30,
                   "the first half of the PATCH body to be staged")
        started = time.monotonic()
        srv.proc.send_signal(15)
        wait_until(lambda: "finishing in-flight requests" in srv.log_text(), 30,
                   "the server to begin its shutdown")
        # While it drains, a new connection is closed unanswered at once (not
        # left waiting in the listen queue until the grace period ends).
        assert new_connection_answer(srv) == b""
    finally:
        rest.set()
    t.join(60)
    assert not t.is_alive(), "the upload never finished after SIGTERM"
    try:
        rc = srv.proc.wait(30)
    except Exception:
        pytest.fail("wharf did not exit within 30 s of SIGTERM")
    srv.stop()
    answer = result.get("answer", b"")
    assert re.match(rb"HTTP/1\.1 202 ", answer), f"the upload in flight was not finished: {result}"
    assert rc == 0, f"wharf exited with {rc} after SIGTERM"
    assert time.monotonic() - started < 60
    # Accepted: after a restart the bytes are there to finish the upload.
    srv.restart()
    reg = srv.registry()
    p = reg.put(path_of(reg.url(loc)), params={"digest": sha256_digest(data)})
    assert p.status_code == 201, describe(p)
    g = reg.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
    assert g.status_code == 200 and g.content == data


def test_sigterm_idle_exits_zero(servers):
    srv = servers.new()
    assert srv.stop() == 0


# ------------------------------------------------------------ project CLI


def test_project_cli(servers, unique):
    srv = servers.new()
    p = srv.cli("project", "create", "team", "--public")
    assert p.returncode == 0, f"project create failed: {p.stdout}{p.stderr}"

    p = srv.cli("project", "list")
    assert p.returncode == 0, p.stderr
    names = set(re.findall(r"[a-z0-9][a-z0-9._-]*", p.stdout))
    assert {"library", "team"} <= names, f"project list output: {p.stdout!r}"

    for bad in ["Team", "bad name", "a/b", "../x", "", "-x", "x" * 300]:
        p = srv.cli("project", "create", bad)
        assert p.returncode != 0, f"project create {bad!r} accepted: {p.stdout}{p.stderr}"
        assert p.stderr.strip(), f"project create {bad!r} refused without a message"

    p = srv.cli("project", "list")
    assert "Team" not in p.stdout and "bad name" not in p.stdout

    # The running server sees the new project.
    reg = srv.registry()
    img = make_image(layers=1, files_per_layer=1, file_size=1024)
    reg.push_image(f"team/{unique}", img, "v1")
    r = reg.get_manifest(f"team/{unique}", "v1")
    assert r.status_code == 200 and r.content == img.manifest, describe(r)

    # With the server stopped, the command works on the data dir alone, and
    # the next start serves what it created.
    assert srv.stop() == 0
    p = srv.cli("project", "create", "offline")
    assert p.returncode == 0, f"project create with the server stopped: {p.stdout}{p.stderr}"
    p = srv.cli("project", "list")
    assert p.returncode == 0 and "offline" in p.stdout, p.stdout + p.stderr
    srv.start()
    reg = srv.registry()
    reg.push_image(f"offline/{unique}", img, "v1")
    r = reg.get_manifest(f"team/{unique}", "v1")
    assert r.status_code == 200 and r.content == img.manifest, describe(r)


def test_access_log(server, registry, unique):
    """Each request leaves a line on stderr naming its method, path and status."""
    path = f"/v2/library/{unique}/tags/list"
    r = registry.get(path)
    assert r.status_code == 404
    wait_until(lambda: any("GET" in l and "404" in l
                           for l in server.log_since_mark().splitlines() if path in l),
               5, f"an access log line for GET {path} -> 404")


def test_slow_upload_outlives_ttl(servers, unique):
    """A PATCH that streams for longer than the TTL is activity, not idleness:
    the sweeper must not remove its session under it."""
    ttl = 2
    srv = servers.new(env={"WHARF_UPLOAD_IDLE_TTL": str(ttl)})
    reg = srv.registry()
    other = srv.registry()  # for requests made while the PATCH streams
    repo = f"library/{unique}"
    loc = reg.start_upload(repo)
    first_idle = park_upload(other, repo, srv)  # opened after the slow session
    chunks = []

    def slow_body():
        # Stream until an idle session opened after this upload has expired,
        # and then one opened after that: the sweeper passed twice, the
        # second time more than a TTL after the PATCH began.
        for n, idle in enumerate((first_idle, None)):
            idle = idle or park_upload(other, repo, srv)
            for _ in polling(lambda: swept(srv, idle), sweep_deadline(ttl),
                             f"idle session {n + 1} to expire while the PATCH streams",
                             interval=0.25):
                chunks.append(os.urandom(32 * 1024))
                yield chunks[-1]

    r = reg.patch(loc, data=slow_body(), headers={"Content-Type": OCTET}, timeout=120)
    data = b"".join(chunks)
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Range") == f"0-{len(data) - 1}", describe(r)
    p = reg.put(r.headers["Location"], params={"digest": sha256_digest(data)})
    assert p.status_code == 201, describe(p)
    g = reg.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
    assert g.status_code == 200 and g.content == data


def test_staging_files_of_a_crash_are_swept(servers, unique):
    """Sessions cut short by a SIGKILL are idle sessions after the restart:
    the sweeper removes their staging files too."""
    ttl = 2
    srv = servers.new(env={"WHARF_UPLOAD_IDLE_TTL": str(ttl)})
    reg = srv.registry()
    repo = f"library/{unique}"
    before = staging_files(srv.data_dir)
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=os.urandom(50_000),
                  headers={"Content-Type": OCTET, "Content-Range": "0-49999"})
    assert r.status_code == 202, describe(r)
    staged = staging_files(srv.data_dir) - before
    assert staged
    srv.kill()
    srv.restart()
    wait_until(lambda: swept(srv, staged), sweep_deadline(ttl),
               f"the staging files from before the crash {staged} to be swept", interval=0.2)
    expect_error(srv.registry().get(path_of(srv.registry().url(r.headers["Location"]))), 404,
                 "BLOB_UPLOAD_UNKNOWN")


def test_sigterm_with_idle_connections_exits_promptly(servers):
    """Idle keep-alive connections and half-sent requests are not work in
    flight: they must not hold the shutdown for its whole grace period."""
    srv = servers.new()
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    half = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        idle.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {srv.host}\r\n"
                     f"Authorization: {basic_auth()}\r\n\r\n".encode())
        assert idle.recv(100).startswith(b"HTTP/1.1 200")
        half.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {srv.host}\r\n".encode())
        wait_until(lambda: unread_by_server(half) == 0, 10,
                   "the server to read the half-sent request")
        t0 = time.monotonic()
        srv.proc.send_signal(15)
        rc = srv.proc.wait(40)
        took = time.monotonic() - t0
    finally:
        idle.close()
        half.close()
    srv.stop()
    assert rc == 0
    assert took < 5, f"shutdown took {took:.1f} s with only idle connections open"


# ------------------------------------------------------------ the first requests after a start


def test_a_login_waiting_at_start_is_answered(servers):
    """A login that reaches the listening socket before the server answers
    anything (a CI job pushing right after `systemctl start wharf`) gets its
    token: the password checkers run before the first connection is taken.
    They used to start just after, and such a login was answered 429 in about
    one start in three. Several starts, each with the request already waiting."""
    srv = servers.new(start=False)
    os.makedirs(srv.data_dir, exist_ok=True)
    request = (f"GET /service/token?service=wharf&scope=repository:library/x:pull HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nAuthorization: {basic_auth()}\r\nConnection: close\r\n\r\n"
               ).encode()
    for attempt in range(8):
        srv.port = free_port()
        with open(srv.log_path, "ab") as log:
            proc = subprocess.Popen([srv.binary, "serve"], env=srv.env(), stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL)
        try:
            conn = None

            def connected():
                nonlocal conn
                assert proc.poll() is None, f"wharf serve exited with {proc.returncode}"
                try:
                    conn = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
                    return True
                except OSError:
                    return False
            wait_until(connected, 30, "the listening socket", interval=0.0005)
            conn.sendall(request)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
            conn.close()
            assert answer.startswith(b"HTTP/1.1 200 "), f"start {attempt}: {answer[:300]!r}"
        finally:
            proc.kill()
            proc.wait()
