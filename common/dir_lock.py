"""One writer per directory: a lock in `<directory>/.s140.lock` for as long as a run writes.

Every command that writes a directory (s140-preprocess's output, s140-train's job dir,
s140-tune's tuner dir, s140-compare's job dir) holds its lock. A second writer fails at
once with a message naming the holder (host, pid, command, start time).

* **Local disk**: the file is `flock`ed. The kernel drops that lock when its process
  ends, however it ends, so a killed run never leaves a stale lock; the next run takes
  it. The file is opened with O_NOFOLLOW: a symlink in its place is refused.
* **Cloud Storage** (gs://): the object is created only if absent
  (`if_generation_match=0`) and rewritten by its holder every `HEARTBEAT_SECONDS`. One
  not rewritten for `STALE_SECONDS` belongs to a run that died; it is taken over by
  replacing exactly that generation, so of two runs that find it stale only one wins.

Under MultiWorkerMirroredStrategy only the chief, which writes, takes the lock.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import time

from absl import logging

from common import errors

LOCK_NAME = ".s140.lock"
HEARTBEAT_SECONDS = 60
STALE_SECONDS = 300
_GS = "gs://"


class DirectoryError(errors.UserError, RuntimeError):
    """The directory cannot be written by this run (see the subclasses and messages)."""


class DirectoryLocked(DirectoryError):
    """Another run holds the directory's lock."""


def holder(command):
    """What a lock says about its holder."""
    return {
        "host": socket.gethostname(), "pid": os.getpid(), "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def holding(directory, *, command):
    """Holds `directory`'s lock for the `with` block (creating the directory, and
    removing it again if the block leaves it empty).

    Raises:
      DirectoryLocked: another run holds it.
      DirectoryError: it names a file, or this process may not write there.
    """
    me = holder(command)
    if directory.startswith(_GS):
        release = _GcsLock(directory, me).acquire()
    elif "://" in directory:  # another file system Beam or TensorFlow may reach: no lock there
        logging.warning("No lock on %s: only local paths and gs:// are locked.", directory)
        release = lambda: None  # noqa: E731
    else:
        release = _acquire_local(directory, me)
    try:
        yield
    finally:
        release()


def symlinks_among(paths):
    """The local `paths` that are symlinks, sorted: a writer must not write or delete
    through them (object stores have none)."""
    return sorted(path for path in paths if "://" not in path and os.path.islink(path))


def _refusal(directory, held_by):
    who = (f"{held_by.get('command', 'a run')} (host {held_by.get('host')}, pid {held_by.get('pid')}, "
           f"started {held_by.get('started')})") if held_by else "another run"
    return DirectoryLocked(
        f"Expected {directory} to have no other writer. Received: it is in use by {who}. "
        "Wait for that run to end, or choose another directory."
    )


# --- Local disk.


def _acquire_local(directory, me):
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise DirectoryError(f"Expected {directory} to be a directory (or absent). Received a file.")
    created = not os.path.isdir(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:  # read-only, no permission, a file on the way, a full disk
        raise DirectoryError(f"Expected to create the directory {directory}. Received: {error.strerror}.") from None
    path = os.path.join(directory, LOCK_NAME)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise DirectoryError(
                    f"Expected {path} to be the package's lock file. Received a symlink; remove it."
                ) from None
            raise DirectoryError(
                f"Expected to write in {directory}. Received: {error.strerror} (the lock file {LOCK_NAME})."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held_by = _parse(os.pread(fd, 4096, 0))
            os.close(fd)
            raise _refusal(directory, held_by) from None
        # The previous holder unlinks the file as it releases; if that happened between
        # our open and our lock, we hold a lock on a file no longer there: start again.
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)

    def release():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
        if created:  # a run that failed before writing anything leaves no empty folder
            with contextlib.suppress(OSError):
                os.rmdir(directory)

    return release


def _parse(raw):
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- Cloud Storage.


def _client():
    """A Cloud Storage client with the process's default credentials, or anonymous ones
    when it has none: TensorFlow's own gs:// file system, through which the run writes
    the directory, does the same, so the lock goes wherever the run's files go."""
    from google.auth import exceptions as auth_exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    try:
        return storage.Client(project=None)  # None: no project needed, none inferred
    except auth_exceptions.DefaultCredentialsError:
        return storage.Client(project="<none>", credentials=AnonymousCredentials())


class _GcsLock:
    def __init__(self, directory, me):
        bucket, _, prefix = directory[len(_GS):].partition("/")
        name = f"{prefix.rstrip('/')}/{LOCK_NAME}" if prefix.strip("/") else LOCK_NAME
        self.directory, self.me = directory, me
        self.blob = _client().bucket(bucket).blob(name)
        self.generation = None
        self.stop = threading.Event()

    def acquire(self):
        from google.api_core import exceptions

        try:
            self._write(if_generation_match=0)
        except exceptions.PreconditionFailed:
            self.blob.reload()
            age = time.time() - self.blob.updated.timestamp()
            if age < STALE_SECONDS:
                raise _refusal(self.directory, _parse(self.blob.download_as_bytes())) from None
            logging.warning("Taking over %s: its holder has not renewed it for %.0f s.", self.blob.name, age)
            try:
                self._write(if_generation_match=self.blob.generation)
            except exceptions.PreconditionFailed:
                raise _refusal(self.directory, {}) from None  # another run took it first
        beat = threading.Thread(target=self._heartbeat, daemon=True, name="s140-lock-heartbeat")
        beat.start()

        def release():
            self.stop.set()
            beat.join()
            with contextlib.suppress(exceptions.NotFound, exceptions.PreconditionFailed):
                self.blob.delete(if_generation_match=self.generation)

        return release

    def _write(self, *, if_generation_match):
        self.blob.upload_from_string(json.dumps(self.me), if_generation_match=if_generation_match)
        self.generation = self.blob.generation

    def _heartbeat(self):
        from google.api_core import exceptions

        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self._write(if_generation_match=self.generation)
            except exceptions.PreconditionFailed:
                logging.error("The lock %s was taken over by another run.", self.blob.name)
                return
            except exceptions.GoogleAPIError as error:  # a missed beat; the next may land
                logging.warning("Could not renew the lock %s: %s", self.blob.name, error)
