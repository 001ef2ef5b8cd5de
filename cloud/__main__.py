"""s140-submit: run preprocessing on Dataflow, training and tuning as Vertex AI custom jobs.

  s140-submit preprocess --project=P --region=R --output_dir=gs://B/prep [--dry_run] \\
      -- --train_csv=gs://B/raw/train.csv --test_csv=gs://B/raw/test.csv
  s140-submit train --project=P --region=R --output_dir=gs://B/runs/1 \\
      --image_uri=R-docker.pkg.dev/P/REPO/s140-trainer:latest \\
      --machine_type=a2-highgpu-4g --accelerator_type=NVIDIA_TESLA_A100 --accelerator_count=4 \\
      -- --data_dir=gs://B/prep/data --architecture=bilstm
  s140-submit tune ... --parallel_trials=4 -- --data_dir=gs://B/prep/data ...
  s140-submit hptune | hptune-results | deploy | batch-predict ...   (cloud/commands.py)

Everything after `--` goes to the job's own command (s140-preprocess, s140-train or
s140-tune). Local input files named there (--train_csv, --test_csv, a --glove file,
--data_dir) are uploaded to --staging_dir first, one progress line per file, and the
job gets their gs:// copies (cloud/staging.py). --dry_run prints what would be uploaded,
then the Dataflow command line or the CustomJob request body as JSON, and uploads,
writes and submits nothing. The flag parser is argparse with sub-commands (absl has none);
unknown or abbreviated flags fail.
"""

import argparse
import datetime
import json
import subprocess
import sys

from cloud import arguments
from cloud import commands as vertex_commands
from cloud import dataflow
from cloud import machines
from cloud import staging
from cloud import vertex
from common import cli

_DEFAULT_VERTEX_MACHINE = "n1-standard-8"
_DEFAULT_DATAFLOW_MACHINE = "n1-standard-4"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        if "unrecognized arguments" in message:
            message += (
                ". Flags of the job's own command go after `--`, e.g. "
                "s140-submit train --project=P ... -- --data_dir=gs://BUCKET/data"
            )
        super().error(message)


