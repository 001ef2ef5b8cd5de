"""Sentiment140 CSV rows: reading lines, parsing and validating one row, the val split.

Sentiment140 never has a newline inside a field, so one physical line is one row. Parsing
line by line keeps line numbers exact for the rejected-rows report and confines a broken
quote to its own line instead of letting it swallow the lines after it.
"""

import csv
import hashlib
import io
import typing

from apache_beam.io.filesystems import FileSystems

from preprocessing import schema

NUM_COLUMNS = 6  # polarity, id, date, query, user, text
ENCODING = "latin-1"  # the official files are not valid UTF-8; latin-1 maps every byte

# Rejection reasons: the keys of `rejected_by_reason` in metadata.json.
WRONG_COLUMN_COUNT = "wrong_column_count"
BAD_CSV = "bad_csv"
UNKNOWN_LABEL = "unknown_label"
NEUTRAL_IN_TRAIN = "neutral_label_in_training_file"
BAD_ID = "bad_id"
EMPTY_TEXT = "empty_text"
EMPTY_AFTER_STANDARDIZE = "empty_after_standardize"


class RawLine(typing.NamedTuple):
    source: str  # file path
    line: int  # 1-based line number in that file
    role: str  # "train" (split into train/val) or "test"
    text: str  # the line, decoded, without its line ending


class Row(typing.NamedTuple):
    source: str
    line: int
    split: str  # "train", "val", "test"; None for a neutral test row (counted, not kept)
    tweet_id: int
    label: typing.Optional[int]  # 0 or 1; None for neutral
    text: str


class LineBatch(typing.NamedTuple):
    """Consecutive lines of one file. Columns of plain ints and strings, because batches
    cross worker boundaries and pickle far faster than a list of small objects."""

    source: str
    role: str
    numbers: typing.List[int]
    texts: typing.List[str]

    def raw_lines(self):
        for number, text in zip(self.numbers, self.texts):
            yield RawLine(self.source, number, self.role, text)


class RowRejected(ValueError):
    """A row that cannot be used, with a machine-readable reason."""

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def read_line_batches(path, role, batch_size):
    """Yields every non-blank line of one CSV file (local or gs://, .gz by extension) in
    LineBatches of up to `batch_size` lines."""
    numbers, texts = [], []
    with FileSystems.open(path) as binary:
        reader = io.TextIOWrapper(binary, encoding=ENCODING, newline="")
        for number, line in enumerate(reader, start=1):
            line = line.rstrip("\r\n")
            if not line:  # a trailing blank line is not a row
                continue
            numbers.append(number)
            texts.append(line)
            if len(texts) == batch_size:
                yield LineBatch(path, role, numbers, texts)
                numbers, texts = [], []
    if texts:
        yield LineBatch(path, role, numbers, texts)


def is_val(tweet_id, val_fraction):
    """Stable hash split: a tweet id lands in val on every run, machine and Python version
    (unlike `hash()` or `random`), so val never leaks into train across re-runs."""
    digest = hashlib.blake2b(str(tweet_id).encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < val_fraction * 2**64


def parse_row(raw, val_fraction):
    """Parses one RawLine into a Row.

    Raises:
      RowRejected: with one of the reasons above.
    """
    try:
        fields = next(csv.reader([raw.text]))
    except csv.Error as error:
        raise RowRejected(BAD_CSV, str(error)) from None
    if len(fields) != NUM_COLUMNS:
        raise RowRejected(
            WRONG_COLUMN_COUNT,
            f"expected {NUM_COLUMNS} columns (polarity,id,date,query,user,text), got {len(fields)}",
        )
    polarity, tweet_id, _, _, _, text = fields
    polarity = polarity.strip()
    if polarity == schema.NEUTRAL_POLARITY:
        if raw.role == "train":
            raise RowRejected(NEUTRAL_IN_TRAIN, "polarity 2 (neutral) has no label to train on")
        label = None
    elif polarity in schema.POLARITY_TO_LABEL:
        label = schema.POLARITY_TO_LABEL[polarity]
    else:
        raise RowRejected(UNKNOWN_LABEL, f"expected polarity 0, 2 or 4, got {polarity!r}")
    try:
        tweet_id = int(tweet_id)
    except ValueError:
        raise RowRejected(BAD_ID, f"expected an integer tweet id, got {tweet_id!r}") from None
    if tweet_id < 0:
        raise RowRejected(BAD_ID, f"expected a non-negative tweet id, got {tweet_id}")
    if not text.strip():
        raise RowRejected(EMPTY_TEXT, "the text column is empty")
    if raw.role == "test":
        split = "test" if label is not None else None
    else:
        split = "val" if is_val(tweet_id, val_fraction) else "train"
    return Row(raw.source, raw.line, split, tweet_id, label, text)


class Rejection(typing.NamedTuple):
    """One line of rejected/*.jsonl."""

    source: str
    line: int
    reason: str
    detail: str
    raw: str
