"""cloud.vertex: machine/accelerator rules, CustomJob bodies, the environment Vertex sets,
and submission through the real aiplatform_v1 client to a local HTTP stand-in."""

import json
import re

import pytest
from support.vertex_stand_in import stand_in  # noqa: F401  (a fixture)

from cloud import arguments
from cloud import machines
from cloud import storage
from cloud import vertex

from support import vertex_replicas  # Vertex's part in starting replicas

IMAGE = "us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"


def _config(**overrides):
    values = dict(project="p", region="us-central1", output_dir="gs://b/runs/1", image_uri=IMAGE,
                  display_name="s140-train-test")
    values.update(overrides)
    return vertex.JobConfig(**values)


# --- Machines and accelerators.


@pytest.mark.parametrize(
    "machine, accelerator, count, expected",
    [
        ("a2-highgpu-4g", "NVIDIA_TESLA_A100", 4, ("NVIDIA_TESLA_A100", 4)),
        ("a2-highgpu-1g", "NVIDIA_TESLA_A100", None, ("NVIDIA_TESLA_A100", 1)),
        ("a2-ultragpu-8g", "NVIDIA_A100_80GB", 8, ("NVIDIA_A100_80GB", 8)),
        ("g2-standard-24", "NVIDIA_L4", None, ("NVIDIA_L4", 2)),
        ("g2-standard-8", "NVIDIA_L4", 1, ("NVIDIA_L4", 1)),
        ("n1-standard-8", "NVIDIA_TESLA_T4", 2, ("NVIDIA_TESLA_T4", 2)),
        ("n1-highmem-16", "NVIDIA_TESLA_V100", 8, ("NVIDIA_TESLA_V100", 8)),
        ("n1-standard-4", "NVIDIA_TESLA_P4", None, ("NVIDIA_TESLA_P4", 1)),
        ("a3-highgpu-8g", "NVIDIA_H100_80GB", 8, ("NVIDIA_H100_80GB", 8)),
        ("n1-standard-8", None, None, (None, 0)),
        ("e2-standard-4", None, 0, (None, 0)),
    ],
)
def test_check_machine_accepts_and_fills_counts(machine, accelerator, count, expected):
    spec = machines.check_machine(machine, accelerator, count)
    assert (spec.accelerator_type, spec.accelerator_count) == expected
    assert spec.machine_type == machine


@pytest.mark.parametrize(
    "machine, accelerator, count, expected",
    [
        ("a3-ultragpu-8g", "NVIDIA_H200_141GB", None, ("NVIDIA_H200_141GB", 8)),
        ("a4-highgpu-8g", "NVIDIA_B200", 8, ("NVIDIA_B200", 8)),
        ("a3-highgpu-1g", "NVIDIA_H100_80GB", None, ("NVIDIA_H100_80GB", 1)),
        ("a3-highgpu-2g", "NVIDIA_H100_80GB", None, ("NVIDIA_H100_80GB", 2)),
        ("a3-highgpu-4g", "NVIDIA_H100_80GB", 4, ("NVIDIA_H100_80GB", 4)),
        ("a4x-highgpu-4g", "NVIDIA_GB200", None, ("NVIDIA_GB200", 4)),
        ("g4-standard-96", "NVIDIA_RTX_PRO_6000", None, ("NVIDIA_RTX_PRO_6000", 2)),
    ],
)
def test_todays_machines_are_accepted_without_warning(machine, accelerator, count, expected, caplog):
    spec = machines.check_machine(machine, accelerator, count)
    assert (spec.machine_type, spec.accelerator_type, spec.accelerator_count) == (machine, *expected)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_the_accelerator_names_are_the_apis():
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    assert set(machines.GPU_ACCELERATORS) <= {item.name for item in aiplatform_v1.AcceleratorType}


