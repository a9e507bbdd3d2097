"""Access control on /v2/ (the user's story in the README): pushing needs
credentials, pulling a public project's image does not; the token service
(distribution's token protocol) grants what is asked and allowed; Basic
callers without the right get 403 DENIED."""

import base64
import json
import re
import subprocess
import time

import pytest
import requests

from apiclient import Api
from apiclient import describe as api_describe
from apiclient import expect_error as api_expect_error
from ocilayout import make_image
from regclient import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    Registry,
    check_api_version,
    describe,
    expect_error,
)

USER = "bob"
USER_PASSWORD = "Bob-e2e-Passw0rd"


def small_image():
    return make_image(layers=1, files_per_layer=1, file_size=1024)


def challenge_params(r) -> dict:
    h = r.headers.get("WWW-Authenticate", "")
    assert h.startswith("Bearer "), "401 without a Bearer challenge: " + describe(r)
    return dict(re.findall(r'(\w+)="([^"]*)"', h))


def token(server, scope, user=ADMIN_USER, password=ADMIN_PASSWORD, service="wharf"):
    r = requests.get(f"{server.url}/service/token",
                     params={"service": service, "scope": scope},
                     auth=(user, password) if user else None, timeout=30)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    tok = doc.get("token") or doc.get("access_token")
    assert tok, describe(r)
    return tok


def token_claims(tok: str) -> dict:
    part = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def bearer(server, tok) -> Registry:
    reg = Registry(server.url, auth=None)
    reg.session.headers["Authorization"] = f"Bearer {tok}"
    return reg


@pytest.fixture
def bob(servers):
    """A server with a second, non-administrator user."""
    srv = servers.new()
    p = subprocess.run([srv.binary, "user", "add", USER], input=USER_PASSWORD + "\n",
                       env=srv.env(), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"wharf user add failed: {p.stdout}{p.stderr}"
    return srv


def test_anonymous_gets_a_challenge(server):
    anon = server.registry(anonymous=True)
    r = anon.get("/v2/")
    expect_error(r, 401, "UNAUTHORIZED")
    params = challenge_params(r)
    assert params.get("realm", "").endswith("/service/token"), params
    assert params.get("service"), params


def test_public_pull_needs_no_credentials(server, registry, unique):
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "v1")
    anon = server.registry(anonymous=True)
    r = anon.get_manifest(repo, "v1")
    assert r.status_code == 200 and r.content == img.manifest, describe(r)
    b = anon.get(f"/v2/{repo}/blobs/{img.layers[0]}")
    assert b.status_code == 200 and b.content == img.blobs[img.layers[0]], describe(b)

    # Pushing does.
    r = anon.post(f"/v2/{repo}/blobs/uploads/")
    expect_error(r, 401, "UNAUTHORIZED")
    assert "push" in challenge_params(r).get("scope", ""), describe(r)
    r = anon.push_manifest(repo, "v2", img.manifest)
    expect_error(r, 401, "UNAUTHORIZED")
    r = anon.delete(f"/v2/{repo}/manifests/{img.manifest_digest}")
    expect_error(r, 401, "UNAUTHORIZED")
    assert registry.get_manifest(repo, "v1").status_code == 200


def test_wrong_password(servers):
    # A server of its own: failed logins from 127.0.0.1 are throttled, and
    # every test talks from that address.
    server = servers.new()
    r = Registry(server.url, auth=(ADMIN_USER, "Not-The-Passw0rd")).get("/v2/")
    assert r.status_code == 401, describe(r)
    check_api_version(r)
    r = requests.get(f"{server.url}/service/token",
                     params={"service": "wharf", "scope": "repository:library/x:pull"},
                     auth=(ADMIN_USER, "Not-The-Passw0rd"), timeout=30)
    assert r.status_code == 401, describe(r)


