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

from common.quiet_tf import tf
from preprocessing import schema

# Examples parsed per `tf.io.parse_example` call. Batched parsing is several times
# faster than parsing record by record; the block size only trades memory for calls.
_PARSE_BLOCK = 1024



class Contract(typing.NamedTuple):
    """A validated data directory: metadata.json, vocabulary, GloVe matrix and the
    TFRecord shards of each split, read once per run and passed to every reader."""

    metadata: dict
    vocab_tokens: typing.List[str]  # line i = token of id i; id 0 = "" (padding)
    embeddings: np.ndarray  # float32 [vocab_size, embedding dim]
    data_dir: typing.Optional[str] = None  # None: a contract made in memory (tests)
    shards: typing.Mapping[str, typing.Tuple[str, ...]] = {}  # split -> sorted shard paths
    # Sorted ids of the rows GloVe lacks ([UNK] included); None: a data directory written
    # before uncovered_ids.npy existed (`require_uncovered_ids` says what to do).
    uncovered_ids: typing.Optional[np.ndarray] = None

    @property
    def max_length(self):
        return self.metadata["max_length"]

    @property
    def standardizer(self):
        """The name of the standardizer the data was made with: the export's."""
        return schema.standardizer_of(self.metadata)

    @property
    def vocab_size(self):
        return self.metadata["vocab_size"]

    @property
    def embedding_dim(self):
        return self.metadata["embedding"]["dim"]

    def count(self, split):
        """Number of examples of `split` according to metadata.json (0 when absent)."""
        return int(self.metadata["counts"].get(split, 0))

    def require_uncovered_ids(self):
        """The ids of the rows GloVe lacks, or a ContractError when the directory has none."""
        if self.uncovered_ids is None:
            raise schema.ContractError(
                f"Expected {schema.UNCOVERED_IDS_FILE} (the rows GloVe lacks) in "
                f"{self.data_dir}, for --train_oov_vectors. Received a data directory without "
                "it, written by an older s140-preprocess. Re-run s140-preprocess, or train "
                "without --train_oov_vectors."
            )
        return self.uncovered_ids

    def split_shards(self, split):
        """The sorted TFRecord shards of `split` found when the contract was loaded."""
        if split not in schema.SPLITS:
            raise ValueError(f"Expected a split in {list(schema.SPLITS)}. Received: {split!r}.")
        return tuple(self.shards.get(split, ()))


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
    shards = {split: tuple(split_files(data_dir, split)) for split in schema.SPLITS}
    uncovered = _read_uncovered_ids(data_dir, metadata)
    return Contract(metadata, tokens, embeddings.astype(np.float32, copy=False), data_dir, shards, uncovered)


def _read_uncovered_ids(data_dir, metadata):
    """uncovered_ids.npy checked against metadata.json; None for an older directory."""
    expected = metadata["embedding"].get("uncovered_rows")
    path = schema.path(data_dir, schema.UNCOVERED_IDS_FILE)
    if expected is None:
        return None
    _require_file(path, "the ids of the rows GloVe lacks")
    with tf.io.gfile.GFile(path, "rb") as f:
        ids = np.load(io.BytesIO(f.read()), allow_pickle=False)
    vocab_size = metadata["vocab_size"]
    if ids.shape != (expected,) or not np.issubdtype(ids.dtype, np.integer) or (
        len(ids) and (ids.min() < schema.UNK_ID or ids.max() >= vocab_size)
    ):
        raise schema.ContractError(
            f"{path}: expected {expected} integer ids in [{schema.UNK_ID}, {vocab_size}) "
            f"(embedding.uncovered_rows and vocab_size in metadata.json). Received: shape "
            f"{list(ids.shape)}, dtype {ids.dtype}. Re-run s140-preprocess."
        )
    return np.sort(ids.astype(np.int64))


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
    contract,
    split,
    *,
    batch_size,
    shuffle=False,
    seed=None,
    repeat=False,
    drop_remainder=False,
    weighted=False,
):
    """Batches of (token_ids, label) from one split of a validated data directory.

    The split is read once (interleaved GZIP TFRecord readers, batched
    `tf.io.parse_example`) into two in-memory tensors; each pass then draws a permutation
    of the example indices and gathers whole batches. Every step is a per-batch op: no
    per-example unbatch/shuffle/batch, whose cost on a CPU comes straight out of the
    training step's share (on 2 cores it held small models to ~0.6x the examples/s of a
    plain `fit` on NumPy arrays; docs/benchmarks-history.md). Sentiment140's 1.6M tweets at
    max_length 40 take 256 MB as int32, and 512 MB more as int64 while a pass runs.

    Args:
      contract: the `Contract` of the data directory (`load_contract`): max_length,
        counts and shards come from it, so metadata.json is read once per run.
      split: "train", "val" or "test".
      batch_size: examples per batch (the *global* batch under a tf.distribute strategy).
      shuffle: a new exact permutation of all examples on every pass.
      seed: with a seed the sequence of permutations is the same on every run.
      repeat: repeat forever (pair with `steps_per_epoch`).
      drop_remainder: drop a last partial batch.
      weighted: every batch full (a static shape, which XLA and a step loop need), with
        a third item, float32 loss weights [batch] that sum to `batch_size` in every
        batch. A full batch weighs 1 per example. A pass's last, partial batch of r
        examples is filled up with the pass's first examples, weighted 0, and its r
        real examples weigh batch_size / r each: a loss summed with these weights and
        divided by batch_size is the mean over the r real examples, exactly what a
        partial batch trains (`trainer.step_loop`).

    Returns:
      A `tf.data.Dataset` of (int64 token_ids [batch, max_length], float32 label [batch])
      or, `weighted`, of (token_ids, label, float32 weight [batch]).

    Raises:
      ContractError: when the split has no shards or no examples, or its shards hold
        another number of examples than metadata.json counts.
    """
    token_ids, labels = _checked_split(contract, split)
    count = len(labels)
    token_ids, labels = tf.constant(token_ids), tf.constant(labels)
    orders = _pass_orders(count, shuffle=shuffle, seed=seed)
    full = count // batch_size
    rest = 0 if drop_remainder else count - full * batch_size

    def gather(indices, weights=None):
        batch = tf.cast(tf.gather(token_ids, indices), tf.int64), tf.gather(labels, indices)
        if not weighted:
            return batch
        return batch + (tf.ones(tf.shape(indices), tf.float32) if weights is None else weights,)

    def last_batch(order):
        if not weighted:
            return gather(order[full * batch_size :])
        # Filled with copies of real examples, not padding: a row of PAD ids would be
        # fully masked, which Keras 3's cuDNN recurrent layers refuse.
        fill = tf.range(full * batch_size, (full + 1) * batch_size) % count
        weights = tf.concat([tf.fill([rest], batch_size / rest), tf.zeros([batch_size - rest])], axis=0)
        return gather(tf.gather(order, fill), weights)

    def batches_of(order):
        # One gather per pass, then slices of it: a map per batch (a function call per
        # element, ~25% more CPU per batch as Keras pulls them; docs/benchmarks-history.md run 6)
        # is gone. The price is the pass's int64 copy: 8 bytes x max_length per example.
        grid = tf.reshape(order[: full * batch_size], [full, batch_size])
        batches = tf.data.Dataset.from_tensor_slices(gather(grid))
        if rest:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(last_batch(order)))
        return batches

    dataset = orders.flat_map(batches_of)
    # flat_map loses the cardinality; Keras then knows the steps per epoch.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(full + (1 if rest else 0)))
    if repeat:
        dataset = dataset.repeat()  # each pass draws its own permutation: epochs do not blend
    return _with_options(dataset, deterministic=seed is not None or not shuffle)


