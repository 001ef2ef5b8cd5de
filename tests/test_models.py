"""Tests of the architecture registry: exact sizes, frozen GloVe, masks, training under
a two-replica MirroredStrategy, error messages, cuDNN conditions and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import models
from trainer import recurrent

# The course's summaries: vocab 8185, dim 64, length 120, trainable embedding.
SEED_SIZES = dict(vocab_size=8185, embedding_dim=64, max_length=120)
SEED_EMBEDDING_PARAMS = 8185 * 64

# Tiny sizes for the tests that train.
VOCAB, DIM, LENGTH = 50, 8, 12
POSITIVE_TOKENS = np.arange(2, 10)
NEGATIVE_TOKENS = np.arange(10, 18)

RECURRENT = ("bilstm", "stacked_bilstm", "bigru", "conv_lstm")
MASKED = ("gap", "bilstm", "stacked_bilstm", "bigru")


def _random_matrix(seed=0):
    return np.random.default_rng(seed).normal(size=(VOCAB, DIM)).astype("float32")


def _learnable_sample(n=256, seed=0):
    """Token ids whose label is which token set they draw from; right-padded, no empty row."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    tokens = np.zeros((n, LENGTH), dtype="int64")
    for row, (label, length) in enumerate(zip(labels, rng.integers(3, LENGTH + 1, size=n))):
        pool = POSITIVE_TOKENS if label else NEGATIVE_TOKENS
        tokens[row, :length] = rng.choice(pool, size=length)
    return tokens, labels.astype("float32").reshape(-1, 1)


def _tiny(architecture, **hparams):
    return models.build_model(
        architecture,
        vocab_size=VOCAB,
        embedding_dim=DIM,
        max_length=LENGTH,
        embedding_matrix=_random_matrix(),
        **hparams,
    )


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


# --- Sizes.


@pytest.mark.parametrize(
    "architecture, expected",
    [
        ("bilstm", 598_209),
        ("stacked_bilstm", 635_329),
        ("conv1d", 573_249),
        ("bigru", 582_081),
    ],
)
def test_parameter_counts_match_the_course(architecture, expected):
    model = models.build_model(architecture, **SEED_SIZES)
    assert model.count_params() == expected
    assert _count(model.non_trainable_weights) == 0

    frozen = models.build_model(
        architecture,
        **SEED_SIZES,
        embedding_matrix=np.zeros((8185, 64), dtype="float32"),
    )
    assert _count(frozen.non_trainable_weights) == SEED_EMBEDDING_PARAMS
    assert _count(frozen.trainable_weights) == expected - SEED_EMBEDDING_PARAMS


def test_hyperparameters_change_the_model():
    # BiLSTM(32) on dim 64: 2 * 4 * (64*32 + 32*32 + 32) = 24,832; Dense(16): 64*16+16;
    # output: 16+1.
    model = models.build_model("bilstm", **SEED_SIZES, lstm_units=32, dense_units=16)
    assert model.count_params() == SEED_EMBEDDING_PARAMS + 24_832 + 1_040 + 17


def test_dropout_adds_a_layer_without_parameters():
    plain = models.build_model("gap", **SEED_SIZES)
    with_dropout = models.build_model("gap", **SEED_SIZES, dropout=0.5)
    rates = [l.rate for l in with_dropout.layers if isinstance(l, keras.layers.Dropout)]
    assert rates == [0.5]
    assert with_dropout.count_params() == plain.count_params()


def test_conv_lstm_keeps_the_course_embedding_dropout():
    model = models.build_model("conv_lstm", **SEED_SIZES)
    rates = [l.rate for l in model.layers if isinstance(l, keras.layers.Dropout)]
    assert rates == [0.2]


# --- Hyperparameter registry.


