"""s140-tune: a KerasTuner sweep over architectures and their hyperparameters.

One machine (the default):

  s140-tune --data_dir=runs/data --tuner_dir=runs/tune --tuner=hyperband \\
      --architectures=gap,conv1d,bilstm --max_epochs=9 --epochs_best=10

Several processes or machines (KerasTuner's chief/worker mode): the chief serves the
oracle from a process of its own and runs trials too; each worker runs trials.

  s140-tune ... --role=chief  --oracle_address=10.0.0.2:8000
  s140-tune ... --role=worker --oracle_address=10.0.0.2:8000 --worker_id=1

On Vertex AI the role, the tuner ids and the oracle's address come from CLUSTER_SPEC
(pool 0 = chief, other pools = workers); no flag is needed. Every process gets the
same flags. Running the same command again after an interruption resumes the sweep
(finished trials are kept); a finished sweep runs no new trial. At the end the chief
writes best_hyperparameters.json, trials.csv, summary.md and objective_per_trial.png
into --tuner_dir and retrains the best configuration into --tuner_dir/best/ exactly as
s140-train would (model/, metrics.json, report.md).
"""

# First: TensorFlow loads without its C++ start-up lines, which would bury the sweep's
# progress.
from common.quiet_tf import tf  # noqa: F401

import dataclasses  # noqa: E402
import os  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from common import cli  # noqa: E402
from trainer import cli_flags  # noqa: E402
from trainer import models  # noqa: E402
from tuning import config  # noqa: E402
from tuning import distributed  # noqa: E402

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(config.SweepConfig)}

_TUNER_DIR = flags.DEFINE_string(
    "tuner_dir", None,
    "Where the sweep keeps its state and writes its results (local or gs://); the same "
    "directory resumes the sweep. Default on Vertex AI: the job's base output directory.",
)
_TUNER = flags.DEFINE_enum("tuner", _DEFAULTS["tuner"], config.TUNERS, "Search algorithm.")
_ARCHITECTURES = flags.DEFINE_list(
    "architectures", list(models.ARCHITECTURES),
    f"Architectures to choose among (the first hyperparameter), from {list(models.ARCHITECTURES)}.",
)
_MAX_TRIALS = flags.DEFINE_integer(
    "max_trials", _DEFAULTS["max_trials"],
    "Trials of --tuner=random or bayesian (Hyperband's number follows from --max_epochs). "
    "Raising it on a finished sweep runs the extra trials.",
)
_MAX_EPOCHS = flags.DEFINE_integer(
    "max_epochs", _DEFAULTS["max_epochs"], "Epochs per trial; Hyperband's largest bracket."
)
_FACTOR = flags.DEFINE_integer(
    "hyperband_factor", _DEFAULTS["hyperband_factor"], "Hyperband's reduction factor."
)
_EXECUTIONS = flags.DEFINE_integer(
    "executions_per_trial", _DEFAULTS["executions_per_trial"],
    "Models trained per trial (from new initialisations); the objective is their mean.",
)
_OBJECTIVE = flags.DEFINE_enum(
    "objective", _DEFAULTS["objective"], config.OBJECTIVES, "Validation metric to optimise."
)
_EPOCHS_BEST = flags.DEFINE_integer(
    "epochs_best", _DEFAULTS["epochs_best"],
    "Epochs to retrain the best configuration into --tuner_dir/best/; 0 skips retraining.",
)
_RECURRENT_DROPOUT = flags.DEFINE_boolean(
    "tune_recurrent_dropout", _DEFAULTS["tune_recurrent_dropout"],
    "Also tune recurrent_dropout of LSTM/GRU layers. Any value > 0 takes them off cuDNN "
    "(many times slower on GPU), hence off by default.",
)
_ROLE = flags.DEFINE_enum(
    "role", None, distributed.ROLES,
    "This process's part: standalone (one process), chief (serves the oracle and runs "
    "trials) or worker (runs trials). Default: from CLUSTER_SPEC / TF_CONFIG (Vertex AI), "
    "else standalone.",
)
_ORACLE_ADDRESS = flags.DEFINE_string(
    "oracle_address", None, "host:port of the chief's oracle (with --role=chief or worker)."
)
_WORKER_ID = flags.DEFINE_string(
    "worker_id", None,
    "Unique id of a worker (--role=worker). A worker restarted with the same id picks up "
    "the trial it was running.",
)
_WORKER_TIMEOUT = flags.DEFINE_float(
    "worker_timeout_seconds", _DEFAULTS["worker_timeout_seconds"],
    "Chief: a worker silent (no heartbeat) for this long is dropped and its trial given to "
    "another worker. Workers send heartbeats several times per this period.",
)


