"""Scoring a file of tweets on Vertex AI: a BatchPredictionJob.

Input: a JSONL file in Cloud Storage with one raw tweet per line, as a JSON string:

  "what a lovely day"
  "I hate mondays"

Output: `prediction.results-NNNNN-of-MMMMM` files under
<output_dir>/prediction-<model>-<timestamp>/, one JSON object per line:
{"instance": "what a lovely day", "prediction": 0.93}, and `prediction.errors_stats-*`
for lines that could not be scored.

The model is either a registered one (--model=projects/.../models/ID, e.g. from
`s140-submit deploy`), or an export directory (--model_dir=gs://...) served by the same
prebuilt TensorFlow container as `cloud.serving` without registering it first
(`unmanagedContainerModel`).
"""

import re

from cloud import arguments
from cloud import serving
from cloud import storage

_MODEL_NAME = re.compile(r"projects/[^/]+/locations/(?P<region>[^/]+)/models/[^/@]+(@[^/]+)?")


def batch_prediction_job(*, region, display_name, input_jsonl, output_dir, machine,
                         model=None, model_dir=None, starting_replicas=1, max_replicas=1,
                         service_account=None):
    """The BatchPredictionJob body (REST JSON).

    Args:
      model / model_dir: exactly one: a Model resource name, or a gs:// export.
      input_jsonl: gs:// JSONL (wildcards allowed, e.g. gs://B/tweets/*.jsonl).
      output_dir: gs:// prefix of the prediction files.
      machine: a `machines.MachineSpec` of the prediction workers.

    Raises:
      arguments.SpecError, storage.StorageUriError: for missing or malformed inputs.
    """
    if bool(model) == bool(model_dir):
        raise arguments.SpecError(
            "Expected exactly one of --model=projects/P/locations/R/models/ID and "
            f"--model_dir=gs://BUCKET/runs/NAME/model. Received: model={model!r}, model_dir={model_dir!r}."
        )
    storage.parse_gs_uri(input_jsonl, what="--input_jsonl (one JSON string per line)", require_name=True)
    storage.parse_gs_uri(output_dir, what="--output_dir (where the predictions go)")
    serving.check_replicas(("starting_replicas", starting_replicas), ("max_replicas", max_replicas))
    job = {
        "displayName": display_name,
        "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": [input_jsonl]}},
        "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": output_dir}},
        "dedicatedResources": {
            "machineSpec": machine.to_json(),
            "startingReplicaCount": starting_replicas,
            "maxReplicaCount": max_replicas,
        },
        "labels": {"s140-command": "batch-predict"},
    }
    if model:
        match = _MODEL_NAME.fullmatch(model)
        if not match or match["region"] != region:
            raise arguments.SpecError(
                f"Expected --model=projects/PROJECT/locations/{region}/models/ID (a model in the "
                f"job's region). Received: {model!r}."
            )
        job["model"] = model
    else:
        job["unmanagedContainerModel"] = {
            "artifactUri": serving.check_model_dir(model_dir),
            "containerSpec": {"imageUri": serving.serving_image(region, gpu=bool(machine.accelerator_type))},
        }
    if service_account:
        job["serviceAccount"] = service_account
    return job

