"""Writing the job's files so that none of them is ever seen half-written.

Cloud Storage objects appear only when their upload completes; on a local disk we write
to a temporary name and rename, which is atomic on POSIX.
"""

import contextlib
import io
import posixpath
import shutil
import uuid

import numpy as np
from apache_beam.io.filesystems import FileSystems

from preprocessing.schema import METADATA_FILE


class OutputDirNotEmpty(FileExistsError):
    pass


@contextlib.contextmanager
def _created_atomically(path):
    """A writable handle on a temporary name beside `path`, renamed to `path` on success."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary, compression_type="uncompressed") as handle:
        yield handle
    FileSystems.rename([temporary], [path])


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


def prepare_output_dir(directory, *, overwrite):
    """Refuses a non-empty output directory unless `overwrite`, then empties it.

    Emptying first matters: stale shards of an earlier run with more shards would
    otherwise sit beside the new ones and be read as part of the data.
    """
    existing = _contents(directory) if FileSystems.exists(directory) else []
    if existing and not overwrite:
        names = sorted(posixpath.relpath(m.path, directory) for m in existing)[:5]
        raise OutputDirNotEmpty(
            f"Expected --output_dir {directory} to be empty or absent. Received a directory "
            f"holding {names}{' ...' if len(existing) > 5 else ''}. Pass --overwrite to replace it."
        )
    if existing:
        # metadata.json goes first: if this is interrupted, what remains must not look complete.
        paths = sorted((m.path for m in existing), key=lambda p: not p.endswith("/" + METADATA_FILE))
        FileSystems.delete(paths[:1])
        FileSystems.delete(paths[1:])
