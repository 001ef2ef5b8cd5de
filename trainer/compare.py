"""The course's comparison as one command: several architectures trained on one data
directory by the one training path (`trainer.train.train`, the path of s140-train),
then one page that sets them side by side with a bag-of-words baseline.

  <job_dir>/<architecture>/   one s140-train run each (model, metrics.json, history.json, report.md)
  <job_dir>/compare.md        the table, the figure and the baseline
  <job_dir>/compare.json      the same numbers, for scripts (bench/quality_bench.py)
  <job_dir>/compare_curves.png

Every architecture gets the same settings (data, batch, seed, epochs, learning rate,
early stopping, devices): only the architecture changes. The numbers are read back
from each run's metrics.json and history.json, so a comparison that resumes shows the
runs it did not repeat exactly as they were written.

Resuming: an architecture whose run finished (metrics.json written) with the settings
asked for now is not trained again; one that was killed is handed to `train.train`,
which resumes it from its last finished epoch; one started with other settings is
refused by `run_record`, as s140-train refuses it (or deleted first with overwrite).
"""

import dataclasses
import posixpath

import numpy as np
from absl import logging

from common import dir_lock
from common import errors
from common import files
from trainer import baseline as baseline_lib
from trainer import callbacks as callbacks_lib
from trainer import compare_chart
from trainer import data
from trainer import recipes
from trainer import run_record
from trainer import tensorflow_adapter
from trainer import train as train_lib

COMPARE_FILE = "compare.md"
COMPARE_JSON = "compare.json"
CURVES_FILE = "compare_curves.png"


def architecture_config(base, architecture, explicit=None):
    """The `TrainConfig` of one architecture's run: `base` with its architecture and
    its own sub-directory of `base.job_dir`; every other setting shared.

    With `base.recipe` set (not "none"), the architecture's recipe (trainer/recipes.py)
    fills its hyperparameters and every setting not in `explicit` ({setting: value}
    given on the command line), as s140-train does."""
    settings, hparams = recipes.apply(base.recipe, architecture, settings=dict(explicit or {}), hparams={})
    return dataclasses.replace(
        base, **settings, architecture=architecture, hparams=hparams,
        job_dir=posixpath.join(base.job_dir, architecture),
    )


def finished(cfg, metadata):
    """Whether `cfg`'s job dir holds a finished run of exactly `cfg` (`run_record.finished`)."""
    return run_record.finished(cfg.job_dir, run_record.record_of(cfg, metadata, cfg.resolved_hparams())) is not None


def train_architectures(base, architectures, *, explicit=None, environ=None, verbose=0):
    """Trains (or resumes, or skips when finished) each architecture; returns
    {architecture: "trained" or "finished before"}. `explicit`: as `architecture_config`."""
    metadata = data.read_metadata(base.data_dir)
    done = {}
    for number, architecture in enumerate(architectures, 1):
        cfg = architecture_config(base, architecture, explicit)
        if not cfg.overwrite and finished(cfg, metadata):
            logging.info("%d/%d %s: finished before in %s; not trained again.",
                         number, len(architectures), architecture, cfg.job_dir)
            done[architecture] = "finished before"
            continue
        logging.info("%d/%d %s: training into %s.", number, len(architectures), architecture, cfg.job_dir)
        tensorflow_adapter.fresh_collective_keys()  # each run makes its own strategy
        train_lib.train(cfg, environ=environ, verbose=verbose)
        done[architecture] = "trained"
    return done


def summarize(architecture, metrics, history):
    """One row of the table from a run's metrics.json and history.json."""
    val_accuracy, val_loss = history.get("val_accuracy") or [], history.get("val_loss") or []
    train_accuracy = history.get("accuracy") or []
    best = int(np.argmin(val_loss)) if val_loss else None
    speed = metrics.get("train_examples_per_second")
    return {
        "architecture": architecture,
        "parameters": metrics["parameters"]["total"],
        "trainable_parameters": metrics["parameters"]["trainable"],
        "epochs_run": len(val_loss),
        "best_epoch": metrics.get("best_epoch"),  # 1-based, the lowest val_loss
        "best_val_loss": float(val_loss[best]) if best is not None else None,
        "best_val_accuracy": float(val_accuracy[best]) if best is not None and val_accuracy else None,
        "highest_val_accuracy": float(max(val_accuracy)) if val_accuracy else None,
        # Train minus val accuracy after the last epoch: the course reads overfitting off it.
        "train_val_gap": (
            float(train_accuracy[-1] - val_accuracy[-1]) if train_accuracy and val_accuracy else None
        ),
        # Training time of the median epoch after the first (validation excluded).
        "seconds_per_epoch": metrics["train_examples"] / speed if speed else None,
        "test_accuracy": metrics["accuracy"] if metrics.get("evaluated_on") == "test" else None,
        "slices": metrics.get("slices"),
        "run_dir": posixpath.dirname(metrics["outputs"]["metrics"]),
    }


