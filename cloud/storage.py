"""Cloud Storage: where this package itself moves files (uploads, downloads, copies).

Everything goes through the official `google-cloud-storage` client and its retry
policy, never hand-written HTTP:

* Reads, listings and deletes use `DEFAULT_RETRY` (idempotent).
* Writes are *conditional*: a create-only write sends `ifGenerationMatch=0`, an
  overwrite sends the generation it replaces. That makes a retried upload safe (a
  duplicate attempt cannot clobber someone else's object) and lets the library's
  `DEFAULT_RETRY_IF_GENERATION_SPECIFIED` retry 429/5xx and connection errors.
* No half-written object is ever visible under its final name. A Cloud Storage object
  appears only when its upload completes: a single-request (multipart) upload either
  lands whole or not at all, and a resumable upload becomes an object only when its last
  chunk is finalised. An upload interrupted mid-stream therefore leaves nothing behind.
  On top of that each upload is checked: the library sends/compares a CRC32C, and
  `upload_file` compares the object's size and CRC32C with the local file's and deletes
  the object (that generation only) when they differ.
* Downloads go to a temporary file beside the target and are renamed into place, so a
  local reader never sees a partial file either.

Local paths are handled too (`copy`), so callers can say "copy this report to
--output_dir" without caring whether it is local or gs://.

Tests run this module against the `gcp-storage-emulator` package: the client honours
`STORAGE_EMULATOR_HOST`. (`tf.io.gfile` does not: TensorFlow's GCS filesystem always
talks to storage.googleapis.com, so code reading gs:// through TensorFlow can only be
exercised against real Cloud Storage.)
"""

import base64
import dataclasses
import os
import posixpath
import tempfile
import typing

from absl import logging

GS_PREFIX = "gs://"
# Resumable uploads send chunks of this size (a multiple of 256 KiB, as the API
# requires); files up to the library's multipart limit (8 MiB) go in one request.
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
_READ_BLOCK = 1024 * 1024


class StorageUriError(ValueError):
    """A location is not the gs:// URI that was expected."""


class UploadVerificationError(RuntimeError):
    """An upload finished but the object differs from the local bytes (it was deleted)."""


class ObjectExistsError(FileExistsError):
    """A create-only write found an object under the name already."""


@dataclasses.dataclass(frozen=True)
class GsUri:
    """A parsed gs:// location: bucket and object name (the name may be empty)."""

    bucket: str
    name: str

    def __str__(self):
        return f"{GS_PREFIX}{self.bucket}/{self.name}"

    def join(self, *parts):
        return GsUri(self.bucket, posixpath.join(self.name, *parts) if self.name else posixpath.join(*parts))


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """What an upload produced."""

    uri: str
    size: int
    crc32c: str  # base64 of the big-endian CRC32C, as Cloud Storage reports it
    generation: int


def is_gs_uri(path):
    return isinstance(path, str) and path.startswith(GS_PREFIX)


def parse_gs_uri(uri, *, what="location", require_name=False):
    """Splits "gs://bucket/some/name" into a `GsUri`.

    Args:
      uri: the location.
      what: how errors name it, e.g. "--output_dir".
      require_name: also require an object name after the bucket.

    Raises:
      StorageUriError: for anything but gs://bucket[/name], naming what was received.
    """
    if not isinstance(uri, str) or not uri.startswith(GS_PREFIX):
        hint = ""
        if isinstance(uri, str) and uri.startswith(("gcs://", "gs:/", "https://storage.googleapis.com/")):
            hint = " Write Cloud Storage locations as gs://BUCKET/PATH."
        raise StorageUriError(
            f"Expected {what} to be a Cloud Storage URI gs://BUCKET[/PATH]. Received: {uri!r}.{hint}"
        )
    bucket, _, name = uri[len(GS_PREFIX):].partition("/")
    if not bucket or not _valid_bucket(bucket):
        raise StorageUriError(
            f"Expected {what} to start with gs:// and a bucket name (lower-case letters, digits, "
            f"-, _ and ., starting and ending with a letter or digit). Received: {uri!r}."
        )
    if require_name and not name.strip("/"):
        raise StorageUriError(f"Expected {what} to name an object: gs://BUCKET/PATH. Received: {uri!r}.")
    return GsUri(bucket, name)


