"""The OCI distribution-spec conformance suite (v1.1.0), replayed in Python.

The official suite (opencontainers/distribution-spec, conformance/, Go and
ginkgo) runs four workflows one after the other in one repository: pull,
push, content discovery and content management, each with its own setup and
teardown, with the data its setup.go builds (configs with a random author,
manifests whose descriptors carry `data` and an unknown field, an image
manifest without layers and without `mediaType`, artifacts with a `subject`,
an index with a `subject`, a referrer of a manifest that was never pushed).
`test_suite_workflows` sends the same requests in the same order and checks
each spec's expectation; where the suite accepts several answers and wharf
gives one, the one wharf gives is asserted. Run it the way the suite is run
against wharf (docs/testing.md): OCI_NAMESPACE in a public project,
OCI_CROSSMOUNT_NAMESPACE in a project, OCI_AUTOMATIC_CROSSMOUNT=1.

Then the two things the suite found or asks for beyond it: a reference that
is neither a tag nor a digest names no manifest (404 MANIFEST_UNKNOWN, as the
CNCF distribution registry answers), and OCI 1.1's automatic cross-mount
(`?mount=` without `from`, or with a `from` the caller cannot read), which
must never hand out a blob held only where the caller cannot read.
"""

import base64
import gzip
import io
import json
import os
import random
import tarfile
from urllib.parse import urljoin, urlsplit

import pytest

from apiclient import Api
from ocilayout import MT_CONFIG, MT_EMPTY, MT_INDEX, MT_LAYER_GZIP, MT_MANIFEST, sha256_digest
from regclient import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    OCI_ERROR_CODES,
    Registry,
    check_error_body,
    describe,
    expect_error,
)
from test_auth import bearer, token

OCTET = "application/octet-stream"
INVALID_MANIFEST_NAME = ".INVALID_MANIFEST_NAME"  # the suite's nonexistentManifest
TEST_TAG = "tagtest0"
EMPTY_LAYER_TAG = "emptylayer"
ANNOTATION_KEY = "org.opencontainers.conformance.test"
TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
TYPE_INDEX = "application/vnd.food.stand"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def go_json(obj) -> bytes:
    """JSON the way the suite writes it (encoding/json MarshalIndent with a tab)."""
    return json.dumps(obj, indent="\t").encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def desc(media_type: str, content: bytes, **extra) -> dict:
    """A descriptor as the suite's Go struct serialises it: the unknown field
    `newUnspecifiedField` is always present (null when empty)."""
    d = {"mediaType": media_type, "digest": sha256_digest(content), "size": len(content)}
    d.update(extra)
    d.setdefault("newUnspecifiedField", None)
    return d


