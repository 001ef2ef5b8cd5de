"""The seed's seven tweet classifiers, behind one registry and one public builder.

Every model reads token ids (the data contract's `token_ids`: post-padded with
`PAD_ID` 0, id 1 = `[UNK]`) and returns the sigmoid probability of the positive class,
shape [batch, 1]. Models come back uncompiled; `compile_model` is the one compile step
of every run and trial, and the trainer builds *and* compiles inside
`strategy.scope()`. `check_hyperparameters` is the one check of hyperparameters.

Each architecture is a body function whose keyword-only arguments are its
hyperparameters; their defaults are the seed's, and `hyperparameters()` reads them
from the signature, so the tuner's search space and the CLI cannot drift from the
code that uses them.
"""

import dataclasses
import inspect
from typing import Callable

import keras
import numpy as np

from preprocessing import schema

# --- Bodies: embedded sequences [batch, max_length, dim] -> features for the output.
# Recurrent layers keep every other argument at the Keras defaults (tanh/sigmoid
# activations, use_bias=True, unroll=False, GRU reset_after=True): exactly the
# conditions under which Keras runs them on cuDNN. `recurrent_dropout` > 0 disables
# cuDNN (a much slower kernel on GPU), which is why it defaults to 0 and should stay
# out of default search spaces.


def _flatten(x, *, dense_units=6, dropout=0.0):
    """Flatten -> Dense(relu): position-dependent bag of embeddings (the course's first model)."""
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    return _maybe_dropout(x, dropout)


def _gap(x, *, dense_units=64, dropout=0.0):
    """GlobalAveragePooling1D -> Dense(relu): the masked mean of the word vectors."""
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    return _maybe_dropout(x, dropout)