def _valid_bucket(bucket):
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
    # Cloud Storage itself enforces the length rules (3-63, or up to 222 with dots).
    return len(bucket) <= 222 and set(bucket) <= allowed and bucket[0].isalnum() and bucket[-1].isalnum()


def make_client(project=None, credentials=None):
    """A `google.cloud.storage.Client`: application default credentials unless given.

    With STORAGE_EMULATOR_HOST set the client talks to that emulator (anonymously).
    """
    from google.cloud import storage

    return storage.Client(project=project, credentials=credentials)


def _client(client):
    return client if client is not None else make_client()


def _retry_policies():
    from google.cloud.storage import retry

    return retry.DEFAULT_RETRY, retry.DEFAULT_RETRY_IF_GENERATION_SPECIFIED


def crc32c_of_file(path):
    """The base64 CRC32C of a local file, in Cloud Storage's notation."""
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_READ_BLOCK), b""):
            checksum.update(block)
    return base64.b64encode(checksum.digest()).decode("ascii")


def crc32c_of_bytes(data):
    import google_crc32c

    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


def _precondition(blob, overwrite, read_retry):
    """ifGenerationMatch for a write: 0 (create only), or the generation being replaced."""
    if not overwrite:
        return 0
    try:
        blob.reload(retry=read_retry)
    except _not_found():
        return 0
    return blob.generation


def _not_found():
    from google.api_core import exceptions

    return exceptions.NotFound


def upload_stream(
    stream,
    gs_uri,
    *,
    size=None,
    overwrite=False,
    content_type=None,
    chunk_size=DEFAULT_CHUNK_SIZE,
    client=None,
    retry=None,
):
    """Uploads a binary stream to one object, atomically and with conditional retries.

    Args:
      stream: a readable binary file object, positioned at the start of the data.
      gs_uri: the object's gs:// URI.
      size: the byte count when known; known sizes up to 8 MiB go in a single request,
        anything else as a resumable upload in `chunk_size` chunks.
      overwrite: replace an existing object (conditionally on its current generation);
        when False an existing object makes the write fail with ObjectExistsError.
      content_type: the object's content type (default application/octet-stream).
      chunk_size: resumable chunk size, a multiple of 256 KiB.
      client: a storage.Client (default: `make_client()`).
      retry: override of the write's retry policy (default: retry on transient errors,
        which is safe because every write carries an ifGenerationMatch condition).

    Returns:
      An `ObjectInfo` of the new object.

    Raises:
      ObjectExistsError: the object exists and overwrite is False, or it changed while
        this write was under way.
      StorageUriError: `gs_uri` is not an object URI.
    """
    from google.api_core import exceptions

    target = parse_gs_uri(gs_uri, what="the upload target", require_name=True)
    read_retry, write_retry = _retry_policies()
    client = _client(client)
    blob = client.bucket(target.bucket).blob(target.name, chunk_size=chunk_size)
    generation_match = _precondition(blob, overwrite, read_retry)
    try:
        blob.upload_from_file(
            stream,
            size=size,
            content_type=content_type,
            if_generation_match=generation_match,
            checksum="auto",  # multipart: the server checks; resumable: compared at the end
            retry=retry if retry is not None else write_retry,
        )
    except exceptions.PreconditionFailed as error:
        raise ObjectExistsError(
            f"Expected {target} to {'be unchanged during the upload' if overwrite else 'not exist yet'}. "
            f"Received: an object under that name (generation precondition "
            f"ifGenerationMatch={generation_match} failed). Pass overwrite=True to replace it."
        ) from error
    return ObjectInfo(str(target), int(blob.size), blob.crc32c, int(blob.generation))


def upload_file(local_path, gs_uri, *, overwrite=False, content_type=None, chunk_size=DEFAULT_CHUNK_SIZE,
                client=None, retry=None):
    """Uploads one local file to `gs_uri` and verifies the object's size and CRC32C.

    See `upload_stream` for the arguments and the atomicity and retry guarantees.

    Raises:
      FileNotFoundError: `local_path` does not exist.
      UploadVerificationError: the object's size or CRC32C differ from the file's (the
        object is deleted before raising).
    """
    if not os.path.isfile(local_path):
        raise FileNotFoundError(f"Expected a local file to upload. Received: {local_path!r} (not found).")
    size = os.path.getsize(local_path)
    expected_crc = crc32c_of_file(local_path)
    client = _client(client)
    with open(local_path, "rb") as handle:
        info = upload_stream(
            handle, gs_uri, size=size, overwrite=overwrite, content_type=content_type,
            chunk_size=chunk_size, client=client, retry=retry,
        )
    _verify(info, size, expected_crc, client)
    logging.info("Uploaded %s -> %s (%d bytes, crc32c %s)", local_path, info.uri, info.size, info.crc32c)
    return info


