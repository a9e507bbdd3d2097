"""REST API: repositories, artifacts and tags over images pushed through /v2/:
counts, double-encoded repository names, artifact shape (tags, digest, media
types, size, extra_attrs, references of an index), q/sort/with_tag, tag
create/delete, deletion rules, search and statistics."""

from urllib.parse import quote

import pytest

import ocilayout
from apiclient import ADMIN_PASSWORD, Api, describe, enc_repo, expect_error, start_server
from conftest import WharfServer
from ocilayout import make_image, make_index


@pytest.fixture(scope="module")
def srv(wharf_bin, session_tmp):
    s = start_server(WharfServer, wharf_bin, str(session_tmp / "api-artifacts"))
    yield s
    s.stop()


@pytest.fixture
def admin(srv):
    return Api(srv.url, ("admin", ADMIN_PASSWORD))


@pytest.fixture
def reg(srv):
    r = srv.registry()
    r.session.auth = ("admin", ADMIN_PASSWORD)
    return r


def small_image(seed, arch="amd64"):
    return make_image(layers=1, files_per_layer=1, file_size=512, seed=seed, arch=arch)


def test_api_repositories_and_artifacts(admin, reg, unique):
    pid = admin.create_project(unique)
    repo = f"{unique}/team/app"
    img1, img2 = small_image(unique + "1"), small_image(unique + "2")
    d1 = reg.push_image(repo, img1, "v1")
    d2 = reg.push_image(repo, img2, "v2")
    r = reg.push_manifest(repo, "latest", img2.manifest)
    assert r.status_code == 201, describe(r)

    repos = admin.ok(admin.get(f"/projects/{unique}/repositories")).json()
    assert [x["name"] for x in repos] == [repo]
    assert repos[0]["artifact_count"] == 2 and repos[0]["pull_count"] == 0
    assert repos[0]["project_id"] == pid
    # double-encoded name in paths
    one = admin.ok(admin.get(f"/projects/{unique}/repositories/{enc_repo('team/app')}")).json()
    assert one["name"] == repo and one["artifact_count"] == 2
    admin.ok(admin.put(f"/projects/{unique}/repositories/{enc_repo('team/app')}", {"description": "the app"}))
    assert admin.ok(admin.get(f"/projects/{unique}/repositories/{enc_repo('team/app')}")).json()["description"] == "the app"
    expect_error(admin.get(f"/projects/{unique}/repositories/nope"), 404, "NOT_FOUND")
    allr = admin.ok(admin.get("/repositories", params={"q": quote(f"name=~{unique}/", safe="")}))
    assert allr.headers["X-Total-Count"] == "1"

    base = f"/projects/{unique}/repositories/{enc_repo('team/app')}/artifacts"
    r = admin.ok(admin.get(base))
    assert r.headers["X-Total-Count"] == "2"
    arts = r.json()
    assert [a["digest"] for a in arts] == [d2, d1]  # newest push first
    a = arts[0]
    assert a["type"] == "IMAGE" and a["manifest_media_type"] == ocilayout.MT_MANIFEST
    assert a["media_type"] == "application/vnd.oci.image.config.v1+json"
    assert a["size"] == len(img2.manifest) and a["repository_name"] == repo
    assert sorted(t["name"] for t in a["tags"]) == ["latest", "v2"]
    assert a["extra_attrs"]["architecture"] == "amd64" and a["extra_attrs"]["os"] == "linux"
    for k in ("id", "project_id", "repository_id", "push_time", "pull_time", "references", "annotations"):
        assert k in a
    r = admin.ok(admin.get(base, params={"with_tag": "false"}))
    assert "tags" not in r.json()[0]
    r = admin.ok(admin.get(base, params={"q": quote("tags=v1", safe="")}))
    assert [x["digest"] for x in r.json()] == [d1]
    r = admin.ok(admin.get(base, params={"q": quote(f"digest={d2}", safe="")}))
    assert [x["digest"] for x in r.json()] == [d2]
    r = admin.ok(admin.get(base, params={"sort": "push_time"}))
    assert [x["digest"] for x in r.json()] == [d1, d2]
    r = admin.ok(admin.get(base, params={"page_size": 1}))
    assert len(r.json()) == 1 and 'rel="next"' in r.headers["Link"] and "%252F" in r.headers["Link"]

    # get by tag and by digest
    assert admin.ok(admin.get(f"{base}/v1")).json()["digest"] == d1
    assert admin.ok(admin.get(f"{base}/{d1}")).json()["tags"][0]["name"] == "v1"
    expect_error(admin.get(f"{base}/nope"), 404, "NOT_FOUND")

    # tags
    admin.ok(admin.post(f"{base}/{d1}/tags", {"name": "stable"}), 201)
    expect_error(admin.post(f"{base}/{d1}/tags", {"name": "stable"}), 409, "CONFLICT")
    expect_error(admin.post(f"{base}/{d1}/tags", {"name": "bad tag"}), 400, "BAD_REQUEST")
    tags = admin.ok(admin.get(f"{base}/{d1}/tags"))
    assert tags.headers["X-Total-Count"] == "2"
    assert sorted(t["name"] for t in tags.json()) == ["stable", "v1"]
    t = tags.json()[0]
    assert set(t) >= {"id", "repository_id", "artifact_id", "name", "push_time", "pull_time", "immutable"}
    assert reg.get_manifest(repo, "stable").status_code == 200
    admin.ok(admin.delete(f"{base}/{d1}/tags/stable"))
    expect_error(admin.delete(f"{base}/{d1}/tags/stable"), 404, "NOT_FOUND")
    assert reg.get_manifest(repo, "stable").status_code == 404

    # artifact delete
    admin.ok(admin.delete(f"{base}/{d1}"))
    expect_error(admin.get(f"{base}/{d1}"), 404, "NOT_FOUND")
    assert reg.get_manifest(repo, d1).status_code == 404
    audit = admin.audit(operation="delete")
    assert any(e["resource"] == f"{repo}@{d1}" and e["resource_type"] == "artifact" for e in audit)

    # search and statistics
    s = admin.ok(admin.get("/search", params={"q": unique})).json()
    assert [p["name"] for p in s["project"]] == [unique]
    assert s["repository"][0]["repository_name"] == repo and s["repository"][0]["artifact_count"] == 1
    st = admin.ok(admin.get("/statistics")).json()
    assert st["total_project_count"] >= 2 and st["private_repo_count"] >= 1
    assert st["total_storage_consumption"] > 0
    expect_error(Api(admin.base[:-len("/api/v2.0")]).get("/statistics"), 401, "UNAUTHORIZED")

    # repository delete takes its artifacts
    admin.ok(admin.delete(f"/projects/{unique}/repositories/{enc_repo('team/app')}"))
    expect_error(admin.get(f"/projects/{unique}/repositories/{enc_repo('team/app')}"), 404, "NOT_FOUND")
    assert reg.get_manifest(repo, "v2").status_code == 404


