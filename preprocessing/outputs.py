"""Writing the job's files so that none of them is ever seen half-written.

Cloud Storage objects appear only when their upload completes; on a local disk we write
to a temporary name and rename, which is atomic on POSIX.
"""

import contextlib
import io
import os
import posixpath
import shutil
import uuid

import numpy as np
from apache_beam.io.filesystems import FileSystems

from common import dir_lock
from common import errors
from preprocessing.schema import (
    EMBEDDINGS_FILE, METADATA_FILE, REJECTED_DIR, SPLITS, UNCOVERED_IDS_FILE, VOCAB_FILE,
)


class OutputDirNotEmpty(errors.UserError, FileExistsError):
    pass


class OutputHoldsInput(errors.UserError, ValueError):
    pass


@contextlib.contextmanager
def _created_atomically(path):
    """A writable handle on a temporary name beside `path`, renamed to `path` on success."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with FileSystems.create(temporary, compression_type="uncompressed") as handle:
            yield handle
        FileSystems.rename([temporary], [path])
    except BaseException:  # a full disk, a lost connection: no orphan beside the old file
        with contextlib.suppress(Exception):
            FileSystems.delete([temporary])
        raise


def write_bytes(path, data):
    with _created_atomically(path) as handle:
        handle.write(data)
    return path


def copy_local_file(local_path, path):
    """Streams a local file to `path` (local or gs://) under a temporary name, then renames."""
    with open(local_path, "rb") as source, _created_atomically(path) as target:
        shutil.copyfileobj(source, target, length=8 << 20)
    return path


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def write_npy(path, array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return write_bytes(path, buffer.getvalue())


def _contents(directory):
    return FileSystems.match([posixpath.join(directory, "**")])[0].metadata_list


# What the job writes at the top of its output directory; --overwrite deletes these and
# nothing else. Temporary names (`<name>.tmp-<hex>`) are of an interrupted write of ours.
_OWN_FILES = (METADATA_FILE, VOCAB_FILE, EMBEDDINGS_FILE, UNCOVERED_IDS_FILE)
_OWN_DIRS = SPLITS + (REJECTED_DIR,)


def _is_ours(relative):
    top = relative.split("/")[0]
    if "/" in relative:
        return top in _OWN_DIRS
    return top.split(".tmp-")[0] in _OWN_FILES or top == dir_lock.LOCK_NAME


def _absolute(path):
    return path if "://" in path else os.path.realpath(path)


def refuse_inputs_inside(directory, inputs):
    """Raises OutputHoldsInput when an input is `directory` itself or lies under it:
    replacing the directory would delete it (seen: --overwrite deleting the train CSV)."""
    root = _absolute(directory).rstrip("/") + "/"
    inside = sorted(path for path in inputs if (_absolute(path).rstrip("/") + "/").startswith(root))
    if inside:
        raise OutputHoldsInput(
            f"Expected --output_dir {directory} to hold none of the job's inputs. Received: it holds "
            f"{inside}. Choose an --output_dir outside the inputs' folders."
        )


def _refuse_symlinks(directory):
    # A symlinked `train/` would have the job delete and write files outside the directory.
    own = {posixpath.join(directory, name): name for name in _OWN_FILES + _OWN_DIRS}
    linked = [own[path] for path in dir_lock.symlinks_among(own)]
    if linked:
        raise OutputDirNotEmpty(
            f"Expected the job's own files and folders in --output_dir {directory}. Received symlinks in "
            f"their place: {linked}. Remove them or choose another --output_dir; nothing was deleted."
        )


def prepare_output_dir(directory, *, overwrite):
    """Refuses a non-empty output directory unless `overwrite`, then empties it of the
    job's own outputs. Anything else in it is refused, never deleted.

    Emptying first matters: stale shards of an earlier run with more shards would
    otherwise sit beside the new ones and be read as part of the data.
    """
    _refuse_symlinks(directory)
    existing = _contents(directory) if FileSystems.exists(directory) else []
    relative = {m.path: posixpath.relpath(m.path, directory) for m in existing}
    relative = {path: name for path, name in relative.items() if name != dir_lock.LOCK_NAME}
    if relative and not overwrite:
        names = sorted(relative.values())[:5]
        raise OutputDirNotEmpty(
            f"Expected --output_dir {directory} to be empty or absent. Received a directory "
            f"holding {names}{' ...' if len(relative) > 5 else ''}. Pass --overwrite to replace it."
        )
    foreign = sorted(name for name in relative.values() if not _is_ours(name))
    if foreign:
        raise OutputDirNotEmpty(
            f"Expected --output_dir {directory} to hold only what s140-preprocess writes before "
            f"--overwrite replaces it. Received other files: {foreign[:5]}{' ...' if len(foreign) > 5 else ''}. "
            "Move them away or choose another --output_dir; nothing was deleted."
        )
    if relative:
        # metadata.json goes first: if this is interrupted, what remains must not look complete.
        paths = sorted(relative, key=lambda p: not p.endswith("/" + METADATA_FILE))
        FileSystems.delete(paths[:1])
        FileSystems.delete(paths[1:])
