"""Sign-in state shared by two nodes (docs/security.md): portal sessions and
the failed-login throttle live in the database, so a session made on one node
works on the other (with its CSRF token), a sign-out or a password change on
one ends it on both, a restart ends none, and failed logins spread over two
nodes are throttled at the same count as on one.

The second node shares the first one's database, blobs, staging area and
token key through symbolic links, as in test_two_nodes.py.
"""
import os
import re
import subprocess

import pytest
import requests

from apiclient import Api, describe
from regclient import ADMIN_PASSWORD, ADMIN_USER

SHARED = ("wharf.db", "blobs", "uploads", "token.key")
PASSWORD = "Nodes-Passw0rd"


@pytest.fixture
def nodes(servers, tmp_path):
    a = servers.new(name="node-a")
    b_dir = tmp_path / "node-b" / "data"
    b_dir.mkdir(parents=True, mode=0o700)
    for name in SHARED:
        os.symlink(os.path.join(a.data_dir, name), b_dir / name)
    b = servers.new(data_dir=str(b_dir), name="node-b")
    return a, b


def login(srv, user=ADMIN_USER, password=ADMIN_PASSWORD):
    s = requests.Session()
    r = s.post(srv.url + "/c/login", data={"principal": user, "password": password}, timeout=60)
    return s, r


def sid_of(r):
    return re.match(r"sid=([0-9a-f]{64});", r.headers["Set-Cookie"]).group(1)


def current(srv, sid):
    return requests.get(srv.url + "/api/v2.0/users/current", cookies={"sid": sid}, timeout=30)


def test_session_made_on_one_node_works_on_the_other(nodes, unique):
    a, b = nodes
    s, r = login(a)
    assert r.status_code == 200, describe(r)
    sid, csrf = sid_of(r), r.headers["X-Harbor-CSRF-Token"]
    me = current(b, sid)
    assert me.status_code == 200 and me.json()["username"] == ADMIN_USER, describe(me)
    assert me.headers["X-Harbor-CSRF-Token"] == csrf
    # a state-changing call on B with the token A handed out
    url = b.url + "/api/v2.0/projects"
    r = requests.post(url, json={"project_name": unique}, cookies={"sid": sid}, timeout=30)
    assert r.status_code == 403, describe(r)
    r = requests.post(url, json={"project_name": unique}, cookies={"sid": sid}, timeout=30,
                      headers={"X-Harbor-CSRF-Token": csrf})
    assert r.status_code == 201, describe(r)
    assert current(a, sid).status_code == 200
    # the database (and its log) holds a hash of the id, never the id
    for name in ("wharf.db", "wharf.db-wal"):
        path = os.path.join(a.data_dir, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                assert sid.encode() not in f.read(), name
    # sign-out on B ends it on A
    r = requests.get(b.url + "/c/log_out", cookies={"sid": sid}, timeout=30)
    assert r.status_code == 200, describe(r)
    r = current(a, sid)
    assert r.status_code == 401 and "X-Harbor-CSRF-Token" not in r.headers, describe(r)


def test_session_survives_a_restart(servers):
    a = servers.new()
    s, r = login(a)
    assert r.status_code == 200, describe(r)
    sid, csrf = sid_of(r), r.headers["X-Harbor-CSRF-Token"]
    a.restart()
    me = current(a, sid)
    assert me.status_code == 200 and me.json()["username"] == ADMIN_USER, describe(me)
    assert me.headers["X-Harbor-CSRF-Token"] == csrf


def test_password_change_on_one_node_ends_the_session_on_the_other(nodes, unique):
    a, b = nodes
    admin = Api(a.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    r = admin.post("/users", {"username": unique, "email": f"{unique}@example.com",
                              "realname": "x", "password": PASSWORD})
    assert r.status_code == 201, describe(r)
    uid = int(r.headers["Location"].rsplit("/", 1)[1])
    s, r = login(b, unique, PASSWORD)
    assert r.status_code == 200, describe(r)
    sid = sid_of(r)
    assert current(a, sid).status_code == 200
    r = admin.put(f"/users/{uid}/password", {"new_password": "Other-" + PASSWORD})
    assert r.status_code == 200, describe(r)
    assert current(b, sid).status_code == 401
    assert current(a, sid).status_code == 401
    # a deleted user's sessions end on every node too
    s, r = login(a, unique, "Other-" + PASSWORD)
    sid = sid_of(r)
    assert current(b, sid).status_code == 200
    assert Api(b.url, auth=(ADMIN_USER, ADMIN_PASSWORD)).delete(f"/users/{uid}").status_code == 200
    assert current(a, sid).status_code == 401


def test_failed_logins_split_across_nodes_are_throttled_as_on_one(nodes):
    """The numbers of test_auth.py's test_failed_logins_are_throttled (five
    free failures, then 429), with the attempts alternating between nodes."""
    a, b = nodes
    statuses = []
    for i in range(8):
        srv = (a, b)[i % 2]
        statuses.append(requests.get(srv.url + "/v2/", auth=(ADMIN_USER, "Not-The-Passw0rd"),
                                     timeout=60).status_code)
    assert statuses[:6] == [401] * 6 and statuses[6:] == [429, 429], statuses
    # the right password waits too, on either node; the portal's sign-in as well
    for srv in (a, b):
        r = requests.get(srv.url + "/v2/", auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=60)
        assert r.status_code == 429 and r.headers.get("Retry-After"), describe(r)
    s, r = login(b)
    assert r.status_code == 429 and "Set-Cookie" not in r.headers, describe(r)


def curl_from(addr, url, user, password):
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", addr,
                        "-u", f"{user}:{password}", url], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return int(p.stdout)


def test_one_address_rotating_names_across_nodes(nodes):
    """test_auth.py's address budget (20 free failures whatever the names),
    the attempts alternating between nodes; other addresses unaffected."""
    a, b = nodes
    statuses = [curl_from("127.0.0.3", f"{(a, b)[i % 2].url}/v2/", f"guess{i}", "Wrong-Passw0rd")
                for i in range(24)]
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429, statuses
    for srv in (a, b):
        assert curl_from("127.0.0.3", f"{srv.url}/v2/", "someone-new", "Wrong-Passw0rd") == 429
        assert curl_from("127.0.0.1", f"{srv.url}/v2/", ADMIN_USER, ADMIN_PASSWORD) == 200