def test_token_flow(server, unique):
    repo = f"library/{unique}"
    tok = token(server, f"repository:{repo}:pull,push")
    claims = token_claims(tok)
    access = [a for a in claims.get("access", []) if a.get("name") == repo]
    assert access and set(access[0]["actions"]) == {"pull", "push"}, claims
    reg = bearer(server, tok)
    img = small_image()
    reg.push_image(repo, img, "v1")
    assert reg.get_manifest(repo, "v1").content == img.manifest

    # A pull-only token pulls but cannot push: 401 with the scope to ask for.
    ro = bearer(server, token(server, f"repository:{repo}:pull"))
    assert ro.get_manifest(repo, "v1").status_code == 200
    r = ro.post(f"/v2/{repo}/blobs/uploads/")
    expect_error(r, 401, "UNAUTHORIZED")
    assert challenge_params(r).get("scope") == f"repository:{repo}:pull,push", describe(r)

    # A token for one repository is no key to another.
    other = bearer(server, token(server, f"repository:library/{unique}-x:pull,push"))
    r = other.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 401, describe(r)


def test_token_scope_wildcard(server, unique):
    """`*` asks for every action (containers/image asks for it to delete)."""
    repo = f"library/{unique}"
    claims = token_claims(token(server, f"repository:{repo}:*"))
    access = [a for a in claims.get("access", []) if a.get("name") == repo]
    assert access, claims
    assert {"pull", "push", "delete"} <= set(access[0]["actions"]) or "*" in access[0]["actions"], (
        f"an administrator asking for {repo}:* got {access[0]['actions']}")


def test_forged_token_refused(server, unique):
    repo = f"library/{unique}"
    tok = token(server, f"repository:{repo}:pull")
    head, payload, sig = tok.split(".")
    claims = token_claims(tok)
    claims["access"] = [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for forged in (f"{head}.{forged_payload}.{sig}", f"{head}.{forged_payload}.",
                   "eyJhbGciOiJub25lIn0." + forged_payload + "."):
        r = bearer(server, forged).post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 401, describe(r)


def test_private_project(server, registry, unique):
    name = "priv" + unique.replace("-", "")[-6:]
    p = server.cli("project", "create", name)
    assert p.returncode == 0, p.stderr
    repo = f"{name}/app"
    img = small_image()
    registry.push_image(repo, img, "v1")
    anon = server.registry(anonymous=True)
    expect_error(anon.get_manifest(repo, "v1"), 401, "UNAUTHORIZED")
    expect_error(anon.get(f"/v2/{repo}/blobs/{img.layers[0]}"), 401, "UNAUTHORIZED")
    assert registry.get_manifest(repo, "v1").status_code == 200
    # Nor can an anonymous caller mount from it into a public project.
    r = anon.post(f"/v2/library/{unique}/blobs/uploads/",
                  params={"mount": img.layers[0], "from": repo})
    assert r.status_code == 401, describe(r)


def test_user_without_role(bob, unique):
    """Logged in with Basic but not a member: public pulls work, pushes are
    403 DENIED; a private project stays closed."""
    admin = bob.registry()
    user = Registry(bob.url, auth=(USER, USER_PASSWORD))
    assert user.get("/v2/").status_code == 200

    repo = f"library/{unique}"
    img = small_image()
    admin.push_image(repo, img, "v1")
    assert user.get_manifest(repo, "v1").status_code == 200
    expect_error(user.post(f"/v2/{repo}/blobs/uploads/"), 403, "DENIED")
    expect_error(user.push_manifest(repo, "v2", img.manifest), 403, "DENIED")
    expect_error(user.delete(f"/v2/{repo}/manifests/{img.manifest_digest}"), 403, "DENIED")

    p = bob.cli("project", "create", "closed")
    assert p.returncode == 0, p.stderr
    admin.push_image("closed/app", img, "v1")
    r = user.get_manifest("closed/app", "v1")
    assert r.status_code in (403, 404), describe(r)
    assert r.status_code != 200

    # Through the token service the same rules hold.
    tok = token(bob, f"repository:{repo}:pull,push", user=USER, password=USER_PASSWORD)
    access = [a for a in token_claims(tok).get("access", []) if a.get("name") == repo]
    assert access and set(access[0]["actions"]) == {"pull"}, access


def test_failed_logins_are_throttled(servers):
    """After repeated failures even the right password waits a little
    (429 with Retry-After); then it works again."""
    srv = servers.new()
    bad = Registry(srv.url, auth=(ADMIN_USER, "Not-The-Passw0rd"))
    statuses = [bad.get("/v2/").status_code for _ in range(8)]
    # five free failures, then 429s (each held back for half the remaining delay)
    assert statuses[:6] == [401] * 6 and statuses[6:] == [429, 429], statuses
    r = srv.registry().get("/v2/")
    expect_error(r, 429, "TOO_MANY_REQUESTS")
    assert r.headers.get("Retry-After"), describe(r)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        time.sleep(1)
        r = srv.registry().get("/v2/")
        if r.status_code == 200:
            break
    assert r.status_code == 200, "the right password stayed refused: " + describe(r)


def curl_from(addr, url, user, password):
    """Status and headers of GET `url` sent from the local address `addr`."""
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-D", "-", "--interface", addr,
                        "-u", f"{user}:{password}", url], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return status, headers


