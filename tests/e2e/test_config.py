"""Settings documented in docs/configuration.md, each on a server of its own:
upload session and blob size caps, read-only mode, deletes disabled, idle
connection timeout, and refusal of bad values at start."""

import os
import socket
import subprocess
import time

import pytest
import requests

from conftest import free_port, wait_until
from datadir import has_blob
from ocilayout import make_image, sha256_digest
from regclient import describe, expect_error

OCTET = {"Content-Type": "application/octet-stream"}


def small_image():
    return make_image(layers=1, files_per_layer=1, file_size=1024)


def test_max_upload_sessions(servers, unique):
    srv = servers.new(env={"WHARF_MAX_UPLOADS": "3"})
    reg = srv.registry()
    repo = f"library/{unique}"
    locs = [reg.start_upload(repo) for _ in range(3)]
    r = reg.post(f"/v2/{repo}/blobs/uploads/")
    expect_error(r, 429, "TOO_MANY_REQUESTS")
    assert r.headers.get("Retry-After"), describe(r)
    # Finishing or cancelling a session frees its slot.
    d = reg.delete(locs[0])
    assert d.status_code == 204, describe(d)
    data = b"freed"
    p = reg.put(locs[1], params={"digest": sha256_digest(data)}, data=data, headers=OCTET)
    assert p.status_code == 201, describe(p)
    for _ in range(2):
        reg.start_upload(repo)
    expect_error(reg.post(f"/v2/{repo}/blobs/uploads/"), 429, "TOO_MANY_REQUESTS")
    assert reg.get(f"/v2/{repo}/blobs/{sha256_digest(data)}").status_code == 200


def test_max_blob_size(servers, unique):
    srv = servers.new(env={"WHARF_MAX_BLOB": "64K"})
    reg = srv.registry()
    repo = f"library/{unique}"
    ok = os.urandom(64 * 1024)
    assert reg.push_blob(repo, ok) == sha256_digest(ok)

    big = os.urandom(64 * 1024 + 1)
    r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256_digest(big)}, data=big,
                 headers=OCTET)
    expect_error(r, 413, "SIZE_INVALID")
    # In chunks: the chunk that crosses the limit is refused.
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=big[:40_000], headers={**OCTET, "Content-Range": "0-39999"})
    assert r.status_code == 202, describe(r)
    r = reg.patch(r.headers["Location"], data=big[40_000:],
                  headers={**OCTET, "Content-Range": f"40000-{len(big) - 1}"})
    expect_error(r, 413, "SIZE_INVALID")
    assert not has_blob(srv.data_dir, sha256_digest(big))


def test_read_only(servers, unique):
    srv = servers.new()
    reg = srv.registry()
    repo = f"library/{unique}"
    img = small_image()
    reg.push_image(repo, img, "v1")
    srv.stop()
    srv.extra_env["WHARF_READ_ONLY"] = "true"
    srv.start()
    reg = srv.registry()
    assert reg.get_manifest(repo, "v1").content == img.manifest
    expect_error(reg.post(f"/v2/{repo}/blobs/uploads/"), 403, "DENIED")
    expect_error(reg.push_manifest(repo, "v2", img.manifest), 403, "DENIED")
    expect_error(reg.delete(f"/v2/{repo}/manifests/{img.manifest_digest}"), 403, "DENIED")
    assert reg.get_manifest(repo, img.manifest_digest).status_code == 200


def test_deletes_disabled(servers, unique):
    srv = servers.new(env={"WHARF_DELETE_ENABLED": "false"})
    reg = srv.registry()
    repo = f"library/{unique}"
    img = small_image()
    reg.push_image(repo, img, "v1")
    for path in (f"/v2/{repo}/manifests/{img.manifest_digest}", f"/v2/{repo}/manifests/v1",
                 f"/v2/{repo}/blobs/{img.layers[0]}"):
        expect_error(reg.delete(path), 405, "UNSUPPORTED")
    assert reg.get_manifest(repo, "v1").content == img.manifest
    assert reg.get(f"/v2/{repo}/blobs/{img.layers[0]}").status_code == 200


