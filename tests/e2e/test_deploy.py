"""docs/deploy.md's nginx configuration, as printed there, in front of a real wharf.

The `server { ... }` block after "Behind nginx" is read from the page, its certificate
paths, port and upstream replaced by a self-signed certificate, a free loopback port and
the test server, and run by Debian's nginx (skipped where nginx is not installed; it is
in `scripts/deps.sh test`). A skopeo push and pull go through it; the token realm keeps
the proxy's port; a 20 MB chunked upload reaches wharf without nginx spooling it to disk.
The two lines the page says matter are taken out one at a time and shown to matter.
The N-node upstream block is checked for syntax with `nginx -t` (test_nodes.py runs it).
"""

import os
import re
import shutil
import subprocess

import pytest
import requests

from conftest import REPO_ROOT, free_port, wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER, describe

DEPLOY = REPO_ROOT / "docs" / "deploy.md"
SPOOLED = "a client request body is buffered to a temporary file"


def doc_nginx_blocks():
    """The ```nginx blocks of docs/deploy.md, in order."""
    return re.findall(r"```nginx\n(.*?)```", DEPLOY.read_text(), re.S)


def single_node_block():
    text = DEPLOY.read_text()
    start = text.index("**Behind nginx**")
    block = re.search(r"```nginx\n(.*?)```", text[start:], re.S).group(1)
    assert block.lstrip().startswith("server {"), block
    return block


def make_cert(d):
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


