"""podman (no daemon, private vfs storage) pulls from wharf and pushes the
image back under another tag."""

import gzip
import json

from ocilayout import sha256_digest
from regclient import CREDS, describe


def test_podman_pull_and_push(server, registry, skopeo, podman, image_layout, unique):
    src, img = image_layout
    repo = f"library/{unique}"
    skopeo.copy(f"oci:{src}:v1", f"docker://{server.host}/{repo}:v1")

    name = f"{server.host}/{repo}"
    podman("pull", "--tls-verify=false", "--creds", CREDS, f"docker://{name}:v1")
    info = json.loads(podman("image", "inspect", f"{name}:v1").stdout)[0]
    assert info["Digest"] == img.manifest_digest
    assert info["RootFS"]["Layers"] == img.diff_ids

    # By digest too.
    podman("pull", "--tls-verify=false", "--creds", CREDS,
           f"docker://{name}@{img.manifest_digest}")

    podman("push", "--tls-verify=false", "--creds", CREDS, f"{name}:v1",
           f"docker://{name}:copied")

    r = registry.get_manifest(repo, "copied")
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Docker-Content-Digest") == sha256_digest(r.content)
    pushed = json.loads(r.content)
    # The configuration travels unchanged; the layers may be recompressed,
    # but each must unpack to the tar its diff_id names.
    assert pushed["config"]["digest"] == img.config_digest
    assert len(pushed["layers"]) == len(img.diff_ids)
    for desc, diff_id in zip(pushed["layers"], img.diff_ids):
        b = registry.get(f"/v2/{repo}/blobs/{desc['digest']}")
        assert b.status_code == 200, describe(b)
        assert sha256_digest(b.content) == desc["digest"]
        assert len(b.content) == desc["size"]
        assert sha256_digest(gzip.decompress(b.content)) == diff_id

    tags = registry.get(f"/v2/{repo}/tags/list")
    assert tags.status_code == 200, describe(tags)
    assert sorted(tags.json()["tags"]) == ["copied", "v1"]


def test_podman_and_skopeo_login(server, registry, skopeo, podman, image_layout, unique):
    """`podman login` / `skopeo login` check the credentials the way `docker login` does
    (GET /v2/ then the token service); later commands use the stored credentials."""
    src, img = image_layout
    name = f"{server.host}/library/{unique}"
    bad = podman("login", "--tls-verify=false", "-u", "admin", "-p", "Not-The-Passw0rd",
                 server.host, check=False)
    assert bad.returncode != 0, bad.stdout + bad.stderr
    ok = podman("login", "--tls-verify=false", "-u", "admin", "-p", CREDS.split(":", 1)[1],
                server.host)
    assert "Login Succeeded" in ok.stdout, ok.stdout + ok.stderr
    image_id = podman("pull", "--quiet", f"oci:{src}:v1").stdout.split()[-1]
    podman("push", "--tls-verify=false", image_id, f"docker://{name}:login")
    assert registry.get_manifest(f"library/{unique}", "login").status_code == 200
    podman("logout", server.host)
    p = podman("push", "--tls-verify=false", image_id, f"docker://{name}:anon", check=False)
    assert p.returncode != 0, "a push after logout succeeded"

    authfile = skopeo.root / "auth.json"
    skopeo.run(["skopeo", "login", "--tls-verify=false", "--authfile", str(authfile),
                "-u", "admin", "-p", CREDS.split(":", 1)[1], server.host])
    skopeo.run(["skopeo", "copy", "--dest-tls-verify=false", "--authfile", str(authfile),
                f"oci:{src}:v1", f"docker://{name}:skopeo-login"])
    assert registry.get_manifest(f"library/{unique}", "skopeo-login").status_code == 200
