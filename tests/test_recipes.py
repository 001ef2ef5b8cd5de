"""The recommended recipes (trainer/recipes.py): valid data with their evidence, applied
by `s140-train --recipe=recommended` under the flags given explicitly, and recorded in
metrics.json, report.md and run.json."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import pytest

from trainer import config
from trainer import models
from trainer import recipes

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_architecture_has_a_recipe_its_model_and_config_accept():
    assert set(recipes.RECOMMENDED) == set(models.ARCHITECTURES)
    fields = {field.name for field in dataclasses.fields(config.TrainConfig)}
    for architecture, recipe in recipes.RECOMMENDED.items():
        models.check_hyperparameters(architecture, recipe.hparams)
        assert set(recipe.settings) <= fields, architecture
        config.TrainConfig(data_dir="d", job_dir="j", architecture=architecture, hparams=recipe.hparams, **recipe.settings)
        # Each says whether it was measured, and by which command, or that it was not.
        assert recipe.evidence.startswith(("measured: val acc", "partly measured", "by analogy")), architecture
        if recipe.evidence.startswith("measured"):
            assert "bench/quality_experiments.py --experiments=" in recipe.evidence


def test_the_measured_winner_is_the_conv1d_recipe():
    recipe = recipes.RECOMMENDED["conv1d"]
    assert recipe.hparams == {"pooling": "max", "spatial_dropout": 0.2, "dropout": 0.3, "wide": "bigrams"}
    assert recipe.settings == {
        "train_oov_vectors": True, "batch_size": 256, "learning_rate": 3e-3, "epochs": 12, "early_stopping_patience": 3,
    }
    assert "0.7999" in recipe.evidence and "conv1d_max_oov_reg_wide2_b256" in recipe.evidence


def test_explicit_values_win_over_the_recipe():
    settings, hparams = recipes.apply(
        "recommended", "conv1d", settings={"batch_size": 32, "train_oov_vectors": False}, hparams={"wide": "unigrams"}
    )
    assert settings == {
        "train_oov_vectors": False, "batch_size": 32, "learning_rate": 3e-3, "epochs": 12, "early_stopping_patience": 3,
    }
    assert hparams == {"pooling": "max", "spatial_dropout": 0.2, "dropout": 0.3, "wide": "unigrams"}
    assert recipes.apply("none", "conv1d", settings={"epochs": 2}, hparams={}) == ({"epochs": 2}, {})
    with pytest.raises(ValueError, match=r"Expected --recipe in \['none', 'recommended'\]. Received: 'best'"):
        recipes.apply("best", "conv1d", settings={}, hparams={})
    with pytest.raises(ValueError, match=r"--recipe in .*Received: 'fast'"):
        config.TrainConfig(data_dir="d", job_dir="j", recipe="fast")


def test_cli_trains_the_recipe_under_the_explicit_flags(sample_data_dir, tmp_path):
    job_dir = tmp_path / "job"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("AIP_")}
    command = [
        sys.executable, "-m", "trainer", f"--data_dir={sample_data_dir}", f"--job_dir={job_dir}",
        "--architecture=gap", "--recipe=recommended",
        # Explicit flags win: fewer epochs and a smaller model than the recipe's, for a quick test.
        "--epochs=2", "--batch_size=128", "--dense_units=8", "--hparams=wide_buckets=1024",
    ]
    subprocess.run(
        command, check=True, cwd=tmp_path, timeout=600, capture_output=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)},
    )
    metrics = json.loads((job_dir / "metrics.json").read_text())
    metrics_rows = metrics["embedding_rows"]
    vocab_size = json.loads((pathlib.Path(sample_data_dir) / "metadata.json").read_text())["vocab_size"]
    uncovered = json.loads((pathlib.Path(sample_data_dir) / "metadata.json").read_text())["embedding"]["uncovered_rows"]
    assert metrics_rows == {"frozen": vocab_size - uncovered, "trainable": uncovered}
    assert (metrics["recipe"], metrics["train_oov_vectors"]) == ("recommended", True)
    assert metrics["hparams"] == {
        "dense_units": 8, "dropout": 0.0, "pooling": "max_mean", "spatial_dropout": 0.0, "wide": "bigrams",
        "wide_buckets": 1024,
    }
    # The recipe's learning rate and patience; the explicit epochs and batch.
    assert (metrics["learning_rate"], metrics["epochs_requested"], metrics["per_replica_batch_size"]) == (3e-3, 2, 128)
    # GloVe's rows frozen, the uncovered rows (x 50) + the wide weights + the network trainable.
    dim = 50
    network = (2 * dim * 8 + 8) + (8 + 1)
    assert metrics["parameters"] == {
        "non_trainable": vocab_size * dim, "trainable": uncovered * dim + vocab_size + 1024 + network,
        "total": vocab_size * dim + uncovered * dim + vocab_size + 1024 + network,
    }
    record = json.loads((job_dir / "run.json").read_text())
    assert (record["recipe"], record["train_oov_vectors"], record["early_stopping_patience"]) == ("recommended", True, 3)
    report = (job_dir / "report.md").read_text()
    assert f"Embedding rows: {vocab_size - uncovered:,} frozen (GloVe), {uncovered:,} trainable" in report
    assert "| recipe | recommended |" in report
