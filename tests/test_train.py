"""Tests of a training run: settings and directories, history across resumes, and a
real two-replica run on the Beam job's sample output (the CLI as a user runs it:
tests/test_train_cli.py)."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from common import files
from preprocessing import schema
from trainer import __main__ as cli
from trainer import callbacks
from trainer import config
from trainer import data
from trainer import export
from trainer import recurrent
from trainer import slices
from trainer import step_plan
from trainer import train

SMALL_BILSTM = {"lstm_units": 8, "dense_units": 8}


# --- Settings.


def test_config_defaults_and_resolved_hparams():
    cfg = config.TrainConfig(data_dir="d", job_dir="j")
    assert (cfg.architecture, cfg.epochs, cfg.batch_size, cfg.learning_rate) == ("bilstm", 10, 64, 1e-3)
    assert (cfg.early_stopping_patience, cfg.mixed_precision, cfg.cpu_replicas, cfg.seed) == (3, "auto", 1, 42)
    tuned = config.TrainConfig(data_dir="d", job_dir="j", hparams={"lstm_units": 16, "dropout": 0})
    assert tuned.resolved_hparams() == {
        "lstm_units": 16,
        "dense_units": 64,
        "dropout": 0,
        "recurrent_dropout": 0.0,
        # Options added later, at the values that keep the seed's model (trainer/model_heads.py).
        "pooling": "last",
        "spatial_dropout": 0.0,
        "wide": "none",
        "wide_buckets": 2**18,
    }


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, r"Expected --epochs to be an integer >= 1\. Received: 0"),
        ({"batch_size": 2.5}, r"Expected --batch_size to be an integer >= 1\. Received: 2.5"),
        ({"learning_rate": 0.0}, r"Expected --learning_rate in \(0, 10\)"),
        ({"mixed_precision": "fp16"}, r"Expected --mixed_precision in \['auto', 'off', 'float16', 'bfloat16'\]"),
        ({"cpu_replicas": 0}, r"Expected --cpu_replicas to be an integer >= 1"),
        ({"architecture": "transformer"}, r"Expected an architecture in \['flatten', 'gap'"),
        ({"hparams": {"gru_units": 8}}, r"among \['dense_units', 'dropout', 'lstm_units', 'pooling', 'recurrent_dropout', 'spatial_dropout', 'wide', 'wide_buckets'\]\. Received unknown: \['gru_units'\]"),
        ({"hparams": {"lstm_units": 8.5}}, r"lstm_units to be int \(default 64\)\. Received: 8\.5"),
        ({"job_dir": ""}, r"Expected --job_dir to be a path"),
    ],
)
def test_config_errors_say_what_was_expected(changes, message):
    with pytest.raises(ValueError, match=message):
        config.TrainConfig(**{"data_dir": "d", "job_dir": "j", **changes})


def test_dirs_default_under_the_job_dir():
    dirs = config.resolve_dirs("gs://bucket/run/", {})
    assert dirs == config.RunDirs(
        job_dir="gs://bucket/run",
        model_dir="gs://bucket/run/model",
        checkpoint_dir="gs://bucket/run/checkpoints",
        log_dir="gs://bucket/run/logs",
    )


def test_vertex_variables_override_the_dirs():
    environ = {
        "AIP_MODEL_DIR": "gs://b/base/model/",
        "AIP_CHECKPOINT_DIR": "gs://b/base/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": "gs://b/base/logs/",
    }
    dirs = config.resolve_dirs("/local/run", environ)
    assert (dirs.job_dir, dirs.model_dir, dirs.checkpoint_dir, dirs.log_dir) == (
        "/local/run",
        "gs://b/base/model",
        "gs://b/base/checkpoints",
        "gs://b/base/logs",
    )
    only_model = config.resolve_dirs("/local/run", {"AIP_MODEL_DIR": "gs://b/m"})
    assert (only_model.model_dir, only_model.log_dir) == ("gs://b/m", "/local/run/logs")
    assert config.default_job_dir(environ) == "gs://b/base"
    assert config.default_job_dir({}) is None


def test_cli_hparams_are_typed_from_the_defaults():
    assert cli.parse_hparams("bilstm", ["lstm_units=32", "dropout=0.25"], {"dense_units": 16}) == {
        "lstm_units": 32,
        "dropout": 0.25,
        "dense_units": 16,
    }
    with pytest.raises(ValueError, match=r"among \['dense_units', 'dropout', 'pooling', 'spatial_dropout', 'wide', 'wide_buckets'\]\. Received unknown: \['lstm_units'\]"):
        cli.parse_hparams("gap", ["lstm_units=32"])
    with pytest.raises(ValueError, match=r"Received flags for: \['gru_units'\]"):
        cli.parse_hparams("bilstm", [], {"gru_units": 8, "dropout": None})
    with pytest.raises(ValueError, match=r"lstm_units to be int \(default 64\)\. Received: '3.5'"):
        cli.parse_hparams("bilstm", ["lstm_units=3.5"])
    with pytest.raises(ValueError, match="both as --dropout and in --hparams"):
        cli.parse_hparams("gap", ["dropout=0.1"], {"dropout": 0.2})
    with pytest.raises(ValueError, match="as name=value"):
        cli.parse_hparams("gap", ["dropout"])


# --- history.json across a resume.


class _Model:
    def __init__(self, initial_epoch):
        self._initial_epoch = initial_epoch


def _epoch(history_file, epoch, loss):
    history_file.on_epoch_begin(epoch)
    history_file.on_epoch_end(epoch, {"loss": np.float32(loss), "val_loss": loss + 1})


def test_history_file_keeps_the_epochs_before_the_resume(tmp_path):
    path = str(tmp_path / "history.json")
    first = callbacks.HistoryFile(path)
    first.on_train_begin()
    for epoch in range(3):
        _epoch(first, epoch, loss=float(epoch))
    # Killed after epoch 2 was recorded but before its backup: the resumed fit starts
    # at epoch 2 again and replaces its record.
    resumed = callbacks.HistoryFile(path)
    resumed.on_train_begin()
    for epoch in (2, 3):
        _epoch(resumed, epoch, loss=10.0 + epoch)
    history = callbacks.read_history(path)
    assert history == {
        "epoch": [0, 1, 2, 3],
        "loss": [0.0, 1.0, 12.0, 13.0],
        "val_loss": [1.0, 2.0, 13.0, 14.0],
    }
    assert callbacks.prior_epochs(path, _Model(2)) == [
        {"epoch": 0, "loss": 0.0, "val_loss": 1.0},
        {"epoch": 1, "loss": 1.0, "val_loss": 2.0},
    ]


def test_a_fresh_run_replaces_an_old_history(tmp_path):
    path = str(tmp_path / "history.json")
    old = callbacks.HistoryFile(path)
    old.on_train_begin()
    for epoch in range(5):
        _epoch(old, epoch, loss=1.0)
    fresh = callbacks.HistoryFile(path)
    fresh.on_train_begin()
    _epoch(fresh, 0, loss=0.5)
    assert callbacks.read_history(path)["epoch"] == [0]
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # the rename happened


def test_throughput_is_the_median_epoch_after_the_first():
    logger = callbacks.EpochLogger(examples_per_epoch=1000)
    assert logger.examples_per_second() is None
    logger.train_seconds = [9.0]  # one epoch: its own rate
    assert logger.examples_per_second() == pytest.approx(1000 / 9.0)
    logger.train_seconds = [9.0, 2.0, 4.0, 2.5]  # the first traced and compiled the step
    assert logger.examples_per_second() == pytest.approx(1000 / 2.5)


def test_early_stopping_patience_carries_over_a_resume(tmp_path):
    path = str(tmp_path / "history.json")
    files.write_json(
        path, {"epoch": [0, 1, 2], "val_loss": [0.5, 0.4, 0.45], "loss": [1.0, 0.9, 0.8]}
    )
    stopping = callbacks.ResumableEarlyStopping(path, monitor="val_loss", patience=2)
    stopping.set_model(_Model(3))
    stopping.on_train_begin()
    assert (stopping.best, stopping.best_epoch, stopping.wait) == (0.4, 1, 1)
    stopping.set_model(_Model(0))  # a fresh run ignores the old history
    stopping.on_train_begin()
    assert (stopping.best, stopping.wait) == (None, 0)


# --- A real run.


def _run(data_dir, job_dir, **overrides):
    settings = dict(
        data_dir=str(data_dir),
        job_dir=str(job_dir),
        architecture="bilstm",
        hparams=SMALL_BILSTM,
        epochs=2,
        batch_size=32,
        learning_rate=0.01,
        cpu_replicas=2,
    )
    settings.update(overrides)
    return train.train(config.TrainConfig(**settings), environ={})


def test_two_replica_run_writes_a_working_model(sample_data_dir, tmp_path):
    job_dir = tmp_path / "job"
    returned = _run(sample_data_dir, job_dir)

    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics == returned
    assert (metrics["replicas"], metrics["per_replica_batch_size"], metrics["global_batch_size"]) == (2, 32, 64)
    assert metrics["strategy_devices"] == ["/cpu:0", "/cpu:1"]
    # Across replicas too: many steps per call, XLA on each replica (trainer/step_loop.py).
    assert (metrics["steps_per_execution"], metrics["jit_compile"]) == (32, True)
    assert metrics["step_plan"].endswith("(XLA on each of 2 CPU replicas)")
    assert metrics["evaluated_on"] == "test" and metrics["count"] == 216
    assert metrics["accuracy"] > 0.6
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] in (1, 2)
    contract = data.load_contract(sample_data_dir)
    assert metrics["parameters"]["non_trainable"] == contract.vocab_size * 50  # frozen GloVe
    assert metrics["train_examples_per_second"] > 0 and metrics["wall_time_seconds"] > 0

    history = json.loads((job_dir / "history.json").read_text())
    assert history["epoch"] == [0, 1]
    assert len(history["val_loss"]) == 2 and len(history["accuracy"]) == 2
    assert metrics["best_val_loss"] == min(history["val_loss"])

    # model.keras recomputes the reported test accuracy exactly.
    model = keras.models.load_model(job_dir / "model.keras")
    records = data.read_records(sample_data_dir, "test")
    predicted = model.predict(records["token_ids"], verbose=0).reshape(-1) > 0.5
    assert np.mean(predicted == records["label"]) == pytest.approx(metrics["accuracy"])

    # The serving export scores raw text about as well (it re-tokenizes the tweets).
    serving = export.load_serving_model(str(job_dir / "model"))
    texts = [t.decode() for t in records["text"]]
    serving_accuracy = np.mean((serving(texts) > 0.5) == records["label"])
    assert abs(serving_accuracy - metrics["accuracy"]) <= 0.02

    # Slices of val and test; each family partitions its split, and the test slices
    # are those of model.keras's predictions.
    assert sorted(metrics["slices"]) == ["test", "val"]
    for split in ("val", "test"):
        for family, rows in metrics["slices"][split].items():
            assert sum(row["count"] for row in rows) == contract.count(split), (split, family)
    markers = slices.marker_ids(contract.metadata, contract.vocab_tokens)
    assert None not in (markers.link, markers.mention)  # the sample has links and mentions
    expected = slices.slice_metrics(records["token_ids"], records["label"], predicted.astype(int), markers)
    for family, rows in expected.items():
        got = metrics["slices"]["test"][family]
        assert [(r["slice"], r["count"]) for r in got] == [(r["slice"], r["count"]) for r in rows]
        assert [r["accuracy"] for r in got] == pytest.approx([r["accuracy"] for r in rows], abs=0.02)

    report = (job_dir / "report.md").read_text()
    assert "Training report: bilstm" in report and f"{metrics['accuracy']:.4f}" in report
    with_link = metrics["slices"]["val"]["link"][0]
    assert with_link["slice"] == "with link" and with_link["count"] > 0
    assert f"| link | with link | {with_link['count']:,} | {with_link['accuracy']:.4f} |" in report
    assert (job_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (job_dir / "checkpoints" / "best.keras").exists()
    # Kept after a finished fit, so a larger --epochs continues from the last epoch.
    assert (job_dir / "checkpoints" / "backup").is_dir()


def test_without_test_split_the_report_says_val(sample_data_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(sample_data_dir, data_dir)
    shutil.rmtree(data_dir / "test")
    metadata = json.loads((data_dir / schema.METADATA_FILE).read_text())
    metadata["counts"]["test"] = 0
    (data_dir / schema.METADATA_FILE).write_text(json.dumps(metadata))

    # With dropout: its masks are drawn with Philox (trainer/keras_adapter.py),
    # so XLA stays the CPU choice.
    metrics = _run(
        data_dir, tmp_path / "job", architecture="gap", hparams={"dropout": 0.3}, epochs=1, cpu_replicas=1
    )
    assert metrics["evaluated_on"] == "val"
    assert metrics["count"] == metadata["counts"]["val"]
    assert "test split is empty" in metrics["evaluation_note"]
    assert metrics["replicas"] == 1
    # One device: 32 steps per call, XLA-compiled (the CPU default of trainer/step_plan.py).
    assert (metrics["steps_per_execution"], metrics["jit_compile"]) == (32, True)
    assert metrics["step_plan"].endswith("(XLA on one CPU)")
    assert step_plan.LEGACY_CPU_RUNTIME_FLAG in metrics["xla_flags"].split()
    report = (tmp_path / "job" / "report.md").read_text()
    assert "test split is empty" in report and "32 step(s) per execution, XLA on" in report
    # Only val is sliced, and the report's table has no test columns.
    assert list(metrics["slices"]) == ["val"]
    assert sum(row["count"] for row in metrics["slices"]["val"]["length"]) == metadata["counts"]["val"]
    assert "| family | slice | val count | val accuracy |\n" in report


def test_a_cpu_run_unrolls_conv_lstms_short_lstm_and_records_it(sample_data_dir, tmp_path):
    # Two replicas: the unrolled copy is built inside MirroredStrategy's scope too.
    metrics = _run(
        sample_data_dir, tmp_path / "job", architecture="conv_lstm", hparams={"lstm_units": 8, "conv_filters": 8},
        epochs=1, cpu_replicas=2,
    )
    assert metrics["replicas"] == 2
    assert [name.split("_")[0] for name in metrics["unrolled_layers"]] == ["lstm"]
    assert metrics["step_plan"].endswith(f"; unrolled: {metrics['unrolled_layers'][0]}")
    saved = keras.models.load_model(tmp_path / "job" / "model.keras")
    assert recurrent.unrolled_layers(saved) == metrics["unrolled_layers"]


def test_step_flags_override_the_choice_on_one_device_and_across_replicas(sample_data_dir, tmp_path):
    for replicas in (1, 2):
        metrics = _run(
            sample_data_dir, tmp_path / f"job{replicas}", architecture="gap", hparams={}, epochs=1,
            cpu_replicas=replicas, steps_per_execution=4, jit_compile="false",
        )
        assert (metrics["replicas"], metrics["steps_per_execution"], metrics["jit_compile"]) == (replicas, 4, False)
        assert metrics["step_plan"].endswith("(as requested)")


# --- The CLI in subprocesses.


def test_progress_bar_only_in_a_terminal(tmp_path):
    import io
    import pty

    from trainer import run as run_lib

    assert run_lib.progress_verbosity(io.StringIO()) == 0  # a log or a pipe
    with open(tmp_path / "log.txt", "w") as log:
        assert run_lib.progress_verbosity(log) == 0
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as terminal:
            assert run_lib.progress_verbosity(terminal) == 1
    finally:
        os.close(leader)
        os.close(follower)
    assert run_lib.progress_verbosity(object()) == 0  # no isatty at all
