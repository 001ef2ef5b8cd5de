"""The KerasTuner search space: architecture first, then that architecture's knobs.

The space is declared in one table, `SEARCH_SPACE`: architecture -> {hyperparameter ->
`Choice` or `LogUniform`}. Every name is a keyword of that architecture's body in
`trainer.models` (the table is checked against `models.hyperparameters()` at import), so
a trial's values go to `trainer.models.build_model` and to `s140-train` unchanged.

Each architecture's hyperparameters live in `hp.conditional_scope("architecture",
[name])`: a trial holds only the values of the architecture it drew, plus the learning
rate that every architecture shares. In KerasTuner they are named
"<architecture>/<keyword>" ("gap/dense_units"), never just "dense_units": KerasTuner
allows one name under several conditions, but `HyperParameters.ensure_active_values`
(run when a trial ends) then pops the active value while visiting the inactive twin and
draws a new one, so the trial would record values it did not train with.

Deliberate choices:

- The embedding is frozen GloVe in every trial (`embedding_matrix` of the data
  contract); fine-tuning it is not part of the space.
- `recurrent_dropout` is absent unless `tune_recurrent_dropout=True`: any value > 0
  takes LSTM/GRU off cuDNN (about 25x slower on GPU, TF #38236), which a default sweep
  must not do behind the user's back.
- Convolution and pooling choices that do not fit `max_length` are dropped when the
  space is declared, so no trial fails on a shape error.
"""

import dataclasses
import typing

import keras_tuner

from common import errors
from trainer import models
from trainer import run as run_lib
from trainer import step_loop

ARCHITECTURE = "architecture"
LEARNING_RATE = "learning_rate"
RECURRENT_DROPOUT = "recurrent_dropout"


@dataclasses.dataclass(frozen=True)
class Choice:
    """An ordered set of values; `default` (the seed's value where it is one of them)
    is what Bayesian optimisation assumes for a trial in which the knob is inactive."""

    values: typing.Tuple
    default: typing.Any = None

    def declare(self, hp, name):
        default = self.default if self.default in self.values else self.values[0]
        # KerasTuner orders numbers only; text choices (pooling, wide) are categories.
        ordered = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)
        return hp.Choice(name, list(self.values), ordered=ordered, default=default)


@dataclasses.dataclass(frozen=True)
class LogUniform:
    low: float
    high: float
    default: float

    def declare(self, hp, name):
        return hp.Float(name, self.low, self.high, sampling="log", default=self.default)


_UNITS = Choice((16, 32, 64, 128), default=64)
_DENSE = Choice((16, 32, 64, 128), default=64)
_DROPOUT = Choice((0.0, 0.1, 0.2, 0.3, 0.4, 0.5), default=0.0)
_KERNEL = Choice((3, 5, 7), default=5)
# Around every body (trainer/models.py COMMON_HYPERPARAMETERS; trainer/recipes.py has
# what measured best): spatial dropout on the embedded words and the wide logit.
_AROUND = {
    "spatial_dropout": Choice((0.0, 0.1, 0.2, 0.3), default=0.0),
    "wide": Choice(("none", "unigrams", "bigrams"), default="none"),
    "wide_buckets": Choice((2**16, 2**18), default=2**18),  # used by wide=bigrams only
}
_POOL_WINDOWS = {"pooling": Choice(("mean", "max", "max_mean"), default="mean")}
_POOL_STATES = {"pooling": Choice(("last", "max", "max_mean"), default="last")}

# Shared by every architecture: Adam's step size, log-uniform around Keras' 1e-3.
COMMON_SPACE = {LEARNING_RATE: LogUniform(1e-4, 1e-2, default=1e-3)}

# architecture -> its hyperparameters (every keyword of its body in trainer.models,
# except recurrent_dropout, see RECURRENT_DROPOUT_SPACE).
SEARCH_SPACE = {
    # Flatten keeps every position's 50 dims: a wide Dense overfits 3k-60k tweets fast.
    "flatten": {"dense_units": Choice((4, 6, 8, 16, 32, 64), default=6), "dropout": _DROPOUT, **_AROUND},
    "gap": {"dense_units": _DENSE, "dropout": _DROPOUT, **_POOL_WINDOWS, **_AROUND},
    "bilstm": {"lstm_units": _UNITS, "dense_units": _DENSE, "dropout": _DROPOUT, **_POOL_STATES, **_AROUND},
    "stacked_bilstm": {
        "first_lstm_units": Choice((32, 64, 128), default=64),
        "second_lstm_units": Choice((16, 32, 64), default=32),
        "dense_units": _DENSE,
        "dropout": _DROPOUT,
        **_POOL_STATES,
        **_AROUND,
    },
    "conv1d": {
        "conv_filters": Choice((32, 64, 128, 256), default=128),
        "kernel_size": _KERNEL,
        "dense_units": _DENSE,
        "dropout": _DROPOUT,
        **_POOL_WINDOWS,
        **_AROUND,
    },
    "bigru": {"gru_units": _UNITS, "dense_units": _DENSE, "dropout": _DROPOUT, **_POOL_STATES, **_AROUND},
    "conv_lstm": {
        "embedding_dropout": Choice((0.0, 0.1, 0.2, 0.3), default=0.2),
        "conv_filters": Choice((32, 64, 128), default=64),
        "kernel_size": _KERNEL,
        "pool_size": Choice((2, 3, 4), default=4),
        "lstm_units": _UNITS,
        "dropout": _DROPOUT,
        **_AROUND,
    },
}

