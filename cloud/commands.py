"""s140-submit's Vertex AI commands beyond custom jobs: hptune, hptune-results, deploy,
batch-predict; and the job options train, tune and hptune share (--tensorboard,
--reduction_server_count).

  s140-submit hptune --project=P --region=R --output_dir=gs://B/hptune/1 --image_uri=IMAGE \\
      --max_trials=40 --parallel_trials=4 --median_stopping -- --data_dir=gs://B/prep/data --epochs=8
  s140-submit hptune-results --job=projects/P/locations/R/hyperparameterTuningJobs/ID \\
      --output_dir=gs://B/hptune/1/report
  s140-submit deploy --project=P --region=R --model_dir=gs://B/runs/1/model --endpoint=s140 \\
      --machine_type=n1-standard-2 --min_replicas=1 --max_replicas=3
  s140-submit batch-predict --project=P --region=R --model_dir=gs://B/runs/1/model \\
      --input_jsonl=gs://B/tweets.jsonl --output_dir=gs://B/predictions

--dry_run prints the request body (for deploy: each request, by RPC name) as JSON. A local
--data_dir after hptune's `--` is uploaded to --staging_dir first, as for train.
"""

import json
import sys

from cloud import api_clients
from cloud import arguments
from cloud import batch_prediction
from cloud import hptune
from cloud import job_options
from cloud import machines
from cloud import serving
from cloud import staging

COMMANDS = ("hptune", "hptune-results", "deploy", "batch-predict")
_DEFAULT_DEPLOY_MACHINE = "n1-standard-2"
_DEFAULT_BATCH_MACHINE = "n1-standard-4"
_DEFAULT_MAX_LENGTH = 40  # s140-preprocess's default --max_length


def add_job_option_flags(parser):
    """--tensorboard and the Reduction Server flags (train, tune, hptune)."""
    parser.add_argument("--tensorboard", help="Vertex TensorBoard: projects/P/locations/R/tensorboards/ID "
                                              "(needs --service_account).")
    parser.add_argument("--reduction_server_count", type=int, default=0,
                        help="Reduction Server replicas for multi-worker GPU training (0: none).")
    parser.add_argument("--reduction_server_machine_type", default=job_options.DEFAULT_REDUCTION_SERVER_MACHINE,
                        help="Machine type of the Reduction Server replicas.")


def apply_job_options(job_spec, args):
    """Adds what --tensorboard and --reduction_server_count ask for to a CustomJobSpec dict."""
    if args.tensorboard:
        job_options.add_tensorboard(job_spec, args.tensorboard, region=args.region)
    if args.reduction_server_count:
        job_options.add_reduction_server(
            job_spec, args.reduction_server_count, machine_type=args.reduction_server_machine_type
        )
    return job_spec


def _service_flags(parser, default_machine):
    parser.add_argument("--project", help="Google Cloud project id.")
    parser.add_argument("--region", help="Region, e.g. us-central1.")
    parser.add_argument("--machine_type", default=default_machine, help="Machine type of the prediction nodes.")
    parser.add_argument("--accelerator_type", help="GPU type of the prediction nodes (serves on tf2-gpu).")
    parser.add_argument("--accelerator_count", type=int, default=None, help="GPUs per node.")
    parser.add_argument("--display_name", help="Name of the model / job (default: s140-COMMAND-TIMESTAMP).")
    parser.add_argument("--service_account", help="Service account e-mail the nodes run as.")
    parser.add_argument("--dry_run", action="store_true", help="Print the request(s) as JSON; send nothing.")
    parser.add_argument("--api_endpoint", help="Vertex AI API endpoint (default: REGION-aiplatform.googleapis.com).")


