"""Settings of one sweep, with their defaults in one place, and where its files go."""

import dataclasses
import json
import posixpath
import typing

from common import errors
from trainer import config as train_config
from trainer import models

TUNERS = ("hyperband", "random", "bayesian")
OBJECTIVES = ("val_accuracy", "val_loss")

# Files under --tuner_dir.
PROJECT_NAME = "search"  # KerasTuner's project directory: oracle.json, trial_*/
SWEEP_FILE = "sweep.json"  # the settings of the first run; a resume must match them
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.json"
TRIALS_FILE = "trials.csv"
SUMMARY_FILE = "summary.md"
PLOT_FILE = "objective_per_trial.png"
BEST_DIR = "best"  # the best configuration retrained and exported like s140-train
LOGS_DIR = "logs"  # TensorBoard; KerasTuner adds <trial_id>/execution<n>/

# Settings that decide which trials a sweep runs: a resumed sweep must keep them. The
# budget (max_trials) may grow, and the retraining of the best model may change.
_IDENTITY = (
    "data_dir",
    "tuner",
    "architectures",
    "max_epochs",
    "hyperband_factor",
    "executions_per_trial",
    "objective",
    "batch_size",
    "seed",
    "tune_recurrent_dropout",
    "early_stopping_patience",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepConfig(train_config.RunSettings):
    """What `tuning.sweep.run_sweep` needs; the CLI fills it from flags.

    The settings every fit shares (data_dir, batch_size, early_stopping_patience,
    mixed_precision, cpu_replicas, seed) are `trainer.config.RunSettings`'s: each trial
    and the retraining of the best use them as s140-train does.
    """

    tuner_dir: str  # KerasTuner state, reports and best/ (local or gs://)
    tuner: str = "hyperband"  # one of TUNERS
    architectures: typing.Tuple[str, ...] = models.ARCHITECTURES
    max_trials: int = 20  # random and bayesian; Hyperband's budget is max_epochs/factor
    max_epochs: int = 10  # epochs per trial; Hyperband's largest bracket
    hyperband_factor: int = 3
    executions_per_trial: int = 1
    objective: str = "val_accuracy"  # one of OBJECTIVES
    epochs_best: int = 10  # epochs to retrain the best configuration; 0: no retraining
    tune_recurrent_dropout: bool = False  # adds recurrent_dropout: disables cuDNN
    worker_timeout_seconds: float = 600.0  # chief: a silent worker's trial is re-queued

    def __post_init__(self):
        train_config.check_path("tuner_dir", self.tuner_dir)
        super().__post_init__()
        if self.tuner not in TUNERS:
            raise errors.SettingError(f"Expected --tuner in {list(TUNERS)}. Received: {self.tuner!r}.")
        if self.objective not in OBJECTIVES:
            raise errors.SettingError(
                f"Expected --objective in {list(OBJECTIVES)}. Received: {self.objective!r}."
            )
        from tuning import search_space  # local: keeps this module light at import

        object.__setattr__(
            self, "architectures", search_space.check_architectures(self.architectures)
        )
        object.__setattr__(self, "tuner_dir", train_config.strip_slash(self.tuner_dir))
        for name, minimum in (
            ("max_trials", 1), ("max_epochs", 1), ("hyperband_factor", 2),
            ("executions_per_trial", 1), ("epochs_best", 0),
        ):
            train_config.check_int(name, getattr(self, name), minimum)
        if not self.worker_timeout_seconds > 0:
            raise errors.SettingError(
                "Expected --worker_timeout_seconds > 0. Received: "
                f"{self.worker_timeout_seconds!r}."
            )

    @property
    def objective_direction(self):
        return "min" if self.objective.endswith("loss") else "max"

    def path(self, name):
        return posixpath.join(self.tuner_dir, name)

    @property
    def project_dir(self):
        return self.path(PROJECT_NAME)

    def identity(self):
        """The settings a resumed sweep must share with the first run (JSON-able)."""
        values = dataclasses.asdict(self)
        return {key: list(values[key]) if isinstance(values[key], tuple) else values[key] for key in _IDENTITY}


def identity_mismatch(saved, cfg):
    """A message naming the settings that differ from the sweep in tuner_dir, or None."""
    current = cfg.identity()
    differ = {key: (saved.get(key), current[key]) for key in current if saved.get(key) != current[key]}
    if not differ:
        return None
    listed = "; ".join(f"{key}: was {old!r}, now {new!r}" for key, (old, new) in sorted(differ.items()))
    return (
        f"Expected the settings of the sweep already in {cfg.tuner_dir} to resume it. "
        f"Received different ones: {listed}. Run with the original settings (only "
        "--max_trials, --epochs_best and the machine settings may change), or choose a new "
        "--tuner_dir."
    )


def dumps(cfg):
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True) + "\n"
