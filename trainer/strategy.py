"""Which tf.distribute strategy and which precision a run uses.

The decisions are pure functions of plain values (the TF_CONFIG dict, the number of
GPUs, the requested CPU replicas), so they are tested without devices; the functions
that act on TensorFlow only carry a decision out.

Order matters in TensorFlow: logical CPU devices and MultiWorkerMirroredStrategy must
be set up before anything initialises the runtime (the first op, dataset or model).
`trainer.train` therefore chooses the strategy right after reading the data contract,
which touches files only.
"""

import dataclasses
import json
import os
import typing

from absl import logging

from common import errors

MULTI_WORKER = "multi_worker"
MIRRORED = "mirrored"
# One device, one replica: TensorFlow's default (no-op) strategy. MirroredStrategy over a
# single device adds a distributed step and a re-filled input cache to every epoch: it
# trained the `gap` model at 0.4x the examples/s of a plain `fit` (docs/benchmarks-history.md).
SINGLE_DEVICE = "single_device"

# TF_CONFIG task types that train; "ps" would need ParameterServerStrategy and an
# "evaluator" a side-car evaluation loop, neither of which this trainer runs.
_TRAINING_TASKS = ("chief", "master", "worker")
_CHIEF_TASKS = ("chief", "master")  # "master" is the legacy AI Platform name


class StrategyError(errors.UserError, RuntimeError):
    """The requested distribution cannot be set up in this process."""


@dataclasses.dataclass(frozen=True)
class StrategyPlan:
    """A strategy decision: what to build and why."""

    kind: str  # MULTI_WORKER, MIRRORED or SINGLE_DEVICE
    devices: typing.Tuple[str, ...] = ()  # the local devices; MULTI_WORKER: ()
    num_workers: int = 1
    logical_cpus: int = 0  # >0: split the physical CPU into this many devices first
    reason: str = ""

    def describe(self):
        where = f"{self.num_workers} workers" if self.kind == MULTI_WORKER else ", ".join(self.devices)
        return f"{self.kind} over {where} ({self.reason})"


def parse_tf_config(environ):
    """TF_CONFIG of `environ` as a dict, or None when unset or empty.

    Raises:
      StrategyError: when TF_CONFIG is not a JSON object.
    """
    raw = environ.get("TF_CONFIG", "")
    if not raw.strip():
        return None
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StrategyError(f"Expected TF_CONFIG to be JSON. Received: {raw!r} ({error}).") from error
    if not isinstance(tf_config, dict):
        raise StrategyError(f"Expected TF_CONFIG to be a JSON object. Received: {raw!r}.")
    return tf_config


def _cluster_size(tf_config):
    cluster = (tf_config or {}).get("cluster") or {}
    unsupported = sorted(set(cluster) - set(_TRAINING_TASKS))
    if unsupported:
        raise StrategyError(
            f"Expected TF_CONFIG cluster task types among {list(_TRAINING_TASKS)}. Received: "
            f"{unsupported}. Parameter servers and evaluators are not supported; use "
            "chief/worker replicas (MultiWorkerMirroredStrategy)."
        )
    return sum(len(cluster[task]) for task in cluster)


def plan_strategy(tf_config, *, num_gpus, cpu_replicas=1):
    """Chooses the strategy from plain values.

    Args:
      tf_config: the parsed TF_CONFIG, or None.
      num_gpus: number of local GPUs.
      cpu_replicas: replicas wanted on a machine without GPUs (logical CPU devices).

    Returns:
      A `StrategyPlan`: multi-worker when TF_CONFIG names more than one task, else
      mirrored over all local GPUs, else over `cpu_replicas` logical CPUs; a single GPU
      or the plain CPU get the single-device (default) strategy.

    Raises:
      StrategyError: for unsupported TF_CONFIG task types, or cpu_replicas > 1 in a
        multi-worker cluster.
    """
    if isinstance(cpu_replicas, bool) or not isinstance(cpu_replicas, int) or cpu_replicas < 1:
        raise StrategyError(f"Expected cpu_replicas >= 1. Received: {cpu_replicas!r}.")
    workers = _cluster_size(tf_config)
    if workers > 1:
        if cpu_replicas > 1:
            raise StrategyError(
                f"Expected cpu_replicas=1 in a multi-worker cluster. Received: cpu_replicas="
                f"{cpu_replicas} with {workers} tasks in TF_CONFIG. Each worker trains on its "
                "own GPUs or CPU; logical CPU replicas are for a single machine."
            )
        return StrategyPlan(
            MULTI_WORKER, num_workers=workers, reason=f"TF_CONFIG names {workers} tasks"
        )
    if num_gpus > 0:
        reason = f"{num_gpus} local GPU(s)"
        if cpu_replicas > 1:
            reason += f"; cpu_replicas={cpu_replicas} ignored because GPUs are present"
        kind = MIRRORED if num_gpus > 1 else SINGLE_DEVICE
        return StrategyPlan(kind, tuple(f"/gpu:{i}" for i in range(num_gpus)), reason=reason)
    if cpu_replicas > 1:
        return StrategyPlan(
            MIRRORED,
            tuple(f"/cpu:{i}" for i in range(cpu_replicas)),
            logical_cpus=cpu_replicas,
            reason=f"no GPU; CPU split into {cpu_replicas} logical devices",
        )
    return StrategyPlan(SINGLE_DEVICE, ("/cpu:0",), reason="no GPU")


