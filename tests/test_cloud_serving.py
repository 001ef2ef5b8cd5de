"""s140-submit deploy and batch-predict: request bodies parsed strictly into their protos,
and the requests the real clients send to a local stand-in, in order."""

import io
import json
import re

import pytest
from support.vertex_stand_in import (  # noqa: F401  (anonymous, stand_in: fixtures)
    anonymous, created_resource, operation, parse_strictly, run_cli, stand_in)

from cloud import __main__ as cli
from cloud import serving

PARENT = "projects/p/locations/us-central1"
DEPLOY = ["deploy", "--project=p", "--region=us-central1", "--model_dir=gs://b/runs/1/model/"]
BATCH = ["batch-predict", "--project=p", "--region=us-central1", "--input_jsonl=gs://b/tweets.jsonl",
         "--output_dir=gs://b/predictions"]


@pytest.mark.parametrize(
    "region, gpu, image",
    [("us-central1", False, "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"),
     ("europe-west4", True, "europe-docker.pkg.dev/vertex-ai/prediction/tf2-gpu.2-15:latest"),
     ("asia-northeast1", False, "asia-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest")],
)
def test_serving_image_is_the_prebuilt_tf_2_15_container(region, gpu, image):
    assert serving.serving_image(region, gpu=gpu) == image


def test_deploy_dry_run_prints_each_request_and_each_parses_strictly():
    code, out = run_cli([*DEPLOY, "--endpoint=s140-sentiment", "--machine_type=n1-standard-4",
                          "--min_replicas=1", "--max_replicas=3", "--display_name=s140-bilstm", "--dry_run"])
    assert code == 0
    bodies = json.loads(out)
    assert list(bodies) == ["uploadModel", "createEndpoint", "deployModel"]
    upload = parse_strictly("UploadModelRequest", bodies["uploadModel"])
    assert upload.parent == PARENT
    assert upload.model.artifact_uri == "gs://b/runs/1/model"
    assert upload.model.container_spec.image_uri == "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    assert parse_strictly("CreateEndpointRequest", bodies["createEndpoint"]).endpoint.display_name == "s140-sentiment"
    deploy = parse_strictly("DeployModelRequest", bodies["deployModel"])
    resources = deploy.deployed_model.dedicated_resources
    assert (resources.machine_spec.machine_type, resources.min_replica_count, resources.max_replica_count) == (
        "n1-standard-4", 1, 3)
    assert deploy.deployed_model.model == serving.UPLOADED_MODEL and deploy.endpoint == serving.CREATED_ENDPOINT
    assert dict(deploy.traffic_split) == {"0": 100}


def _serve_deploy_routes(stand_in, *, existing=()):
    stand_in.route("GET", rf"/v1/{PARENT}/endpoints", lambda body, match: {"endpoints": [
        {"name": name, "displayName": "s140-sentiment"} for name in existing]})
    stand_in.route("POST", rf"/v1/{PARENT}/models:upload",
                   lambda body, match: operation("UploadModelResponse", {"model": f"{PARENT}/models/555"}))
    stand_in.route("POST", rf"/v1/{PARENT}/endpoints", lambda body, match: operation(
        "Endpoint", {**body, "name": f"{PARENT}/endpoints/999"}))
    stand_in.route("POST", rf"/v1/({PARENT}/endpoints/[^/:]+):deployModel", lambda body, match: operation(
        "DeployModelResponse", {"deployedModel": {**body["deployedModel"], "id": "42"}}))


def test_deploy_uploads_creates_an_endpoint_and_deploys(stand_in, anonymous, capsys):
    _serve_deploy_routes(stand_in)
    code = cli.main([*DEPLOY, "--endpoint=s140-sentiment", "--max_replicas=2", "--display_name=s140-bilstm",
                     f"--api_endpoint={stand_in.endpoint}"], credentials=anonymous)
    assert code == 0
    paths = [(method, path.split("?")[0]) for method, (path, _, _) in zip(stand_in.methods, stand_in.requests)]
    assert paths == [("GET", f"/v1/{PARENT}/endpoints"), ("POST", f"/v1/{PARENT}/models:upload"),
                     ("POST", f"/v1/{PARENT}/endpoints"), ("POST", f"/v1/{PARENT}/endpoints/999:deployModel")]
    assert 'display_name="s140-sentiment"' in re.sub("%3D", "=", re.sub("%22", '"', stand_in.requests[0][0]))
    upload = stand_in.requests[1][1]
    assert upload["model"]["artifactUri"] == "gs://b/runs/1/model"
    assert upload["model"]["containerSpec"]["imageUri"].endswith("/tf2-cpu.2-15:latest")
    deploy = stand_in.requests[3][1]
    assert deploy["deployedModel"]["model"] == f"{PARENT}/models/555"
    assert deploy["deployedModel"]["dedicatedResources"]["maxReplicaCount"] == 2
    assert deploy["deployedModel"]["dedicatedResources"]["machineSpec"] == {"machineType": "n1-standard-2"}
    assert deploy["trafficSplit"] == {"0": 100}
    out = capsys.readouterr().out
    assert f"Endpoint: {PARENT}/endpoints/999 (deployed model 42)" in out
    assert f":predict -d '{{\"instances\": [\"what a lovely day\"]}}'" in out


