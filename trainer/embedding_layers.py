"""The embedding of every classifier: frozen GloVe, optionally with trainable rows for
the tokens GloVe lacks.

The Beam job fills the rows GloVe has no vector for ([UNK] and the uncovered vocabulary
tokens, `schema.UNCOVERED_IDS_FILE`) with fixed pseudo-random vectors. Frozen, those rows
only tell such tokens apart; `PartlyFrozenEmbedding` lets the model learn them while the
GloVe rows stay exactly as they are: the frozen table is looked up as before, a small
trainable table holds one row per uncovered id (started from its fallback vector, so
step 0 computes what the frozen model computes), and a constant id -> row remap picks
which of the two each position reads.
"""

import keras
import numpy as np

from preprocessing import schema

EMBEDDING_LAYER = "embedding"


@keras.saving.register_keras_serializable(package="s140")
class PartlyFrozenEmbedding(keras.layers.Layer):
    """An Embedding whose rows `trainable_ids` train and whose other rows are frozen.

    Args:
      input_dim: rows (the vocabulary size, PAD and [UNK] included).
      output_dim: width of a row.
      trainable_ids: the ids whose rows train (sorted, unique, in [1, input_dim)).
      mask_zero: whether id 0 (PAD) is masked, as `keras.layers.Embedding`'s.
      matrix: float32 [input_dim, output_dim], the starting value of every row; None
        when Keras rebuilds the layer from its config before loading its weights.
    """

    def __init__(self, input_dim, output_dim, trainable_ids, *, mask_zero=False, matrix=None, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim, self.mask_zero = int(input_dim), int(output_dim), bool(mask_zero)
        self.trainable_ids = [int(i) for i in trainable_ids]
        self.supports_masking = self.mask_zero
        # id -> its row in the trainable table, -1 for a frozen (GloVe) row. A constant of
        # the graph, not a weight: it is not a parameter and must not count as one.
        self._remap = np.full(self.input_dim, -1, dtype=np.int32)
        self._remap[self.trainable_ids] = np.arange(len(self.trainable_ids), dtype=np.int32)
        start = None if matrix is None else np.asarray(matrix, dtype="float32")
        self.frozen = keras.layers.Embedding(
            self.input_dim, self.output_dim, weights=start, trainable=False,
            dtype=self.dtype_policy, name="frozen_rows",
        )
        self.rows = keras.layers.Embedding(
            len(self.trainable_ids), self.output_dim,
            weights=None if start is None else start[self.trainable_ids],
            dtype=self.dtype_policy, name="trainable_rows",
        )

    def build(self, input_shape=None):
        self.frozen.build()
        self.rows.build()
        self.built = True

    def call(self, token_ids):
        row = keras.ops.take(keras.ops.convert_to_tensor(self._remap), token_ids)
        learnt = self.rows(keras.ops.maximum(row, 0))
        return keras.ops.where(keras.ops.expand_dims(row >= 0, -1), learnt, self.frozen(token_ids))

    def compute_mask(self, token_ids, mask=None):
        return keras.ops.not_equal(token_ids, schema.PAD_ID) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "trainable_ids": list(self.trainable_ids),
            "mask_zero": self.mask_zero,
        }


def make_embedding(vocab_size, embedding_dim, embedding_matrix, *, mask_zero, trainable_ids=None):
    """The model's embedding layer (named "embedding").

    Args:
      vocab_size, embedding_dim: the table's shape.
      embedding_matrix: float32 [vocab_size, embedding_dim] (GloVe), or None for a
        trainable, randomly initialised Embedding.
      mask_zero: mask PAD (id 0), for architectures whose layers consume the mask.
      trainable_ids: with a matrix, the ids whose rows train (the rows GloVe lacks);
        None or empty: every row is frozen.

    Raises:
      ValueError: for a matrix of the wrong shape or with NaN/inf, trainable ids
        without a matrix or outside [1, vocab_size).
    """
    if embedding_matrix is None:
        if trainable_ids is not None and len(trainable_ids):
            raise ValueError(
                "Expected trainable_ids only with an embedding_matrix (the rest of it stays "
                f"frozen). Received {len(trainable_ids)} trainable ids and no matrix: without "
                "a matrix every row trains anyway."
            )
        return keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=mask_zero, name=EMBEDDING_LAYER)
    matrix = _checked_matrix(embedding_matrix, vocab_size, embedding_dim)
    if trainable_ids is not None and len(trainable_ids):
        ids = np.asarray(trainable_ids)
        if ids.ndim != 1 or len(np.unique(ids)) != len(ids) or ids.min() < 1 or ids.max() >= vocab_size:
            raise ValueError(
                f"Expected trainable_ids to be distinct ids in [1, {vocab_size}) (PAD, id 0, "
                f"never trains). Received {len(ids)} ids from {ids.min()} to {ids.max()}."
            )
        return PartlyFrozenEmbedding(
            vocab_size, embedding_dim, np.sort(ids), mask_zero=mask_zero, matrix=matrix, name=EMBEDDING_LAYER
        )
    # `weights=` builds and fills the variable at once, so inside a strategy scope
    # every replica gets the matrix. Frozen: GloVe vectors are the point, and fine-
    # tuning them on tweets overfits the words seen in training.
    return keras.layers.Embedding(
        vocab_size, embedding_dim, mask_zero=mask_zero, weights=matrix, trainable=False, name=EMBEDDING_LAYER
    )


def _checked_matrix(embedding_matrix, vocab_size, embedding_dim):
    matrix = np.asarray(embedding_matrix, dtype="float32")
    if matrix.shape != (vocab_size, embedding_dim):
        raise ValueError(
            "Expected embedding_matrix of shape (vocab_size, embedding_dim) = "
            f"{(vocab_size, embedding_dim)}. Received: shape {matrix.shape}. "
            "Pass the vocab_size and embedding dim from the same metadata.json."
        )
    if not np.isfinite(matrix).all():
        raise ValueError(
            "Expected a finite embedding_matrix. Received: "
            f"{int((~np.isfinite(matrix)).any(axis=1).sum())} rows with NaN or inf."
        )
    return matrix


def embedding_rows(model):
    """{"frozen": rows, "trainable": rows} of the model's embedding (layer "embedding").

    PAD's row counts as frozen in a partly frozen embedding: it never trains.
    """
    layer = model.get_layer(EMBEDDING_LAYER)
    if isinstance(layer, PartlyFrozenEmbedding):
        trainable = len(layer.trainable_ids)
        return {"frozen": layer.input_dim - trainable, "trainable": trainable}
    rows = int(layer.input_dim)
    return {"frozen": 0, "trainable": rows} if layer.trainable else {"frozen": rows, "trainable": 0}
