"""The absl flags that s140-train, s140-compare and s140-tune share, defined once.

CLI-side: only the command-line modules (`trainer/__main__.py`,
`trainer/compare_main.py`, `tuning/__main__.py`) import this module; library code takes
`config.RunSettings`. The defaults are the dataclass's, so a flag and its setting cannot
drift apart. A flag added here reaches every one of those commands.
"""

import dataclasses
import os

from absl import app
from absl import flags

from trainer import config
from trainer import step_plan

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(config.RunSettings)}

DATA_DIR = flags.DEFINE_string("data_dir", None, "An s140-preprocess output directory (local or gs://).")
BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", _DEFAULTS["batch_size"],
    "Examples per replica per step; the global batch is this times the replicas in sync.",
)
PATIENCE = flags.DEFINE_integer(
    "early_stopping_patience", _DEFAULTS["early_stopping_patience"],
    "Epochs without a better val_loss before a fit (a training run or a tuning trial) "
    "stops; 0 disables early stopping.",
)
MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", _DEFAULTS["mixed_precision"], config.MIXED_PRECISION_CHOICES,
    "auto: mixed_float16 on GPUs of compute capability >= 7.0, else float32; float16: "
    "mixed_float16 (GPU only); bfloat16: mixed_bfloat16; off: float32.",
)
CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", _DEFAULTS["cpu_replicas"],
    "Without GPUs: split the CPU into this many logical devices and mirror each fit over them.",
)
SEED = flags.DEFINE_integer(
    "seed", _DEFAULTS["seed"], "Seed of the weights and the shuffling (and of s140-tune's search)."
)

STEPS_PER_EXECUTION = flags.DEFINE_integer(
    "steps_per_execution", _DEFAULTS["steps_per_execution"],
    "Training steps per call into TensorFlow; unset: 32 on one device, 1 across replicas "
    "(trainer/step_plan.py).", lower_bound=1,
)
JIT_COMPILE = flags.DEFINE_enum(
    "jit_compile", _DEFAULTS["jit_compile"], step_plan.JIT_CHOICES,
    "XLA-compile the training step. auto: on one device, except GPU LSTM/GRU models that "
    "can use cuDNN; never across replicas (trainer/step_plan.py).",
)
TRAIN_OOV_VECTORS = flags.DEFINE_boolean(
    "train_oov_vectors", _DEFAULTS["train_oov_vectors"],
    "Give the embedding rows GloVe lacks ([UNK] and the vocabulary tokens without a GloVe "
    "vector, as the data directory's uncovered_ids.npy lists them) trainable vectors, "
    "started from their fixed fallback vectors; the GloVe rows stay frozen.",
)

_HOLDERS = {
    "data_dir": DATA_DIR,
    "batch_size": BATCH_SIZE,
    "early_stopping_patience": PATIENCE,
    "mixed_precision": MIXED_PRECISION,
    "cpu_replicas": CPU_REPLICAS,
    "seed": SEED,
    "steps_per_execution": STEPS_PER_EXECUTION,
    "jit_compile": JIT_COMPILE,
    "train_oov_vectors": TRAIN_OOV_VECTORS,
}
if set(_HOLDERS) != set(_DEFAULTS):  # a new shared setting needs its flag here
    raise TypeError(f"Shared flags {sorted(_HOLDERS)} differ from RunSettings {sorted(_DEFAULTS)}.")


# --help groups of the shared flags (common/cli.py): how a fit is fed and seeded,
# and where and how fast it runs.
FIT_FLAGS = ("batch_size", "early_stopping_patience", "seed", "train_oov_vectors")
DEVICE_FLAGS = ("mixed_precision", "cpu_replicas", "steps_per_execution", "jit_compile")


def run_settings():
    """{setting: flag value} of every `config.RunSettings` field (kwargs of a config)."""
    return {name: holder.value for name, holder in _HOLDERS.items()}


def explicit_run_settings():
    """{setting: flag value} of the shared flags given on the command line (they win over
    a recipe's values; the others may take the recipe's)."""
    return {name: holder.value for name, holder in _HOLDERS.items() if holder.present}


class TrainingFlags:
    """--epochs, --learning_rate and --recipe: the fixed-run flags of s140-train and
    s140-compare, defined by whichever of them is the running command (s140-tune searches
    the learning rate instead, so they are not module-level flags here)."""

    def __init__(self, epochs_help):
        from trainer import recipes  # pure data; kept out of s140-tune's import

        defaults = {field.name: field.default for field in dataclasses.fields(config.TrainConfig)}
        self.epochs = flags.DEFINE_integer("epochs", defaults["epochs"], epochs_help)
        self.learning_rate = flags.DEFINE_float("learning_rate", defaults["learning_rate"], "Adam learning rate.")
        self.recipe = flags.DEFINE_enum(
            "recipe", defaults["recipe"], recipes.NAMES,
            "recommended: the architecture's recommended hyperparameters and training "
            "settings (trainer/recipes.py); flags given explicitly win over them. none: the defaults.",
        )

    def settings(self):
        """{setting: flag value} of these flags and the shared ones (before any recipe)."""
        return {**run_settings(), "epochs": self.epochs.value, "learning_rate": self.learning_rate.value}

    def explicit(self):
        """{setting: flag value} of the flags given on the command line: they win over
        a recipe's values."""
        mine = {"epochs": self.epochs, "learning_rate": self.learning_rate}
        return {**explicit_run_settings(), **{name: holder.value for name, holder in mine.items() if holder.present}}


def check_arguments(argv):
    """The first checks of every training command: no positional arguments, --data_dir."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}.")
    if not DATA_DIR.value:
        raise app.UsageError("--data_dir is required.")


def output_dir(value, flag):
    """The command's output directory: `value`, or on Vertex AI the parent of
    AIP_MODEL_DIR (`config.default_job_dir`)."""
    directory = value or config.default_job_dir(os.environ)
    if not directory:
        raise app.UsageError(f"--{flag} is required (outside Vertex AI, where AIP_MODEL_DIR is unset).")
    return directory
