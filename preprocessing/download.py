"""Fetching the official Sentiment140 and GloVe archives into a local cache.

`keras.utils.get_file` does the transfer: it caches (a file already in the cache is not
fetched again), shows a progress bar and checks a sha256 when one is given. This module
adds what it lacks: one cache directory the caller chooses, extraction of only the files
we need (once, not on every call), and errors that name the URL and the manual fix.

Checksums: Stanford publishes none for these archives, so none is built in; callers who
have verified a copy pass its sha256 and every later download is checked against it.
Every base URL is a parameter so that mirrors, and the tests' local HTTP server, work.
"""

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
import zipfile

from absl import logging

from common import errors

SENTIMENT140_BASE_URL = "https://cs.stanford.edu/people/alecmgo"
SENTIMENT140_ARCHIVE = "trainingandtestdata.zip"
SENTIMENT140_TRAIN_CSV = "training.1600000.processed.noemoticon.csv"
SENTIMENT140_TEST_CSV = "testdata.manual.2009.06.14.csv"
SENTIMENT140_DIR = "sentiment140"  # extraction directory inside the cache

GLOVE_BASE_URL = "https://nlp.stanford.edu/data"


@dataclasses.dataclass(frozen=True)
class GloveArchive:
    """One official GloVe download: a zip of plain-text vector files."""

    filename: str
    members: tuple  # the .txt files inside, smallest dimension first
    description: str


GLOVE_ARCHIVES = {
    "6B": GloveArchive(
        "glove.6B.zip",
        tuple(f"glove.6B.{dim}d.txt" for dim in (50, 100, 200, 300)),
        "Wikipedia 2014 + Gigaword 5: 400K lower-cased words, 822 MB",
    ),
    "twitter.27B": GloveArchive(
        "glove.twitter.27B.zip",
        tuple(f"glove.twitter.27B.{dim}d.txt" for dim in (25, 50, 100, 200)),
        "2B tweets: 1.2M lower-cased words, 1.42 GB",
    ),
    "840B": GloveArchive(
        "glove.840B.300d.zip",
        ("glove.840B.300d.txt",),
        "Common Crawl: 2.2M cased words, 2.03 GB",
    ),
}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SCHEMES = ("http", "https", "file")


class DownloadError(errors.UserError, RuntimeError):
    """An archive could not be fetched, verified or extracted."""


class ChecksumError(DownloadError):
    """A fetched file's sha256 is not the expected one."""


def url_of(base_url, filename):
    """The URL of `filename` under `base_url`, whether or not the base ends in "/"."""
    return f"{base_url.rstrip('/')}/{filename}"


def fetch_file(filename, cache_dir, *, base_url, sha256=None):
    """Downloads `base_url/filename` into `cache_dir` unless it is already there.

    Args:
      filename: the file name on the server and in the cache.
      cache_dir: local directory of the cache ("~" is expanded); created if missing.
      base_url: where the file lives (http, https or file URL).
      sha256: expected hex digest, or None to skip the check.

    Returns:
      The local path of the file.

    Raises:
      ValueError: `sha256` is not 64 hex digits, or `base_url` has no known scheme.
      ChecksumError: the downloaded file has another sha256 (it is deleted).
      DownloadError: the file could not be fetched.
    """
    if sha256 is not None and not _SHA256.match(sha256.lower()):
        raise errors.SettingError(f"Expected sha256 to be 64 hex digits. Received: {sha256!r}.")
    cache_dir = _absolute(cache_dir)
    url = url_of(base_url, filename)
    _check_url(url)
    target = os.path.join(cache_dir, filename)
    # Local: Keras loads TensorFlow (seconds), which `s140-download --help` and a typo in
    # a flag should not have to wait for.
    import keras

    try:
        # An absolute cache_subdir pins the location: given only cache_dir, Keras silently
        # falls back to /tmp/.keras when it is not writable, and our printed paths would lie.
        return keras.utils.get_file(
            fname=filename,
            origin=url,
            file_hash=sha256.lower() if sha256 else None,
            hash_algorithm="sha256",
            cache_dir=cache_dir,
            cache_subdir=cache_dir,
        )
    except ValueError as error:
        # With a valid URL and file name, get_file raises ValueError only for a hash
        # mismatch, and leaves the bad file behind: remove it so that the next run
        # downloads again instead of failing on the same bytes.
        if sha256 is None:
            raise _download_error(url, target, error) from error
        raise _checksum_error(url, target, sha256) from error
    # get_file turns HTTPError and URLError into a bare Exception, so nothing narrower works.
    except Exception as error:  # noqa: BLE001
        raise _download_error(url, target, error) from error


def _check_url(url):
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise errors.SettingError(
            f"Expected a base URL starting with one of {[s + '://' for s in _SCHEMES]}. "
            f"Received: {url!r}."
        )


def _download_error(url, target, error):
    return DownloadError(
        f"Could not download {url}: {error}. Expected the URL to be reachable from this "
        f"machine. To use a copy fetched elsewhere, put it at {target} and run again; or "
        "point the base URL (s140-download --base_url) at a mirror that has it."
    )


