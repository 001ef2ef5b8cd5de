"""Settings of one sweep, with their defaults in one place, and where its files go."""

import dataclasses
import json
import posixpath
import typing

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


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What `tuning.sweep.run_sweep` needs; the CLI fills it from flags."""

    data_dir: str  # an s140-preprocess output directory, local or gs://
    tuner_dir: str  # KerasTuner state, reports and best/ (local or gs://)
    tuner: str = "hyperband"  # one of TUNERS
    architectures: typing.Tuple[str, ...] = models.ARCHITECTURES
    max_trials: int = 20  # random and bayesian; Hyperband's budget is max_epochs/factor
    max_epochs: int = 10  # epochs per trial; Hyperband's largest bracket
    hyperband_factor: int = 3
    executions_per_trial: int = 1
    objective: str = "val_accuracy"  # one of OBJECTIVES
    epochs_best: int = 10  # epochs to retrain the best configuration; 0: no retraining
    batch_size: int = 64  # per replica, as in s140-train
    early_stopping_patience: int = 3  # epochs without a better val_loss; 0 disables
    mixed_precision: str = "auto"
    cpu_replicas: int = 1
    seed: int = 42
    tune_recurrent_dropout: bool = False  # adds recurrent_dropout: disables cuDNN
    worker_timeout_seconds: float = 600.0  # chief: a silent worker's trial is re-queued

    def __post_init__(self):
        for name in ("data_dir", "tuner_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"Expected --{name} to be a path. Received: {getattr(self, name)!r}.")
        if self.tuner not in TUNERS:
            raise ValueError(f"Expected --tuner in {list(TUNERS)}. Received: {self.tuner!r}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"Expected --objective in {list(OBJECTIVES)}. Received: {self.objective!r}."
            )
        from tuning import search_space  # local: keeps this module light at import

        object.__setattr__(
            self, "architectures", search_space.check_architectures(self.architectures)
        )
        object.__setattr__(self, "tuner_dir", _strip_slash(self.tuner_dir))
        _check_int("max_trials", self.max_trials, 1)
        _check_int("max_epochs", self.max_epochs, 1)
        _check_int("hyperband_factor", self.hyperband_factor, 2)
        _check_int("executions_per_trial", self.executions_per_trial, 1)
        _check_int("epochs_best", self.epochs_best, 0)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("early_stopping_patience", self.early_stopping_patience, 0)
        _check_int("cpu_replicas", self.cpu_replicas, 1)
        _check_int("seed", self.seed, 0)
        if self.mixed_precision not in train_config.MIXED_PRECISION_CHOICES:
            raise ValueError(
                f"Expected --mixed_precision in {list(train_config.MIXED_PRECISION_CHOICES)}. "
                f"Received: {self.mixed_precision!r}."
            )
        if not self.worker_timeout_seconds > 0:
            raise ValueError(
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


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected --{name} to be an integer >= {minimum}. Received: {value!r}.")


def _strip_slash(path):
    stripped = path.rstrip("/")
    return stripped if stripped and not stripped.endswith(":") else path
