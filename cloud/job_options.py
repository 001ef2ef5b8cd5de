"""Options that any Vertex AI training-style job spec (a CustomJob's `jobSpec`, a tuning
job's `trialJobSpec`) can take: Vertex TensorBoard and a Reduction Server pool.

Both act on the CustomJobSpec dict in place, after the job body is built, so train,
tune and hptune share them.
"""

import re

from cloud import arguments
from cloud import machines

_TENSORBOARD = re.compile(r"projects/[^/]+/locations/(?P<region>[^/]+)/tensorboards/[^/]+")

# Vertex's Reduction Server image (docs: "Reduce training time with Reduction Server").
REDUCTION_SERVER_IMAGE = "us-docker.pkg.dev/vertex-ai-restricted/training/reductionserver:latest"
DEFAULT_REDUCTION_SERVER_MACHINE = "n1-highcpu-16"


def add_tensorboard(job_spec, tensorboard, *, region):
    """Streams the job's AIP_TENSORBOARD_LOG_DIR to a Vertex TensorBoard instance.

    Vertex uploads the logs as the job's service account, so the API refuses a job with
    a TensorBoard but without one; saying so here saves a round trip.

    Raises:
      arguments.SpecError: for a malformed name, another region, or no service account.
    """
    match = _TENSORBOARD.fullmatch(tensorboard or "")
    if not match:
        raise arguments.SpecError(
            "Expected --tensorboard=projects/PROJECT/locations/REGION/tensorboards/ID "
            f"(gcloud ai tensorboards list). Received: {tensorboard!r}."
        )
    if match["region"] != region:
        raise arguments.SpecError(
            f"Expected a TensorBoard in the job's region {region}. Received: {tensorboard} "
            f"(in {match['region']})."
        )
    if not job_spec.get("serviceAccount"):
        raise arguments.SpecError(
            "Expected --service_account with --tensorboard: Vertex AI uploads the logs to "
            "TensorBoard as the job's service account, which needs roles/aiplatform.user and "
            "write access to --output_dir. Received: no --service_account."
        )
    job_spec["tensorboard"] = tensorboard
    return job_spec


def add_reduction_server(job_spec, count, *, machine_type=DEFAULT_REDUCTION_SERVER_MACHINE):
    """Appends a Reduction Server pool (worker pool 2) of `count` replicas.

    Reduction Server speeds up the all-reduce of multi-worker GPU training over NCCL;
    it needs the chief and worker pools, GPUs in them, and the Reduction Server NCCL
    plugin in the training image.

    Raises:
      arguments.SpecError: for count < 1, a job with one machine, or no GPUs.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise arguments.SpecError(f"Expected --reduction_server_count to be an integer >= 1. Received: {count!r}.")
    pools = job_spec["workerPoolSpecs"]
    if len(pools) != 2:
        raise arguments.SpecError(
            "Expected --workers >= 2 with --reduction_server_count: Reduction Server reduces "
            f"gradients between machines. Received: a job with {len(pools)} worker pool(s)."
        )
    if not pools[0]["machineSpec"].get("acceleratorType"):
        raise arguments.SpecError(
            "Expected GPUs (--accelerator_type) with --reduction_server_count: Reduction Server "
            "works with NCCL all-reduce between GPUs. Received: a CPU-only machine."
        )
    machines.check_machine(machine_type)
    pools.append({
        "machineSpec": {"machineType": machine_type},
        "replicaCount": count,
        "containerSpec": {"imageUri": REDUCTION_SERVER_IMAGE},
    })
    return job_spec