def write_bytes_atomically(data, gs_uri, *, overwrite=True, content_type=None, client=None, retry=None):
    """Writes `data` (bytes or str, UTF-8) as one object: all of it or nothing.

    Meant for small files such as reports, metrics or best-hyperparameter JSON;
    `overwrite` defaults to True because such files are usually rewritten.

    Returns:
      An `ObjectInfo`.
    """
    import io

    if isinstance(data, str):
        data = data.encode("utf-8")
    client = _client(client)
    info = upload_stream(
        io.BytesIO(data), gs_uri, size=len(data), overwrite=overwrite, content_type=content_type,
        client=client, retry=retry,
    )
    _verify(info, len(data), crc32c_of_bytes(data), client)
    return info


def _verify(info, size, crc32c, client):
    if info.size == size and info.crc32c == crc32c:
        return
    target = parse_gs_uri(info.uri)
    blob = client.bucket(target.bucket).blob(target.name)
    read_retry, _ = _retry_policies()
    # Delete exactly the generation this upload made, never a newer one.
    blob.delete(if_generation_match=info.generation, retry=read_retry)
    raise UploadVerificationError(
        f"Expected {info.uri} to hold {size} bytes with crc32c {crc32c}. Received: {info.size} "
        f"bytes with crc32c {info.crc32c}; the object was deleted. Retry the upload."
    )


