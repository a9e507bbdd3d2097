"""Artifacts with a `subject` and the referrers API (distribution spec v1.1,
"Listing Referrers").  The artifacts are pushed with curl, as a CI script
without a registry client would."""

import json
import os
import subprocess

from ocilayout import MT_EMPTY, MT_INDEX, MT_MANIFEST, make_image, sha256_digest
from regclient import CREDS, check_api_version, describe

EMPTY = b"{}"
SBOM_TYPE = "application/vnd.example.sbom.v1"
SIG_TYPE = "application/vnd.example.signature.v1"
CONFIG_TYPE = "application/vnd.example.config.v1+json"


def curl(method, url, body: bytes = None, headers=None, tmp=None):
    """Run curl; return (status, lower-cased headers dict, body bytes)."""
    argv = ["curl", "-sS", "-i", "-u", CREDS, "-X", method, "--max-time", "30"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    if body is not None:
        path = os.path.join(tmp, f"body-{os.urandom(4).hex()}")
        with open(path, "wb") as f:
            f.write(body)
        argv += ["--data-binary", f"@{path}"]
    argv.append(url)
    p = subprocess.run(argv, capture_output=True, timeout=60)
    assert p.returncode == 0, f"{argv}: {p.stderr.decode()}"
    raw = p.stdout
    # Skip interim responses such as "100 Continue".
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status >= 200 or not rest.startswith(b"HTTP/"):
            break
        raw = rest
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def curl_push_blob(base, repo, data, tmp):
    digest = sha256_digest(data)
    status, hdrs, body = curl(
        "POST",
        f"{base}/v2/{repo}/blobs/uploads/?digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
        tmp,
    )
    assert status == 201, f"monolithic blob POST -> {status} {hdrs} {body[:300]!r}"
    assert hdrs.get("docker-content-digest") == digest
    return digest


def artifact_manifest(subject_desc, artifact_type=None, config_type=MT_EMPTY, payload=b"",
                      annotations=None):
    config = EMPTY if config_type == MT_EMPTY else json.dumps({"kind": "example"}).encode()
    doc = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": config_type, "digest": sha256_digest(config), "size": len(config)},
        "layers": [
            {"mediaType": "application/octet-stream", "digest": sha256_digest(payload),
             "size": len(payload)}
        ],
        "subject": subject_desc,
        "annotations": annotations or {},
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    return json.dumps(doc, indent=1).encode(), config


def push_artifact(base, repo, manifest, config, payload, tmp, ref=None):
    curl_push_blob(base, repo, config, tmp)
    curl_push_blob(base, repo, payload, tmp)
    digest = sha256_digest(manifest)
    status, hdrs, body = curl(
        "PUT",
        f"{base}/v2/{repo}/manifests/{ref or digest}",
        manifest,
        {"Content-Type": MT_MANIFEST},
        tmp,
    )
    assert status == 201, f"artifact PUT -> {status} {hdrs} {body[:300]!r}"
    assert hdrs.get("docker-content-digest") == digest
    assert hdrs.get("location"), "201 without Location"
    return digest, hdrs


def referrers(registry, repo, digest, artifact_type=None):
    params = {"artifactType": artifact_type} if artifact_type else None
    r = registry.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert r.status_code == 200, describe(r)
    check_api_version(r)
    assert r.headers.get("Content-Type", "").split(";")[0] == MT_INDEX, describe(r)
    doc = r.json()
    assert doc.get("schemaVersion") == 2, describe(r)
    assert doc.get("mediaType") == MT_INDEX, describe(r)
    assert isinstance(doc.get("manifests"), list), describe(r)
    return r, doc["manifests"]


def test_artifact_with_subject_and_referrers(server, registry, tmp_path, unique):
    base, tmp = server.url, str(tmp_path)
    repo = f"library/{unique}"
    img = make_image(layers=1, files_per_layer=1, file_size=1024)
    registry.push_image(repo, img, "v1")
    subject = img.manifest_descriptor

    sbom_payload = b'{"spdxVersion":"SPDX-2.3","name":"' + unique.encode() + b'"}'
    sbom, cfg = artifact_manifest(subject, SBOM_TYPE, payload=sbom_payload,
                                  annotations={"org.example.kind": "sbom"})
    sbom_digest, hdrs = push_artifact(base, repo, sbom, cfg, sbom_payload, tmp)
    assert hdrs.get("oci-subject") == img.manifest_digest, f"no OCI-Subject on PUT: {hdrs}"

    sig_payload = os.urandom(64)
    sig, cfg = artifact_manifest(subject, SIG_TYPE, payload=sig_payload,
                                 annotations={"org.example.kind": "signature"})
    sig_digest, hdrs = push_artifact(base, repo, sig, cfg, sig_payload, tmp, ref="sig")
    assert hdrs.get("oci-subject") == img.manifest_digest

    # No artifactType: the referrers list reports the config media type.
    plain_payload = os.urandom(32)
    plain, cfg = artifact_manifest(subject, None, config_type=CONFIG_TYPE, payload=plain_payload)
    plain_digest, _ = push_artifact(base, repo, plain, cfg, plain_payload, tmp)

    # A manifest without a subject gets no OCI-Subject header.
    status, hdrs, _ = curl("PUT", f"{base}/v2/{repo}/manifests/v2", img.manifest,
                           {"Content-Type": MT_MANIFEST}, tmp)
    assert status == 201 and "oci-subject" not in hdrs, hdrs

    r, listed = referrers(registry, repo, img.manifest_digest)
    assert "OCI-Filters-Applied" not in r.headers
    by_digest = {d["digest"]: d for d in listed}
    assert set(by_digest) == {sbom_digest, sig_digest, plain_digest}, listed
    expect = {
        sbom_digest: (sbom, SBOM_TYPE, {"org.example.kind": "sbom"}),
        sig_digest: (sig, SIG_TYPE, {"org.example.kind": "signature"}),
        plain_digest: (plain, CONFIG_TYPE, None),
    }
    for digest, (body, atype, annotations) in expect.items():
        d = by_digest[digest]
        assert d["mediaType"] == MT_MANIFEST
        assert d["size"] == len(body)
        assert d["artifactType"] == atype
        if annotations:
            assert d.get("annotations") == annotations

    r, listed = referrers(registry, repo, img.manifest_digest, SBOM_TYPE)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)
    assert [d["digest"] for d in listed] == [sbom_digest]

    r, listed = referrers(registry, repo, img.manifest_digest, "application/vnd.example.none")
    assert listed == []

    # Deleting an artifact takes it out of the list.
    d = registry.delete(f"/v2/{repo}/manifests/{sbom_digest}")
    assert d.status_code == 202, describe(d)
    _, listed = referrers(registry, repo, img.manifest_digest)
    assert {x["digest"] for x in listed} == {sig_digest, plain_digest}


def test_referrers_of_unknown_digest_is_empty(registry, unique):
    repo = f"library/{unique}"
    registry.push_image(repo, make_image(layers=1, files_per_layer=1, file_size=512), "v1")
    unknown = sha256_digest(os.urandom(32))
    _, listed = referrers(registry, repo, unknown)
    assert listed == []


def test_subject_may_be_missing(server, registry, tmp_path, unique):
    """The spec lets an artifact name a subject the registry does not hold
    (yet); it is listed once asked for."""
    base, tmp = server.url, str(tmp_path)
    repo = f"library/{unique}"
    absent = {"mediaType": MT_MANIFEST, "digest": sha256_digest(os.urandom(32)), "size": 1234}
    payload = os.urandom(16)
    m, cfg = artifact_manifest(absent, SBOM_TYPE, payload=payload)
    digest, hdrs = push_artifact(base, repo, m, cfg, payload, tmp)
    assert hdrs.get("oci-subject") == absent["digest"]
    _, listed = referrers(registry, repo, absent["digest"])
    assert [d["digest"] for d in listed] == [digest]
