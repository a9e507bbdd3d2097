"""Checks on a server's data dir, whose layout is part of wharf's contract:
DIR/blobs/<alg>/<first 2 hex>/<hex> holds each blob once, DIR/uploads/ holds
the staging files of upload sessions."""

import hashlib
import os
import re

HEX = {"sha256": 64, "sha512": 128}


def blob_path(data_dir: str, digest: str) -> str:
    alg, hexpart = digest.split(":", 1)
    return os.path.join(data_dir, "blobs", alg, hexpart[:2], hexpart)


def has_blob(data_dir: str, digest: str) -> bool:
    return os.path.isfile(blob_path(data_dir, digest))


def files_under(path: str) -> list:
    out = []
    for root, _, files in os.walk(path):
        out.extend(os.path.join(root, f) for f in files)
    return sorted(out)


def staging_files(data_dir: str) -> set:
    return set(files_under(os.path.join(data_dir, "uploads")))


def upload_id(location: str) -> str:
    """The session id at the end of an upload URL (/v2/<name>/blobs/uploads/<id>?...)."""
    return location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def staged_size(data_dir: str, location: str) -> int:
    """Bytes staged so far for the upload session at `location` (0 if none)."""
    try:
        return os.path.getsize(os.path.join(data_dir, "uploads", upload_id(location)))
    except FileNotFoundError:
        return 0


def staged_bytes(data_dir: str) -> int:
    """Total size of the staging files: the body bytes of uploads in progress
    that the server has written so far."""
    total = 0
    for path in staging_files(data_dir):
        try:
            total += os.path.getsize(path)
        except FileNotFoundError:
            pass  # removed while we looked
    return total


def check_blob_store(data_dir: str) -> dict:
    """Every file under blobs/ sits at the path its content hashes to.

    A partial or corrupt blob, or a stray temp file, fails the check.
    Returns {digest: size} of the blobs found.
    """
    found = {}
    root = os.path.join(data_dir, "blobs")
    for path in files_under(root):
        rel = os.path.relpath(path, root).split(os.sep)
        assert len(rel) == 3, f"unexpected file in the blob store: {path}"
        alg, prefix, name = rel
        assert alg in HEX and re.fullmatch(f"[0-9a-f]{{{HEX[alg]}}}", name), (
            f"unexpected file in the blob store: {path}"
        )
        assert name[:2] == prefix, f"blob in the wrong directory: {path}"
        h = hashlib.new(alg)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        assert h.hexdigest() == name, f"blob content does not match its name: {path}"
        found[f"{alg}:{name}"] = os.path.getsize(path)
    return found