def read_rows(base, architectures):
    """(rows, {architecture: history}) read back from each architecture's run."""
    rows, histories = [], {}
    for architecture in architectures:
        job_dir = architecture_config(base, architecture).job_dir
        metrics = files.read_json(posixpath.join(job_dir, train_lib.METRICS_FILE))
        histories[architecture] = callbacks_lib.read_history(posixpath.join(job_dir, callbacks_lib.HISTORY_FILE))
        rows.append(summarize(architecture, metrics, histories[architecture]))
    return rows, histories


def compare(base, architectures, *, explicit=None, environ=None, verbose=0):
    """Trains each architecture like s140-train, fits the baseline, writes the page.

    Args:
      base: a `config.TrainConfig` whose job_dir is the comparison's directory; its
        architecture and hparams are replaced per architecture.
      architectures: names from `models.ARCHITECTURES`, each once.
      explicit: {setting: value} given on the command line; they win over the recipe
        of `base.recipe` (as in `architecture_config`).
      environ: a mapping like `os.environ` for the runs (AIP_*, TF_CONFIG).
      verbose: Keras's fit verbosity (`run.progress_verbosity`).

    Returns:
      The content of compare.json: {"rows", "baseline", "trained", "outputs", ...}.

    Raises:
      ValueError: no architecture, or one named twice.
      run_record.RunMismatchError, schema.ContractError, ...: as `train.train` raises them.
    """
    architectures = list(architectures)
    if not architectures or len(set(architectures)) != len(architectures):
        raise errors.SettingError(f"Expected one or more different architectures. Received: {architectures}.")
    with dir_lock.holding(base.job_dir, command="s140-compare"):
        return _compare(base, architectures, explicit, environ, verbose)


def _compare(base, architectures, explicit, environ, verbose):
    trained = train_architectures(base, architectures, explicit=explicit, environ=environ, verbose=verbose)
    rows, histories = read_rows(base, architectures)
    contract = data.load_contract(base.data_dir)
    logging.info("Fitting the baseline (%s) on %d train examples.", baseline_lib.NAME, contract.count("train"))
    baseline = baseline_lib.tfidf_logistic_regression(contract)
    png, why_not = compare_chart.learning_curves_png(
        histories, baseline_val_accuracy=baseline.val_accuracy, baseline_label="TF-IDF + LR"
    )
    outputs = {
        "compare_md": posixpath.join(base.job_dir, COMPARE_FILE),
        "compare_json": posixpath.join(base.job_dir, COMPARE_JSON),
        "curves": posixpath.join(base.job_dir, CURVES_FILE) if png else None,
    }
    if png:
        files.write_atomically(outputs["curves"], png)
    else:
        logging.warning("No %s: %s.", CURVES_FILE, why_not)
    result = {
        "data_dir": base.data_dir,
        "counts": {split: contract.count(split) for split in ("train", "val", "test")},
        "settings": _shared_settings(base),
        "rows": rows,
        "baseline": baseline.as_dict(),
        "trained": trained,
        "outputs": outputs,
    }
    files.write_atomically(outputs["compare_md"], render_markdown(result, no_plot_reason=why_not))
    files.write_json(outputs["compare_json"], result)
    return result


def _shared_settings(base):
    skip = ("architecture", "hparams", "job_dir", "data_dir", "overwrite")
    return {name: value for name, value in dataclasses.asdict(base).items() if name not in skip}


def winner(rows):
    """The row with the best val accuracy at its best (lowest val_loss) epoch."""
    scored = [row for row in rows if row["best_val_accuracy"] is not None]
    return max(scored, key=lambda row: row["best_val_accuracy"]) if scored else None