class Nginx:
    """nginx run by the test, its pid, logs and temp paths in `d`, stopped by its pid."""

    def __init__(self, d):
        self.d = d
        self.conf = d / "nginx.conf"
        self.error_log = d / "error.log"

    def write(self, server_block):
        d = self.d
        self.conf.write_text(
            ""
            # the workers write the temp files in the test's private directory: as root,
            # the test's user (nginx's default worker user could not reach it)
            + ("user root;\n" if os.geteuid() == 0 else "")
            + "worker_processes 1;\n"
            f"pid {d}/nginx.pid;\n"
            f"error_log {self.error_log} warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  access_log {d}/access.log;\n"
            f"  client_body_temp_path {d}/client_body;\n"
            f"  proxy_temp_path {d}/proxy_temp;\n"
            f"  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
            + server_block + "\n}\n")

    def test_conf(self):
        return subprocess.run(["nginx", "-t", "-c", str(self.conf)], capture_output=True,
                              text=True, timeout=30)

    def start(self):
        self.error_log.write_text("")
        p = subprocess.run(["nginx", "-c", str(self.conf)], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, p.stderr
        pidf = self.d / "nginx.pid"
        wait_until(lambda: pidf.exists() and pidf.read_text().strip(), 10,
                   "nginx to write its pid")

    def stop(self):
        pidf = self.d / "nginx.pid"
        text = pidf.read_text().strip() if pidf.exists() else ""
        if text:  # `nginx -t` leaves an empty file
            os.kill(int(text), 15)
            wait_until(lambda: not pidf.exists(), 10, "nginx to stop")


@pytest.fixture
def nginx(tmp_path):
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (Debian's nginx, scripts/deps.sh test)")
    d = tmp_path / "nginx"
    d.mkdir()
    n = Nginx(d)
    yield n
    n.stop()


def localise(block, port, cert, key, upstream):
    out = block.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    out = out.replace("/etc/ssl/registry.crt", str(cert)).replace("/etc/ssl/registry.key", str(key))
    out = out.replace("http://127.0.0.1:5000", f"http://{upstream}")
    for needle in (f"127.0.0.1:{port} ssl", str(cert), str(key), upstream):
        assert needle in out, f"the page's block changed shape: {needle} not substituted"
    return out


def chunked_upload(base, repo, cert, size=20_000_000):
    s = requests.Session()
    s.auth = (ADMIN_USER, ADMIN_PASSWORD)
    r = s.post(f"{base}/v2/{repo}/blobs/uploads/", verify=str(cert), timeout=30)
    assert r.status_code == 202, describe(r)
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else base + loc

    def chunks():
        piece = os.urandom(1 << 20)
        for _ in range(size // len(piece)):
            yield piece

    r = s.patch(loc, data=chunks(), headers={"Content-Type": "application/octet-stream"},
                verify=str(cert), timeout=120)  # a generator body: requests sends it chunked
    assert r.status_code == 202, describe(r)
    return r


def test_single_node_nginx_block_as_documented(servers, nginx, skopeo, image_layout, tmp_path,
                                               unique):
    srv = servers.new(env={"WHARF_TRUSTED_PROXIES": "127.0.0.1"})  # as the page's wharf.yaml
    cert, key = make_cert(tmp_path)
    port = free_port()
    block = single_node_block()
    nginx.write(localise(block, port, cert, key, srv.host))
    nginx.start()
    base = f"https://127.0.0.1:{port}"

    # the realm names the proxy, its scheme and its port
    r = requests.get(f"{base}/v2/", verify=str(cert), timeout=10)
    assert r.status_code == 401, describe(r)
    assert r.headers["WWW-Authenticate"].startswith(
        f'Bearer realm="https://127.0.0.1:{port}/service/token"'), describe(r)

    # a real client through the proxy, both ways
    path, img = image_layout
    ref = f"docker://127.0.0.1:{port}/library/{unique}:v1"
    skopeo.copy(f"oci:{path}:v1", ref)
    skopeo.copy(ref, f"oci:{tmp_path / 'back'}:v1")
    r = requests.get(f"{base}/v2/library/{unique}/manifests/v1", verify=str(cert), timeout=30,
                     auth=(ADMIN_USER, ADMIN_PASSWORD),
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 200 and r.content == img.manifest, describe(r)

    # a chunked upload streams through: nginx never spools it
    chunked_upload(base, f"library/{unique}", cert)
    assert SPOOLED not in nginx.error_log.read_text()

    # the lines the page says matter do: without proxy_http_version 1.1 the chunked
    # upload is spooled; with Host $host the realm loses the port
    nginx.stop()
    nginx.write(localise(block.replace("proxy_http_version 1.1;", ""), port, cert, key,
                         srv.host))
    nginx.start()
    chunked_upload(base, f"library/{unique}", cert)
    assert SPOOLED in nginx.error_log.read_text()
    nginx.stop()
    nginx.write(localise(block.replace("$http_host", "$host"), port, cert, key, srv.host))
    nginx.start()
    r = requests.get(f"{base}/v2/", verify=str(cert), timeout=10)
    assert 'realm="https://127.0.0.1/service/token"' in r.headers["WWW-Authenticate"], describe(r)


def test_planned_upstream_block_parses(nginx, tmp_path):
    """The several-nodes block is valid nginx, so that it can be taken as is."""
    blocks = doc_nginx_blocks()
    upstream = [b for b in blocks if "upstream wharf" in b]
    assert len(upstream) == 1, "docs/deploy.md has no (or several) upstream wharf blocks"
    cert, key = make_cert(tmp_path)
    conf = upstream[0].replace("/etc/ssl/registry.crt", str(cert)).replace(
        "/etc/ssl/registry.key", str(key))
    nginx.write(conf)
    p = nginx.test_conf()
    assert p.returncode == 0, p.stderr


def test_backup_timer_units_verify(wharf_bin, tmp_path):
    """The wharf-backup service and timer printed in docs/deploy.md pass
    `systemd-analyze verify` (the binary path replaced by the one under test)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd)")
    blocks = re.findall(r"```ini\n(.*?)```", DEPLOY.read_text(), re.S)
    units = {}
    for b in blocks:
        m = re.match(r"# /etc/systemd/system/(wharf-backup\.(?:service|timer))\n", b)
        if m:
            units[m.group(1)] = b.replace("/usr/local/bin/wharf", str(wharf_bin))
    assert set(units) == {"wharf-backup.service", "wharf-backup.timer"}, sorted(units)
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        *(str(tmp_path / n) for n in sorted(units))],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stdout + p.stderr
    assert "wharf backup" in units["wharf-backup.service"]
