"""Vertex AI's part in starting a custom job's replicas, played on this machine.

For each replica of a CustomJob body (as `s140-submit ... --dry_run` prints it) this
gives the container arguments and the environment Vertex sets: CLUSTER_SPEC (pools by
name "workerpoolN"), TF_CONFIG (pools as chief/worker/ps/evaluator), the AIP_* output
directories under the base output directory, and the container's own env. The tests
that run jobs locally start `python -m cloud.entrypoint` with them.
"""

import dataclasses
import json
import typing

from trainer import config as train_config

# Vertex names its worker pools by position; TF_CONFIG maps them to task types.
POOL_TASK_TYPES = ("chief", "worker", "ps", "evaluator")


@dataclasses.dataclass(frozen=True)
class Replica:
    pool: int
    index: int
    args: typing.Tuple[str, ...]
    env: typing.Mapping[str, str]


def replica_environments(job, addresses, *, base_output_dir=None, job_id="local"):
    """Each replica of `job` with the arguments and environment Vertex gives it.

    Vertex sets, per replica: CLUSTER_SPEC (pools by name "workerpoolN"), TF_CONFIG
    (pools as chief/worker/ps/evaluator), the AIP_* output directories under the base
    output directory, and the container's own env.

    Args:
      job: a CustomJob body.
      addresses: host:port strings, one per replica in pool order.
      base_output_dir: overrides the job's baseOutputDirectory (e.g. a local tmp dir).
      job_id: the job name in CLUSTER_SPEC/TF_CONFIG.

    Returns:
      A list of `Replica`.
    """
    pools = job["jobSpec"]["workerPoolSpecs"]
    total = sum(int(pool["replicaCount"]) for pool in pools)
    if len(addresses) != total:
        raise ValueError(f"Expected {total} addresses, one per replica. Received: {len(addresses)}.")
    by_pool, start = [], 0
    for pool in pools:
        count = int(pool["replicaCount"])
        by_pool.append(list(addresses[start:start + count]))
        start += count
    cluster_spec = {f"workerpool{i}": hosts for i, hosts in enumerate(by_pool)}
    tf_cluster = {POOL_TASK_TYPES[i]: hosts for i, hosts in enumerate(by_pool)}
    base = base_output_dir or job["jobSpec"].get("baseOutputDirectory", {}).get("outputUriPrefix")
    replicas = []
    for i, pool in enumerate(pools):
        container = pool["containerSpec"]
        for index in range(int(pool["replicaCount"])):
            env = {item["name"]: item["value"] for item in container.get("env", [])}
            env["CLUSTER_SPEC"] = json.dumps({
                "cluster": cluster_spec,
                "environment": "cloud",
                "task": {"type": f"workerpool{i}", "index": index},
                "job": job_id,
            })
            env["TF_CONFIG"] = json.dumps({
                "cluster": tf_cluster,
                "environment": "cloud",
                "task": {"type": POOL_TASK_TYPES[i], "index": index},
                "job": job_id,
            })
            if base:
                base = base.rstrip("/")
                env[train_config.AIP_MODEL_DIR] = f"{base}/model/"
                env[train_config.AIP_CHECKPOINT_DIR] = f"{base}/checkpoints/"
                env[train_config.AIP_TENSORBOARD_LOG_DIR] = f"{base}/logs/"
            replicas.append(Replica(i, index, tuple(container.get("args", ())), env))
    return replicas
