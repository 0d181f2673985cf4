"""Atomic writes: a killed run never leaves a file that looks complete and is not, a full disk
is named with the file it stopped, and what is written gets the permissions the user's umask
gives, as `open()` would (mkstemp / mkdtemp make 0600 / 0700: a model another user cannot load)."""

import contextlib
import errno
import hashlib
import io
import json
import os
import secrets
import tempfile

import numpy as np

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# what TensorFlow's C++ writers (checkpoints, SavedModel, events) put in their OpError instead
DISK_FULL_MESSAGES = ("No space left on device", "File too large", "Disk quota exceeded")


def disk_full_reason(e):
    """The reason if `e` (an OSError or a TensorFlow error) says the disk is full, else None."""
    if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
        return e.strerror or os.strerror(e.errno)
    if type(e).__module__.startswith("tensorflow"):
        return next((m for m in DISK_FULL_MESSAGES if m in str(e)), None)
    return None


@contextlib.contextmanager
def naming_disk_full(path):
    """Turns a full disk while writing `path` into DiskFullError naming it; other errors pass."""
    try:
        yield
    except Exception as e:
        reason = disk_full_reason(e)
        if reason is None:
            raise
        from anomaly_toolbox.errors import DiskFullError

        raise DiskFullError(path, reason) from e


def _beside(path, create):
    """`create(tmp)` for a new hidden name next to `path` (O_EXCL / mkdir: never someone else's)."""
    folder, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(folder, f".{name}-{secrets.token_hex(4)}")
        try:
            return create(tmp), tmp
        except FileExistsError:
            continue


def temp_dir_beside(path):
    """An empty folder to build `path` in before renaming it into place, mode 0777 & ~umask."""
    return _beside(path, lambda tmp: os.mkdir(tmp, 0o777))[1]


def write_atomic(path, data, mode="w"):
    with naming_disk_full(path):
        fd, tmp = _beside(path, lambda tmp: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                                    0o666))
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


def _takes_files(folder):
    """Raises the OSError that creating a file in `folder` raises (permissions, read-only mount)."""
    tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-").close()


def ensure_writable_dir(path, argument="output_dir"):
    from anomaly_toolbox.errors import UsageError

    try:
        with naming_disk_full(path):
            os.makedirs(path, exist_ok=True)
            _takes_files(path)
    except OSError as e:
        raise UsageError(argument, path, f"a writable directory ({e.strerror})") from e


def missing_from(path):
    """The highest folder of `path` (itself or one above it) that does not exist, or None: what
    makedirs(path) would create."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        return None
    while not os.path.exists(os.path.dirname(path)):
        path = os.path.dirname(path)
    return path


def check_writable_dir(path, argument):
    """ensure_writable_dir's check, creating nothing: a command refused later leaves no empty
    folder behind. `path`, or the nearest folder above it that exists, takes files."""
    from anomaly_toolbox.errors import UsageError

    missing = missing_from(path)
    existing = os.path.dirname(missing) if missing else os.path.abspath(path)
    try:
        if not os.path.isdir(existing):
            raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file")
        _takes_files(existing)
    except OSError as e:
        raise UsageError(argument, path, f"a writable directory ({e.strerror})") from e


def check_writable_file(path, argument, reading=(), made_first=None):
    """Before any work: `path` can be written (a file in an existing folder that takes files,
    or in `made_first`, a folder the command makes before writing it), and is none of the files
    `reading` lists (the command's inputs, which it would overwrite), by a link or not."""
    from anomaly_toolbox.errors import UsageError

    if os.path.isdir(path):
        raise UsageError(argument, path, "a file path, not a folder")
    if os.path.exists(path):
        target = os.stat(path)
        read = next((f for f in reading
                     if os.path.exists(f) and os.path.samestat(os.stat(f), target)), None)
        if read is not None:
            raise UsageError(argument, path, f"a file other than the input {read!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) and not (made_first and folder == os.path.abspath(made_first)):
        raise UsageError(argument, path, f"a file path in an existing folder (no {folder})")
    check_writable_dir(folder, argument)


def _folder_above(folder, matches):
    """The nearest of `folder` and the folders above it for which matches(folder), or None."""
    while True:
        if matches(folder):
            return folder
        folder, child = os.path.dirname(folder), folder
        if folder == child:
            return None


def saved_model_above(path):
    """The nearest folder above `path` that is a SavedModel (holds saved_model.pb), or None:
    what is written there is deleted with it when it is exported again, or clobbers it."""
    return _folder_above(os.path.dirname(os.path.abspath(path)),
                         lambda f: os.path.isfile(os.path.join(f, "saved_model.pb")))


def checkpoints_above(path):
    """The run's checkpoints/ folder when `path` is one or lies inside one, or None: a file
    there can be taken for a checkpoint, or overwrite the index (checkpoints/best/checkpoint)
    that re-export and the finish restore from."""
    return _folder_above(os.path.realpath(path), lambda f: os.path.basename(f) == "checkpoints"
                         and os.path.isfile(os.path.join(os.path.dirname(f), "run.json")))


def sha256(paths, names=None):
    """One SHA-256 over the files' names (`names`, e.g. relative paths) and contents: what
    identifies data in results, without the machine's folders. A name is hashed as its bytes on
    disk: UTF-8, and a name that is not UTF-8 (os.listdir's surrogate escapes) as its own bytes."""
    digest = hashlib.sha256()
    for path, name in zip(paths, names or [None] * len(paths)):
        if name is not None:
            digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
