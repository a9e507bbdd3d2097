"""The security settings and CVE allowlists on the command line
(docs/cli.md, "Security settings and allowlists"): `wharf project set|show`
and `wharf allowlist show|set|add|remove`, run while the server serves.

What the commands store is what the REST API reads back, with the API's
checks; usage errors name the argument and exit 2. A change made on the
command line applies to the very next pull: the gate remembers allowed
verdicts per thread under the database's data version, which a write from
another process moves too. The image is the pinned bookworm image pushed
with skopeo, scanned with the fixture database.
"""
import re
import time

from apiclient import describe
from regclient import Registry
from test_gate import CVE, criticals, policy_error
from test_scan_registry import MIME, REPO, Scans, import_db, proj  # noqa: F401 (fixture)

PULLS = 24  # more than the server's request threads: every thread's cache is warmed


def ok(p):
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def usage_error(p, *words):
    assert p.returncode == 2, p.stdout + p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)
    return p.stderr


def test_cli_usage_errors_name_the_argument(servers, proj):
    srv = servers.new()
    ok(srv.cli("project", "create", proj))
    usage_error(srv.cli("project", "set", proj), "nothing to set")
    usage_error(srv.cli("project", "set", proj, "--severity", "severe"), "--severity", "'severe'")
    usage_error(srv.cli("project", "set", proj, "--auto-scan", "yes-please"), "--auto-scan",
                "'yes-please'")
    usage_error(srv.cli("project", "set", proj, "--prevent-vul"), "--prevent-vul needs a value")
    usage_error(srv.cli("project", "set", proj, "--bogus", "on"), "unknown option --bogus")
    usage_error(srv.cli("project", "set", "--auto-scan", "on"), "missing NAME")
    usage_error(srv.cli("project", "show"), "missing NAME")
    usage_error(srv.cli("allowlist"), "missing subcommand")
    usage_error(srv.cli("allowlist", "drop", CVE), "unknown subcommand 'drop'")
    usage_error(srv.cli("allowlist", "add"), "missing CVE")
    usage_error(srv.cli("allowlist", "add", CVE, "--expires-at", "tomorrow"), "--expires-at",
                "'tomorrow'")
    usage_error(srv.cli("allowlist", "add", CVE, "--expires-at", "2030-02-30T00:00:00Z"),
                "'2030-02-30T00:00:00Z'")
    usage_error(srv.cli("allowlist", "remove", CVE, "--expires-at", "never"),
                "unknown option --expires-at")
    # the API's own checks on the ids, with its messages
    usage_error(srv.cli("allowlist", "set", CVE, CVE), f"duplicate CVE ID in allowlist: {CVE}")
    usage_error(srv.cli("allowlist", "set", " "), "empty or whitespace-only CVE ID in allowlist")
    usage_error(srv.cli("allowlist", "set", "C" * 129), "longer than 128 characters")
    # not usage errors: what the registry holds says no (exit 1), nothing changed
    p = srv.cli("project", "set", "no-such-project", "--auto-scan", "on")
    assert p.returncode == 1 and "project no-such-project not found" in p.stderr, p.stderr
    p = srv.cli("allowlist", "remove", "--project", proj, CVE)
    assert p.returncode == 1 and f"{CVE} is not on the project's allowlist" in p.stderr, p.stderr
    s = Scans(srv, proj)
    got = s.api.ok(s.api.get(f"/projects/{proj}")).json()
    assert got["metadata"] == {"public": "false"} and got["cve_allowlist"]["items"] == []
    assert s.api.ok(s.api.get("/system/CVEAllowlist")).json()["items"] == []