def add_parsers(commands, *, common, vertex_flags):
    """The sub-command parsers of COMMANDS on argparse's `commands`; hptune takes the
    `common` and `vertex_flags` parents (which carry `add_job_option_flags`)."""
    hp = commands.add_parser("hptune", parents=[common, vertex_flags], allow_abbrev=False,
                             help="Tune with Vertex AI's Vizier: a HyperparameterTuningJob of s140-train trials.")
    hp.add_argument("--max_trials", type=int, default=20, help="Trials in all.")
    hp.add_argument("--parallel_trials", type=int, default=2, help="Trials at a time.")
    hp.add_argument("--workers", type=int, default=1, help="Machines per trial (>1: multi-worker training).")
    hp.add_argument("--max_failed_trials", type=int, default=0, help="Failed trials before the job fails (0: Vertex's default).")
    hp.add_argument("--algorithm", choices=sorted(hptune.ALGORITHMS), default="bayesian", help="Vizier's search algorithm.")
    hp.add_argument("--median_stopping", action="store_true",
                    help="Stop trials whose val_accuracy is below the median of earlier trials at the same epoch.")
    hp.add_argument("--architectures", default=None, help="Comma-separated architectures to search (default: all).")
    hp.add_argument("--max_length", type=int, default=_DEFAULT_MAX_LENGTH,
                    help="The data's max_length (metadata.json); drops convolutions that do not fit.")
    hp.add_argument("--tune_recurrent_dropout", action="store_true", help="Also search recurrent_dropout (no cuDNN).")

    results = commands.add_parser("hptune-results", allow_abbrev=False,
                                  help="Write trials.csv, summary.md and the plot of a finished hptune job.")
    results.add_argument("--job", required=True, help="projects/P/locations/R/hyperparameterTuningJobs/ID")
    results.add_argument("--output_dir", required=True, help="Where the report goes (local or gs://).")
    results.add_argument("--api_endpoint", help="Vertex AI API endpoint.")

    deploy = commands.add_parser("deploy", allow_abbrev=False,
                                 help="Upload an export to the Model Registry and deploy it to an endpoint.")
    _service_flags(deploy, _DEFAULT_DEPLOY_MACHINE)
    deploy.add_argument("--model_dir", help="gs:// export (a run's model/ directory).")
    deploy.add_argument("--endpoint", default="s140",
                        help="projects/P/locations/R/endpoints/ID to reuse, or a display name (reused if it exists, else created).")
    deploy.add_argument("--min_replicas", type=int, default=1, help="Nodes always on.")
    deploy.add_argument("--max_replicas", type=int, default=1, help="Nodes at most (autoscaling).")

    batch = commands.add_parser("batch-predict", allow_abbrev=False,
                                help="Score a JSONL file of tweets with a BatchPredictionJob.")
    _service_flags(batch, _DEFAULT_BATCH_MACHINE)
    batch.add_argument("--model_dir", help="gs:// export (unregistered model).")
    batch.add_argument("--model", help="A registered model: projects/P/locations/R/models/ID.")
    batch.add_argument("--input_jsonl", help="gs:// JSONL, one JSON string (a tweet) per line.")
    batch.add_argument("--output_dir", help="gs:// prefix for the prediction files.")
    batch.add_argument("--starting_replicas", type=int, default=1, help="Nodes at the start.")
    batch.add_argument("--max_replicas", type=int, default=1, help="Nodes at most.")


def _print(out, body, url):
    print(json.dumps(body, indent=2), file=out, flush=True)
    print(f"s140-submit: dry run; would send this to {url}", file=sys.stderr)


def _rest_url(args, path):
    return f"https://{args.api_endpoint or api_clients.api_endpoint(args.region)}/v1/{path}"


def _create(kind, job, args, out, credentials):
    """Prints the body (dry run; returns None) or creates the job and says so."""
    if args.dry_run:
        _print(out, job, api_clients.collection_url(kind, project=args.project, region=args.region,
                                                    endpoint=args.api_endpoint))
        return None
    created = api_clients.create_job(kind, job, project=args.project, region=args.region,
                                     credentials=credentials, endpoint=args.api_endpoint)
    print(f"Submitted {created.get('name', '')} ({created.get('state', 'state unknown')}).", file=out)
    return created


def _hptune(args, job_args, cfg, out, credentials, stage, upload):
    staged = stage(args, job_args)
    architectures = args.architectures.split(",") if args.architectures else hptune_architectures()
    study = hptune.study_spec(
        architectures=architectures, max_length=args.max_length, algorithm=args.algorithm,
        median_stopping=args.median_stopping, tune_recurrent_dropout=args.tune_recurrent_dropout,
    )
    job = hptune.tuning_job(cfg, staged.args, study=study, max_trials=args.max_trials,
                            parallel_trials=args.parallel_trials, max_failed_trials=args.max_failed_trials,
                            workers=args.workers)
    apply_job_options(job["trialJobSpec"], args)
    if args.dry_run:
        staging.describe(staged)
    else:
        upload(staged, args, credentials)
    created = _create("HyperparameterTuningJob", job, args, out, credentials)
    if created is None:
        return 0
    name = created.get("name", "")
    print(f"Trials write under {args.output_dir.rstrip('/')}/<trial id>/ (model/, logs/, metrics.json).", file=out)
    print(f"When it has finished: s140-submit hptune-results --job={name} "
          f"--output_dir={args.output_dir.rstrip('/')}/report", file=out)
    return 0


def hptune_architectures():
    from trainer import models

    return list(models.ARCHITECTURES)


