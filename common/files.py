"""Small files of runs and sweeps (JSON, CSV, Markdown, PNG), written so that no reader
and no kill ever sees half of one.

Everything goes through `tf.io.gfile`, so local paths and gs:// behave alike: the bytes
go to a temporary name beside the target and are renamed over it. A local rename is
atomic on POSIX; on Cloud Storage an object appears only once its upload completes, and
the rename is a server-side copy of a complete object.
"""

import contextlib
import json
import os
import posixpath
import uuid

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
    the previous file whole (Keras saves only to names ending in .keras)."""
    temporary = _temporary_name(path[: -len(".keras")]) + ".keras"
    with _removed_on_failure(temporary):
        model.save(temporary, overwrite=True)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    return path


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
    stem, keras_suffix = (path[: -len(".keras")], ".keras") if path.endswith(".keras") else (path, "")
    for orphan in tf.io.gfile.glob(f"{stem}.tmp-*{keras_suffix}"):
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
