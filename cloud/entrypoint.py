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

from trainer import config as train_config

TRAIN, TUNE, PREPROCESS, PREDICT, HPTRIAL = "train", "tune", "preprocess", "predict", "hptrial"
COMMANDS = {
    TRAIN: ("trainer.__main__", "s140-train"),
    TUNE: ("tuning.__main__", "s140-tune"),
    PREPROCESS: ("preprocessing.__main__", "s140-preprocess"),
    PREDICT: ("trainer.predict_main", "s140-predict"),
    HPTRIAL: ("cloud.hptrial", "s140-hptrial"),
}
BEAM_BOOT = "/opt/apache/beam/boot"
# absl's own --help prints the docstring of __main__ (this module, not the command's)
# and exits 1; the image's default command is `train --helpshort`, so answer it here.
_HELP = ("--help", "--helpshort", "-h", "-?")
_PACKAGES = {module_name.split(".")[0] for module_name, _ in COMMANDS.values()}
_ENVIRONMENT = ("CLUSTER_SPEC", "TF_CONFIG", train_config.AIP_MODEL_DIR, train_config.AIP_CHECKPOINT_DIR,
                train_config.AIP_TENSORBOARD_LOG_DIR, "CLOUD_ML_TRIAL_ID")


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
    if _asks_for_help(args[1:]):
        _print_help(module)
        return
    module.run()


def _asks_for_help(args):
    flags_part = args[:args.index("--")] if "--" in args else args
    return any(arg in _HELP for arg in flags_part)


def _print_help(module):
    """The command's docstring and its own flags: those defined in this package's modules
    (absl keys flags by defining module; only the command's CLI modules are imported)."""
    from absl import flags

    ours = sorted(name for name in flags.FLAGS.flags_by_module_dict() if name.split(".")[0] in _PACKAGES)
    print((module.__doc__ or "").strip())
    print("\nflags:\n" + "\n".join(flags.FLAGS.module_help(name) for name in ours))


if __name__ == "__main__":
    main()
