"""The search space: complete, conditional, cuDNN-safe, and every draw builds and trains."""

import json

import keras
import keras_tuner
import numpy as np
import pytest

from trainer import data
from trainer import models
from trainer import recurrent
from tuning import search_space

MAX_LENGTH = 24
VOCAB_SIZE = 60
DIM = 8
DRAWS_PER_ARCHITECTURE = 10
RECURRENT = ("bilstm", "stacked_bilstm", "bigru", "conv_lstm")


def _contract(max_length=MAX_LENGTH):
    rng = np.random.default_rng(0)
    metadata = {
        "max_length": max_length,
        "vocab_size": VOCAB_SIZE,
        "embedding": {"dim": DIM},
        "counts": {"train": 10, "val": 2, "test": 0},
    }
    tokens = ["", "[UNK]"] + [f"w{i}" for i in range(VOCAB_SIZE - 2)]
    embeddings = rng.normal(size=(VOCAB_SIZE, DIM)).astype("float32")
    return data.Contract(metadata, tokens, embeddings)


def _draws(architectures, count, *, seed=0, **kwargs):
    """`count` distinct random trial values, drawn by KerasTuner's random oracle."""
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy",
        max_trials=count,
        hyperparameters=search_space.declared_space(
            architectures=architectures, max_length=MAX_LENGTH, **kwargs
        ),
        seed=seed,
    )
    return [oracle.populate_space(str(i))["values"] for i in range(count)]


def _hp(values, architectures, **kwargs):
    hp = search_space.declared_space(architectures=architectures, max_length=MAX_LENGTH, **kwargs)
    hp.values = dict(values)
    return hp


def test_table_declares_every_model_keyword_but_recurrent_dropout():
    for architecture in models.ARCHITECTURES:
        accepted = set(models.hyperparameters(architecture))
        declared = set(search_space.SEARCH_SPACE[architecture])
        assert declared == accepted - {"recurrent_dropout"}, architecture
        # The seed's value is among the choices, so a sweep can find the course's model.
        for name, spec in search_space.SEARCH_SPACE[architecture].items():
            assert models.hyperparameters(architecture)[name] in spec.values, (architecture, name)


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
def test_every_sampled_configuration_builds_compiles_and_trains(architecture):
    contract = _contract()
    hypermodel = search_space.SentimentHyperModel(contract, architectures=(architecture,))
    draws = _draws((architecture,), DRAWS_PER_ARCHITECTURE, seed=7)
    assert len({json.dumps(v, sort_keys=True) for v in draws}) == DRAWS_PER_ARCHITECTURE
    space_size = len(search_space.declared_space(architectures=(architecture,), max_length=MAX_LENGTH).space)
    x = np.random.default_rng(1).integers(1, VOCAB_SIZE, size=(4, MAX_LENGTH))
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype="float32")
    for values in draws:
        hp = _hp(values, (architecture,))
        keras.backend.clear_session()
        model = hypermodel.build(hp)
        # build() declares nothing new: the oracle's space is complete without builds.
        assert len(hp.space) == space_size
        name, learning_rate, hparams = search_space.trial_config(values)
        assert name == architecture
        assert hypermodel.last_built == {
            "architecture": architecture, "learning_rate": learning_rate, "hparams": hparams,
            # Built outside a run: Keras's defaults (XLA "auto" is off on a CPU-only machine).
            "steps_per_execution": 1, "jit_compile": False,
        }
        assert set(hparams) == set(search_space.SEARCH_SPACE[architecture])
        assert model.name == architecture
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(learning_rate, rel=1e-6)
        assert model.loss == "binary_crossentropy"
        embedding = model.get_layer("embedding")
        assert not embedding.trainable
        np.testing.assert_array_equal(embedding.get_weights()[0], contract.embeddings)
        # The drawn values reach the layers.
        configs = [layer.get_config() for layer in model.layers]
        dense = [c for c in configs if c.get("units") and c["name"] != "probability"]
        if "dense_units" in hparams:
            assert dense[-1]["units"] == hparams["dense_units"]
        if "conv_filters" in hparams:
            conv = [c for c in configs if "kernel_size" in c and "filters" in c]
            assert conv[0]["filters"] == hparams["conv_filters"]
            assert tuple(conv[0]["kernel_size"]) == (hparams["kernel_size"],)
        assert not any(recurrent.cudnn_report(model).values())
    # One step per architecture: the compiled model trains on token ids.
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])


