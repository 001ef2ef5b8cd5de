"""Reading a preprocessing output directory: the validated contract and tf.data input.

`load_contract` is what a reader calls first. It opens metadata.json before anything
else (its presence means the Beam job finished) and checks vocab.txt and
embeddings.npy against it, so a half-written or foreign directory fails with a message
naming what was expected and what was found, not with a shape error inside Keras.

Everything goes through `tf.io.gfile`, so local paths and gs:// behave the same.
"""

import io
import typing

import numpy as np
import tensorflow as tf

from preprocessing import schema

# Examples parsed per `tf.io.parse_example` call. Batched parsing is several times
# faster than parsing record by record; the block size only trades memory for calls.
_PARSE_BLOCK = 1024

# Shuffle buffer in *examples*. Sentiment140 (1.6M tweets) does not fit in a buffer
# cheaply, but Beam writes shards in no particular order and a 100k buffer mixes far
# more than one batch; the sample splits fit entirely, which makes the shuffle exact.
SHUFFLE_BUFFER = 100_000


class Contract(typing.NamedTuple):
    """The validated non-TFRecord parts of a data directory."""

    metadata: dict
    vocab_tokens: typing.List[str]  # line i = token of id i; id 0 = "" (padding)
    embeddings: np.ndarray  # float32 [vocab_size, embedding dim]

    @property
    def max_length(self):
        return self.metadata["max_length"]

    @property
    def vocab_size(self):
        return self.metadata["vocab_size"]

    @property
    def embedding_dim(self):
        return self.metadata["embedding"]["dim"]

    def count(self, split):
        """Number of examples of `split` according to metadata.json (0 when absent)."""
        return int(self.metadata["counts"].get(split, 0))


def read_metadata(data_dir):
    """Parses and validates `<data_dir>/metadata.json`.

    Raises:
      ContractError: when the file is missing (an incomplete directory or not a
        preprocessing output) or does not match the contract.
    """
    path = schema.path(data_dir, schema.METADATA_FILE)
    if not tf.io.gfile.exists(path):
        raise schema.ContractError(
            f"Expected {path} in --data_dir. Received a directory without it: either the "
            "preprocessing job has not finished (metadata.json is written last), or "
            f"{data_dir} is not an s140-preprocess output directory."
        )
    with tf.io.gfile.GFile(path, "r") as f:
        return schema.parse_metadata(f.read(), source=path)


def load_contract(data_dir):
    """Reads and validates metadata.json, then vocab.txt and embeddings.npy.

    Args:
      data_dir: a preprocessing output directory, local or gs://.

    Returns:
      A `Contract`.

    Raises:
      ContractError: naming the file, what was expected and what was found.
    """
    metadata = read_metadata(data_dir)
    vocab_size, dim = metadata["vocab_size"], metadata["embedding"]["dim"]

    vocab_path = schema.path(data_dir, schema.VOCAB_FILE)
    _require_file(vocab_path, "the vocabulary")
    with tf.io.gfile.GFile(vocab_path, "r") as f:
        # Split on "\n" only: the padding token is the empty line 0, and tokens are
        # standardized text, so no other line break can occur inside one.
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the trailing newline of the last line
    if len(tokens) != vocab_size:
        raise schema.ContractError(
            f"{vocab_path}: expected {vocab_size} lines (vocab_size in metadata.json). "
            f"Received: {len(tokens)} lines. The directory mixes outputs of different runs; "
            "re-run s140-preprocess."
        )
    if tokens[schema.PAD_ID] != schema.PAD_TOKEN or tokens[schema.UNK_ID] != schema.UNK_TOKEN:
        raise schema.ContractError(
            f"{vocab_path}: expected line {schema.PAD_ID} to be {schema.PAD_TOKEN!r} and line "
            f"{schema.UNK_ID} to be {schema.UNK_TOKEN!r}. Received: "
            f"{tokens[schema.PAD_ID]!r} and {tokens[schema.UNK_ID]!r}."
        )

    embeddings_path = schema.path(data_dir, schema.EMBEDDINGS_FILE)
    _require_file(embeddings_path, "the embedding matrix")
    with tf.io.gfile.GFile(embeddings_path, "rb") as f:
        try:
            embeddings = np.load(io.BytesIO(f.read()), allow_pickle=False)
        except ValueError as error:
            raise schema.ContractError(
                f"{embeddings_path}: expected a .npy float32 array. Received an unreadable "
                f"file: {error}."
            ) from error
    if embeddings.shape != (vocab_size, dim):
        raise schema.ContractError(
            f"{embeddings_path}: expected shape [vocab_size, embedding.dim] = "
            f"[{vocab_size}, {dim}] from metadata.json. Received: shape {list(embeddings.shape)}."
        )
    if not np.issubdtype(embeddings.dtype, np.floating):
        raise schema.ContractError(
            f"{embeddings_path}: expected float32 values. Received dtype {embeddings.dtype}."
        )
    return Contract(metadata, tokens, embeddings.astype(np.float32, copy=False))


