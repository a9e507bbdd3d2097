"""GET /metrics: Prometheus' text format (version 0.0.4), read by a strict
parser written here, and counters that move by exactly what the test did.

The test's requests and its scrapes go through one keep-alive connection:
the server counts a request when it completes, and it completes a request
on a connection before it reads the next one there, so a scrape sees every
request before it (the scrapes before it too: a GET 2xx each, their bodies
in the bytes out) and nothing of itself.
"""

import hashlib
import math
import re
import subprocess

import pytest
import requests

from apiclient import Api, enc_repo
from conftest import free_port, wait_until
from ocilayout import make_image
from regclient import ADMIN_PASSWORD, describe

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*,?)?\}})? (\S+)(?: (-?\d+))?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


def parse_value(text: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text), f"bad value {text!r}"
    return float(text)


def parse(text: str) -> dict:
    """Parses an exposition strictly: {(name, frozenset(labels)): value}.

    Checks: the text ends in a newline; every line is a HELP, a TYPE or a
    sample; one HELP and one TYPE per family, before its samples; a family's
    samples are together; no series twice; counters end in _total and are
    not negative; a histogram's buckets are cumulative, ascending in `le`,
    end in +Inf, and +Inf equals _count; _sum and _count present.
    """
    assert text.endswith("\n"), "the exposition must end with a newline"
    out, help_seen, types, done = {}, set(), {}, set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        assert line, f"empty {where}"
        if line.startswith("#"):
            m = re.fullmatch(rf"# (HELP|TYPE) ({NAME}) (.*)", line)
            assert m, f"malformed comment {where}"
            kind, name, rest = m.groups()
            if kind == "HELP":
                assert name not in help_seen, f"second HELP {where}"
                assert rest.strip(), f"empty HELP {where}"
                help_seen.add(name)
            else:
                assert name not in types, f"second TYPE {where}"
                assert rest in TYPES, f"unknown type {where}"
                assert name not in done, f"TYPE after the samples of {name}: {where}"
                types[name] = rest
            if current and current != name:
                done.add(current)
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, f"malformed sample {where}"
        name, value = m.group(1), parse_value(m.group(7))
        labels = dict(re.findall(LABEL, m.group(2) or ""))
        assert len(labels) == len(re.findall(LABEL, m.group(2) or "")), f"label twice {where}"
        family = name
        for fam, t in types.items():
            if any(name == fam + s for s in SUFFIXES.get(t, ())):
                family = fam
        assert family in types, f"sample without a TYPE {where}"
        assert family == current, f"sample away from its family {where}"
        assert family not in done, f"family {family} split {where}"
        key = (name, frozenset(labels.items()))
        assert key not in out, f"series twice {where}"
        if types[family] == "counter":
            assert name.endswith("_total"), f"counter not named *_total {where}"
            assert value >= 0 and math.isfinite(value), where
        out[key] = value
    for fam, t in types.items():
        if t != "histogram":
            continue
        groups = {}
        for (name, labels), v in out.items():
            if name == fam + "_bucket":
                rest = frozenset(kv for kv in labels if kv[0] != "le")
                le = dict(labels)["le"]
                groups.setdefault(rest, []).append((parse_value(le), v))
        assert groups, f"histogram {fam} without buckets"
        for rest, buckets in groups.items():
            assert [b for b, _ in buckets] == sorted(b for b, _ in buckets), fam
            assert buckets[-1][0] == math.inf, f"{fam}: no +Inf bucket"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{fam}: buckets not cumulative: {counts}"
            assert out[(fam + "_count", rest)] == counts[-1], f"{fam}: +Inf != _count"
            assert (fam + "_sum", rest) in out, f"{fam}: no _sum"
    return out


def val(m: dict, name: str, **labels) -> float:
    return m[(name, frozenset(labels.items()))]


class Scraper:
    def __init__(self, url, session=None):
        self.url = url
        self.session = session or requests.Session()
        self.last_len = 0

    def __call__(self) -> dict:
        r = self.session.get(self.url, timeout=30)
        assert r.status_code == 200, describe(r)
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        self.last_len = len(r.content)
        return parse(r.text)


