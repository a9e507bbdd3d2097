#!/usr/bin/python3
"""Writes an OCI image layout for the benchmark: N layers of incompressible
random data (each a gzipped tar holding one random file of SIZE MiB), a config
whose diff_ids match, a manifest, and an index naming it TAG.

The layers are gzipped here, once: given uncompressed layers, skopeo gzips
them itself on every push to a registry, and the push would time its gzip.

usage: mklayout.py DIR [--layers N] [--mib SIZE] [--tag TAG]

Prints the manifest digest, then one line per layer: "DIGEST SIZE".
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def put_blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def random_layer(index, size):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name="bench/layer%d.bin" % index)
        info.size = size
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--tag", default="bench")
    a = ap.parse_args()

    blobs = os.path.join(a.dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    with open(os.path.join(a.dir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    layers, diff_ids = [], []
    for i in range(a.layers):
        tar = random_layer(i, a.mib << 20)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        # Level 0 (stored blocks): random data would not compress anyway.
        digest, size = put_blob(blobs, gzip.compress(tar, compresslevel=0, mtime=0))
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size})

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cdigest, csize = put_blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cdigest, "size": csize},
        "layers": layers,
    }
    mdigest, msize = put_blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": mdigest, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": a.tag},
        }],
    }
    with open(os.path.join(a.dir, "index.json"), "w") as f:
        json.dump(index, f)

    print(mdigest)
    for l in layers:
        print(l["digest"], l["size"])


if __name__ == "__main__":
    main()
