"""Security properties beyond the access matrix (test_security_matrix.py):

* tokens signed with the server's own key whose one wrong claim (expired,
  not yet valid, wrong audience, wrong issuer, another repository, another
  type, a missing expiry) must be refused; a re-signed copy of a genuine
  token is accepted, which shows the signing here is right and only the
  claim is to blame;
* no password, robot secret, token or Authorization value ever reaches the
  server's log or the audit log (nor the database at all, in clear);
* a failed login takes as long for a user that does not exist as for one
  that does (no account enumeration by timing).

Tokens are signed with the `openssl` command (ES256 over P-256): it gives a
DER ECDSA signature, which is turned into the 64-byte r||s form of JWS.
"""

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import statistics
import subprocess
import time

import pytest
import requests

from apiclient import ADMIN_PASSWORD, Api, start_server
from apiclient import describe as api_describe
from apiclient import expect_error as api_expect_error
from conftest import WharfServer
from ocilayout import make_image
from regclient import ADMIN_USER, Registry, basic_auth, describe, expect_error
from test_auth import bearer, challenge_params, token, token_claims

PASSWORD = "Passw0rd-x"


# ---------------------------------------------------------------- JWS helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def der_ecdsa_to_raw(der: bytes, size: int = 32) -> bytes:
    """An ECDSA signature in DER (SEQUENCE { INTEGER r, INTEGER s }) as the
    fixed-width r||s that JWS uses."""

    def read_len(buf, i):
        n = buf[i]
        if n < 0x80:
            return n, i + 1
        k = n & 0x7F
        return int.from_bytes(buf[i + 1:i + 1 + k], "big"), i + 1 + k

    assert der[0] == 0x30, der.hex()
    seqlen, i = read_len(der, 1)
    assert i + seqlen == len(der), der.hex()
    out = b""
    for _ in range(2):
        assert der[i] == 0x02, der.hex()
        n, i = read_len(der, i + 1)
        value = int.from_bytes(der[i:i + n], "big")
        i += n
        out += value.to_bytes(size, "big")
    assert i == len(der), der.hex()
    return out


def es256_sign(key_path: str, signing_input: bytes) -> bytes:
    p = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=signing_input,
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return der_ecdsa_to_raw(p.stdout)


def make_token(key_path: str, header: dict, claims: dict) -> str:
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    return signing_input + "." + b64url(es256_sign(key_path, signing_input.encode()))


def token_header(tok: str) -> dict:
    part = tok.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# ---------------------------------------------------------------- tokens


@pytest.fixture(scope="module")
def tsrv(wharf_bin, session_tmp):
    """A server with a private project holding an image, whose key the tests
    sign with."""
    srv = start_server(WharfServer, wharf_bin, str(session_tmp / "security-tokens"), name="security-tokens")
    admin = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    admin.create_project("tokpriv")
    img = make_image(layers=1, files_per_layer=1, file_size=256, seed="tokens")
    srv.registry().push_image("tokpriv/app", img, "v1")
    srv.image = img
    srv.key_path = os.path.join(srv.data_dir, "token.key")
    yield srv
    srv.stop()


REPO = "tokpriv/app"


def genuine(tsrv, actions="pull,push"):
    """A token the server issued to the administrator, its header and claims."""
    tok = token(tsrv, f"repository:{REPO}:{actions}")
    return tok, token_header(tok), token_claims(tok)


def pulls(tsrv, tok) -> requests.Response:
    return bearer(tsrv, tok).get_manifest(REPO, "v1")


def pushes(tsrv, tok) -> requests.Response:
    return bearer(tsrv, tok).post(f"/v2/{REPO}/blobs/uploads/")


def refused(r, what):
    assert r.status_code == 401, f"{what}: " + describe(r)
    expect_error(r, 401, "UNAUTHORIZED")
    challenge_params(r)


