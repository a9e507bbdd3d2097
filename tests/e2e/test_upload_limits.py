"""Upload sessions are a shared resource: one user cannot take them all.

Open sessions are capped per user (`limits.max_uploads_per_user`), per
project (`limits.max_uploads_per_project`) and in total (`limits.max_uploads`,
the last resort), and a session nobody writes to is removed after
`uploads.idle_ttl` seconds (`uploads.ttl` bounds a session's whole life).
The caps are counted in the database, so they hold across a restart.
"""

import os
import subprocess

import pytest

from apiclient import Api
from conftest import free_port, polling, wait_until
from ocilayout import sha256_digest
from regclient import ADMIN_PASSWORD, ADMIN_USER, Registry, describe, expect_error

OCTET = "application/octet-stream"
PASSWORD = "Flood-Passw0rd"
DEFAULT_PER_USER = 64  # limits.max_uploads_per_user's default (docs/configuration.md)


def sweep_deadline(ttl: int) -> float:
    """Time for an idle session to expire: the TTL, one sweep interval, and slack."""
    return ttl + min(ttl, 30) + 8


def user_in_project(api: Api, name: str, project: str, role: int = 2) -> Registry:
    """A user who may push to `project` (developer by default); their registry client."""
    api.create_user(name, password=PASSWORD)
    api.add_member(project, name, role)
    return Registry(api.base[: -len("/api/v2.0")], auth=(name, PASSWORD))


def flood(reg: Registry, repo: str, limit: int = 400):
    """Open upload sessions until one is refused; return (the opened
    sessions' URLs, the refusal)."""
    opened = []
    for _ in range(limit):
        r = reg.post(f"/v2/{repo}/blobs/uploads/")
        if r.status_code != 202:
            return opened, r
        opened.append(r.headers["Location"])
    raise AssertionError(f"{limit} upload sessions opened in {repo} and none refused")


