"""Honest logs and signals: access-log lines with every field an operator
needs (time, client behind a trusted proxy, user, request id, method, path,
status, bytes actually sent, duration), `log.format: json`, `log.file`, and
SIGHUP reopening the log and reloading the log settings without stopping
the server."""

import json
import os
import re
import signal
import socket
import struct

import requests

from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER, basic_auth

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def access_lines(text: str, rid: str) -> list:
    pat = re.compile(r"rid=" + re.escape(rid) + r"( |$)|\"rid\":\"" + re.escape(rid) + '"')
    return [l for l in text.splitlines() if pat.search(l)]


def test_text_access_line_has_every_field(servers):
    srv = servers.new(env={"WHARF_TRUSTED_PROXIES": "127.0.0.1"})
    rid = "ops-text-" + os.urandom(4).hex()
    r = requests.get(srv.url + "/v2/", auth=(ADMIN_USER, ADMIN_PASSWORD),
                     headers={"X-Request-Id": rid, "X-Forwarded-For": "203.0.113.7"}, timeout=10)
    assert r.status_code == 200
    anon = rid + "-anon"
    r = requests.get(srv.url + "/v2/", headers={"X-Request-Id": anon}, timeout=10)
    assert r.status_code == 401
    wait_until(lambda: access_lines(srv.log_text(), anon), 10, "the access lines")
    (line,) = access_lines(srv.log_text(), rid)
    m = re.fullmatch(TS + r" access GET /v2/ 200 (\d+) (\d+\.\d{3})ms client=(\S+) user=(\S+) "
                     r"rid=(\S+)", line)
    assert m, line
    assert int(m.group(1)) == len(r.content) or int(m.group(1)) == 2  # "{}"
    assert m.group(3) == "203.0.113.7" and m.group(4) == ADMIN_USER and m.group(5) == rid, line
    (line,) = access_lines(srv.log_text(), anon)
    assert " 401 " in line and "client=127.0.0.1 user=- " in line, line


def test_json_log_format(servers):
    srv = servers.new(env={"WHARF_LOG_FORMAT": "json"})
    rid = "ops-json-" + os.urandom(4).hex()
    # a path with a quote, a backslash and a control byte must still give valid JSON
    r = requests.get(srv.url + "/v2/a%22b%5Cc%01d/tags/list", auth=(ADMIN_USER, ADMIN_PASSWORD),
                     headers={"X-Request-Id": rid}, timeout=10)
    assert r.status_code in (400, 404)
    wait_until(lambda: access_lines(srv.log_text(), rid), 10, "the JSON access line")
    objs = []
    for l in srv.log_text().splitlines():
        if l.startswith("---- "):  # the test harness's own markers
            continue
        objs.append(json.loads(l))  # every line is one JSON object
    assert any(o.get("msg", "").startswith("wharf ") and o["level"] == "info" for o in objs), objs
    (acc,) = [o for o in objs if o.get("rid") == rid]
    assert acc["msg"] == "access" and acc["method"] == "GET"
    assert acc["path"] == "/v2/a\"b\\c\x01d/tags/list", acc
    assert acc["status"] == r.status_code and acc["user"] == ADMIN_USER
    assert acc["client"] == "127.0.0.1" and acc["aborted"] is False
    assert acc["bytes"] == len(r.content) and isinstance(acc["duration_ms"], float)
    assert re.fullmatch(TS, acc["ts"]), acc


def test_aborted_download_logs_the_bytes_sent(servers):
    srv = servers.new()
    reg = srv.registry()
    size = 48 << 20
    digest = reg.push_blob("library/bigdl", os.urandom(size))
    rid = "ops-abort-" + os.urandom(4).hex()
    s = socket.socket()
    # a small receive window: the kernel cannot take the whole blob on the client's behalf
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    s.connect(("127.0.0.1", srv.port))
    s.sendall((f"GET /v2/library/bigdl/blobs/{digest} HTTP/1.1\r\nHost: {srv.host}\r\n"
               f"Authorization: {basic_auth()}\r\nX-Request-Id: {rid}\r\n\r\n").encode())
    got = 0
    while got < (1 << 20):
        chunk = s.recv(65536)
        assert chunk
        got += len(chunk)
    # reset the connection mid-download
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    wait_until(lambda: access_lines(srv.log_text(), rid), 30, "the aborted download's line")
    (line,) = access_lines(srv.log_text(), rid)
    fields = line.split()
    assert fields[1:5] == ["access", "GET", f"/v2/library/bigdl/blobs/{digest}", "200"], line
    assert line.endswith(" aborted"), line
    sent = int(fields[5])
    assert got - 4096 <= sent < size // 4, (got, sent, line)


def test_log_file_reopened_and_settings_reloaded_on_sighup(servers, tmp_path):
    logf = tmp_path / "logs" / "wharf.log"
    logf.parent.mkdir()
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text(f"log:\n  file: {logf}\n  access: true\n")
    srv = servers.new(env={"WHARF_CONFIG": str(cfg)})

    def get(rid):
        r = requests.get(srv.url + "/v2/", auth=(ADMIN_USER, ADMIN_PASSWORD),
                         headers={"X-Request-Id": rid}, timeout=10)
        assert r.status_code == 200

    def in_file(path, needle):
        try:
            return needle in path.read_text()
        except FileNotFoundError:
            return False

    get("before-rotation")
    wait_until(lambda: in_file(logf, "rid=before-rotation"), 10, "the access line in log.file")
    assert "listening on" in logf.read_text()
    assert "rid=before-rotation" not in srv.log_text()  # not on stderr
    assert (logf.stat().st_mode & 0o777) == 0o600

    # rotation: the file is renamed, SIGHUP makes a new one
    rotated = logf.with_name("wharf.log.1")
    os.rename(logf, rotated)
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: in_file(logf, "SIGHUP"), 10, "the reopened log file")
    get("after-rotation")
    wait_until(lambda: in_file(logf, "rid=after-rotation"), 10, "the access line in the new file")
    assert srv.running()
    assert "rid=after-rotation" not in rotated.read_text()

    # reload: access log off, debug level; the server keeps serving
    cfg.write_text(f"log:\n  file: {logf}\n  access: false\n  level: debug\n")
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: in_file(logf, "log.access off"), 10, "the reload")
    get("while-off")
    cfg.write_text(f"log:\n  file: {logf}\n  access: true\n  format: json\n")
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: in_file(logf, "log.format json"), 10, "the second reload")
    get("back-on")
    wait_until(lambda: in_file(logf, '"rid":"back-on"'), 10, "the access line once on again")
    assert "while-off" not in logf.read_text()

    # a broken configuration changes nothing and stops nothing
    cfg.write_text("log:\n  level: loud\n")
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: in_file(logf, "configuration not reloaded"), 10, "the refused reload")
    get("after-bad")
    wait_until(lambda: in_file(logf, '"rid":"after-bad"'), 10, "the log still in force")
    assert srv.running() and srv.stop() == 0


def test_unwritable_log_file_is_refused_at_start(servers, tmp_path):
    srv = servers.new(env={"WHARF_LOG_FILE": str(tmp_path / "no" / "such" / "dir" / "w.log")},
                      start=False)
    try:
        srv.start()
        started = True
    except RuntimeError:
        started = False
    assert not started
    assert "log.file" in srv.log_text(), srv.log_text()[-2000:]
