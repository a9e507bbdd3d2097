"""auth.token_key: one token signing key shared by the nodes of a registry, so that a
token one node issued is accepted by another; a key that is not there is refused at
start, before anything is created."""
import os
import subprocess

import requests
from apiclient import describe
from regclient import ADMIN_PASSWORD, ADMIN_USER
from test_config import refused, serve_env


def token(url):
    r = requests.get(f"{url}/service/token",
                     params={"service": "wharf", "scope": "registry:catalog:*"},
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30)
    assert r.status_code == 200, describe(r)
    return r.json()["token"]


def status_with(url, tok):
    return requests.get(f"{url}/v2/", headers={"Authorization": f"Bearer {tok}"},
                        timeout=10).status_code


def test_nodes_sharing_a_token_key_accept_each_others_tokens(servers):
    a = servers.new()
    shared = os.path.join(a.data_dir, "token.key")
    b = servers.new(env={"WHARF_TOKEN_KEY": shared})
    c = servers.new()  # a registry of its own, with its own key
    from_a, from_b = token(a.url), token(b.url)
    assert status_with(b.url, from_a) == 200
    assert status_with(a.url, from_b) == 200
    assert status_with(c.url, from_a) == 401  # the control: another key refuses it
    assert not os.path.exists(os.path.join(b.data_dir, "token.key"))


def test_a_token_key_that_is_not_there_is_refused_before_disk(wharf_bin, tmp_path):
    missing = tmp_path / "keys" / "token.key"
    err = refused(wharf_bin, tmp_path, serve_env(tmp_path, WHARF_TOKEN_KEY=str(missing)))
    assert "auth.token_key" in err and str(missing) in err and "no such file" in err, err
    assert not missing.exists()  # never made: a key of one node alone is not the others'
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    os.chmod(bad, 0o600)
    err = refused(wharf_bin, tmp_path, serve_env(tmp_path, WHARF_TOKEN_KEY=str(bad)))
    assert "auth.token_key" in err and "not a PEM private key" in err, err
    p = subprocess.run([wharf_bin, "config", "check"],
                       env=serve_env(tmp_path, WHARF_TOKEN_KEY=str(missing)),
                       capture_output=True, text=True, timeout=15, cwd=tmp_path)
    assert p.returncode == 1 and "auth.token_key" in p.stderr, p.stderr
