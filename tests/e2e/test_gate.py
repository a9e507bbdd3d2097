"""End-to-end tests of the vulnerability gate (docs/scanning.md, "The pull
gate"): with prevent_vul on, a manifest GET or HEAD of an image that breaks
the project's policy answers 412 PROJECTPOLICYVIOLATION with Harbor's
messages; the project's and the system's CVE allowlists (Harbor's rules on
which one applies and on expiry); artifacts that are not images pass; only a
token with scanner-pull bypasses the gate, administrators do not.

The image is the pinned bookworm image pushed with skopeo; the database is
the fixture database in tests/data/vulndb, imported with `wharf vulndb import`.
"""
import json
import time

import requests

from apiclient import Api, describe
from ocilayout import MT_CONFIG, MT_EMPTY, MT_LAYER_GZIP, MT_MANIFEST, canonical_json, descriptor, sha256_digest
from regclient import ADMIN_PASSWORD, ADMIN_USER, Registry
from test_scan_registry import REPO, Scans, import_db, proj  # noqa: F401 (fixture)

POLICY = ("cannot be pulled due to configured policy in 'Prevent images with vulnerability "
          "severity of \"{sev}\" or higher from running.' To continue with pull, please contact "
          "your project administrator ")
CVE = "CVE-2023-45853"
SEV = {"Unknown": 0, "Negligible": 1, "Low": 2, "Medium": 3, "High": 4, "Critical": 5}
GATED = {"prevent_vul": "true", "severity": "critical"}


def policy_error(r, message=None):
    """The 412 answer's one error: its message."""
    assert r.status_code == 412, describe(r)
    errs = r.json()["errors"]
    assert len(errs) == 1 and errs[0]["code"] == "PROJECTPOLICYVIOLATION", r.text
    if message is not None:
        assert errs[0]["message"] == message
    return errs[0]["message"]


def not_scanned(sev):
    return "current image without vulnerability scanning " + POLICY.format(sev=sev) + "for help."


def vulnerable(rep, allowed=(), sev="Critical"):
    """Harbor's message C for the report less `allowed`, and the blocking CVEs named."""
    seen, ids = set(), []
    for v in rep["vulnerabilities"]:
        key = (v["id"], v["package"], v["version"])
        if key in seen or v["id"] in allowed:
            continue
        seen.add(key)
        if SEV[v["severity"]] >= SEV[sev] and v["id"] not in ids:
            ids.append(v["id"])
    n = len(seen)
    named = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return (f"current image with {n} {'vulnerability' if n == 1 else 'vulnerabilities'} "
            + POLICY.format(sev=sev)
            + f"to exempt matched vulnerabilities through configuring the CVE allowlist. "
            f"Blocking vulnerabilities: {named}.")


def criticals(rep):
    return sorted({v["id"] for v in rep["vulnerabilities"] if v["severity"] == "Critical"})


def push_artifact(reg, repo, ref, config_type, artifact_type=None, config=b"{}"):
    layer = b"layer of " + repo.encode() + ref.encode()
    reg.push_blob(repo, layer)
    reg.push_blob(repo, config)
    m = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": descriptor(config_type, config),
         "layers": [descriptor(MT_LAYER_GZIP, layer)]}
    if artifact_type:
        m["artifactType"] = artifact_type
    body = json.dumps(m).encode()
    r = reg.push_manifest(repo, ref, body)
    assert r.status_code == 201, describe(r)
    return sha256_digest(body)


def token(srv, cred, scope):
    r = requests.get(f"{srv.url}/service/token", params={"service": "wharf", "scope": scope},
                     auth=cred, timeout=30)
    assert r.status_code == 200, describe(r)
    return r.json()["token"]


def bearer(srv, tok, method, path):
    return requests.request(method, srv.url + path, headers={
        "Authorization": f"Bearer {tok}", "Accept": MT_MANIFEST}, timeout=30)