@pytest.mark.parametrize("endpoint_flag, existing", [(f"{PARENT}/endpoints/31", ()),
                                                     ("s140-sentiment", (f"{PARENT}/endpoints/31",))])
def test_deploy_reuses_an_endpoint(stand_in, anonymous, endpoint_flag, existing):
    _serve_deploy_routes(stand_in, existing=existing)
    code = cli.main([*DEPLOY, f"--endpoint={endpoint_flag}", f"--api_endpoint={stand_in.endpoint}"],
                    out=io.StringIO(), credentials=anonymous)
    assert code == 0
    posts = [path.split("?")[0] for method, (path, _, _) in zip(stand_in.methods, stand_in.requests) if method == "POST"]
    assert posts == [f"/v1/{PARENT}/models:upload", f"/v1/{PARENT}/endpoints/31:deployModel"]


@pytest.mark.parametrize(
    "argv, message",
    [([*DEPLOY, "--min_replicas=3", "--max_replicas=2", "--dry_run"], r"Expected --max_replicas >= --min_replicas \(3\)"),
     (["deploy", "--project=p", "--region=us-central1", "--dry_run"], r"Expected --model_dir=gs://"),
     (["deploy", "--project=p", "--region=us-central1", "--model_dir=runs/1/model", "--dry_run"],
      r"Expected --model_dir \(the export: a run's model/ directory\) to be a Cloud Storage URI"),
     ([*BATCH, "--dry_run"], r"Expected exactly one of --model=projects/P/locations/R/models/ID and --model_dir"),
     ([*BATCH, "--model=projects/p/locations/europe-west4/models/5", "--dry_run"],
      r"Expected --model=projects/PROJECT/locations/us-central1/models/ID"),
     ([*BATCH[:-1], "--model_dir=gs://b/m", "--dry_run"], r"Expected --output_dir=gs://... Received: none.")],
)
def test_deploy_and_batch_predict_errors(argv, message, capsys):
    code, _ = run_cli(argv)
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_batch_predict_dry_run_from_an_export_parses_strictly():
    code, out = run_cli([*BATCH, "--model_dir=gs://b/runs/1/model", "--machine_type=n1-standard-8",
                          "--starting_replicas=2", "--max_replicas=5", "--display_name=score-1", "--dry_run"])
    assert code == 0
    job = json.loads(out)
    assert job["unmanagedContainerModel"] == {
        "artifactUri": "gs://b/runs/1/model",
        "containerSpec": {"imageUri": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"}}
    assert "model" not in job
    decoded = parse_strictly("BatchPredictionJob", job)
    assert (decoded.input_config.instances_format, list(decoded.input_config.gcs_source.uris)) == (
        "jsonl", ["gs://b/tweets.jsonl"])
    assert decoded.output_config.gcs_destination.output_uri_prefix == "gs://b/predictions"
    assert (decoded.dedicated_resources.starting_replica_count, decoded.dedicated_resources.max_replica_count) == (2, 5)


def test_batch_predict_with_a_registered_model_submits_through_the_client(stand_in, anonymous, capsys):
    stand_in.route("POST", rf"/v1/{PARENT}/batchPredictionJobs", created_resource)
    code = cli.main([*BATCH, f"--model={PARENT}/models/555", "--service_account=sa@p.iam.gserviceaccount.com",
                     f"--api_endpoint={stand_in.endpoint}"], credentials=anonymous)
    assert code == 0
    (path, body, _), = stand_in.requests
    assert path.split("?")[0] == f"/v1/{PARENT}/batchPredictionJobs"
    assert body["model"] == f"{PARENT}/models/555" and "unmanagedContainerModel" not in body
    assert body["serviceAccount"] == "sa@p.iam.gserviceaccount.com"
    assert body["dedicatedResources"]["machineSpec"] == {"machineType": "n1-standard-4"}
    assert f"Submitted {PARENT}/batchPredictionJobs/1234567890 (JOB_STATE_PENDING)." in capsys.readouterr().out
