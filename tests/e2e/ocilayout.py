"""Build OCI image layouts in plain Python, with no container engine.

An image layout (image-spec "image-layout.md") is a directory holding
`oci-layout`, `index.json` and `blobs/<alg>/<hex>`.  The builders here write
random multi-layer images (gzip layers whose config lists the digests of the
uncompressed tars as diff_ids) and a two-platform image index, and return
what a test needs to check a round trip: manifest bytes and digests, layer
and config digests.
"""

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass, field

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

REF_ANNOTATION = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512_digest(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def canonical_json(obj) -> bytes:
    """Compact JSON with sorted keys: stable bytes for a given object."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, **extra) -> dict:
    d = {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
    d.update(extra)
    return d


def random_tar(rng: random.Random, files: int, file_size: int, prefix: str) -> bytes:
    """An uncompressed tar of `files` regular files of random bytes.

    Random content keeps every generated layer unique, so a push has to
    upload it rather than find it already stored.  Timestamps are fixed so
    that the bytes depend on the random generator only.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo(prefix)
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = 1700000000
        tf.addfile(d)
        for i in range(files):
            data = rng.randbytes(file_size)
            ti = tarfile.TarInfo(f"{prefix}/file{i:03d}.bin")
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Image:
    """One single-platform image as written into a layout."""

    manifest: bytes
    manifest_digest: str
    config: bytes
    config_digest: str
    layers: list = field(default_factory=list)  # compressed layer digests, in order
    diff_ids: list = field(default_factory=list)  # digests of the uncompressed tars
    blobs: dict = field(default_factory=dict)  # digest -> bytes (config and layers)
    platform: dict = field(default_factory=dict)

    @property
    def manifest_descriptor(self) -> dict:
        return {
            "mediaType": MT_MANIFEST,
            "digest": self.manifest_digest,
            "size": len(self.manifest),
        }


@dataclass
class Index:
    """A multi-platform image index and its children."""

    index: bytes
    index_digest: str
    images: list


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path: str):
        self.path = path
        self.refs = []  # descriptors listed in index.json
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        self._write_index()

    def add_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        p = os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(data)
        return digest

    def tag(self, desc: dict, ref: str):
        desc = dict(desc)
        desc["annotations"] = {REF_ANNOTATION: ref}
        self.refs = [r for r in self.refs if r.get("annotations", {}).get(REF_ANNOTATION) != ref]
        self.refs.append(desc)
        self._write_index()

    def _write_index(self):
        idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.refs}
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(idx, f, indent=2)


def make_image(
    layers: int = 3,
    files_per_layer: int = 4,
    file_size: int = 64 * 1024,
    arch: str = "amd64",
    os_name: str = "linux",
    seed=None,
) -> Image:
    """Generate (in memory) a random image with `layers` gzip layers."""
    rng = random.Random(seed if seed is not None else os.urandom(16))
    tag = rng.getrandbits(64)
    blobs = {}
    layer_descs, diff_ids = [], []
    for n in range(layers):
        raw = random_tar(rng, files_per_layer, file_size, f"layer{n}-{tag:016x}")
        gz = gzip.compress(raw, compresslevel=1, mtime=0)
        diff_ids.append(sha256_digest(raw))
        desc = descriptor(MT_LAYER_GZIP, gz)
        layer_descs.append(desc)
        blobs[desc["digest"]] = gz
    config_obj = {
        "architecture": arch,
        "os": os_name,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/true"], "Labels": {"test.wharf.nonce": f"{tag:016x}"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(layers)],
    }
    config = canonical_json(config_obj)
    config_desc = descriptor(MT_CONFIG, config)
    blobs[config_desc["digest"]] = config
    manifest_obj = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    manifest = json.dumps(manifest_obj, indent=2).encode()
    return Image(
        manifest=manifest,
        manifest_digest=sha256_digest(manifest),
        config=config,
        config_digest=config_desc["digest"],
        layers=[d["digest"] for d in layer_descs],
        diff_ids=diff_ids,
        blobs=blobs,
        platform={"architecture": arch, "os": os_name},
    )


def write_image(layout: Layout, img: Image, ref: str) -> Image:
    for data in img.blobs.values():
        layout.add_blob(data)
    layout.add_blob(img.manifest)
    layout.tag(img.manifest_descriptor, ref)
    return img


def make_index(images: list) -> Index:
    manifests = []
    for img in images:
        d = img.manifest_descriptor
        d["platform"] = dict(img.platform)
        manifests.append(d)
    obj = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    data = json.dumps(obj, indent=2).encode()
    return Index(index=data, index_digest=sha256_digest(data), images=images)


def write_index(layout: Layout, idx: Index, ref: str) -> Index:
    for img in idx.images:
        for data in img.blobs.values():
            layout.add_blob(data)
        layout.add_blob(img.manifest)
    layout.add_blob(idx.index)
    layout.tag({"mediaType": MT_INDEX, "digest": idx.index_digest, "size": len(idx.index)}, ref)
    return idx


def read_layout(path: str):
    """Return (index.json object, function reading a blob by digest)."""
    with open(os.path.join(path, "index.json"), "rb") as f:
        top = json.load(f)

    def blob(digest: str) -> bytes:
        alg, hexpart = digest.split(":", 1)
        with open(os.path.join(path, "blobs", alg, hexpart), "rb") as f:
            return f.read()

    return top, blob


def layout_ref(path: str, ref: str) -> dict:
    """The descriptor that index.json of the layout at `path` lists for `ref`."""
    top, _ = read_layout(path)
    for d in top.get("manifests", []):
        if d.get("annotations", {}).get(REF_ANNOTATION) == ref:
            return d
    raise KeyError(f"{ref!r} not in {path}/index.json")