def test_throttle_spares_the_user_elsewhere(servers):
    """Failures for carol from 127.0.0.1 slow carol down there, but carol
    logs in from 127.0.0.2 (nobody can keep an account locked), and another
    user at either address is not slowed."""
    srv = servers.new()
    admin = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    admin.create_user("carol", USER_PASSWORD)
    admin.create_user("dave", USER_PASSWORD)
    tok_url = f"{srv.url}/service/token?service=wharf&scope=repository:library/x:pull"
    statuses = [curl_from("127.0.0.1", tok_url, "carol", "Wrong-Passw0rd")[0] for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
    status, headers = curl_from("127.0.0.1", tok_url, "carol", USER_PASSWORD)
    assert status == 429 and 1 <= int(headers.get("retry-after", "0")) <= 30, (status, headers)
    # The REST API slows her down there as well.
    r = Api(srv.url, ("carol", USER_PASSWORD)).get("/users/current")
    assert r.status_code == 429, api_describe(r)
    api_expect_error(r, 429, "TOO_MANY_REQUEST")
    # From her own address she logs in at once.
    assert curl_from("127.0.0.2", tok_url, "carol", USER_PASSWORD)[0] == 200
    assert curl_from("127.0.0.2", f"{srv.url}/v2/", "carol", USER_PASSWORD)[0] == 200
    for addr in ("127.0.0.1", "127.0.0.2"):
        assert curl_from(addr, tok_url, "dave", USER_PASSWORD)[0] == 200, addr
        assert curl_from(addr, f"{srv.url}/v2/", "dave", USER_PASSWORD)[0] == 200, addr


def test_throttle_stops_one_address_rotating_names(servers):
    """A new name per attempt does not escape the throttle: the address has a
    budget of its own, and other addresses are unaffected."""
    srv = servers.new()
    statuses = [curl_from("127.0.0.3", f"{srv.url}/v2/", f"guess{i}", "Wrong-Passw0rd")[0]
                for i in range(24)]
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429, statuses
    status, headers = curl_from("127.0.0.3", f"{srv.url}/v2/", "someone-new", "Wrong-Passw0rd")
    assert status == 429 and headers.get("retry-after"), (status, headers)
    assert curl_from("127.0.0.1", f"{srv.url}/v2/", ADMIN_USER, ADMIN_PASSWORD)[0] == 200


def test_anonymous_token_pulls_public(server, registry, skopeo, tmp_path, unique):
    """What `docker pull` does without login: an anonymous token for a public
    repository carries pull, and nothing more."""
    repo = f"library/{unique}"
    img = small_image()
    registry.push_image(repo, img, "v1")
    tok = token(server, f"repository:{repo}:pull,push", user=None)
    access = [a for a in token_claims(tok).get("access", []) if a.get("name") == repo]
    assert access and set(access[0]["actions"]) == {"pull"}, access
    reg = bearer(server, tok)
    assert reg.get_manifest(repo, "v1").content == img.manifest
    expect_error(reg.post(f"/v2/{repo}/blobs/uploads/"), 401, "UNAUTHORIZED")

    # A real client, without credentials.
    out = tmp_path / "anon"
    skopeo.run(["skopeo", "copy", "--src-tls-verify=false", "--src-no-creds",
                f"docker://{server.host}/{repo}:v1", f"oci:{out}:v1"])
    assert (out / "blobs" / "sha256" / img.manifest_digest.split(":")[1]).read_bytes() == img.manifest


def test_token_lifetime_follows_setting(servers, unique):
    """WHARF_TOKEN_TTL sets how long a token lives (expiry itself is checked
    with a clock-skew leeway too long to wait for here)."""
    srv = servers.new(env={"WHARF_TOKEN_TTL": "90"})
    repo = f"library/{unique}"
    r = requests.get(f"{srv.url}/service/token",
                     params={"service": "wharf", "scope": f"repository:{repo}:pull"},
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc.get("expires_in") == 90, doc
    claims = token_claims(doc["token"])
    assert claims["exp"] - claims["iat"] == 90, claims


def test_private_listings_stay_private(bob, unique):
    """Tags, referrers and the catalog of a private project are closed to
    anonymous callers and to users without a role."""
    admin = bob.registry()
    p = bob.cli("project", "create", "hidden")
    assert p.returncode == 0, p.stderr
    img = small_image()
    admin.push_image("hidden/app", img, "v1")
    callers = {"anonymous": bob.registry(anonymous=True),
               "user": Registry(bob.url, auth=(USER, USER_PASSWORD))}
    for who, reg in callers.items():
        for path in ("/v2/hidden/app/tags/list", f"/v2/hidden/app/referrers/{img.manifest_digest}",
                     f"/v2/hidden/app/manifests/{img.manifest_digest}", "/v2/_catalog"):
            r = reg.get(path)
            assert r.status_code in (401, 403), f"{who}: " + describe(r)
            assert b"hidden/app" not in r.content or b"errors" in r.content, f"{who}: " + describe(r)
            assert b'"v1"' not in r.content, f"{who}: " + describe(r)
    assert "hidden/app" in admin.get("/v2/_catalog").json()["repositories"]


@pytest.mark.parametrize("authorization", [
    "Basic",
    "Basic ",
    "Basic !!!notbase64!!!",
    "Basic " + base64.b64encode(b"nocolon").decode(),
    "Basic " + base64.b64encode(b":").decode(),
    "Basic " + base64.b64encode(b"admin:" + b"x" * 5000).decode(),
    "Basic " + base64.b64encode(b"\x00admin:\x00").decode(),
    "Bearer",
    "Bearer a.b.c",
    "Bearer " + "A" * 20000,
    "Bearer ....",
    "Negotiate abc",
])
def test_malformed_authorization(servers, authorization):
    srv = servers.new()
    reg = srv.registry(anonymous=True)
    r = reg.get("/v2/", headers={"Authorization": authorization})
    assert r.status_code in (400, 401, 431), describe(r)
    r = reg.post("/v2/library/app/blobs/uploads/", headers={"Authorization": authorization})
    assert r.status_code in (400, 401, 431), describe(r)
    assert srv.running()
    assert srv.registry().get("/v2/").status_code == 200


@pytest.mark.parametrize("params", [
    {"service": "wharf", "scope": "repository:library/app:pull:extra"},
    {"service": "wharf", "scope": "repository::pull"},
    {"service": "wharf", "scope": "repository:UPPER/app:pull"},
    {"service": "wharf", "scope": "repository:library/../x:pull"},
    {"service": "wharf", "scope": ":::"},
    {"service": "wharf", "scope": ["repository:library/a%d:pull" % i for i in range(300)]},
    {"service": "wharf"},
    {},
])
def test_odd_token_requests(server, params):
    r = requests.get(f"{server.url}/service/token", params=params,
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30)
    assert r.status_code in (200, 400), describe(r)
    if r.status_code == 200:
        claims = token_claims(r.json()["token"])
        for a in claims.get("access", []):
            assert not a["actions"] or a["name"].startswith("library/a"), claims
    assert server.running()


# ---------------------------------------------------------------- token service: Harbor's
# service name, OAuth2 scope lists, POST with the password and refresh_token grants

def post_token(srv, **form):
    return requests.post(f"{srv.url}/service/token", data=form, timeout=30)


def granted(tok: str) -> dict:
    return {a["name"]: sorted(a["actions"]) for a in token_claims(tok).get("access", [])}


def expect_oauth_error(r, status, error):
    assert r.status_code == status, describe(r)
    doc = r.json()
    assert doc.get("error") == error, describe(r)
    assert isinstance(doc.get("error_description"), str) and doc["error_description"], describe(r)
    assert doc["errors"][0]["code"] in ("UNAUTHORIZED", "BAD_REQUEST", "TOO_MANY_REQUEST"), describe(r)


@pytest.fixture
def tokensrv(servers):
    """A server with a project, an image in it and a non-administrator member."""
    srv = servers.new()
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    api.create_project("team")
    api.create_user(USER, USER_PASSWORD)
    api.add_member("team", USER, 2)
    reg = srv.registry()
    img = small_image()
    reg.push_image("team/app", img, "v1")
    srv.img = img
    return srv


def test_token_service_takes_harbor_service_name(tokensrv):
    tok = token(tokensrv, "repository:team/app:pull", service="harbor-registry")
    assert granted(tok) == {"team/app": ["pull"]}
    r = bearer(tokensrv, tok).get_manifest("team/app", "v1")
    assert r.status_code == 200 and r.content == tokensrv.img.manifest, describe(r)
    r = requests.get(f"{tokensrv.url}/service/token", params={"service": "registry.docker.io"},
                     auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30)
    api_expect_error(r, 400, "BAD_REQUEST", "Unable to handle service: registry.docker.io")


def test_token_scope_list_in_one_parameter(tokensrv):
    """OAuth2 sends several scopes space-separated in one `scope`."""
    scope = "repository:team/app:pull,push repository:team/other:pull  repository:library/x:pull"
    tok = token(tokensrv, scope, user=USER, password=USER_PASSWORD)
    assert granted(tok) == {"team/app": ["pull", "push"], "team/other": ["pull"], "library/x": ["pull"]}
    # the '+' of form encoding is a space too
    r = requests.get(f"{tokensrv.url}/service/token?service=wharf&scope=repository:team/app:pull+"
                     "repository:team/b:pull", auth=(USER, USER_PASSWORD), timeout=30)
    assert r.status_code == 200, describe(r)
    assert granted(r.json()["token"]) == {"team/app": ["pull"], "team/b": ["pull"]}
    # repeated and listed scopes together; beyond the cap the rest is ignored
    many = " ".join(f"repository:team/a{i}:pull" for i in range(40))
    r = requests.get(f"{tokensrv.url}/service/token", params={"service": "wharf", "scope": [many, many]},
                     auth=(USER, USER_PASSWORD), timeout=30)
    assert r.status_code == 200 and len(token_claims(r.json()["token"])["access"]) == 16, describe(r)


def test_token_post_password_grant(tokensrv):
    scope = "repository:team/app:pull,push repository:library/nothing:push"
    r = post_token(tokensrv, grant_type="password", username=USER, password=USER_PASSWORD,
                   service="wharf", client_id="containerd-client", scope=scope)
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc["expires_in"] == 1800 and doc["issued_at"].endswith("Z")
    assert "refresh_token" not in doc
    assert doc["scope"] == "repository:team/app:pull,push"
    assert granted(doc["access_token"]) == {"team/app": ["pull", "push"], "library/nothing": []}
    assert token_claims(doc["access_token"])["sub"] == USER
    r = bearer(tokensrv, doc["access_token"]).get_manifest("team/app", "v1")
    assert r.status_code == 200, describe(r)
    # a robot logs in the same way
    api = Api(tokensrv.url, (ADMIN_USER, ADMIN_PASSWORD))
    perms = [{"kind": "project", "namespace": "team", "access": [{"resource": "repository", "action": "pull"}]}]
    bot = api.ok(api.post("/robots", {"name": "ci", "level": "project", "duration": -1, "permissions": perms}),
                 201).json()
    r = post_token(tokensrv, grant_type="password", username=bot["name"], password=bot["secret"],
                   service="harbor-registry", client_id="x", scope="repository:team/app:pull,push")
    assert r.status_code == 200 and granted(r.json()["access_token"]) == {"team/app": ["pull"]}, describe(r)

    # refusals, each in OAuth2's shape
    expect_oauth_error(post_token(tokensrv, grant_type="password", username=USER, password="Wrong-passw0rd",
                                  service="wharf", client_id="x"), 401, "invalid_grant")
    expect_oauth_error(post_token(tokensrv, grant_type="password", username="nobody", password="Wrong-passw0rd",
                                  service="wharf", client_id="x"), 401, "invalid_grant")
    expect_oauth_error(post_token(tokensrv, grant_type="password", password=USER_PASSWORD, service="wharf",
                                  client_id="x"), 400, "invalid_request")
    expect_oauth_error(post_token(tokensrv, grant_type="client_credentials", service="wharf", client_id="x"),
                       400, "unsupported_grant_type")
    expect_oauth_error(post_token(tokensrv, username=USER, password=USER_PASSWORD, service="wharf"),
                       400, "invalid_request")
    expect_oauth_error(post_token(tokensrv, grant_type="password", username=USER, password=USER_PASSWORD,
                                  service="elsewhere", client_id="x"), 400, "invalid_request")
    expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", service="wharf", client_id="x"),
                       400, "invalid_request")
    r = post_token(tokensrv, grant_type="password", username=USER, password=USER_PASSWORD, client_id="x")
    expect_oauth_error(r, 400, "invalid_request")
    assert r.json()["error_description"] == "service is required"


def test_token_refresh_grant(tokensrv):
    """offline_token=true (GET) and access_type=offline (POST) hand out a
    refresh token: signed, bound to its user, refused once the user is gone,
    disabled or has changed the password."""
    api = Api(tokensrv.url, (ADMIN_USER, ADMIN_PASSWORD))
    r = requests.get(f"{tokensrv.url}/service/token",
                     params={"service": "wharf", "offline_token": "true", "client_id": "docker",
                             "scope": "repository:team/app:pull"},
                     auth=(USER, USER_PASSWORD), timeout=30)
    assert r.status_code == 200, describe(r)
    rt = r.json()["refresh_token"]
    assert granted(r.json()["token"]) == {"team/app": ["pull"]}
    # without offline_token, and for anonymous callers, none
    assert "refresh_token" not in requests.get(f"{tokensrv.url}/service/token", params={"service": "wharf"},
                                               auth=(USER, USER_PASSWORD), timeout=30).json()
    assert "refresh_token" not in requests.get(f"{tokensrv.url}/service/token",
                                               params={"service": "wharf", "offline_token": "true"},
                                               timeout=30).json()

    r = post_token(tokensrv, grant_type="refresh_token", refresh_token=rt, service="wharf", client_id="docker",
                   scope="repository:team/app:pull,push")
    assert r.status_code == 200, describe(r)
    doc = r.json()
    assert doc["refresh_token"] == rt and doc["scope"] == "repository:team/app:pull,push"
    assert token_claims(doc["access_token"])["sub"] == USER
    assert bearer(tokensrv, doc["access_token"]).get_manifest("team/app", "v1").status_code == 200

    # the password grant with access_type=offline gives one too
    r = post_token(tokensrv, grant_type="password", username=USER, password=USER_PASSWORD, service="wharf",
                   client_id="x", access_type="offline")
    assert r.status_code == 200 and r.json()["refresh_token"], describe(r)

    # a refresh token is not an access token, nor the other way round
    r = bearer(tokensrv, rt).get_manifest("team/app", "v1")
    assert r.status_code == 401, describe(r)
    expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", refresh_token=doc["access_token"],
                                  service="wharf", client_id="x"), 401, "invalid_grant")
    # tampering breaks the signature
    head, body, sig = rt.split(".")
    claims = token_claims(rt)
    claims["sub"] = ADMIN_USER
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for bad in (f"{head}.{forged}.{sig}", rt[:-2] + ("AA" if rt[-2:] != "AA" else "BB"), "x.y.z", "", "A" * 9000):
        expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", refresh_token=bad, service="wharf",
                                      client_id="x"), 401 if bad else 400,
                           "invalid_grant" if bad else "invalid_request")

    # a changed password retires the user's refresh tokens
    uid = [u for u in api.ok(api.get("/users")).json() if u["username"] == USER][0]["user_id"]
    api.ok(api.put(f"/users/{uid}/password", {"new_password": "Other-Passw0rd-2"}))
    expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", refresh_token=rt, service="wharf",
                                  client_id="x"), 401, "invalid_grant")
    rt2 = requests.get(f"{tokensrv.url}/service/token", params={"service": "wharf", "offline_token": "true"},
                       auth=(USER, "Other-Passw0rd-2"), timeout=30).json()["refresh_token"]
    assert post_token(tokensrv, grant_type="refresh_token", refresh_token=rt2, service="wharf",
                      client_id="x").status_code == 200
    # so does deleting the user, even if the name comes back
    api.ok(api.delete(f"/users/{uid}"))
    expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", refresh_token=rt2, service="wharf",
                                  client_id="x"), 401, "invalid_grant")
    api.create_user(USER, "Other-Passw0rd-2")
    expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", refresh_token=rt2, service="wharf",
                                  client_id="x"), 401, "invalid_grant")

    # a robot's refresh token stops working when the robot is disabled or deleted
    perms = [{"kind": "project", "namespace": "team", "access": [{"resource": "repository", "action": "pull"}]}]
    bot = api.ok(api.post("/robots", {"name": "ci", "level": "project", "duration": -1, "permissions": perms}),
                 201).json()
    brt = requests.get(f"{tokensrv.url}/service/token", params={"service": "wharf", "offline_token": "true"},
                       auth=(bot["name"], bot["secret"]), timeout=30).json()["refresh_token"]
    r = post_token(tokensrv, grant_type="refresh_token", refresh_token=brt, service="wharf", client_id="x",
                   scope="repository:team/app:pull")
    assert r.status_code == 200 and granted(r.json()["access_token"]) == {"team/app": ["pull"]}, describe(r)
    api.ok(api.put(f"/robots/{bot['id']}", {"disable": True, "duration": -1, "permissions": perms}))
    expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", refresh_token=brt, service="wharf",
                                  client_id="x"), 401, "invalid_grant")
    api.ok(api.put(f"/robots/{bot['id']}", {"disable": False, "duration": -1, "permissions": perms}))
    assert post_token(tokensrv, grant_type="refresh_token", refresh_token=brt, service="wharf",
                      client_id="x").status_code == 200
    api.ok(api.delete(f"/robots/{bot['id']}"))
    expect_oauth_error(post_token(tokensrv, grant_type="refresh_token", refresh_token=brt, service="wharf",
                                  client_id="x"), 401, "invalid_grant")


