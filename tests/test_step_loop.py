"""The step loop trains exactly what Keras' plain fit trains, on one device and on two
replicas, with and without XLA, many steps per call, the partial last batch included."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import data
from trainer import models
from trainer import step_loop
from trainer import step_plan

BATCH = 64  # global; the sample's train split is not a multiple of it


def _model(contract, architecture="gap", **hparams):
    keras.utils.set_random_seed(7)  # the same initial weights for both fits
    return models.build_model(
        architecture, vocab_size=contract.vocab_size, embedding_dim=contract.embedding_dim,
        max_length=contract.max_length, embedding_matrix=contract.embeddings, **hparams,
    )


def _strategy(replicas):
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if replicas == 2 else tf.distribute.get_strategy()


def _fit_with_the_loop(contract, replicas, jit, *, steps_per_execution=5, epochs=2, architecture="gap", **hparams):
    with _strategy(replicas).scope():
        model = _model(contract, architecture, **hparams)
        models.compile_model(model, 1e-3, steps_per_execution=steps_per_execution)
    step_loop.install(
        model,
        plan=step_plan.StepPlan(steps_per_execution, jit, "test"),
        global_batch=BATCH,
        steps_per_epoch=-(-contract.count("train") // BATCH),
        validation_steps=-(-contract.count("val") // BATCH),
    )
    weighted = dict(batch_size=BATCH, weighted=True)
    history = model.fit(
        data.make_dataset(contract, "train", **weighted),
        validation_data=data.make_dataset(contract, "val", **weighted),
        epochs=epochs, verbose=0,
    )
    return model, history.history


@pytest.mark.parametrize("replicas, jit", [(1, False), (1, True), (2, False), (2, True)])
def test_the_loop_trains_what_a_plain_fit_trains(sample_data_dir, replicas, jit):
    contract = data.load_contract(sample_data_dir)
    assert contract.count("train") % BATCH != 0  # a partial last batch to get right

    reference = models.compile_model(_model(contract), 1e-3)  # Keras' own fit, one device
    expected = reference.fit(
        data.make_dataset(contract, "train", batch_size=BATCH),
        validation_data=data.make_dataset(contract, "val", batch_size=BATCH),
        epochs=2, verbose=0,
    ).history
    model, history = _fit_with_the_loop(contract, replicas, jit)

    assert sorted(history) == sorted(expected) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in expected:
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5, err_msg=key)
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    steps = -(-contract.count("train") // BATCH)
    assert int(model.optimizer.iterations.numpy()) == 2 * steps  # every batch once per epoch, no more


def test_each_call_runs_the_steps_left_in_the_epoch(sample_data_dir):
    contract = data.load_contract(sample_data_dir)
    steps = -(-contract.count("train") // BATCH)
    model, _ = _fit_with_the_loop(contract, 2, False, steps_per_execution=steps - 1, epochs=3)
    assert int(model.optimizer.iterations.numpy()) == 3 * steps  # calls of steps-1 and 1 step, each epoch


def test_replicas_stay_identical_with_dropout_under_xla(sample_data_dir):
    contract = data.load_contract(sample_data_dir)
    model, history = _fit_with_the_loop(
        contract, 2, True, epochs=1, architecture="conv_lstm", lstm_units=8, conv_filters=8
    )
    assert np.isfinite(history["loss"]).all()
    for variable in model.trainable_variables:
        first, second = model.distribute_strategy.experimental_local_results(variable.value)
        np.testing.assert_array_equal(first.numpy(), second.numpy(), err_msg=variable.path)


def test_mixed_precision_scales_the_loss_across_replicas(sample_data_dir):
    contract = data.load_contract(sample_data_dir)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, history = _fit_with_the_loop(contract, 2, False, epochs=1)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(history["loss"]).all() and history["accuracy"][0] > 0.5
    assert int(model.optimizer.iterations.numpy()) == -(-contract.count("train") // BATCH)


def test_the_nan_guard_stops_within_the_first_calls(sample_data_dir):
    contract = data.load_contract(sample_data_dir)
    with _strategy(2).scope():
        model = _model(contract)
        models.compile_model(model, 1e-3, steps_per_execution=4)
    for variable in model.trainable_variables:  # every loss is NaN from the first step
        variable.assign(np.full(variable.shape, np.nan, "float32"))
    steps = -(-contract.count("train") // BATCH)
    step_loop.install(model, plan=step_plan.StepPlan(4, True, "test"), global_batch=BATCH,
                      steps_per_epoch=steps, validation_steps=1)
    history = model.fit(
        data.make_dataset(contract, "train", batch_size=BATCH, weighted=True),
        epochs=3, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()],
    ).history
    assert len(history["loss"]) == 1 and np.isnan(history["loss"][0])
    assert int(model.optimizer.iterations.numpy()) == 4 < steps  # stopped after the first call
