"""TLS on the listener, and X-Forwarded-* believed only from trusted proxies."""

import shutil
import sqlite3
import subprocess
import time

import requests

from regclient import ADMIN_PASSWORD, ADMIN_USER, CREDS, describe


def make_cert(d):
    """A self-signed P-256 certificate for 127.0.0.1 (openssl from Debian)."""
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def test_tls_listener_with_skopeo(servers, skopeo, image_layout, tmp_path, unique):
    cert, key = make_cert(tmp_path)
    srv = servers.new(env={"WHARF_TLS_CERT": str(cert), "WHARF_TLS_KEY": str(key)})
    assert srv.url.startswith("https://")
    # plain HTTP on the TLS port gets no registry answer
    try:
        r = requests.get(f"http://{srv.host}/v2/", timeout=5)
        assert r.status_code >= 400 or "Distribution-API" not in str(r.headers)
    except requests.RequestException:
        pass
    # the challenge sends clients to the token service over https
    r = requests.get(srv.url + "/v2/", verify=str(cert), timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="https://{srv.host}/service/token"')
    # a real client, verifying the certificate (its CA in a cert dir)
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(cert, certs / "ca.crt")
    path, img = image_layout
    ref = f"docker://{srv.host}/library/{unique}:v1"
    skopeo.run(["skopeo", "copy", f"--dest-cert-dir={certs}", f"--dest-creds={CREDS}",
                f"oci:{path}:v1", ref])
    out = tmp_path / "back"
    skopeo.run(["skopeo", "copy", f"--src-cert-dir={certs}", f"--src-creds={CREDS}", ref,
                f"oci:{out}:v1"])
    r = requests.get(f"{srv.url}/v2/library/{unique}/manifests/v1", verify=str(cert), timeout=30,
                     auth=(ADMIN_USER, ADMIN_PASSWORD),
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 200 and r.content == img.manifest, describe(r)
    # without the CA, the client refuses the server
    p = skopeo.run(["skopeo", "inspect", f"--creds={CREDS}", ref], check=False)
    assert p.returncode != 0 and "certificate" in p.stderr.lower(), p.stderr


def test_forwarded_headers_only_from_trusted_proxies(servers, unique):
    plain = servers.new()
    r = requests.get(plain.url + "/v2/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert r.status_code == 401
    assert 'realm="http://' in r.headers["WWW-Authenticate"], "an untrusted X-Forwarded-Proto was believed"

    trusting = servers.new(env={"WHARF_TRUSTED_PROXIES": "10.9.9.9, 127.0.0.1"})
    r = requests.get(trusting.url + "/v2/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert 'realm="https://' in r.headers["WWW-Authenticate"], describe(r)
    # the client address a trusted proxy reports is the one audited
    bad = requests.get(trusting.url + "/service/token", params={"service": "wharf"},
                       auth=(ADMIN_USER, "Not-The-Passw0rd"),
                       headers={"X-Forwarded-For": "198.51.100.7"}, timeout=30)
    assert bad.status_code == 401
    r = requests.get(plain.url + "/service/token", params={"service": "wharf"},
                     auth=(ADMIN_USER, "Not-The-Passw0rd"),
                     headers={"X-Forwarded-For": "198.51.100.8"}, timeout=30)
    assert r.status_code == 401
    # failed logins reach the audit log through the batch writer (within a second or so)
    for srv, want, not_want in ((trusting, "198.51.100.7", None), (plain, "127.0.0.1", "198.51.100.8")):
        deadline = time.monotonic() + 10
        while True:
            db = sqlite3.connect(f"{srv.data_dir}/wharf.db")
            ips = [row[0] for row in db.execute(
                "SELECT client_ip FROM audit_log WHERE operation='login' AND result=0")]
            db.close()
            if want in ips or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert want in ips, ips
        if not_want:
            assert not_want not in ips, ips
