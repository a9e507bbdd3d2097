"""Hostile HTTP clients and what reaches the logs and the disk: ambiguous
framing, encoded NULs, forged Host headers and log lines, oversized bodies,
slowloris connections, one address hogging connections, the audit log under
a pull storm and a password-guessing run, and the modes of the data dir."""

import json
import os
import resource
import socket
import sqlite3
import stat
import time

import requests

import ocilayout
from regclient import ADMIN_PASSWORD, ADMIN_USER, basic_auth, describe


def wait_until(cond, timeout, what):
    """Polls `cond` until it returns a true value; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def raw(srv, data: bytes, source="127.0.0.1", timeout=10) -> bytes:
    """Sends bytes as they are and reads until the server closes."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    s.close()
    return out


def status_of(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else 0


def push_small(srv, repo="library/hard", tag="v1"):
    reg = srv.registry()
    img = ocilayout.make_image(layers=1)
    reg.push_image(repo, img, tag)
    return img


def test_two_content_lengths_and_te_with_cl_are_refused(server):
    auth = basic_auth().encode()
    r = raw(server, b"PUT /v2/library/x/manifests/v1 HTTP/1.1\r\nHost: a\r\nAuthorization: " + auth
            + b"\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nab")
    assert status_of(r) == 400 and b"Content-Length" in r, r[:400]
    assert b"Connection: close" in r
    r = raw(server, b"POST /v2/library/x/blobs/uploads/ HTTP/1.1\r\nHost: a\r\nAuthorization: " + auth
            + b"\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status_of(r) == 400 and b"Transfer-Encoding" in r, r[:400]


def split_response(resp: bytes):
    head, _, body = resp.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return headers, body


def test_server_errors_speak_the_protocol_of_their_path(server):
    """The errors the HTTP layer gives by itself (here a request with two
    Content-Length headers) carry what the route's protocol puts on every
    answer: the OCI body and the API version header under /v2/, Harbor's
    body under /api/v2.0, neither on the portal's paths."""
    bad = b"\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nab"
    h, body = split_response(raw(server, b"PUT /v2/library/x/manifests/v1 HTTP/1.1\r\nHost: a" + bad))
    assert h.get("docker-distribution-api-version") == "registry/2.0", h
    assert h["content-type"].startswith("application/json")
    err = json.loads(body)["errors"][0]
    assert err["code"] == "BAD_REQUEST" and "Content-Length" in err["message"], body
    h, body = split_response(raw(server, b"PUT /api/v2.0/projects/x HTTP/1.1\r\nHost: a" + bad))
    assert "docker-distribution-api-version" not in h, h
    err = json.loads(body)["errors"][0]
    assert err["code"] == "BAD_REQUEST" and "Content-Length" in err["message"], body
    h, body = split_response(raw(server, b"PUT /harbor/projects HTTP/1.1\r\nHost: a" + bad))
    assert "docker-distribution-api-version" not in h, h
    assert b"Content-Length" in body
    # the registry's own answers keep the header, errors and successes alike
    r = requests.get(server.url + "/v2/library/nothing-here/tags/list",
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=10)
    assert r.status_code == 404 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json()["errors"][0]["code"] == "NAME_UNKNOWN", describe(r)
    r = requests.get(server.url + "/api/v2.0/projects/nothing-here",
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=10)
    assert r.status_code in (403, 404) and r.json()["errors"], describe(r)
    assert "Docker-Distribution-API-Version" not in r.headers, describe(r)


def test_encoded_nul_in_path_or_query_is_refused(server, unique):
    repo = f"library/{unique}"
    push_small(server, repo, "v1")
    reg = server.registry()
    assert reg.get_manifest(repo, "v1").status_code == 200
    for path in (f"/v2/{repo}/manifests/v1%00evil", f"/v2/{repo}/tags/list?n=1%00",
                 "/api/v2.0/projects/library%00x"):
        r = raw(server, f"GET {path} HTTP/1.1\r\nHost: a\r\nAuthorization: ".encode()
                + basic_auth().encode() + b"\r\n\r\n")
        assert status_of(r) == 400, (path, r[:400])
        assert b"NUL" in r


def test_forged_host_header_never_reaches_the_challenge(server):
    for host in (b'evil.com", x="y', b"a b", b"evil.com/path", b"", b"x" * 300):
        r = raw(server, b"GET /v2/ HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert status_of(r) == 400, (host, r[:300])
        assert b"WWW-Authenticate" not in r
    # two Host headers
    r = raw(server, b"GET /v2/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert status_of(r) == 400
    # a sane Host (name, IPv4, IPv6 with port) is used as it is
    for host in ("registry.example.com:5000", "10.1.2.3", "[::1]:5000", "my_host"):
        r = requests.get(server.url + "/v2/", headers={"Host": host}, timeout=10)
        assert r.status_code == 401, describe(r)
        assert f'realm="http://{host}/service/token"' in r.headers["WWW-Authenticate"], describe(r)


def test_access_log_cannot_be_forged(servers):
    srv = servers.new()
    r = requests.get(srv.url + "/v2/library%0aaccess%20GET%20/v2/forged%20200/x/manifests/v1",
                     timeout=10)
    assert r.status_code in (400, 404)
    raw(srv, b"GET /v2/\x1b[31mred HTTP/1.1\r\nHost: a\r\n\r\n")
    requests.get(srv.url + "/v2/", timeout=10)  # a line after them, to know they are written
    def logged():
        t = srv.log_text()
        return t if "access GET /v2/ " in t else None
    log = wait_until(logged, 10, "the access log line of GET /v2/")
    # access lines are "TIME access METHOD PATH ...": strip the time
    lines = [l.split(" ", 1)[1] for l in log.splitlines() if l.split(" ")[1:2] == ["access"]]
    assert not any("/v2/forged" in l and not l.startswith("access GET /v2/library") for l in lines), lines
    assert any("library\\x0aaccess GET /v2/forged" in l for l in lines), lines
    assert "\x1b" not in log


def test_body_over_the_cap_gets_413_not_a_reset(servers):
    srv = servers.new(env={"WHARF_MAX_MANIFEST": "1M"})
    size = 40 << 20
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall((f"PUT /v2/library/big/manifests/v1 HTTP/1.1\r\nHost: a\r\nAuthorization: "
               f"{basic_auth()}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
               f"Content-Length: {size}\r\n\r\n").encode())
    chunk = b"x" * (1 << 20)
    for _ in range(size // len(chunk)):
        s.sendall(chunk)
    resp = s.recv(4096)
    s.close()
    assert status_of(resp) == 413, resp[:300]
    assert b"MANIFEST_INVALID" in resp


def test_data_dir_and_secrets_are_private(servers):
    old = os.umask(0o022)
    try:
        srv = servers.new()
    finally:
        os.umask(old)
    push_small(srv)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    assert mode(srv.data_dir) == 0o700
    for name in ("wharf.db", "wharf.db-wal", "token.key"):
        p = os.path.join(srv.data_dir, name)
        assert os.path.exists(p), p
        assert mode(p) == 0o600, (name, oct(mode(p)))
    for root, dirs, files in os.walk(srv.data_dir):
        for d in dirs:
            assert mode(os.path.join(root, d)) & 0o077 == 0, os.path.join(root, d)
        for f in files:
            assert mode(os.path.join(root, f)) & 0o077 == 0, os.path.join(root, f)


def _raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def test_slowloris_from_one_address_leaves_others_served(servers, unique):
    """1,100 sockets trickling headers from 127.0.0.2: the address gets its
    64 connections, the rest are refused, the trickling ones are cut at the
    header deadline, and a client from another address pulls at once."""
    _raise_fd_limit(4096)
    srv = servers.new(env={"WHARF_HEADER_TIMEOUT": "3"})
    repo = f"library/{unique}"
    push_small(srv, repo, "v1")
    socks, refused = [], 0
    for _ in range(1100):
        s = socket.socket()
        s.setblocking(True)
        s.settimeout(5)
        try:
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"GET /v2/ HTTP/1.1\r\n")
            socks.append(s)
        except OSError:
            refused += 1
            s.close()
    try:
        # a normal client from 127.0.0.1 still pulls, fast
        sess = requests.Session()
        sess.auth = (ADMIN_USER, ADMIN_PASSWORD)
        sess.get(srv.url + "/v2/", timeout=10)  # warm the connection and the credentials cache
        times = []
        for _ in range(5):
            t = time.monotonic()
            r = sess.get(f"{srv.url}/v2/{repo}/manifests/v1",
                         headers={"Accept": ocilayout.MT_MANIFEST}, timeout=10)
            times.append(time.monotonic() - t)
            assert r.status_code == 200, describe(r)
        # blocked clients would wait seconds; the best of five shows the path is clear
        # even when the test machine itself is busy
        assert min(times) < 0.1 and max(times) < 2, f"pulls took {times} beside the slowloris sockets"

        # the server kept at most 64 of them; the others were closed at once
        def alive():
            n = 0
            for s in socks:
                try:
                    s.sendall(b"X-Trickle: 1\r\n")
                    s.settimeout(0.001)
                    try:
                        if s.recv(1) == b"":
                            continue
                    except socket.timeout:
                        pass
                    n += 1
                except OSError:
                    pass
            return n
        first = alive()
        assert 0 < first <= 64, first
        # trickling does not keep them: the header deadline (3 s) cuts every one
        wait_until(lambda: alive() == 0, 15, "the header deadline to close trickling sockets")
    finally:
        for s in socks:
            s.close()


def test_trusted_proxy_is_exempt_from_the_per_address_cap(servers):
    _raise_fd_limit(4096)
    srv = servers.new(env={"WHARF_MAX_CONNECTIONS_PER_IP": "5",
                           "WHARF_TRUSTED_PROXIES": "127.0.0.2/32, 10.0.0.0/8"})
    held = {}
    for src in ("127.0.0.2", "127.0.0.3"):
        held[src] = []
        for _ in range(12):
            s = socket.socket()
            s.bind((src, 0))
            s.connect(("127.0.0.1", srv.port))
            held[src].append(s)
    try:
        def served(src):
            n = 0
            for s in held[src]:
                try:
                    s.settimeout(5)
                    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: a\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1.1 401"):
                        n += 1
                except OSError:
                    pass
            return n
        assert served("127.0.0.2") == 12
        assert served("127.0.0.3") == 5
    finally:
        for lst in held.values():
            for s in lst:
                s.close()


def _rows_when(srv, where, cond):
    """The audit rows matching `where` once cond(rows) holds, else None."""
    def check():
        rows = _audit_rows(srv, where)
        return rows if cond(rows) else None
    return check


def _audit_rows(srv, where):
    db = sqlite3.connect(os.path.join(srv.data_dir, "wharf.db"), timeout=10)
    try:
        return db.execute(f"SELECT username, resource, client_ip, count FROM audit_log WHERE {where}").fetchall()
    finally:
        db.close()


def test_pull_storm_folds_into_few_audit_rows(servers, unique):
    srv = servers.new()
    repo = f"library/{unique}"
    push_small(srv, repo, "v1")
    sess = requests.Session()
    sess.auth = (ADMIN_USER, ADMIN_PASSWORD)
    for _ in range(600):
        r = sess.get(f"{srv.url}/v2/{repo}/manifests/v1", headers={"Accept": ocilayout.MT_MANIFEST},
                     timeout=10)
        assert r.status_code == 200
    rows = wait_until(_rows_when(srv, "operation = 'pull'", lambda rs: sum(r[3] for r in rs) >= 600),
                      15, "600 pulls in the audit log")
    assert sum(r[3] for r in rows) == 600
    assert len(rows) <= 3, rows  # one per minute the run spans
    # the REST API shows the folded row with its count and the client address
    logs = sess.get(f"{srv.url}/api/v2.0/audit-logs", params={"q": "operation=pull"}, timeout=10).json()
    pulls = [e for e in logs if e["operation"] == "pull"]
    assert pulls and sum(e["count"] for e in pulls) == 600 and pulls[0]["client_ip"] == "127.0.0.1", pulls


def test_password_guessing_with_rotating_names_is_budgeted(servers):
    srv = servers.new()
    statuses = []
    for i in range(60):
        r = requests.get(srv.url + "/v2/", auth=(f"guess{i}", "wrong-password"), timeout=30)
        assert r.status_code in (401, 429), describe(r)
        statuses.append(r.status_code)
    # the address's own budget stops the run; throttled attempts check no password
    failed = statuses.count(401)
    assert statuses[:20] == [401] * 20 and statuses[20] == 401 and statuses[21] == 429, statuses
    assert failed <= 30, statuses
    rows = wait_until(_rows_when(srv, "operation = 'login' AND result = 0",
                                 lambda rs: sum(r[3] for r in rs) >= failed),
                      15, f"{failed} failed logins in the audit log")
    assert sum(r[3] for r in rows) == failed
    named = [r for r in rows if r[0] != "*"]
    folded = [r for r in rows if r[0] == "*"]
    # ten named rows per address and minute; the rest fold into one row per minute
    assert 10 <= len(named) <= 20 and 1 <= len(folded) <= 2, rows
    assert all(r[2] == "127.0.0.1" for r in rows)


def test_audit_retention_purges_old_rows(servers):
    srv = servers.new(env={"WHARF_AUDIT_RETENTION_DAYS": "7"}, start=False)
    srv.start()
    srv.stop()
    db = sqlite3.connect(os.path.join(srv.data_dir, "wharf.db"))
    now_ms = int(time.time() * 1000)
    for days in (30, 8, 6, 1):
        db.execute("INSERT INTO audit_log(op_time_ms, username, resource, resource_type, operation,"
                   " result, client_ip) VALUES(?, 'old', ?, 'user', 'create', 1, '127.0.0.1')",
                   (now_ms - days * 86400 * 1000, f"{days}d"))
    db.commit()
    db.close()
    srv.start()
    rows = wait_until(_rows_when(srv, "username = 'old'", lambda rs: len(rs) == 2),
                      15, "the purge of rows older than 7 days")
    assert sorted(r[1] for r in rows) == ["1d", "6d"]


def test_password_flood_does_not_stall_other_clients(servers, unique):
    """Wrong passwords from many addresses (so no address throttle applies)
    keep the password checkers busy; anonymous pulls of a public image are
    never queued behind them, and a full checker queue answers 429 at once."""
    import concurrent.futures
    import threading
    srv = servers.new(env={"WHARF_LOGIN_QUEUE": "8", "WHARF_LOGIN_THREADS": "1"})
    repo = f"library/{unique}"
    push_small(srv, repo, "v1")
    stop = threading.Event()
    answers = {"401": 0, "429": 0, "other": 0}
    lock = threading.Lock()

    def flood(n):
        src = f"127.0.{1 + n // 200}.{10 + n % 200}"
        s = requests.Session()
        a = requests.adapters.HTTPAdapter()
        s.mount("http://", a)
        i = 0
        while not stop.is_set():
            i += 1
            try:
                sock = socket.socket()
                sock.bind((src, 0))
                sock.settimeout(10)
                sock.connect(("127.0.0.1", srv.port))
                cred = basic_auth(f"n{n}x{i}", "wrong-password")
                sock.sendall(f"GET /v2/ HTTP/1.1\r\nHost: a\r\nAuthorization: {cred}\r\n"
                             "Connection: close\r\n\r\n".encode())
                head = sock.recv(64)
                sock.close()
                code = head[9:12].decode(errors="replace")
            except OSError:
                code = "other"
            with lock:
                answers[code if code in answers else "other"] += 1

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=32)
    for n in range(32):
        pool.submit(flood, n)
    try:
        wait_until(lambda: answers["429"] > 0, 20, "the checker queue to fill")
        anon = requests.Session()
        times = []
        for _ in range(100):
            t = time.monotonic()
            r = anon.head(f"{srv.url}/v2/{repo}/manifests/v1",
                          headers={"Accept": ocilayout.MT_MANIFEST}, timeout=10)
            times.append(time.monotonic() - t)
            assert r.status_code == 200, describe(r)
        times.sort()
        # generous for a loaded 2-core test machine; bench/login_storm.sh measures it closely
        assert times[98] < 0.25, f"p99 of anonymous HEAD during the flood: {times[98]:.3f}s"
    finally:
        stop.set()
        pool.shutdown(wait=True)
    assert answers["401"] > 0 and answers["429"] > 0, answers
    # the right password still gets in once the flood is over
    assert requests.get(srv.url + "/v2/", auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30).status_code == 200