def test_the_parser_refuses_what_prometheus_would():
    ok = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n"
    assert parse(ok) == {("a_total", frozenset()): 1.0}
    for bad in (ok[:-1], ok + "a_total 2\n", ok.replace("a_total 1", "a_total one"),
                ok.replace("a_total 1", "a_total{x=\"1} 1"), "b 1\n",
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\n"
                "h_count 1\n",
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 2\n"):
        with pytest.raises(AssertionError):
            parse(bad)


def test_metrics_format_and_exact_counts(servers):
    srv = servers.new(env={"WHARF_SCAN_WORKERS": "1",
                           # the first scan fails at once, the second is held Running
                           "WHARF_FAILPOINTS": "scan.run=1:EIO,scan.hold=2+:EIO"})
    s = requests.Session()
    s.auth = ("admin", ADMIN_PASSWORD)
    scrape = Scraper(srv.url + "/metrics", s)
    reg = srv.registry()
    api = Api(srv.url, ("admin", ADMIN_PASSWORD))
    imgs = [make_image(layers=1) for _ in range(3)]
    for i, img in enumerate(imgs):
        reg.push_image("library/m", img, f"t{i}")

    a = scrape()
    body_a = scrape.last_len
    for name in ("wharf_http_requests_total", "wharf_http_request_duration_seconds_count"):
        assert any(k[0] == name for k in a), name
    assert val(a, "wharf_http_open_connections") >= 1
    assert val(a, "wharf_http_requests_in_flight") >= 1  # the scrape itself

    # what this test does between scrape a and scrape b, on the same connection
    heads_ok, heads_missing, got_bytes = 3, 2, 0
    for _ in range(heads_ok):
        r = s.head(f"{srv.url}/v2/library/m/manifests/t0")
        assert r.status_code == 200, describe(r)
    for _ in range(heads_missing):
        assert s.head(f"{srv.url}/v2/library/m/manifests/nope").status_code == 404
    r = s.get(f"{srv.url}/v2/library/m/blobs/{imgs[1].layers[0]}")
    assert r.status_code == 200
    got_bytes += len(r.content)
    r = s.get(f"{srv.url}/v2/library/m/manifests/t1",
              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 200
    got_bytes += len(r.content)
    blob = b"x" * 12345
    r = s.post(f"{srv.url}/v2/library/m/blobs/uploads/")
    assert r.status_code == 202, describe(r)
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else srv.url + loc
    got_bytes += len(r.content)
    r = s.patch(loc, data=blob[:5000], headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, describe(r)
    got_bytes += len(r.content)
    mid = scrape()  # one session open, not finished
    mid_len = scrape.last_len
    assert val(mid, "wharf_registry_uploads_in_progress") == 1
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else srv.url + loc
    r = s.put(loc, params={"digest": "sha256:" + hashlib.sha256(blob).hexdigest()},
              data=blob[5000:], headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, describe(r)
    got_bytes += len(r.content)
    # failed logins: one wrong password, one unknown user
    for auth in (("admin", "wrong-Passw0rd"), ("nobody-here", "x-Passw0rd-1")):
        r = s.get(f"{srv.url}/api/v2.0/users/current", auth=auth, timeout=30)
        assert r.status_code == 401, describe(r)
        got_bytes += len(r.content)
    r = s.delete(f"{srv.url}/v2/library/m/manifests/nope")
    assert r.status_code == 404, describe(r)
    got_bytes += len(r.content)

    b = scrape()

    def delta(name, **labels):
        return val(b, name, **labels) - val(a, name, **labels)

    assert delta("wharf_http_requests_total", method="HEAD", code="2xx") == heads_ok
    assert delta("wharf_http_requests_total", method="HEAD", code="4xx") == heads_missing
    assert delta("wharf_http_request_duration_seconds_count", method="HEAD") == 5
    assert delta("wharf_http_requests_total", method="GET", code="2xx") == 2 + 2  # + 2 scrapes
    assert delta("wharf_http_requests_total", method="GET", code="4xx") == 2  # the logins
    assert delta("wharf_http_requests_total", method="POST", code="2xx") == 1
    assert delta("wharf_http_requests_total", method="PATCH", code="2xx") == 1
    assert delta("wharf_http_requests_total", method="PUT", code="2xx") == 1
    assert delta("wharf_http_requests_total", method="DELETE", code="4xx") == 1
    for m in ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OTHER"):
        assert delta("wharf_http_requests_total", method=m, code="5xx") == 0
    assert delta("wharf_http_request_bytes_total") == len(blob)
    assert delta("wharf_http_response_bytes_total") == body_a + mid_len + got_bytes
    assert delta("wharf_auth_failed_logins_total") == 2
    # the two failed logins were hashed (an unknown name costs a hash too); the admin's
    # requests were verified before scrape a and come from the cache since
    assert delta("wharf_auth_password_checks_total") == 2
    assert delta("wharf_auth_token_signature_checks_total") == 0  # Basic on /v2/ too
    assert delta("wharf_db_failures_total") == 0
    assert val(b, "wharf_registry_uploads_in_progress") == 0
    assert delta("wharf_http_request_duration_seconds_sum", method="HEAD") > 0

    # scans: the first fails at once (counted with its duration), the second is held
    # Running, the third waits in the queue
    base = f"/projects/library/repositories/{enc_repo('m')}/artifacts"
    api.ok(api.post(f"{base}/{imgs[0].manifest_digest}/scan"), 202)
    wait_until(lambda: val(scrape(), "wharf_scans_total", result="error") == 1, 30,
               "the failed scan to be counted")
    api.ok(api.post(f"{base}/{imgs[1].manifest_digest}/scan"), 202)
    wait_until(lambda: val(scrape(), "wharf_scans_running") == 1, 30, "a scan to run")
    api.ok(api.post(f"{base}/{imgs[2].manifest_digest}/scan"), 202)
    c = scrape()
    assert val(c, "wharf_scan_queue_depth") == 1
    assert val(c, "wharf_scans_running") == 1
    assert val(c, "wharf_scan_duration_seconds_count") == 1
    assert val(c, "wharf_scans_total", result="success") == 0


def test_credential_checks_are_remembered(servers):
    """A password is hashed, and a token's signature verified, once for a
    client that sends them again and again: the counters of the checks that
    missed the caches move by one each."""
    srv = servers.new()
    s = requests.Session()
    s.auth = ("admin", ADMIN_PASSWORD)
    scrape = Scraper(srv.url + "/metrics", s)
    api = Api(srv.url, ("admin", ADMIN_PASSWORD))
    api.create_user("metrics-user", password="Metrics-Passw0rd")
    reg = srv.registry()
    reg.push_image("library/tokens", make_image(layers=1), "v1")
    a = scrape()
    for _ in range(5):
        r = requests.get(f"{srv.url}/api/v2.0/users/current",
                         auth=("metrics-user", "Metrics-Passw0rd"), timeout=30)
        assert r.status_code == 200, describe(r)
    r = requests.get(f"{srv.url}/service/token",
                     params={"service": "wharf", "scope": "repository:library/tokens:pull"},
                     auth=("admin", ADMIN_PASSWORD), timeout=30)
    assert r.status_code == 200, describe(r)
    tok = r.json()["token"]
    for _ in range(5):
        r = requests.head(f"{srv.url}/v2/library/tokens/manifests/v1",
                          headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        assert r.status_code == 200, describe(r)
    b = scrape()
    assert val(b, "wharf_auth_password_checks_total") - val(a, "wharf_auth_password_checks_total") == 1
    assert (val(b, "wharf_auth_token_signature_checks_total")
            - val(a, "wharf_auth_token_signature_checks_total")) == 1


def test_metrics_methods_paths_and_switches(servers):
    srv = servers.new()
    r = requests.post(srv.url + "/metrics", timeout=30)
    assert r.status_code == 405 and r.headers.get("Allow") == "GET, HEAD", describe(r)
    assert r.json()["errors"][0]["code"] == "METHOD_NOT_ALLOWED"
    r = requests.head(srv.url + "/metrics", timeout=30)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) > 1000
    assert requests.get(srv.url + "/metricsx", timeout=30).status_code == 404
    # anonymous: no credentials needed
    assert requests.get(srv.url + "/metrics", timeout=30).status_code == 200

    off = servers.new(env={"WHARF_METRICS": "false"})
    r = requests.get(off.url + "/metrics", timeout=30)
    assert r.status_code == 404, describe(r)

    port = free_port()
    own = servers.new(env={"WHARF_METRICS_LISTEN": f"127.0.0.1:{port}"})
    assert requests.get(own.url + "/metrics", timeout=30).status_code == 404
    scrape = Scraper(f"http://127.0.0.1:{port}/metrics")
    a = scrape()
    r = own.registry().get("/v2/")
    assert r.status_code == 200
    # the registry's request is counted (when it completes, which another connection
    # may see a moment later), and so are the scrapes on the metrics listener
    scrapes = [1]  # scrape a, counted before the next one

    def registry_requests():
        m = scrape()
        d = (val(m, "wharf_http_requests_total", method="GET", code="2xx")
             - val(a, "wharf_http_requests_total", method="GET", code="2xx") - scrapes[0])
        scrapes[0] += 1
        assert d in (0, 1), d
        return d == 1

    wait_until(registry_requests, 10, "the registry's GET to be counted")
    # the registry's API is not on the metrics listener
    assert requests.get(f"http://127.0.0.1:{port}/v2/", timeout=30).status_code == 404


@pytest.mark.parametrize("value,why", [("localhost:9100", "numeric"), ("127.0.0.1", "port"),
                                       ("::1:9100", "brackets")])
def test_metrics_listen_is_checked(wharf_bin, tmp_path, value, why):
    env = {"WHARF_METRICS_LISTEN": value, "WHARF_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([wharf_bin, "config", "check"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1 and "metrics.listen" in p.stderr and why in p.stderr, p.stderr


def test_database_failures_are_counted(servers):
    """Every database write failing (WHARF_FAILPOINTS db.write, armed on a registry made
    beforehand): each upload start is one failed statement and one 5xx."""
    first = servers.new()
    first.stop()
    srv = servers.new(data_dir=first.data_dir, env={"WHARF_FAILPOINTS": "db.write=1+:EIO"})
    s = requests.Session()
    s.auth = ("admin", ADMIN_PASSWORD)
    scrape = Scraper(srv.url + "/metrics", s)
    a = scrape()
    for _ in range(3):
        r = s.post(f"{srv.url}/v2/library/x/blobs/uploads/")
        assert r.status_code == 500, describe(r)
    b = scrape()
    assert val(b, "wharf_db_failures_total") - val(a, "wharf_db_failures_total") == 3
    assert (val(b, "wharf_http_requests_total", method="POST", code="5xx")
            - val(a, "wharf_http_requests_total", method="POST", code="5xx")) == 3
    assert val(b, "wharf_registry_uploads_in_progress") == 0
