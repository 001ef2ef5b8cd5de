"""Tests of trainer.strategy: the pure strategy and precision decisions, chief selection,
and the strategy instantiated on the two logical CPUs that conftest.py sets up."""

import json

import pytest
import tensorflow as tf

from trainer import strategy


def _tf_config(cluster, task_type=None, index=0):
    config = {"cluster": cluster}
    if task_type:
        config["task"] = {"type": task_type, "index": index}
    return config


TWO_WORKERS = {"worker": ["host0:2222", "host1:2222"]}
CHIEF_AND_WORKER = {"chief": ["host0:2222"], "worker": ["host1:2222"]}


# --- plan_strategy.


def test_two_workers_in_tf_config_mean_multi_worker():
    plan = strategy.plan_strategy(_tf_config(TWO_WORKERS, "worker", 1), num_gpus=0)
    assert (plan.kind, plan.num_workers, plan.devices) == (strategy.MULTI_WORKER, 2, ())


def test_chief_plus_workers_count_as_the_cluster():
    cluster = {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}
    plan = strategy.plan_strategy(_tf_config(cluster, "chief"), num_gpus=4)
    assert (plan.kind, plan.num_workers) == (strategy.MULTI_WORKER, 3)


def test_single_task_tf_config_is_not_multi_worker():
    # Vertex AI sets TF_CONFIG with a lone chief on single-replica jobs.
    plan = strategy.plan_strategy(_tf_config({"chief": ["h0:1"]}, "chief"), num_gpus=2)
    assert (plan.kind, plan.devices) == (strategy.MIRRORED, ("/gpu:0", "/gpu:1"))


def test_local_gpus_are_mirrored_and_win_over_cpu_replicas():
    plan = strategy.plan_strategy(None, num_gpus=2, cpu_replicas=4)
    assert plan.devices == ("/gpu:0", "/gpu:1")
    assert plan.logical_cpus == 0
    assert "cpu_replicas=4 ignored" in plan.reason


def test_cpu_replicas_split_the_cpu():
    plan = strategy.plan_strategy(None, num_gpus=0, cpu_replicas=2)
    assert (plan.kind, plan.devices, plan.logical_cpus) == (
        strategy.MIRRORED,
        ("/cpu:0", "/cpu:1"),
        2,
    )


def test_plain_cpu():
    plan = strategy.plan_strategy({}, num_gpus=0)
    assert (plan.kind, plan.devices, plan.logical_cpus) == (strategy.SINGLE_DEVICE, ("/cpu:0",), 0)


def test_one_gpu_is_a_single_device_and_two_are_mirrored():
    assert strategy.plan_strategy(None, num_gpus=1).kind == strategy.SINGLE_DEVICE
    assert strategy.plan_strategy(None, num_gpus=1).devices == ("/gpu:0",)
    assert strategy.plan_strategy(None, num_gpus=2).kind == strategy.MIRRORED


def test_parameter_servers_are_refused():
    cluster = {"chief": ["h0:1"], "worker": ["h1:1"], "ps": ["h2:1"]}
    with pytest.raises(strategy.StrategyError, match=r"Received: \['ps'\]"):
        strategy.plan_strategy(_tf_config(cluster, "chief"), num_gpus=0)


def test_cpu_replicas_in_a_cluster_are_refused():
    with pytest.raises(strategy.StrategyError, match="Expected cpu_replicas=1 in a multi-worker"):
        strategy.plan_strategy(_tf_config(TWO_WORKERS, "worker"), num_gpus=0, cpu_replicas=2)


def test_plan_reads_tf_config_from_the_environment():
    environ = {"TF_CONFIG": json.dumps(_tf_config(TWO_WORKERS, "worker", 0))}
    plan = strategy.plan_from_environment(environ=environ)
    assert (plan.kind, plan.num_workers) == (strategy.MULTI_WORKER, 2)
    assert strategy.plan_from_environment(environ={}).devices == ("/cpu:0",)


