"""s140-compare: architectures trained by the s140-train path into one job dir, one
compare.md with a row per architecture and the TF-IDF baseline, the overlaid learning
curves, and a resume that does not train a finished architecture again."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from support import kill_after  # start a CLI and SIGKILL it after N epochs

from preprocessing import schema
from trainer import baseline
from trainer import callbacks
from trainer import compare
from trainer import compare_chart
from trainer import config
from trainer import data
from trainer import report
from trainer import run as run_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Settings of the tiny runs; the CLI test passes the same ones as flags.
EPOCHS, BATCH, LEARNING_RATE = 2, 64, 0.01


def _base(data_dir, job_dir, **overrides):
    settings = dict(
        data_dir=str(data_dir), job_dir=str(job_dir), epochs=EPOCHS, batch_size=BATCH,
        learning_rate=LEARNING_RATE,
    )
    return config.TrainConfig(**{**settings, **overrides})


def _parameters(data_dir, architecture):
    contract = data.load_contract(data_dir)
    return report.parameter_counts(run_lib.build_model(contract, architecture, {}, 1e-3))


def _table_row(markdown, first_cell):
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, markdown
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def _sklearn_baseline(data_dir):
    """The baseline computed here from the TFRecords, to check the command's numbers."""
    def split(name):
        records = data.read_records(data_dir, name)
        return [t.decode() for t in records[schema.TEXT]], records[schema.LABEL]

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split("train"), split("val"), split("test")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+")
    model = LogisticRegression(C=1.0, max_iter=2000).fit(vectorizer.fit_transform(train_x), train_y)
    return tuple(float(np.mean(model.predict(vectorizer.transform(x)) == y)) for x, y in ((val_x, val_y), (test_x, test_y)))


def _mtimes(directory):
    return {path: path.stat().st_mtime_ns for path in sorted(pathlib.Path(directory).rglob("*")) if path.is_file()}


def test_compare_writes_a_row_per_architecture_the_baseline_and_the_figure(sample_data_dir, tmp_path):
    job_dir = tmp_path / "compare"
    result = compare.compare(_base(sample_data_dir, job_dir), ["flatten", "gap"])

    assert result["trained"] == {"flatten": "trained", "gap": "trained"}
    markdown = (job_dir / "compare.md").read_text()
    for architecture in ("flatten", "gap"):
        run_dir = job_dir / architecture
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = callbacks.read_history(str(run_dir / "history.json"))
        assert metrics["architecture"] == architecture and metrics["epochs_run"] == EPOCHS
        counts = _parameters(sample_data_dir, architecture)
        assert metrics["parameters"] == counts
        cells = _table_row(markdown, f"[{architecture}]({architecture}/report.md)")
        assert cells[1] == f"{counts['total']:,} ({counts['trainable']:,})"
        best = int(np.argmin(history["val_loss"]))
        assert cells[2] == f"{best + 1} / {EPOCHS}" and metrics["best_epoch"] == best + 1
        assert cells[3] == f"{history['val_accuracy'][best]:.4f}"
        assert cells[4] == f"{history['val_loss'][best]:.4f}"
        assert cells[5] == f"{max(history['val_accuracy']):.4f}"
        assert cells[6] == f"{history['accuracy'][-1] - history['val_accuracy'][-1]:+.4f}"
        assert float(cells[7]) > 0
        assert metrics["evaluated_on"] == "test" and cells[8] == f"{metrics['accuracy']:.4f}"
    # flatten has 18,113 parameters at the seed's settings on 24 tokens (embedding
    # 10,900 frozen): its own count, not gap's.
    assert _table_row(markdown, "[flatten](flatten/report.md)")[1] != _table_row(markdown, "[gap](gap/report.md)")[1]

    val, test = _sklearn_baseline(sample_data_dir)
    cells = _table_row(markdown, f"{baseline.NAME} (baseline)")
    assert (cells[3], cells[8]) == (f"{val:.4f}", f"{test:.4f}")
    assert result["baseline"]["val_accuracy"] == pytest.approx(val)
    assert result["baseline"]["train_examples"] == data.load_contract(sample_data_dir).count("train")

    png = job_dir / compare.CURVES_FILE
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert f"]({compare.CURVES_FILE})" in markdown
    assert json.loads((job_dir / "compare.json").read_text())["rows"][0]["architecture"] == "flatten"

    # The same call again trains nothing and rewrites none of the runs' files.
    before = {arch: _mtimes(job_dir / arch) for arch in ("flatten", "gap")}
    again = compare.compare(_base(sample_data_dir, job_dir), ["flatten", "gap"])
    assert again["trained"] == {"flatten": "finished before", "gap": "finished before"}
    assert {arch: _mtimes(job_dir / arch) for arch in ("flatten", "gap")} == before
    assert again["rows"] == result["rows"]


