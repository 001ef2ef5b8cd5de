"""The data contract between the preprocessing job and its readers (trainer, tuning).

Both sides import the names below instead of spelling file names or feature keys
themselves, so a change to the layout is a change in one place. `validate_metadata`
is what a reader calls first: it fails with a message naming what it expected and
what it found, before any TFRecord is opened.
"""

import json
import posixpath

from common import errors
from common import standardizers

SCHEMA_VERSION = 1

METADATA_FILE = "metadata.json"  # written last: its presence means the directory is complete
VOCAB_FILE = "vocab.txt"
EMBEDDINGS_FILE = "embeddings.npy"
# int64 [n], sorted: the ids of the rows of embeddings.npy that GloVe lacks ([UNK] and
# every vocabulary token without a vector), filled with fixed fallback vectors. Older
# data directories do not have it; metadata.json's embedding.uncovered_rows counts it.
UNCOVERED_IDS_FILE = "uncovered_ids.npy"
REJECTED_DIR = "rejected"
SPLITS = ("train", "val", "test")
TFRECORD_SUFFIX = ".tfrecord.gz"

PAD_TOKEN = ""
UNK_TOKEN = "[UNK]"
PAD_ID = 0
UNK_ID = 1

# Feature keys of each tf.train.Example.
TOKEN_IDS = "token_ids"  # int64[max_length], post-padded with PAD_ID, post-truncated
LABEL = "label"  # int64: 0 negative, 1 positive
TWEET_ID = "tweet_id"  # int64
TEXT = "text"  # bytes: the standardized text

# Sentiment140 polarity -> our label. Neutral (2) is counted and skipped, never trained on.
POLARITY_TO_LABEL = {"0": 0, "4": 1}
NEUTRAL_POLARITY = "2"

REQUIRED_METADATA_KEYS = (
    "schema_version",
    "standardizer_version",
    "max_length",
    "vocab_size",
    "embedding",
    "counts",
)


class ContractError(errors.UserError, ValueError):
    """A data directory does not hold what the contract promises."""


def feature_spec(max_length):
    """The `tf.io.parse_example` spec of one record."""
    from common.quiet_tf import tf  # local: the Beam job uses this module on workers without parsing

    return {
        TOKEN_IDS: tf.io.FixedLenFeature([max_length], tf.int64),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        TWEET_ID: tf.io.FixedLenFeature([], tf.int64),
        TEXT: tf.io.FixedLenFeature([], tf.string),
    }


def split_pattern(data_dir, split):
    """Glob of the TFRecord shards of one split."""
    return posixpath.join(data_dir, split, "*" + TFRECORD_SUFFIX)


def path(data_dir, name):
    return posixpath.join(data_dir, name)


def validate_metadata(metadata, *, source="metadata.json"):
    """Checks a parsed metadata.json against this contract; returns it unchanged.

    Raises:
      ContractError: naming the key, what was expected and what was found.
    """
    if not isinstance(metadata, dict):
        raise ContractError(
            f"{source}: expected a JSON object. Received: {type(metadata).__name__}."
        )
    missing = [key for key in REQUIRED_METADATA_KEYS if key not in metadata]
    if missing:
        raise ContractError(
            f"{source}: expected keys {list(REQUIRED_METADATA_KEYS)}. Missing: {missing}. "
            "Was this directory written by s140-preprocess?"
        )
    if metadata["schema_version"] != SCHEMA_VERSION:
        raise ContractError(
            f"{source}: expected schema_version {SCHEMA_VERSION}. "
            f"Received: {metadata['schema_version']!r}. Re-run s140-preprocess with this "
            "version of the package."
        )
    check_standardizer(metadata, source=source)
    for key in ("max_length", "vocab_size"):
        value = metadata[key]
        if not isinstance(value, int) or value < 1:
            raise ContractError(
                f"{source}: expected {key} to be a positive integer. Received: {value!r}."
            )
    dim = metadata["embedding"].get("dim") if isinstance(metadata["embedding"], dict) else None
    if not isinstance(dim, int) or dim < 1:
        raise ContractError(
            f"{source}: expected embedding.dim to be a positive integer. Received: {dim!r}."
        )
    return metadata


def standardizer_of(metadata):
    """The name of the standardizer the data was made with; metadata.json written before
    there was a choice has no name and was made with the default."""
    return metadata.get("standardizer", standardizers.DEFAULT_STANDARDIZER)


def check_standardizer(metadata, *, source="metadata.json"):
    """Checks that this package has the standardizer, at the version, that the data was
    made with: the trainer exports a model that standardizes with it, and any other
    rules would tokenize served tweets differently from the training data.

    Raises:
      ContractError: naming the recorded standardizer and version and this package's.
    """
    from preprocessing import text  # local: keeps this module free of TensorFlow at import

    name, version = standardizer_of(metadata), metadata["standardizer_version"]
    if name not in text.STANDARDIZERS:
        raise ContractError(
            f"{source}: expected a standardizer in {sorted(text.STANDARDIZERS)}. Received: "
            f"{name!r}, which this version of s140-trainer does not have; re-run s140-preprocess."
        )
    expected = text.get_standardizer(name).version
    if version != expected:
        raise ContractError(
            f"{source}: expected standardizer_version {expected} (standardizer {name!r} of this "
            f"package). Received: {version!r}, the version the data was made with. The exported "
            f"model would tokenize differently from the training data; re-run s140-preprocess "
            f"--standardizer={name}."
        )


def parse_metadata(raw, *, source="metadata.json"):
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ContractError(f"{source}: expected JSON. Received invalid JSON: {error}.") from error
    return validate_metadata(metadata, source=source)
