"""Storage quota per project: pushes past it are refused with Harbor's 403
DENIED message; a blob shared by repositories of one project counts once."""

import os

from apiclient import Api
from ocilayout import make_image, sha256_digest
from regclient import ADMIN_PASSWORD, ADMIN_USER, describe, expect_error

KiB = 1024


def test_quota_refuses_pushes_past_the_limit(servers, unique):
    srv = servers.new()
    api = Api(srv.url, (ADMIN_USER, ADMIN_PASSWORD))
    r = api.post("/projects", {"project_name": unique, "storage_limit": 300 * KiB})
    assert r.status_code == 201, describe(r)
    reg = srv.registry()

    first = os.urandom(200 * KiB)
    reg.push_blob(f"{unique}/a", first)
    # the same blob in another repository of the project costs nothing more
    reg.push_blob(f"{unique}/b", first)
    r = reg.post(f"/v2/{unique}/c/blobs/uploads/?mount={sha256_digest(first)}&from={unique}/a")
    assert r.status_code == 201, describe(r)

    second = os.urandom(150 * KiB)
    r = reg.post(f"/v2/{unique}/a/blobs/uploads/?digest={sha256_digest(second)}", data=second)
    e = expect_error(r, 403, "DENIED")
    assert e["message"] == ("adding 150.0 KiB of storage resource, which when updated to current "
                            "usage of 200.0 KiB will exceed the configured upper limit of 300.0 KiB."), e
    assert reg.head(f"/v2/{unique}/a/blobs/{sha256_digest(second)}").status_code == 404
    # the chunked path is refused at commit too, and keeps nothing
    loc = reg.start_upload(f"{unique}/a")
    r = reg.patch(loc, data=second, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, describe(r)
    r = reg.put(r.headers["Location"], params={"digest": sha256_digest(second)})
    expect_error(r, 403, "DENIED")

    # usage is shown in the summary; a blob within the limit still goes in
    summary = api.get(f"/projects/{unique}/summary").json()
    assert summary["quota"]["hard"]["storage"] == 300 * KiB
    assert summary["quota"]["used"]["storage"] == 200 * KiB
    small = os.urandom(50 * KiB)
    reg.push_blob(f"{unique}/a", small)

    # other projects are not limited by it
    img = make_image(layers=1, files_per_layer=1, file_size=400 * KiB)
    reg.push_image("library/" + unique, img, "v1")