def is_chief(tf_config):
    """Whether this process writes the run's files.

    The chief (or legacy "master") task; worker 0 when the cluster has no chief; and
    any process without TF_CONFIG or without a task in it.
    """
    task = (tf_config or {}).get("task") or {}
    task_type = task.get("type")
    if task_type is None:
        return True
    if task_type in _CHIEF_TASKS:
        return True
    cluster = (tf_config or {}).get("cluster") or {}
    has_chief = any(cluster.get(name) for name in _CHIEF_TASKS)
    return task_type == "worker" and int(task.get("index", 0)) == 0 and not has_chief


def task_id(tf_config):
    """A short name of this process's task, e.g. "worker-1" ("chief" without TF_CONFIG)."""
    task = (tf_config or {}).get("task") or {}
    if not task.get("type"):
        return "chief"
    return f"{task['type']}-{int(task.get('index', 0))}"


def plan_from_environment(*, cpu_replicas=1, environ=None):
    """`plan_strategy` on this process's TF_CONFIG and physical GPUs (no device init)."""
    from common.quiet_tf import tf

    environ = os.environ if environ is None else environ
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    return plan_strategy(parse_tf_config(environ), num_gpus=num_gpus, cpu_replicas=cpu_replicas)


def configure_logical_cpus(count):
    """Splits the physical CPU into `count` logical devices.

    Must run before TensorFlow initialises its devices. When they are already
    initialised with exactly `count` CPUs (a test harness that split them at import),
    they are reused.

    Raises:
      StrategyError: when devices are already initialised with another count.
    """
    from common.quiet_tf import tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        # Listing logical devices initialises the runtime: only now that it already is.
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != count:
            raise StrategyError(
                f"Expected to split the CPU into {count} logical devices. Received: TensorFlow "
                f"already initialised with {existing} CPU device(s), so the split is no longer "
                "possible. Choose the strategy before creating any tensor, dataset or model "
                "(the s140-train CLI does)."
            ) from error


def make_strategy(plan):
    """Instantiates the strategy of a `StrategyPlan`."""
    from common.quiet_tf import tf

    if plan.kind == MULTI_WORKER:
        # Reads TF_CONFIG itself and uses all local GPUs, or the CPU.
        from trainer import tensorflow_adapter

        strategy = tensorflow_adapter.multi_worker_strategy()
    elif plan.kind == SINGLE_DEVICE:
        strategy = tf.distribute.get_strategy()  # outside any scope: the default strategy
    else:
        if plan.logical_cpus:
            configure_logical_cpus(plan.logical_cpus)
        strategy = tf.distribute.MirroredStrategy(list(plan.devices))
    logging.info(
        "Strategy: %s; %d replica(s) in sync.", plan.describe(), strategy.num_replicas_in_sync
    )
    return strategy


# --- Precision.


def mixed_precision_policy(requested, *, gpu_compute_capabilities=()):
    """The Keras dtype policy for a `--mixed_precision` value.

    Args:
      requested: "auto", "off", "float16" or "bfloat16".
      gpu_compute_capabilities: (major, minor) of each local GPU; empty without GPUs.

    Returns:
      "mixed_float16": requested "float16" on a GPU, or "auto" when every GPU has
        compute capability >= 7.0 (Tensor Cores; older GPUs gain little or slow down).
      "mixed_bfloat16": requested "bfloat16" (CPUs with AVX512-BF16/AMX, recent GPUs).
      "float32": otherwise.

    Raises:
      ValueError: for an unknown value, or "float16" without a GPU (float16 math on CPU
        is emulated and slower than float32).
    """
    if requested == "off":
        return "float32"
    if requested == "bfloat16":
        return "mixed_bfloat16"
    if requested == "float16":
        if not gpu_compute_capabilities:
            raise errors.SettingError(
                "Expected a GPU for --mixed_precision=float16. Received: no GPU. On CPU use "
                "--mixed_precision=bfloat16 or off."
            )
        return "mixed_float16"
    if requested == "auto":
        if gpu_compute_capabilities and all(
            tuple(cc) >= (7, 0) for cc in gpu_compute_capabilities
        ):
            return "mixed_float16"
        return "float32"
    raise ValueError(  # RunSettings checked it already: reaching here is a bug
        "Expected --mixed_precision in ['auto', 'off', 'float16', 'bfloat16']. "
        f"Received: {requested!r}."
    )


def local_gpu_compute_capabilities():
    """(major, minor) of each local GPU, without initialising the runtime."""
    from common.quiet_tf import tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return tuple(capabilities)
