"""Vertex AI custom jobs: the job specification (a plain dict), its submission, and
what Vertex sets in each replica's environment.

The specification is the CustomJob REST body (camelCase, as `gcloud ai custom-jobs
create --config` and the REST API take it). Building it is pure, so `--dry_run` prints
exactly what would be sent and tests check it field by field. Submission converts it to
the `google.cloud.aiplatform_v1.CustomJob` proto and sends it with the official
`JobServiceClient`.

Every job runs the training container (see Dockerfile) whose entry point dispatches its
first argument: `train` -> s140-train, `tune` -> s140-tune. The job always has a base
output directory, so Vertex sets AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and
AIP_TENSORBOARD_LOG_DIR (<base>/model/, /checkpoints/, /logs/) and the trainer writes
there without being told.
"""

import dataclasses
import json
import re
import typing

from absl import logging

from cloud import storage

CONTAINER_TRAIN = "train"
# Vertex mounts every bucket the job may read at /gcs/BUCKET (Cloud Storage FUSE).
FUSE_PREFIX = "/gcs/"
CONTAINER_TUNE = "tune"

# Vertex names its worker pools by position; TF_CONFIG maps them to task types.
_POOL_TASK_TYPES = ("chief", "worker", "ps", "evaluator")

GPU_ACCELERATORS = (
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB",
    "NVIDIA_B200",
    "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000",
)

_N1_GPUS = {
    "NVIDIA_TESLA_T4": (1, 2, 4),
    "NVIDIA_TESLA_V100": (1, 2, 4, 8),
    "NVIDIA_TESLA_P100": (1, 2, 4),
    "NVIDIA_TESLA_P4": (1, 2, 4),
}
_G2_L4_COUNT = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
_G4_COUNT = {48: 1, 96: 2, 192: 4, 384: 8}


def _fixed(accelerator, count):
    return {accelerator: (count,)}


# Machine families -> {accelerator type: allowed counts}. The accelerator-optimised
# families come with a fixed number of GPUs built in; N1 takes a choice of attached
# GPUs; the other general-purpose and compute families take none. First match wins.
# The table advises (see check_machine): what it does not list goes to the API as asked.
MACHINE_FAMILIES = (
    (r"a2-highgpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_TESLA_A100", int(m["n"]))),
    (r"a2-megagpu-16g", lambda m: _fixed("NVIDIA_TESLA_A100", 16)),
    (r"a2-ultragpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_A100_80GB", int(m["n"]))),
    (r"a3-highgpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_H100_80GB", int(m["n"]))),
    (r"a3-megagpu-8g", lambda m: _fixed("NVIDIA_H100_MEGA_80GB", 8)),
    (r"a3-ultragpu-8g", lambda m: _fixed("NVIDIA_H200_141GB", 8)),
    (r"a4-highgpu-8g", lambda m: _fixed("NVIDIA_B200", 8)),
    (r"a4x-highgpu-4g", lambda m: _fixed("NVIDIA_GB200", 4)),
    (r"g4-standard-(?P<n>48|96|192|384)", lambda m: _fixed("NVIDIA_RTX_PRO_6000", _G4_COUNT[int(m["n"])])),
    (r"g2-standard-(?P<n>4|8|12|16|24|32|48|96)", lambda m: _fixed("NVIDIA_L4", _G2_L4_COUNT[int(m["n"])])),
    (r"n1-(standard|highmem|highcpu)-\d+", lambda m: dict(_N1_GPUS)),
    (r"(e2|n2|n2d|n4|c2|c2d|c3|c3d|c4|m1|m2|m3|t2d)-[a-z]+-\d+", lambda m: {}),
)