def test_resigned_genuine_token_accepted(tsrv):
    """The control: the same header and claims signed here work, so each
    refusal below is for its one wrong claim."""
    _, head, claims = genuine(tsrv)
    assert head["alg"] == "ES256" and head.get("kid"), head
    claims["jti"] = "resigned-control"
    tok = make_token(tsrv.key_path, head, claims)
    r = pulls(tsrv, tok)
    assert r.status_code == 200 and r.content == tsrv.image.manifest, describe(r)
    r = pushes(tsrv, tok)
    assert r.status_code == 202, describe(r)


def wrong_claims():
    now = int(time.time())
    return {
        # 30 s of leeway is allowed either way (docs/security.md): go past it.
        "expired": {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600},
        "expired-just-past-leeway": {"iat": now - 600, "nbf": now - 600, "exp": now - 40},
        "not-yet-valid": {"iat": now, "nbf": now + 3600, "exp": now + 7200},
        "no-exp": {"exp": None},
        "audience-harbor": {"aud": "harbor-registry"},
        "audience-other": {"aud": ["other-registry"]},
        "audience-empty-list": {"aud": []},
        "no-audience": {"aud": None},
        "issuer-harbor": {"iss": "harbor-token-issuer"},
        "issuer-other": {"iss": "wharf-token-issuer-x"},
        "no-issuer": {"iss": None},
        "scope-other-repository": {"access": [{"type": "repository", "name": "tokpriv/other",
                                               "actions": ["pull", "push"]}]},
        "scope-repository-prefix": {"access": [{"type": "repository", "name": "tokpriv/ap",
                                                "actions": ["pull", "push"]}]},
        "scope-project-name": {"access": [{"type": "repository", "name": "tokpriv",
                                           "actions": ["pull", "push"]}]},
        "scope-other-type": {"access": [{"type": "registry", "name": REPO, "actions": ["pull", "push"]}]},
        "scope-no-access": {"access": []},
    }


@pytest.mark.parametrize("case", list(wrong_claims()))
def test_token_with_wrong_claim_refused(tsrv, case):
    _, head, claims = genuine(tsrv)
    for k, v in wrong_claims()[case].items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    claims["jti"] = f"wrong-{case}"
    tok = make_token(tsrv.key_path, head, claims)
    refused(pulls(tsrv, tok), case)
    refused(pushes(tsrv, tok), case)


def test_token_wrong_scope_grants_only_its_action(tsrv):
    """A genuine pull-only token, re-signed with push added for another
    repository: still no push here."""
    _, head, claims = genuine(tsrv, "pull")
    claims["access"].append({"type": "repository", "name": "tokpriv/other", "actions": ["push", "delete"]})
    claims["jti"] = "pull-only"
    tok = make_token(tsrv.key_path, head, claims)
    assert pulls(tsrv, tok).status_code == 200
    refused(pushes(tsrv, tok), "push with a pull token")
    refused(bearer(tsrv, tok).delete(f"/v2/{REPO}/manifests/{tsrv.image.manifest_digest}"),
            "delete with a pull token")


def test_token_header_tricks_refused(tsrv):
    _, head, claims = genuine(tsrv)
    cases = {
        "unknown-kid": dict(head, kid="AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL"),
        "no-kid": {k: v for k, v in head.items() if k != "kid"},
        "crit": dict(head, crit=["exp"]),
    }
    for case, h in cases.items():
        claims["jti"] = f"hdr-{case}"
        refused(pulls(tsrv, make_token(tsrv.key_path, h, claims)), case)
    # The classic confusion: HS256 keyed with the public key (and the private PEM).
    pub = subprocess.run(["openssl", "pkey", "-in", tsrv.key_path, "-pubout"], capture_output=True,
                         timeout=30, check=True).stdout
    with open(tsrv.key_path, "rb") as f:
        priv = f.read()
    for key in (pub, priv):
        h = dict(head, alg="HS256")
        signing_input = f"{b64url_json(h)}.{b64url_json(claims)}"
        sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        refused(pulls(tsrv, signing_input + "." + b64url(sig)), "HS256")
    # A signature of the right length from another P-256 key.
    other = os.path.join(os.path.dirname(tsrv.key_path), "..", "other.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", other], capture_output=True, timeout=30, check=True)
    claims["jti"] = "other-key"
    refused(pulls(tsrv, make_token(other, head, claims)), "another key")


