"""The seed's seven tweet classifiers, behind one registry and one public builder.

Every model reads token ids (the data contract's `token_ids`: post-padded with
`PAD_ID` 0, id 1 = `[UNK]`) and returns the sigmoid probability of the positive class,
shape [batch, 1]. Models come back uncompiled; `compile_model` is the one compile step
of every run and trial, and the trainer builds *and* compiles inside
`strategy.scope()`. `check_hyperparameters` is the one check of hyperparameters.

Each architecture is a body function whose keyword-only arguments are its
hyperparameters; their defaults are the seed's, and `hyperparameters()` reads them
from the signature, so the tuner's search space and the CLI cannot drift from the
code that uses them. `COMMON_HYPERPARAMETERS` (spatial dropout, the wide logit) apply
around every body; the embedding (frozen GloVe, optionally with trainable rows for the
tokens it lacks) is `trainer.embedding_layers`, pooling and the output layer are
`trainer.model_heads`.
"""

import dataclasses
import inspect
from typing import Callable, Tuple

import keras
import numpy as np

from common import errors
from preprocessing import schema
from trainer import embedding_layers
from trainer import model_heads as heads
from trainer import recurrent

# --- Bodies: embedded sequences [batch, max_length, dim] -> features for the output.
# Recurrent layers keep every other argument at the Keras defaults (tanh/sigmoid
# activations, use_bias=True, unroll=False, GRU reset_after=True): exactly the
# conditions under which Keras runs them on cuDNN (`trainer.recurrent`); only a short
# unmasked one on a CPU is unrolled, where there is no cuDNN. `recurrent_dropout` > 0 disables
# cuDNN (a much slower kernel on GPU), which is why it defaults to 0 and should stay
# out of default search spaces.


def _flatten(x, token_ids, *, dense_units=6, dropout=0.0):
    """Flatten -> Dense(relu): position-dependent bag of embeddings (the course's first model)."""
    x = keras.layers.Flatten()(x)
    return _dense_relu(x, dense_units, dropout)


def _gap(x, token_ids, *, dense_units=64, dropout=0.0, pooling=heads.MEAN):
    """GlobalAveragePooling1D (the masked mean of the word vectors; or max, max+mean) -> Dense(relu)."""
    return _dense_relu(_pool_words(x, token_ids, pooling), dense_units, dropout)


def _bilstm(x, token_ids, *, lstm_units=64, dense_units=64, dropout=0.0, recurrent_dropout=0.0, pooling=heads.LAST):
    """Bidirectional(LSTM) -> Dense(relu); the last state, or a pooling over all states."""
    lstm = keras.layers.LSTM(lstm_units, recurrent_dropout=recurrent_dropout, return_sequences=pooling != heads.LAST)
    return _dense_relu(_pool_states(keras.layers.Bidirectional(lstm)(x), token_ids, pooling), dense_units, dropout)


def _stacked_bilstm(
    x,
    token_ids,
    *,
    first_lstm_units=64,
    second_lstm_units=32,
    dense_units=64,
    dropout=0.0,
    recurrent_dropout=0.0,
    pooling=heads.LAST,
):
    """Bidirectional(LSTM, sequences) -> Bidirectional(LSTM) -> Dense(relu)."""
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(
            first_lstm_units, return_sequences=True, recurrent_dropout=recurrent_dropout
        )
    )(x)
    second = keras.layers.LSTM(
        second_lstm_units, recurrent_dropout=recurrent_dropout, return_sequences=pooling != heads.LAST
    )
    x = _pool_states(keras.layers.Bidirectional(second)(x), token_ids, pooling)
    return _dense_relu(x, dense_units, dropout)


def _conv1d(x, token_ids, *, conv_filters=128, kernel_size=5, dense_units=64, dropout=0.0, pooling=heads.MEAN):
    """Conv1D(relu) -> GlobalAveragePooling1D -> Dense(relu).

    pooling "mean" is the seed's average over every window, padding included; "max" and
    "max_mean" pool over the windows that start at a real token.
    """
    _require_length(x, kernel_size, "kernel_size")
    x = keras.layers.Conv1D(conv_filters, kernel_size, activation="relu")(x)
    return _dense_relu(_pool_words(x, token_ids, pooling), dense_units, dropout)