def build_parser():
    parser = _Parser(
        prog="s140-submit",
        description="Run s140 preprocessing on Dataflow and training/tuning on Vertex AI.",
        allow_abbrev=False,
        epilog="Arguments after `--` are passed to s140-preprocess, s140-train or s140-tune.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{preprocess,train,tune,hptune,hptune-results,deploy,batch-predict}")

    common = _Parser(add_help=False, allow_abbrev=False)
    common.add_argument("--project", help="Google Cloud project id.")
    common.add_argument("--region", help="Region of the job, e.g. us-central1.")
    common.add_argument("--output_dir", help="gs:// prefix: the job's base output directory.")
    common.add_argument("--image_uri", help="The training container (Artifact Registry).")
    common.add_argument("--machine_type", help="Machine type of every replica / Dataflow worker.")
    common.add_argument("--accelerator_type", help="GPU type, e.g. NVIDIA_TESLA_T4, NVIDIA_L4.")
    common.add_argument("--accelerator_count", type=int, default=None,
                        help="GPUs per machine (default: the machine type's, or 1 on n1-*).")
    common.add_argument("--service_account", help="Service account e-mail the job runs as.")
    common.add_argument("--dry_run", action="store_true",
                        help="Print what would be uploaded and submitted; upload and submit nothing.")
    common.add_argument("--staging_dir",
                        help="gs:// directory where the job's local input files are uploaded "
                             "(default: OUTPUT_DIR/staging).")
    common.add_argument("--display_name", help="Job name (default: s140-COMMAND-[ARCHITECTURE-]TIMESTAMP).")

    vertex_flags = _Parser(add_help=False, allow_abbrev=False)
    vertex_flags.add_argument("--timeout", help="Maximum run time, e.g. 12h, 90m, 7d (Vertex default: 7d).")
    vertex_flags.add_argument("--restart_job_on_worker_restart", action="store_true",
                              help="Restart the whole job when a worker restarts.")
    vertex_flags.add_argument("--spot", action="store_true", help="Use Spot VMs (cheaper, preemptible).")
    vertex_flags.add_argument("--env", type=arguments.env_pair, action="append", default=[], metavar="NAME=VALUE",
                              help="Environment variable of the container (repeatable).")
    vertex_flags.add_argument("--boot_disk_size_gb", type=int, default=None, help="Boot disk size per replica.")
    vertex_flags.add_argument("--api_endpoint", help="Vertex AI API endpoint (default: REGION-aiplatform.googleapis.com).")
    vertex_commands.add_job_option_flags(vertex_flags)

    preprocess = commands.add_parser(
        "preprocess", parents=[common], allow_abbrev=False,
        help="Run s140-preprocess on Dataflow.",
        description="Launch s140-preprocess on Dataflow. --image_uri, when given, is used as the "
                    "workers' SDK container (the training image carries Beam's boot loader).",
    )
    preprocess.add_argument("--max_num_workers", type=int, default=10, help="Dataflow autoscaling limit.")

    train = commands.add_parser("train", parents=[common, vertex_flags], allow_abbrev=False,
                                help="Run s140-train as a Vertex AI custom job.")
    train.add_argument("--workers", type=int, default=1,
                       help="Machines; >1 trains with MultiWorkerMirroredStrategy (chief + N-1 workers).")

    tune = commands.add_parser("tune", parents=[common, vertex_flags], allow_abbrev=False,
                               help="Run s140-tune (KerasTuner chief + workers) as a Vertex AI custom job.")
    tune.add_argument("--parallel_trials", type=int, default=1,
                      help="Trials at a time: the chief plus parallel_trials-1 workers.")
    vertex_commands.add_parsers(commands, common=common, vertex_flags=vertex_flags)
    return parser


def _job_config(args, job_args, now):
    arguments.check_project_and_region(args.project, args.region)
    arguments.require(args.output_dir, "output_dir", "gs://BUCKET/runs/1")
    arguments.require(args.image_uri, "image_uri", f"{args.region}-docker.pkg.dev/{args.project}/REPOSITORY/s140-trainer:latest")
    machine = machines.check_machine(
        args.machine_type or _DEFAULT_VERTEX_MACHINE, args.accelerator_type, args.accelerator_count
    )
    if args.boot_disk_size_gb is not None and args.boot_disk_size_gb < 10:
        raise arguments.SpecError(f"Expected --boot_disk_size_gb >= 10. Received: {args.boot_disk_size_gb}.")
    return vertex.JobConfig(
        project=args.project,
        region=args.region,
        output_dir=args.output_dir,
        image_uri=args.image_uri,
        machine=machine,
        display_name=args.display_name or arguments.display_name(args.command, job_args, now),
        service_account=args.service_account,
        timeout=vertex.parse_duration(args.timeout) if args.timeout else None,
        restart_job_on_worker_restart=args.restart_job_on_worker_restart,
        spot=args.spot,
        env=dict(args.env),
        boot_disk_size_gb=args.boot_disk_size_gb,
    )