def test_gate_vulnerable_allowlists_and_bypass(servers, skopeo, pinned_bookworm, proj, tmp_path):
    srv = servers.new()
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true", **GATED})
    s.push(skopeo, pinned_bookworm)  # a push is not a pull: never gated
    digest = pinned_bookworm.manifest_digest
    s.wait_status(digest, "Success")
    rep = s.vulnerabilities(digest)["application/vnd.security.vulnerability.report; version=1.1"]
    crit = criticals(rep)
    assert CVE in crit

    reg = Registry(srv.url)  # the administrator: not exempt
    want = vulnerable(rep)
    assert CVE in want
    for ref in ("1", digest):
        path = f"/v2/{proj}/{REPO}/manifests/{ref}"
        assert policy_error(reg.get_manifest(f"{proj}/{REPO}", ref), want)
        h = reg.head(path)
        assert h.status_code == 412 and h.content == b"", describe(h)
    # blobs are served as before
    manifest = json.loads((pinned_bookworm.layout / "blobs" / "sha256" / digest[7:]).read_bytes())
    r = reg.get(f"/v2/{proj}/{REPO}/blobs/{manifest['config']['digest']}")
    assert r.status_code == 200, describe(r)
    # a real client is refused with the message that names the CVE
    p = skopeo.copy(f"docker://{srv.host}/{proj}/{REPO}:1", f"oci:{tmp_path / 'out'}:x",
                    check=False)
    assert p.returncode != 0 and CVE in p.stderr, p.stderr

    # the project's own list: used once reuse_sys_cve_allowlist is false
    def set_project(meta=None, allowlist=None):
        body = {}
        if meta is not None:
            body["metadata"] = meta
        if allowlist is not None:
            body["cve_allowlist"] = allowlist
        s.api.ok(s.api.put(f"/projects/{proj}", body))

    set_project({"reuse_sys_cve_allowlist": "false"}, {"items": [{"cve_id": c} for c in crit]})
    got = s.api.ok(s.api.get(f"/projects/{proj}")).json()
    assert got["metadata"]["reuse_sys_cve_allowlist"] == "false"
    assert [i["cve_id"] for i in got["cve_allowlist"]["items"]] == crit
    assert reg.get_manifest(f"{proj}/{REPO}", "1").status_code == 200
    assert reg.head(f"/v2/{proj}/{REPO}/manifests/{digest}").status_code == 200
    skopeo.copy(f"docker://{srv.host}/{proj}/{REPO}:1", f"oci:{tmp_path / 'ok'}:x")
    # one CVE fewer: the message names what still blocks
    set_project(allowlist={"items": [{"cve_id": c} for c in crit if c != CVE]})
    msg = policy_error(reg.get_manifest(f"{proj}/{REPO}", "1"),
                       vulnerable(rep, allowed=[c for c in crit if c != CVE]))
    assert msg.endswith(f"Blocking vulnerabilities: {CVE}.")
    # an expired list is ignored as a whole
    past = int(time.time()) - 60
    set_project(allowlist={"items": [{"cve_id": c} for c in crit], "expires_at": past})
    assert s.api.ok(s.api.get(f"/projects/{proj}")).json()["cve_allowlist"]["expires_at"] == past
    policy_error(reg.get_manifest(f"{proj}/{REPO}", "1"), want)
    set_project(allowlist={"items": [{"cve_id": c} for c in crit],
                           "expires_at": int(time.time()) + 3600})
    assert reg.get_manifest(f"{proj}/{REPO}", "1").status_code == 200

    # the system list: used when the project reuses it; the project's list then is not
    set_project({"reuse_sys_cve_allowlist": "true"})
    policy_error(reg.get_manifest(f"{proj}/{REPO}", "1"), want)
    r = s.api.get("/system/CVEAllowlist")
    assert r.status_code == 200 and r.json()["items"] == [], describe(r)
    s.api.ok(s.api.put("/system/CVEAllowlist", {"items": [{"cve_id": c} for c in crit]}))
    got = s.api.ok(s.api.get("/system/CVEAllowlist")).json()
    assert [i["cve_id"] for i in got["items"]] == crit and got["expires_at"] is None
    assert reg.get_manifest(f"{proj}/{REPO}", "1").status_code == 200
    s.api.ok(s.api.put("/system/CVEAllowlist", {"items": [{"cve_id": c} for c in crit],
                                                "expires_at": past}))
    policy_error(reg.get_manifest(f"{proj}/{REPO}", "1"), want)
    # validation and who may change it
    for body, message in (({"items": [{"cve_id": " "}]}, "empty or whitespace-only CVE ID in allowlist"),
                          ({"items": [{"cve_id": CVE}, {"cve_id": CVE}]},
                           f"duplicate CVE ID in allowlist: {CVE}")):
        r = s.api.put("/system/CVEAllowlist", body)
        assert r.status_code == 400 and r.json()["errors"][0]["message"] == message, describe(r)
        r = s.api.put(f"/projects/{proj}", {"cve_allowlist": body})
        assert r.status_code == 400 and r.json()["errors"][0]["message"] == message, describe(r)
    s.api.create_user("gateuser", "Passw0rd-x")
    user = Api(srv.url, ("gateuser", "Passw0rd-x"))
    assert user.get("/system/CVEAllowlist").status_code == 200
    assert user.put("/system/CVEAllowlist", {"items": []}).status_code == 403
    assert Api(srv.url).get("/system/CVEAllowlist").status_code == 401

    # tokens: scanner-pull bypasses; the administrator's pull token and a robot's do not
    path = f"/v2/{proj}/{REPO}/manifests/{digest}"
    scope = f"repository:{proj}/{REPO}:pull"
    policy_error(bearer(srv, token(srv, (ADMIN_USER, ADMIN_PASSWORD), scope), "GET", path), want)
    r = s.api.post("/robots", {"name": "scanner", "level": "project", "duration": -1, "permissions": [
        {"kind": "project", "namespace": proj, "access": [
            {"resource": "repository", "action": "pull"},
            {"resource": "repository", "action": "scanner-pull"}]}]})
    assert r.status_code == 201, describe(r)
    robot = (r.json()["name"], r.json()["secret"])
    policy_error(bearer(srv, token(srv, robot, scope), "GET", path), want)
    tok = token(srv, robot, scope + ",scanner-pull")
    for method in ("GET", "HEAD"):
        r = bearer(srv, tok, method, path)
        assert r.status_code == 200, describe(r)

    # artifacts that are not images pass; an unscanned image is refused
    other = f"{proj}/other"
    art = push_artifact(reg, other, "art", MT_EMPTY, artifact_type="application/vnd.example.thing.v1")
    assert reg.get_manifest(other, art).status_code == 200
    assert reg.head(f"/v2/{other}/manifests/art").status_code == 200
    s.api.ok(s.api.put(f"/projects/{proj}", {"metadata": {"auto_scan": "false"}}))
    push_artifact(reg, other, "img", MT_CONFIG, config=canonical_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}))
    policy_error(reg.get_manifest(other, "img"), not_scanned("Critical"))
    assert reg.head(f"/v2/{other}/manifests/img").status_code == 412
    # the threshold named as Harbor spells it
    s.api.ok(s.api.put(f"/projects/{proj}", {"metadata": {"severity": "none"}}))
    policy_error(reg.get_manifest(other, "img"), not_scanned("None"))
    # prevent_vul off: served
    s.api.ok(s.api.put(f"/projects/{proj}", {"metadata": {"prevent_vul": "false"}}))
    assert reg.get_manifest(other, "img").status_code == 200
    assert reg.get_manifest(f"{proj}/{REPO}", "1").status_code == 200


def test_gate_scan_in_progress(servers, proj):
    # the scan is held Running until the server stops
    srv = servers.new(env={"WHARF_FAILPOINTS": "scan.hold=1:EIO"})
    s = Scans(srv, proj)
    s.api.create_project(proj, metadata={"auto_scan": "true", **GATED})
    reg = Registry(srv.url)
    d = push_artifact(reg, f"{proj}/{REPO}", "1", MT_CONFIG, config=canonical_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}))
    s.wait_status(d, "Running")
    msg = ('current image with "Running" status of vulnerability scanning '
           + POLICY.format(sev="Critical") + "for help.")
    policy_error(reg.get_manifest(f"{proj}/{REPO}", "1"), msg)
    policy_error(reg.get_manifest(f"{proj}/{REPO}", d), msg)
    assert s.stop(d).status_code == 202
    policy_error(reg.get_manifest(f"{proj}/{REPO}", d), msg.replace('"Running"', '"Stopped"'))