# Only with tune_recurrent_dropout=True (it disables cuDNN; see the module docstring).
RECURRENT_DROPOUT_SPACE = Choice((0.0, 0.1, 0.2, 0.3), default=0.0)


def _check_table():
    """The table names exactly the keywords of each body (but recurrent_dropout), with
    values that `models.check_hyperparameters` accepts: a renamed or new model knob, or
    a value of the wrong type, fails at import."""
    if set(SEARCH_SPACE) != set(models.ARCHITECTURES):
        raise TypeError(
            f"SEARCH_SPACE covers {sorted(SEARCH_SPACE)}; trainer.models has "
            f"{sorted(models.ARCHITECTURES)}."
        )
    for architecture, space in SEARCH_SPACE.items():
        defaults = models.hyperparameters(architecture)
        expected = set(defaults) - {RECURRENT_DROPOUT}
        if set(space) != expected:
            raise TypeError(
                f"SEARCH_SPACE[{architecture!r}] declares {sorted(space)}; the model takes "
                f"{sorted(expected)} (besides recurrent_dropout)."
            )
        for name, spec in space.items():
            values = spec.values if isinstance(spec, Choice) else (spec.low, spec.high)
            for value in values:  # the models' own check: names, types and ranges
                models.check_hyperparameters(architecture, {name: value})


_check_table()


def fit_to_length(architecture, space, max_length):
    """`space` without the kernel/pool sizes that do not fit `max_length` tokens.

    conv1d needs kernel_size <= max_length; conv_lstm needs kernel_size + pool_size - 1
    <= max_length for every pair that can be drawn, so the largest kernel or pool is
    dropped (the larger of the two first) until the largest pair fits.

    Raises:
      ValueError: when no choice fits (naming the architecture and max_length).
    """
    space = dict(space)
    kernels = list(space["kernel_size"].values) if "kernel_size" in space else []
    pools = list(space["pool_size"].values) if "pool_size" in space else []
    if pools:
        while kernels and pools and max(kernels) + max(pools) - 1 > max_length:
            larger = kernels if max(kernels) >= max(pools) else pools
            larger.remove(max(larger))
    else:
        kernels = [k for k in kernels if k <= max_length]
    if "kernel_size" in space:
        if not kernels or ("pool_size" in space and not pools):
            raise errors.SettingError(
                f"Expected max_length to fit the smallest convolution of {architecture!r}. "
                f"Received: max_length={max_length}. Leave {architecture!r} out of "
                "--architectures or preprocess with a longer --max_length."
            )
        space["kernel_size"] = dataclasses.replace(space["kernel_size"], values=tuple(kernels))
    if "pool_size" in space:
        space["pool_size"] = dataclasses.replace(space["pool_size"], values=tuple(pools))
    return space


def architecture_space(architecture, *, max_length, tune_recurrent_dropout=False):
    """{name: spec} of one architecture's hyperparameters, as declared for a sweep."""
    if architecture not in SEARCH_SPACE:
        raise errors.SettingError(
            f"Expected architectures among {list(models.ARCHITECTURES)}. "
            f"Received: {architecture!r}."
        )
    space = fit_to_length(architecture, SEARCH_SPACE[architecture], max_length)
    if tune_recurrent_dropout and RECURRENT_DROPOUT in models.hyperparameters(architecture):
        space[RECURRENT_DROPOUT] = RECURRENT_DROPOUT_SPACE
    return space


def check_architectures(architectures):
    """The requested architectures as a tuple, in the registry's order, without repeats."""
    architectures = tuple(architectures)
    unknown = sorted(set(architectures) - set(models.ARCHITECTURES))
    if not architectures or unknown:
        raise errors.SettingError(
            f"Expected one or more architectures among {list(models.ARCHITECTURES)}. "
            f"Received: {list(architectures)}."
        )
    return tuple(a for a in models.ARCHITECTURES if a in architectures)