@pytest.mark.parametrize(
    "machine, accelerator, count, message",
    [
        ("n1-standard-8", "TESLA_K9000", None, r"Expected --accelerator_type among \[.*'NVIDIA_L4'.*\]. Received: 'TESLA_K9000'."),
        ("n1-standard-8", None, 2, r"Expected --accelerator_type with --accelerator_count=2"),
        ("n1-standard-8", "NVIDIA_TESLA_T4", -1, r"Expected --accelerator_count to be an integer >= 0"),
        ("", None, None, r"Expected --machine_type"),
    ],
)
def test_check_machine_errors(machine, accelerator, count, message):
    with pytest.raises(vertex.SpecError, match=message):
        machines.check_machine(machine, accelerator, count)


# The table only advises: what it does not list is logged and sent as asked.
@pytest.mark.parametrize(
    "machine, accelerator, count, message, sent",
    [
        ("a2-highgpu-4g", "NVIDIA_TESLA_A100", 2,
         r"Expected --accelerator_count in \[4\] for NVIDIA_TESLA_A100 on a2-highgpu-4g. Received: 2.", ("NVIDIA_TESLA_A100", 2)),
        ("a2-highgpu-4g", "NVIDIA_TESLA_T4", None,
         r"Expected an accelerator that a2-highgpu-4g can take: \['NVIDIA_TESLA_A100 x4'\]. Received: --accelerator_type=NVIDIA_TESLA_T4.",
         ("NVIDIA_TESLA_T4", 1)),
        ("n1-standard-8", "NVIDIA_TESLA_T4", 8, r"Expected --accelerator_count in \[1, 2, 4\]", ("NVIDIA_TESLA_T4", 8)),
        ("n1-standard-8", "NVIDIA_L4", None, r"Expected an accelerator that n1-standard-8 can take", ("NVIDIA_L4", 1)),
        ("e2-standard-4", "NVIDIA_TESLA_T4", 1, r"Expected no accelerator on the CPU-only machine type e2-standard-4",
         ("NVIDIA_TESLA_T4", 1)),
        ("c2-standard-8", "NVIDIA_TESLA_T4", None, r"CPU-only", ("NVIDIA_TESLA_T4", 1)),
        ("x9-custom-1", "NVIDIA_TESLA_T4", None, r"a family this tool does not know", ("NVIDIA_TESLA_T4", 1)),
        ("a2-highgpu-2g", None, None, r"Expected --accelerator_type=NVIDIA_TESLA_A100 --accelerator_count=2", (None, 0)),
        ("a3-highgpu-8g", "NVIDIA_H100_80GB", 4, r"Expected --accelerator_count in \[8\]", ("NVIDIA_H100_80GB", 4)),
        ("a5-hypergpu-8g", "NVIDIA_GB200", None, r"a family this tool does not know", ("NVIDIA_GB200", 1)),
    ],
)
def test_check_machine_warns_and_leaves_unknown_combinations_to_the_api(machine, accelerator, count, message, sent, caplog):
    spec = machines.check_machine(machine, accelerator, count)
    assert (spec.accelerator_type, spec.accelerator_count) == sent
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert re.search(message, warning) and warning.endswith("the Vertex AI API has the last word.")


def test_fuse_paths_are_accepted_in_job_arguments():
    job = vertex.training_job(_config(), ["--data_dir=/gcs/b/prep/data", "--job_dir=/gcs/b/runs/1"])
    assert job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"][1:] == [
        "--data_dir=/gcs/b/prep/data", "--job_dir=/gcs/b/runs/1"]
    with pytest.raises(vertex.SpecError, match=r"or give its Cloud Storage FUSE path /gcs/BUCKET/"):
        vertex.training_job(_config(), ["--data_dir=/data/prep"])
    # Dataflow's workers have no such mount: there /gcs/ is a local path like any other.
    with pytest.raises(arguments.SpecError, match=r"Name a gs://BUCKET/\.\.\. location instead\.$"):
        arguments.check_remote_paths(["--output_dir=/gcs/b/prep"], ("output_dir",))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(project=""), r"Expected --project.*Received: none."),
        (dict(project="My Project"), r"Expected --project to be a project id.*Received: 'My Project'."),
        (dict(region=""), r"Expected --region, e.g. us-central1. Received: none."),
        (dict(region="central"), r"Expected --region such as us-central1"),
        (dict(output_dir="/tmp/runs"), r"Expected --output_dir \(the job's base output directory\) to be a Cloud Storage URI"),
        (dict(image_uri="s140-trainer"), r"Expected --image_uri of the training container"),
        (dict(service_account="trainer"), r"Expected --service_account as an e-mail"),
    ],
)
def test_job_config_errors(overrides, message):
    with pytest.raises((vertex.SpecError, storage.StorageUriError), match=message):
        _config(**overrides)


