"""Serving an export on Vertex AI: Model Registry upload, endpoint, deployment.

The export (`trainer.export`, a SavedModel with the standardizer and vocabulary in its
graph) runs in Vertex's prebuilt TensorFlow prediction container, which serves
`serving_default` through TensorFlow Serving's REST API:

  POST .../endpoints/ID:predict  {"instances": ["what a day", "I hate mondays"]}
  ->  {"predictions": [0.91, 0.07], "deployedModelId": "...", ...}

(one probability of "positive" per tweet; the signature's only output is unwrapped).
TensorFlow 2.15 is the newest prebuilt TF2 prediction image; tests/test_serving_container.py
loads a real export with TensorFlow 2.15 and scores raw tweets, so the container can load
what the trainer (TensorFlow 2.21) writes.

Three requests, each built here as REST JSON (what --dry_run prints):
UploadModelRequest -> (CreateEndpointRequest, unless an endpoint is reused) ->
DeployModelRequest. Upload, create and deploy are long-running operations; `deploy`
waits for each.
"""

import re

from cloud import api_clients
from cloud import arguments
from cloud import storage

SERVING_TF_VERSION = "2.15"
_SERVING_IMAGE = "{multi_region}-docker.pkg.dev/vertex-ai/prediction/tf2-{device}.{version}:latest"
_ENDPOINT_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/endpoints/[^/]+")
# Placeholders in a dry run for names the API assigns when an earlier request finishes.
UPLOADED_MODEL = "{uploaded model}"
CREATED_ENDPOINT = "{created endpoint}"
OPERATION_TIMEOUT_SECONDS = 3600  # how long deploy waits for each long-running operation


def serving_image(region, *, gpu=False):
    """The prebuilt TF 2.15 prediction image from the multi-region nearest `region`."""
    prefix = region.split("-")[0]
    multi_region = {"europe": "europe", "asia": "asia", "australia": "asia", "me": "europe"}.get(prefix, "us")
    return _SERVING_IMAGE.format(
        multi_region=multi_region, device="gpu" if gpu else "cpu", version=SERVING_TF_VERSION.replace(".", "-")
    )


def check_model_dir(model_dir):
    """A gs:// export directory (the run's model/ directory, or AIP_MODEL_DIR)."""
    storage.parse_gs_uri(model_dir, what="--model_dir (the export: a run's model/ directory)")
    return model_dir.rstrip("/")


def upload_model_request(*, project, region, model_dir, display_name, gpu=False, labels=None):
    """UploadModelRequest: the export as a Model served by the prebuilt TF container."""
    model = {
        "displayName": display_name,
        "artifactUri": check_model_dir(model_dir),
        "containerSpec": {"imageUri": serving_image(region, gpu=gpu)},
        "labels": {"s140-command": "deploy", **(labels or {})},
    }
    return {"parent": api_clients.parent(project, region), "model": model}


def create_endpoint_request(*, project, region, display_name):
    return {"parent": api_clients.parent(project, region), "endpoint": {"displayName": display_name}}


def deploy_model_request(*, endpoint, model, machine, min_replicas=1, max_replicas=1, display_name=None):
    """DeployModelRequest: `model` on `endpoint` with dedicated `machine`s, 100% traffic.

    Raises:
      arguments.SpecError: for replica counts out of order or below 1.
    """
    check_replicas(("min_replicas", min_replicas), ("max_replicas", max_replicas))
    deployed = {
        "model": model,
        "dedicatedResources": {
            "machineSpec": machine.to_json(),
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
        },
    }
    if display_name:
        deployed["displayName"] = display_name
    # "0" is the model being deployed: all traffic goes to it.
    return {"endpoint": endpoint, "deployedModel": deployed, "trafficSplit": {"0": 100}}


def check_replicas(low, high):
    """Raises arguments.SpecError unless both (flag name, count) pairs are >= 1 and in order."""
    for name, value in (low, high):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise arguments.SpecError(f"Expected --{name} to be an integer >= 1. Received: {value!r}.")
    if high[1] < low[1]:
        raise arguments.SpecError(f"Expected --{high[0]} >= --{low[0]} ({low[1]}). Received: {high[1]}.")


def is_endpoint_name(text):
    return bool(_ENDPOINT_NAME.fullmatch(text or ""))


def find_endpoint(display_name, *, project, region, credentials=None, endpoint=None):
    """The name of the newest endpoint called `display_name`, or None."""
    service = api_clients.client("EndpointServiceClient", region, credentials=credentials, endpoint=endpoint)
    found = service.list_endpoints(
        request={"parent": api_clients.parent(project, region), "filter": f'display_name="{display_name}"',
                 "order_by": "create_time desc"}
    )
    for item in found:
        return item.name
    return None


def deploy(upload, deploy_request, *, endpoint_request=None, region, credentials=None, endpoint=None):
    """Sends the requests in order; returns {"model": name, "endpoint": name, "deployed_model_id": id}.

    Args:
      upload: an `upload_model_request`.
      deploy_request: a `deploy_model_request` whose model and (when endpoint_request is
        given) endpoint are placeholders, filled in from the earlier responses.
      endpoint_request: a `create_endpoint_request`, or None to deploy to
        deploy_request["endpoint"] as it is.
    """
    upload_proto = api_clients.to_proto("UploadModelRequest", upload)
    create_proto = api_clients.to_proto("CreateEndpointRequest", endpoint_request) if endpoint_request else None
    api_clients.to_proto("DeployModelRequest", deploy_request)  # fail before sending anything

    def make(service):
        return api_clients.client(service, region, credentials=credentials, endpoint=endpoint)

    wait = OPERATION_TIMEOUT_SECONDS
    model_name = make("ModelServiceClient").upload_model(request=upload_proto).result(timeout=wait).model
    endpoint_name = deploy_request["endpoint"]
    if create_proto is not None:
        endpoint_name = make("EndpointServiceClient").create_endpoint(request=create_proto).result(timeout=wait).name
    filled = {**deploy_request, "endpoint": endpoint_name,
              "deployedModel": {**deploy_request["deployedModel"], "model": model_name}}
    request = api_clients.to_proto("DeployModelRequest", filled)
    response = make("EndpointServiceClient").deploy_model(request=request).result(timeout=wait)
    return {"model": model_name, "endpoint": endpoint_name, "deployed_model_id": response.deployed_model.id}