def test_cli_settings_are_the_apis(servers, proj):
    srv = servers.new()
    s = Scans(srv, proj)
    s.api.create_project(proj)
    out = ok(srv.cli("project", "set", proj, "--auto-scan", "on", "--prevent-vul", "ON",
                     "--severity", "High", "--reuse-sys-allowlist", "off"))
    assert re.search(r"^severity: +high$", out, re.M), out
    got = s.api.ok(s.api.get(f"/projects/{proj}")).json()["metadata"]
    assert got == {"public": "false", "auto_scan": "true", "prevent_vul": "true",
                   "severity": "high", "reuse_sys_cve_allowlist": "false"}
    # the API's values, shown by the CLI
    s.api.ok(s.api.put(f"/projects/{proj}", {"metadata": {"auto_scan": "false",
                                                            "severity": "low"},
                                              "cve_allowlist": {"items": [{"cve_id": CVE}],
                                                                "expires_at": 1893456000}}))
    out = ok(srv.cli("project", "show", proj))
    for line in (f"project: +{proj}", "auto_scan: +off", "prevent_vul: +on", "severity: +low",
                 "reuse_sys_allowlist: +off", r"allowlist in effect: the project's",
                 r"expires: 2030-01-01T00:00:00Z", rf"^    {CVE}$"):
        assert re.search(line, out, re.M), (line, out)

    # the project's list: add keeps the expiry, set replaces it, an offset is honoured
    ok(srv.cli("allowlist", "add", "--project", proj, "CVE-2024-0001", "CVE-2024-0002"))
    al = s.api.ok(s.api.get(f"/projects/{proj}")).json()["cve_allowlist"]
    assert [i["cve_id"] for i in al["items"]] == [CVE, "CVE-2024-0001", "CVE-2024-0002"]
    assert al["expires_at"] == 1893456000
    ok(srv.cli("allowlist", "remove", "--project", proj, "CVE-2024-0001"))
    ok(srv.cli("allowlist", "add", "--project", proj, CVE, "--expires-at",
               "2031-06-01T02:00:00+02:00"))  # already there: kept once
    al = s.api.ok(s.api.get(f"/projects/{proj}")).json()["cve_allowlist"]
    assert [i["cve_id"] for i in al["items"]] == [CVE, "CVE-2024-0002"]
    assert al["expires_at"] == 1938038400  # 2031-06-01T00:00:00Z
    ok(srv.cli("allowlist", "set", "--project", proj, "CVE-2024-0003"))
    al = s.api.ok(s.api.get(f"/projects/{proj}")).json()["cve_allowlist"]
    assert [i["cve_id"] for i in al["items"]] == ["CVE-2024-0003"] and "expires_at" not in al

    # the system list
    ok(srv.cli("allowlist", "set", CVE, "CVE-2024-0004", "--expires-at", "2030-01-01T00:00:00Z"))
    got = s.api.ok(s.api.get("/system/CVEAllowlist")).json()
    assert [i["cve_id"] for i in got["items"]] == [CVE, "CVE-2024-0004"]
    assert got["expires_at"] == 1893456000
    out = ok(srv.cli("allowlist", "show"))
    assert "expires: 2030-01-01T00:00:00Z" in out and "CVEs: 2" in out, out
    ok(srv.cli("allowlist", "set"))
    got = s.api.ok(s.api.get("/system/CVEAllowlist")).json()
    assert got["items"] == [] and got["expires_at"] is None

    # written to the audit log as the command line's
    r = s.api.get("/audit-logs", params={"q": "operation=update", "page_size": "50"})
    assert r.status_code == 200, describe(r)
    users = {e["username"] for e in r.json()}
    assert any(u.startswith("cli:") for u in users), users


def test_cli_changes_apply_to_the_next_pull(servers, skopeo, pinned_bookworm, proj):
    srv = servers.new()
    import_db(srv)
    s = Scans(srv, proj)
    s.api.create_project(proj)
    ok(srv.cli("project", "set", proj, "--auto-scan", "on"))
    s.push(skopeo, pinned_bookworm)
    digest = pinned_bookworm.manifest_digest
    s.wait_status(digest, "Success")
    crit = criticals(s.vulnerabilities(digest)[MIME])
    assert CVE in crit
    reg = Registry(srv.url)
    repo = f"{proj}/{REPO}"

    def pulls(status):
        """PULLS pulls in a row, each with a new connection (spread over the threads)."""
        for _ in range(PULLS):
            r = reg.get_manifest(repo, "1")
            assert r.status_code == status, describe(r)
            reg.session.close()
        return r

    pulls(200)  # the gate is off
    ok(srv.cli("project", "set", proj, "--prevent-vul", "on", "--severity", "critical"))
    msg = policy_error(pulls(412))
    assert CVE in msg

    # the system list (the project reuses it): every critical allowed
    ok(srv.cli("allowlist", "set", *crit))
    pulls(200)  # allowed verdicts now remembered by the threads
    ok(srv.cli("allowlist", "remove", CVE))
    msg = policy_error(pulls(412))
    assert msg.endswith(f"Blocking vulnerabilities: {CVE}."), msg
    ok(srv.cli("allowlist", "add", CVE))
    pulls(200)
    # an expiry in the past: the whole list is ignored
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    ok(srv.cli("allowlist", "add", CVE, "--expires-at", past))
    assert CVE in policy_error(pulls(412))
    ok(srv.cli("allowlist", "add", CVE, "--expires-at", "never"))
    pulls(200)

    # the project's own list, once the project stops reusing the system's
    ok(srv.cli("allowlist", "set", "--project", proj, *crit))
    pulls(200)
    ok(srv.cli("project", "set", proj, "--reuse-sys-allowlist", "off"))
    pulls(200)
    ok(srv.cli("allowlist", "remove", "--project", proj, CVE))
    assert CVE in policy_error(pulls(412))
    ok(srv.cli("allowlist", "add", "--project", proj, CVE))
    pulls(200)
    # a lower threshold: the highs block now
    ok(srv.cli("project", "set", proj, "--severity", "low"))
    assert "severity of \"Low\"" in policy_error(pulls(412))
    ok(srv.cli("project", "set", proj, "--prevent-vul", "off"))
    pulls(200)
    # and a real client sees the same
    ok(srv.cli("project", "set", proj, "--prevent-vul", "on", "--severity", "critical"))
    ok(srv.cli("allowlist", "remove", "--project", proj, CVE))
    p = skopeo.copy(f"docker://{srv.host}/{repo}:1", f"oci:{srv.data_dir}-out:x", check=False)
    assert p.returncode != 0 and CVE in p.stderr, p.stderr
