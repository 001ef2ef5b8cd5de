"""The official Vertex AI clients (google-cloud-aiplatform's `aiplatform_v1`), made one
way for every request this package sends, and the JSON <-> proto conversions.

Request bodies are built as plain dicts in the REST API's camelCase JSON (what
`--dry_run` prints). `to_proto` parses one strictly into its proto type: a field the
API does not know fails here, before any credentials are needed.
"""

import json
import re

from common import errors

_RESOURCE = re.compile(r"projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/.+")


def api_endpoint(region):
    return f"{region}-aiplatform.googleapis.com"


def parent(project, region):
    return f"projects/{project}/locations/{region}"


def region_of(resource_name, what):
    """The region of "projects/P/locations/R/...", or a ValueError naming `what`."""
    match = _RESOURCE.fullmatch(resource_name or "")
    if not match:
        raise errors.SettingError(
            f"Expected {what} as a resource name projects/PROJECT/locations/REGION/... "
            f"Received: {resource_name!r}."
        )
    return match["region"]


def to_proto(proto_type_name, body):
    """`body` (REST JSON dict) as the aiplatform_v1 message `proto_type_name`; unknown
    fields raise (proto-plus' from_json defaults to ignore_unknown_fields=False)."""
    from google.cloud import aiplatform_v1

    proto_type = getattr(aiplatform_v1, proto_type_name)
    return proto_type.from_json(json.dumps(body), ignore_unknown_fields=False)


def to_dict(message):
    """A proto-plus message as REST JSON with enum names (what the API documents)."""
    return json.loads(type(message).to_json(message, use_integers_for_enums=False))


def client(service, region, *, credentials=None, endpoint=None):
    """An aiplatform_v1 `service` client ("JobServiceClient", "ModelServiceClient", ...).

    Args:
      region: picks the regional endpoint REGION-aiplatform.googleapis.com.
      credentials: google-auth credentials (default: application default credentials).
      endpoint: overrides the endpoint; "http://host:port" points the REST transport at
        a local stand-in (tests).
    """
    from google.cloud import aiplatform_v1

    return getattr(aiplatform_v1, service)(
        credentials=credentials,
        client_options={"api_endpoint": endpoint or api_endpoint(region)},
        transport="rest",
    )


# Job kinds JobServiceClient creates: REST collection and the client's method/field.
_JOBS = {
    "HyperparameterTuningJob": ("hyperparameterTuningJobs", "hyperparameter_tuning_job"),
    "BatchPredictionJob": ("batchPredictionJobs", "batch_prediction_job"),
}


def collection_url(kind, *, project, region, endpoint=None):
    """Where a create request of job `kind` goes (for dry-run messages)."""
    return f"https://{endpoint or api_endpoint(region)}/v1/{parent(project, region)}/{_JOBS[kind][0]}"


def create_job(kind, body, *, project, region, credentials=None, endpoint=None):
    """Creates a job of `kind` ("HyperparameterTuningJob", "BatchPredictionJob") from its
    REST body with JobServiceClient; returns the created job as a dict."""
    field = _JOBS[kind][1]
    request = to_proto(kind, body)
    service = client("JobServiceClient", region, credentials=credentials, endpoint=endpoint)
    created = getattr(service, f"create_{field}")(parent=parent(project, region), **{field: request})
    return to_dict(created)