def _bigru(x, token_ids, *, gru_units=64, dense_units=64, dropout=0.0, recurrent_dropout=0.0, pooling=heads.LAST):
    """Bidirectional(GRU) -> Dense(relu); the last state, or a pooling over all states."""
    gru = keras.layers.GRU(gru_units, recurrent_dropout=recurrent_dropout, return_sequences=pooling != heads.LAST)
    return _dense_relu(_pool_states(keras.layers.Bidirectional(gru)(x), token_ids, pooling), dense_units, dropout)


def _conv_lstm(
    x,
    token_ids,
    unroll=False,
    *,
    embedding_dropout=0.2,
    conv_filters=64,
    kernel_size=5,
    pool_size=4,
    lstm_units=64,
    dropout=0.0,
    recurrent_dropout=0.0,
):
    """Dropout -> Conv1D(relu) -> MaxPooling1D -> LSTM (the course's Sentiment140 + GloVe model).

    `unroll`: build the LSTM with unroll=True when it runs over at most
    `recurrent.MAX_UNROLLED_STEPS` pooled steps (see there)."""
    # The LSTM needs at least one pooled step; without this check a short max_length
    # gives an empty sequence and a shape error far from its cause.
    _require_length(x, kernel_size + pool_size - 1, "kernel_size + pool_size - 1")
    x = _maybe_dropout(x, embedding_dropout)
    x = keras.layers.Conv1D(conv_filters, kernel_size, activation="relu")(x)
    x = keras.layers.MaxPooling1D(pool_size)(x)
    short = x.shape[1] <= recurrent.MAX_UNROLLED_STEPS
    x = keras.layers.LSTM(lstm_units, recurrent_dropout=recurrent_dropout, unroll=unroll and short)(x)
    return _maybe_dropout(x, dropout)


def _pool_words(x, token_ids, pooling):
    # "mean" is the seed's GlobalAveragePooling1D (padding included where no mask is).
    return heads.pool(x, token_ids, pooling, seed_mean=lambda s: keras.layers.GlobalAveragePooling1D()(s))


def _pool_states(x, token_ids, pooling):
    # "last": the RNN returned its final state already; else it returned every state.
    return x if pooling == heads.LAST else heads.MaskedGlobalPooling1D(pooling)([x, token_ids])


def _dense_relu(x, units, dropout):
    """The Dense(relu) layer that ends every body but conv_lstm's, then its dropout."""
    return _maybe_dropout(keras.layers.Dense(units, activation="relu")(x), dropout)


def _maybe_dropout(x, rate):
    # A Dropout(0) layer does nothing but make summaries differ from the course's.
    return keras.layers.Dropout(rate)(x) if rate else x


def _require_length(x, minimum, what):
    if x.shape[1] < minimum:
        raise errors.SettingError(
            f"Expected max_length >= {what} ({minimum}) for a valid convolution. "
            f"Received: max_length={x.shape[1]}. Lower the kernel or pool size, or "
            "preprocess with a longer max_length."
        )


# --- Registry.


@dataclasses.dataclass(frozen=True)
class _Architecture:
    body: Callable
    # mask_zero only where every layer after the Embedding consumes or passes on the
    # mask (RNNs, GlobalAveragePooling1D, Dense, Dropout). Flatten and Conv1D would
    # raise on a mask, and there the padding positions are simply learnt around.
    mask_zero: bool
    poolings: Tuple[str, ...] = ()  # the values its `pooling` takes; the first is the seed's
    # Whether its body takes `unroll` (a recurrent layer over few, unmasked steps).
    unrollable: bool = False