def test_default_space_has_no_recurrent_dropout_and_the_flag_adds_it_to_recurrent_models():
    default = search_space.declared_space(architectures=models.ARCHITECTURES, max_length=MAX_LENGTH)
    assert not [hp.name for hp in default.space if "recurrent_dropout" in hp.name]
    tuned = search_space.declared_space(
        architectures=models.ARCHITECTURES, max_length=MAX_LENGTH, tune_recurrent_dropout=True
    )
    with_it = sorted(hp.name for hp in tuned.space if "recurrent_dropout" in hp.name)
    assert with_it == sorted(f"{a}/recurrent_dropout" for a in RECURRENT)
    values = _draws(("bilstm",), 6, seed=3, tune_recurrent_dropout=True)
    assert {v["bilstm/recurrent_dropout"] for v in values} <= {0.0, 0.1, 0.2, 0.3}
    contract = _contract()
    hypermodel = search_space.SentimentHyperModel(
        contract, architectures=("bilstm",), tune_recurrent_dropout=True
    )
    drawn = next(v for v in values if v["bilstm/recurrent_dropout"] > 0)
    model = hypermodel.build(_hp(drawn, ("bilstm",), tune_recurrent_dropout=True))
    # Why it is opt-in: every recurrent layer of the model leaves cuDNN.
    assert set(recurrent.cudnn_report(model).values()) == {("recurrent_dropout > 0",)}


def test_conditional_hyperparameters_appear_only_for_their_architecture():
    space = search_space.declared_space(architectures=models.ARCHITECTURES, max_length=MAX_LENGTH)
    for hp in space.space:
        if hp.name in ("architecture", "learning_rate"):
            assert not hp.conditions
            continue
        owner = hp.name.split("/")[0]
        assert [c.get_config() for c in hp.conditions] == [
            {"name": "architecture", "values": [owner]}
        ]
    draws = _draws(models.ARCHITECTURES, 40, seed=11)
    assert {v["architecture"] for v in draws} == set(models.ARCHITECTURES)
    for values in draws:
        architecture = values["architecture"]
        own = {search_space.hp_name(architecture, k) for k in search_space.SEARCH_SPACE[architecture]}
        assert set(values) == {"architecture", "learning_rate"} | own
        assert 1e-4 <= values["learning_rate"] <= 1e-2


def test_values_survive_keras_tuner_bookkeeping():
    # KerasTuner runs ensure_active_values() when a trial ends; with one name under
    # several conditions it would replace the trial's value by a new random draw.
    architectures = ("gap", "conv1d", "bilstm")
    for values in _draws(architectures, 12, seed=5):
        hp = _hp(values, architectures)
        hp.ensure_active_values()
        assert hp.values == values


def test_trial_config_restores_the_model_types():
    values = {
        "architecture": "conv_lstm",
        "learning_rate": 0.002,
        "conv_lstm/conv_filters": 64.0,  # as JSON or gRPC may hand it back
        "conv_lstm/kernel_size": 5,
        "conv_lstm/pool_size": 4,
        "conv_lstm/lstm_units": 32,
        "conv_lstm/embedding_dropout": 0,
        "conv_lstm/dropout": 0.1,
        "tuner/epochs": 3,
    }
    architecture, learning_rate, hparams = search_space.trial_config(values)
    assert (architecture, learning_rate) == ("conv_lstm", 0.002)
    assert hparams == {
        "embedding_dropout": 0.0, "conv_filters": 64, "kernel_size": 5, "pool_size": 4,
        "lstm_units": 32, "dropout": 0.1,
    }
    assert type(hparams["conv_filters"]) is int and type(hparams["embedding_dropout"]) is float


