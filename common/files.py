"""Small files of runs and sweeps (JSON, CSV, Markdown, PNG), written so that no reader
and no kill ever sees half of one.

Everything goes through `tf.io.gfile`, so local paths and gs:// behave alike: the bytes
go to a temporary name beside the target and are renamed over it. A local rename is
atomic on POSIX; on Cloud Storage an object appears only once its upload completes, and
the rename is a server-side copy of a complete object.
"""

import contextlib
import errno
import json
import math
import os
import posixpath
import shutil
import uuid

import numpy as np

from common import dir_lock
from common import errors
from common.quiet_tf import tf


def write_atomically(path, data):
    """Writes `data` (str or bytes) to `path`, replacing what was there."""
    directory = posixpath.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temporary = _temporary_name(path)
    with _removed_on_failure(temporary):
        with tf.io.gfile.GFile(temporary, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    return path


def save_model(model, path):
    """`model.save(path)` under a temporary name, then renamed: a kill mid-save leaves
    the previous file whole."""
    _require_room(path, _variable_bytes(model))
    return _saved_atomically(path, lambda temporary: model.save(temporary, overwrite=True))


def save_weights(model, path):
    """`model.save_weights(path)` (a .weights.h5 file), whole or not at all."""
    _require_room(path, _variable_bytes(model))
    return _saved_atomically(path, lambda temporary: model.save_weights(temporary, overwrite=True))


# HDF5 metadata and the zip around .keras, beyond the variables' own bytes.
_SAVE_OVERHEAD_BYTES = 1 << 20


def _variable_bytes(model):
    """What saving `model` writes at least: its variables and its optimizer's."""
    variables = list(model.variables) + list(getattr(getattr(model, "optimizer", None), "variables", []) or [])
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)


def _require_room(path, variable_bytes):
    """Raises ENOSPC before a save that a local disk has no room for.

    Keras writes weights through h5py, and HDF5 can crash the process (a segmentation
    fault, not an exception) when it closes a file whose write failed for lack of space
    (h5py/h5py#914, #2160; seen on a full tmpfs). So a local save first checks the free
    space; on Cloud Storage the write is an upload, which fails cleanly.
    """
    directory = posixpath.dirname(path) or "."
    if "://" in path or not os.path.isdir(directory):
        return
    needed = variable_bytes + _SAVE_OVERHEAD_BYTES
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: about {needed} bytes needed, {free} free", path)


def copy_atomically(source, path):
    """A copy of `source` at `path`, whole or not at all."""
    return _saved_atomically(path, lambda temporary: tf.io.gfile.copy(source, temporary, overwrite=True))


# Keras saves only to names that end in these: the temporary name keeps the suffix.
_KERAS_SUFFIXES = (".weights.h5", ".keras")


def _saved_atomically(path, save):
    stem, suffix = _split_suffix(path)
    temporary = _temporary_name(stem) + suffix
    with _removed_on_failure(temporary):
        save(temporary)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    return path


def _split_suffix(path):
    for suffix in _KERAS_SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix)], suffix
    return path, ""


@contextlib.contextmanager
def _removed_on_failure(temporary):
    """Deletes `temporary` when the block fails (a full disk, a lost connection): what
    is left is the old file, not an orphan beside it."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
        raise


def remove_temporaries(path):
    """Deletes what a killed write of `path` left under a temporary name (on Cloud
    Storage an upload lands whole, so a kill mid-write leaves a whole orphan object).
    Safe because the directory has one writer, who holds its lock (dir_lock)."""
    stem, suffix = _split_suffix(path)
    for orphan in tf.io.gfile.glob(f"{stem}.tmp-*{suffix}"):
        with contextlib.suppress(tf.errors.NotFoundError):
            tf.io.gfile.remove(orphan)


def _temporary_name(path):
    # Unique and unguessable: two processes that write one file (a resumed chief and its
    # predecessor's straggler) never share it, and no one can plant a symlink under it
    # beforehand. The rename then replaces whatever `path` is, a symlink included,
    # rather than writing through it.
    return f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def refuse_symlinks(paths):
    """Raises SymlinkRefused when any of the local `paths` the package writes is a
    symlink: it would write or delete through it, outside the directory."""
    linked = dir_lock.symlinks_among(paths)
    if linked:
        raise SymlinkRefused(
            f"Expected the package's own files and folders at {linked}. Received symlinks there. Remove "
            "them or choose another directory: nothing is written or deleted through a symlink."
        )


class SymlinkRefused(errors.UserError, ValueError):
    """A name the package writes is a symlink."""


class DamagedFile(errors.UserError, ValueError):
    """A file the package wrote whole no longer holds what it wrote."""


def write_json(path, value):
    """`write_atomically` of `value` as indented, key-sorted JSON."""
    return write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())