def test_api_large_annotations(admin, reg, unique):
    """Annotations are the client's: far over 16 KiB they come back whole, not null,
    from the artifact, the artifact list and the referrers API."""
    import json

    admin.create_project(unique)
    repo = f"{unique}/annotated"
    img = small_image(unique + "ann")
    for data in img.blobs.values():
        reg.push_blob(repo, data)
    annotations = {f"org.example.note.{i:03d}": f"{i:03d}-" + "x" * 600 for i in range(100)}
    manifest = json.loads(img.manifest)
    manifest["annotations"] = annotations
    body = ocilayout.canonical_json(manifest)
    assert len(json.dumps(annotations)) > 60 * 1024
    r = reg.push_manifest(repo, "big", body)
    assert r.status_code == 201, describe(r)
    digest = ocilayout.sha256_digest(body)
    base = f"/projects/{unique}/repositories/annotated/artifacts"
    one = admin.ok(admin.get(f"{base}/big")).json()
    assert one["digest"] == digest
    assert one["annotations"] == annotations
    listed = admin.ok(admin.get(base)).json()
    assert [a["annotations"] for a in listed] == [annotations]
    # a referrer with large annotations is listed with them by the OCI referrers API
    ref = dict(manifest)
    ref["subject"] = {"mediaType": ocilayout.MT_MANIFEST, "digest": digest, "size": len(body)}
    ref["artifactType"] = "application/vnd.example.note"
    ref_body = ocilayout.canonical_json(ref)
    r = reg.push_manifest(repo, ocilayout.sha256_digest(ref_body), ref_body)
    assert r.status_code == 201, describe(r)
    r = reg.get(f"/v2/{repo}/referrers/{digest}")
    assert r.status_code == 200, describe(r)
    assert [m["annotations"] for m in r.json()["manifests"]] == [annotations]


