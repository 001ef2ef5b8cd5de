"""Recommended recipes: per architecture, the hyperparameters and training settings that
measured best on validation, as data in one place, with the evidence behind each.

`s140-train --architecture=conv1d --recipe=recommended` trains with `RECOMMENDED["conv1d"]`;
a flag given explicitly on the command line wins over the recipe's value. Every recipe
says how it was found: `measured` (the validation accuracy and the command that
measured it) or `by analogy` (not measured; chosen by analogy with a measured one).

All measurements: the real 59k Sentiment140 sample (53,502 train / 5,971 val), GloVe
6B-50d frozen, one seed (42), val only; the official test set chose nothing. Tables:
bench/quality_results.md. Every command there is prefixed with
`S140_SHARED_DATA=/work/shared/data PYTHONPATH=$PWD .venv/bin/python`.
"""

import dataclasses
import typing

from common import errors

NONE = "none"
RECOMMENDED_NAME = "recommended"
NAMES = (NONE, RECOMMENDED_NAME)

_EXPERIMENTS = "bench/quality_experiments.py --experiments="
# The first run of every recipe through s140-compare (docs/benchmarks-history.md, "Quality").
_BENCH = "`bench/quality_bench.py` (seed 42; TF-IDF + LR: 0.7943)"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Hyperparameters (`trainer.models.hyperparameters`) and run settings (fields of
    `trainer.config.TrainConfig`) of one architecture's recommended training."""

    hparams: typing.Mapping[str, typing.Any]
    settings: typing.Mapping[str, typing.Any]
    evidence: str  # "measured: val acc X by `command`" or "by analogy, not measured: ..."


# The training settings every recipe shares: batch 256 with lr 3e-3 matched batch 64
# with lr 1e-3 in 4x fewer steps; the best epochs were 4-8, so 12 epochs with patience 3
# (best val_loss weights restored) is enough.
_TRAINING = {
    "train_oov_vectors": True,
    "batch_size": 256,
    "learning_rate": 3e-3,
    "epochs": 12,
    "early_stopping_patience": 3,
}
_REGULARIZED = {"spatial_dropout": 0.2, "dropout": 0.3}
_WIDE = {"wide": "bigrams"}

RECOMMENDED = {
    "conv1d": Recipe(
        hparams={"pooling": "max", **_REGULARIZED, **_WIDE},
        settings=_TRAINING,
        evidence=(
            "measured: val acc 0.7999 (restored best val_loss epoch; seeds 1 and 7: 0.7975, "
            f"0.7977) by `{_EXPERIMENTS}conv1d_max_oov_reg_wide2_b256`; TF-IDF + LR: 0.7943"
        ),
    ),
    "gap": Recipe(
        hparams={"pooling": "max_mean", **_WIDE},
        settings=_TRAINING,
        evidence=f"measured: val acc 0.7928 (restored) by `{_EXPERIMENTS}gap_maxmean_oov_wide2_b256`",
    ),
    "bigru": Recipe(
        hparams={"pooling": "max_mean", **_REGULARIZED, **_WIDE},
        settings={**_TRAINING, "learning_rate": 2e-3},
        evidence=(
            "partly measured: without the wide term val acc 0.7717 at 8 epochs, still rising, by "
            f"`{_EXPERIMENTS}bigru_maxmean_oov_reg_b256`; the wide bigram term is added by "
            "analogy with conv1d and gap (+4 points there); with it, afterwards: val acc 0.8014 "
            f"by {_BENCH}"
        ),
    ),
    "bilstm": Recipe(
        hparams={"pooling": "max_mean", **_REGULARIZED, **_WIDE},
        settings={**_TRAINING, "learning_rate": 2e-3},
        evidence=f"by analogy with bigru; measured afterwards: val acc 0.8017 by {_BENCH}",
    ),
    "stacked_bilstm": Recipe(
        hparams={"pooling": "max_mean", **_REGULARIZED, **_WIDE},
        settings={**_TRAINING, "learning_rate": 2e-3},
        evidence=f"by analogy with bigru; measured afterwards: val acc 0.8034 by {_BENCH}",
    ),
    "conv_lstm": Recipe(
        hparams={**_REGULARIZED, **_WIDE},
        settings=_TRAINING,
        evidence=f"by analogy with conv1d (it has no pooling choice); measured afterwards: val acc 0.7967 by {_BENCH}",
    ),
    "flatten": Recipe(
        hparams={"dropout": 0.3, **_WIDE},
        settings=_TRAINING,
        evidence=(
            f"by analogy with gap (flatten has no pooling); measured afterwards: val acc 0.7881 by {_BENCH}, "
            "below the baseline"
        ),
    ),
}


def check_name(name):
    if name not in NAMES:
        raise errors.SettingError(f"Expected --recipe in {list(NAMES)}. Received: {name!r}.")


def recipe_for(name, architecture):
    """The `Recipe` named `name` for `architecture`; None for the name "none".

    Raises:
      ValueError: for an unknown recipe name or an architecture without a recipe.
    """
    check_name(name)
    if name == NONE:
        return None
    if architecture not in RECOMMENDED:
        raise errors.SettingError(
            f"Expected an architecture with a recommended recipe, one of {sorted(RECOMMENDED)}. "
            f"Received: {architecture!r}."
        )
    return RECOMMENDED[architecture]


def apply(name, architecture, *, settings, hparams):
    """The settings and hyperparameters of a run: the recipe's, overridden by the ones
    given explicitly (the caller passes only those).

    Args:
      name: "none" or "recommended".
      architecture: the architecture trained.
      settings: {TrainConfig field: value} given explicitly (e.g. on the command line).
      hparams: {hyperparameter: value} given explicitly.

    Returns:
      (settings, hparams): new dicts, the recipe's values under the explicit ones.
    """
    recipe = recipe_for(name, architecture)
    if recipe is None:
        return dict(settings), dict(hparams)
    return {**recipe.settings, **settings}, {**recipe.hparams, **hparams}
