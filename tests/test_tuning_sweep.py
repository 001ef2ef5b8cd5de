"""End-to-end sweeps on the sample data: the outputs agree with each other, the best
model serves, and a killed sweep resumes without repeating finished trials."""

import csv
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time

import pytest

from trainer import predict
from tuning import budget
from tuning import config
from tuning import sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rows(tuner_dir):
    with open(pathlib.Path(tuner_dir) / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def _number(text):
    """A trials.csv cell as its value: int, float, or text (pooling, wide)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _info(tuner_dir, trial_id):
    return json.loads((pathlib.Path(tuner_dir) / "search" / f"trial_{trial_id}" / "s140_trial.json").read_text())


@pytest.fixture(scope="module")
def random_sweep(sample_data_dir, tmp_path_factory):
    """A finished random sweep whose shared settings are not the defaults."""
    cfg = config.SweepConfig(
        data_dir=sample_data_dir,
        tuner_dir=str(tmp_path_factory.mktemp("sweep") / "tune"),
        tuner="random",
        architectures=("gap", "conv1d"),
        max_trials=3,
        max_epochs=2,
        epochs_best=1,
        cpu_replicas=2,  # trials and the retraining on a two-replica MirroredStrategy
        batch_size=48,
        seed=7,
        early_stopping_patience=1,
        mixed_precision="off",
    )
    return cfg, sweep.run_sweep(cfg, environ={})


def test_random_sweep_outputs_agree_and_the_best_model_serves(random_sweep):
    cfg, result = random_sweep
    tuner_dir = pathlib.Path(cfg.tuner_dir)

    rows = _rows(tuner_dir)
    assert [r["trial_id"] for r in rows] == ["0", "1", "2"]
    assert result.trial_ids == ("0", "1", "2")
    assert {r["status"] for r in rows} == {"COMPLETED"}
    assert {r["architecture"] for r in rows} <= {"gap", "conv1d"}
    for row in rows:
        architecture = row["architecture"]
        filled = {k for k, v in row.items() if "/" in k and v != ""}
        assert filled and all(k.startswith(architecture + "/") for k in filled)
        assert 1 <= int(row["epochs_run"]) <= 2 and float(row["wall_seconds"]) > 0
        assert 0.0 <= float(row["val_accuracy"]) <= 1.0
        assert row["tuner_id"] == "tuner0" and row["attempts"] == "1"
        # What was built is what the oracle recorded (and what trials.csv shows).
        built = _info(tuner_dir, row["trial_id"])["built"]
        assert built["architecture"] == architecture
        assert built["learning_rate"] == float(row["learning_rate"])
        assert built["hparams"] == {k.split("/")[1]: _number(v) for k, v in row.items() if k in filled}

    best = json.loads((tuner_dir / "best_hyperparameters.json").read_text())
    top = max(rows, key=lambda r: float(r["val_accuracy"]))
    assert best["trial_id"] == top["trial_id"]
    assert best["objective"] == {"name": "val_accuracy", "direction": "max", "value": float(top["val_accuracy"])}
    assert best["architecture"] == top["architecture"]
    assert best["learning_rate"] == float(top["learning_rate"])
    assert best["hparams"] == {
        k.split("/")[1]: _number(v) for k, v in top.items() if "/" in k and v != ""
    }
    assert f"--architecture={best['architecture']}" in best["s140_train_command"]
    assert result.best == best

    # The best configuration retrained by the trainer's own code.
    metrics = json.loads((tuner_dir / "best" / "metrics.json").read_text())
    assert metrics["architecture"] == best["architecture"]
    assert {k: metrics["hparams"][k] for k in best["hparams"]} == best["hparams"]
    assert metrics["learning_rate"] == best["learning_rate"]
    assert metrics["epochs_requested"] == 1 and metrics["replicas"] == 2
    assert (tuner_dir / "best" / "report.md").exists()
    # The retraining's evaluation slices, as any s140-train run's.
    assert sorted(metrics["slices"]) == ["test", "val"]
    assert sum(row["count"] for row in metrics["slices"]["test"]["length"]) == metrics["count"]
    assert "## Slices" in (tuner_dir / "best" / "report.md").read_text()
    predictions = predict.predict(str(tuner_dir / "best" / "model"), ["i love this so much", "worst day ever"])
    assert [p.text for p in predictions] == ["i love this so much", "worst day ever"]
    assert all(0.0 <= p.probability <= 1.0 and p.label in ("positive", "negative") for p in predictions)

    assert (tuner_dir / "objective_per_trial.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tuner_dir / "summary.md").read_text()
    assert f"Trial {best['trial_id']}: **{best['architecture']}**, val_accuracy **{best['objective']['value']:.4f}**" in summary
    assert "3 completed, 0 failed" in summary and "objective_per_trial.png" in summary
    assert f"accuracy **{metrics['accuracy']:.4f}**" in summary


def _report_settings(report):
    """{setting: cell} of report.md's settings table."""
    section = report.split("## Settings")[1].split("\n## ")[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {name.strip(): value.strip() for name, value in rows}


def test_the_reproduce_command_retrains_best_with_the_same_settings(random_sweep, tmp_path):
    cfg, result = random_sweep
    tuner_dir = pathlib.Path(cfg.tuner_dir)
    summary = (tuner_dir / "summary.md").read_text()
    command = summary.split("Reproduce with: `")[1].split("`")[0]
    assert command == result.best["s140_train_command"]
    program, *args = shlex.split(command)
    assert program == "s140-train"
    assert f"--job_dir={tuner_dir / 'best'}" in args
    job_dir = tmp_path / "again"
    args = [f"--job_dir={job_dir}" if a.startswith("--job_dir=") else a for a in args]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("AIP_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "trainer", *args], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    best = json.loads((tuner_dir / "best" / "metrics.json").read_text())
    again = json.loads((job_dir / "metrics.json").read_text())
    settings = (
        "architecture", "hparams", "learning_rate", "seed", "per_replica_batch_size",
        "global_batch_size", "replicas", "strategy", "strategy_devices", "epochs_requested",
        "dtype_policy", "data_dir", "evaluated_on",
    )
    assert {k: again[k] for k in settings} == {k: best[k] for k in settings}
    assert (best["seed"], best["per_replica_batch_size"], best["replicas"]) == (7, 48, 2)
    # The settings metrics.json does not hold are in each report's settings table.
    shown = ("early_stopping_patience", "mixed_precision", "cpu_replicas", "batch_size", "epochs", "seed")
    best_report = _report_settings((tuner_dir / "best" / "report.md").read_text())
    again_report = _report_settings((job_dir / "report.md").read_text())
    assert {k: again_report[k] for k in shown} == {k: best_report[k] for k in shown}
    assert (best_report["early_stopping_patience"], best_report["mixed_precision"]) == ("1", "off")


def _run_cli(args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("CLUSTER_SPEC", None)
    env.pop("S140_SWEEP_SECRET", None)
    env.pop("TF_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tuning", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_a_killed_sweep_resumes_without_repeating_finished_trials(sample_data_dir, tmp_path):
    tuner_dir = tmp_path / "tune"
    common = dict(
        data_dir=sample_data_dir, tuner_dir=str(tuner_dir), tuner="random",
        architectures=("gap",), max_epochs=3, epochs_best=0,
    )
    # 1. A real kill (SIGKILL) while trial 1 trains; trial 0 has finished.
    process = _run_cli([
        f"--data_dir={sample_data_dir}", f"--tuner_dir={tuner_dir}", "--tuner=random",
        "--architectures=gap", "--max_trials=2", "--max_epochs=3", "--epochs_best=0",
    ])
    running = tuner_dir / "search" / "trial_1" / "s140_trial.json"
    deadline = time.monotonic() + 240
    while not running.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0]
    assert running.exists(), output[-3000:]
    state = json.loads((tuner_dir / "search" / "trial_1" / "trial.json").read_text())
    assert state["status"] == "RUNNING"
    first = json.loads((tuner_dir / "search" / "trial_0" / "trial.json").read_text())
    assert first["status"] == "COMPLETED"
    # The CLI said so as it happened: one line per finished trial, its score and the best.
    score = f"{first['score']:.4f}"
    assert (
        f"Trial 1 of 2 (id 0) COMPLETED in" in output
        and f"val_accuracy {score}. Best so far: {score} (trial 0, gap)." in output
    ), output[-3000:]

    # 2. The same command again: trial 1 runs again under its id, trial 0 is kept.
    result = sweep.run_sweep(config.SweepConfig(max_trials=2, **common), environ={})
    assert result.trial_ids == ("1",)
    rows = _rows(tuner_dir)
    assert [(r["trial_id"], r["status"]) for r in rows] == [("0", "COMPLETED"), ("1", "COMPLETED")]
    assert float(rows[0]["val_accuracy"]) == first["score"]
    assert [r["attempts"] for r in rows] == ["1", "2"]

    # 3. A larger budget: exactly one new trial; the first two keep their ids and scores.
    result = sweep.run_sweep(config.SweepConfig(max_trials=3, **common), environ={})
    assert result.trial_ids == ("2",)
    after = _rows(tuner_dir)
    assert after[:2] == rows
    assert [r["trial_id"] for r in after] == ["0", "1", "2"] and after[2]["status"] == "COMPLETED"

    # 4. A finished sweep run again runs nothing and reports the same.
    result = sweep.run_sweep(config.SweepConfig(max_trials=3, **common), environ={})
    assert result.trial_ids == ()
    assert _rows(tuner_dir) == after

    # 5. Settings that would change the trials refuse to resume.
    with pytest.raises(ValueError, match="architectures: was \\['gap'\\], now \\['gap', 'conv1d'\\]"):
        sweep.run_sweep(
            config.SweepConfig(max_trials=3, **{**common, "architectures": ("gap", "conv1d")}), environ={}
        )


def test_unknown_flags_and_bad_values_fail_the_command(tmp_path):
    process = _run_cli(["--data_dir=x", f"--tuner_dir={tmp_path}", "--max_trails=3"])
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0 and "max_trails" in output
    process = _run_cli(["--data_dir=x", f"--tuner_dir={tmp_path}", "--role=worker", "--oracle_address=h:1"])
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0 and "--worker_id" in output
    process = _run_cli(["--data_dir=x", f"--tuner_dir={tmp_path}", "--role=worker", "--oracle_address=h:1", "--worker_id=1"])
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0 and "Expected S140_SWEEP_SECRET to hold the sweep's shared secret" in output


def test_budgets():
    cfg = config.SweepConfig(data_dir="d", tuner_dir="t", tuner="hyperband", max_epochs=9, hyperband_factor=3)
    # KerasTuner's brackets for max_epochs 9, factor 3: 9x1 -> 3x3 -> 1x9, 5x3 -> 2x9, 3x9.
    assert budget.planned_trials(cfg) == 9 + 3 + 1 + 5 + 2 + 3
    assert budget.epoch_budget(cfg) == (9 * 1 + 3 * 2 + 1 * 6) + (5 * 3 + 2 * 6) + 3 * 9
    cfg = config.SweepConfig(data_dir="d", tuner_dir="t", tuner="random", max_trials=7, max_epochs=4, executions_per_trial=2)
    assert (budget.planned_trials(cfg), budget.epoch_budget(cfg)) == (7, 56)