def hp_name(architecture, keyword):
    """The KerasTuner name of one architecture's hyperparameter, e.g. "gap/dense_units"."""
    return f"{architecture}/{keyword}"


def declare(hp, *, architectures, max_length, tune_recurrent_dropout=False):
    """Declares the whole space on `hp` and returns the values active for it.

    Every architecture's hyperparameters are declared (inside their conditional scope)
    whichever architecture `hp` holds, so one call registers the complete space: the
    oracle needs no model build to learn it.

    Returns:
      (architecture, learning_rate, hparams): the drawn architecture, the learning
      rate and {keyword: value} of that architecture's hyperparameters (keywords of
      `trainer.models.build_model`, without the "<architecture>/" prefix).
    """
    architectures = check_architectures(architectures)
    architecture = hp.Choice(ARCHITECTURE, list(architectures), default=architectures[0])
    learning_rate = COMMON_SPACE[LEARNING_RATE].declare(hp, LEARNING_RATE)
    active = {}
    for name in architectures:
        space = architecture_space(
            name, max_length=max_length, tune_recurrent_dropout=tune_recurrent_dropout
        )
        with hp.conditional_scope(ARCHITECTURE, [name]):
            values = {key: spec.declare(hp, hp_name(name, key)) for key, spec in space.items()}
        if name == architecture:
            active = values
    return architecture, learning_rate, active


def declared_space(*, architectures, max_length, tune_recurrent_dropout=False):
    """A `keras_tuner.HyperParameters` holding the complete space (for an oracle)."""
    hp = keras_tuner.HyperParameters()
    declare(
        hp,
        architectures=architectures,
        max_length=max_length,
        tune_recurrent_dropout=tune_recurrent_dropout,
    )
    return hp


def trial_config(values):
    """(architecture, learning_rate, hparams) of a trial's `hyperparameters.values`.

    hparams maps `build_model` keywords to values ("gap/dense_units" -> "dense_units");
    other keys (Hyperband's "tuner/..." bookkeeping) are left out. Values get the type
    of the model's default (a value read back from JSON or gRPC may come as 64.0 or 0).
    """
    architecture = values[ARCHITECTURE]
    defaults = models.hyperparameters(architecture)
    hparams = {}
    for keyword, default in defaults.items():
        value = values.get(hp_name(architecture, keyword))
        if value is not None:
            kind = float if isinstance(default, float) else type(default)
            hparams[keyword] = kind(value)
    return architecture, float(values[LEARNING_RATE]), hparams


class SentimentHyperModel(keras_tuner.HyperModel):
    """Builds and compiles one trial's classifier on the data contract's frozen GloVe.

    Args:
      contract: a `trainer.data.Contract` (vocab size, max_length, GloVe matrix).
      architectures: the architectures the sweep chooses among.
      tune_recurrent_dropout: also tune recurrent_dropout (disables cuDNN).
      run: the `trainer.run.Run` whose devices and settings choose each model's step
        settings (steps per execution, XLA); None: Keras's defaults.
    """

    def __init__(self, contract, *, architectures=models.ARCHITECTURES, tune_recurrent_dropout=False, run=None):
        super().__init__(name="s140")
        self.contract = contract
        self.run = run
        self.architectures = check_architectures(architectures)
        self.tune_recurrent_dropout = tune_recurrent_dropout
        # {"architecture", "learning_rate", "hparams"} of the last build (for the record).
        self.last_built = None
        for architecture in self.architectures:  # fail now, not in trial 17
            architecture_space(architecture, max_length=contract.max_length)

    def declare_hyperparameters(self, hp):
        self._declare(hp)

    def _declare(self, hp):
        return declare(
            hp,
            architectures=self.architectures,
            max_length=self.contract.max_length,
            tune_recurrent_dropout=self.tune_recurrent_dropout,
        )

    def build(self, hp):
        architecture, learning_rate, hparams = self._declare(hp)
        self.last_built = {
            ARCHITECTURE: architecture,
            LEARNING_RATE: learning_rate,
            "hparams": dict(hparams),
        }
        # The trainer's build and compile, on the contract's frozen GloVe.
        model = run_lib.build_model(self.contract, architecture, hparams, learning_rate, run=self.run)
        loop = step_loop.of(model)  # None without a run: Keras's own fit and defaults
        self.last_built.update(
            steps_per_execution=loop.plan.steps_per_execution if loop else model.steps_per_execution,
            jit_compile=loop.plan.jit_compile if loop else bool(model.jit_compile),
        )
        return model