def test_bad_tf_config_is_named():
    with pytest.raises(strategy.StrategyError, match="Expected TF_CONFIG to be JSON"):
        strategy.parse_tf_config({"TF_CONFIG": "{cluster"})
    assert strategy.parse_tf_config({"TF_CONFIG": "  "}) is None


# --- is_chief.


@pytest.mark.parametrize(
    "tf_config, expected",
    [
        (None, True),
        ({}, True),
        (_tf_config(CHIEF_AND_WORKER, "chief", 0), True),
        (_tf_config({"master": ["h0:1"], "worker": ["h1:1"]}, "master", 0), True),
        (_tf_config(TWO_WORKERS, "worker", 0), True),  # no chief: worker 0 is
        (_tf_config(TWO_WORKERS, "worker", 1), False),
        (_tf_config(CHIEF_AND_WORKER, "worker", 0), False),  # a chief exists
    ],
)
def test_is_chief(tf_config, expected):
    assert strategy.is_chief(tf_config) is expected


def test_task_id():
    assert strategy.task_id(_tf_config(TWO_WORKERS, "worker", 1)) == "worker-1"
    assert strategy.task_id(None) == "chief"


# --- Instantiation (conftest split the CPU in two before TensorFlow started).


def test_two_cpu_replicas_are_in_sync():
    distribution = strategy.make_strategy(strategy.plan_strategy(None, num_gpus=0, cpu_replicas=2))
    assert isinstance(distribution, tf.distribute.MirroredStrategy)
    assert distribution.num_replicas_in_sync == 2
    # A real all-reduce across the two replicas: each contributes its replica id + 1.
    result = distribution.run(
        lambda: tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32) + 1.0
    )
    assert float(distribution.reduce(tf.distribute.ReduceOp.SUM, result, axis=None)) == 3.0


def test_one_cpu_replica_is_the_default_strategy():
    distribution = strategy.make_strategy(strategy.plan_from_environment(cpu_replicas=1, environ={}))
    assert distribution.num_replicas_in_sync == 1
    assert distribution is tf.distribute.get_strategy()  # no distributed step per batch


def test_other_cpu_count_after_initialisation_is_a_clear_error():
    with pytest.raises(strategy.StrategyError) as error:
        strategy.make_strategy(strategy.plan_from_environment(cpu_replicas=3, environ={}))
    assert "Expected to split the CPU into 3 logical devices" in str(error.value)
    assert "already initialised with 2 CPU device(s)" in str(error.value)


# --- Mixed precision.


@pytest.mark.parametrize(
    "requested, capabilities, expected",
    [
        ("auto", (), "float32"),
        ("auto", ((8, 0), (8, 0)), "mixed_float16"),
        ("auto", ((7, 0),), "mixed_float16"),
        ("auto", ((6, 1),), "float32"),  # Pascal: no Tensor Cores
        ("auto", ((8, 0), (6, 1)), "float32"),  # the slowest GPU decides
        ("float16", ((6, 1),), "mixed_float16"),  # asked for explicitly
        ("bfloat16", (), "mixed_bfloat16"),
        ("bfloat16", ((8, 0),), "mixed_bfloat16"),
        ("off", ((8, 0),), "float32"),
    ],
)
def test_mixed_precision_policy(requested, capabilities, expected):
    assert (
        strategy.mixed_precision_policy(requested, gpu_compute_capabilities=capabilities)
        == expected
    )


def test_float16_without_gpu_is_refused():
    with pytest.raises(ValueError, match="Expected a GPU for --mixed_precision=float16"):
        strategy.mixed_precision_policy("float16", gpu_compute_capabilities=())


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match=r"Received: 'fp8'"):
        strategy.mixed_precision_policy("fp8")


def test_one_capability_per_local_gpu():
    capabilities = strategy.local_gpu_compute_capabilities()
    assert len(capabilities) == len(tf.config.list_physical_devices("GPU"))
    assert all(len(cc) == 2 and cc[0] >= 1 for cc in capabilities)