def _hptune_results(args, out, credentials):
    from cloud import hptune_results

    job = hptune_results.get_job(args.job, credentials=credentials, endpoint=args.api_endpoint)
    written = hptune_results.write_report(job, args.output_dir)
    for name, path in written.items():
        if path:
            print(f"{name}: {path}", file=out)
    return 0


def _machine(args):
    arguments.check_project_and_region(args.project, args.region)
    return machines.check_machine(args.machine_type, args.accelerator_type, args.accelerator_count)


def _deploy(args, now, out, credentials):
    machine = _machine(args)
    if not args.model_dir:
        raise arguments.SpecError("Expected --model_dir=gs://BUCKET/runs/NAME/model. Received: none.")
    name = args.display_name or f"s140-model-{now.strftime('%Y%m%d-%H%M%S')}"
    upload = serving.upload_model_request(project=args.project, region=args.region, model_dir=args.model_dir,
                                          display_name=name, gpu=bool(machine.accelerator_type))
    endpoint_name, create = args.endpoint, None
    if not serving.is_endpoint_name(args.endpoint):
        found = None if args.dry_run else serving.find_endpoint(
            args.endpoint, project=args.project, region=args.region, credentials=credentials,
            endpoint=args.api_endpoint)
        endpoint_name = found or serving.CREATED_ENDPOINT
        if not found:
            create = serving.create_endpoint_request(project=args.project, region=args.region,
                                                     display_name=args.endpoint)
    request = serving.deploy_model_request(endpoint=endpoint_name, model=serving.UPLOADED_MODEL, machine=machine,
                                           min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                                           display_name=name)
    if args.service_account:
        request["deployedModel"]["serviceAccount"] = args.service_account
    if args.dry_run:
        bodies = {"uploadModel": upload, "createEndpoint": create, "deployModel": request}
        _print(out, {k: v for k, v in bodies.items() if v is not None},
               _rest_url(args, api_clients.parent(args.project, args.region)) + " (models:upload, endpoints, "
               f"endpoints/ID:deployModel; {serving.UPLOADED_MODEL} and {serving.CREATED_ENDPOINT} are filled in "
               "from the earlier responses; a display name is looked up first)")
        return 0
    deployed = serving.deploy(upload, request, endpoint_request=create, region=args.region,
                              credentials=credentials, endpoint=args.api_endpoint)
    print(f"Model: {deployed['model']}\nEndpoint: {deployed['endpoint']} "
          f"(deployed model {deployed['deployed_model_id']})", file=out)
    print(f"Try it: curl -X POST -H \"Authorization: Bearer $(gcloud auth print-access-token)\" "
          f"-H 'Content-Type: application/json' {_rest_url(args, deployed['endpoint'])}:predict "
          "-d '{\"instances\": [\"what a lovely day\"]}'", file=out)
    return 0


def _batch_predict(args, now, out, credentials):
    machine = _machine(args)
    for flag in ("input_jsonl", "output_dir"):
        if not getattr(args, flag):
            raise arguments.SpecError(f"Expected --{flag}=gs://... Received: none.")
    job = batch_prediction.batch_prediction_job(
        region=args.region, display_name=args.display_name or f"s140-batch-predict-{now.strftime('%Y%m%d-%H%M%S')}",
        input_jsonl=args.input_jsonl, output_dir=args.output_dir, machine=machine, model=args.model,
        model_dir=args.model_dir, starting_replicas=args.starting_replicas, max_replicas=args.max_replicas,
        service_account=args.service_account,
    )
    if _create("BatchPredictionJob", job, args, out, credentials) is None:
        return 0
    print(f"Predictions: {args.output_dir.rstrip('/')}/prediction-*/prediction.results-*", file=out)
    return 0


def run(args, job_args, *, now, out, credentials, job_config, stage, upload):
    """Runs one of COMMANDS; returns the exit code. s140-submit's own steps for custom
    jobs are handed in: `job_config(args, job_args, now)` builds the `vertex.JobConfig`
    (its shared flags), `stage(args, job_args)` plans the upload of local inputs (a
    `staging.Plan`) and `upload(plan, args, credentials)` makes it."""
    if args.command == "hptune":
        return _hptune(args, job_args, job_config(args, job_args, now), out, credentials, stage, upload)
    if job_args:
        raise arguments.SpecError(f"Expected no arguments after `--` for {args.command}. Received: {job_args}.")
    if args.command == "hptune-results":
        return _hptune_results(args, out, credentials)
    if args.command == "deploy":
        return _deploy(args, now, out, credentials)
    return _batch_predict(args, now, out, credentials)
