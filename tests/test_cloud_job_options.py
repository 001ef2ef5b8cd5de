"""--tensorboard and --reduction_server_count on s140-submit train and tune (hptune's
are in test_cloud_hptune.py): CustomJob bodies that parse strictly into the proto."""

import json
import re

import pytest
from support.vertex_stand_in import run_cli

from cloud import job_options

TENSORBOARD = "projects/p/locations/us-central1/tensorboards/123"
COMMON = ["--project=p", "--region=us-central1", "--output_dir=gs://b/runs/1",
          "--image_uri=us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"]
SA = "--service_account=trainer@p.iam.gserviceaccount.com"


@pytest.mark.parametrize("command", ["train", "tune"])
def test_tensorboard_goes_into_the_job_spec(command):
    code, out = run_cli([command, *COMMON, SA, f"--tensorboard={TENSORBOARD}", "--dry_run", "--", "--data_dir=gs://b/d"])
    assert code == 0
    job = json.loads(out)
    assert job["jobSpec"]["tensorboard"] == TENSORBOARD
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    assert aiplatform_v1.CustomJob.from_json(out, ignore_unknown_fields=False).job_spec.tensorboard == TENSORBOARD


@pytest.mark.parametrize(
    "extra, message",
    [([f"--tensorboard={TENSORBOARD}"],
      r"Expected --service_account with --tensorboard: Vertex AI uploads the logs to TensorBoard as the job's "
      r"service account.*Received: no --service_account."),
     ([SA, "--tensorboard=tb-1"], r"Expected --tensorboard=projects/PROJECT/locations/REGION/tensorboards/ID"),
     ([SA, "--tensorboard=projects/p/locations/europe-west4/tensorboards/1"],
      r"Expected a TensorBoard in the job's region us-central1"),
     (["--reduction_server_count=2"], r"Expected --workers >= 2 with --reduction_server_count"),
     (["--workers=2", "--reduction_server_count=2"], r"Expected GPUs \(--accelerator_type\) with --reduction_server_count")],
)
def test_job_option_errors(extra, message, capsys):
    code, _ = run_cli(["train", *COMMON, *extra, "--dry_run", "--", "--data_dir=gs://b/d"])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_reduction_server_pool_for_multi_worker_gpu_training():
    code, out = run_cli(["train", *COMMON, "--machine_type=a3-highgpu-8g", "--accelerator_type=NVIDIA_H100_80GB",
                      "--workers=4", "--reduction_server_count=4", "--dry_run", "--", "--data_dir=gs://b/d"])
    assert code == 0
    pools = json.loads(out)["jobSpec"]["workerPoolSpecs"]
    assert [p["replicaCount"] for p in pools] == [1, 3, 4]
    assert pools[2] == {"machineSpec": {"machineType": "n1-highcpu-16"}, "replicaCount": 4,
                        "containerSpec": {"imageUri": job_options.REDUCTION_SERVER_IMAGE}}
    assert pools[1]["machineSpec"]["acceleratorCount"] == 8
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    assert len(aiplatform_v1.CustomJob.from_json(out, ignore_unknown_fields=False).job_spec.worker_pool_specs) == 3
