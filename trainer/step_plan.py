"""How a training step runs: XLA-compiled or not, and how many steps per call.

Small models spend most of a step outside the maths: Python, the `tf.function` call,
the iterator. Keras offers two levers, and on this project's models they multiplied a
plain `model.fit` (docs/benchmarks-history.md):

* `steps_per_execution`: run N steps per call into TensorFlow. Callbacks then see one
  batch end per N steps; every callback of a run works per epoch (history, backups,
  the best checkpoint, early stopping, TensorBoard with update_freq="epoch"), and the
  NaN guard still sees the loss at each call, so nothing depends on every batch.
* `jit_compile`: XLA fuses the step into a few kernels.

Where they are not used, and why:

* A model that draws random numbers in its step on a CPU, unless they are dropout masks
  drawn with Philox: XLA's CPU backend generates numbers of its default algorithm far
  more slowly than TensorFlow's kernels. A Dropout(0.2) on the embedded tweets took a
  small model from 3,700 to 200 examples/s, and made conv_lstm 8x slower with XLA
  (docs/benchmarks-history.md, run 6). `trainer/keras_adapter.py` makes Keras name Philox
  for every dropout mask, which XLA compiles fast (run 7); so on the tested Keras only
  other random layers (GaussianNoise, GaussianDropout, AlphaDropout) keep XLA off.

* cuDNN's LSTM/GRU kernels cannot be XLA-compiled. On a GPU, a model whose recurrent
  layers all meet cuDNN's conditions keeps cuDNN (much faster than an XLA while-loop);
  on a CPU there is no cuDNN and XLA helped every architecture measured.
* Across replicas, the same levers hold: `trainer.step_loop` runs the steps of a call
  in its own loop, and XLA compiles each replica's work, not the all-reduce (Keras' own
  loop fails there: keras-team/keras#19246; `tests/test_step_plan.py` shows the day it
  works).

The choice is pure (a function of device kind, replicas, the model's cuDNN report and
whether it draws random numbers XLA makes slow: `random_layers`),
recorded in metrics.json and the report, and `--steps_per_execution` /
`--jit_compile=true|false` override it.
"""

import dataclasses

from common import errors

JIT_CHOICES = ("auto", "true", "false")
# 32 steps per call: past ~16 the per-call cost is already small against the step, and
# a larger number only makes progress reports coarser. (bench/train_bench.py)
DEFAULT_STEPS_PER_EXECUTION = 32
# Config keys of Keras layers whose non-zero value makes the layer draw random numbers
# in a training step: Dropout and its kin ("rate"), LSTM/GRU ("dropout",
# "recurrent_dropout"), GaussianNoise ("stddev").
_RANDOM_CONFIG_KEYS = ("rate", "dropout", "recurrent_dropout", "stddev")
# XLA's older CPU runtime: its default "thunk" runtime ran MaxPooling1D's step several
# times slower (3,100 against 19,300 examples/s for Dense -> MaxPooling1D -> pooling),
# and conv_lstm at 1.14x a plain fit against 1.59x with this flag, back to back; the other
# architectures' results did not change (docs/benchmarks-history.md, runs 6 and 7). XLA reads
# XLA_FLAGS once, at its first compilation in the process.
LEGACY_CPU_RUNTIME_FLAG = "--xla_cpu_use_thunk_runtime=false"


class StepPlanError(errors.UserError, ValueError):
    """A requested step setting cannot work on this run's devices."""


@dataclasses.dataclass(frozen=True)
class StepPlan:
    steps_per_execution: int
    jit_compile: bool
    reason: str
    unrolled_layers: tuple = ()  # recurrent layers built unrolled (trainer/recurrent.py)

    def describe(self):
        unrolled = f"; unrolled: {', '.join(self.unrolled_layers)}" if self.unrolled_layers else ""
        return (
            f"{self.steps_per_execution} step(s) per execution, XLA "
            f"{'on' if self.jit_compile else 'off'} ({self.reason}){unrolled}"
        )


