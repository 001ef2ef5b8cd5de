"""s140-train: train one sentiment classifier on an s140-preprocess data directory.

The recommended recipe (trainer/recipes.py: the settings that measured best on
validation, with the command that measured them); any flag given explicitly wins:

  s140-train --data_dir=runs/data --job_dir=runs/conv1d --architecture=conv1d \\
      --recipe=recommended

Example (one machine, the CPU split into two replicas):

  s140-train --data_dir=runs/data --job_dir=runs/bilstm --architecture=bilstm \\
      --epochs=10 --cpu_replicas=2 --lstm_units=32 --dropout=0.2

Hyperparameters of the architecture are flags of their own (--lstm_units=32) or one
list (--hparams=lstm_units=32,dropout=0.2); a name the architecture does not take fails
the command and lists the valid ones. Running the same command again after a kill
resumes from the last finished epoch. The job dir remembers its settings (run.json)
and refuses a rerun with other ones; --overwrite deletes the old run first:

  s140-train --data_dir=runs/data --job_dir=runs/bilstm --architecture=gap --overwrite

In a terminal Keras shows a progress bar per epoch; otherwise (logs) one line per
epoch. On Vertex AI, AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR
choose the output directories, and TF_CONFIG with more than one task selects
MultiWorkerMirroredStrategy.
"""

from common.quiet_tf import tf  # noqa: F401  (first: TensorFlow loads without its C++ start-up lines)

import dataclasses  # noqa: E402
import sys  # noqa: E402

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from common import cli  # noqa: E402
from common import errors  # noqa: E402
from trainer import cli_flags  # noqa: E402
from trainer import config  # noqa: E402
from trainer import models  # noqa: E402
from trainer import recipes  # noqa: E402
from trainer import report  # noqa: E402

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(config.TrainConfig)}

_JOB_DIR = flags.DEFINE_string(
    "job_dir", None,
    "Where the run writes model.keras, metrics.json, history.json and report.md (local or "
    "gs://). Default on Vertex AI: the parent of AIP_MODEL_DIR.",
)
_ARCHITECTURE = flags.DEFINE_enum(
    "architecture", _DEFAULTS["architecture"], models.ARCHITECTURES, "Model architecture."
)
_TRAINING = cli_flags.TrainingFlags("Maximum number of epochs.")
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False,
    "Delete the job dir's old run (history, checkpoints, model, metrics, report) and start "
    "afresh. Without it, a job dir started with other settings (architecture, "
    "hyperparameters, learning rate, batch, seed, data) is refused; --epochs may differ.",
)
_HPARAMS = flags.DEFINE_list(
    "hparams", [], "Architecture hyperparameters as name=value pairs, e.g. lstm_units=32,dropout=0.2."
)


def _hyperparameter_types():
    """{name: type} over all architectures, from the registry's defaults."""
    types = {}
    for architecture in models.ARCHITECTURES:
        for name, default in models.hyperparameters(architecture).items():
            kind = float if isinstance(default, float) else type(default)
            if types.setdefault(name, kind) is not kind:
                raise TypeError(f"Hyperparameter {name} has different types across architectures.")
    return types


def _choices_help(name):
    """" One of [...]" for a text hyperparameter, listing each architecture's choices."""
    by_values = {}
    for architecture in models.ARCHITECTURES:
        values = models.choices(architecture).get(name)
        if values:
            by_values.setdefault(tuple(values), []).append(architecture)
    if not by_values:
        return ""
    if len(by_values) == 1:
        return f"; one of {list(next(iter(by_values)))}"
    return "; " + "; ".join(f"{', '.join(names)}: one of {list(values)}" for values, names in by_values.items())


_HPARAM_TYPES = _hyperparameter_types()
_DEFINE_BY_TYPE = {
    int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_boolean, str: flags.DEFINE_string,
}
_HPARAM_FLAGS = {
    name: _DEFINE_BY_TYPE[kind](
        name, None,
        "Hyperparameter of " + ", ".join(
            a for a in models.ARCHITECTURES if name in models.hyperparameters(a)
        ) + _choices_help(name) + " (default: the architecture's).",
    )
    for name, kind in sorted(_HPARAM_TYPES.items())
}