class SpecError(ValueError):
    """A job cannot be specified as requested; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class MachineSpec:
    machine_type: str
    accelerator_type: typing.Optional[str] = None
    accelerator_count: int = 0

    def to_json(self):
        spec = {"machineType": self.machine_type}
        if self.accelerator_type:
            spec["acceleratorType"] = self.accelerator_type
            spec["acceleratorCount"] = self.accelerator_count
        return spec


def allowed_accelerators(machine_type):
    """{accelerator type: allowed counts} of a machine type, or None when the family is
    not in `MACHINE_FAMILIES`."""
    for pattern, rule in MACHINE_FAMILIES:
        match = re.fullmatch(pattern, machine_type)
        if match:
            return rule(match)
    return None


def check_machine(machine_type, accelerator_type=None, accelerator_count=None):
    """Checks a machine/accelerator combination and fills in the accelerator count.

    `MACHINE_FAMILIES` only advises: Vertex adds machines faster than any table here,
    so a combination it does not list is logged as a warning and left to the API to
    judge. Input that cannot be right anywhere (no machine type, a negative count, a
    count without a type, an accelerator name the API does not have) is an error.

    Args:
      machine_type: e.g. "n1-standard-8", "a3-ultragpu-8g".
      accelerator_type: e.g. "NVIDIA_H200_141GB", or None/"" for none.
      accelerator_count: None or 0 chooses the machine's count (accelerator-optimised
        families), else 1.

    Returns:
      A `MachineSpec`.

    Raises:
      SpecError: for the input errors above.
    """
    if not machine_type or not isinstance(machine_type, str):
        raise SpecError(f"Expected --machine_type such as n1-standard-8. Received: {machine_type!r}.")
    count = accelerator_count or 0
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SpecError(f"Expected --accelerator_count to be an integer >= 0. Received: {accelerator_count!r}.")
    allowed = allowed_accelerators(machine_type)
    if not accelerator_type:
        if count:
            raise SpecError(
                f"Expected --accelerator_type with --accelerator_count={count}. Received: no "
                f"accelerator type. Choose one of {_choices(allowed) or list(GPU_ACCELERATORS)}."
            )
        if allowed and all(len(counts) == 1 for counts in allowed.values()):
            # a2/a3/a4/g2 machines always carry their GPUs; the API wants them named.
            (accelerator, (fixed,)), = allowed.items()
            _advise(
                f"Expected --accelerator_type={accelerator} --accelerator_count={fixed} with "
                f"--machine_type={machine_type}. Received: no accelerator."
            )
        return MachineSpec(machine_type)
    if accelerator_type not in GPU_ACCELERATORS:
        raise SpecError(
            f"Expected --accelerator_type among {list(GPU_ACCELERATORS)}. Received: {accelerator_type!r}."
        )
    counts = (allowed or {}).get(accelerator_type)
    if allowed is None:
        _advise(
            f"Expected a machine family that takes GPUs (a2-*, a3-*, a4-*, a4x-*, g2-*, g4-*, n1-*) "
            f"for --accelerator_type={accelerator_type}. Received: --machine_type={machine_type!r}, "
            "a family this tool does not know."
        )
    elif not allowed:
        _advise(
            f"Expected no accelerator on the CPU-only machine type {machine_type}. Received: "
            f"--accelerator_type={accelerator_type}. Use an n1-*, g2-*, g4-*, a2-*, a3-* or a4-* "
            "machine for GPUs."
        )
    elif counts is None:
        _advise(
            f"Expected an accelerator that {machine_type} can take: {_choices(allowed)}. "
            f"Received: --accelerator_type={accelerator_type}."
        )
    if not count:
        count = counts[0] if counts else 1
    if counts and count not in counts:
        _advise(
            f"Expected --accelerator_count in {list(counts)} for {accelerator_type} on "
            f"{machine_type}. Received: {count}."
        )
    return MachineSpec(machine_type, accelerator_type, count)


def _advise(message):
    logging.warning("%s Sending it anyway: the Vertex AI API has the last word.", message)


def _choices(allowed):
    if not allowed:
        return []
    return [f"{name} x{'/'.join(map(str, counts))}" for name, counts in allowed.items()]


_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>[smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text):
    """"90m", "2h", "1d", "3600s" or "3600" -> "5400s" (protobuf Duration JSON).

    Raises:
      SpecError: for anything else, or zero.
    """
    raw = str(text).strip()
    if raw.isdigit():
        raw += "s"
    match = _DURATION.fullmatch(raw)
    seconds = int(float(match["value"]) * _UNIT_SECONDS[match["unit"]]) if match else 0
    if seconds <= 0:
        raise SpecError(
            f"Expected --timeout as a positive duration such as 3600s, 90m, 12h or 7d. Received: {text!r}."
        )
    return f"{seconds}s"


# Loose on purpose (the API has the last word): lower-case id, optionally "domain:id".
_PROJECT = re.compile(r"([-a-z0-9.]+:)?[a-z][-a-z0-9]{0,62}")
_REGION = re.compile(r"[a-z]+-[a-z]+\d+")


def check_project_and_region(project, region):
    """Raises SpecError unless both look like a Google Cloud project id and region."""
    if not project:
        raise SpecError("Expected --project, the Google Cloud project id (e.g. my-project). Received: none.")
    if not _PROJECT.fullmatch(project):
        raise SpecError(
            f"Expected --project to be a project id (lower-case letters, digits and hyphens, "
            f"starting with a letter). Received: {project!r}."
        )
    if not region:
        raise SpecError("Expected --region, e.g. us-central1. Received: none.")
    if not _REGION.fullmatch(region):
        raise SpecError(f"Expected --region such as us-central1 or europe-west4. Received: {region!r}.")


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """What every Vertex job of this package has in common; the CLI fills it from flags."""

    project: str
    region: str
    output_dir: str  # gs://: the job's baseOutputDirectory
    image_uri: str  # the training container
    machine: MachineSpec = MachineSpec("n1-standard-8")
    display_name: str = "s140-job"
    service_account: typing.Optional[str] = None
    timeout: typing.Optional[str] = None  # Duration JSON, e.g. "86400s"
    restart_job_on_worker_restart: bool = False
    spot: bool = False
    env: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)
    boot_disk_size_gb: typing.Optional[int] = None

    def __post_init__(self):
        check_project_and_region(self.project, self.region)
        storage.parse_gs_uri(self.output_dir, what="--output_dir (the job's base output directory)")
        if not self.image_uri or "/" not in self.image_uri or any(c.isspace() for c in self.image_uri):
            raise SpecError(
                "Expected --image_uri of the training container, e.g. "
                f"{self.region}-docker.pkg.dev/{self.project}/REPOSITORY/s140-trainer:latest. "
                f"Received: {self.image_uri!r}."
            )
        if self.service_account is not None and "@" not in self.service_account:
            raise SpecError(
                "Expected --service_account as an e-mail, e.g. trainer@PROJECT.iam.gserviceaccount.com. "
                f"Received: {self.service_account!r}."
            )
        if not isinstance(self.display_name, str) or not re.fullmatch(r"[^\n]{1,128}", self.display_name):
            raise SpecError(f"Expected a display name of 1-128 characters. Received: {self.display_name!r}.")
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "labels", dict(self.labels))


def _worker_pool(cfg, args, replica_count):
    container = {"imageUri": cfg.image_uri, "args": list(args)}
    if cfg.env:
        container["env"] = [{"name": name, "value": value} for name, value in sorted(cfg.env.items())]
    pool = {"machineSpec": cfg.machine.to_json(), "replicaCount": replica_count, "containerSpec": container}
    if cfg.boot_disk_size_gb:
        pool["diskSpec"] = {"bootDiskType": "pd-ssd", "bootDiskSizeGb": cfg.boot_disk_size_gb}
    return pool


def _custom_job(cfg, pools, command):
    job_spec = {
        "workerPoolSpecs": pools,
        # Vertex sets AIP_MODEL_DIR/AIP_CHECKPOINT_DIR/AIP_TENSORBOARD_LOG_DIR only with this.
        "baseOutputDirectory": {"outputUriPrefix": cfg.output_dir},
    }
    scheduling = {}
    if cfg.timeout:
        scheduling["timeout"] = cfg.timeout
    if cfg.restart_job_on_worker_restart:
        scheduling["restartJobOnWorkerRestart"] = True
    if cfg.spot:
        scheduling["strategy"] = "SPOT"
    if scheduling:
        job_spec["scheduling"] = scheduling
    if cfg.service_account:
        job_spec["serviceAccount"] = cfg.service_account
    return {
        "displayName": cfg.display_name,
        "labels": {"s140-command": command, **cfg.labels},
        "jobSpec": job_spec,
    }


def training_job(cfg, trainer_args, *, workers=1):
    """The CustomJob body of one training run.

    Args:
      cfg: a `JobConfig`.
      trainer_args: s140-train's arguments (e.g. ["--data_dir=gs://b/data", ...]).
      workers: machines in the job. 1: one worker pool (MirroredStrategy over its GPUs);
        N > 1: pool 0 with the chief and pool 1 with N-1 workers, all alike; Vertex's
        TF_CONFIG then makes the trainer use MultiWorkerMirroredStrategy.

    Raises:
      SpecError: for workers < 1, or a local path where the job needs gs://.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpecError(f"Expected --workers to be an integer >= 1. Received: {workers!r}.")
    check_remote_paths(trainer_args, ("data_dir", "job_dir"))
    args = [CONTAINER_TRAIN, *trainer_args]
    pools = [_worker_pool(cfg, args, 1)]
    if workers > 1:
        pools.append(_worker_pool(cfg, args, workers - 1))
    return _custom_job(cfg, pools, CONTAINER_TRAIN)


