"""s140-compare: the course's comparison of architectures on one data directory.

Example (the course's chapter: GAP against one and two LSTMs, Conv1D and GRU):

  s140-compare --data_dir=runs/data --job_dir=runs/compare \\
      --architectures=gap,bilstm,stacked_bilstm,conv1d,bigru --epochs=10

Each architecture is trained by the path of s140-train, with the same settings, into
<job_dir>/<architecture>/ (a full s140-train run: model, export, metrics.json,
report.md). Then <job_dir>/compare.md sets them side by side: parameters, best val
accuracy and loss and their epoch, the train-val gap (overfitting), seconds per epoch,
test accuracy, the learning curves overlaid (compare_curves.png), and a TF-IDF +
logistic regression baseline fitted on the same train split. Running the same command
again skips the architectures that finished and resumes the one that was killed;
--overwrite trains every one afresh.
"""

from common.quiet_tf import tf  # noqa: F401  (first: TensorFlow loads without its C++ start-up lines)

import sys  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from common import cli  # noqa: E402
from common import errors  # noqa: E402
from trainer import cli_flags  # noqa: E402
from trainer import config  # noqa: E402
from trainer import models  # noqa: E402

_JOB_DIR = flags.DEFINE_string(
    "job_dir", None,
    "Where compare.md, compare.json, compare_curves.png and one sub-directory per "
    "architecture (an s140-train run each) are written (local or gs://).",
)
_ARCHITECTURES = flags.DEFINE_list(
    "architectures", list(models.ARCHITECTURES),
    f"Architectures to compare, in table order; any of {list(models.ARCHITECTURES)}.",
)
_TRAINING = cli_flags.TrainingFlags("Maximum number of epochs of each architecture.")
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False,
    "Delete every compared architecture's old run and train it afresh. Without it, a "
    "finished architecture is not trained again and a killed one resumes; one started "
    "with other settings is refused, as s140-train refuses it.",
)


def main(argv):
    cli_flags.check_arguments(argv)
    if not _JOB_DIR.value:
        raise app.UsageError("--job_dir is required.")
    unknown = [name for name in _ARCHITECTURES.value if name not in models.ARCHITECTURES]
    if unknown:
        raise app.UsageError(
            f"Expected --architectures from {list(models.ARCHITECTURES)}. Received unknown: {unknown}."
        )
    repeated = sorted({name for name in _ARCHITECTURES.value if _ARCHITECTURES.value.count(name) > 1})
    if repeated:
        raise errors.SettingError(f"Expected each of --architectures once. Received twice or more: {repeated}.")
    # The shared flags (cli_flags) fill every setting s140-train's flags fill; the
    # architecture is set per run by trainer.compare.
    recipe = _TRAINING.recipe.value
    base = config.TrainConfig(**_TRAINING.settings(), job_dir=_JOB_DIR.value, recipe=recipe, overwrite=_OVERWRITE.value)
    logging.info("Settings of every architecture (before its recipe, %s): %s", recipe, base)
    from trainer import compare
    from trainer import run as run_lib

    result = compare.compare(base, _ARCHITECTURES.value, explicit=_TRAINING.explicit(), verbose=run_lib.progress_verbosity(sys.stdout))
    for row in result["rows"]:
        print(
            f"{row['architecture']}: val accuracy {row['best_val_accuracy']:.4f} at epoch "
            f"{row['best_epoch']} ({result['trained'][row['architecture']]})"
        )
    print(f"baseline ({result['baseline']['name']}): val accuracy {result['baseline']['val_accuracy']:.4f}")
    print(f"Comparison: {result['outputs']['compare_md']}")


def help_groups():
    """The --help groups of s140-compare's flags."""
    return [
        ("Data and outputs", ["data_dir", "job_dir", "overwrite"]),
        ("Models", ["architectures", "recipe"]),
        ("Training (the same for every architecture)", ["epochs", "learning_rate", *cli_flags.FIT_FLAGS]),
        ("Devices and speed", list(cli_flags.DEVICE_FLAGS)),
    ]


def run():
    cli.run(main, __doc__, help_groups(), program="s140-compare")


if __name__ == "__main__":
    run()