@pytest.mark.parametrize("text, expected", [("90m", "5400s"), ("2h", "7200s"), ("1d", "86400s"), ("3600", "3600s"), ("45s", "45s")])
def test_parse_duration(text, expected):
    assert vertex.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0", "soon", "-1h", "1w"])
def test_parse_duration_errors(text):
    with pytest.raises(vertex.SpecError, match="Expected --timeout as a positive duration"):
        vertex.parse_duration(text)


# --- Job bodies.


def test_single_worker_training_job_body():
    cfg = _config(
        machine=machines.check_machine("a2-highgpu-4g", "NVIDIA_TESLA_A100", 4),
        timeout="86400s", restart_job_on_worker_restart=True, spot=True,
        service_account="trainer@p.iam.gserviceaccount.com", env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    job = vertex.training_job(cfg, ["--data_dir=gs://b/data", "--architecture=bilstm"])
    assert job == {
        "displayName": "s140-train-test",
        "labels": {"s140-command": "train"},
        "jobSpec": {
            "workerPoolSpecs": [
                {
                    "machineSpec": {"machineType": "a2-highgpu-4g", "acceleratorType": "NVIDIA_TESLA_A100", "acceleratorCount": 4},
                    "replicaCount": 1,
                    "containerSpec": {
                        "imageUri": IMAGE,
                        "args": ["train", "--data_dir=gs://b/data", "--architecture=bilstm"],
                        "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}],
                    },
                }
            ],
            "baseOutputDirectory": {"outputUriPrefix": "gs://b/runs/1"},
            "scheduling": {"timeout": "86400s", "restartJobOnWorkerRestart": True, "strategy": "SPOT"},
            "serviceAccount": "trainer@p.iam.gserviceaccount.com",
        },
    }


def test_multi_worker_training_job_has_chief_pool_and_worker_pool():
    cfg = _config(machine=machines.check_machine("n1-standard-8", "NVIDIA_TESLA_T4", 2))
    job = vertex.training_job(cfg, ["--data_dir=gs://b/data"], workers=3)
    pools = job["jobSpec"]["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == [1, 2]
    assert pools[0]["machineSpec"] == pools[1]["machineSpec"] == {
        "machineType": "n1-standard-8", "acceleratorType": "NVIDIA_TESLA_T4", "acceleratorCount": 2}
    assert pools[0]["containerSpec"] == pools[1]["containerSpec"]
    assert "scheduling" not in job["jobSpec"] and "serviceAccount" not in job["jobSpec"]


def test_tuning_job_pools_follow_parallel_trials():
    cfg = _config(display_name="s140-tune-x")
    args = ["--data_dir=gs://b/data", "--tuner=random", "--max_trials=8"]
    job = vertex.tuning_job(cfg, args, parallel_trials=4)
    pools = job["jobSpec"]["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == [1, 3]
    assert all(pool["containerSpec"]["args"] == ["tune", *args] for pool in pools)
    assert job["labels"] == {"s140-command": "tune"}
    single = vertex.tuning_job(cfg, args, parallel_trials=1)
    assert len(single["jobSpec"]["workerPoolSpecs"]) == 1
    assert "env" not in single["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]  # one process: no oracle


def test_a_tuning_jobs_replicas_share_one_secret_of_their_own():
    cfg = _config(display_name="s140-tune-x")
    secrets_of = []
    for _ in range(2):
        pools = vertex.tuning_job(cfg, ["--data_dir=gs://b/data"], parallel_trials=3)["jobSpec"]["workerPoolSpecs"]
        values = [{e["name"]: e["value"] for e in pool["containerSpec"]["env"]}[vertex.SWEEP_SECRET] for pool in pools]
        assert len(set(values)) == 1 and len(values[0]) == 64
        secrets_of.append(values[0])
    assert secrets_of[0] != secrets_of[1]  # drawn per job


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda cfg: vertex.training_job(cfg, ["--data_dir=runs/data"]),
         r"Expected --data_dir of a cloud job to be a gs:// location. Received: 'runs/data'"),
        (lambda cfg: vertex.training_job(cfg, ["--data_dir", "/tmp/data"]), r"Received: '/tmp/data'"),
        (lambda cfg: vertex.training_job(cfg, [], workers=0), r"Expected --workers to be an integer >= 1. Received: 0."),
        (lambda cfg: vertex.tuning_job(cfg, ["--tuner_dir=runs/tune"]), r"Expected --tuner_dir of a cloud job"),
        (lambda cfg: vertex.tuning_job(cfg, [], parallel_trials=0), r"Expected --parallel_trials"),
        (lambda cfg: vertex.tuning_job(cfg, ["--role=chief"]), r"Expected no --role in a Vertex tuning job"),
    ],
)
def test_job_body_errors(build, message):
    with pytest.raises(vertex.SpecError, match=message):
        build(_config())


def test_replica_environments_match_vertex_contract():
    job = vertex.training_job(_config(env={"A": "1"}), ["--data_dir=gs://b/data"], workers=3)
    replicas = vertex_replicas.replica_environments(job, ["h0:2222", "h1:2222", "h2:2222"], job_id="j")
    assert [(r.pool, r.index) for r in replicas] == [(0, 0), (1, 0), (1, 1)]
    worker = replicas[2]
    assert json.loads(worker.env["CLUSTER_SPEC"]) == {
        "cluster": {"workerpool0": ["h0:2222"], "workerpool1": ["h1:2222", "h2:2222"]},
        "environment": "cloud", "task": {"type": "workerpool1", "index": 1}, "job": "j",
    }
    assert json.loads(worker.env["TF_CONFIG"])["cluster"] == {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]}
    assert json.loads(replicas[0].env["TF_CONFIG"])["task"] == {"type": "chief", "index": 0}
    assert worker.env["AIP_MODEL_DIR"] == "gs://b/runs/1/model/"
    assert worker.env["AIP_CHECKPOINT_DIR"] == "gs://b/runs/1/checkpoints/"
    assert worker.env["AIP_TENSORBOARD_LOG_DIR"] == "gs://b/runs/1/logs/"
    assert worker.env["A"] == "1" and worker.args == ("train", "--data_dir=gs://b/data")
    with pytest.raises(ValueError, match="Expected 3 addresses"):
        vertex_replicas.replica_environments(job, ["h0:1"])


