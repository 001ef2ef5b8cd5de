"""Sentiment140 CSV rows: reading lines, parsing and validating one row, the val split.

Sentiment140 never has a line feed inside a field, so one physical line is one row.
Parsing line by line keeps line numbers exact for the rejected-rows report and confines
a broken quote to its own line instead of letting it swallow the lines after it. Lines
end at LF only: the official file has a few bare CRs inside quoted tweets, and splitting
there would cut those tweets in two.
"""

import codecs
import csv
import hashlib
import itertools
import typing

from absl import logging
from apache_beam.io.filesystems import FileSystems

from preprocessing import config
from preprocessing import schema

NUM_COLUMNS = 6  # polarity, id, date, query, user, text
LATIN1 = "latin-1"  # the official files are latin-1 and not valid UTF-8; it maps every byte
UTF8 = "utf-8"
AUTO = "auto"  # per file: UTF-8 when the whole file decodes as UTF-8, else latin-1
ENCODINGS = config.CSV_ENCODINGS
INT64_MAX = 2**63 - 1  # tweet_id is an int64 feature
_CHUNK_BYTES = 1 << 20

# Rejection reasons: the keys of `rejected_by_reason` in metadata.json.
WRONG_COLUMN_COUNT = "wrong_column_count"
BAD_CSV = "bad_csv"
UNKNOWN_LABEL = "unknown_label"
NEUTRAL_IN_TRAIN = "neutral_label_in_training_file"
BAD_ID = "bad_id"
EMPTY_TEXT = "empty_text"
EMPTY_AFTER_STANDARDIZE = "empty_after_standardize"
BAD_ENCODING = "bad_encoding"
DUPLICATE_ID = "duplicate_id"  # a later copy of a tweet id, dropped with --drop_duplicate_ids


class InputFile(typing.NamedTuple):
    """One CSV file of the job: its path, its role and the encoding it is read with."""

    path: str
    role: str  # "train" (split into train/val) or "test"
    encoding: str = AUTO  # one of ENCODINGS; the launcher resolves "auto" per file


class RawLine(typing.NamedTuple):
    source: str  # file path
    line: int  # 1-based line number in that file
    role: str  # "train" (split into train/val) or "test"
    text: str  # the line, decoded, without its line ending
    decode_error: str = ""  # why the line's bytes are not in the file's encoding, if they are not


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
    decode_errors: typing.Optional[typing.Dict[int, str]] = None  # line number -> why; rare

    def raw_lines(self):
        errors = self.decode_errors or {}
        for number, text in zip(self.numbers, self.texts):
            yield RawLine(self.source, number, self.role, text, errors.get(number, ""))


class RowRejected(ValueError):
    """A row that cannot be used, with a machine-readable reason."""

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def file_encoding(path, requested=AUTO):
    """The encoding to read one CSV file with: `requested`, or for "auto" UTF-8 when every
    byte of the file decodes as UTF-8 and latin-1 otherwise.

    A UTF-8 file read as latin-1 puts mojibake ("cafÃ©") into the vocabulary; the official
    file fails UTF-8 within its first megabytes, so "auto" costs a second read only for
    files that are UTF-8 (or plain ASCII, where both encodings agree).
    """
    if requested not in ENCODINGS:
        raise ValueError(f"Expected --encoding to be one of {list(ENCODINGS)}. Received: {requested!r}.")
    if requested != AUTO:
        return requested
    decoder = codecs.getincrementaldecoder(UTF8)()
    read, utf8_text = 0, False  # bytes before the current chunk; UTF-8 beyond ASCII seen
    with FileSystems.open(path) as handle:  # decompresses .gz and .bz2 by extension
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                if utf8_text or not chunk[: max(error.start, 0)].isascii():
                    _warn_of_mixed_encodings(path, read + max(error.start, 0))
                return LATIN1
            if not chunk:
                return UTF8
            utf8_text = utf8_text or not chunk.isascii()
            read += len(chunk)


def _warn_of_mixed_encodings(path, offset):
    # Seen: a file half UTF-8 and half latin-1 put both "café" and "cafÃ©" in the vocabulary.
    logging.warning(
        "%s changes encoding: it holds UTF-8 text beyond ASCII, then bytes that are not UTF-8 (near byte "
        "%d). It is read as latin-1, so the accents of its UTF-8 part become two characters (café -> "
        "cafÃ©). Convert it to one encoding, or choose one with --encoding.", path, offset,
    )


def _binary_lines(path):
    """(1-based number, bytes without the line ending) of every line, split at LF only."""
    with FileSystems.open(path) as handle:
        pending, number = b"", 0
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            if not chunk:
                break
            pieces = (pending + chunk).split(b"\n")
            pending = pieces.pop()
            for piece in pieces:
                number += 1
                yield number, piece.rstrip(b"\r")
        if pending:
            yield number + 1, pending.rstrip(b"\r")


# A tweet is at most 280 characters: a quoted field still open after this many physical
# lines is a stray quote, not a tweet written across lines.
_MAX_RECORD_LINES = 32


def _records(lines):
    """(number of its first line, bytes) of every CSV record: physical lines joined while
    a quoted field is open (RFC 4180 allows line breaks inside quotes). Quotes inside a
    field are doubled, so a record is whole when it holds an even number of quote
    characters. A quote never closed within _MAX_RECORD_LINES leaves its line a record
    of its own (rejected later, as it always was) and the lines after it are read anew."""
    lines = iter(lines)
    while True:
        first = next(lines, None)
        if first is None:
            return
        quotes = first[1].count(b'"')
        if not quotes % 2:  # nearly every line: a whole record
            yield first
            continue
        parts = [first]
        while quotes % 2 and len(parts) < _MAX_RECORD_LINES:
            more = next(lines, None)
            if more is None:
                break
            parts.append(more)
            quotes += more[1].count(b'"')
        if quotes % 2:
            yield first
            lines = itertools.chain(parts[1:], lines)
        else:
            yield first[0], b"\n".join(data for _, data in parts)


def _decode(data, encoding, number):
    """(text, error): a line that is not valid in `encoding` is shown as latin-1, with why."""
    if encoding == UTF8 and number == 1 and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode(encoding), ""
    except UnicodeDecodeError as error:
        return data.decode(LATIN1), (
            f"the line is not valid {encoding} (byte 0x{data[error.start]:02x} at byte offset {error.start}); "
            f"read the file with --encoding={LATIN1} or --encoding={AUTO}"
        )


def read_line_batches(path, role, batch_size, encoding=AUTO):
    """Yields every non-blank record of one CSV file (local or gs://; .gz and .bz2 are
    decompressed by extension) in LineBatches of up to `batch_size` records, each
    numbered by the line it starts on.

    Args:
      encoding: one of ENCODINGS; "auto" decides per file (see `file_encoding`).
    """
    encoding = file_encoding(path, encoding)
    numbers, texts, errors = [], [], {}
    for number, data in _records(_binary_lines(path)):
        if not data.strip():  # a trailing blank line is not a row
            continue
        text, error = _decode(data, encoding, number)
        numbers.append(number)
        texts.append(text)
        if error:
            errors[number] = error
        if len(texts) == batch_size:
            yield LineBatch(path, role, numbers, texts, errors or None)
            numbers, texts, errors = [], [], {}
    if texts:
        yield LineBatch(path, role, numbers, texts, errors or None)


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
    if raw.decode_error:
        raise RowRejected(BAD_ENCODING, raw.decode_error)
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
    if not 0 <= tweet_id <= INT64_MAX:
        raise RowRejected(BAD_ID, f"expected a tweet id in [0, 2**63 - 1] (int64), got {tweet_id}")
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