def download_file(gs_uri, local_path, *, client=None):
    """Downloads one object to `local_path` (parents created), checksum-verified.

    The bytes go to a temporary file in the same directory which is renamed into place
    only after the download and its checksum check succeeded.

    Returns:
      `local_path`.

    Raises:
      FileNotFoundError: there is no such object.
    """
    source = parse_gs_uri(gs_uri, what="the download source", require_name=True)
    read_retry, _ = _retry_policies()
    blob = _client(client).bucket(source.bucket).blob(source.name)
    directory = os.path.dirname(os.path.abspath(local_path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(local_path)}.", suffix=".part", dir=directory)
    os.close(handle)
    try:
        try:
            blob.download_to_filename(temporary, checksum="auto", retry=read_retry)
        except _not_found() as error:
            raise FileNotFoundError(f"Expected an object at {source}. Received: not found.") from error
        os.replace(temporary, local_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return local_path


def read_bytes(gs_uri, *, client=None):
    """The content of one object.

    Raises:
      FileNotFoundError: there is no such object.
    """
    source = parse_gs_uri(gs_uri, what="the object to read", require_name=True)
    read_retry, _ = _retry_policies()
    blob = _client(client).bucket(source.bucket).blob(source.name)
    try:
        return blob.download_as_bytes(checksum="auto", retry=read_retry)
    except _not_found() as error:
        raise FileNotFoundError(f"Expected an object at {source}. Received: not found.") from error


def exists(gs_uri, *, client=None):
    target = parse_gs_uri(gs_uri, require_name=True)
    read_retry, _ = _retry_policies()
    return _client(client).bucket(target.bucket).blob(target.name).exists(retry=read_retry)


def list_objects(gs_prefix, *, client=None):
    """gs:// URIs of all objects under a prefix (treated as a directory), sorted."""
    prefix = parse_gs_uri(gs_prefix, what="the prefix to list")
    read_retry, _ = _retry_policies()
    name = prefix.name.rstrip("/")
    blobs = _client(client).list_blobs(prefix.bucket, prefix=f"{name}/" if name else None, retry=read_retry)
    return sorted(f"{GS_PREFIX}{prefix.bucket}/{blob.name}" for blob in blobs)


def upload_dir(local_dir, gs_prefix, *, last=(), overwrite=False, client=None):
    """Uploads every file under `local_dir` to the same relative names under `gs_prefix`.

    Each object is written atomically; the files named in `last` (relative paths, e.g.
    "metadata.json", whose presence marks a complete data directory) are uploaded after
    all others, so a reader that waits for them never sees a half-copied directory.

    Returns:
      The `ObjectInfo`s in upload order.
    """
    if not os.path.isdir(local_dir):
        raise FileNotFoundError(f"Expected a local directory to upload. Received: {local_dir!r}.")
    prefix = parse_gs_uri(gs_prefix, what="the upload prefix")
    relative = []
    for root, _, files in os.walk(local_dir):
        for name in files:
            relative.append(os.path.relpath(os.path.join(root, name), local_dir).replace(os.sep, "/"))
    last = [name for name in last if name in relative]
    ordered = sorted(name for name in relative if name not in last) + list(last)
    client = _client(client)
    return [
        upload_file(os.path.join(local_dir, name), str(prefix.join(name)), overwrite=overwrite, client=client)
        for name in ordered
    ]


def download_dir(gs_prefix, local_dir, *, client=None):
    """Downloads every object under `gs_prefix` into `local_dir`; returns the local paths."""
    prefix = parse_gs_uri(gs_prefix, what="the download prefix")
    base = prefix.name.rstrip("/")
    client = _client(client)
    paths = []
    for uri in list_objects(gs_prefix, client=client):
        name = parse_gs_uri(uri).name
        relative = name[len(base) + 1:] if base else name
        if not relative or relative.endswith("/"):
            continue  # a "directory placeholder" object
        paths.append(download_file(uri, os.path.join(local_dir, *relative.split("/")), client=client))
    return paths


def copy(source, destination, *, overwrite=True, client=None):
    """Copies one file between any two of: local path, gs:// URI.

    gs:// -> gs:// is a server-side copy (atomic like any write); local -> local goes
    through a temporary file and a rename. Meant for reports, metrics and
    best-hyperparameter files.

    Returns:
      `destination`.
    """
    source_remote, destination_remote = is_gs_uri(source), is_gs_uri(destination)
    if source_remote and destination_remote:
        _copy_object(source, destination, overwrite=overwrite, client=_client(client))
    elif destination_remote:
        upload_file(source, destination, overwrite=overwrite, client=client)
    elif source_remote:
        if not overwrite and os.path.exists(destination):
            raise ObjectExistsError(f"Expected {destination} not to exist. Received: an existing file.")
        download_file(source, destination, client=client)
    else:
        _copy_local(source, destination, overwrite=overwrite)
    return destination


def _copy_object(source, destination, *, overwrite, client):
    from google.api_core import exceptions

    src = parse_gs_uri(source, what="the copy source", require_name=True)
    dst = parse_gs_uri(destination, what="the copy destination", require_name=True)
    read_retry, write_retry = _retry_policies()
    destination_blob = client.bucket(dst.bucket).blob(dst.name)
    generation_match = _precondition(destination_blob, overwrite, read_retry)
    source_bucket = client.bucket(src.bucket)
    try:
        source_bucket.copy_blob(
            source_bucket.blob(src.name), client.bucket(dst.bucket), dst.name,
            if_generation_match=generation_match, retry=write_retry,
        )
    except exceptions.NotFound as error:
        raise FileNotFoundError(f"Expected an object at {src}. Received: not found.") from error
    except exceptions.PreconditionFailed as error:
        raise ObjectExistsError(
            f"Expected {dst} to {'be unchanged during the copy' if overwrite else 'not exist yet'}. "
            "Received: an object under that name."
        ) from error


def _copy_local(source, destination, *, overwrite):
    import shutil

    if not os.path.isfile(source):
        raise FileNotFoundError(f"Expected a file to copy. Received: {source!r} (not found).")
    if not overwrite and os.path.exists(destination):
        raise ObjectExistsError(f"Expected {destination} not to exist. Received: an existing file.")
    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(destination)}.", suffix=".part", dir=directory)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


__all__: typing.List[str] = [
    "GsUri", "ObjectInfo", "StorageUriError", "UploadVerificationError", "ObjectExistsError",
    "is_gs_uri", "parse_gs_uri", "make_client", "upload_stream", "upload_file",
    "write_bytes_atomically", "download_file", "read_bytes", "exists", "list_objects",
    "upload_dir", "download_dir", "copy", "crc32c_of_file", "crc32c_of_bytes",
]
