"""The training container's entry point: `python -m cloud.entrypoint COMMAND [ARGS...]`.

  train       -> s140-train      (trainer/)
  tune        -> s140-tune       (tuning/)
  preprocess  -> s140-preprocess (preprocessing/, e.g. with --runner=DirectRunner)
  predict     -> s140-predict    (trainer/predict_main.py)
  hptrial     -> s140-train      (one Vertex hyperparameter tuning trial, cloud/hptrial.py)

The rest of the arguments go to that command unchanged, and only that command's module
is imported (each CLI defines its own absl flags). When the container is started by
Dataflow as a Beam SDK worker (its arguments are Beam boot flags such as --id=...), the
call is handed to Beam's boot loader instead, so one image serves Vertex AI and Dataflow.
"""

import importlib
import json
import os
import sys

COMMANDS = {
    "train": ("trainer.__main__", "s140-train"),
    "tune": ("tuning.__main__", "s140-tune"),
    "preprocess": ("preprocessing.__main__", "s140-preprocess"),
    "predict": ("trainer.predict_main", "s140-predict"),
    "hptrial": ("cloud.hptrial", "s140-hptrial"),
}
BEAM_BOOT = "/opt/apache/beam/boot"
_ENVIRONMENT = ("CLUSTER_SPEC", "TF_CONFIG", "AIP_MODEL_DIR", "AIP_CHECKPOINT_DIR", "AIP_TENSORBOARD_LOG_DIR",
                "CLOUD_ML_TRIAL_ID")


def _usage(received):
    return (
        f"Expected a command among {sorted(COMMANDS)} followed by its flags, e.g. "
        f"`train --data_dir=gs://BUCKET/data --architecture=bilstm`. Received: {received}."
    )


def _describe_environment(environ):
    """One line on what Vertex set (visible in Cloud Logging when a job misbehaves)."""
    seen = {name: environ[name] for name in _ENVIRONMENT if environ.get(name)}
    task = None
    if "CLUSTER_SPEC" in seen:
        try:
            task = json.loads(seen["CLUSTER_SPEC"]).get("task")
        except json.JSONDecodeError:
            task = "unparseable CLUSTER_SPEC"
    return json.dumps({"task": task, **{k: v for k, v in seen.items() if k.startswith("AIP_")}})


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    if args and args[0].startswith("--") and os.path.exists(BEAM_BOOT):
        os.execv(BEAM_BOOT, [BEAM_BOOT, *args])  # Dataflow starting an SDK worker
    if not args or args[0] not in COMMANDS:
        sys.exit(f"s140 entrypoint: error: {_usage(repr(args[0]) if args else 'no command')}")
    module_name, program = COMMANDS[args[0]]
    print(f"s140 entrypoint: {program} {_describe_environment(os.environ)}", file=sys.stderr, flush=True)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            sys.exit(f"s140 entrypoint: error: {program} is not part of this image ({error}).")
        raise
    # The command's absl app parses sys.argv, and its messages name the program.
    sys.argv = [program, *args[1:]]
    module.run()


if __name__ == "__main__":
    main()