def test_convolutions_are_fitted_to_max_length():
    space = search_space.architecture_space("conv_lstm", max_length=8)
    kernels, pools = space["kernel_size"].values, space["pool_size"].values
    assert max(kernels) + max(pools) - 1 <= 8
    assert kernels == (3, 5) and pools == (2, 3, 4)
    assert search_space.architecture_space("conv1d", max_length=4)["kernel_size"].values == (3,)
    with pytest.raises(ValueError, match="conv1d.*max_length=2"):
        search_space.architecture_space("conv1d", max_length=2)
    with pytest.raises(ValueError, match="conv_lstm"):
        search_space.SentimentHyperModel(_contract(max_length=3), architectures=("gap", "conv_lstm"))
    # Architectures without convolutions take any length.
    assert search_space.architecture_space("gap", max_length=1) == search_space.SEARCH_SPACE["gap"]


def test_unknown_architecture_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="bilstm.*Received: \\['lstm'\\]"):
        search_space.check_architectures(["lstm"])
    assert search_space.check_architectures(["conv1d", "gap", "gap"]) == ("gap", "conv1d")


def test_bayesian_optimisation_proposes_valid_configurations(tmp_path):
    # The Gaussian process sees every hyperparameter of every architecture; what it
    # proposes must still be one architecture's own values.
    oracle = keras_tuner.oracles.BayesianOptimizationOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"),
        max_trials=8,
        num_initial_points=3,
        hyperparameters=search_space.declared_space(
            architectures=("gap", "conv1d", "bigru"), max_length=MAX_LENGTH
        ),
        seed=2,
    )
    oracle._set_project_dir(str(tmp_path), "search")
    for i in range(4):  # 3 random initial points, then the Gaussian process proposes
        trial = oracle.create_trial(f"tuner{i}")
        values = trial.hyperparameters.values
        architecture = values["architecture"]
        own = {search_space.hp_name(architecture, k) for k in search_space.SEARCH_SPACE[architecture]}
        assert set(values) == {"architecture", "learning_rate"} | own
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5 + 0.01 * i})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(oracle.trials) == 4


def test_pooling_spatial_dropout_and_wide_are_searched_with_the_seed_as_default():
    space = search_space.declared_space(architectures=("conv1d", "bigru", "flatten"), max_length=MAX_LENGTH)
    by_name = {hp.name: hp for hp in space.space}
    assert by_name["conv1d/pooling"].values == ["mean", "max", "max_mean"]
    assert by_name["bigru/pooling"].values == ["last", "max", "max_mean"]
    assert "flatten/pooling" not in by_name
    for architecture in ("conv1d", "bigru", "flatten"):
        assert by_name[f"{architecture}/wide"].values == ["none", "unigrams", "bigrams"]
        assert by_name[f"{architecture}/spatial_dropout"].values == [0.0, 0.1, 0.2, 0.3]
    # Text choices are categories (KerasTuner orders numbers only); the defaults are the seed's.
    assert not by_name["conv1d/wide"].ordered and by_name["conv1d/spatial_dropout"].ordered
    assert (by_name["conv1d/pooling"].default, by_name["bigru/pooling"].default, by_name["conv1d/wide"].default) == (
        "mean", "last", "none")
    # A drawn recipe-like trial builds the options it names.
    values = {**{hp.name: hp.default for hp in space.space}, "architecture": "conv1d", "conv1d/pooling": "max",
              "conv1d/wide": "bigrams", "conv1d/wide_buckets": 2**16, "conv1d/spatial_dropout": 0.2}
    _, _, hparams = search_space.trial_config(values)
    model = search_space.SentimentHyperModel(_contract(), architectures=("conv1d", "bigru", "flatten")).build(
        _hp(values, ("conv1d", "bigru", "flatten")))
    assert (hparams["pooling"], hparams["wide"], hparams["wide_buckets"]) == ("max", "bigrams", 2**16)
    assert model.get_layer("probability").bigrams.input_dim == 2**16
    assert [l.rate for l in model.layers if l.__class__.__name__ == "SpatialDropout1D"] == [0.2]