class SuiteData:
    """The suite's test data (setup.go), built afresh for each run."""

    def __init__(self):
        rng = random.Random(os.urandom(16))
        # one config and one manifest per workflow; the suite makes 16, uses 0..4
        self.configs = []
        for _ in range(5):
            author = "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")
                             for _ in range(16))
            self.configs.append(go_json({"author": author, "architecture": "amd64", "os": "linux",
                                         "rootfs": {"type": "layers", "diff_ids": []}}))
        # a small tar.gz holding one text file
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tf:
            text = b"you bothered to find out what was in here. Congratulations!\n"
            ti = tarfile.TarInfo("test.txt")
            ti.size = len(text)
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(text))
        self.layer = gzip.compress(raw.getvalue(), mtime=0)
        self.layer_digest = sha256_digest(self.layer)
        self.manifests = []
        for cfg in self.configs:
            self.manifests.append(go_json({
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": desc(MT_CONFIG, cfg, data=b64(cfg),
                               newUnspecifiedField=b64(b"hello world")),
                "layers": [desc(MT_LAYER_GZIP, self.layer)],
            }))
        # no layers and no mediaType field
        self.empty_layer_manifest = go_json({
            "schemaVersion": 2,
            "config": desc(MT_CONFIG, self.configs[1], data=b64(self.configs[1]),
                           newUnspecifiedField=b64(b"hello world")),
            "layers": [],
        })
        self.blob_a = rng.randbytes(42)
        self.blob_b = rng.randbytes(42)
        self.chunk1, self.chunk2 = self.blob_b[:22], self.blob_b[22:]
        self.dummy_digest = sha256_digest(b"hello world")

        # referrers: artifacts whose subject is manifests[4] (pushed after some of them)
        self.empty_json = b"{}"
        empty = desc(MT_EMPTY, self.empty_json)
        self.ref_blob_a = b"NHL Peanut Butter on my NHL bagel"
        self.ref_blob_b = b"NBA Strawberry Jam on my NBA croissant"
        subject4 = desc(MT_MANIFEST, self.manifests[4])
        subject3 = desc(MT_MANIFEST, self.manifests[3])
        self.annotations = {}

        def artifact(name, obj, note=None):
            if note:
                obj["annotations"] = {ANNOTATION_KEY: note}
            data = go_json(obj)
            if note:
                self.annotations[sha256_digest(data)] = note
            setattr(self, name, data)

        artifact("ref_a_config", {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                  "config": desc(TYPE_A, self.ref_blob_a), "layers": [empty],
                                  "subject": subject4}, "test config a")
        artifact("ref_b_config", {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                  "config": desc(TYPE_B, self.ref_blob_b), "layers": [empty],
                                  "subject": subject4}, "test config b")
        artifact("ref_a_layer", {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                 "artifactType": TYPE_A, "config": empty,
                                 "layers": [desc(TYPE_A, self.ref_blob_a)],
                                 "subject": subject4}, "test layer a")
        artifact("ref_b_layer", {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                 "artifactType": TYPE_B, "config": empty,
                                 "layers": [desc(TYPE_B, self.ref_blob_b)],
                                 "subject": subject4}, "test layer b")
        # like B, but its subject (manifests[3]) is not in the repository
        artifact("ref_c_layer", {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                 "artifactType": TYPE_B, "config": empty,
                                 "layers": [desc(TYPE_B, self.ref_blob_b)],
                                 "subject": subject3})
        artifact("ref_index", {"schemaVersion": 2, "mediaType": MT_INDEX,
                               "artifactType": TYPE_INDEX,
                               "manifests": [desc(MT_MANIFEST, self.ref_a_config),
                                             desc(MT_MANIFEST, self.ref_a_layer)],
                               "subject": subject4}, "test index")


def d(data: bytes) -> str:
    return sha256_digest(data)


