"""Atomic writes: a killed run never leaves a file that looks complete and is not."""

import hashlib
import io
import json
import os
import tempfile

import numpy as np


def write_atomic(path, data, mode="w"):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + "-", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj):
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npz(path, compressed=False, **arrays):
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    write_atomic(path, buffer.getvalue(), "wb")


def ensure_writable_dir(path, argument="output_dir"):
    from anomaly_toolbox.errors import UsageError

    try:
        os.makedirs(path, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-")
        probe.close()
    except OSError as e:
        raise UsageError(argument, path, f"a writable directory ({e.strerror})") from e


def sha256(paths, names=None):
    """One SHA-256 over the files' names (`names`, e.g. relative paths) and contents: what
    identifies data in results, without the machine's folders."""
    digest = hashlib.sha256()
    for path, name in zip(paths, names or [None] * len(paths)):
        if name is not None:
            digest.update(name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
