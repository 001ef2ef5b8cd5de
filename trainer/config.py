"""Settings of one training run, with their defaults in one place, and where its files go."""

import dataclasses
import posixpath
import typing

MIXED_PRECISION_CHOICES = ("auto", "off", "float16", "bfloat16")

# Vertex AI sets these (only when the job has a base output directory); they win over
# the local defaults under --job_dir so that Vertex finds the model and TensorBoard logs.
AIP_MODEL_DIR = "AIP_MODEL_DIR"
AIP_CHECKPOINT_DIR = "AIP_CHECKPOINT_DIR"
AIP_TENSORBOARD_LOG_DIR = "AIP_TENSORBOARD_LOG_DIR"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What `trainer.train.train` needs; the CLI fills it from flags."""

    data_dir: str  # an s140-preprocess output directory, local or gs://
    job_dir: str  # model.keras, metrics.json, history.json, report.md (+ default sub-dirs)
    architecture: str = "bilstm"
    epochs: int = 10
    batch_size: int = 64  # per replica; the global batch is this x replicas in sync
    learning_rate: float = 1e-3
    hparams: typing.Mapping[str, typing.Any] = dataclasses.field(default_factory=dict)
    early_stopping_patience: int = 3  # epochs without a better val_loss; 0 disables
    mixed_precision: str = "auto"  # one of MIXED_PRECISION_CHOICES
    cpu_replicas: int = 1  # >1: split the CPU into this many logical devices (no GPU only)
    seed: int = 42

    def __post_init__(self):
        for name in ("data_dir", "job_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"Expected --{name} to be a path. Received: {getattr(self, name)!r}.")
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("early_stopping_patience", self.early_stopping_patience, 0)
        _check_int("cpu_replicas", self.cpu_replicas, 1)
        _check_int("seed", self.seed, 0)
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not 0.0 < self.learning_rate < 10.0
        ):
            raise ValueError(
                f"Expected --learning_rate in (0, 10). Received: {self.learning_rate!r}."
            )
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(
                f"Expected --mixed_precision in {list(MIXED_PRECISION_CHOICES)}. "
                f"Received: {self.mixed_precision!r}."
            )
        check_hparams(self.architecture, self.hparams)
        # A private copy: the dataclass is frozen, its hparams should not change under it.
        object.__setattr__(self, "hparams", dict(self.hparams))

    def resolved_hparams(self):
        """The architecture's defaults overridden by `hparams`: what the model is built with."""
        from trainer import models  # local: keeps this module free of TensorFlow at import

        return {**models.hyperparameters(self.architecture), **self.hparams}


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected --{name} to be an integer >= {minimum}. Received: {value!r}.")


def check_hparams(architecture, hparams):
    """Checks names and types of `hparams` against the architecture's defaults.

    Raises:
      ValueError: for an unknown architecture or hyperparameter (listing the valid
        ones) or a value whose type differs from the default's.
    """
    from trainer import models

    defaults = models.hyperparameters(architecture)  # raises for an unknown architecture
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise ValueError(
            f"Expected hyperparameters of {architecture!r} among {sorted(defaults)}. "
            f"Received unknown: {unknown}."
        )
    for name, value in hparams.items():
        expected = type(defaults[name])
        # An int is a fine float (dropout=0), never the other way round (units=32.5).
        accepted = (int, float) if expected is float else expected
        ok = isinstance(value, accepted) and not isinstance(value, bool)
        if not ok:
            raise ValueError(
                f"Expected {architecture} hyperparameter {name} to be {expected.__name__} "
                f"(default {defaults[name]!r}). Received: {value!r}."
            )


@dataclasses.dataclass(frozen=True)
class RunDirs:
    """Where one run writes. job_dir holds the small files; the rest may be elsewhere."""

    job_dir: str
    model_dir: str  # the serving SavedModel (what Vertex AI deploys)
    checkpoint_dir: str  # BackupAndRestore state and the best-so-far .keras
    log_dir: str  # TensorBoard


def resolve_dirs(job_dir, environ):
    """The run's directories: Vertex AI's AIP_* variables, else sub-dirs of job_dir.

    Args:
      job_dir: the run's directory (local or gs://).
      environ: a mapping like `os.environ`.

    Returns:
      A `RunDirs`.
    """
    job_dir = _strip_slash(job_dir)

    def pick(variable, default_name):
        value = environ.get(variable)
        return _strip_slash(value) if value else posixpath.join(job_dir, default_name)

    return RunDirs(
        job_dir=job_dir,
        model_dir=pick(AIP_MODEL_DIR, "model"),
        checkpoint_dir=pick(AIP_CHECKPOINT_DIR, "checkpoints"),
        log_dir=pick(AIP_TENSORBOARD_LOG_DIR, "logs"),
    )


def default_job_dir(environ):
    """The job dir when --job_dir is not given: Vertex AI's base output directory (the
    parent of AIP_MODEL_DIR), or None outside Vertex AI."""
    model_dir = environ.get(AIP_MODEL_DIR)
    return posixpath.dirname(_strip_slash(model_dir)) if model_dir else None


def _strip_slash(path):
    # "gs://bucket/base/model/" -> "gs://bucket/base/model", but keep "/" and "gs://b/".
    stripped = path.rstrip("/")
    return stripped if stripped and not stripped.endswith(":") else path