def test_token_expiry_holds_for_a_remembered_token(tsrv):
    """Verified tokens are remembered (docs/security.md); a remembered one
    must still stop working when it expires. This one is inside the 30 s
    leeway when first used and past it a few seconds later."""
    _, head, claims = genuine(tsrv)
    now = int(time.time())
    claims.update({"iat": now - 600, "nbf": now - 600, "exp": now - 25, "jti": "remembered"})
    tok = make_token(tsrv.key_path, head, claims)
    r = pulls(tsrv, tok)
    assert r.status_code == 200, "a token within the leeway was refused: " + describe(r)
    time.sleep(max(0.0, now - 25 + 30 + 2 - time.time()))
    refused(pulls(tsrv, tok), "the same token once past the leeway")


# ---------------------------------------------------------------- no secret in logs


def db_text(path: str, table: str = None) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if table:
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            return "\n".join(repr(r) for r in rows)
        return "\n".join(con.iterdump())
    finally:
        con.close()


def test_no_secret_in_any_log(servers):
    """A session with right and wrong logins, user creation and password
    change, robot creation and secret refresh, token requests, Basic and
    Bearer requests: none of the secrets, tokens or Authorization values may
    show in the server's log (at debug level) or the audit log."""
    srv = servers.new(env={"WHARF_LOG_LEVEL": "debug"})
    admin = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    secrets, tokens, auth_values = {"admin": ADMIN_PASSWORD}, [], []

    def basic(user, pw):
        auth_values.append(basic_auth(user, pw).split(" ", 1)[1])
        return (user, pw)

    def get_token(user, pw, scope):
        r = requests.get(f"{srv.url}/service/token", params={"service": "wharf", "scope": scope},
                         auth=(user, pw) if user else None, timeout=30)
        if r.status_code == 200:
            tokens.append(r.json()["token"])
        return r

    pid = admin.create_project("logs")
    secrets["alice"] = "Alice-Secr3t-Passw0rd-Q7"
    secrets["alice-new"] = "Alice-N3w-Passw0rd-Z9"
    secrets["wrong"] = "Wr0ng-Guess-Passw0rd-K4"
    uid = admin.create_user("alice", secrets["alice"])
    admin.add_member(pid, "alice", 2)

    alice = Api(srv.url, basic("alice", secrets["alice"]))
    alice.ok(alice.get("/users/current"))
    api_expect_error(Api(srv.url, basic("alice", secrets["wrong"])).get("/users/current"), 401, "UNAUTHORIZED")
    alice.ok(alice.put(f"/users/{uid}/password", {"old_password": secrets["alice"],
                                                  "new_password": secrets["alice-new"]}))
    alice = Api(srv.url, basic("alice", secrets["alice-new"]))
    alice.ok(alice.get("/users/current"))
    admin.ok(admin.put(f"/users/{uid}/password", {"new_password": "Admin-Set-Passw0rd-M2"}))
    secrets["admin-set"] = "Admin-Set-Passw0rd-M2"

    r = admin.post("/robots", {"name": "ci", "level": "project", "duration": -1,
                               "permissions": [{"kind": "project", "namespace": "logs",
                                                "access": [{"resource": "repository", "action": "pull"},
                                                           {"resource": "repository", "action": "push"}]}]})
    assert r.status_code == 201, api_describe(r)
    robot, rid = r.json()["name"], r.json()["id"]
    secrets["robot"] = r.json()["secret"]
    refreshed = admin.ok(admin.patch(f"/robots/{rid}", {})).json()["secret"]
    secrets["robot-refreshed"] = refreshed
    secrets["robot-chosen"] = "Chosen-R0bot-Secret-W5"
    admin.ok(admin.patch(f"/robots/{rid}", {"secret": secrets["robot-chosen"]}))

    # token requests: right, wrong, anonymous, robot
    img = make_image(layers=1, files_per_layer=1, file_size=256, seed="logs")
    assert get_token(*basic(ADMIN_USER, ADMIN_PASSWORD), "repository:logs/app:pull,push").status_code == 200
    assert get_token(*basic("alice", secrets["admin-set"]), "repository:logs/app:pull,push").status_code == 200
    assert get_token(*basic("alice", secrets["wrong"]), "repository:logs/app:pull").status_code == 401
    assert get_token(*basic(robot, secrets["robot-chosen"]), "repository:logs/app:pull,push").status_code == 200
    assert get_token(*basic(robot, secrets["robot"]), "repository:logs/app:pull").status_code == 401
    assert get_token(None, None, "repository:logs/app:pull").status_code == 200

    # Basic and Bearer on /v2/
    Registry(srv.url, auth=basic(robot, secrets["robot-chosen"])).push_image("logs/app", img, "v1")
    assert Registry(srv.url, auth=basic("alice", secrets["admin-set"])).get_manifest("logs/app", "v1").status_code == 200
    assert Registry(srv.url, auth=basic("alice", secrets["wrong"])).get("/v2/").status_code == 401
    for tok in tokens:
        bearer(srv, tok).get_manifest("logs/app", "v1")
        bearer(srv, tok).post("/v2/logs/app/blobs/uploads/")
        auth_values.append(tok)
    # A token where a password goes, and a password where a token goes.
    Registry(srv.url, auth=("alice", tokens[0])).get("/v2/")
    reg = Registry(srv.url, auth=None)
    reg.session.headers["Authorization"] = f"Bearer {secrets['alice-new']}"
    reg.get("/v2/logs/app/manifests/v1")
    # Tokens and secrets in query strings are not credentials, but the access log must not keep them.
    requests.get(f"{srv.url}/v2/logs/app/tags/list", params={"access_token": tokens[0],
                                                             "password": secrets["alice-new"]}, timeout=30)

    assert srv.stop() == 0
    log = srv.log_text()
    audit = db_text(os.path.join(srv.data_dir, "wharf.db"), "audit_log")
    whole_db = db_text(os.path.join(srv.data_dir, "wharf.db"))
    assert "login" in audit and "alice" in audit, "the audit log does not look like one:\n" + audit[:2000]
    assert "GET" in log or "POST" in log, "no access log lines at debug level:\n" + log[-2000:]

    found = []
    for where, text in (("server log", log), ("audit_log", audit), ("database", whole_db)):
        for name, s in secrets.items():
            if s in text:
                found.append(f"password/secret {name!r} in the {where}")
        for value in auth_values:
            if value in text:
                found.append(f"Authorization value {value[:12]}… in the {where}")
        for n, tok in enumerate(tokens):
            body = tok.split(".", 1)[1]  # claims and signature; the header is common to all tokens
            for i in range(0, len(body) - 20 + 1):
                if body[i:i + 20] in text:
                    found.append(f"token {n} (slice at {i}) in the {where}")
                    break
    assert not found, "\n".join(found)