def _preprocess(args, job_args, now, out, run_command, credentials):
    arguments.check_project_and_region(args.project, args.region)
    arguments.require(args.output_dir, "output_dir", "gs://BUCKET/prep")
    if args.accelerator_type or args.accelerator_count:
        raise arguments.SpecError(
            "Expected no accelerator for preprocess: the Beam job runs on CPU workers. "
            f"Received: --accelerator_type={args.accelerator_type} --accelerator_count={args.accelerator_count}."
        )
    machine = machines.check_machine(args.machine_type or _DEFAULT_DATAFLOW_MACHINE)
    cfg = dataflow.DataflowConfig(
        project=args.project,
        region=args.region,
        output_dir=args.output_dir,
        machine_type=machine.machine_type,
        max_num_workers=args.max_num_workers,
        sdk_container_image=args.image_uri,
        service_account=args.service_account,
        job_name=args.display_name or arguments.display_name("preprocess", [], now),
    )
    staged = _staging_plan(args, job_args)
    command = dataflow.preprocess_command(cfg, staged.args)  # checks everything, writes nothing
    if args.dry_run:
        staging.describe(staged)
        if not cfg.sdk_container_image:
            print(f"s140-submit: dry run; would write {dataflow.REQUIREMENTS_PLACEHOLDER}: "
                  + ", ".join(dataflow.job_worker_requirements(staged.args)), file=sys.stderr)
        print(json.dumps(command, indent=2), file=out)
        return 0
    _upload(staged, args, credentials)
    if not cfg.sdk_container_image:
        command = dataflow.preprocess_command(
            cfg, staged.args, requirements_file=dataflow.write_worker_requirements(staged.args))
    print("s140-submit: launching " + " ".join(command), file=sys.stderr, flush=True)
    return run_command(command)


def _staging_plan(args, job_args):
    return staging.plan(args.command, job_args, args.staging_dir or staging.default_staging_dir(args.output_dir))


def _upload(staged, args, credentials):
    staging.upload(staged, client=staging.storage_client(staged, project=args.project, credentials=credentials))


def _vertex_job(args, job_args, now, out, credentials):
    cfg = _job_config(args, job_args, now)
    staged = _staging_plan(args, job_args)
    if args.command == "train":
        job = vertex.training_job(cfg, staged.args, workers=args.workers)
    else:
        job = vertex.tuning_job(cfg, staged.args, parallel_trials=args.parallel_trials)
    vertex_commands.apply_job_options(job["jobSpec"], args)
    if args.dry_run:
        staging.describe(staged)
        print(json.dumps(job, indent=2), file=out, flush=True)
        print(f"s140-submit: dry run; would POST this to https://{args.api_endpoint or vertex.api_endpoint(args.region)}"
              f"/v1/{vertex.parent(args.project, args.region)}/customJobs", file=sys.stderr)
        return 0
    _upload(staged, args, credentials)
    created = vertex.submit(job, project=args.project, region=args.region, credentials=credentials,
                            endpoint=args.api_endpoint)
    name = created.get("name", "")
    print(f"Submitted {name} ({created.get('state', 'state unknown')}).", file=out)
    url = vertex.console_url(name)
    if url:
        print(f"Console: {url}", file=out)
    print(f"Logs: gcloud ai custom-jobs stream-logs {name}", file=out)
    print(f"TensorBoard: tensorboard --logdir {args.output_dir.rstrip('/')}/logs", file=out)
    return 0


def main(argv=None, *, out=None, credentials=None, run_command=subprocess.call, now=None):
    """Runs the CLI; returns the exit code.

    Args:
      argv: arguments without the program name (default: sys.argv[1:]).
      out: where the dry run and the result are printed (default: stdout).
      credentials: google-auth credentials for Vertex AI and Cloud Storage (default:
        application default credentials).
      run_command: runs the Dataflow launch command; returns its exit code.
      now: the time used in default job names.
    """
    out = out or sys.stdout
    ours, job_args = arguments.split_job_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return cli.guarded("s140-submit", _dispatch, args, job_args, now, out, run_command, credentials)


def _dispatch(args, job_args, now, out, run_command, credentials):
    if args.command == "preprocess":
        return _preprocess(args, job_args, now, out, run_command, credentials)
    if args.command in vertex_commands.COMMANDS:
        return vertex_commands.run(args, job_args, now=now, out=out, credentials=credentials,
                                   job_config=_job_config, stage=_staging_plan, upload=_upload)
    return _vertex_job(args, job_args, now, out, credentials)


def run():
    sys.exit(main())


if __name__ == "__main__":
    run()