def test_a_finished_run_with_other_epochs_is_not_taken_as_finished(sample_data_dir, tmp_path):
    metadata = data.read_metadata(sample_data_dir)
    job_dir = tmp_path / "compare"
    compare.train_architectures(_base(sample_data_dir, job_dir, epochs=1), ["gap"])
    one_epoch = compare.architecture_config(_base(sample_data_dir, job_dir, epochs=1), "gap")
    assert compare.finished(one_epoch, metadata)
    assert not compare.finished(compare.architecture_config(_base(sample_data_dir, job_dir), "gap"), metadata)
    # Dispatch settings only change how the steps run, not what the run is.
    assert compare.finished(
        compare.architecture_config(_base(sample_data_dir, job_dir, epochs=1, steps_per_execution=4), "gap"),
        metadata,
    )
    assert not compare.finished(compare.architecture_config(_base(sample_data_dir, job_dir, epochs=1), "flatten"), metadata)
    # A rerun killed before its end: history.json restarted beside the old metrics.json.
    (job_dir / "gap" / "history.json").write_text(json.dumps({"epoch": [], "loss": []}))
    assert not compare.finished(one_epoch, metadata)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_cli_skips_the_finished_architecture_and_completes_the_killed_one(sample_data_dir, tmp_path):
    job_dir = tmp_path / "compare"
    epochs = 8
    command = [
        sys.executable, "-m", "trainer.compare_main", f"--data_dir={sample_data_dir}",
        f"--job_dir={job_dir}", "--architectures=flatten,gap", f"--epochs={epochs}",
        "--batch_size=16", "--early_stopping_patience=0",
    ]
    gap_history = job_dir / "gap" / "history.json"
    # Two recorded epochs of gap: flatten has finished, gap's epoch 0 is backed up.
    killed = kill_after.kill_after_epochs(command, env=_env(), cwd=tmp_path, history_path=gap_history, timeout=300)
    assert 2 <= len(killed["epoch"]) < epochs
    assert (job_dir / "flatten" / "metrics.json").exists() and not (job_dir / "gap" / "metrics.json").exists()
    assert not (job_dir / "compare.md").exists()
    flatten_files = _mtimes(job_dir / "flatten")

    second = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "flatten: val accuracy" in second.stdout and "(finished before)" in second.stdout
    assert "gap: val accuracy" in second.stdout and "(trained)" in second.stdout
    assert _mtimes(job_dir / "flatten") == flatten_files
    history = callbacks.read_history(str(gap_history))
    assert history["epoch"] == list(range(epochs))
    metrics = json.loads((job_dir / "gap" / "metrics.json").read_text())
    resumed_at = epochs - metrics["epochs_run_this_process"]
    assert 1 <= resumed_at <= len(killed["epoch"])  # resumed, not started again
    assert history["loss"][:resumed_at] == killed["loss"][:resumed_at]
    assert "| [gap](gap/report.md) |" in (job_dir / "compare.md").read_text()


