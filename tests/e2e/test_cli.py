"""The wharf command line as an operator uses it: help and version that touch
nothing, commands that refuse to invent a registry, usage errors that name the
argument (exit 2), projects, members, users and robots managed on the host and
seen by the running server's REST API, passwords typed without echo, the API's
name rules, the administrator created at the first start whatever ran before,
and `scan`/`vulndb` reading the same configuration as every other command."""

import os
import pty
import re
import select
import sqlite3
import subprocess
import time

import pytest
import requests

from apiclient import Api
from regclient import ADMIN_PASSWORD, Registry, describe

PASSWORD = "Passw0rd-cli"


def clean_env(**extra) -> dict:
    """The caller's environment without WHARF_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update(extra)
    return env


def wharf(binary, *args, env=None, input=None, cwd=None, timeout=60):
    return subprocess.run([binary, *args], env=env or clean_env(), input=input,
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)


def cli(srv, *args, input=None):
    """`wharf ARGS` on the data dir of server `srv`."""
    db = {k: v for k, v in srv.extra_env.items() if k.startswith("WHARF_DB_")}  # PostgreSQL
    return wharf(srv.binary, *args, input=input,
                 env=clean_env(WHARF_DATA_DIR=srv.data_dir, **db))


def ok(p, what=""):
    assert p.returncode == 0, f"{what} exit {p.returncode}: {p.stdout}{p.stderr}"
    return p


def admin_api(srv) -> Api:
    return Api(srv.url, ("admin", ADMIN_PASSWORD))


def logs_in(srv, user, password) -> bool:
    r = requests.get(srv.url + "/v2/", auth=(user, password), timeout=10)
    assert r.status_code in (200, 401), describe(r)
    return r.status_code == 200


# ------------------------------------------------------------ nothing touched


HELP = [["--help"], ["-h"], ["help"], ["help", "user"], ["serve", "--help"],
        ["config", "--help"], ["project", "--help"], ["project", "create", "x", "--help"],
        ["member", "-h"], ["user", "add", "bob", "--help"], ["robot", "--help"],
        ["scan", "--help"], ["vulndb", "status", "--help"], ["version", "--help"],
        ["backup", "--help"], ["restore", "x", "--help"], ["gc", "--help"],
        ["gc", "--dry-run", "-h"]]


@pytest.mark.parametrize("args", HELP, ids=lambda a: " ".join(a))
def test_help_touches_nothing(wharf_bin, tmp_path, args):
    """--help reads no configuration (even a broken one) and creates nothing."""
    env = clean_env(WHARF_CONFIG=str(tmp_path / "missing.yaml"), WHARF_THREADS="0")
    p = ok(wharf(wharf_bin, *args, env=env, cwd=tmp_path), " ".join(args))
    assert p.stdout.startswith("usage: wharf"), p.stdout
    assert os.listdir(tmp_path) == []


def test_version_prints_commit_and_build_flags(wharf_bin, tmp_path):
    outs = [ok(wharf(wharf_bin, a, cwd=tmp_path)).stdout for a in ("version", "-V", "--version")]
    assert outs[0] == outs[1] == outs[2]
    lines = outs[0].splitlines()
    assert re.fullmatch(r"wharf \d+\.\d+\.\d+", lines[0]), outs[0]
    assert re.fullmatch(r"commit: ([0-9a-f]{12}(-dirty)?|unknown)", lines[1]), outs[0]
    assert re.match(r"build: (release|check)", lines[2]) and " -O" in lines[2], outs[0]
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------- no registry invented


NEEDS_REGISTRY = [["project", "list"], ["project", "create", "team"], ["user", "list"],
                  ["user", "add", "alice"], ["member", "list", "library"], ["robot", "list"],
                  ["vulndb", "status"], ["vulndb", "import", "/dev/null"],
                  ["scan", "rootfs:/nonexistent"], ["backup", "bk"], ["gc"]]


@pytest.mark.parametrize("args", NEEDS_REGISTRY, ids=lambda a: " ".join(a))
def test_no_data_directory_is_said_not_made(wharf_bin, tmp_path, args):
    p = wharf(wharf_bin, *args, input=PASSWORD + "\n", cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "there is no data directory ./data" in p.stderr, p.stderr
    assert "wharf serve" in p.stderr
    assert os.listdir(tmp_path) == []


def test_empty_data_directory_is_no_registry(wharf_bin, tmp_path):
    (tmp_path / "data").mkdir()
    for args in (["project", "list"], ["user", "add", "alice"]):
        p = wharf(wharf_bin, *args, input=PASSWORD + "\n", cwd=tmp_path)
        assert p.returncode == 1 and "holds no registry (no wharf.db)" in p.stderr, p.stderr
    assert os.listdir(tmp_path / "data") == []


# ------------------------------------------------------------ usage errors


USAGE = [
    (["vulndb", "status", "--bogus"], "--bogus"),
    (["vulndb", "status", "extra"], "'extra'"),
    (["vulndb", "frob"], "'frob'"),
    (["vulndb", "import"], "at least one"),
    (["vulndb", "status", "--feed", "http://x"], "--feed"),
    (["version", "extra"], "'extra'"),
    (["gc", "--workers", "0"], "--workers"),
    (["gc", "extra"], "'extra'"),
    (["gc", "--frob"], "--frob"),
    (["--config"], "--config needs a value"),
    (["frob"], "'frob'"),
    (["help", "frob"], "'frob'"),
    (["project"], "missing subcommand"),
    (["project", "frob"], "'frob'"),
    (["project", "create"], "missing NAME"),
    (["project", "create", "a", "b"], "'b'"),
    (["project", "create", "Team"], "Team"),
    (["project", "create", "x", "--public=yes"], "--public"),
    (["project", "list", "--config"], "--config"),
    (["user", "add", "bob", "--bogus"], "--bogus"),
    (["user", "add", "bob", "--email"], "--email"),
    (["user", "add", "bob", "--email", "bob"], "email format"),
    (["user", "add", "robot$ci"], "robot$"),
    (["user", "add", "a b"], "illegal characters"),
    (["member", "add", "library", "bob", "superuser"], "'superuser'"),
    (["member", "remove", "library"], "missing USER"),
    (["robot", "create", "ci", "--project", "p", "--permission", "pull,frob"], "'frob'"),
    (["robot", "create", "ci", "--project", "p", "--permission", "bogus:pull"], "'bogus'"),
    (["robot", "create", "ci", "--permission", "pull"], "--project"),
    (["robot", "create", "ci", "--project", "p"], "--permission"),
    (["robot", "create", "robot$ci", "--system", "--permission", "*=pull"], "robot$"),
    (["robot", "create", "ci", "--system", "--permission", "pull"], "NS=ACCESS"),
    (["robot", "create", "ci", "--project", "p", "--permission", "q=pull"], "not in q"),
    (["robot", "create", "ci", "--project", "p", "--permission", "pull", "--duration", "0"],
     "--duration"),
    (["robot", "create", "ci", "--project", "p", "--permission", "pull", "--duration", "x"],
     "--duration: 'x' is not a number of days from 1 to 36500, or never"),
    (["robot", "create", "ci", "--project", "p", "--permission", "pull", "--duration", "-2"],
     "--duration: '-2' is not a number of days from 1 to 36500, or never"),
    (["scan"], "missing TARGET"),
    (["scan", "--exit-code", "abc", "oci:x"], "--exit-code: 'abc'"),
    (["scan", "--exit-code", "256", "oci:x"], "--exit-code: '256'"),
    (["scan", "--max-file", "lots", "oci:x"], "--max-file: 'lots'"),
    (["scan", "--max-total", "0", "oci:x"], "--max-total: '0'"),
    (["scan", "--threads", "9", "oci:x"], "--threads: '9'"),
    (["scan", "--severity", "SEVERE", "oci:x"], "SEVERE"),
    (["scan", "--format", "xml", "oci:x"], "xml"),
    (["scan", "--platform", "linux", "oci:x"], "--platform: 'linux'"),
    (["scan", "--platform", "linux/amd64", "rootfs:/"], "--platform applies to images"),
    (["scan", "oci:a", "oci:b"], "'oci:b'"),
    (["serve", "--bogus"], "--bogus"),
    (["serve", "extra"], "'extra'"),
    (["serve", "--listen", "localhost:5601"], "localhost:5601"),
    (["config"], "missing subcommand"),
    (["config", "check", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize("args,named", USAGE, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_usage_error_names_the_argument(wharf_bin, tmp_path, args, named):
    p = wharf(wharf_bin, *args, cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert named in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------- users


def test_user_names_follow_the_api(servers):
    """The names `wharf user add` accepts are those POST /users accepts."""
    srv = servers.new()
    api = admin_api(srv)
    names = {"Dave": True, "dave@corp": True, "ok.name_-1": True, "Ünïcode": True,
             "x" * 254: True, "x" * 255: False, "a b": False, "robot$x": False, "x,y": False,
             "a:b": False, "a/b": False, "til~de": False, "per%cent": False, "tab\tname": False}
    for name, accepted in names.items():
        c = cli(srv, "user", "add", "c" + name, input=PASSWORD + "\n")
        a = api.post("/users", {"username": "a" + name, "password": PASSWORD})
        assert (c.returncode == 0) == accepted, (name, c.stdout, c.stderr)
        assert (a.status_code == 201) == accepted, (name, describe(a))
        if not accepted:
            assert c.returncode == 2 and a.status_code == 400, (name, c.stderr, describe(a))
    assert logs_in(srv, "cDave", PASSWORD) and logs_in(srv, "cdave@corp", PASSWORD)


def test_user_commands(servers):
    srv = servers.new()
    api = admin_api(srv)
    ok(cli(srv, "user", "add", "alice", "--email", "alice@example.com", "--realname", "Alice A",
           input=PASSWORD + "\n"))
    users = {u["username"]: u for u in api.ok(api.get("/users")).json()}
    assert users["alice"]["email"] == "alice@example.com"
    assert users["alice"]["realname"] == "Alice A" and not users["alice"]["sysadmin_flag"]
    assert logs_in(srv, "alice", PASSWORD)

    p = cli(srv, "user", "add", "alice", input=PASSWORD + "\n")
    assert p.returncode == 1 and "username alice already exists" in p.stderr
    p = cli(srv, "user", "add", "weak", input="password\n")
    assert p.returncode == 1 and "The password must be at least 8 characters" in p.stderr
    p = cli(srv, "user", "add", "nopw", input="")
    assert p.returncode == 1 and "no password" in p.stderr
    p = cli(srv, "user", "add", "longpw", input="Aa1" + "x" * 3000 + "\n")
    assert p.returncode == 1 and "longer than" in p.stderr, p.stderr
    names = {u["username"] for u in api.ok(api.get("/users")).json()}
    assert not names & {"weak", "nopw", "longpw"}

    ok(cli(srv, "user", "passwd", "alice", input="New-Passw0rd\n"))
    assert logs_in(srv, "alice", "New-Passw0rd") and not logs_in(srv, "alice", PASSWORD)

    ok(cli(srv, "user", "set-admin", "alice"))
    uid = users["alice"]["user_id"]
    assert api.ok(api.get(f"/users/{uid}")).json()["sysadmin_flag"] is True
    assert "alice" in ok(cli(srv, "user", "list")).stdout
    # --data-dir (here before the command) names the registry as well as WHARF_DATA_DIR
    assert "alice" in ok(wharf(srv.binary, "--data-dir", srv.data_dir, "user", "list")).stdout
    def roles():  # `user list`: name, e-mail and role (docs/cli.md), a role on every row
        rows = [l.split() for l in ok(cli(srv, "user", "list")).stdout.splitlines()[1:]]
        assert all(len(r) == 3 for r in rows), rows
        return {r[0]: r[2] for r in rows}
    assert roles()["alice"] == "admin"
    ok(cli(srv, "user", "unset-admin", "alice"))
    assert api.ok(api.get(f"/users/{uid}")).json()["sysadmin_flag"] is False
    assert roles()["alice"] == "user"

    # the last administrator stays
    for args in (["user", "unset-admin", "admin"], ["user", "delete", "admin"]):
        p = cli(srv, *args)
        assert p.returncode == 1 and "last system administrator" in p.stderr, p.stderr
    assert logs_in(srv, "admin", ADMIN_PASSWORD)

    ok(cli(srv, "user", "delete", "alice"))
    assert api.get(f"/users/{uid}").status_code == 404
    p = cli(srv, "user", "delete", "alice")
    assert p.returncode == 1 and "user alice not found" in p.stderr

    # every change is in the audit log, by the command line
    entries = api.ok(api.get("/audit-logs", params={"page_size": 100})).json()
    mine = {(e["resource"], e["operation"]) for e in entries if e["username"].startswith("cli:")}
    assert {("alice", "create"), ("alice", "update"), ("alice", "delete")} <= mine, entries


def read_until(fd, text: str, timeout: float = 20) -> str:
    """Reads the pty `fd` until `text` appears (or the deadline passes: fail)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {text!r}, got {buf!r}"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            assert chunk, f"the terminal closed before {text!r}: {buf!r}"
            buf += chunk
    return buf.decode(errors="replace")