def test_hyperparameters_are_the_seed_defaults():
    seed = {
        "flatten": {"dense_units": 6, "dropout": 0.0},
        "gap": {"dense_units": 64, "dropout": 0.0},
        "bilstm": {"lstm_units": 64, "dense_units": 64, "dropout": 0.0, "recurrent_dropout": 0.0},
        "stacked_bilstm": {
            "first_lstm_units": 64,
            "second_lstm_units": 32,
            "dense_units": 64,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
        },
        "conv1d": {"conv_filters": 128, "kernel_size": 5, "dense_units": 64, "dropout": 0.0},
        "bigru": {"gru_units": 64, "dense_units": 64, "dropout": 0.0, "recurrent_dropout": 0.0},
        "conv_lstm": {
            "embedding_dropout": 0.2,
            "conv_filters": 64,
            "kernel_size": 5,
            "pool_size": 4,
            "lstm_units": 64,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
        },
    }
    # Options added later (trainer/model_heads.py), at the values that keep the seed's model.
    pooling = {"gap": "mean", "conv1d": "mean", "bilstm": "last", "stacked_bilstm": "last", "bigru": "last"}
    added = {"spatial_dropout": 0.0, "wide": "none", "wide_buckets": 2**18}
    assert {a: models.hyperparameters(a) for a in models.ARCHITECTURES} == {
        a: {**seed[a], **({"pooling": pooling[a]} if a in pooling else {}), **added} for a in models.ARCHITECTURES
    }


def test_hyperparameters_returns_a_copy():
    models.hyperparameters("gap")["dense_units"] = 1
    assert models.hyperparameters("gap")["dense_units"] == 64


# --- Errors.


def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(ValueError) as error:
        models.build_model("transformer", **SEED_SIZES)
    message = str(error.value)
    assert "'transformer'" in message
    assert all(name in message for name in models.ARCHITECTURES)

    with pytest.raises(ValueError, match="stacked_bilstm"):
        models.hyperparameters("lstm")


def test_unknown_hyperparameter_lists_the_valid_ones():
    # gru_units is valid for bigru, not for bilstm: no silent swallowing.
    with pytest.raises(ValueError) as error:
        models.build_model("bilstm", **SEED_SIZES, gru_units=32)
    message = str(error.value)
    assert "gru_units" in message
    assert all(name in message for name in models.hyperparameters("bilstm"))


def test_out_of_range_dropout_is_rejected():
    with pytest.raises(ValueError, match=r"recurrent_dropout=20"):
        models.build_model("bigru", **SEED_SIZES, recurrent_dropout=20)


def test_wrong_embedding_shape_says_expected_and_received():
    with pytest.raises(ValueError) as error:
        models.build_model(
            "gap",
            vocab_size=VOCAB,
            embedding_dim=DIM,
            max_length=LENGTH,
            embedding_matrix=np.zeros((VOCAB, DIM + 1), dtype="float32"),
        )
    assert "(50, 8)" in str(error.value)
    assert "(50, 9)" in str(error.value)


def test_non_finite_embedding_is_rejected():
    matrix = _random_matrix()
    matrix[3, 0] = np.nan
    with pytest.raises(ValueError, match="1 rows with NaN"):
        models.build_model(
            "gap", vocab_size=VOCAB, embedding_dim=DIM, max_length=LENGTH, embedding_matrix=matrix
        )


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_sizes_must_be_positive_integers(bad):
    with pytest.raises(ValueError, match=f"max_length to be a positive integer. Received: {bad}"):
        models.build_model("gap", vocab_size=VOCAB, embedding_dim=DIM, max_length=bad)


def test_convolution_longer_than_the_sequence_is_rejected():
    with pytest.raises(ValueError, match=r"max_length >= kernel_size \(5\).*max_length=4"):
        models.build_model("conv1d", vocab_size=VOCAB, embedding_dim=DIM, max_length=4)
    # conv_lstm needs 5 - 1 + 4 = 8 steps for one pooled step.
    with pytest.raises(ValueError, match=r"\(8\).*max_length=7"):
        models.build_model("conv_lstm", vocab_size=VOCAB, embedding_dim=DIM, max_length=7)


# --- Frozen GloVe and masks.


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
def test_frozen_embedding_holds_the_matrix(architecture):
    model = _tiny(architecture)
    embedding = model.get_layer("embedding")
    assert _count(model.non_trainable_weights) == VOCAB * DIM
    assert not embedding.trainable
    np.testing.assert_array_equal(embedding.get_weights()[0], _random_matrix())


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
def test_padding_is_masked_exactly_where_supported(architecture):
    model = _tiny(architecture)
    embedding = model.get_layer("embedding")
    assert embedding.mask_zero == (architecture in MASKED)
    if architecture not in MASKED:
        return
    # With a mask, the PAD row of the matrix cannot reach the output.
    tokens, _ = _learnable_sample(n=8)
    before = model.predict(tokens, verbose=0)
    matrix = _random_matrix()
    matrix[0] = 7.0
    embedding.embeddings.assign(matrix)
    np.testing.assert_allclose(model.predict(tokens, verbose=0), before, rtol=1e-5, atol=1e-6)