def _bilstm(x, *, lstm_units=64, dense_units=64, dropout=0.0, recurrent_dropout=0.0):
    """Bidirectional(LSTM) -> Dense(relu)."""
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(lstm_units, recurrent_dropout=recurrent_dropout)
    )(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    return _maybe_dropout(x, dropout)


def _stacked_bilstm(
    x,
    *,
    first_lstm_units=64,
    second_lstm_units=32,
    dense_units=64,
    dropout=0.0,
    recurrent_dropout=0.0,
):
    """Bidirectional(LSTM, sequences) -> Bidirectional(LSTM) -> Dense(relu)."""
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(
            first_lstm_units, return_sequences=True, recurrent_dropout=recurrent_dropout
        )
    )(x)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(second_lstm_units, recurrent_dropout=recurrent_dropout)
    )(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    return _maybe_dropout(x, dropout)


def _conv1d(x, *, conv_filters=128, kernel_size=5, dense_units=64, dropout=0.0):
    """Conv1D(relu) -> GlobalAveragePooling1D -> Dense(relu)."""
    _require_length(x, kernel_size, "kernel_size")
    x = keras.layers.Conv1D(conv_filters, kernel_size, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    return _maybe_dropout(x, dropout)


def _bigru(x, *, gru_units=64, dense_units=64, dropout=0.0, recurrent_dropout=0.0):
    """Bidirectional(GRU) -> Dense(relu)."""
    x = keras.layers.Bidirectional(
        keras.layers.GRU(gru_units, recurrent_dropout=recurrent_dropout)
    )(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    return _maybe_dropout(x, dropout)


def _conv_lstm(
    x,
    *,
    embedding_dropout=0.2,
    conv_filters=64,
    kernel_size=5,
    pool_size=4,
    lstm_units=64,
    dropout=0.0,
    recurrent_dropout=0.0,
):
    """Dropout -> Conv1D(relu) -> MaxPooling1D -> LSTM (the course's Sentiment140 + GloVe model)."""
    # The LSTM needs at least one pooled step; without this check a short max_length
    # gives an empty sequence and a shape error far from its cause.
    _require_length(x, kernel_size + pool_size - 1, "kernel_size + pool_size - 1")
    x = _maybe_dropout(x, embedding_dropout)
    x = keras.layers.Conv1D(conv_filters, kernel_size, activation="relu")(x)
    x = keras.layers.MaxPooling1D(pool_size)(x)
    x = keras.layers.LSTM(lstm_units, recurrent_dropout=recurrent_dropout)(x)
    return _maybe_dropout(x, dropout)


def _maybe_dropout(x, rate):
    # A Dropout(0) layer does nothing but make summaries differ from the course's.
    return keras.layers.Dropout(rate)(x) if rate else x


def _require_length(x, minimum, what):
    if x.shape[1] < minimum:
        raise ValueError(
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


_ARCHITECTURES = {
    "flatten": _Architecture(_flatten, mask_zero=False),
    "gap": _Architecture(_gap, mask_zero=True),
    "bilstm": _Architecture(_bilstm, mask_zero=True),
    "stacked_bilstm": _Architecture(_stacked_bilstm, mask_zero=True),
    "conv1d": _Architecture(_conv1d, mask_zero=False),
    "bigru": _Architecture(_bigru, mask_zero=True),
    "conv_lstm": _Architecture(_conv_lstm, mask_zero=False),
}

ARCHITECTURES = tuple(_ARCHITECTURES)


def _lookup(architecture):
    if architecture not in _ARCHITECTURES:
        raise ValueError(
            f"Expected an architecture in {list(ARCHITECTURES)}. "
            f"Received: {architecture!r}."
        )
    return _ARCHITECTURES[architecture]


def hyperparameters(architecture):
    """The hyperparameters `architecture` accepts, with the seed's defaults.

    Returns:
      A new dict {name: default}, in signature order, e.g. for "bilstm"
      {"lstm_units": 64, "dense_units": 64, "dropout": 0.0, "recurrent_dropout": 0.0}.

    Raises:
      ValueError: for an unknown architecture, listing the valid names.
    """
    parameters = inspect.signature(_lookup(architecture).body).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


def check_hyperparameters(architecture, hparams, *, received="unknown"):
    """The one check of an architecture's hyperparameters (the CLIs, `TrainConfig`,
    the search-space table and `build_model` all call it).

    Raises:
      ValueError: for an unknown architecture or hyperparameter (listing the valid
        ones), a value whose type differs from the default's, or a dropout rate
        outside [0, 1). `received` says where unknown names came from.
    """
    defaults = hyperparameters(architecture)  # raises for an unknown architecture
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise ValueError(
            f"Expected hyperparameters of {architecture!r} among {sorted(defaults)}. "
            f"Received {received}: {unknown}."
        )
    for name, value in hparams.items():
        expected = type(defaults[name])
        # An int is a fine float (dropout=0), never the other way round (units=32.5).
        accepted = (int, float, np.integer, np.floating) if expected is float else (expected, np.integer)
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise ValueError(
                f"Expected {architecture} hyperparameter {name} to be {expected.__name__} "
                f"(default {defaults[name]!r}). Received: {value!r}."
            )
        # Keras silently clamps recurrent_dropout into [0, 1]; a typo such as 20 for
        # 0.2 must not become "drop everything".
        if name.endswith("dropout") and not 0.0 <= value < 1.0:
            raise ValueError(
                f"Expected {name} in [0, 1). Received: {name}={value!r}."
            )


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Expected {name} to be a positive integer. Received: {value!r}.")


def _embedding(vocab_size, embedding_dim, embedding_matrix, mask_zero):
    """A trainable Embedding, or one frozen at `embedding_matrix` (GloVe)."""
    if embedding_matrix is None:
        return keras.layers.Embedding(
            vocab_size, embedding_dim, mask_zero=mask_zero, name="embedding"
        )
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
    # `weights=` builds and fills the variable at once, so inside a strategy scope
    # every replica gets the matrix. Frozen: GloVe vectors are the point, and fine-
    # tuning them on tweets overfits the words seen in training.
    return keras.layers.Embedding(
        vocab_size,
        embedding_dim,
        mask_zero=mask_zero,
        weights=matrix,
        trainable=False,
        name="embedding",
    )


def build_model(
    architecture, *, vocab_size, embedding_dim, max_length, embedding_matrix=None, **hparams
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

    token_ids = keras.Input(shape=(max_length,), dtype="int64", name=schema.TOKEN_IDS)
    # mask_zero relies on the contract's PAD_ID being 0.
    x = _embedding(vocab_size, embedding_dim, embedding_matrix, spec.mask_zero)(token_ids)
    x = spec.body(x, **hparams)
    # float32 output whatever the global policy: under mixed_float16 a float16
    # sigmoid saturates to exactly 0 or 1 and binary cross-entropy becomes inf/NaN.
    probability = keras.layers.Dense(
        1, activation="sigmoid", dtype="float32", name="probability"
    )(x)
    return keras.Model(token_ids, probability, name=architecture)


def compile_model(model, learning_rate, steps=None):
    """The one compile step of every run and tuning trial: Adam, binary cross-entropy,
    accuracy. Call it inside the strategy's scope (optimizer slots are mirrored).

    `steps` is a `trainer.step_plan.StepPlan` (steps per execution, XLA); None keeps
    Keras's defaults (one step per call, XLA "auto"), for a model compiled outside a run.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps.steps_per_execution if steps else 1,
        jit_compile=steps.jit_compile if steps else "auto",
    )
    return model


def cudnn_eligible(model):
    """Whether `model` has LSTM/GRU layers and every one of them can run on cuDNN."""
    report = cudnn_report(model)
    return bool(report) and not any(report.values())


# --- cuDNN check.


def _cudnn_blockers(config, *, is_gru):
    """Why one LSTM/GRU config cannot run on cuDNN; empty when it can.

    These are the argument conditions Keras 3 checks (tensorflow backend,
    `cudnn_ok` and the layers' `inner_loop`). The data condition, strictly
    right-padded masks with no fully masked row, is the data contract's job.
    """
    checks = [
        (config.get("activation") == "tanh", "activation is not tanh"),
        (config.get("recurrent_activation") == "sigmoid", "recurrent_activation is not sigmoid"),
        (not config.get("recurrent_dropout"), "recurrent_dropout > 0"),
        (not config.get("unroll"), "unroll=True"),
        (config.get("use_bias", True), "use_bias=False"),
        (config.get("use_cudnn", "auto") in ("auto", True), "use_cudnn=False"),
    ]
    if is_gru:
        checks.append((config.get("reset_after", True), "reset_after=False"))
    return tuple(reason for ok, reason in checks if not ok)


def _recurrent_layers(layers, prefix=""):
    """(path, layer) of every LSTM/GRU, looking inside Bidirectional and nested models."""
    for layer in layers:
        path = prefix + layer.name
        if isinstance(layer, keras.layers.Bidirectional):
            yield from _recurrent_layers([layer.forward_layer, layer.backward_layer], path + "/")
        elif isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
            yield path, layer
        elif hasattr(layer, "layers"):
            yield from _recurrent_layers(layer.layers, path + "/")


def cudnn_report(model):
    """Maps each LSTM/GRU of `model` (by layer path) to why it cannot use cuDNN.

    An empty tuple means the layer meets cuDNN's conditions. Useful before a GPU run:
    a non-cuDNN LSTM is several times slower and Keras does not say so.
    """
    return {
        path: _cudnn_blockers(layer.get_config(), is_gru=isinstance(layer, keras.layers.GRU))
        for path, layer in _recurrent_layers(model.layers)
    }