def parse_hparams(architecture, pairs, flag_values=None):
    """Hyperparameters from `--hparams` pairs and per-hyperparameter flags.

    Args:
      architecture: the architecture they are for.
      pairs: strings "name=value"; values are converted to the type of the default.
      flag_values: {name: value or None} of the per-hyperparameter flags.

    Returns:
      {name: value} of the hyperparameters given (the rest keep their defaults).

    Raises:
      ValueError: for a malformed pair, an unknown name (listing the valid ones), a
        value of the wrong type, or a name given twice.
    """
    defaults = models.hyperparameters(architecture)
    given = {name: value for name, value in (flag_values or {}).items() if value is not None}
    models.check_hyperparameters(architecture, given, received="flags for")
    from_pairs = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise errors.SettingError(f"Expected --hparams entries as name=value. Received: {pair!r}.")
        if name in given:
            raise errors.SettingError(f"Expected {name} once. Received it both as --{name} and in --hparams.")
        from_pairs[name] = _convert(name, raw.strip(), defaults)
    models.check_hyperparameters(architecture, from_pairs)  # names, types and ranges
    return {**given, **from_pairs}


def _convert(name, raw, defaults):
    """`raw` as the type of the default; unknown names stay text for the check to name."""
    if name not in defaults:
        return raw
    kind = float if isinstance(defaults[name], float) else type(defaults[name])
    try:
        return kind(raw)
    except ValueError as error:
        raise errors.SettingError(
            f"Expected {name} to be {kind.__name__} (default {defaults[name]!r}). "
            f"Received: {raw!r}."
        ) from error


def main(argv):
    cli_flags.check_arguments(argv)
    job_dir = cli_flags.output_dir(_JOB_DIR.value, "job_dir")
    hparams = parse_hparams(
        _ARCHITECTURE.value,
        _HPARAMS.value,
        {name: holder.value for name, holder in _HPARAM_FLAGS.items()},
    )
    recipe = _TRAINING.recipe.value
    settings, hparams = recipes.apply(recipe, _ARCHITECTURE.value, settings=_TRAINING.explicit(), hparams=hparams)
    cfg = config.TrainConfig(
        **{**_TRAINING.settings(), **settings},
        job_dir=job_dir,
        architecture=_ARCHITECTURE.value,
        hparams=hparams,
        recipe=recipe,
        overwrite=_OVERWRITE.value,
    )
    logging.info("Settings: %s", cfg)
    # trainer.train imports no more than this module did; the strategy (and with it
    # --cpu_replicas) is set up inside train() before any TensorFlow op runs.
    from trainer import run as run_lib
    from trainer import train

    # A terminal gets Keras's per-step bar; logs (Vertex AI) one line per epoch.
    metrics = train.train(cfg, verbose=run_lib.progress_verbosity(sys.stdout))
    if not metrics.get("chief", True):
        print("Worker finished; the chief writes the model, metrics and report.")
        return
    outputs = metrics["outputs"]
    print(
        f"{metrics['evaluated_on']} accuracy {metrics['accuracy']:.4f}{report.interval_text(metrics)} on {metrics['count']} "
        f"examples after {metrics['epochs_run']} epoch(s).\n"
        f"Report: {outputs['report']}\n"
        f"Metrics: {outputs['metrics']}\n"
        f"Serving model: {outputs['model_dir']}"
    )


def help_groups():
    """The --help groups of s140-train's flags."""
    return [
        ("Data and outputs", ["data_dir", "job_dir", "overwrite"]),
        ("Model", ["architecture", "recipe", "hparams"]),
        ("Hyperparameters (each also settable through --hparams)", sorted(_HPARAM_FLAGS)),
        ("Training", ["epochs", "learning_rate", *cli_flags.FIT_FLAGS]),
        ("Devices and speed", list(cli_flags.DEVICE_FLAGS)),
    ]


def run():
    cli.run(main, __doc__, help_groups(), program="s140-train")


if __name__ == "__main__":
    run()