# --- compare.md.


def render_markdown(result, *, no_plot_reason=None):
    """compare.md as a string, from `compare`'s result."""
    rows, baseline, counts = result["rows"], result["baseline"], result["counts"]
    names = ", ".join(f"`{row['architecture']}`" for row in rows)
    # A setting left unset (None) is chosen per model by the trainer (trainer/step_plan.py).
    settings = ", ".join(
        f"{name} {'auto' if value is None else format(value, 'g') if isinstance(value, float) else value}"
        for name, value in result["settings"].items()
    )
    lines = [
        f"# Comparison: {names}",
        "",
        f"Data directory `{result['data_dir']}`: {counts['train']:,} train, {counts['val']:,} val, "
        f"{counts['test']:,} test examples. Every architecture was trained by the path of "
        f"s140-train with the same settings ({settings}); each run is in its own "
        f"sub-directory, with its report.md.",
        "",
        "| architecture | parameters (trainable) | best epoch / run | val accuracy at best | "
        "val loss at best | highest val accuracy | train-val accuracy gap, last epoch | "
        "s/epoch | test accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| [{row['architecture']}]({row['architecture']}/report.md) | {row['parameters']:,} "
            f"({row['trainable_parameters']:,}) | {_fmt(row['best_epoch'])} / {row['epochs_run']} | "
            f"{_fmt(row['best_val_accuracy'])} | {_fmt(row['best_val_loss'])} | "
            f"{_fmt(row['highest_val_accuracy'])} | {_fmt(row['train_val_gap'], signed=True)} | "
            f"{_seconds(row['seconds_per_epoch'])} | {_fmt(row['test_accuracy'])} |"
        )
    lines.append(
        f"| {baseline['name']} (baseline) | {baseline['features']:,} n-gram weights + 1 bias | | "
        f"{_fmt(baseline['val_accuracy'])} | | | | | {_fmt(baseline['test_accuracy'])} |"
    )
    lines += ["", *_explanations(), "", *_verdict(rows, baseline), "", "## Learning curves", ""]
    if result["outputs"].get("curves"):
        lines.append(f"![Learning curves of every architecture, train solid and val dashed]({CURVES_FILE})")
        lines += ["", f"The dotted black line is the baseline's val accuracy ({_fmt(baseline['val_accuracy'])})."]
    else:
        lines.append(f"No image: {no_plot_reason}.")
    return "\n".join(lines) + "\n"


def _explanations():
    return [
        "- **best epoch**: the epoch of the lowest val loss, whose weights each run keeps "
        "(model.keras, the export and the test accuracy are of that epoch).",
        "- **train-val accuracy gap**: train minus val accuracy after the last epoch run; "
        "a large or growing gap is overfitting (the course's reading of its charts).",
        "- **s/epoch**: training seconds of the median epoch after the first (which also "
        "compiles), validation excluded; on a shared machine an upper bound.",
        "- **test accuracy**: the official test split, scored once and never used to choose.",
        "- The baseline is fitted on the same train split's standardized `text` "
        "(TF-IDF of 1- and 2-grams, min_df 2, sublinear tf; logistic regression, C=1).",
    ]


def _verdict(rows, baseline):
    best = winner(rows)
    if best is None:
        return ["No architecture recorded a validation epoch."]
    margin = best["best_val_accuracy"] - baseline["val_accuracy"]
    verdict = "beats" if margin > 0 else "does not beat"
    line = (
        f"Best on val: **{best['architecture']}** ({_fmt(best['best_val_accuracy'])}); it {verdict} "
        f"the baseline on val ({margin:+.4f})"
    )
    if best["test_accuracy"] is not None and baseline["test_accuracy"] is not None:
        line += f" and is {best['test_accuracy'] - baseline['test_accuracy']:+.4f} against it on test"
    return [line + "."]


def _seconds(value):
    # A small model on a small sample trains an epoch in well under 0.05 s, which one
    # decimal would print as "0.0": below a second, two significant digits.
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _fmt(value, *, digits=4, signed=False):
    if value is None:
        return "n/a"
    if isinstance(value, int):  # bool too
        return str(value)
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)