def test_console_url():
    assert vertex.console_url("projects/p/locations/us-central1/customJobs/42") == (
        "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/42/cpu?project=p")
    assert vertex.console_url("nonsense") is None


# --- Submission through the official client to a local stand-in.


def test_submit_sends_the_body_to_the_custom_jobs_endpoint(stand_in):
    from google.auth.credentials import AnonymousCredentials

    cfg = _config(
        machine=machines.check_machine("n1-standard-8", "NVIDIA_TESLA_T4", 1), timeout="3600s", spot=True,
        restart_job_on_worker_restart=True, service_account="sa@p.iam.gserviceaccount.com", env={"X": "y"},
    )
    job = vertex.training_job(cfg, ["--data_dir=gs://b/data", "--architecture=gap"], workers=2)
    created = vertex.submit(job, project="p", region="us-central1", credentials=AnonymousCredentials(),
                            endpoint=stand_in.endpoint)
    (path, body, _), = stand_in.requests
    assert path.split("?")[0] == "/v1/projects/p/locations/us-central1/customJobs"
    spec = body["jobSpec"]
    assert body["displayName"] == "s140-train-test" and body["labels"] == {"s140-command": "train"}
    assert spec["baseOutputDirectory"] == {"outputUriPrefix": "gs://b/runs/1"}
    assert spec["serviceAccount"] == "sa@p.iam.gserviceaccount.com"
    assert spec["scheduling"]["timeout"] == "3600s" and spec["scheduling"]["restartJobOnWorkerRestart"] is True
    pools = spec["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == ["1", "1"]  # int64 travels as a string
    for pool in pools:
        assert pool["containerSpec"] == {
            "imageUri": IMAGE, "args": ["train", "--data_dir=gs://b/data", "--architecture=gap"],
            "env": [{"name": "X", "value": "y"}]}
        assert pool["machineSpec"]["machineType"] == "n1-standard-8"
        assert pool["machineSpec"]["acceleratorCount"] == 1
    # The REST transport sends enums as numbers; decoded, they are the ones we built.
    from google.cloud import aiplatform_v1

    assert pools[0]["machineSpec"]["acceleratorType"] == aiplatform_v1.AcceleratorType.NVIDIA_TESLA_T4.value
    decoded = aiplatform_v1.CustomJob.from_json(json.dumps(body))
    assert decoded.job_spec.scheduling.strategy == aiplatform_v1.Scheduling.Strategy.SPOT
    assert json.loads(aiplatform_v1.CustomJob.to_json(decoded, use_integers_for_enums=False)) == json.loads(
        aiplatform_v1.CustomJob.to_json(aiplatform_v1.CustomJob.from_json(json.dumps(job)), use_integers_for_enums=False))
    assert created["name"] == "projects/p/locations/us-central1/customJobs/1234567890"
    assert created["state"] == "JOB_STATE_PENDING"


def test_submit_rejects_a_body_the_api_would_not_accept(stand_in):
    from google.auth.credentials import AnonymousCredentials

    job = vertex.training_job(_config(), ["--data_dir=gs://b/data"])
    job["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["gpuType"] = "T4"
    with pytest.raises(Exception, match="gpuType"):
        vertex.submit(job, project="p", region="us-central1", endpoint=stand_in.endpoint,
                      credentials=AnonymousCredentials())
    assert stand_in.requests == []


def test_cli_submits_through_the_client_and_prints_where_to_watch(stand_in, capsys):
    from google.auth.credentials import AnonymousCredentials

    from cloud import __main__ as cli

    code = cli.main([
        "tune", "--project=p", "--region=us-central1", "--output_dir=gs://b/tune/1", f"--image_uri={IMAGE}",
        "--parallel_trials=2", f"--api_endpoint={stand_in.endpoint}", "--",
        "--data_dir=gs://b/data", "--tuner=random",
    ], credentials=AnonymousCredentials())
    assert code == 0
    (path, body, _), = stand_in.requests
    assert path.split("?")[0] == "/v1/projects/p/locations/us-central1/customJobs"
    assert [p["replicaCount"] for p in body["jobSpec"]["workerPoolSpecs"]] == ["1", "1"]
    assert body["jobSpec"]["workerPoolSpecs"][1]["containerSpec"]["args"] == ["tune", "--data_dir=gs://b/data", "--tuner=random"]
    out = capsys.readouterr().out
    assert "Submitted projects/p/locations/us-central1/customJobs/1234567890 (JOB_STATE_PENDING)." in out
    assert "gcloud ai custom-jobs stream-logs projects/p/locations/us-central1/customJobs/1234567890" in out
    assert "tensorboard --logdir gs://b/tune/1/logs" in out
