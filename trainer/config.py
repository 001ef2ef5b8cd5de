"""Settings of one training run, with their defaults in one place, and where its files go."""

import dataclasses
import posixpath
import typing

from common import errors
from trainer import step_plan

MIXED_PRECISION_CHOICES = ("auto", "off", "float16", "bfloat16")

# Vertex AI sets these (only when the job has a base output directory); they win over
# the local defaults under --job_dir so that Vertex finds the model and TensorBoard logs.
AIP_MODEL_DIR = "AIP_MODEL_DIR"
AIP_CHECKPOINT_DIR = "AIP_CHECKPOINT_DIR"
AIP_TENSORBOARD_LOG_DIR = "AIP_TENSORBOARD_LOG_DIR"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The settings every fit shares, a run of s140-train and each trial of s140-tune:
    where the data is and how it is batched, seeded, distributed and stopped."""

    data_dir: str  # an s140-preprocess output directory, local or gs://
    batch_size: int = 64  # per replica; the global batch is this x replicas in sync
    early_stopping_patience: int = 3  # epochs without a better val_loss; 0 disables
    mixed_precision: str = "auto"  # one of MIXED_PRECISION_CHOICES
    cpu_replicas: int = 1  # >1: split the CPU into this many logical devices (no GPU only)
    seed: int = 42
    steps_per_execution: typing.Optional[int] = None  # None: trainer.step_plan chooses
    jit_compile: str = "auto"  # XLA: one of step_plan.JIT_CHOICES
    # Rows GloVe lacks ([UNK] + uncovered tokens) train; GloVe rows stay frozen.
    train_oov_vectors: bool = False

    def __post_init__(self):
        check_path("data_dir", self.data_dir)
        check_int("batch_size", self.batch_size, 1)
        check_int("early_stopping_patience", self.early_stopping_patience, 0)
        check_int("cpu_replicas", self.cpu_replicas, 1)
        check_int("seed", self.seed, 0)
        if not isinstance(self.train_oov_vectors, bool):
            raise errors.SettingError(f"Expected --train_oov_vectors to be true or false. Received: {self.train_oov_vectors!r}.")
        if self.steps_per_execution is not None:
            check_int("steps_per_execution", self.steps_per_execution, 1)
        if self.jit_compile not in step_plan.JIT_CHOICES:
            raise errors.SettingError(
                f"Expected --jit_compile in {list(step_plan.JIT_CHOICES)}. Received: {self.jit_compile!r}."
            )
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise errors.SettingError(
                f"Expected --mixed_precision in {list(MIXED_PRECISION_CHOICES)}. "
                f"Received: {self.mixed_precision!r}."
            )

    def run_settings(self):
        """Only the shared settings, as a plain `RunSettings`."""
        return RunSettings(**{field.name: getattr(self, field.name) for field in dataclasses.fields(RunSettings)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(RunSettings):
    """What `trainer.train.train` needs; the CLI fills it from flags."""

    job_dir: str  # model.keras, metrics.json, history.json, report.md (+ default sub-dirs)
    architecture: str = "bilstm"
    epochs: int = 10
    learning_rate: float = 1e-3
    hparams: typing.Mapping[str, typing.Any] = dataclasses.field(default_factory=dict)
    # The recipe (trainer/recipes.py) the settings were filled from, for the record;
    # the settings themselves are already resolved (explicit flags win over it).
    recipe: str = "none"
    # Delete the job dir's old run first; without it a job dir started with other
    # settings is refused (trainer/run_record.py).
    overwrite: bool = False

    def __post_init__(self):
        check_path("job_dir", self.job_dir)
        super().__post_init__()
        check_int("epochs", self.epochs, 1)
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not 0.0 < self.learning_rate < 10.0
        ):
            raise errors.SettingError(
                f"Expected --learning_rate in (0, 10). Received: {self.learning_rate!r}."
            )
        from trainer import models  # local: keeps this module free of TensorFlow at import

        models.check_hyperparameters(self.architecture, self.hparams)
        from trainer import recipes

        recipes.check_name(self.recipe)
        # A private copy: the dataclass is frozen, its hparams should not change under it.
        object.__setattr__(self, "hparams", dict(self.hparams))

    def resolved_hparams(self):
        """The architecture's defaults overridden by `hparams`: what the model is built with."""
        from trainer import models

        return {**models.hyperparameters(self.architecture), **self.hparams}


def check_path(name, value):
    if not isinstance(value, str) or not value:
        raise errors.SettingError(f"Expected --{name} to be a path. Received: {value!r}.")


def check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise errors.SettingError(f"Expected --{name} to be an integer >= {minimum}. Received: {value!r}.")


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
    job_dir = strip_slash(job_dir)

    def pick(variable, default_name):
        value = environ.get(variable)
        return strip_slash(value) if value else posixpath.join(job_dir, default_name)

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
    return posixpath.dirname(strip_slash(model_dir)) if model_dir else None


def strip_slash(path):
    # "gs://bucket/base/model/" -> "gs://bucket/base/model", but keep "/" and "gs://b/".
    stripped = path.rstrip("/")
    return stripped if stripped and not stripped.endswith(":") else path