def test_idle_connection_is_cut(servers):
    srv = servers.new(env={"WHARF_IDLE_TIMEOUT": "2"})
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    try:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        t0 = time.monotonic()
        try:
            data = s.recv(65536)
            while data and b"\r\n\r\n" not in data:
                more = s.recv(65536)
                if not more:
                    break
                data += more
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - t0
    finally:
        s.close()
    assert waited < 10, "a silent connection was kept open past the idle timeout"
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
    assert srv.registry().get("/v2/").status_code == 200


@pytest.mark.parametrize("var,value", [
    ("WHARF_UPLOAD_TTL", "soon"),
    ("WHARF_MAX_MANIFEST", "-1"),
    ("WHARF_LISTEN", "not-an-address"),
])
def test_bad_setting_stops_start(wharf_bin, tmp_path, var, value):
    env = dict(os.environ)
    env.update({"WHARF_DATA_DIR": str(tmp_path / "data"),
                "WHARF_LISTEN": f"127.0.0.1:{free_port()}", var: value})
    try:
        p = subprocess.run([wharf_bin, "serve"], env=env, capture_output=True, text=True,
                           timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wharf serve kept running with {var}={value!r}")
    assert p.returncode != 0
    key = var.split("_", 1)[1].lower()
    assert var in p.stderr or key.split("_")[-1] in p.stderr.lower(), (
        f"the message does not name the setting: {p.stderr!r}")


def test_port_in_use_stops_start(wharf_bin, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        env = dict(os.environ)
        env.update({"WHARF_DATA_DIR": str(tmp_path / "data"), "WHARF_LISTEN": f"127.0.0.1:{port}"})
        try:
            p = subprocess.run([wharf_bin, "serve"], env=env, capture_output=True, text=True,
                               timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("wharf serve kept running on a port it could not bind")
    assert p.returncode != 0
    assert str(port) in p.stderr, f"the message does not name the address: {p.stderr!r}"


# ------------------------------------------------- refused before anything is made


def serve_env(tmp_path, **extra) -> dict:
    """An environment for `wharf serve` on a free port and a data dir that does not exist
    yet, without the WHARF_* variables of the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update({"WHARF_DATA_DIR": str(tmp_path / "data"),
                "WHARF_LISTEN": f"127.0.0.1:{free_port()}",
                "WHARF_ADMIN_PASSWORD": "Admin-Passw0rd"})
    env.update(extra)
    return env


def refused(wharf_bin, tmp_path, env, *args) -> str:
    """Runs `wharf serve ARGS`, which must exit non-zero without creating the data dir;
    returns its stderr."""
    try:
        p = subprocess.run([wharf_bin, "serve", *args], env=env, capture_output=True, text=True,
                           timeout=15, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wharf serve {args} kept running")
    assert p.returncode != 0, p.stderr
    assert not (tmp_path / "data").exists(), (
        f"the data dir was created before the refusal: {os.listdir(tmp_path / 'data')}")
    assert "Success" not in p.stderr, p.stderr
    return p.stderr


@pytest.mark.parametrize("var,value,key", [
    ("WHARF_LOG_LEVEL", "verbose", "log.level"),
    ("WHARF_TRUSTED_PROXIES", "127.0.0.1, not-an-ip", "http.trusted_proxies"),
    ("WHARF_TRUSTED_PROXIES", "10.0.0.0/33", "http.trusted_proxies"),
    ("WHARF_MAX_CONNECTIONS", "0", "http.max_connections"),
    ("WHARF_MAX_HEADER_BYTES", "0", "limits.max_header_bytes"),
    ("WHARF_MAX_UPLOADS", "0", "limits.max_uploads"),
    ("WHARF_MAX_BLOB", "0", "limits.max_blob_bytes"),
    ("WHARF_MAX_MANIFEST", "0", "limits.max_manifest_bytes"),
    ("WHARF_UPLOAD_TTL", "0", "uploads.ttl"),
    ("WHARF_THREADS", "0", "http.threads"),
    ("WHARF_HEADER_TIMEOUT", "0", "http.header_timeout"),
    ("WHARF_IDLE_TIMEOUT", "0", "http.idle_timeout"),
    ("WHARF_MAX_CONNECTIONS_PER_IP", "many", "http.max_connections_per_ip"),
    ("WHARF_LOGIN_THREADS", "0", "auth.login_threads"),
    ("WHARF_LOGIN_QUEUE", "0", "auth.login_queue"),
    ("WHARF_TOKEN_TTL", "0", "auth.token_ttl"),
    ("WHARF_AUDIT_RETENTION_DAYS", "-1", "audit.retention_days"),
    ("WHARF_LISTEN", "localhost:5601", "listen"),
    ("WHARF_LISTEN", "::1:5601", "listen"),
    ("WHARF_READ_ONLY", "maybe", "registry.read_only"),
])
def test_bad_value_refused_before_disk(wharf_bin, tmp_path, var, value, key):
    err = refused(wharf_bin, tmp_path, serve_env(tmp_path, **{var: value}))
    assert f"{var} ({key})" in err and value in err, err


def test_bad_file_named_with_lines_all_at_once(wharf_bin, tmp_path):
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text("listen: localhost:5601\n"
                   "http:\n"
                   "  threads: 0\n"
                   "  trusted_proxies: [127.0.0.1, not-an-ip]\n"
                   "log:\n"
                   "  level: DEBUG\n"
                   "  levle: info\n"
                   "uploads:\n"
                   "  ttl: 0\n")
    env = serve_env(tmp_path)
    del env["WHARF_LISTEN"]
    err = refused(wharf_bin, tmp_path, env, "--config", str(cfg))
    for line, what in [(1, "listen: 'localhost:5601'"), (3, "http.threads: '0'"),
                       (4, "http.trusted_proxies: '127.0.0.1,not-an-ip': 'not-an-ip'"), (7, "unknown key log.levle"), (9, "uploads.ttl: '0'")]:
        assert f"{cfg}:{line}: {what}" in err, err
    assert "log.level" not in err  # DEBUG is a level


@pytest.mark.parametrize("case", ["cert-only", "key-only", "mismatch", "missing", "encrypted",
                                  "not-pem"])
def test_tls_files_checked_before_disk(wharf_bin, tmp_path, case):
    from test_tls_proxy import make_cert
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, key = make_cert(tmp_path / "a")
    _, other_key = make_cert(tmp_path / "b")
    env = serve_env(tmp_path)
    if case == "cert-only":
        env["WHARF_TLS_CERT"] = str(cert)
        want = "tls.key is not"
    elif case == "key-only":
        env["WHARF_TLS_KEY"] = str(key)
        want = "tls.cert is not"
    elif case == "mismatch":
        env.update(WHARF_TLS_CERT=str(cert), WHARF_TLS_KEY=str(other_key))
        want = f"tls.key (WHARF_TLS_KEY): {other_key} is not the private key of the certificate"
    elif case == "missing":
        env.update(WHARF_TLS_CERT=str(tmp_path / "nope.pem"), WHARF_TLS_KEY=str(key))
        want = f"tls.cert (WHARF_TLS_CERT): cannot read {tmp_path / 'nope.pem'}: No such file"
    elif case == "encrypted":
        enc = tmp_path / "enc.pem"
        subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:secret",
                        "-out", str(enc)], check=True, capture_output=True)
        env.update(WHARF_TLS_CERT=str(cert), WHARF_TLS_KEY=str(enc))
        want = "is encrypted"
    else:
        env.update(WHARF_TLS_CERT=str(key), WHARF_TLS_KEY=str(key))
        want = "holds no PEM certificate"
    err = refused(wharf_bin, tmp_path, env)
    assert want in err, err


def test_listen_address_not_here_refused_before_disk(wharf_bin, tmp_path):
    # 192.0.2.1 (TEST-NET-1) is no address of this host
    err = refused(wharf_bin, tmp_path, serve_env(tmp_path, WHARF_LISTEN="192.0.2.1:5000"))
    assert "listen (WHARF_LISTEN): cannot listen on 192.0.2.1:5000" in err, err


def test_port_in_use_refused_before_disk(wharf_bin, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        err = refused(wharf_bin, tmp_path, serve_env(tmp_path), "--listen", f"127.0.0.1:{port}")
    assert f"listen (command line): cannot listen on 127.0.0.1:{port}: Address already in use" \
        in err, err


def test_data_dir_that_cannot_be_made(wharf_bin, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    env = serve_env(tmp_path, WHARF_DATA_DIR=str(tmp_path / "file" / "data"))
    p = subprocess.run([wharf_bin, "serve"], env=env, capture_output=True, text=True, timeout=15)
    assert p.returncode == 1
    assert "data_dir (WHARF_DATA_DIR)" in p.stderr and "not a directory" in p.stderr.lower(), p.stderr
    assert not (tmp_path / "file" / "data").exists()


def test_weak_admin_password_refused_before_disk(wharf_bin, tmp_path):
    err = refused(wharf_bin, tmp_path, serve_env(tmp_path, WHARF_ADMIN_PASSWORD="admin"))
    assert "WHARF_ADMIN_PASSWORD: The password must be at least 8 characters" in err, err


def test_serve_flags_override_file_and_env(wharf_bin, tmp_path, servers):
    """--listen and --data-dir win over the file and the environment; log.level DEBUG is
    a level (the debug lines appear)."""
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text(f"listen: 127.0.0.1:{free_port()}\ndata_dir: {tmp_path / 'file-data'}\n"
                   "log:\n  level: DEBUG\n")
    port = free_port()
    env = serve_env(tmp_path, WHARF_CONFIG=str(cfg), WHARF_DATA_DIR=str(tmp_path / "env-data"))
    del env["WHARF_LISTEN"]
    env["WHARF_LISTEN"] = f"127.0.0.1:{free_port()}"
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([wharf_bin, "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(tmp_path / "flag-data")],
                            env=env, stdout=log, stderr=log)
    try:
        def up():
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 401
            except requests.RequestException:
                return False
        wait_until(up, 20, "wharf serve answering on the --listen port")
        assert (tmp_path / "flag-data" / "wharf.db").exists()
        assert not (tmp_path / "file-data").exists() and not (tmp_path / "env-data").exists()
    finally:
        proc.terminate()
        rc = proc.wait(15)
        log.close()
    assert rc == 0
    text = (tmp_path / "serve.log").read_text()
    assert " debug " in text, text[-2000:]


# ------------------------------------------------------------- wharf config check


def test_config_check_prints_effective_configuration(wharf_bin, tmp_path):
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text("http:\n  threads: 3\n  trusted_proxies: [127.0.0.1, 10.0.0.0/8]\n"
                   "limits:\n  max_blob_bytes: 1G\n")
    env = serve_env(tmp_path, WHARF_MAX_UPLOADS="7", WHARF_CONFIG=str(cfg))
    del env["WHARF_LISTEN"]
    p = subprocess.run([wharf_bin, "config", "check", "--listen", "[::1]:5601"], env=env,
                       capture_output=True, text=True, timeout=15, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert 'threads: 3' in out and f"# {cfg}:2" in out.split("threads: 3")[1].splitlines()[0]
    assert 'listen: "[::1]:5601"' in out and "# command line" in out
    assert "max_uploads: 7" in out and "# WHARF_MAX_UPLOADS" in out
    assert "max_blob_bytes: 1G" in out
    assert "max_header_bytes: 16K" in out and "# default" in out
    # the administrator's password is masked, never printed
    assert "Admin-Passw0rd" not in out and "WHARF_ADMIN_PASSWORD is set (********)" in out
    assert not (tmp_path / "data").exists()
    # what it prints is a configuration file giving the same settings
    again = tmp_path / "again.yaml"
    again.write_text(out)
    env2 = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    q = subprocess.run([wharf_bin, "config", "check", "--config", str(again)], env=env2,
                       capture_output=True, text=True, timeout=15, cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    def values(text):
        return [l.split("#")[0].rstrip() for l in text.splitlines() if l.split("#")[0].strip()]
    assert values(q.stdout) == values(out)


def test_config_check_names_every_problem(wharf_bin, tmp_path):
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text("http:\n  threads: 0\nlog:\n  level: verbose\n")
    env = serve_env(tmp_path, WHARF_CONFIG=str(cfg), WHARF_MAX_BLOB="0",
                    WHARF_TLS_CERT=str(tmp_path / "cert.pem"))
    p = subprocess.run([wharf_bin, "config", "check"], env=env, capture_output=True, text=True,
                       timeout=15, cwd=tmp_path)
    assert p.returncode == 1 and p.stdout == ""
    for what in (f"{cfg}:2: http.threads", f"{cfg}:4: log.level", "WHARF_MAX_BLOB"):
        assert what in p.stderr, p.stderr
    assert "not valid" in p.stderr
    # with the values right, the TLS files are checked too
    env = serve_env(tmp_path, WHARF_TLS_CERT=str(tmp_path / "cert.pem"))
    p = subprocess.run([wharf_bin, "config", "check"], env=env, capture_output=True, text=True,
                       timeout=15, cwd=tmp_path)
    assert p.returncode == 1 and "tls.key is not" in p.stderr, p.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("var,value,key,why", [
    ("WHARF_SCAN_REGISTRY_URL", "ftp://x", "scan.registry_url", "http:// or https://"),
    ("WHARF_SCAN_ADAPTER_TOKEN", "has space in it-0123456789", "scan.adapter.token",
     "printable ASCII"),
])
def test_scan_settings_named_like_every_value(wharf_bin, tmp_path, var, value, key, why):
    """The scanner settings checked together are refused in the form every bad value is:
    `wharf: KEY (ORIGIN): 'VALUE': ...` (docs/configuration.md), by serve and config check."""
    env = serve_env(tmp_path, **{var: value})
    err = refused(wharf_bin, tmp_path, env)
    shown = "********" if key == "scan.adapter.token" else value  # a secret is never printed
    assert f"wharf: {key} ({var}): '{shown}': " in err and why in err, err
    assert value not in err or key != "scan.adapter.token", err
    p = subprocess.run([wharf_bin, "config", "check"], env=env, capture_output=True, text=True,
                       timeout=15, cwd=tmp_path)
    assert p.returncode == 1 and f"wharf: {key} ({var})" in p.stderr, p.stderr


def test_adapter_without_token_named_in_the_file(wharf_bin, tmp_path):
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text("scan:\n  adapter:\n    enabled: true\n")
    err = refused(wharf_bin, tmp_path, serve_env(tmp_path, WHARF_CONFIG=str(cfg)))
    assert f"wharf: scan.adapter.enabled ({cfg}:3): " in err, err
    assert "scan.adapter.token" in err and "16 characters" in err, err


def test_config_check_checks_the_log_file(wharf_bin, tmp_path):
    """A log.file serve could not open is refused by config check too, and not created."""
    bad = tmp_path / "no" / "such" / "dir" / "w.log"
    env = serve_env(tmp_path, WHARF_LOG_FILE=str(bad))
    p = subprocess.run([wharf_bin, "config", "check"], env=env, capture_output=True, text=True,
                       timeout=15, cwd=tmp_path)
    assert p.returncode == 1 and f"wharf: log.file (WHARF_LOG_FILE): {bad}" in p.stderr, p.stderr
    good = tmp_path / "w.log"
    env = serve_env(tmp_path, WHARF_LOG_FILE=str(good))
    p = subprocess.run([wharf_bin, "config", "check"], env=env, capture_output=True, text=True,
                       timeout=15, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert not good.exists()  # checked, not created
    err = refused(wharf_bin, tmp_path, serve_env(tmp_path, WHARF_LOG_FILE=str(bad)))
    assert f"wharf: log.file (WHARF_LOG_FILE): {bad}" in err, err
