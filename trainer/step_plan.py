"""How a training step runs: XLA-compiled or not, and how many steps per call.

Small models spend most of a step outside the maths: Python, the `tf.function` call,
the iterator. Keras offers two levers, and on this project's models they multiplied a
plain `model.fit` (docs/benchmarks.md):

* `steps_per_execution`: run N steps per call into TensorFlow. Callbacks then see one
  batch end per N steps; every callback of a run works per epoch (history, backups,
  the best checkpoint, early stopping, TensorBoard with update_freq="epoch"), and the
  NaN guard still sees the loss at each call, so nothing depends on every batch.
* `jit_compile`: XLA fuses the step into a few kernels.

Where they are not used, and why:

* cuDNN's LSTM/GRU kernels cannot be XLA-compiled. On a GPU, a model whose recurrent
  layers all meet cuDNN's conditions keeps cuDNN (much faster than an XLA while-loop);
  on a CPU there is no cuDNN and XLA helped every architecture measured.
* Across replicas (MirroredStrategy over several devices, MultiWorkerMirroredStrategy),
  Keras 3.15 with TensorFlow 2.21 fails with either lever: several steps per call give
  "You must feed a value for placeholder tensor ... adam/cond" (a conditional around
  the optimizer's merge_call, keras-team/keras#19246), and XLA cannot reach a mirrored
  variable on another device (XLA's known issue "tf.Variable on a different device").
  Multi-replica runs therefore keep one step per call without XLA;
  `tests/test_step_plan.py` re-checks both failures, so the day they are fixed the test
  says to lift this rule.

The choice is pure (a function of device kind, replicas and the model's cuDNN report),
recorded in metrics.json and the report, and `--steps_per_execution` /
`--jit_compile=true|false` override it on a single replica.
"""

import dataclasses

JIT_CHOICES = ("auto", "true", "false")
# 32 steps per call: past ~16 the per-call cost is already small against the step, and
# a larger number only makes progress reports coarser. (bench/train_bench.py)
DEFAULT_STEPS_PER_EXECUTION = 32
# Architectures whose XLA-compiled step measured slower than the plain one on a CPU
# (bench/train_bench.py, docs/benchmarks.md: conv_lstm 0.12x of a plain fit with XLA).
XLA_SLOWER_ON_CPU = frozenset({"conv_lstm"})
KERAS_MULTI_REPLICA_ISSUE = "keras-team/keras#19246; XLA: tf.Variable on a different device"


class StepPlanError(ValueError):
    """A requested step setting cannot work on this run's devices."""


@dataclasses.dataclass(frozen=True)
class StepPlan:
    steps_per_execution: int
    jit_compile: bool
    reason: str

    def describe(self):
        return (
            f"{self.steps_per_execution} step(s) per execution, XLA "
            f"{'on' if self.jit_compile else 'off'} ({self.reason})"
        )


def plan_steps(*, device_kind, replicas, cudnn_eligible, jit_compile="auto", steps_per_execution=None,
               architecture=None):
    """Chooses the step settings of one model.

    Args:
      device_kind: "GPU" or "CPU": what the replicas run on.
      replicas: replicas in sync (devices x workers).
      cudnn_eligible: whether the model has recurrent layers and all of them meet
        cuDNN's conditions (`models.cudnn_report` with no blocker). False for models
        without recurrent layers.
      jit_compile: "auto", "true" or "false" (--jit_compile).
      steps_per_execution: None for the default, else an integer >= 1.
      architecture: the model's registry name, for per-architecture exceptions.

    Returns:
      A `StepPlan`.

    Raises:
      StepPlanError: for an invalid value, or a lever requested across replicas.
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
    if replicas > 1:
        return _multi_replica_plan(replicas, jit_compile, steps_per_execution)
    steps = DEFAULT_STEPS_PER_EXECUTION if steps_per_execution is None else steps_per_execution
    if jit_compile != "auto":
        return StepPlan(steps, jit_compile == "true", "as requested")
    if device_kind == "GPU" and cudnn_eligible:
        return StepPlan(steps, False, "cuDNN recurrent kernels cannot be XLA-compiled; cuDNN kept")
    if device_kind == "CPU" and architecture in XLA_SLOWER_ON_CPU:
        return StepPlan(steps, False, f"{architecture} measured slower with XLA on a CPU")
    return StepPlan(steps, True, f"XLA on one {device_kind}")


def _multi_replica_plan(replicas, jit_compile, steps_per_execution):
    wanted = []
    if jit_compile == "true":
        wanted.append("--jit_compile=true")
    if steps_per_execution not in (None, 1):
        wanted.append(f"--steps_per_execution={steps_per_execution}")
    if wanted:
        raise StepPlanError(
            f"Expected --jit_compile=auto|false and --steps_per_execution=1 with {replicas} replicas. "
            f"Received: {' '.join(wanted)}. Keras fails with these across replicas "
            f"({KERAS_MULTI_REPLICA_ISSUE}); train on one device to use them."
        )
    return StepPlan(1, False, f"{replicas} replicas: Keras fails with either lever ({KERAS_MULTI_REPLICA_ISSUE})")