def test_cli_names_an_unknown_architecture():
    helped = subprocess.run(
        [sys.executable, "-m", "trainer.compare_main", "--data_dir=d", "--job_dir=j", "--architectures=gap,lstm"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert helped.returncode != 0
    assert "Received unknown: ['lstm']" in helped.stderr


def test_cli_names_a_repeated_architecture_in_one_line(tmp_path):
    # Seen: a traceback first.
    result = subprocess.run(
        [sys.executable, "-m", "trainer.compare_main", "--data_dir=d", f"--job_dir={tmp_path / 'j'}",
         "--architectures=gap,gap"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "s140-compare: error: Expected each of --architectures once. Received twice or more: ['gap'].")
    assert not (tmp_path / "j").exists()


def test_chart_without_epochs_says_why():
    assert compare_chart.learning_curves_png({"gap": {}}) == (None, "no epoch was recorded")


def test_help_lists_the_compare_flags_and_the_shared_ones_grouped():
    helped = subprocess.run(
        [sys.executable, "-m", "trainer.compare_main", "--help"], env=_env(), capture_output=True, text=True,
        timeout=120,
    )
    assert helped.returncode == 0, helped.stderr
    groups = [line[:-1] for line in helped.stdout.split("\n\n\n")[-1].splitlines()
              if line.endswith(":") and not line.startswith(" ")]
    assert groups == ["Data and outputs", "Models", "Training (the same for every architecture)", "Devices and speed"]
    for flag in ("--data_dir", "--job_dir", "--overwrite", "--architectures", "--epochs", "--learning_rate",
                 "--batch_size", "--early_stopping_patience", "--seed", "--cpu_replicas", "--jit_compile"):
        assert f"\n  {flag} (default: " in helped.stdout
    assert "  s140-compare --data_dir=runs/data --job_dir=runs/compare" in helped.stdout


def test_without_matplotlib_the_page_names_the_plots_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import fails
    png, why_not = compare_chart.learning_curves_png({"gap": {"accuracy": [0.6], "loss": [0.7]}})
    assert png is None and why_not == "matplotlib is not installed (`pip install 's140-trainer[plots]'`)"
    row = dict(
        architecture="gap", parameters=10, trainable_parameters=4, best_epoch=1, epochs_run=1, best_val_accuracy=0.6,
        best_val_loss=0.7, highest_val_accuracy=0.6, train_val_gap=-0.01, seconds_per_epoch=1.5, test_accuracy=None,
    )
    result = dict(
        data_dir="d", counts={"train": 8, "val": 2, "test": 0}, settings={"seed": 42}, rows=[row],
        baseline=dict(name=baseline.NAME, val_accuracy=0.5, test_accuracy=None, features=3),
        outputs={"curves": None},
    )
    markdown = compare.render_markdown(result, no_plot_reason=why_not)
    assert f"No image: {why_not}." in markdown
    assert _table_row(markdown, "[gap](gap/report.md)") == [
        "[gap](gap/report.md)", "10 (4)", "1 / 1", "0.6000", "0.7000", "0.6000", "-0.0100", "1.5", "n/a",
    ]
    assert "it beats the baseline on val (+0.1000)." in markdown


def test_a_recipe_fills_each_architecture_and_explicit_flags_win(tmp_path):
    from trainer import recipes

    base = _base(tmp_path / "data", tmp_path / "job", recipe="recommended", batch_size=32)
    conv1d = compare.architecture_config(base, "conv1d", explicit={"batch_size": 32})
    recipe = recipes.RECOMMENDED["conv1d"]
    assert conv1d.hparams == dict(recipe.hparams) and conv1d.hparams["wide"] == "bigrams"
    assert conv1d.batch_size == 32  # given on the command line: not the recipe's 256
    assert conv1d.learning_rate == recipe.settings["learning_rate"] == 3e-3
    assert conv1d.train_oov_vectors is True and conv1d.epochs == recipe.settings["epochs"]
    assert conv1d.job_dir == str(tmp_path / "job" / "conv1d")
    gap = compare.architecture_config(base, "gap", explicit={"batch_size": 32})
    assert gap.hparams == dict(recipes.RECOMMENDED["gap"].hparams) and gap.hparams["pooling"] == "max_mean"
    plain = compare.architecture_config(_base(tmp_path / "data", tmp_path / "job"), "conv1d")
    assert plain.hparams == {} and plain.learning_rate == LEARNING_RATE and plain.train_oov_vectors is False