# --- Training under MirroredStrategy.


def _two_replica_strategy():
    """A fresh MirroredStrategy over the two logical CPUs that conftest.py creates.

    Every MirroredStrategy starts its collective keys at the same numbers, and the
    runtime remembers each key's tensor shape for the whole process: a second strategy
    then aborts with "Shape mismatch in the collective instance 100"
    (tensorflow/tensorflow#62790). TensorFlow's own tests move the key base before each
    strategy (tensorflow/python/distribute/strategy_combinations.py); so do we.
    """
    tf.distribute.MirroredStrategy._collective_key_base += 100_000
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
def test_every_architecture_learns_on_two_replicas_with_a_frozen_embedding(architecture):
    strategy = _two_replica_strategy()
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _tiny(architecture)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy"
        )
    frozen_before = model.get_layer("embedding").get_weights()[0].copy()
    trainable_before = [v.numpy().copy() for v in model.trainable_variables]

    tokens, labels = _learnable_sample()
    history = model.fit(tokens, labels, batch_size=32, epochs=5, verbose=0)

    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], frozen_before)
    unchanged = [
        v.path
        for v, before in zip(model.trainable_variables, trainable_before)
        if np.array_equal(v.numpy(), before)
    ]
    assert unchanged == []


# --- cuDNN conditions.


@pytest.mark.parametrize(
    "architecture, recurrent_layers",
    [("bilstm", 2), ("stacked_bilstm", 4), ("bigru", 2), ("conv_lstm", 1)],
)
def test_default_recurrent_models_meet_cudnn_conditions(architecture, recurrent_layers):
    model = _tiny(architecture)
    report = recurrent.cudnn_report(model)
    assert list(report.values()) == [()] * recurrent_layers


@pytest.mark.parametrize("architecture", RECURRENT)
def test_recurrent_dropout_breaks_cudnn(architecture):
    model = _tiny(architecture, recurrent_dropout=0.25)
    assert set(recurrent.cudnn_report(model).values()) == {("recurrent_dropout > 0",)}


def test_cudnn_report_names_every_broken_condition():
    inputs = keras.Input((LENGTH, DIM))
    x = keras.layers.LSTM(4, activation="relu", unroll=True, return_sequences=True)(inputs)
    x = keras.layers.GRU(4, reset_after=False, use_bias=False)(x)
    report = recurrent.cudnn_report(keras.Model(inputs, x))
    assert sorted(report.values()) == [
        ("activation is not tanh", "unroll=True"),
        ("use_bias=False", "reset_after=False"),
    ]


def test_models_without_recurrent_layers_have_an_empty_report():
    model = _tiny("conv1d")
    assert recurrent.cudnn_report(model) == {}


# --- Mixed precision.


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
def test_mixed_precision_outputs_float32_probabilities(architecture, mixed_float16):
    model = _tiny(architecture)
    tokens, _ = _learnable_sample(n=4)
    probabilities = model(tokens)
    assert probabilities.dtype == "float32"
    assert model.get_layer("probability").compute_dtype == "float32"
    # The frozen GloVe matrix is stored in float32 and untouched by the policy.
    embedding = model.get_layer("embedding")
    assert embedding.embeddings.dtype == "float32"
    np.testing.assert_array_equal(embedding.get_weights()[0], _random_matrix())
    assert np.all((probabilities.numpy() > 0) & (probabilities.numpy() < 1))


@pytest.mark.parametrize("architecture", RECURRENT)
def test_mixed_precision_runs_recurrent_layers_in_float16(architecture, mixed_float16):
    model = _tiny(architecture)
    recurrent = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            recurrent += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
            recurrent.append(layer)
    assert recurrent
    assert {layer.compute_dtype for layer in recurrent} == {"float16"}
    assert {layer.variable_dtype for layer in recurrent} == {"float32"}


def test_mixed_precision_training_keeps_a_finite_loss_and_the_frozen_matrix(mixed_float16):
    model = _tiny("bilstm")
    # Keras wraps the optimizer in a LossScaleOptimizer under mixed_float16.
    model.compile(optimizer="adam", loss="binary_crossentropy")
    tokens, labels = _learnable_sample(n=64)
    history = model.fit(tokens, labels, batch_size=32, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], _random_matrix())