def tuning_job(cfg, tuner_args, *, parallel_trials=1):
    """The CustomJob body of a distributed KerasTuner sweep.

    Pool 0 runs the tuning chief (the KerasTuner oracle, which also runs trials) and
    pool 1 `parallel_trials - 1` workers that each run trials; the tuning CLI derives
    each process's KerasTuner role and the oracle's address from CLUSTER_SPEC.

    Raises:
      SpecError: for parallel_trials < 1, or a local path where the job needs gs://.
    """
    if isinstance(parallel_trials, bool) or not isinstance(parallel_trials, int) or parallel_trials < 1:
        raise SpecError(f"Expected --parallel_trials to be an integer >= 1. Received: {parallel_trials!r}.")
    check_remote_paths(tuner_args, ("data_dir", "tuner_dir"))
    roles = [name for name in ("role", "oracle_address", "worker_id") if flag_values(tuner_args, name)]
    if roles:
        raise SpecError(
            "Expected no " + ", ".join(f"--{name}" for name in roles) + " in a Vertex tuning job: "
            "each replica derives its KerasTuner role and the oracle's address from CLUSTER_SPEC. "
            "Received them after `--`."
        )
    args = [CONTAINER_TUNE, *tuner_args]
    pools = [_worker_pool(cfg, args, 1)]
    if parallel_trials > 1:
        pools.append(_worker_pool(cfg, args, parallel_trials - 1))
    return _custom_job(cfg, pools, CONTAINER_TUNE)