_OVER_WINDOWS = (heads.MEAN, heads.MAX, heads.MAX_MEAN)
_OVER_STATES = (heads.LAST, heads.MAX, heads.MAX_MEAN)
_ARCHITECTURES = {
    "flatten": _Architecture(_flatten, mask_zero=False),
    "gap": _Architecture(_gap, mask_zero=True, poolings=_OVER_WINDOWS),
    "bilstm": _Architecture(_bilstm, mask_zero=True, poolings=_OVER_STATES),
    "stacked_bilstm": _Architecture(_stacked_bilstm, mask_zero=True, poolings=_OVER_STATES),
    "conv1d": _Architecture(_conv1d, mask_zero=False, poolings=_OVER_WINDOWS),
    "bigru": _Architecture(_bigru, mask_zero=True, poolings=_OVER_STATES),
    "conv_lstm": _Architecture(_conv_lstm, mask_zero=False, unrollable=True),
}

ARCHITECTURES = tuple(_ARCHITECTURES)

# Hyperparameters of every architecture, applied around its body: SpatialDropout1D on
# the embedded sequence, and the wide bag-of-words logit of the output layer
# (`trainer.model_heads`). Their defaults keep the seed's models exactly.
COMMON_HYPERPARAMETERS = {
    "spatial_dropout": 0.0,
    "wide": heads.WIDE_NONE,
    "wide_buckets": heads.DEFAULT_WIDE_BUCKETS,
}


def _lookup(architecture):
    if architecture not in _ARCHITECTURES:
        raise errors.SettingError(
            f"Expected an architecture in {list(ARCHITECTURES)}. "
            f"Received: {architecture!r}."
        )
    return _ARCHITECTURES[architecture]


def hyperparameters(architecture):
    """The hyperparameters `architecture` accepts, with the seed's defaults.

    Returns:
      A new dict {name: default}: the body's keywords in signature order, then
      `COMMON_HYPERPARAMETERS`; e.g. for "gap" {"dense_units": 64, "dropout": 0.0,
      "pooling": "mean", "spatial_dropout": 0.0, "wide": "none", "wide_buckets": 262144}.

    Raises:
      ValueError: for an unknown architecture, listing the valid names.
    """
    parameters = inspect.signature(_lookup(architecture).body).parameters.values()
    own = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}
    return {**own, **COMMON_HYPERPARAMETERS}


def choices(architecture):
    """{name: allowed values} of the architecture's text hyperparameters."""
    spec = _lookup(architecture)
    return {"wide": heads.WIDE_CHOICES, **({"pooling": spec.poolings} if spec.poolings else {})}


def check_hyperparameters(architecture, hparams, *, received="unknown"):
    """The one check of an architecture's hyperparameters (the CLIs, `TrainConfig`,
    the search-space table and `build_model` all call it).

    Raises:
      ValueError: for an unknown architecture or hyperparameter (listing the valid
        ones), a value whose type differs from the default's, a dropout rate outside
        [0, 1), a text value outside its choices or a wide_buckets below 1.
        `received` says where unknown names came from.
    """
    defaults = hyperparameters(architecture)  # raises for an unknown architecture
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise errors.SettingError(
            f"Expected hyperparameters of {architecture!r} among {sorted(defaults)}. "
            f"Received {received}: {unknown}."
        )
    allowed = choices(architecture)
    for name, value in hparams.items():
        expected = type(defaults[name])
        # An int is a fine float (dropout=0), never the other way round (units=32.5).
        accepted = {float: (int, float, np.integer, np.floating), int: (int, np.integer)}.get(expected, expected)
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise errors.SettingError(
                f"Expected {architecture} hyperparameter {name} to be {expected.__name__} "
                f"(default {defaults[name]!r}). Received: {value!r}."
            )
        # Keras silently clamps recurrent_dropout into [0, 1]; a typo such as 20 for
        # 0.2 must not become "drop everything".
        if name.endswith("dropout") and not 0.0 <= value < 1.0:
            raise errors.SettingError(
                f"Expected {name} in [0, 1). Received: {name}={value!r}."
            )
        if name in allowed and value not in allowed[name]:
            raise errors.SettingError(
                f"Expected {architecture} hyperparameter {name} in {list(allowed[name])}. "
                f"Received: {value!r}."
            )
        if name == "wide_buckets":
            _check_positive_int(name, value)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise errors.SettingError(f"Expected {name} to be a positive integer. Received: {value!r}.")


