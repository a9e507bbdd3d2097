"""wharf with its metadata on PostgreSQL (db.driver: postgres): a throwaway
PostgreSQL 15 (scripts/pg-up.sh), an image pushed and pulled back unchanged,
nothing written to wharf.db, the registry found again after a restart, the
connection pool on /metrics, and a wrong or missing connection string refused
at start with a message that says so."""

import os
import re
import subprocess

import pytest

from conftest import ADMIN_PASSWORD, REPO_ROOT
from test_skopeo import assert_layout_holds_image


@pytest.fixture(scope="module")
def pg():
    """The DSN of a throwaway PostgreSQL, stopped after the module."""
    if not os.path.exists("/usr/lib/postgresql/15/bin/initdb"):
        pytest.skip("postgresql-15 is not installed (bash scripts/deps.sh test)")
    out = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "pg-up.sh")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    env = dict(line.split("=", 1) for line in out.stdout.split())
    yield env["WHARF_TEST_PG_DSN"]
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "pg-down.sh"), env["WHARF_PG_ROOT"]],
                   check=True, timeout=60)


def schema_dsn(dsn, schema):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c", f"CREATE SCHEMA {schema}"],
                   check=True, capture_output=True)
    return f"{dsn}?options=-csearch_path%3D{schema}"


def psql_value(dsn, sql):
    return subprocess.run(["psql", "-At", dsn, "-c", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def metric(text, name):
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def test_push_pull_restart_on_postgres(pg, servers, skopeo, image_layout, tmp_path, unique):
    dsn = schema_dsn(pg, "node1")
    srv = servers.new(env={"WHARF_DB_DRIVER": "postgres", "WHARF_DB_DSN": dsn,
                           "WHARF_DB_POOL_SIZE": "3"})
    src, img = image_layout
    ref = f"docker://{srv.host}/library/{unique}:v1"
    skopeo.copy(f"oci:{src}:v1", ref)
    # the metadata is in PostgreSQL, not in a SQLite file beside the blobs
    assert not os.path.exists(os.path.join(srv.data_dir, "wharf.db"))
    assert psql_value(dsn, f"SELECT count(*) FROM repository WHERE name = 'library/{unique}'") == "1"
    assert psql_value(dsn, "SELECT version FROM wharf_schema") == "18"

    srv.restart()
    out = tmp_path / "pulled"
    skopeo.copy(ref, f"oci:{out}:v1")
    assert_layout_holds_image(str(out), "v1", img)
    tags = srv.registry().get(f"/v2/library/{unique}/tags/list").json()
    assert tags["tags"] == ["v1"]

    text = srv.registry(anonymous=True).get("/metrics").text
    assert metric(text, "wharf_db_pool_connections") == 3
    assert metric(text, "wharf_db_pool_connections_in_use") == 0
    assert metric(text, "wharf_db_pool_waits_total") is not None
    # never more server connections than the pool allows
    n = int(psql_value(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'wharf'"
                           " AND pid <> pg_backend_pid()"))
    assert 1 <= n <= 3, n


def test_bad_database_settings_refused_at_start(pg, wharf_bin, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update({"WHARF_DATA_DIR": str(tmp_path / "data"), "WHARF_LISTEN": "127.0.0.1:0",
                "WHARF_ADMIN_PASSWORD": ADMIN_PASSWORD, "WHARF_SCAN_DB_UPDATE_INTERVAL": "0"})
    # postgres without a connection string: a configuration problem, nothing created
    p = subprocess.run([wharf_bin, "serve"], env=dict(env, WHARF_DB_DRIVER="postgres"),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "db.driver is postgres" in p.stderr and "db.dsn is not set" in p.stderr, p.stderr
    # a connection string the sqlite driver would ignore
    p = subprocess.run([wharf_bin, "config", "check"], env=dict(env, WHARF_DB_DSN=pg),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "db.dsn is set" in p.stderr, p.stderr
    # a server that is not there: the start fails and says where it tried
    bad = "postgresql://postgres@127.0.0.1:1/wharf?connect_timeout=5"
    p = subprocess.run([wharf_bin, "serve"],
                       env=dict(env, WHARF_DB_DRIVER="postgres", WHARF_DB_DSN=bad),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "postgres: connect" in p.stderr and "127.0.0.1" in p.stderr, p.stderr
    # the password of a DSN is never printed by config check
    p = subprocess.run([wharf_bin, "config", "check"],
                       env=dict(env, WHARF_DB_DRIVER="postgres",
                                WHARF_DB_DSN="postgresql://wharf:s3cret-pw@db/wharf"),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "s3cret-pw" not in p.stdout + p.stderr
