"""wharf's vulnerability database routes (docs/api.md, "Vulnerability database"):
GET /vulndb/status reports what `wharf vulndb status` reports (sources, record
counts, last update), the feeds an update reads (credentials in a feed URL
left out) and the updater's state; POST /vulndb/update runs the update now in
the background, even with scan.db_update_interval 0, and its end (Success with
the counts, or Error with the reason) shows in the status; a second request
while one runs is 409; each request is audited; users and anonymous callers
get 403 and 401 and start nothing.
"""
import re

from apiclient import Api, describe, expect_error
from conftest import wait_until
from regclient import ADMIN_PASSWORD, ADMIN_USER
from test_rematch import feed_server  # noqa: F401 (fixture)

TIMEOUT = 60.0


def status(api):
    r = api.get("/vulndb/status")
    assert r.status_code == 200, describe(r)
    return r.json()


def finished(api):
    s = status(api)
    return s if s["update"]["status"] in ("Success", "Error") else None


def test_vulndb_status_and_update_now(servers, feed_server, unique):  # noqa: F811
    feeds = [f"{feed_server}/debian/tracker-bookworm-fixture.json",
             f"{feed_server}/nvd/CVE-2023-45853.json"]
    shown = list(feeds)
    # a feed URL's user:password never leaves the server
    feeds[1] = feeds[1].replace("http://", "http://reader:S3cret-feed@")
    srv = servers.new(env={"WHARF_SCAN_DB_UPDATE_INTERVAL": "0",
                           "WHARF_VULNDB_FEEDS": " ".join(feeds)})
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    s = status(api)
    assert s["present"] is False and s["updated_at"] is None and s["sources"] == []
    assert s["advisories"] == 0 and s["nvd_records"] == 0
    assert s["feeds"] == shown and s["feeds_from"] == "WHARF_VULNDB_FEEDS"
    assert "S3cret-feed" not in api.get("/vulndb/status").text
    assert s["update"] == {"interval_seconds": 0, "status": "", "trigger": "", "start_time": None,
                           "end_time": None, "message": "", "next_scheduled_time": None}

    # who may: a user and anonymous callers are refused and start nothing
    api.create_user(unique, password="User-Passw0rd")
    user = Api(srv.url, auth=(unique, "User-Passw0rd"))
    anon = Api(srv.url)
    for who, code in ((user, 403), (anon, 401)):
        assert who.get("/vulndb/status").status_code == code
        assert who.post("/vulndb/update").status_code == code
    assert status(api)["update"]["status"] == ""

    r = api.post("/vulndb/update")
    assert r.status_code == 202, describe(r)
    again = api.post("/vulndb/update")
    if again.status_code != 202:  # the first one may already be over
        expect_error(again, 409, "CONFLICT")
    s = wait_until(lambda: finished(api), TIMEOUT, "the update to end")
    if again.status_code == 202:  # the second one ran after it
        s = wait_until(lambda: finished(api), TIMEOUT, "the second update to end")
    u = s["update"]
    assert u["status"] == "Success" and u["trigger"] == "Manual", s
    assert u["message"] == f"2 files, {s['advisories']} advisories", s
    assert u["start_time"] <= u["end_time"] and u["next_scheduled_time"] is None
    assert s["present"] is True and s["advisories"] > 0 and s["nvd_records"] == 1
    assert [x["name"] for x in s["sources"]] == ["debian-tracker", "nvd"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["updated_at"])
    # the same numbers as the command line's status
    p = srv.cli("vulndb", "status")
    assert p.returncode == 0, p.stderr
    assert f"advisories: {s['advisories']}\n" in p.stdout
    assert f"updated:    {s['updated_at']}\n" in p.stdout
    for x in s["sources"]:
        assert re.search(rf"{x['name']}\s+{x['files']} files\s+{x['records']} records\s+imported "
                         rf"{x['imported_at']}", p.stdout), p.stdout
    assert "vulndb: manual update done: 2 files" in srv.log_text()
    entries = [a for a in api.audit(operation="update") if a["resource_type"] == "vulndb"]
    assert entries and entries[0]["username"] == ADMIN_USER
    assert entries[0]["resource"] == "vulnerability database"


def test_vulndb_update_failure_is_shown(servers, unique):
    srv = servers.new(env={"WHARF_SCAN_DB_UPDATE_INTERVAL": "3600",
                           "WHARF_VULNDB_FEEDS": "http://127.0.0.1:9/feed.json"})
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    # the background update at the start (no database yet) fails first
    s = wait_until(lambda: finished(api), TIMEOUT, "the background update to end")
    assert s["update"]["trigger"] == "Schedule" and s["update"]["status"] == "Error", s
    assert s["update"]["interval_seconds"] == 3600 and s["update"]["next_scheduled_time"]
    r = api.post("/vulndb/update")
    assert r.status_code == 202, describe(r)
    s = wait_until(lambda: (lambda x: x if x["update"]["trigger"] == "Manual"
                            and x["update"]["status"] == "Error" else None)(status(api)),
                   TIMEOUT, "the manual update to fail")
    assert "127.0.0.1:9" in s["update"]["message"], s
    assert s["present"] is False
