"""GZIP TFRecord files written without TensorFlow.

A TFRecord file is a sequence of records, each framed as (tensorflow/core/lib/io/record_writer.cc):
  uint64 length (little-endian) | uint32 masked CRC-32C of the length bytes | data |
  uint32 masked CRC-32C of the data
where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32). GZIP files are
that byte stream in gzip format, which TensorFlow's reader inflates like any gzip file.

The Beam job writes its shards with this so that its workers need not import TensorFlow
(764 MiB resident each); tests read them back with tf.data.
"""

import gzip
import struct

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def _masked_crc(data):
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF)


def framed(records):
    """The bytes of `records` (an iterable of bytes) as consecutive TFRecord frames."""
    pieces = []
    for record in records:
        length = struct.pack("<Q", len(record))
        pieces += (length, _masked_crc(length), record, _masked_crc(record))
    return b"".join(pieces)


class GzipWriter:
    """Writes groups of records to one GZIP TFRecord file at a local `path`.

    zlib level 1 writes ~2.7x faster than the default level 6 for files ~12% larger;
    mtime=0 makes the same records give the same bytes on every run."""

    def __init__(self, path, compression_level=1):
        self._file = open(path, "wb")
        self._gzip = gzip.GzipFile(filename="", mode="wb", compresslevel=compression_level,
                                   fileobj=self._file, mtime=0)

    def write_all(self, records):
        self._gzip.write(framed(records))

    def close(self):
        self._gzip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
