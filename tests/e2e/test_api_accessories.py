"""Harbor's `with_accessory` on the artifact list and get (docs/api.md): an
image's accessories are the artifacts of its repository whose `subject` it is
(a notation signature, a cosign signature in its OCI 1.1 form, an SBOM, any
other referrer) and the signature cosign tags `sha256-<hex>.sig`; each with
Harbor's type, its digest and the subject's. The portal's Signed column reads
them from the one list request of a page.
"""
import json

from apiclient import Api, describe, enc_repo
from regclient import ADMIN_PASSWORD, ADMIN_USER
from test_scan_all import desc, small_image

EMPTY = b"{}"
MT_EMPTY = "application/vnd.oci.empty.v1+json"


def referrer(reg, repo, subject, artifact_type, payload):
    reg.push_blob(repo, EMPTY)
    reg.push_blob(repo, payload)
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "artifactType": artifact_type, "config": desc(MT_EMPTY, EMPTY),
                       "layers": [desc("application/octet-stream", payload)],
                       "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "digest": subject["digest"], "size": subject["size"]}}).encode()
    dig = desc("application/vnd.oci.image.manifest.v1+json", body)["digest"]
    r = reg.push_manifest(repo, dig, body)
    assert r.status_code == 201, describe(r)
    return dig


def test_artifact_accessories(servers, unique):
    srv = servers.new()
    api = Api(srv.url, auth=(ADMIN_USER, ADMIN_PASSWORD))
    api.create_project(unique)
    reg = srv.registry()
    repo = f"{unique}/app"
    signed, plain, tagged = (small_image(f"{unique}-{n}") for n in ("signed", "plain", "tagged"))
    for img, tag in ((signed, "signed"), (plain, "plain"), (tagged, "tagged")):
        reg.push_image(repo, img, tag)
    sub = {"digest": signed.manifest_digest, "size": len(signed.manifest)}
    notation = referrer(reg, repo, sub, "application/vnd.cncf.notary.signature", b"notation sig")
    sbom = referrer(reg, repo, sub, "application/spdx+json", b'{"spdxVersion":"SPDX-2.3"}')
    # cosign's own form: an image-shaped manifest tagged sha256-<hex>.sig
    sig = small_image(f"{unique}-cosign")
    reg.push_image(repo, sig, "sha256-" + tagged.manifest_digest[7:] + ".sig")

    base = f"/projects/{unique}/repositories/{enc_repo('app')}/artifacts"
    r = api.get(base, params={"with_accessory": "true", "page_size": 100, "q": "tags=*"})
    assert r.status_code == 200, describe(r)
    by = {a["digest"]: a for a in r.json()}
    acc = sorted((x["type"], x["digest"]) for x in by[signed.manifest_digest]["accessories"])
    assert acc == sorted([("signature.notation", notation), ("harbor.sbom", sbom)])
    for x in by[signed.manifest_digest]["accessories"]:
        assert x["subject_artifact_digest"] == signed.manifest_digest
        assert x["subject_artifact_id"] == by[signed.manifest_digest]["id"]
        assert x["subject_artifact_repo"] == repo and x["size"] > 0 and x["creation_time"]
    assert by[plain.manifest_digest]["accessories"] == []
    assert [(x["type"], x["digest"]) for x in by[tagged.manifest_digest]["accessories"]] == [
        ("signature.cosign", sig.manifest_digest)]
    # without with_accessory the field is not there (as before); one artifact too
    r = api.get(base, params={"page_size": 100})
    assert all("accessories" not in a for a in r.json())
    r = api.get(f"{base}/tagged", params={"with_accessory": "true"})
    assert r.status_code == 200, describe(r)
    assert [x["digest"] for x in r.json()["accessories"]] == [sig.manifest_digest]
    assert "accessories" not in api.get(f"{base}/tagged").json()