def test_one_users_flood_leaves_others_pushing(servers, skopeo, image_layout, tmp_path, unique):
    """The report's scenario: a user opens every session they can in their
    own project. They are stopped at their own cap (429 naming it, with a
    Retry-After), the administrator still pushes an image with skopeo, even
    after a restart, and the flood's sessions expire once idle."""
    idle_ttl = 4
    srv = servers.new(env={"WHARF_UPLOAD_IDLE_TTL": str(idle_ttl)})
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(unique)
    mallory = user_in_project(api, f"{unique}-m", unique)
    repo = f"{unique}/flood"

    def admin_pushes(tag):
        src, img = image_layout
        skopeo.copy(f"oci:{src}:v1", f"docker://{srv.host}/library/{unique}:{tag}")
        r = srv.registry().get_manifest(f"library/{unique}", tag)
        assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == img.manifest_digest, describe(r)

    opened, refused = flood(mallory, repo)
    admin_pushes("v1")
    e = expect_error(refused, 429, "TOO_MANY_REQUESTS")
    assert len(opened) == DEFAULT_PER_USER, f"{len(opened)} sessions before the refusal: " + describe(refused)
    assert e["message"].startswith(
        f"too many open upload sessions for {unique}-m ({DEFAULT_PER_USER} per user)"), e
    # when the first of them expires, unless the user finishes one sooner
    assert 1 <= int(refused.headers["Retry-After"]) <= sweep_deadline(idle_ttl), describe(refused)

    # The sessions are in the database: a restart neither frees nor forgets them.
    srv.restart()
    expect_error(mallory.post(f"/v2/{repo}/blobs/uploads/"), 429, "TOO_MANY_REQUESTS")
    admin_pushes("v2")

    # Nobody writes to them: they expire, and the user may push again.
    wait_until(lambda: all(mallory.get(loc).status_code == 404 for loc in opened[:: DEFAULT_PER_USER // 8]),
               sweep_deadline(idle_ttl), "the flood's idle sessions to expire")
    for loc in opened:
        expect_error(mallory.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    data = os.urandom(1000)
    mallory.push_blob(repo, data)
    assert mallory.head(f"/v2/{repo}/blobs/{sha256_digest(data)}").status_code == 200


def test_caps_per_user_per_project_and_in_total(servers, unique):
    """Each cap refuses the session that would pass it, with a message that
    names it; finishing or cancelling a session gives its place back."""
    srv = servers.new(env={"WHARF_MAX_UPLOADS_PER_USER": "4", "WHARF_MAX_UPLOADS_PER_PROJECT": "6",
                           "WHARF_MAX_UPLOADS": "9"})
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(unique)
    alice = user_in_project(api, f"{unique}-a", unique)
    bob = user_in_project(api, f"{unique}-b", unique)
    admin = srv.registry()

    a_open, r = flood(alice, f"{unique}/a")
    assert len(a_open) == 4
    e = expect_error(r, 429, "TOO_MANY_REQUESTS")
    assert e["message"].startswith(f"too many open upload sessions for {unique}-a (4 per user)"), e
    # another user of the project has a budget of their own, up to the project's
    b_open, r = flood(bob, f"{unique}/b")
    assert len(b_open) == 2
    e = expect_error(r, 429, "TOO_MANY_REQUESTS")
    assert e["message"].startswith(f"too many open upload sessions in project {unique} (6 per project)"), e
    # the administrator, in another project, up to the server's total
    x_open, r = flood(admin, f"library/{unique}")
    assert len(x_open) == 3
    e = expect_error(r, 429, "TOO_MANY_REQUESTS")
    assert e["message"].startswith("too many open upload sessions on this server (9)"), e
    assert 1 <= int(r.headers["Retry-After"]) <= 5, describe(r)

    # a cancelled session frees its place at once; so does a finished one
    assert admin.delete(x_open[0]).status_code == 204
    assert admin.post(f"/v2/library/{unique}/blobs/uploads/").status_code == 202
    expect_error(admin.post(f"/v2/library/{unique}/blobs/uploads/"), 429, "TOO_MANY_REQUESTS")
    data = os.urandom(100)
    r = bob.put(b_open[0], params={"digest": sha256_digest(data)}, data=data,
                headers={"Content-Type": OCTET})
    assert r.status_code == 201, describe(r)
    r = bob.post(f"/v2/{unique}/b/blobs/uploads/")
    assert r.status_code == 202, describe(r)
    expect_error(alice.post(f"/v2/{unique}/a/blobs/uploads/"), 429, "TOO_MANY_REQUESTS")
    # a monolithic push opens no session: the caps do not stop it
    data = os.urandom(100)
    r = alice.post(f"/v2/{unique}/a/blobs/uploads/", params={"digest": sha256_digest(data)},
                   data=data, headers={"Content-Type": OCTET})
    assert r.status_code == 201, describe(r)


def test_busy_session_ends_at_the_hard_maximum(servers, unique):
    """`uploads.ttl` is a session's whole life: a session kept busy with a
    PATCH every half second is removed once it is that old, not before."""
    ttl = 4
    srv = servers.new(env={"WHARF_UPLOAD_TTL": str(ttl), "WHARF_UPLOAD_IDLE_TTL": "600"})
    reg = srv.registry()
    repo = f"library/{unique}"
    loc, sent = reg.start_upload(repo), b""
    ticks = 0
    for _ in polling(lambda: reg.get(loc).status_code == 404, sweep_deadline(ttl),
                     "the busy session to end at uploads.ttl", interval=0.5):
        chunk = os.urandom(100)
        r = reg.patch(loc, data=chunk, headers={
            "Content-Type": OCTET, "Content-Range": f"{len(sent)}-{len(sent) + len(chunk) - 1}"})
        if r.status_code == 404:
            break
        assert r.status_code == 202, describe(r)
        loc, sent = r.headers["Location"], sent + chunk
        ticks += 1
    assert ticks >= 2 * ttl - 1, f"the session ended after {ticks / 2:.1f} s, before uploads.ttl"
    expect_error(reg.put(loc, params={"digest": sha256_digest(sent)}), 404, "BLOB_UPLOAD_UNKNOWN")
    # new sessions are not affected
    reg.push_blob(repo, sent)


@pytest.mark.parametrize("var", ["WHARF_UPLOAD_IDLE_TTL", "WHARF_MAX_UPLOADS_PER_USER",
                                 "WHARF_MAX_UPLOADS_PER_PROJECT"])
def test_bad_values_stop_the_server(wharf_bin, tmp_path, var):
    env = dict(os.environ)
    env.update({"WHARF_DATA_DIR": str(tmp_path / "data"),
                "WHARF_LISTEN": f"127.0.0.1:{free_port()}", var: "soon"})
    try:
        p = subprocess.run([wharf_bin, "serve"], env=env, capture_output=True, text=True,
                           timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wharf serve kept running with {var}=soon")
    assert p.returncode != 0 and var in p.stderr, p.stderr