def _checksum_error(url, target, expected):
    received = _sha256_of(target) if os.path.exists(target) else "no file"
    if os.path.exists(target):
        os.remove(target)
    return ChecksumError(
        f"Expected {url} to have sha256 {expected.lower()}. Received: {received}. The file "
        f"was deleted from {os.path.dirname(target)}. Check that the mirror serves the "
        "official archive, or the checksum you passed."
    )


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _absolute(cache_dir):
    return os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))


def extract_members(archive, members, destination):
    """Extracts `members` of a zip into `destination`, skipping those already there.

    Keras' own `extract=True` unpacks the whole archive on every call; the Sentiment140
    zip inflates to 240 MB, so we extract once and only what we read.

    Returns:
      {member: local path}.

    Raises:
      DownloadError: the archive is not a zip or lacks a member.
    """
    paths = {member: os.path.join(destination, member) for member in members}
    missing = [member for member, path in paths.items() if not os.path.exists(path)]
    if not missing:
        return paths
    os.makedirs(destination, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            for member in missing:
                if member not in names:
                    raise DownloadError(
                        f"Expected {member!r} inside {archive}. Received members: {names}. "
                        "Is this the official archive?"
                    )
                _extract_one(zipped, member, paths[member])
    except zipfile.BadZipFile as error:
        raise DownloadError(
            f"Expected {archive} to be a zip archive. Received: {error}. Delete it and run "
            "again to download a fresh copy."
        ) from error
    return paths


def _extract_one(zipped, member, path):
    # Write to a temporary name and rename: an interrupted extraction must not leave a
    # truncated file that the next run would take for a complete one.
    logging.info("Extracting %s to %s", member, path)
    handle, partial = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out, zipped.open(member) as source:
            shutil.copyfileobj(source, out, length=1 << 20)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def fetch_sentiment140(cache_dir, *, base_url=SENTIMENT140_BASE_URL, sha256=None):
    """Downloads `trainingandtestdata.zip` (once) and extracts its two CSV files (once).

    Returns:
      {"archive": zip path, "train_csv": training CSV path, "test_csv": test CSV path};
      the CSVs are in `<cache_dir>/sentiment140/`.

    Raises:
      DownloadError, ChecksumError, ValueError: see `fetch_file`.
    """
    archive = fetch_file(SENTIMENT140_ARCHIVE, cache_dir, base_url=base_url, sha256=sha256)
    paths = extract_members(
        archive,
        (SENTIMENT140_TRAIN_CSV, SENTIMENT140_TEST_CSV),
        os.path.join(_absolute(cache_dir), SENTIMENT140_DIR),
    )
    return {
        "archive": archive,
        "train_csv": paths[SENTIMENT140_TRAIN_CSV],
        "test_csv": paths[SENTIMENT140_TEST_CSV],
    }


def glove_archive(name):
    """The registry entry of a GloVe archive name ("6B", "twitter.27B", "840B").

    Raises:
      ValueError: naming the valid names.
    """
    if name not in GLOVE_ARCHIVES:
        raise errors.SettingError(
            f"Expected a GloVe archive name, one of {sorted(GLOVE_ARCHIVES)}. Received: {name!r}."
        )
    return GLOVE_ARCHIVES[name]


def fetch_glove(name, cache_dir, *, base_url=GLOVE_BASE_URL, sha256=None):
    """Downloads the GloVe zip `name` (once) and returns its local path, not extracted.

    The preprocessing job reads vectors straight from the zip
    (`--glove=<zip>#<member>`), so the 1-5 GB of text never lands on disk.

    Raises:
      ValueError: unknown name or malformed sha256.
      DownloadError, ChecksumError: see `fetch_file`.
    """
    archive = glove_archive(name)
    return fetch_file(archive.filename, cache_dir, base_url=base_url, sha256=sha256)


def glove_flag_values(zip_path):
    """`s140-preprocess --glove` values, one per vector file inside the zip.

    Read from the zip itself rather than the registry, so a mirror's repackaged archive
    still gives values that work.

    Raises:
      DownloadError: the file is not a zip or holds no .txt file.
    """
    try:
        with zipfile.ZipFile(zip_path) as zipped:
            members = sorted(
                (name for name in zipped.namelist() if name.endswith(".txt")), key=_dim_order
            )
    except zipfile.BadZipFile as error:
        raise DownloadError(
            f"Expected {zip_path} to be a zip archive. Received: {error}. Delete it and run "
            "again to download a fresh copy."
        ) from error
    if not members:
        raise DownloadError(f"Expected .txt vector files inside {zip_path}. Received none.")
    from preprocessing import glove  # local: it loads Beam, for one constant

    return [f"{zip_path}{glove.ZIP_MEMBER_SEPARATOR}{member}" for member in members]


def _dim_order(member):
    """Sorts "glove.6B.50d.txt" before "glove.6B.100d.txt" (by number, not by text)."""
    found = re.search(r"(\d+)d\.txt$", member)
    return (int(found.group(1)) if found else 0, member)
