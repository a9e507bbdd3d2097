"""One server per port and per data directory.

A second `wharf serve` on a busy port must fail ("address already in use")
instead of sharing the port's connections with the first (SO_REUSEPORT let
the kernel split a push between a stale server and a fresh one, each into its
own database); a second server on a data directory in use must exit naming
the first one's PID before it touches anything there (their start-up
clean-ups and sweepers would remove each other's staged files). The CLI
commands that work beside a running server keep working.
"""

import os
import subprocess

import pytest

from datadir import staging_files
from ocilayout import make_image, sha256_digest
from regclient import ADMIN_PASSWORD, describe

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VULNDB_DATA = os.path.join(REPO_ROOT, "tests", "data", "vulndb")


def run_second(srv_template, data_dir, port, timeout=15):
    """Runs another `wharf serve` and waits for it to exit (it must)."""
    env = dict(os.environ)
    env.update({"WHARF_LISTEN": f"127.0.0.1:{port}", "WHARF_DATA_DIR": data_dir,
                "WHARF_ADMIN_PASSWORD": ADMIN_PASSWORD})
    p = subprocess.Popen([srv_template.binary, "serve"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"a second server on port {port} / {data_dir} kept running:\n{err[-3000:]}")
    return p.returncode, out + err


def test_second_server_on_busy_port_fails(servers, tmp_path, unique):
    first = servers.new()
    reg = first.registry()
    other_dir = str(tmp_path / "other-data")
    rc, text = run_second(first, other_dir, first.port)
    assert rc != 0
    assert "address already in use" in text.lower(), text
    assert f"127.0.0.1:{first.port}" in text, text
    # It failed before touching its data directory (only the lock file exists).
    assert not os.path.exists(os.path.join(other_dir, "wharf.db")), os.listdir(other_dir)
    # Every connection still reaches the first server, and it works.
    for _ in range(20):
        r = reg.get("/v2/")
        assert r.status_code == 200, describe(r)
    img = make_image(layers=1, files_per_layer=1, file_size=4096)
    reg.push_image(f"library/{unique}", img, "v1")
    assert reg.get_manifest(f"library/{unique}", "v1").status_code == 200


def test_second_server_on_same_data_dir_fails(servers, unique):
    first = servers.new()
    reg = first.registry()
    repo = f"library/{unique}"
    # An upload in progress on the first server: its staged bytes must survive.
    data = os.urandom(100_000)
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=data[:50_000], headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, describe(r)
    staged = staging_files(first.data_dir)
    assert len(staged) == 1

    rc, text = run_second(first, first.data_dir, 0)
    assert rc != 0
    assert f"data directory {first.data_dir} is in use by another wharf server" in text, text
    assert f"(PID {first.proc.pid})" in text, text
    with open(os.path.join(first.data_dir, "wharf.lock")) as f:
        assert f.read().strip() == str(first.proc.pid)

    assert staging_files(first.data_dir) == staged
    r = reg.patch(r.headers["Location"], data=data[50_000:],
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, describe(r)
    r = reg.put(r.headers["Location"], params={"digest": sha256_digest(data)})
    assert r.status_code == 201, describe(r)

    # Once the first server has stopped, the directory is free again.
    assert first.stop() == 0
    first.start()
    assert first.registry().get(f"/v2/{repo}/blobs/{sha256_digest(data)}").content == data


def test_cli_beside_running_server(servers, unique):
    srv = servers.new()
    reg = srv.registry()
    name = f"p{unique[-6:]}"
    p = srv.cli("project", "create", name, "--public")
    assert p.returncode == 0, p.stderr
    assert name in srv.cli("project", "list", check=True).stdout
    r = reg.get(f"/api/v2.0/projects/{name}")
    assert r.status_code == 200, describe(r)  # the server sees it at once

    user = f"u{unique[-6:]}"
    p = subprocess.run([srv.binary, "user", "add", user, "--email", f"{user}@example.com"],
                       input="Cli-Passw0rd-1\n", capture_output=True, text=True, timeout=30,
                       env={**os.environ, "WHARF_DATA_DIR": srv.data_dir})
    assert p.returncode == 0, p.stderr
    assert user in srv.cli("user", "list", check=True).stdout
    r = reg.get("/v2/", auth=(user, "Cli-Passw0rd-1"))
    assert r.status_code == 200, describe(r)

    p = srv.cli("vulndb", "import", os.path.join(VULNDB_DATA, "nvd"), timeout=120)
    assert p.returncode == 0, p.stderr
    p = srv.cli("vulndb", "status")
    assert p.returncode == 0 and "nvd" in p.stdout.lower(), p.stdout + p.stderr

    assert srv.running()
    img = make_image(layers=1, files_per_layer=1, file_size=4096)
    reg.push_image(f"{name}/app", img, "v1")
