"""tf.train.Examples from standardized rows, and the GZIP TFRecord shards that hold them.

The DoFns of the WriteExamples stage (preprocessing/transforms.py). Neither imports
TensorFlow: the token ids come from a dict, the records from example_wire.py and the
shards from tfrecord_file.py, so the job's workers run without it.
"""

import collections
import itertools
import os
import posixpath
import tempfile

import apache_beam as beam
import numpy as np

from preprocessing import example_wire
from preprocessing import outputs
from preprocessing import schema
from preprocessing import tfrecord_file


def padded_token_ids(texts, token_ids, max_length):
    """int64 [len(texts), max_length]: the id of each token of each standardized text
    (`token_ids` maps a token to its id; others are UNK_ID), post-padded with PAD_ID and
    post-truncated, as TensorFlow's split of the texts on " ", looked up and padded by
    RaggedTensor.to_tensor, would give (tests/test_tfrecord_file.py checks it).

    One split of the joined texts and one dict lookup a token, then NumPy places them:
    the standardizer leaves single spaces between tokens and no empty text reaches here."""
    lengths = np.fromiter((text.count(" ") + 1 for text in texts), dtype=np.int64, count=len(texts))
    # map() with two iterables calls token_ids.get(token, UNK_ID) in C, no Python frame a token.
    tokens = " ".join(texts).split(" ")
    ids = np.fromiter(map(token_ids.get, tokens, itertools.repeat(schema.UNK_ID, len(tokens))),
                      dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(texts)), lengths)
    positions = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    kept = positions < max_length
    padded = np.full((len(texts), max_length), schema.PAD_ID, dtype=np.int64)
    padded[rows[kept], positions[kept]] = ids[kept]
    return padded


class EncodeExamplesFn(beam.DoFn):
    """RowBatch -> ((split, shard), gzip member) per shard it touches: the batch's
    records of that shard, framed and compressed as they will lie in the shard
    (tfrecord_file.gzip_member), so they cross to WriteShardFn as plain bytes.

    Token ids are post-padded and post-truncated to max_length. The shard is
    tweet_id % num_shards, so shards are balanced and their membership is stable."""

    def __init__(self, max_length, num_shards):
        self._max_length = max_length
        self._num_shards = num_shards
        self._token_ids = None
        self._token_ids_of = None

    def _lookup(self, vocabulary):
        # Made from the vocabulary side input, which setup() cannot see. The side input
        # is the same object for a whole bundle, so it is built once a bundle.
        if self._token_ids_of is not vocabulary:
            self._token_ids = {token: index for index, token in enumerate(vocabulary.tokens)}
            self._token_ids_of = vocabulary
        return self._token_ids

    def process(self, batch, vocabulary):
        kept = [index for index, split in enumerate(batch.splits) if split is not None]
        if not kept:
            return
        texts = [batch.standardized[index] for index in kept]
        token_ids = padded_token_ids(texts, self._lookup(vocabulary), self._max_length)
        tweet_ids = [batch.tweet_ids[index] for index in kept]
        records = example_wire.serialize_examples(
            token_ids, [batch.labels[index] for index in kept], tweet_ids, [text.encode("utf-8") for text in texts]
        )
        shards = collections.defaultdict(list)
        for index, tweet_id, record in zip(kept, tweet_ids, records):
            shards[(batch.splits[index], tweet_id % self._num_shards)].append(record)
        for key, records in shards.items():
            yield key, tfrecord_file.gzip_member(records)


def shard_path(output_dir, split, shard, num_shards):
    return posixpath.join(output_dir, split, f"part-{shard:05d}-of-{num_shards:05d}{schema.TFRECORD_SUFFIX}")


class WriteShardFn(beam.DoFn):
    """((split, shard), gzip members) -> (split, path) of the GZIP TFRecord shard
    it wrote.

    Beam's WriteToTFRecord with a fixed shard count shuffles every record on its own;
    grouping a batch's records per shard moves them, compressed, as a few thousand
    elements instead of millions. The shard is its members one after the other
    (tfrecord_file.write_members) in a local file, then copied through Beam's
    FileSystems (local or gs://, like every other output of the job) under a temporary
    name and renamed, so a retried or interrupted worker never leaves a partial shard
    under the final name."""

    def __init__(self, output_dir, num_shards):
        self._output_dir, self._num_shards = output_dir, num_shards

    def process(self, keyed_records):
        (split, shard), members = keyed_records
        path = shard_path(self._output_dir, split, shard, self._num_shards)
        with tempfile.TemporaryDirectory(prefix="s140-shard-") as local_dir:
            local_path = os.path.join(local_dir, posixpath.basename(path))
            tfrecord_file.write_members(local_path, members)
            outputs.copy_local_file(local_path, path)
        yield split, path