def rest_of(fd) -> str:
    buf = b""
    while True:
        r, _, _ = select.select([fd], [], [], 5)
        if not r:
            return buf.decode(errors="replace")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return buf.decode(errors="replace")
        if not chunk:
            return buf.decode(errors="replace")
        buf += chunk


def on_terminal(srv, args, answers):
    """Runs `wharf ARGS` with a terminal for stdin/stdout/stderr, typing each answer after
    its prompt; returns (exit status, everything the terminal showed)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([srv.binary, *args], stdin=slave, stdout=slave, stderr=slave,
                         env=clean_env(WHARF_DATA_DIR=srv.data_dir), start_new_session=True)
    os.close(slave)
    shown = ""
    try:
        for prompt, answer in answers:
            shown += read_until(master, prompt)
            os.write(master, answer.encode() + b"\n")
        rc = p.wait(30)
        shown += rest_of(master)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return rc, shown


def test_password_on_a_terminal_is_not_echoed(servers):
    srv = servers.new()
    rc, shown = on_terminal(srv, ["user", "add", "tty"],
                            [("password for tty: ", PASSWORD), ("password for tty, again: ", PASSWORD)])
    assert rc == 0, shown
    assert PASSWORD not in shown, shown
    assert "user tty created" in shown
    assert logs_in(srv, "tty", PASSWORD)

    rc, shown = on_terminal(srv, ["user", "passwd", "tty"],
                            [("password for tty: ", "New-Passw0rd"),
                             ("password for tty, again: ", "Other-Passw0rd")])
    assert rc == 1 and "the two passwords differ" in shown, shown
    assert "New-Passw0rd" not in shown and "Other-Passw0rd" not in shown
    assert logs_in(srv, "tty", PASSWORD)


# ------------------------------------------------------- projects and members


def test_projects_and_members(servers, unique):
    srv = servers.new()
    api = admin_api(srv)
    for u in ("owner", "dev"):
        ok(cli(srv, "user", "add", u, input=PASSWORD + "\n"))
    p = cli(srv, "project", "create", "ghost", "--owner", "nobody")
    assert p.returncode == 1 and "user nobody not found" in p.stderr
    ok(cli(srv, "project", "create", "team", "--public", "--owner", "owner"))
    proj = api.ok(api.get("/projects/team", headers={"X-Is-Resource-Name": "true"})).json()
    assert proj["owner_name"] == "owner" and proj["metadata"]["public"] == "true"
    assert api.get("/projects/ghost", headers={"X-Is-Resource-Name": "true"}).status_code == 404

    def members():
        r = api.ok(api.get(f"/projects/{proj['project_id']}/members"))
        return {m["entity_name"]: m["role_name"] for m in r.json()}

    assert members() == {"owner": "projectAdmin"}
    ok(cli(srv, "member", "add", "team", "dev", "developer"))
    assert members() == {"owner": "projectAdmin", "dev": "developer"}
    p = cli(srv, "member", "add", "team", "dev", "guest")
    assert p.returncode == 1 and "already a member" in p.stderr
    ok(cli(srv, "member", "role", "team", "dev", "Maintainer"))
    assert members()["dev"] == "maintainer"
    listing = ok(cli(srv, "member", "list", "team")).stdout
    assert re.search(r"^dev\s+maintainer$", listing, re.M), listing
    ok(cli(srv, "member", "remove", "team", "dev"))
    assert members() == {"owner": "projectAdmin"}
    p = cli(srv, "member", "remove", "team", "dev")
    assert p.returncode == 1 and "not a member" in p.stderr

    listing = ok(cli(srv, "project", "list")).stdout
    assert re.search(r"^team\s+public\s+owner\s+0$", listing, re.M), listing

    # a project holding a repository is not deleted; an empty one is
    Registry(srv.url).push_blob(f"team/{unique}", b"kept")
    p = cli(srv, "project", "delete", "team")
    assert p.returncode == 1 and "holds 1 repositories" in p.stderr, p.stderr
    ok(cli(srv, "project", "create", "empty"))
    ok(cli(srv, "project", "delete", "empty"))
    assert api.get("/projects/empty", headers={"X-Is-Resource-Name": "true"}).status_code == 404
    p = cli(srv, "project", "delete", "empty")
    assert p.returncode == 1 and "project empty not found" in p.stderr


# ------------------------------------------------------------------- robots


def created_robot(p):
    ok(p, "robot create")
    fields = dict(line.split(": ", 1) for line in p.stdout.splitlines())
    return fields["name"], fields["secret"], fields["expires"]


def test_robot_commands(servers, unique):
    srv = servers.new()
    ok(cli(srv, "project", "create", "bots"))
    name, secret, expires = created_robot(
        cli(srv, "robot", "create", "ci", "--project", "bots", "--permission", "pull,push",
            "--duration", "7", "--description", "CI pushes"))
    assert name == "robot$bots+ci"
    when = time.mktime(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(when - (time.time() + 7 * 86400)) < 120, expires
    ro, ro_secret, ro_expires = created_robot(
        cli(srv, "robot", "create", "reader", "--project", "bots", "--permission", "bots=pull",
            "--duration", "never"))
    assert ro_expires == "never"

    repo = f"bots/{unique}"
    digest = Registry(srv.url, auth=(name, secret)).push_blob(repo, b"pushed by a robot")
    reader = Registry(srv.url, auth=(ro, ro_secret))
    assert reader.get(f"/v2/{repo}/blobs/{digest}").status_code == 200
    r = reader.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code in (401, 403), describe(r)

    listing = ok(cli(srv, "robot", "list")).stdout
    assert re.search(r"^robot\$bots\+ci\s+project\s+enabled\s+\S+\s+bots=pull,push$", listing,
                     re.M), listing
    ok(cli(srv, "robot", "disable", "bots+ci"))
    assert not logs_in(srv, name, secret)
    assert re.search(r"^robot\$bots\+ci\s+project\s+disabled", ok(cli(srv, "robot", "list",
                     "--project", "bots")).stdout, re.M)
    ok(cli(srv, "robot", "enable", "robot$bots+ci"))
    assert logs_in(srv, name, secret)

    p = cli(srv, "robot", "create", "ci", "--project", "bots", "--permission", "pull")
    assert p.returncode == 1 and "robot$bots+ci already exists" in p.stderr
    p = cli(srv, "robot", "create", "x", "--system", "--permission", "nosuch=pull")
    assert p.returncode == 1 and "project nosuch not found" in p.stderr

    sysname, sys_secret, _ = created_robot(
        cli(srv, "robot", "create", "auditor", "--system", "--permission", "bots=pull",
            "--permission", "*=repository:list,artifact:read"))
    assert sysname == "robot$auditor"
    assert Registry(srv.url, auth=(sysname, sys_secret)).get(
        f"/v2/{repo}/blobs/{digest}").status_code == 200

    ok(cli(srv, "robot", "delete", "bots+ci"))
    assert not logs_in(srv, name, secret)
    p = cli(srv, "robot", "delete", "bots+ci")
    assert p.returncode == 1 and "not found" in p.stderr
    entries = admin_api(srv).ok(admin_api(srv).get("/audit-logs", params={"page_size": 100})).json()
    mine = {(e["resource"], e["operation"]) for e in entries if e["username"].startswith("cli:")}
    assert {(name, "create"), (name, "update"), (name, "delete")} <= mine


# ------------------------------------------------------ the first administrator


def test_admin_created_at_first_start_whatever_ran_before(servers, tmp_path):
    srv = servers.new(start=False)
    # before the first start the registry does not exist, and no command makes it
    p = cli(srv, "user", "add", "early", input=PASSWORD + "\n")
    assert p.returncode == 1 and "wharf serve" in p.stderr
    assert not os.path.exists(os.path.join(srv.data_dir, "wharf.db"))
    srv.start()  # waits for /v2/ to answer admin:ADMIN_PASSWORD
    assert logs_in(srv, "admin", ADMIN_PASSWORD)

    # a registry whose users were all added on the command line before it ever
    # served (what older versions allowed) gets its administrator at the next start
    srv.stop()
    with sqlite3.connect(os.path.join(srv.data_dir, "wharf.db")) as db:
        db.execute("DELETE FROM user")
    ok(cli(srv, "user", "add", "early", input=PASSWORD + "\n"))
    srv.start()
    assert logs_in(srv, "admin", ADMIN_PASSWORD)
    users = {u["username"]: u for u in admin_api(srv).ok(admin_api(srv).get("/users")).json()}
    assert users["admin"]["sysadmin_flag"] and not users["early"]["sysadmin_flag"]


# ------------------------------------------------- scan and vulndb: one configuration


VULNDB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                      "vulndb")


def test_scan_and_vulndb_read_the_configuration(wharf_bin, tmp_path, pinned_bookworm):
    data = tmp_path / "scandata"
    data.mkdir()
    cfg = tmp_path / "wharf.yaml"
    cfg.write_text(f"data_dir: {data}\n")
    ok(wharf(wharf_bin, "vulndb", "--config", str(cfg), "import", os.path.join(VULNDB, "debian"),
             cwd=tmp_path))
    assert (data / "vulndb.sqlite").exists()
    ok(wharf(wharf_bin, "vulndb", "status", env=clean_env(WHARF_CONFIG=str(cfg)), cwd=tmp_path))
    p = wharf(wharf_bin, "scan", "--config", str(cfg), "--format", "json", pinned_bookworm.oci,
              cwd=tmp_path)
    ok(p)
    assert "CVE-2023-45853" in p.stdout
    assert (data / "scan-cache").is_dir()  # the cache is in the configured data dir
    # --data-dir wins over the file; a missing one is said, not made
    p = wharf(wharf_bin, "vulndb", "status", "--config", str(cfg), "--data-dir",
              str(tmp_path / "other"), cwd=tmp_path)
    assert p.returncode == 1 and f"no data directory {tmp_path / 'other'}" in p.stderr
    assert not (tmp_path / "other").exists()
    # a bad configuration stops scan like any command
    bad = tmp_path / "bad.yaml"
    bad.write_text("http:\n  threads: 0\n")
    p = wharf(wharf_bin, "scan", "--config", str(bad), pinned_bookworm.oci, cwd=tmp_path)
    assert p.returncode == 1 and f"{bad}:2: http.threads" in p.stderr


def test_scan_and_vulndb_keep_the_data_directory_private(wharf_bin, tmp_path, pinned_bookworm):
    """What `vulndb import` and `scan` create in the data directory is as private as what
    the server creates there (docs/security.md, "Files on disk"), whatever the umask of
    the operator's shell; a report written elsewhere keeps the shell's umask."""
    data = tmp_path / "privdata"
    data.mkdir(mode=0o700)
    env = clean_env(WHARF_DATA_DIR=str(data))

    def run(*args):
        return subprocess.run(["sh", "-c", 'umask 022; exec "$@"', "sh", wharf_bin, *args],
                              env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)

    ok(run("vulndb", "import", os.path.join(VULNDB, "debian")))
    report = tmp_path / "report.json"
    ok(run("scan", "--format", "json", "--output", str(report), pinned_bookworm.oci))
    made = [data / "vulndb.sqlite"]
    for d, dirs, files in os.walk(data / "scan-cache"):
        made += [os.path.join(d, n) for n in dirs + files]
    assert len(made) > 2, made  # the cache holds the image's layer
    loose = {str(f): oct(os.stat(f).st_mode & 0o777) for f in made
             if os.stat(f).st_mode & 0o077}
    assert not loose, f"readable by others than wharf's user: {loose}"
    assert os.stat(report).st_mode & 0o777 == 0o644  # the operator's file, the shell's umask


def test_scan_option_values(wharf_bin, tmp_path, pinned_bookworm):
    env = clean_env(WHARF_DATA_DIR=str(tmp_path))
    inv = ["scan", "--format", "inventory", "--no-cache"]
    # sizes take K, M, G as documented; 1K is too small for the dpkg database
    ok(wharf(wharf_bin, *inv, "--max-file", "64M", "--max-total", "1G", pinned_bookworm.oci,
             env=env))
    p = wharf(wharf_bin, *inv, "--max-file", "1K", pinned_bookworm.oci, env=env)
    assert p.returncode == 1, p.stderr
    # --platform: the single image is linux/amd64
    ok(wharf(wharf_bin, *inv, "--platform", "linux/amd64", pinned_bookworm.oci, env=env))
    for target in (pinned_bookworm.oci, pinned_bookworm.docker_archive):
        p = wharf(wharf_bin, *inv, "--platform", "linux/arm64", target, env=env)
        assert p.returncode == 1, (target, p.stdout[:200], p.stderr)
        assert "the image is linux/amd64, not linux/arm64" in p.stderr, p.stderr
