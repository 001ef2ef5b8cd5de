"""The step settings (steps per execution, XLA) chosen per device kind, replicas and
cuDNN eligibility, and the Keras failure that `trainer.step_loop` works around."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import step_plan


@pytest.mark.parametrize(
    "device_kind, cudnn_eligible, expected_jit",
    [
        ("CPU", False, True),  # gap, conv1d, flatten on a CPU
        ("CPU", True, True),  # no cuDNN on a CPU: XLA compiles the recurrent loop
        ("GPU", False, True),  # convolutions, pooling: XLA fuses them
        ("GPU", True, False),  # cuDNN LSTM/GRU kept: XLA cannot compile them
    ],
)
def test_auto_choice_per_device_and_cudnn(device_kind, cudnn_eligible, expected_jit):
    plan = step_plan.plan_steps(device_kind=device_kind, replicas=1, cudnn_eligible=cudnn_eligible)
    assert plan.jit_compile is expected_jit
    assert plan.steps_per_execution == step_plan.DEFAULT_STEPS_PER_EXECUTION == 32
    assert ("cuDNN" in plan.reason) is (device_kind == "GPU" and cudnn_eligible)


def test_models_drawing_random_numbers_keep_xla_off_on_cpu_only():
    cpu = step_plan.plan_steps(
        device_kind="CPU", replicas=1, cudnn_eligible=True, architecture="conv_lstm", draws_random_numbers=True
    )
    assert (cpu.steps_per_execution, cpu.jit_compile) == (32, False)
    assert "conv_lstm measured slower" in cpu.reason
    gpu = step_plan.plan_steps(
        device_kind="GPU", replicas=1, cudnn_eligible=False, architecture="conv_lstm", draws_random_numbers=True
    )
    assert gpu.jit_compile is True
    assert step_plan.plan_steps(device_kind="CPU", replicas=1, cudnn_eligible=True, architecture="bilstm").jit_compile
    forced = step_plan.plan_steps(
        device_kind="CPU", replicas=1, cudnn_eligible=False, architecture="conv_lstm", jit_compile="true",
        draws_random_numbers=True,
    )
    assert forced.jit_compile is True


def test_random_layers_are_found_by_their_rates_inside_wrappers():
    from trainer import models

    def build(architecture, **hparams):
        return models.build_model(architecture, vocab_size=30, embedding_dim=4, max_length=12, **hparams)

    # The defaults: only conv_lstm's Dropout(0.2) on the embedded tweets draws random numbers.
    found = {architecture: step_plan.random_layers(build(architecture)) for architecture in models.ARCHITECTURES}
    assert {architecture: len(paths) for architecture, paths in found.items()} == {
        "flatten": 0, "gap": 0, "bilstm": 0, "stacked_bilstm": 0, "conv1d": 0, "bigru": 0, "conv_lstm": 1,
    }
    assert found["conv_lstm"][0].startswith("dropout")
    assert step_plan.random_layers(build("conv_lstm", embedding_dropout=0.0)) == []
    # Dense dropout, and an LSTM's own dropout inside Bidirectional.
    assert len(step_plan.random_layers(build("gap", dropout=0.3))) == 1
    recurrent = step_plan.random_layers(build("bilstm", recurrent_dropout=0.1))
    assert [path.split("/")[-1].split("_")[0] for path in recurrent] == ["forward", "backward"]
    noisy = keras.Sequential([keras.Input((3,)), keras.layers.GaussianNoise(0.1), keras.layers.Dense(1)])
    assert len(step_plan.random_layers(noisy)) == 1


def test_flags_override_on_one_replica():
    plan = step_plan.plan_steps(
        device_kind="GPU", replicas=1, cudnn_eligible=True, jit_compile="true", steps_per_execution=4
    )
    assert (plan.steps_per_execution, plan.jit_compile, plan.reason) == (4, True, "as requested")
    plan = step_plan.plan_steps(device_kind="CPU", replicas=1, cudnn_eligible=False, jit_compile="false")
    assert (plan.steps_per_execution, plan.jit_compile) == (32, False)
    assert "32 step(s) per execution, XLA off" in plan.describe()


@pytest.mark.parametrize(
    "device_kind, cudnn_eligible, expected_jit",
    [("CPU", False, True), ("CPU", True, True), ("GPU", False, True), ("GPU", True, False)],
)
def test_several_replicas_take_the_same_levers_as_one_device(device_kind, cudnn_eligible, expected_jit):
    plan = step_plan.plan_steps(device_kind=device_kind, replicas=8, cudnn_eligible=cudnn_eligible)
    assert (plan.steps_per_execution, plan.jit_compile) == (32, expected_jit)
    if expected_jit:
        assert plan.reason == f"XLA on each of 8 {device_kind} replicas"
    forced = step_plan.plan_steps(
        device_kind=device_kind, replicas=2, cudnn_eligible=cudnn_eligible, jit_compile="true", steps_per_execution=8
    )
    assert (forced.steps_per_execution, forced.jit_compile) == (8, True)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(replicas=2, jit_compile="on"), "Expected --jit_compile in ['auto', 'true', 'false']"),
        (dict(replicas=2, steps_per_execution=-1), "integer >= 1. Received: -1"),
        (dict(replicas=1, jit_compile="yes"), "Expected --jit_compile in ['auto', 'true', 'false']"),
        (dict(replicas=1, steps_per_execution=0), "integer >= 1. Received: 0"),
        (dict(replicas=1, steps_per_execution=True), "integer >= 1. Received: True"),
    ],
)
def test_bad_requests_say_expected_and_received(kwargs, fragment):
    with pytest.raises(step_plan.StepPlanError) as raised:
        step_plan.plan_steps(device_kind="CPU", cudnn_eligible=False, **kwargs)
    assert fragment in str(raised.value)


def test_unknown_device_kind_is_refused():
    with pytest.raises(step_plan.StepPlanError, match="Expected a device kind CPU or GPU. Received: 'TPU'"):
        step_plan.plan_steps(device_kind="TPU", replicas=1, cudnn_eligible=False)


def _fit_two_replicas(**compile_kwargs):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        inputs = keras.Input((8,), dtype="int32")
        x = keras.layers.Embedding(50, 4)(inputs)
        x = keras.layers.GlobalAveragePooling1D()(x)
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
        model.compile("adam", "binary_crossentropy", **compile_kwargs)
    rng = np.random.default_rng(0)
    features = rng.integers(0, 50, size=(64, 8))
    labels = rng.integers(0, 2, size=(64, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
    return model.fit(dataset, epochs=1, verbose=0)


def test_the_keras_failure_behind_the_step_loop_still_exists():
    """If this fails, Keras' own fit runs several steps per call, or XLA, across replicas
    (keras-team/keras#19246): measure it against trainer/step_loop.py, which exists
    because of it, and keep the faster (trainer/keras_adapter.py can then go)."""
    assert _fit_two_replicas().history["loss"]  # one step per call works
    failures = {
        "steps_per_execution": (dict(steps_per_execution=4), "You must feed a value for placeholder"),
        "jit_compile": (dict(jit_compile=True), "tfvariable_on_a_different_device"),
    }
    for lever, (kwargs, message) in failures.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            _fit_two_replicas(**kwargs)


def test_a_cpu_run_takes_xla_legacy_cpu_runtime_unless_xla_flags_choose_one():
    flag = step_plan.LEGACY_CPU_RUNTIME_FLAG
    assert step_plan.xla_flags_for("CPU", "") == flag == "--xla_cpu_use_thunk_runtime=false"
    assert step_plan.xla_flags_for("CPU", "--xla_dump_to=/tmp/x") == f"--xla_dump_to=/tmp/x {flag}"
    # The user's own choice of runtime, and GPUs, are left as they are.
    assert step_plan.xla_flags_for("CPU", "--xla_cpu_use_thunk_runtime=true") == "--xla_cpu_use_thunk_runtime=true"
    assert step_plan.xla_flags_for("GPU", "--xla_dump_to=/tmp/x") == "--xla_dump_to=/tmp/x"
