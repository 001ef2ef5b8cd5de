"""Vertex AI custom jobs: the job specification (a plain dict) and its submission.

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
import secrets
import typing

from cloud import arguments
from cloud import entrypoint
from cloud import machines
from cloud import storage
from cloud.arguments import SpecError

CONTAINER_TRAIN = entrypoint.TRAIN
CONTAINER_TUNE = entrypoint.TUNE

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


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """What every Vertex job of this package has in common; the CLI fills it from flags."""

    project: str
    region: str
    output_dir: str  # gs://: the job's baseOutputDirectory
    image_uri: str  # the training container
    machine: machines.MachineSpec = machines.MachineSpec("n1-standard-8")
    display_name: str = "s140-job"
    service_account: typing.Optional[str] = None
    timeout: typing.Optional[str] = None  # Duration JSON, e.g. "86400s"
    restart_job_on_worker_restart: bool = False
    spot: bool = False
    env: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)
    boot_disk_size_gb: typing.Optional[int] = None

    def __post_init__(self):
        arguments.check_project_and_region(self.project, self.region)
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
    arguments.check_remote_paths(trainer_args, ("data_dir", "job_dir"), fuse=True)
    args = [CONTAINER_TRAIN, *trainer_args]
    pools = [_worker_pool(cfg, args, 1)]
    if workers > 1:
        pools.append(_worker_pool(cfg, args, workers - 1))
    return _custom_job(cfg, pools, CONTAINER_TRAIN)


# tuning/distributed.py's SECRET: the name is repeated rather than imported, so that
# s140-submit does not import the tuning package (and TensorFlow with it).
SWEEP_SECRET = "S140_SWEEP_SECRET"


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
    arguments.check_remote_paths(tuner_args, ("data_dir", "tuner_dir"), fuse=True)
    roles = [name for name in ("role", "oracle_address", "worker_id") if arguments.flag_values(tuner_args, name)]
    if roles:
        raise SpecError(
            "Expected no " + ", ".join(f"--{name}" for name in roles) + " in a Vertex tuning job: "
            "each replica derives its KerasTuner role and the oracle's address from CLUSTER_SPEC. "
            "Received them after `--`."
        )
    args = [CONTAINER_TUNE, *tuner_args]
    if parallel_trials > 1:
        # The oracle serves only calls carrying this secret. It is drawn here, once per
        # job, and lives only in this job's own spec: the job's replicas share it, no one
        # else on the network has it (tuning/distributed.py).
        cfg = dataclasses.replace(cfg, env={**cfg.env, SWEEP_SECRET: secrets.token_hex(32)})
    pools = [_worker_pool(cfg, args, 1)]
    if parallel_trials > 1:
        pools.append(_worker_pool(cfg, args, parallel_trials - 1))
    return _custom_job(cfg, pools, CONTAINER_TUNE)


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