def test_refresh_token_expires(servers):
    srv = servers.new(env={"WHARF_REFRESH_TOKEN_TTL": "4"})
    r = post_token(srv, grant_type="password", username=ADMIN_USER, password=ADMIN_PASSWORD, service="wharf",
                   client_id="x", access_type="offline")
    assert r.status_code == 200, describe(r)
    rt = r.json()["refresh_token"]
    claims = token_claims(rt)
    assert claims["exp"] - claims["iat"] == 4
    assert post_token(srv, grant_type="refresh_token", refresh_token=rt, service="wharf",
                      client_id="x").status_code == 200
    deadline = time.monotonic() + 15
    while True:
        r = post_token(srv, grant_type="refresh_token", refresh_token=rt, service="wharf", client_id="x")
        if r.status_code == 401:
            expect_oauth_error(r, 401, "invalid_grant")
            break
        assert r.status_code == 200, describe(r)
        assert time.monotonic() < deadline, "the refresh token did not expire"
        time.sleep(0.2)


@pytest.mark.parametrize("body,ctype,status", [
    (b"grant_type=password&username=admin&password=" + b"x" * 70000, "application/x-www-form-urlencoded", 413),
    (b'{"grant_type":"password"}', "application/json", 400),
    (b"grant_type=password&username=%zz&password=a&service=wharf", "application/x-www-form-urlencoded", 400),
    (b"grant_type=password&username=ad%00min&password=a&service=wharf", "application/x-www-form-urlencoded", 400),
    (b"grant_type=password&grant_type=refresh_token&username=admin&password=a&service=wharf",
     "application/x-www-form-urlencoded", 400),
    (b"&&&==&=&" * 100, "application/x-www-form-urlencoded", 400),
    (b"grant_type=refresh_token&service=wharf&refresh_token=" + b"A" * 20000, "application/x-www-form-urlencoded",
     401),
    (b"", "application/x-www-form-urlencoded", 400),
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded", 400),
])
def test_token_post_hostile_bodies(server, body, ctype, status):
    r = requests.post(f"{server.url}/service/token", data=body, headers={"Content-Type": ctype}, timeout=30)
    assert r.status_code == status, describe(r)
    assert r.json()["errors"][0]["code"] in ("BAD_REQUEST", "REQUEST_ENTITY_TOO_LARGE", "UNAUTHORIZED"), describe(r)
    assert server.running()
    for method in ("PUT", "DELETE", "PATCH"):
        r = requests.request(method, f"{server.url}/service/token", timeout=30)
        assert r.status_code == 405, describe(r)