# ---------------------------------------------------------------- login timing


def test_failed_login_timing_does_not_reveal_users(servers):
    """A wrong password for an existing user costs an argon2id verification;
    a login as a user that does not exist must cost the same, or the answer
    time tells which names exist. Each name is tried once (no throttle)."""
    srv = servers.new()
    admin = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    for i in range(5):
        admin.create_user(f"known{i}", PASSWORD)

    def failed_login(user):
        t0 = time.monotonic()
        r = requests.get(f"{srv.url}/service/token", params={"service": "wharf"},
                         auth=(user, "Wrong-Passw0rd-1"), timeout=30)
        dt = time.monotonic() - t0
        assert r.status_code == 401, describe(r)
        return dt

    known, unknown = [], []
    for i in range(5):  # interleaved, so that machine load hits both alike
        known.append(failed_login(f"known{i}"))
        unknown.append(failed_login(f"nobody{i}"))
    k, u = statistics.median(known), statistics.median(unknown)
    assert u >= 0.5 * k, (f"a failed login for an unknown user takes {u * 1000:.1f} ms, for a known "
                          f"user {k * 1000:.1f} ms: user names can be told apart by timing "
                          f"(known {[round(x * 1000, 1) for x in known]}, unknown "
                          f"{[round(x * 1000, 1) for x in unknown]})")