def environments(environ):
    """This process's KerasTuner environments, from the role flags or the cluster spec."""
    secret = environ.get(distributed.SECRET)
    if _ROLE.value is not None:
        return distributed.local_keras_tuner_env(
            _ROLE.value, oracle_address=_ORACLE_ADDRESS.value, worker_id=_WORKER_ID.value, secret=secret
        )
    if _ORACLE_ADDRESS.value or _WORKER_ID.value is not None:
        raise app.UsageError("--oracle_address and --worker_id need --role=chief or worker.")
    return distributed.keras_tuner_env(distributed.parse_cluster_spec(environ), secret=secret)


def main(argv):
    cli_flags.check_arguments(argv)
    tuner_dir = cli_flags.output_dir(_TUNER_DIR.value, "tuner_dir")
    cfg = config.SweepConfig(
        **cli_flags.run_settings(),
        tuner_dir=tuner_dir,
        tuner=_TUNER.value,
        architectures=tuple(_ARCHITECTURES.value),
        max_trials=_MAX_TRIALS.value,
        max_epochs=_MAX_EPOCHS.value,
        hyperband_factor=_FACTOR.value,
        executions_per_trial=_EXECUTIONS.value,
        objective=_OBJECTIVE.value,
        epochs_best=_EPOCHS_BEST.value,
        tune_recurrent_dropout=_RECURRENT_DROPOUT.value,
        worker_timeout_seconds=_WORKER_TIMEOUT.value,
    )
    envs = environments(os.environ)
    logging.info("Settings: %s; KerasTuner environments: %s", cfg, envs)
    # After the flags: tuning.sweep imports TensorFlow and KerasTuner.
    from tuning import sweep

    result = sweep.run_sweep(cfg, envs=envs)
    if not result.chief:
        print(f"Worker finished after {len(result.trial_ids)} trial(s); the chief writes the results.")
        return
    outputs = result.outputs
    if result.best is None:
        print(f"No trial completed. Trials: {outputs['trials_csv']}")
        return
    best = result.best
    print(
        f"Best: trial {best['trial_id']}, {best['architecture']}, {best['objective']['name']} "
        f"{best['objective']['value']:.4f}.\n"
        f"Summary: {outputs['summary']}\n"
        f"Trials: {outputs['trials_csv']}\n"
        f"Best hyperparameters: {outputs['best_hyperparameters']}"
        + (
            f"\nServing model: {result.best_metrics['outputs']['model_dir']}"
            if result.best_metrics
            else ""
        )
    )


def help_groups():
    """The --help groups of s140-tune's flags."""
    return [
        ("Data and outputs", ["data_dir", "tuner_dir"]),
        ("Search", ["tuner", "architectures", "max_trials", "max_epochs", "hyperband_factor",
                    "executions_per_trial", "objective", "tune_recurrent_dropout"]),
        ("Each trial's fit", list(cli_flags.FIT_FLAGS)),
        ("The best configuration", ["epochs_best"]),
        ("Devices and speed", list(cli_flags.DEVICE_FLAGS)),
        ("Several processes", ["role", "oracle_address", "worker_id", "worker_timeout_seconds"]),
    ]


def run():
    cli.run(main, __doc__, help_groups(), program="s140-tune")


if __name__ == "__main__":
    run()