class Suite:
    """One run of the workflows against `registry` in repository `ns`."""

    def __init__(self, registry: Registry, ns: str, crossmount_ns: str,
                 manifests_first: bool = True):
        self.reg = registry
        self.ns = ns
        self.xns = crossmount_ns
        self.manifests_first = manifests_first  # OCI_DELETE_MANIFEST_BEFORE_BLOBS
        self.data = SuiteData()

    # -- requests as the suite's client (reggie) sends them --

    def url(self, r) -> str:
        loc = r.headers.get("Location")
        assert loc, "no Location header: " + describe(r)
        return urljoin(self.reg.base + "/", loc)

    def push_blob(self, data: bytes):
        """POST, then PUT with the whole blob: the suite's setup steps."""
        r = self.reg.post(f"/v2/{self.ns}/blobs/uploads/")
        assert r.status_code == 202, describe(r)
        r = self.reg.put(self.url(r), params={"digest": d(data)}, data=data,
                         headers={"Content-Type": OCTET})
        assert r.status_code == 201, describe(r)

    def put_manifest(self, ref: str, body: bytes, media_type=MT_MANIFEST, repo=None):
        return self.reg.put(f"/v2/{repo or self.ns}/manifests/{ref}", data=body,
                            headers={"Content-Type": media_type})

    def get_manifest(self, method: str, ref: str):
        return self.reg.request(method, f"/v2/{self.ns}/manifests/{ref}",
                                headers={"Accept": MT_MANIFEST})

    def delete(self, kind: str, ref: str):
        return self.reg.delete(f"/v2/{self.ns}/{kind}/{ref}")

    def delete_blob(self, blob: bytes, manifests_left=()):
        """DELETE a blob: 202, or 405 UNSUPPORTED while one of the manifests
        still in the repository uses it (wharf never breaks an image; the
        suite takes 2xx or 405 in either teardown order)."""
        r = self.delete("blobs", d(blob))
        if any(d(blob) in m.decode() for m in manifests_left):
            expect_error(r, 405, "UNSUPPORTED")
        else:
            assert r.status_code == 202, describe(r)

    def teardown(self, manifests, blobs):
        """Deletes by digest in the configured order: each manifest answered
        202, each blob as delete_blob says."""
        if self.manifests_first:
            for m in manifests:
                r = self.delete("manifests", d(m))
                assert r.status_code == 202, describe(r)
        for b in blobs:
            self.delete_blob(b, () if self.manifests_first else manifests)
        if not self.manifests_first:
            for m in manifests:
                r = self.delete("manifests", d(m))
                assert r.status_code == 202, describe(r)

    def tags(self, **params):
        r = self.reg.get(f"/v2/{self.ns}/tags/list", params=params)
        assert r.status_code == 200, describe(r)
        return r, r.json()["tags"]

    def referrers(self, digest: str, **params):
        r = self.reg.get(f"/v2/{self.ns}/referrers/{digest}", params=params)
        assert r.status_code == 200, describe(r)
        assert r.headers.get("Content-Type") == MT_INDEX, describe(r)
        return r, r.json()["manifests"]

    # -- the four workflows --

    def pull(self):
        t = self.data
        # setup
        self.push_blob(t.configs[0])
        self.push_blob(t.configs[1])
        self.push_blob(t.layer)
        r = self.put_manifest(TEST_TAG, t.manifests[0])
        assert r.status_code == 201, describe(r)
        r = self.put_manifest(d(t.manifests[1]), t.manifests[1])
        assert r.status_code == 201, describe(r)
        # pull blobs
        for method in ("HEAD", "GET"):
            r = self.reg.request(method, f"/v2/{self.ns}/blobs/{t.dummy_digest}")
            assert r.status_code == 404, describe(r)
            r = self.reg.request(method, f"/v2/{self.ns}/blobs/{d(t.configs[0])}")
            assert r.status_code == 200, describe(r)
            assert r.headers.get("Docker-Content-Digest") == d(t.configs[0]), describe(r)
        # pull manifests
        for method in ("HEAD", "GET"):
            r = self.get_manifest(method, INVALID_MANIFEST_NAME)
            assert r.status_code == 404, describe(r)
            for ref, want in ((d(t.manifests[0]), t.manifests[0]),
                              (d(t.manifests[1]), t.manifests[1]), (TEST_TAG, t.manifests[0])):
                r = self.get_manifest(method, ref)
                assert r.status_code == 200, describe(r)
                assert r.headers.get("Docker-Content-Digest") == d(want), describe(r)
                if method == "GET":
                    assert r.content == want, describe(r)
        # error codes: a GET by a malformed digest (with a body) is a 400 with an OCI code
        r = self.reg.get(f"/v2/{self.ns}/manifests/sha256:totallywrong", data=b"blablabla",
                         headers={"Content-Type": MT_MANIFEST})
        err = expect_error(r, 400, "DIGEST_INVALID")
        assert err["code"] in OCI_ERROR_CODES
        self.teardown(t.manifests[:2], (t.configs[0], t.configs[1], t.layer))

    def push(self):
        t = self.data
        # blob upload streamed: POST, PATCH without Content-Range, PUT with the digest
        r = self.reg.post(f"/v2/{self.ns}/blobs/uploads/")
        assert r.status_code == 202 and r.headers.get("Location"), describe(r)
        r = self.reg.patch(self.url(r), data=t.blob_a, headers={"Content-Type": OCTET})
        assert r.status_code == 202, describe(r)
        r = self.reg.put(self.url(r), params={"digest": d(t.blob_a)},
                         headers={"Content-Type": OCTET, "Content-Length": "0"})
        assert r.status_code == 201 and r.headers.get("Location"), describe(r)
        # blob upload monolithic
        r = self.reg.get(f"/v2/{self.ns}/blobs/{t.dummy_digest}")
        assert r.status_code == 404, describe(r)
        r = self.reg.post(f"/v2/{self.ns}/blobs/uploads/", params={"digest": d(t.configs[1])},
                          data=t.configs[1], headers={"Content-Type": OCTET})
        assert r.status_code == 201 and r.headers.get("Location"), describe(r)
        r = self.reg.get(f"/v2/{self.ns}/blobs/{d(t.configs[1])}")
        assert r.status_code == 200 and r.content == t.configs[1], describe(r)
        for blob in (t.configs[1], t.layer):
            r = self.reg.post(f"/v2/{self.ns}/blobs/uploads/")
            assert r.status_code == 202, describe(r)
            r = self.reg.put(self.url(r), params={"digest": d(blob)}, data=blob,
                             headers={"Content-Type": OCTET})
            assert r.status_code == 201 and r.headers.get("Location"), describe(r)
            r = self.reg.get(f"/v2/{self.ns}/blobs/{d(blob)}")
            assert r.status_code == 200 and r.content == blob, describe(r)
        # blob upload chunked
        r = self.reg.post(f"/v2/{self.ns}/blobs/uploads/", headers={"Content-Length": "0"})
        assert r.status_code == 202, describe(r)
        assert int(r.headers.get("OCI-Chunk-Min-Length", "0")) <= len(t.chunk1), describe(r)
        r = self.reg.patch(self.url(r), data=t.chunk2,
                           headers={"Content-Type": OCTET, "Content-Range": "22-41"})
        assert r.status_code == 416, "out-of-order chunk: " + describe(r)
        first = self.reg.post(f"/v2/{self.ns}/blobs/uploads/", headers={"Content-Length": "0"})
        assert first.status_code == 202, describe(first)
        r = self.reg.patch(self.url(first), data=t.chunk1,
                           headers={"Content-Type": OCTET, "Content-Range": "0-21"})
        assert r.status_code == 202 and r.headers.get("Range") == "0-21", describe(r)
        r = self.reg.patch(self.url(first), data=t.chunk1,
                           headers={"Content-Type": OCTET, "Content-Range": "0-21"})
        assert r.status_code == 416, "retried chunk: " + describe(r)
        r = self.reg.get(self.url(first))
        assert r.status_code == 204 and r.headers.get("Location"), describe(r)
        assert r.headers.get("Range") == "0-21", describe(r)
        r = self.reg.patch(self.url(r), data=t.chunk2,
                           headers={"Content-Type": OCTET, "Content-Range": "22-41"})
        assert r.status_code == 202 and r.headers.get("Location"), describe(r)
        r = self.reg.put(self.url(r), params={"digest": d(t.blob_b)},
                         headers={"Content-Type": OCTET, "Content-Length": "0"})
        assert r.status_code == 201 and r.headers.get("Location"), describe(r)
        assert self.reg.get(f"/v2/{self.ns}/blobs/{d(t.blob_b)}").content == t.blob_b
        # cross-repository blob mount
        r = self.reg.post(f"/v2/{self.xns}/blobs/uploads/", params={"mount": t.dummy_digest})
        assert r.status_code == 202 and r.headers.get("Location"), describe(r)
        r = self.reg.post(f"/v2/{self.xns}/blobs/uploads/",
                          params={"mount": d(t.blob_a), "from": self.ns})
        assert r.status_code == 201, describe(r)
        assert urlsplit(self.url(r)).path == f"/v2/{self.xns}/blobs/{d(t.blob_a)}", describe(r)
        g = self.reg.get(self.url(r))
        assert g.status_code == 200 and g.content == t.blob_a, describe(g)
        # OCI_AUTOMATIC_CROSSMOUNT=1: a mount without `from` of a known blob
        r = self.reg.post(f"/v2/{self.xns}/blobs/uploads/", params={"mount": d(t.blob_a)})
        assert r.status_code == 201, "automatic cross-mount: " + describe(r)
        # manifest upload
        r = self.get_manifest("GET", INVALID_MANIFEST_NAME)
        assert r.status_code == 404, describe(r)
        for i in range(4):
            r = self.put_manifest(f"test{i}", t.manifests[1])
            assert r.status_code == 201 and r.headers.get("Location"), describe(r)
        r = self.put_manifest(EMPTY_LAYER_TAG, t.empty_layer_manifest)
        assert r.status_code == 201 and r.headers.get("Location"), describe(r)
        r = self.get_manifest("GET", d(t.manifests[1]))
        assert r.status_code == 200 and r.content == t.manifests[1], describe(r)
        self.teardown((t.manifests[1], t.empty_layer_manifest), (t.configs[1], t.layer))

    def discovery(self):
        t = self.data
        s4, s3 = d(t.manifests[4]), d(t.manifests[3])
        # setup
        self.push_blob(t.configs[2])
        self.push_blob(t.layer)
        for i in range(4):
            r = self.put_manifest(f"test{i}", t.manifests[2])
            assert r.status_code == 201, describe(r)
        assert d(t.empty_json) == EMPTY_JSON_DIGEST
        self.push_blob(t.empty_json)
        self.push_blob(t.ref_blob_a)
        for art, media_type in ((t.ref_a_config, MT_MANIFEST), (t.ref_a_layer, MT_MANIFEST),
                                (t.ref_index, MT_INDEX)):
            r = self.put_manifest(d(art), art, media_type)
            assert r.status_code == 201, describe(r)
            assert r.headers.get("OCI-Subject") == s4, describe(r)
        self.push_blob(t.configs[4])
        self.push_blob(t.layer)
        r = self.put_manifest(TEST_TAG, t.manifests[4])
        assert r.status_code == 201, describe(r)
        self.push_blob(t.ref_blob_b)
        for art in (t.ref_b_config, t.ref_b_layer):
            r = self.put_manifest(d(art), art)
            assert r.status_code == 201, describe(r)
            assert r.headers.get("OCI-Subject") == s4, describe(r)
        r = self.put_manifest(d(t.ref_c_layer), t.ref_c_layer)
        assert r.status_code == 201, describe(r)
        assert r.headers.get("OCI-Subject") == s3, describe(r)
        # listing tags
        _, tags = self.tags()
        assert tags == sorted(["test0", "test1", "test2", "test3", TEST_TAG]), tags
        half = len(tags) // 2
        r, page = self.tags(n=half)
        assert page == tags[:half], describe(r)
        assert r.headers.get("Link"), "a partial page without a Link: " + describe(r)
        r, rest = self.tags(n=half, last=page[-1])
        assert rest == tags[half:2 * half], describe(r)
        # listing referrers
        _, refs = self.referrers(t.dummy_digest)
        assert refs == []
        _, refs = self.referrers(s4)
        assert sorted(x["digest"] for x in refs) == sorted(t.annotations), refs
        for x in refs:
            assert x["annotations"] == {ANNOTATION_KEY: t.annotations[x["digest"]]}, x
        r, refs = self.referrers(s4, artifactType=TYPE_A)
        assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)
        assert sorted(x["digest"] for x in refs) == sorted([d(t.ref_a_config),
                                                            d(t.ref_a_layer)]), refs
        for x in refs:
            assert x["artifactType"] == TYPE_A, x
            assert x["annotations"] == {ANNOTATION_KEY: t.annotations[x["digest"]]}, x
        _, refs = self.referrers(s3)
        assert [x["digest"] for x in refs] == [d(t.ref_c_layer)], refs
        # teardown: every reference once (the tag is gone with its manifest by then);
        # the suite takes only 2xx (or 405) for these two blobs, in either order
        def delete_manifests():
            for ref in (d(t.ref_index), d(t.manifests[2]), s4, d(t.ref_a_config),
                        d(t.ref_a_layer), TEST_TAG, d(t.ref_b_config), d(t.ref_b_layer),
                        d(t.ref_c_layer)):
                r = self.delete("manifests", ref)
                if ref == TEST_TAG:
                    expect_error(r, 404, "MANIFEST_UNKNOWN")
                else:
                    assert r.status_code == 202, describe(r)

        def delete_blobs(manifests_left=()):
            for blob in (t.configs[2], t.layer):
                self.delete_blob(blob, manifests_left)

        if self.manifests_first:
            delete_manifests()
            delete_blobs()
        else:
            delete_blobs((t.manifests[2], t.manifests[4]))
            delete_manifests()
        # references teardown: the manifests went above, so these find nothing
        late = (d(t.ref_index), d(t.ref_a_config), d(t.ref_a_layer), s4, d(t.ref_b_config),
                d(t.ref_b_layer))
        if self.manifests_first:
            for ref in late:
                expect_error(self.delete("manifests", ref), 404, "MANIFEST_UNKNOWN")
        for blob in (t.configs[4], t.ref_blob_a, t.ref_blob_b, t.empty_json):
            r = self.delete("blobs", d(blob))
            assert r.status_code == 202, describe(r)
        if not self.manifests_first:
            for ref in late:
                expect_error(self.delete("manifests", ref), 404, "MANIFEST_UNKNOWN")

    def management(self):
        t = self.data
        self.push_blob(t.configs[3])
        self.push_blob(t.layer)
        r = self.put_manifest(TEST_TAG, t.manifests[3])
        assert r.status_code == 201, describe(r)
        _, tags = self.tags()
        assert tags == [TEST_TAG], tags
        # manifest delete: the tag, then the manifest it pointed at
        r = self.delete("manifests", TEST_TAG)
        assert r.status_code == 202, describe(r)
        r = self.delete("manifests", d(t.manifests[3]))
        assert r.status_code == 202, describe(r)
        expect_error(self.get_manifest("GET", d(t.manifests[3])), 404, "MANIFEST_UNKNOWN")
        _, tags = self.tags()
        assert tags == [], tags
        # blob delete
        for blob in (t.configs[3], t.layer):
            r = self.delete("blobs", d(blob))
            assert r.status_code == 202, describe(r)
        expect_error(self.reg.get(f"/v2/{self.ns}/blobs/{d(t.configs[3])}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("manifests_first", [True, False],
                         ids=["manifests-before-blobs", "blobs-before-manifests"])
def test_suite_workflows(registry, unique, manifests_first):
    """The four workflows of the suite, in its order, in one repository, with
    either teardown order (OCI_DELETE_MANIFEST_BEFORE_BLOBS, default 1)."""
    suite = Suite(registry, f"library/{unique}", f"library/{unique}-crossmount",
                  manifests_first)
    suite.pull()
    suite.push()
    suite.discovery()
    suite.management()


# ---------------------------------------------------------------- references


@pytest.mark.parametrize("ref", [INVALID_MANIFEST_NAME, "-leading-dash", "a" * 129, "has+plus"],
                         ids=["suite", "dash", "too-long", "plus"])
def test_invalid_manifest_name_is_unknown(registry, unique, ref):
    """What the suite's three failing specs sent: HEAD and GET of a reference
    that is neither a tag nor a digest. It names no manifest, so the answer
    is 404 MANIFEST_UNKNOWN (the CNCF distribution registry's answer), in a
    repository with content and in one that was never pushed to; a DELETE
    finds nothing either; only a PUT is told the tag is invalid."""
    suite = Suite(registry, f"library/{unique}", "")
    t = suite.data
    suite.push_blob(t.configs[0])
    suite.push_blob(t.layer)
    assert suite.put_manifest(TEST_TAG, t.manifests[0]).status_code == 201
    for repo in (suite.ns, f"library/{unique}-never"):
        for method in ("HEAD", "GET"):
            r = registry.request(method, f"/v2/{repo}/manifests/{ref}",
                                 headers={"Accept": MT_MANIFEST})
            assert r.status_code == 404, describe(r)
            if method == "GET":
                expect_error(r, 404, "MANIFEST_UNKNOWN")
        expect_error(registry.delete(f"/v2/{repo}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
    r = suite.put_manifest(ref, t.manifests[0])
    expect_error(r, 400, "MANIFEST_INVALID")
    assert "tag" in check_error_body(r)[0]["message"], describe(r)
    # the valid tag next to it is untouched
    assert suite.get_manifest("GET", TEST_TAG).content == t.manifests[0]


# ---------------------------------------------------------------- automatic cross-mount


class People:
    """A private project only the administrator (and a guest) can read, a
    private project of the user `bob` (a developer there), and a public
    repository in `library`."""

    PASSWORD = "Mount-e2e-Passw0rd"

    def __init__(self, server, unique):
        self.server = server
        tag = os.urandom(3).hex()
        self.admin = Registry(server.url)
        api = Api(server.url, (ADMIN_USER, ADMIN_PASSWORD))
        self.secret, self.mine = f"mntsecret{tag}", f"mntmine{tag}"
        api.create_project(self.secret)
        api.create_project(self.mine)
        self.bob_name, self.carol_name = f"mntbob{tag}", f"mntcarol{tag}"
        api.create_user(self.bob_name, self.PASSWORD)
        api.create_user(self.carol_name, self.PASSWORD)
        api.add_member(self.mine, self.bob_name, 2)    # developer: push and pull
        api.add_member(self.mine, self.carol_name, 2)
        api.add_member(self.secret, self.carol_name, 3)  # guest: pull only
        self.bob = Registry(server.url, auth=(self.bob_name, self.PASSWORD))
        self.carol = Registry(server.url, auth=(self.carol_name, self.PASSWORD))
        self.secret_repo = f"{self.secret}/app"
        self.public_repo = f"library/{unique}"
        self.target = f"{self.mine}/app"

    def mount(self, reg, digest, frm=None, target=None):
        params = {"mount": digest}
        if frm is not None:
            params["from"] = frm
        return reg.post(f"/v2/{target or self.target}/blobs/uploads/", params=params)


@pytest.fixture
def people(server, unique):
    return People(server, unique)


def assert_mounted(reg, r, repo, digest, data):
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert urlsplit(urljoin(reg.base + "/", r.headers["Location"])).path == \
        f"/v2/{repo}/blobs/{digest}", describe(r)
    g = reg.get(f"/v2/{repo}/blobs/{digest}")
    assert g.status_code == 200 and g.content == data, describe(g)


def assert_new_session(reg, r, repo):
    """A 202 that is a plain new upload: nothing in it speaks of the blob."""
    assert r.status_code == 202, describe(r)
    path = urlsplit(urljoin(reg.base + "/", r.headers.get("Location", ""))).path
    assert path.startswith(f"/v2/{repo}/blobs/uploads/"), describe(r)
    assert "Docker-Content-Digest" not in r.headers, describe(r)
    assert r.headers.get("Range") == "0-0", describe(r)
    reg.delete(urljoin(reg.base + "/", r.headers["Location"]))


def test_mount_without_from_finds_a_readable_repository(people):
    """The administrator mounts by digest alone, and with a `from` that does
    not exist: the blob is found where it is stored."""
    data = os.urandom(3000)
    digest = people.admin.push_blob(people.public_repo, data)
    assert_mounted(people.admin, people.mount(people.admin, digest), people.target, digest, data)
    other = f"{people.mine}/other"
    r = people.mount(people.admin, digest, frm=f"library/{os.urandom(4).hex()}-nowhere",
                     target=other)
    assert_mounted(people.admin, r, other, digest, data)
    r = people.mount(people.admin, digest, frm=f"nosuchproject{os.urandom(3).hex()}/x",
                     target=f"{people.mine}/third")
    assert_mounted(people.admin, r, f"{people.mine}/third", digest, data)
    # stored nowhere: an upload session
    assert_new_session(people.admin, people.mount(people.admin, sha256_digest(os.urandom(9))),
                       people.target)


def test_mount_never_exposes_an_unreadable_blob(people):
    """bob cannot read the private project: neither a digest alone nor naming
    the private repository as `from` mounts its blob; he gets an upload
    session, the blob stays unknown in his repository until he uploads it."""
    secret = os.urandom(5000)
    digest = people.admin.push_blob(people.secret_repo, secret)
    expect_error(people.bob.get(f"/v2/{people.secret_repo}/blobs/{digest}"), 403, "DENIED")

    assert_new_session(people.bob, people.mount(people.bob, digest), people.target)
    assert_new_session(people.bob, people.mount(people.bob, digest, frm=people.secret_repo),
                       people.target)
    for reg in (people.bob, people.admin):
        expect_error(reg.get(f"/v2/{people.target}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
        assert reg.head(f"/v2/{people.target}/blobs/{digest}").status_code == 404
    # a manifest naming it is refused as well
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    people.bob.push_blob(people.target, cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": sha256_digest(cfg),
                                 "size": len(cfg)},
                      "layers": [{"mediaType": MT_LAYER_GZIP, "digest": digest,
                                  "size": len(secret)}]}).encode()
    expect_error(people.bob.push_manifest(people.target, "v1", man), 400,
                 "MANIFEST_BLOB_UNKNOWN")

    # once bob uploads the bytes himself, they are his to read
    assert people.bob.push_blob(people.target, secret) == digest
    g = people.bob.get(f"/v2/{people.target}/blobs/{digest}")
    assert g.status_code == 200 and g.content == secret, describe(g)
    assert people.bob.push_manifest(people.target, "v1", man).status_code == 201


def test_mount_uses_only_what_the_caller_may_read(people):
    """carol is a guest of the private project: she may pull from it, so a
    mount by digest alone (or naming it) takes its blob. A `from` that bob
    cannot read does not stop a mount of a blob he can read elsewhere (the
    public repository holds it too): nothing of the private one is shown."""
    data = os.urandom(4000)
    digest = people.admin.push_blob(people.secret_repo, data)
    assert_mounted(people.carol, people.mount(people.carol, digest), people.target, digest, data)
    other = f"{people.mine}/carol2"
    r = people.mount(people.carol, digest, frm=people.secret_repo, target=other)
    assert_mounted(people.carol, r, other, digest, data)

    shared = os.urandom(2500)
    sdigest = people.admin.push_blob(people.secret_repo, shared)
    people.admin.push_blob(people.public_repo, shared)
    r = people.mount(people.bob, sdigest, frm=people.secret_repo)
    assert_mounted(people.bob, r, people.target, sdigest, shared)


def test_mount_with_a_token_follows_its_scopes(server, people):
    """A token caller may mount only from repositories its token grants pull
    on: the token a client fetched for its target alone mounts nothing from
    elsewhere, one that also names the source does."""
    data = os.urandom(3500)
    digest = people.admin.push_blob(people.public_repo, data)
    narrow = bearer(server, token(server, f"repository:{people.target}:pull,push",
                                  user=people.bob_name, password=people.PASSWORD))
    assert_new_session(narrow, people.mount(narrow, digest), people.target)
    expect_error(narrow.get(f"/v2/{people.target}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    wide = bearer(server, token(server, [f"repository:{people.target}:pull,push",
                                         f"repository:{people.public_repo}:pull"],
                                user=people.bob_name, password=people.PASSWORD))
    assert_mounted(wide, people.mount(wide, digest), people.target, digest, data)
