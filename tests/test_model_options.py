"""The model options beyond the seed: trainable rows for the tokens GloVe lacks, pooling
over time, spatial dropout and the wide bag-of-words logit. At their defaults the seed's
models are unchanged; otherwise their values, parameter counts and training behaviour
are checked on tiny data, and they survive a .keras save and reload."""

import keras
import numpy as np
import pytest

from trainer import embedding_layers
from trainer import model_heads
from trainer import models

SEED_SIZES = dict(vocab_size=8185, embedding_dim=64, max_length=120)
VOCAB, DIM, LENGTH = 50, 8, 12
UNCOVERED = [1, 7, 30]  # [UNK] and two tokens without a GloVe vector


def _matrix(seed=0):
    return np.random.default_rng(seed).normal(size=(VOCAB, DIM)).astype("float32")


def _tiny(architecture, trainable_ids=None, **hparams):
    return models.build_model(
        architecture, vocab_size=VOCAB, embedding_dim=DIM, max_length=LENGTH,
        embedding_matrix=_matrix(), trainable_ids=trainable_ids, **hparams,
    )


def _sample(n=64, seed=0):
    """Right-padded ids (3..LENGTH real tokens, the uncovered ones among them) and labels."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros((n, LENGTH), dtype="int64")
    for row, length in enumerate(rng.integers(3, LENGTH + 1, size=n)):
        tokens[row, :length] = rng.integers(1, VOCAB, size=length)
        tokens[row, 0] = UNCOVERED[row % 3]
    return tokens, rng.integers(0, 2, size=(n, 1)).astype("float32")


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.mark.parametrize(
    "architecture, expected", [("bilstm", 598_209), ("stacked_bilstm", 635_329), ("conv1d", 573_249), ("bigru", 582_081)]
)
def test_the_new_options_at_their_defaults_are_the_seeds_model(architecture, expected):
    defaults = {name: models.hyperparameters(architecture)[name] for name in ("pooling", *models.COMMON_HYPERPARAMETERS)}
    assert defaults == {
        "pooling": "mean" if architecture == "conv1d" else "last", "spatial_dropout": 0.0, "wide": "none",
        "wide_buckets": 2**18,
    }
    assert models.build_model(architecture, **SEED_SIZES, **defaults).count_params() == expected


# --- Trainable rows for the tokens GloVe lacks.


def test_uncovered_rows_train_and_glove_rows_stay_frozen():
    model = _tiny("gap", trainable_ids=UNCOVERED)
    embedding = model.get_layer("embedding")
    assert embedding_layers.embedding_rows(model) == {"frozen": VOCAB - 3, "trainable": 3}
    assert _count(embedding.trainable_weights) == 3 * DIM
    assert _count(model.non_trainable_weights) == VOCAB * DIM
    # The trainable rows start at the fallback vectors: the model starts as the frozen one.
    frozen_model = _tiny("gap")
    frozen_model.set_weights([w for w in model.get_weights() if w.shape != (3, DIM)])
    tokens, labels = _sample()
    np.testing.assert_allclose(model.predict(tokens, verbose=0), frozen_model.predict(tokens, verbose=0), rtol=1e-6)
    np.testing.assert_array_equal(embedding.rows.get_weights()[0], _matrix()[UNCOVERED])

    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    model.train_on_batch(tokens, labels)
    np.testing.assert_array_equal(embedding.frozen.get_weights()[0], _matrix())
    learnt = embedding.rows.get_weights()[0]
    assert np.all(np.abs(learnt - _matrix()[UNCOVERED]).max(axis=1) > 1e-3)  # every row moved
    # Each id reads its own row: the trained row for an uncovered id, GloVe's otherwise.
    looked_up = keras.ops.convert_to_numpy(embedding(np.array([[7, 8, 30, 1, 0]])))[0]
    np.testing.assert_array_equal(looked_up, np.stack([learnt[1], _matrix()[8], learnt[2], learnt[0], _matrix()[0]]))


def test_embedding_rows_of_the_seed_embeddings():
    assert embedding_layers.embedding_rows(_tiny("gap")) == {"frozen": VOCAB, "trainable": 0}
    trainable = models.build_model("gap", vocab_size=VOCAB, embedding_dim=DIM, max_length=LENGTH)
    assert embedding_layers.embedding_rows(trainable) == {"frozen": 0, "trainable": VOCAB}


def test_partly_frozen_embedding_keeps_the_padding_mask():
    model = _tiny("bigru", trainable_ids=UNCOVERED)
    tokens, _ = _sample(n=8)
    before = model.predict(tokens, verbose=0)
    matrix = _matrix()
    matrix[0] = 7.0  # the PAD row: masked, it cannot reach the output
    model.get_layer("embedding").frozen.embeddings.assign(matrix)
    np.testing.assert_allclose(model.predict(tokens, verbose=0), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    ([0, 3], r"distinct ids in \[1, 50\)"), ([3, 3], "distinct ids"), ([5, 50], r"from 5 to 50"),
])
def test_bad_trainable_ids_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        _tiny("gap", trainable_ids=bad)
    with pytest.raises(ValueError, match="only with an embedding_matrix"):
        models.build_model("gap", vocab_size=VOCAB, embedding_dim=DIM, max_length=LENGTH, trainable_ids=[3])


# --- Pooling over time.


def test_masked_pooling_ignores_the_steps_after_the_text():
    sequence = np.array([[[1.0, -4.0], [3.0, -2.0], [9.0, 9.0]], [[-1.0, -5.0], [-3.0, -6.0], [-7.0, 0.5]]], "float32")
    token_ids = np.array([[4, 5, 0, 0], [6, 0, 0, 0]])  # 4 tokens, a 3-step sequence (a conv of width 2)
    pooled = {
        mode: keras.ops.convert_to_numpy(model_heads.MaskedGlobalPooling1D(mode)([sequence, token_ids]))
        for mode in model_heads.MASKED_POOLINGS
    }
    np.testing.assert_allclose(pooled["mean"], [[2.0, -3.0], [-1.0, -5.0]])
    np.testing.assert_allclose(pooled["max"], [[3.0, -2.0], [-1.0, -5.0]])
    np.testing.assert_allclose(pooled["max_mean"], [[3.0, -2.0, 2.0, -3.0], [-1.0, -5.0, -1.0, -5.0]])


def test_pooling_changes_the_models_as_documented():
    # conv1d: "max" keeps the parameters (Dense reads 128 filters), "max_mean" doubles the
    # Dense input: 128 more inputs x 64 units.
    seed = models.build_model("conv1d", **SEED_SIZES).count_params()
    assert models.build_model("conv1d", **SEED_SIZES, pooling="max").count_params() == seed
    assert models.build_model("conv1d", **SEED_SIZES, pooling="max_mean").count_params() == seed + 128 * 64
    # bigru over all states: the same GRU, Dense(64) reads 2 x 128 instead of 128.
    seed = models.build_model("bigru", **SEED_SIZES).count_params()
    assert models.build_model("bigru", **SEED_SIZES, pooling="max").count_params() == seed
    assert models.build_model("bigru", **SEED_SIZES, pooling="max_mean").count_params() == seed + 128 * 64
    recurrent = [l for l in models.build_model("bilstm", **SEED_SIZES, pooling="max").layers
                 if isinstance(l, keras.layers.Bidirectional)]
    assert [l.forward_layer.return_sequences for l in recurrent] == [True]


def test_text_hyperparameters_take_only_their_choices():
    with pytest.raises(ValueError, match=r"pooling in \['mean', 'max', 'max_mean'\]\. Received: 'last'"):
        _tiny("gap", pooling="last")
    with pytest.raises(ValueError, match=r"pooling in \['last', 'max', 'max_mean'\]"):
        _tiny("bigru", pooling="mean")
    with pytest.raises(ValueError, match=r"wide in \['none', 'unigrams', 'bigrams'\]\. Received: 'trigrams'"):
        _tiny("conv1d", wide="trigrams")
    with pytest.raises(ValueError, match="wide_buckets to be a positive integer. Received: 0"):
        _tiny("conv1d", wide_buckets=0)
    with pytest.raises(ValueError, match=r"spatial_dropout in \[0, 1\)"):
        _tiny("conv1d", spatial_dropout=1.5)
    assert "pooling" not in models.hyperparameters("flatten") and "pooling" not in models.hyperparameters("conv_lstm")


def test_spatial_dropout_drops_whole_channels_without_parameters():
    plain = _tiny("gap")
    model = _tiny("gap", spatial_dropout=0.5)
    layers = [l for l in model.layers if isinstance(l, keras.layers.SpatialDropout1D)]
    assert [l.rate for l in layers] == [0.5] and model.count_params() == plain.count_params()
    x = np.ones((4, LENGTH, DIM), "float32")
    dropped = keras.ops.convert_to_numpy(layers[0](x, training=True))
    # Each (example, channel) is dropped at every step or at none.
    assert np.all((dropped == 0).all(axis=1) | (dropped != 0).all(axis=1))
    assert 0 < (dropped == 0).mean() < 1


# --- The wide logit.


def test_wide_terms_add_a_weight_per_id_and_per_bigram_bucket():
    plain = _tiny("gap").count_params()
    assert _tiny("gap", wide="unigrams").count_params() == plain + VOCAB
    assert _tiny("gap", wide="bigrams", wide_buckets=64).count_params() == plain + VOCAB + 64
    assert models.build_model("conv1d", **SEED_SIZES, wide="bigrams").count_params() == 573_249 + 8185 + 2**18


def test_wide_logit_is_the_sum_of_the_weights_of_the_tweets_ids_and_pairs():
    model = _tiny("gap", wide="bigrams", wide_buckets=16)
    head = model.get_layer("probability")
    head.logit.set_weights([np.zeros((64, 1), "float32"), np.array([0.25], "float32")])
    head.unigrams.set_weights([np.arange(VOCAB, dtype="float32").reshape(-1, 1) / 100])
    head.bigrams.set_weights([np.arange(16, dtype="float32").reshape(-1, 1) / 10])
    tokens = np.zeros((1, LENGTH), "int64")
    tokens[0, :3] = [2, 3, 4]
    # bias + ids 2, 3, 4 + buckets of (2, 3) and (3, 4); the pairs with padding count nothing.
    pairs = [(2 * VOCAB + 3) % 16, (3 * VOCAB + 4) % 16]
    expected = 0.25 + (2 + 3 + 4) / 100 + sum(pairs) / 10
    probability = float(model.predict(tokens, verbose=0)[0, 0])
    assert probability == pytest.approx(1 / (1 + np.exp(-expected)), rel=1e-6)


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
def test_every_option_together_trains_and_survives_save_and_reload(architecture, tmp_path):
    options = dict(spatial_dropout=0.2, wide="bigrams", wide_buckets=128)
    if "pooling" in models.hyperparameters(architecture):
        options["pooling"] = "max_mean"
    model = _tiny(architecture, trainable_ids=UNCOVERED, **options)
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    tokens, labels = _sample()
    model.fit(tokens, labels, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(tokens, verbose=0), model.predict(tokens, verbose=0), rtol=1e-6)
    assert embedding_layers.embedding_rows(reloaded) == {"frozen": VOCAB - 3, "trainable": 3}


def test_mixed_precision_keeps_the_wide_output_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _tiny("conv1d", trainable_ids=UNCOVERED, pooling="max", wide="bigrams", wide_buckets=64)
        tokens, _ = _sample(n=4)
        probabilities = model(tokens)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert probabilities.dtype == "float32" and model.get_layer("probability").compute_dtype == "float32"
    assert np.all((probabilities.numpy() > 0) & (probabilities.numpy() < 1))
