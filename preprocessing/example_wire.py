"""Serialized tf.train.Examples of a whole batch, written straight in protobuf's wire format.

Filling one protobuf message per tweet cost more than standardizing it (docs/benchmarks-history.md);
every example of the data contract has the same four features, so the bytes can be built
for a whole batch at once: NumPy encodes the varints of all token ids and tweet ids in
bulk, and each record is one `bytes.join` of precomputed pieces. A reader parses these
records into the very messages `tf.train.Example` would have built (tests compare them).

Wire format (https://protobuf.dev/programming-guides/encoding/), field numbers from
tensorflow/core/example/{example,feature}.proto:
  Example.features = 1; Features.feature = 1 (map entries: key = 1, value = 2);
  Feature.bytes_list = 1, Feature.int64_list = 3; BytesList.value = 1 and
  Int64List.value = 1 (packed).
"""

import functools

import numpy as np

from preprocessing import schema

_LEN = b"\x0a"  # field 1, length-delimited: the tag of every field we write but two
_VALUE = b"\x12"  # field 2, length-delimited: a map entry's value
_INT64_LIST = b"\x1a"  # field 3, length-delimited: Feature.int64_list
_SMALL = [bytes([n]) if n < 0x80 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(1 << 14)]


def varint(n):
    """The varint of a non-negative int (lengths; fast for those below 16384)."""
    if n < 1 << 14:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def packed_varints(values):
    """One bytes object per row of a 2-D array of non-negative ints: the row's varints."""
    values = np.asarray(values, dtype=np.int64)
    if not values.size:
        return [b""] * values.shape[0]
    largest = int(values.max())
    if values.min() < 0:
        raise ValueError(f"Expected non-negative ids and labels. Received a minimum of {values.min()}.")
    values = values.astype(np.uint32 if largest < 2**32 else np.uint64)
    width = 1  # bytes of the widest varint: only as many passes as the largest value needs
    widths = np.ones(values.shape, dtype=np.uint8)
    while largest >= 1 << (7 * width):
        widths += values >= (1 << (7 * width))
        width += 1
    digits = np.empty(values.shape + (width,), dtype=np.uint8)
    for position in range(width):
        digits[..., position] = (values >> (7 * position)) & 0x7F
        if position < width - 1:
            digits[..., position] |= (widths > position + 1).astype(np.uint8) << 7
    kept = np.arange(width, dtype=np.uint8) < widths[..., None]
    flat = digits[kept].tobytes()  # row after row, value after value, only the used digits
    ends = np.cumsum(widths.sum(axis=1, dtype=np.int64)).tolist()
    return [flat[start:end] for start, end in zip([0] + ends[:-1], ends)]


def _entry_head(key):
    return _LEN + varint(len(key)) + key + _VALUE


_TOKEN_IDS = _entry_head(schema.TOKEN_IDS.encode())
_TWEET_ID = _entry_head(schema.TWEET_ID.encode())
_TEXT = _entry_head(schema.TEXT.encode())


@functools.lru_cache(maxsize=None)
def _int64_head(entry_head, length):
    """Everything of a Features map entry before its Int64List's `length` bytes of
    packed varints. It depends on the length only, so it is built once per length."""
    int64_list = length + 1 + len(varint(length))
    feature = int64_list + 1 + len(varint(int64_list))
    entry = len(entry_head) + len(varint(feature)) + feature
    return _LEN + varint(entry) + entry_head + varint(feature) + _INT64_LIST + varint(int64_list) + _LEN + varint(length)


@functools.lru_cache(maxsize=None)
def _bytes_head(entry_head, length):
    """Everything of a Features map entry before its BytesList's one value of `length` bytes."""
    bytes_list = length + 1 + len(varint(length))
    feature = bytes_list + 1 + len(varint(bytes_list))
    entry = len(entry_head) + len(varint(feature)) + feature
    return _LEN + varint(entry) + entry_head + varint(feature) + _LEN + varint(bytes_list) + _LEN + varint(length)


_LABELS = {label: _int64_head(_entry_head(schema.LABEL.encode()), 1) + _SMALL[label] for label in (0, 1)}


def serialize_examples(token_ids, labels, tweet_ids, texts):
    """Serialized tf.train.Examples, one per row.

    Args:
      token_ids: int array [rows, max_length] (already padded and truncated).
      labels: 0 or 1 per row.
      tweet_ids: non-negative int per row.
      texts: the standardized text of each row, as UTF-8 bytes.
    """
    ids_bytes = packed_varints(token_ids)
    tweet_id_bytes = packed_varints(np.asarray(tweet_ids, dtype=np.int64).reshape(-1, 1))
    records = []
    for ids, label, tweet_id, text in zip(ids_bytes, labels, tweet_id_bytes, texts):
        features = b"".join((
            _int64_head(_TOKEN_IDS, len(ids)), ids, _LABELS[label],
            _int64_head(_TWEET_ID, len(tweet_id)), tweet_id, _bytes_head(_TEXT, len(text)), text,
        ))
        records.append(_LEN + varint(len(features)) + features)
    return records
