"""Cloud Storage uploads: how s140-submit stages a user's local input files.

Everything goes through the official `google-cloud-storage` client and its retry
policy, never hand-written HTTP:

* Reads use `DEFAULT_RETRY` (idempotent).
* Writes are *conditional*: a create-only write sends `ifGenerationMatch=0`, an
  overwrite sends the generation it replaces. That makes a retried upload safe (a
  duplicate attempt cannot clobber someone else's object) and lets the library's
  `DEFAULT_RETRY_IF_GENERATION_SPECIFIED` retry 429/5xx and connection errors.
* No half-written object is ever visible under its final name. A Cloud Storage object
  appears only when its upload completes: a single-request (multipart) upload either
  lands whole or not at all, and a resumable upload becomes an object only when its last
  chunk is finalised. An upload interrupted mid-stream therefore leaves nothing behind.
  Each upload's CRC32C is checked by the library (`checksum="auto"`: the server checks
  a single-request upload, the library compares a resumable one's at its end).

The package's own jobs do not come through here: the Beam job reads and writes gs://
through Beam's FileSystems, and the trainer and tuner through TensorFlow's file system.

Tests run this module against the `gcp-storage-emulator` package: the client honours
`STORAGE_EMULATOR_HOST`.
"""

import base64
import dataclasses
import os
import posixpath

from absl import logging

from common import errors

GS_PREFIX = "gs://"
# Resumable uploads send chunks of this size (a multiple of 256 KiB, as the API
# requires); files up to the library's multipart limit (8 MiB) go in one request.
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
_READ_BLOCK = 1024 * 1024


class StorageUriError(errors.UserError, ValueError):
    """A location is not the gs:// URI that was expected."""


class ObjectExistsError(errors.UserError, FileExistsError):
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
    chunk_size=DEFAULT_CHUNK_SIZE,
    client=None,
):
    """Uploads a binary stream to one object, atomically and with conditional retries.

    Args:
      stream: a readable binary file object, positioned at the start of the data.
      gs_uri: the object's gs:// URI.
      size: the byte count when known; known sizes up to 8 MiB go in a single request,
        anything else as a resumable upload in `chunk_size` chunks.
      overwrite: replace an existing object (conditionally on its current generation);
        when False an existing object makes the write fail with ObjectExistsError.
      chunk_size: resumable chunk size, a multiple of 256 KiB.
      client: a storage.Client (default: `make_client()`).

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
            if_generation_match=generation_match,
            checksum="auto",  # multipart: the server checks; resumable: compared at the end
            retry=write_retry,  # safe: every write carries an ifGenerationMatch condition
        )
    except exceptions.PreconditionFailed as error:
        raise ObjectExistsError(
            f"Expected {target} to {'be unchanged during the upload' if overwrite else 'not exist yet'}. "
            f"Received: an object under that name (generation precondition "
            f"ifGenerationMatch={generation_match} failed). Pass overwrite=True to replace it."
        ) from error
    return ObjectInfo(str(target), int(blob.size), blob.crc32c, int(blob.generation))


def upload_file(local_path, gs_uri, *, overwrite=False, client=None):
    """Uploads one local file to `gs_uri`.

    See `upload_stream` for the arguments and the atomicity and retry guarantees.

    Raises:
      FileNotFoundError: `local_path` does not exist.
    """
    if not os.path.isfile(local_path):
        raise errors.MissingInput(f"Expected a local file to upload. Received: {local_path!r} (not found).")
    with open(local_path, "rb") as handle:
        info = upload_stream(handle, gs_uri, size=os.path.getsize(local_path), overwrite=overwrite, client=client)
    logging.info("Uploaded %s -> %s (%d bytes, crc32c %s)", local_path, info.uri, info.size, info.crc32c)
    return info


def matching_object(gs_uri, local_path, *, client=None):
    """The `ObjectInfo` of the object at `gs_uri` when it holds exactly the bytes of
    `local_path` (same size and CRC32C), else None: a re-submitted job need not upload
    the same input again."""
    target = parse_gs_uri(gs_uri, what="the upload target", require_name=True)
    read_retry, _ = _retry_policies()
    blob = _client(client).bucket(target.bucket).get_blob(target.name, retry=read_retry)
    if blob is None or blob.size != os.path.getsize(local_path) or blob.crc32c != crc32c_of_file(local_path):
        return None
    return ObjectInfo(str(target), int(blob.size), blob.crc32c, int(blob.generation))