def flag_values(args, name):
    """Values given to --name in a list of command-line arguments (--name=v or --name v)."""
    values = []
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            values.append(arg.split("=", 1)[1])
        elif arg == f"--{name}" and i + 1 < len(args) and not args[i + 1].startswith("--"):
            values.append(args[i + 1])
    return values


def check_remote_paths(args, names):
    """Raises SpecError when a path flag of a cloud job names a local path: the job's
    machines cannot see this machine's files. gs:// and Vertex's Cloud Storage FUSE
    mount (/gcs/BUCKET/..., a local path inside the job) pass."""
    for name in names:
        for value in flag_values(args, name):
            for item in value.split(","):
                if item and not storage.is_gs_uri(item) and not item.startswith(FUSE_PREFIX):
                    raise SpecError(
                        f"Expected --{name} of a cloud job to be a gs:// location. Received: "
                        f"{item!r}, a path the job's machines cannot see. Upload it first "
                        "(gcloud storage cp -r ... gs://BUCKET/...), or give its Cloud Storage "
                        f"FUSE path {FUSE_PREFIX}BUCKET/... as the job sees it."
                    )


# --- Submission.


def api_endpoint(region):
    return f"{region}-aiplatform.googleapis.com"


def parent(project, region):
    return f"projects/{project}/locations/{region}"


def submit(job, *, project, region, credentials=None, endpoint=None):
    """Creates the CustomJob with the official client; returns the created job as a dict.

    Args:
      job: a body from `training_job` or `tuning_job`.
      project, region: where the job runs.
      credentials: google-auth credentials (default: application default credentials).
      endpoint: the API endpoint (default: the regional one); "http://host:port" is
        accepted, which tests use to point the client at a local stand-in.
    """
    from google.cloud import aiplatform_v1

    # Parsing first: a field the API does not know fails here, before any credentials.
    custom_job = aiplatform_v1.CustomJob.from_json(json.dumps(job))
    client = aiplatform_v1.JobServiceClient(
        credentials=credentials,
        client_options={"api_endpoint": endpoint or api_endpoint(region)},
        transport="rest",
    )
    created = client.create_custom_job(parent=parent(project, region), custom_job=custom_job)
    return json.loads(aiplatform_v1.CustomJob.to_json(created, use_integers_for_enums=False))


def console_url(job_name):
    """The Cloud console page of a job "projects/P/locations/R/customJobs/ID"."""
    match = re.fullmatch(r"projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/customJobs/(?P<id>[^/]+)", job_name)
    if not match:
        return None
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{match['region']}/training/"
        f"{match['id']}/cpu?project={match['project']}"
    )


# --- What Vertex sets in each replica (used to run a job's replicas locally).


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
        raise SpecError(f"Expected {total} addresses, one per replica. Received: {len(addresses)}.")
    by_pool, start = [], 0
    for pool in pools:
        count = int(pool["replicaCount"])
        by_pool.append(list(addresses[start:start + count]))
        start += count
    cluster_spec = {f"workerpool{i}": hosts for i, hosts in enumerate(by_pool)}
    tf_cluster = {_POOL_TASK_TYPES[i]: hosts for i, hosts in enumerate(by_pool)}
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
                "task": {"type": _POOL_TASK_TYPES[i], "index": index},
                "job": job_id,
            })
            if base:
                base = base.rstrip("/")
                env["AIP_MODEL_DIR"] = f"{base}/model/"
                env["AIP_CHECKPOINT_DIR"] = f"{base}/checkpoints/"
                env["AIP_TENSORBOARD_LOG_DIR"] = f"{base}/logs/"
            replicas.append(Replica(i, index, tuple(container.get("args", ())), env))
    return replicas