def _require_file(path, what):
    if not tf.io.gfile.exists(path):
        raise schema.ContractError(
            f"Expected {what} at {path}. Received: no such file, although metadata.json "
            "exists; the directory was modified after preprocessing. Re-run s140-preprocess."
        )


def split_files(data_dir, split):
    """The sorted TFRecord shards of `split`; sorting makes the read order reproducible."""
    if split not in schema.SPLITS:
        raise ValueError(f"Expected a split in {list(schema.SPLITS)}. Received: {split!r}.")
    return sorted(tf.io.gfile.glob(schema.split_pattern(data_dir, split)))


def make_dataset(
    data_dir,
    split,
    *,
    batch_size,
    max_length,
    shuffle=False,
    seed=None,
    repeat=False,
    drop_remainder=False,
):
    """Batches of (token_ids, label) from one split of a data directory.

    Pipeline: sorted shards -> interleave of GZIP TFRecord readers -> blocks of
    serialized records -> batched `tf.io.parse_example` -> cache (parsed ids, in RAM)
    -> unbatch -> [shuffle] -> batch(batch_size) -> [repeat] -> prefetch.

    Shuffling happens on single examples after the cache, not on parsed blocks: a
    shuffle of whole batches would keep the same examples together in every epoch. The
    cache holds parsed tensors, so each epoch pays only for unbatch/shuffle/batch.

    Args:
      data_dir: a preprocessing output directory (local or gs://).
      split: "train", "val" or "test".
      batch_size: examples per batch (the *global* batch under a tf.distribute strategy).
      max_length: token ids per example; must equal metadata.json's max_length.
      shuffle: shuffle examples, reshuffled each epoch.
      seed: with a seed the order of examples is the same on every run.
      repeat: repeat forever (pair with `steps_per_epoch`).
      drop_remainder: drop a last partial batch.

    Returns:
      A `tf.data.Dataset` of (int64 token_ids [batch, max_length], float32 label [batch]).

    Raises:
      ContractError: when the split has no shards or no examples, or max_length
        disagrees with metadata.json.
    """
    metadata = read_metadata(data_dir)
    if max_length != metadata["max_length"]:
        raise schema.ContractError(
            f"Expected max_length {metadata['max_length']} (from {data_dir}/"
            f"{schema.METADATA_FILE}). Received: max_length={max_length}."
        )
    files = split_files(data_dir, split)
    count = int(metadata["counts"].get(split, 0))
    if not files or count == 0:
        raise schema.ContractError(
            f"Expected examples in split {split!r} of {data_dir}. Received: "
            f"{len(files)} shards matching {schema.split_pattern(data_dir, split)} and a "
            f"count of {count} in metadata.json."
        )

    deterministic = seed is not None
    spec = schema.feature_spec(max_length)
    keys = (schema.TOKEN_IDS, schema.LABEL)
    spec = {key: spec[key] for key in keys}  # tweet_id and text are not model inputs

    def parse(serialized):
        features = tf.io.parse_example(serialized, spec)
        return features[schema.TOKEN_IDS], tf.cast(features[schema.LABEL], tf.float32)

    dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    dataset = (
        dataset.batch(_PARSE_BLOCK)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        .cache()
        .unbatch()
    )
    if shuffle:
        dataset = dataset.shuffle(
            min(count, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    # unbatch() loses the cardinality; metadata.json knows it. Keras then knows the
    # steps per epoch, and a split that disagrees with its count fails loudly.
    batches = count // batch_size if drop_remainder else -(-count // batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    if repeat:
        # After shuffle: every epoch is a full pass in a new order, and epochs do not blend.
        dataset = dataset.repeat()
    options = tf.data.Options()
    options.deterministic = deterministic
    # Under MultiWorkerMirroredStrategy, shard batches across workers rather than files:
    # a split has few shards, and uneven file counts would give workers unequal steps.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def read_records(data_dir, split):
    """Every record of `split` as numpy arrays {feature: array}, in shard order.

    Meant for checks and small splits (it loads the split into memory).
    """
    metadata = read_metadata(data_dir)
    spec = schema.feature_spec(metadata["max_length"])
    dataset = tf.data.TFRecordDataset(split_files(data_dir, split), compression_type="GZIP")
    columns = {key: [] for key in spec}
    for block in dataset.batch(_PARSE_BLOCK):
        for key, value in tf.io.parse_example(block, spec).items():
            columns[key].append(value.numpy())
    return {
        key: np.concatenate(values) if values else np.zeros((0,), np.int64)
        for key, values in columns.items()
    }