def build_model(
    architecture,
    *,
    vocab_size,
    embedding_dim,
    max_length,
    embedding_matrix=None,
    trainable_ids=None,
    unroll_short_recurrences=False,
    **hparams,
):
    """Builds an uncompiled classifier.

    Args:
      architecture: one of `ARCHITECTURES`.
      vocab_size: rows of the embedding, including PAD (0) and [UNK] (1).
      embedding_dim: width of the embedding.
      max_length: number of token ids per example.
      embedding_matrix: optional float32 [vocab_size, embedding_dim] (GloVe); when
        given, the Embedding starts from it and is frozen. When None, the Embedding is
        trainable and randomly initialised.
      trainable_ids: with `embedding_matrix`, the ids whose rows train while the others
        stay frozen (the rows GloVe lacks, `Contract.uncovered_ids`); None: all frozen.
      unroll_short_recurrences: build unmasked recurrent layers over at most
        `recurrent.MAX_UNROLLED_STEPS` steps with unroll=True (on a CPU; see there).
      **hparams: the architecture's hyperparameters (see `hyperparameters()`);
        missing ones take the seed's defaults.

    Returns:
      A `keras.Model` from int64 token ids [batch, max_length] to the float32
      probability of the positive class [batch, 1].

    Raises:
      ValueError: for an unknown architecture or hyperparameter (listing the valid
        ones), a bad size, or an embedding matrix of the wrong shape.
    """
    spec = _lookup(architecture)
    check_hyperparameters(architecture, hparams)
    for name, value in (
        ("vocab_size", vocab_size),
        ("embedding_dim", embedding_dim),
        ("max_length", max_length),
    ):
        _check_positive_int(name, value)
    vocab_size, embedding_dim, max_length = int(vocab_size), int(embedding_dim), int(max_length)
    body_hparams = {**hyperparameters(architecture), **hparams}
    common = {name: body_hparams.pop(name) for name in COMMON_HYPERPARAMETERS}

    token_ids = keras.Input(shape=(max_length,), dtype="int64", name=schema.TOKEN_IDS)
    # mask_zero relies on the contract's PAD_ID being 0.
    embedding = embedding_layers.make_embedding(
        vocab_size, embedding_dim, embedding_matrix, mask_zero=spec.mask_zero, trainable_ids=trainable_ids
    )
    x = embedding(token_ids)
    if common["spatial_dropout"]:
        # Drops whole embedding channels: a word's vector never half-survives.
        x = keras.layers.SpatialDropout1D(common["spatial_dropout"])(x)
    build = (unroll_short_recurrences,) if spec.unrollable else ()
    x = spec.body(x, token_ids, *build, **body_hparams)
    probability = heads.output_layer(
        x, token_ids, vocab_size=vocab_size, wide=common["wide"], wide_buckets=common["wide_buckets"]
    )
    return keras.Model(token_ids, probability, name=architecture)


def compile_model(model, learning_rate, *, steps_per_execution=None):
    """The one compile step of every run and tuning trial: Adam, binary cross-entropy,
    accuracy. Call it inside the strategy's scope (optimizer slots are mirrored).

    `steps_per_execution`: None keeps Keras's defaults (one step per call, XLA "auto"),
    for a model that Keras' own fit trains. An integer is for a model that
    `trainer.step_loop` trains: Keras then groups that many steps per call, and leaves
    XLA to the loop, which compiles each replica's work rather than the whole step.
    """
    dispatch = {} if steps_per_execution is None else dict(steps_per_execution=steps_per_execution, jit_compile=False)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        # Weighted: the step loop's filled-up last batch weighs its copies 0.
        weighted_metrics=["accuracy"],
        **dispatch,
    )
    return model
