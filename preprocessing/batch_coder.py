"""The coder of the row batches that cross a stage boundary: pickled, then zstd level 1.

Every batch that crosses a stage boundary is held encoded by the runner until the next
stage reads it (locally: all of them at once, in the launcher's memory, since Beam's
FnApiRunner materializes each stage's input) and by the worker that receives it. Tweets
compress ~2.5x, so at 1.6M rows this moves hundreds of MiB fewer. zstd level 1 rather
than zlib level 1: on a batch of 2,048 real lines it compresses ~2-3x and decompresses
~2-4x faster, to slightly fewer bytes (docs/benchmarks-history.md). On Dataflow it shrinks the
shuffled bytes in the same way: the graph is the same.
"""

import pickle

import apache_beam as beam
import zstandard

_LEVEL = 1


class CompressedBatchCoder(beam.coders.Coder):
    """Any picklable value (a LineBatch, a RowBatch) as zstd bytes."""

    def encode(self, value):
        # zstandard.compress makes a compressor per call: Beam may encode from several
        # threads, and one ZstdCompressor must not be used by two at once.
        return zstandard.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), _LEVEL)

    def decode(self, encoded):
        return pickle.loads(zstandard.decompress(encoded))

    def estimate_size(self, value):
        """Beam asks this of a sample of the elements on every edge, for its byte
        counters only. Coder's default encodes the value to measure it, and compressing
        to measure cost as much CPU as compressing to send (docs/benchmarks-history.md); this
        is the pickled size, before compression (pickling a batch takes a small part of
        the time that compressing it takes)."""
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def is_deterministic(self):
        return False  # never a key: only batches travel with it

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


def register(*batch_types):
    """Makes CompressedBatchCoder the coder of PCollections typed as any of `batch_types`."""
    for batch_type in batch_types:
        beam.coders.registry.register_coder(batch_type, CompressedBatchCoder)