def _checked_split(contract, split):
    """(token ids, labels) of `split`, read whole, as many as metadata.json counts."""
    files = list(contract.split_shards(split))
    count = contract.count(split)
    if not files or count == 0:
        raise schema.ContractError(
            f"Expected examples in split {split!r} of {contract.data_dir}. Received: "
            f"{len(files)} shards matching {schema.split_pattern(contract.data_dir, split)} "
            f"and a count of {count} in metadata.json."
        )
    token_ids, labels = _load_split(files, contract.max_length)
    if len(labels) != count:
        raise schema.ContractError(
            f"Expected {count} examples in split {split!r} (metadata.json). Received "
            f"{len(labels)} in {len(files)} shards."
        )
    return token_ids, labels


def _pass_orders(count, *, shuffle, seed):
    """A dataset of one order of the example indices per pass."""
    if not shuffle:
        return tf.data.Dataset.from_tensors(tf.range(count))
    # One random pair per pass: Dataset.random draws new values on every iteration
    # (each epoch), deterministically from `seed`.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).take(1)
    return seeds.map(lambda pair: tf.random.experimental.stateless_shuffle(tf.range(count), seed=pair))


def _with_options(dataset, *, deterministic):
    options = tf.data.Options()
    options.deterministic = deterministic
    # Under MultiWorkerMirroredStrategy, shard batches across workers rather than files:
    # a split has few shards, and uneven file counts would give workers unequal steps.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _load_split(files, max_length):
    """(int32 token ids [n, max_length], float32 labels [n]) of every record in `files`."""
    spec = schema.feature_spec(max_length)
    spec = {key: spec[key] for key in (schema.TOKEN_IDS, schema.LABEL)}  # the model's inputs
    records = tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    blocks = records.batch(_PARSE_BLOCK).map(
        lambda serialized: tf.io.parse_example(serialized, spec), num_parallel_calls=tf.data.AUTOTUNE
    )
    ids, labels = [], []
    try:
        for block in blocks:
            ids.append(block[schema.TOKEN_IDS].numpy().astype(np.int32))  # vocabulary ids < 2**31
            labels.append(block[schema.LABEL].numpy().astype(np.float32))
    except tf.errors.DataLossError as error:
        # The interleaved read does not say which file broke; reading each alone does.
        raise schema.ContractError(
            f"Expected complete GZIP TFRecord shards. Received damaged ones: "
            f"{_damaged_shards(files) or files} ({error.message.strip()}). The data "
            "directory was truncated or corrupted after preprocessing (an interrupted copy?): "
            "copy it again or re-run s140-preprocess."
        ) from error
    return np.concatenate(ids), np.concatenate(labels)


def _damaged_shards(files):
    """The shards among `files` that cannot be read to their end."""
    damaged = []
    for path in files:
        try:
            tf.data.TFRecordDataset(path, compression_type="GZIP").reduce(0, lambda count, _: count + 1).numpy()
        except tf.errors.DataLossError:
            damaged.append(path)
    return damaged


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