def test_api_index_references(admin, reg, unique):
    admin.create_project(unique, metadata={"public": "true"})
    repo = f"{unique}/multi"
    imgs = [small_image(unique + "a", "amd64"), small_image(unique + "b", "arm64")]
    for img in imgs:
        reg.push_image(repo, img)
    idx = make_index(imgs)
    r = reg.push_manifest(repo, "1.0", idx.index, "application/vnd.oci.image.index.v1+json")
    assert r.status_code == 201, describe(r)
    base = f"/projects/{unique}/repositories/multi/artifacts"
    a = admin.ok(admin.get(f"{base}/1.0")).json()
    assert a["manifest_media_type"] == "application/vnd.oci.image.index.v1+json"
    refs = a["references"]
    assert [x["child_digest"] for x in refs] == [i.manifest_digest for i in imgs]
    assert all(x["parent_id"] == a["id"] and x["child_id"] > 0 for x in refs)
    assert refs[1]["platform"]["architecture"] == "arm64"
    # a child of an index cannot be deleted
    expect_error(admin.delete(f"{base}/{imgs[0].manifest_digest}"), 412, "VIOLATE_FOREIGN_KEY_CONSTRAINT",
                 "the deleting artifact is referenced by others")
    # anonymous callers read public projects, but may not delete
    anon = Api(admin.base[:-len("/api/v2.0")])
    assert anon.get(f"{base}/1.0").status_code == 200
    expect_error(anon.delete(f"{base}/1.0"), 401, "UNAUTHORIZED")
    # project-wide artifact listing: the index once (Harbor's base collection),
    # its untagged children too with q=base=*
    r = admin.ok(admin.get(f"/projects/{unique}/artifacts"))
    assert r.headers["X-Total-Count"] == "1"
    assert [x["digest"] for x in r.json()] == [idx.index_digest]
    r = admin.ok(admin.get(f"/projects/{unique}/artifacts", params={"q": quote("base=*", safe="")}))
    assert r.headers["X-Total-Count"] == "3"
    assert sorted(x["digest"] for x in r.json()) == sorted([idx.index_digest] + [i.manifest_digest for i in imgs])


def test_api_index_listed_once(srv, admin, skopeo, multiarch_layout, unique):
    """A two-platform index pushed by skopeo is one artifact of its repository
    (with its children as references), as Harbor lists it; q=base=* lists the
    children as well, and the repository counts one artifact."""
    src, idx = multiarch_layout
    admin.create_project(unique)
    skopeo.copy(f"oci:{src}:multi", f"docker://{srv.host}/{unique}/app:multi", "--all",
                "--preserve-digests")
    children = [img.manifest_digest for img in idx.images]
    base = f"/projects/{unique}/repositories/app/artifacts"

    r = admin.ok(admin.get(base))
    assert r.headers["X-Total-Count"] == "1"
    arts = r.json()
    assert [a["digest"] for a in arts] == [idx.index_digest]
    assert [t["name"] for t in arts[0]["tags"]] == ["multi"]
    refs = arts[0]["references"]
    assert [x["child_digest"] for x in refs] == children
    assert [x["platform"]["architecture"] for x in refs] == ["amd64", "arm64"]
    assert all(x["parent_id"] == arts[0]["id"] and x["child_id"] > 0 for x in refs)

    r = admin.ok(admin.get(base, params={"q": quote("base=*", safe="")}))
    assert r.headers["X-Total-Count"] == "3"
    everything = r.json()
    assert sorted(a["digest"] for a in everything) == sorted([idx.index_digest] + children)
    assert {x["child_id"] for x in refs} == {a["id"] for a in everything if a["digest"] in children}
    # the other filters keep to the base collection too
    r = admin.ok(admin.get(base, params={"q": quote("tags=nil", safe="")}))
    assert r.headers["X-Total-Count"] == "0" and r.json() == []
    r = admin.ok(admin.get(base, params={"q": quote("tags=nil,base=*", safe="")}))
    assert sorted(a["digest"] for a in r.json()) == sorted(children)
    # a child is still reachable by its digest, and pages count the base collection
    assert admin.ok(admin.get(f"{base}/{children[0]}")).json()["digest"] == children[0]
    r = admin.ok(admin.get(base, params={"page_size": 1, "q": quote("base=*", safe="")}))
    assert r.headers["X-Total-Count"] == "3" and len(r.json()) == 1
    expect_error(admin.get(base, params={"q": quote("base=x", safe="")}), 400, "BAD_REQUEST",
                 'the value of "base" query can only be exact match value with "*"')

    repo = admin.ok(admin.get(f"/projects/{unique}/repositories/app")).json()
    assert repo["artifact_count"] == 1
    repos = admin.ok(admin.get(f"/projects/{unique}/repositories")).json()
    assert [(x["name"], x["artifact_count"]) for x in repos] == [(f"{unique}/app", 1)]
    found = admin.ok(admin.get("/search", params={"q": unique})).json()["repository"]
    assert [(x["repository_name"], x["artifact_count"]) for x in found] == [(f"{unique}/app", 1)]

    # a child that carries a tag of its own is listed beside the index
    r = admin.post(f"{base}/{children[1]}/tags", {"name": "arm64"})
    assert r.status_code == 201, describe(r)
    r = admin.ok(admin.get(base))
    assert sorted(a["digest"] for a in r.json()) == sorted([idx.index_digest, children[1]])
    assert admin.ok(admin.get(f"/projects/{unique}/repositories/app")).json()["artifact_count"] == 2
