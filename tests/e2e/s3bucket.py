"""The S3 store of the tests (a throwaway radosgw started by tests/run.sh with
scripts/ceph.sh): its settings from WHARF_S3_TEST_*, the environment that points a
wharf at it (under a key prefix of the test's own), and a look at the bucket itself
with curl --aws-sigv4 (what wharf left there). Shared by test_s3_storage.py and the S3
variant of test_nodes.py.
"""

import subprocess
import urllib.parse
import xml.etree.ElementTree as ET

import os

S3_VARS = ("ENDPOINT", "BUCKET", "REGION", "ACCESS_KEY", "SECRET_KEY", "PATH_STYLE")
S3 = {k: os.environ.get(f"WHARF_S3_TEST_{k}", "") for k in S3_VARS}
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def s3_env(prefix: str, **over) -> dict:
    """The environment of a wharf keeping its blobs and uploads under `prefix`."""
    env = {
        "WHARF_STORAGE_DRIVER": "s3",
        "WHARF_S3_ENDPOINT": S3["ENDPOINT"],
        "WHARF_S3_BUCKET": S3["BUCKET"],
        "WHARF_S3_REGION": S3["REGION"] or "us-east-1",
        "WHARF_S3_ACCESS_KEY": S3["ACCESS_KEY"],
        "WHARF_S3_SECRET_KEY": S3["SECRET_KEY"],
        "WHARF_S3_PATH_STYLE": S3["PATH_STYLE"] or "true",
        "WHARF_S3_PREFIX": prefix,
    }
    env.update(over)
    return env


def s3_get(query: dict) -> ET.Element:
    """A signed GET of the bucket (canonical query: sorted, encoded, `k=`)."""
    q = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                 for k, v in sorted(query.items()))
    url = f"{S3['ENDPOINT']}/{S3['BUCKET']}?{q}"
    p = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--aws-sigv4",
         f"aws:amz:{S3['REGION'] or 'us-east-1'}:s3",
         "--user", f"{S3['ACCESS_KEY']}:{S3['SECRET_KEY']}",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", url],
        capture_output=True, timeout=60)
    assert p.returncode == 0, (url, p.stdout, p.stderr)
    return ET.fromstring(p.stdout)


def s3_put(key: str, data: bytes):
    """A signed PUT of one object (the key below the bucket, prefix included)."""
    p = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--aws-sigv4",
         f"aws:amz:{S3['REGION'] or 'us-east-1'}:s3",
         "--user", f"{S3['ACCESS_KEY']}:{S3['SECRET_KEY']}",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-X", "PUT", "--data-binary", "@-",
         f"{S3['ENDPOINT']}/{S3['BUCKET']}/{urllib.parse.quote(key)}"],
        input=data, capture_output=True, timeout=60)
    assert p.returncode == 0, (key, p.stdout, p.stderr)


def s3_keys_page(prefix: str) -> list:
    doc = s3_get({"list-type": "2", "prefix": prefix})
    return [c.findtext(f"{NS}Key") for c in doc.findall(f"{NS}Contents")]


def s3_keys(prefix: str) -> dict:
    """Key -> size of every object under `prefix`."""
    doc = s3_get({"list-type": "2", "prefix": prefix})
    assert doc.findtext(f"{NS}IsTruncated") != "true"
    return {c.findtext(f"{NS}Key"): int(c.findtext(f"{NS}Size"))
            for c in doc.findall(f"{NS}Contents")}


def s3_multipart(prefix: str) -> list:
    """Keys of the multipart uploads in progress under `prefix`."""
    doc = s3_get({"prefix": prefix, "uploads": ""})
    return [u.findtext(f"{NS}Key") for u in doc.findall(f"{NS}Upload")]


def blob_key(prefix: str, digest: str) -> str:
    hexd = digest.split(":", 1)[1]
    return f"{prefix}blobs/sha256/{hexd[:2]}/{hexd}"


def assert_nothing_staged(prefix: str):
    assert s3_keys(prefix + "uploads/") == {}
    assert s3_multipart(prefix + "uploads/") == []


def s3_delete(key: str, upload_id: str = None):
    """A signed DELETE of an object, or the abort of a multipart upload of it."""
    url = f"{S3['ENDPOINT']}/{S3['BUCKET']}/{urllib.parse.quote(key)}"
    if upload_id is not None:
        url += "?uploadId=" + urllib.parse.quote(upload_id, safe="-_.~")
    subprocess.run(["curl", "-sS", "-X", "DELETE", "--aws-sigv4",
                    f"aws:amz:{S3['REGION'] or 'us-east-1'}:s3",
                    "--user", f"{S3['ACCESS_KEY']}:{S3['SECRET_KEY']}",
                    "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", url],
                   capture_output=True, timeout=60)


def s3_empty(prefix: str):
    """Removes every object and multipart upload under `prefix` (radosgw keeps its data
    in RAM)."""
    for _ in range(10):  # pages of 1000
        keys = s3_keys_page(prefix)
        for k in keys:
            s3_delete(k)
        if len(keys) < 1000:
            break
    doc = s3_get({"prefix": prefix, "uploads": ""})
    for u in doc.findall(f"{NS}Upload"):
        s3_delete(u.findtext(f"{NS}Key"), u.findtext(f"{NS}UploadId"))