# ---------------------------------------------------------------- a real Docker engine and
# its identity token: `docker login` keeps the refresh token (offline_token=true) and later
# pushes and pulls trade it for access tokens with POST /service/token

@pytest.fixture
def dockerd():
    """A private Docker engine (vfs storage, no networking), or a skip saying why not."""
    import os
    import shutil
    import signal
    import tempfile

    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("dockerd or docker is not installed")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    root = tempfile.mkdtemp(prefix="wd-", dir="/tmp")  # unix socket paths must stay short
    env = dict(os.environ, DOCKER_HOST=f"unix://{root}/sock", DOCKER_CONFIG=f"{root}/cfg")
    log = open(f"{root}/dockerd.log", "wb")
    proc = subprocess.Popen(["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                             "--storage-driver=vfs", "--data-root", f"{root}/data", "--exec-root",
                             f"{root}/exec", "--pidfile", f"{root}/pid", "-H", env["DOCKER_HOST"]],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=env, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(f"{root}/dockerd.log", "rb") as f:
                    tail = f.read()[-2000:].decode(errors="replace")
                pytest.skip(f"dockerd did not start here: {tail}")
            time.sleep(0.2)

        def docker(*args, input=None, check=True):
            p = subprocess.run(["docker", *args], env=env, input=input, capture_output=True, text=True,
                               timeout=300)
            if check:
                assert p.returncode == 0, f"docker {' '.join(args)}: {p.stdout}{p.stderr}"
            return p

        docker.root = root
        yield docker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def test_docker_identity_token(tokensrv, dockerd):
    host = tokensrv.host
    api = Api(tokensrv.url, (ADMIN_USER, ADMIN_PASSWORD))
    dockerd("login", "-u", USER, "--password-stdin", host, input=USER_PASSWORD + "\n")
    with open(f"{dockerd.root}/cfg/config.json") as f:
        auth = json.load(f)["auths"][host]
    # docker keeps the refresh token, not the password
    assert token_claims(auth["identitytoken"])["aud"] == "wharf-refresh"
    assert USER_PASSWORD not in json.dumps(auth)

    with open(f"{dockerd.root}/f", "w") as f:
        f.write("hello from docker\n")
    subprocess.run(["tar", "-C", dockerd.root, "-cf", f"{dockerd.root}/t.tar", "f"], check=True)
    dockerd("import", f"{dockerd.root}/t.tar", "tiny:1")
    dockerd("tag", "tiny:1", f"{host}/team/tiny:1")
    tokensrv.mark_log()
    dockerd("push", f"{host}/team/tiny:1")
    assert "access POST /service/token 200 " in tokensrv.log_since_mark()
    assert api.get("/projects/team/repositories/tiny/artifacts/1").status_code == 200
    dockerd("rmi", f"{host}/team/tiny:1", "tiny:1")
    dockerd("pull", f"{host}/team/tiny:1")

    # a new password retires the identity token: docker is refused until it logs in again
    uid = [u for u in api.ok(api.get("/users")).json() if u["username"] == USER][0]["user_id"]
    api.ok(api.put(f"/users/{uid}/password", {"new_password": "Other-Passw0rd-3"}))
    dockerd("tag", f"{host}/team/tiny:1", f"{host}/team/tiny:2")
    p = dockerd("push", f"{host}/team/tiny:2", check=False)
    assert p.returncode != 0 and "unauthorized" in (p.stdout + p.stderr).lower(), p.stdout + p.stderr
    dockerd("login", "-u", USER, "--password-stdin", host, input="Other-Passw0rd-3\n")
    dockerd("push", f"{host}/team/tiny:2")