def plan_steps(*, device_kind, replicas, cudnn_eligible, jit_compile="auto", steps_per_execution=None,
               architecture=None, draws_random_numbers=False):
    """Chooses the step settings of one model.

    Args:
      device_kind: "GPU" or "CPU": what the replicas run on.
      replicas: replicas in sync (devices x workers).
      cudnn_eligible: whether the model has recurrent layers and all of them meet
        cuDNN's conditions (`recurrent.cudnn_report` with no blocker). False for models
        without recurrent layers.
      jit_compile: "auto", "true" or "false" (--jit_compile).
      steps_per_execution: None for the default, else an integer >= 1.
      architecture: the model's registry name, for the reason.
      draws_random_numbers: whether the model's training step draws random numbers
        that XLA's CPU backend makes slow (`random_layers` is not empty).

    Returns:
      A `StepPlan`.

    Raises:
      StepPlanError: for an invalid value.
    """
    if jit_compile not in JIT_CHOICES:
        raise StepPlanError(f"Expected --jit_compile in {list(JIT_CHOICES)}. Received: {jit_compile!r}.")
    if steps_per_execution is not None and (
        isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) or steps_per_execution < 1
    ):
        raise StepPlanError(
            f"Expected --steps_per_execution to be an integer >= 1. Received: {steps_per_execution!r}."
        )
    if device_kind not in ("CPU", "GPU"):
        raise StepPlanError(f"Expected a device kind CPU or GPU. Received: {device_kind!r}.")
    steps = DEFAULT_STEPS_PER_EXECUTION if steps_per_execution is None else steps_per_execution
    if jit_compile != "auto":
        return StepPlan(steps, jit_compile == "true", "as requested")
    if device_kind == "GPU" and cudnn_eligible:
        return StepPlan(steps, False, "cuDNN recurrent kernels cannot be XLA-compiled; cuDNN kept")
    if device_kind == "CPU" and draws_random_numbers:
        return StepPlan(
            steps, False, f"{architecture or 'the model'} measured slower with XLA on a CPU: it draws random "
            "numbers XLA's CPU backend generates slowly"
        )
    where = f"each of {replicas} {device_kind} replicas" if replicas > 1 else f"one {device_kind}"
    return StepPlan(steps, True, f"XLA on {where}")


def xla_flags_for(device_kind, xla_flags):
    """XLA_FLAGS for a run on `device_kind`: on a CPU, `xla_flags` with the legacy CPU
    runtime added, unless it already chooses a CPU runtime; else `xla_flags` as given."""
    if device_kind != "CPU" or "--xla_cpu_use_thunk_runtime" in xla_flags:
        return xla_flags
    return f"{xla_flags} {LEGACY_CPU_RUNTIME_FLAG}".strip()


def random_layers(model, *, except_philox_dropout=False):
    """The paths of the layers of `model` that draw random numbers when training
    (dropout or noise with a non-zero rate), looking inside wrappers and nested models.

    `except_philox_dropout`: leave out the layers whose numbers are Keras dropout masks
    (Dropout and SpatialDropout, an RNN's dropout), for when
    `trainer.keras_adapter` has made them Philox's.
    """
    return [
        path for path, layer in _layers(model.layers)
        if _draws_random_numbers(layer) and not (except_philox_dropout and _draws_dropout_masks(layer))
    ]


def _layers(layers, prefix=""):
    for layer in layers:
        path = prefix + layer.name
        yield path, layer
        inner = [getattr(layer, name) for name in ("forward_layer", "backward_layer") if hasattr(layer, name)]
        yield from _layers(inner or getattr(layer, "layers", []), path + "/")


def _draws_random_numbers(layer):
    import keras  # here, not at the top: trainer.config (imported by s140-submit) imports this module

    if isinstance(layer, (keras.Model, keras.layers.Bidirectional)):
        return False  # its inner layers are looked at one by one
    config = layer.get_config()
    return any(float(config.get(key) or 0) > 0 for key in _RANDOM_CONFIG_KEYS)


def _draws_dropout_masks(layer):
    # The layers whose randomness is Keras's backend `random.dropout`: Dropout and its
    # spatial subclasses, and the recurrent layers (their cells' DropoutRNNCell masks).
    import keras

    return isinstance(layer, (keras.layers.Dropout, keras.layers.RNN))
