"""tf.train.Examples from standardized rows, and the GZIP TFRecord shards that hold them.

The DoFns of the WriteExamples stage (preprocessing/transforms.py). TensorFlow is
imported in `setup()`, on the workers that encode or write, never at import.
"""

import collections
import os
import posixpath
import tempfile

import apache_beam as beam

from preprocessing import example_wire
from preprocessing import outputs
from preprocessing import schema


def split_tokens(standardized):
    """RaggedTensor of the tokens of standardized strings (a list or a string tensor): the
    split on " " that every reader of the `text` feature makes (the serving model's
    TextVectorization splits on whitespace, and the standardizer leaves single spaces only)."""
    from preprocessing._tf import tf

    return tf.strings.split(tf.convert_to_tensor(standardized, dtype=tf.string), sep=" ")


class EncodeExamplesFn(beam.DoFn):
    """RowBatch -> ((split, shard), [serialized tf.train.Example]) per shard it touches.

    Token ids are post-padded and post-truncated to max_length. The shard is
    tweet_id % num_shards, so shards are balanced and their membership is stable."""

    def __init__(self, max_length, num_shards):
        self._max_length = max_length
        self._num_shards = num_shards
        self._tf = None
        self._table = None
        self._table_of = None

    def setup(self):
        from preprocessing._tf import tf

        self._tf = tf

    def _lookup_table(self, vocabulary):
        # The table is made from the vocabulary side input, which setup() cannot see. The
        # side input is the same object for a whole bundle, so it is built once a bundle.
        if self._table_of is not vocabulary:
            tf = self._tf
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocabulary.tokens), tf.range(len(vocabulary.tokens), dtype=tf.int64)
                ),
                default_value=schema.UNK_ID,
            )
            self._table_of = vocabulary
        return self._table

    def process(self, batch, vocabulary):
        # One vectorized lookup for the whole batch; to_tensor post-pads with PAD_ID and
        # post-truncates to max_length.
        kept = [index for index, split in enumerate(batch.splits) if split is not None]
        if not kept:
            return
        strings = self._tf.constant([batch.standardized[index] for index in kept], dtype=self._tf.string)
        token_ids = (
            self._lookup_table(vocabulary)
            .lookup(split_tokens(strings))
            .to_tensor(default_value=schema.PAD_ID, shape=[None, self._max_length])
            .numpy()
        )
        tweet_ids = [batch.tweet_ids[index] for index in kept]
        records = example_wire.serialize_examples(
            token_ids, [batch.labels[index] for index in kept], tweet_ids, strings.numpy().tolist()
        )
        shards = collections.defaultdict(list)
        for index, tweet_id, record in zip(kept, tweet_ids, records):
            shards[(batch.splits[index], tweet_id % self._num_shards)].append(record)
        yield from shards.items()


def shard_path(output_dir, split, shard, num_shards):
    return posixpath.join(output_dir, split, f"part-{shard:05d}-of-{num_shards:05d}{schema.TFRECORD_SUFFIX}")


class WriteShardFn(beam.DoFn):
    """((split, shard), groups of records) -> (split, path) of the GZIP TFRecord shard
    it wrote.

    Beam's WriteToTFRecord with a fixed shard count shuffles every record on its own;
    grouping whole lists of records per shard moves the same bytes as a few thousand
    elements instead of millions. The shard is framed by TensorFlow's writer into a
    local file, then copied through Beam's FileSystems (local or gs://, like every other
    output of the job) under a temporary name and renamed, so a retried or interrupted
    worker never leaves a partial shard under the final name."""

    def __init__(self, output_dir, num_shards):
        self._output_dir, self._num_shards = output_dir, num_shards
        self._tf = None
        self._options = None

    def setup(self):
        from preprocessing._tf import tf

        self._tf = tf
        # zlib level 1 writes ~2.7x faster than the default level 6 for files ~12% larger.
        self._options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)

    def process(self, keyed_records):
        (split, shard), groups = keyed_records
        path = shard_path(self._output_dir, split, shard, self._num_shards)
        with tempfile.TemporaryDirectory(prefix="s140-shard-") as local_dir:
            local_path = os.path.join(local_dir, posixpath.basename(path))
            with self._tf.io.TFRecordWriter(local_path, options=self._options) as writer:
                for records in groups:
                    for record in records:
                        writer.write(record)
            outputs.copy_local_file(local_path, path)
        yield split, path
