"""A small OCI distribution client over `requests`, with the checks every
response of the registry must pass (API version header, error body shape).
"""

import base64
import http.client
import json

import requests

from ocilayout import MT_MANIFEST, sha256_digest

API_VERSION_HEADER = "Docker-Distribution-API-Version"
TIMEOUT = 60

# The administrator every test server is started with (WHARF_ADMIN_PASSWORD
# at first start): pushes need credentials.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "E2e-Admin-Passw0rd"
CREDS = f"{ADMIN_USER}:{ADMIN_PASSWORD}"


def basic_auth(user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> str:
    """The value of an Authorization header for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

# Error codes of the OCI Distribution Spec v1.1 ("Error codes" table).
OCI_ERROR_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOO_MANY_REQUESTS",
    # Not in the OCI table, but the distribution registry's answer to a bad
    # `n`, and documented by wharf (docs/api.md).
    "PAGINATION_NUMBER_INVALID",
}


def raw_request(server, method, path, body=None, headers=None, auth=True):
    """Send `path` exactly as given (requests would resolve `..` itself)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = {"Authorization": basic_auth()} if auth else {}
        hdrs.update(headers or {})
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()



def describe(r: requests.Response) -> str:
    """One line naming a request and its answer, for assertion messages."""
    body = r.content[:400]
    return f"{r.request.method} {r.request.url} -> {r.status_code} {dict(r.headers)} {body!r}"


def check_api_version(r: requests.Response):
    assert r.headers.get(API_VERSION_HEADER) == "registry/2.0", (
        f"missing or wrong {API_VERSION_HEADER}: " + describe(r)
    )


def check_error_body(r: requests.Response) -> list:
    """Assert the body is an OCI error document; return its list of errors."""
    ctype = r.headers.get("Content-Type", "")
    assert "json" in ctype, f"error body is not JSON (Content-Type {ctype!r}): " + describe(r)
    try:
        doc = json.loads(r.content)
    except ValueError as e:
        raise AssertionError(f"error body does not parse as JSON ({e}): " + describe(r))
    assert isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"], (
        "error body has no non-empty 'errors' list: " + describe(r)
    )
    for e in doc["errors"]:
        assert isinstance(e, dict), describe(r)
        assert isinstance(e.get("code"), str) and e["code"] in OCI_ERROR_CODES, (
            f"unknown error code {e.get('code')!r}: " + describe(r)
        )
        assert isinstance(e.get("message", ""), str), describe(r)
    return doc["errors"]


def expect_error(r: requests.Response, status: int, code: str) -> dict:
    """Assert an error answer with `status` whose errors include `code`.

    Returns that error entry so a test can look at its message.
    """
    assert r.status_code == status, f"expected {status} {code}: " + describe(r)
    check_api_version(r)
    errors = check_error_body(r)
    for e in errors:
        if e["code"] == code:
            return e
    raise AssertionError(f"expected error code {code}: " + describe(r))


class Registry:
    """Requests against one running server; paths are relative to its root."""

    def __init__(self, base: str, auth=(ADMIN_USER, ADMIN_PASSWORD)):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth  # None: anonymous

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        return self.base + path

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("allow_redirects", False)
        r = self.session.request(method, self.url(path), **kw)
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- push helpers (each asserts success, so a test reads as its scenario) --

    def start_upload(self, repo: str) -> str:
        r = self.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, describe(r)
        check_api_version(r)
        loc = r.headers.get("Location")
        assert loc, "202 without Location: " + describe(r)
        return loc

    def push_blob(self, repo: str, data: bytes, digest: str = None) -> str:
        """Upload a blob with POST then one PUT (the spec's POST-PUT flow)."""
        digest = digest or sha256_digest(data)
        loc = self.start_upload(repo)
        r = self.put(
            loc,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 201, describe(r)
        return digest

    def push_manifest(self, repo: str, ref: str, body: bytes, media_type: str = MT_MANIFEST):
        return self.put(
            f"/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": media_type}
        )

    def push_image(self, repo: str, img, ref: str = None) -> str:
        """Push an ocilayout.Image blob by blob; return its manifest digest."""
        for data in img.blobs.values():
            self.push_blob(repo, data)
        r = self.push_manifest(repo, ref or img.manifest_digest, img.manifest)
        assert r.status_code == 201, describe(r)
        return img.manifest_digest

    def get_manifest(self, repo: str, ref: str, accept=None) -> requests.Response:
        accept = accept or ", ".join(
            [
                MT_MANIFEST,
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ]
        )
        return self.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
