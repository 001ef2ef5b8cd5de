"""Small files of runs and sweeps (JSON, CSV, Markdown, PNG), written so that no reader
and no kill ever sees half of one.

Everything goes through `tf.io.gfile`, so local paths and gs:// behave alike: the bytes
go to a temporary name beside the target and are renamed over it. A local rename is
atomic on POSIX; on Cloud Storage an object appears only once its upload completes, and
the rename is a server-side copy of a complete object.
"""

import json
import os
import posixpath

from preprocessing._tf import tf


def write_atomically(path, data):
    """Writes `data` (str or bytes) to `path`, replacing what was there."""
    directory = posixpath.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    # The pid keeps two processes that write one file (a resumed chief and its
    # predecessor's straggler) from sharing a temporary name.
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return path


def write_json(path, value):
    """`write_atomically` of `value` as indented, key-sorted JSON."""
    return write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())
