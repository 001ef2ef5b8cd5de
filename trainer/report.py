"""The training report: `learning_curves.png` and `report.md` in the job directory.

One page that answers what was trained, on what, how well and how fast, and how to use
the result. Every file goes through `tf.io.gfile`, so a gs:// job directory works the
same. matplotlib is optional (the `plots` extra) and imported only here, with the Agg
canvas and no pyplot: a training container has no display, and pyplot's global state
has no business in a library.
"""

import json
import math
import posixpath

import numpy as np

from common import files
from common.quiet_tf import tf
from trainer import charts
from trainer import slices as slices_lib

LEARNING_CURVES_FILE = "learning_curves.png"
REPORT_FILE = "report.md"

# (panel title, metric key): the two panels of the course's charts.
_PANELS = (("Accuracy", "accuracy"), ("Loss", "loss"))


def parameter_counts(model):
    """{"total", "trainable", "non_trainable"} parameter counts of a keras.Model."""
    trainable = sum(int(_size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(_size(w)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}


def _size(weight):
    return math.prod(int(d) for d in weight.shape)


def write_report(job_dir, *, history, metrics, metadata, settings, slices=None):
    """Writes `learning_curves.png` (when matplotlib is installed) and `report.md`.

    Args:
      job_dir: local path or gs:// URI; created if missing.
      history: a keras History or its `.history` dict {"loss": [...], "val_loss": [...],
        "accuracy": [...], ...}, one value per epoch.
      metrics: `evaluate.binary_metrics` on the test split, or None (no test split).
      metadata: the data directory's metadata.json (dict).
      settings: the run's settings, every key shown in the report. Keys it reads
        specially: "architecture", "hparams" (dict), "parameters" (`parameter_counts`),
        "data_dir", "export_dir", "wall_time_seconds", "examples_per_second" (computed
        from train count x epochs / wall time when absent).
      slices: {split: `slices.slice_metrics`}, e.g. val and test; None: no slice table.

    Returns:
      {"report": path of report.md, "learning_curves": path of the PNG or None}.
    """
    history = dict(getattr(history, "history", history) or {})
    settings = dict(settings or {})
    tf.io.gfile.makedirs(job_dir)
    png_path = posixpath.join(job_dir, LEARNING_CURVES_FILE)
    png, why_not = _learning_curves_png(history, title=settings.get("architecture"))
    if png is not None:
        files.write_atomically(png_path, png)
    else:
        png_path = None
    report_path = posixpath.join(job_dir, REPORT_FILE)
    markdown = render_markdown(
        history=history, metrics=metrics, metadata=metadata, settings=settings,
        learning_curves=LEARNING_CURVES_FILE if png is not None else None, no_plot_reason=why_not,
        slices=slices,
    )
    files.write_atomically(report_path, markdown)
    return {"report": report_path, "learning_curves": png_path}


# --- Learning curves.


def _learning_curves_png(history, *, title=None):
    """(PNG bytes, None), or (None, why no PNG) when matplotlib is missing or nothing was logged."""
    if not any(history.get(key) for _, key in _PANELS):
        return None, "no epoch was recorded"
    figure = charts.new_figure(figsize=(11, 4.2), dpi=100)
    if figure is None:
        return None, charts.MISSING
    for axes, (name, key) in zip(figure.subplots(1, 2), _PANELS):
        for prefix, label, style in (("", "train", "-o"), ("val_", "validation", "--s")):
            values = history.get(prefix + key) or []
            if values:
                axes.plot(range(1, len(values) + 1), values, style, markersize=3, label=label)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        charts.integer_ticks(axes.xaxis)
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    if title:
        figure.suptitle(f"Learning curves: {title}")
    figure.tight_layout()
    return charts.png(figure), None


# --- Markdown.


def render_markdown(*, history, metrics, metadata, settings, learning_curves, no_plot_reason=None, slices=None):
    """report.md as a string (see `write_report`)."""
    architecture = settings.get("architecture", metadata.get("architecture", "model"))
    sections = [
        f"# Training report: {architecture}\n\n{_headline(metrics)}",
        _model_section(architecture, settings),
        _settings_section(settings),
        _data_section(metadata, settings),
        _curves_section(history, learning_curves, no_plot_reason),
        _metrics_section(metrics),
        _slices_section(slices, metadata),
        _speed_section(history, metadata, settings),
        _serving_section(settings),
    ]
    return "\n\n".join(section.rstrip() for section in sections if section) + "\n"


def _headline(metrics):
    if not metrics:
        return "No test metrics: the run had no test split to evaluate."
    auc = metrics.get("roc_auc")
    auc_text = f", ROC AUC {auc:.4f}" if auc is not None else ""
    return (
        f"Test accuracy **{metrics['accuracy']:.4f}** ({metrics['accuracy']:.2%}){interval_text(metrics)} on "
        f"{metrics['count']:,} tweets{auc_text}."
    )


def interval_text(metrics):
    """", 95% interval a-b," of metrics.json's accuracy (Wilson); "" for a metrics.json
    written before the package recorded it."""
    if not metrics.get("accuracy_ci95"):
        return ""
    low, high = metrics["accuracy_ci95"]
    return f", 95% interval {low:.4f}-{high:.4f},"


def _model_section(architecture, settings):
    lines = ["## Model", "", f"Architecture: `{architecture}`."]
    hparams = settings.get("hparams") or {}
    if hparams:
        lines += ["", "| hyperparameter | value |", "|---|---|"]
        lines += [f"| {name} | {_fmt_setting(value)} |" for name, value in hparams.items()]
    parameters = settings.get("parameters")
    if parameters:
        lines += [
            "",
            f"Parameters: {parameters.get('total', 0):,} in total, "
            f"{parameters.get('trainable', 0):,} trainable, "
            f"{parameters.get('non_trainable', 0):,} non-trainable (the frozen embedding).",
        ]
    rows = settings.get("embedding_rows")
    if rows:
        lines += [
            "",
            f"Embedding rows: {rows.get('frozen', 0):,} frozen (GloVe), {rows.get('trainable', 0):,} "
            "trainable (with --train_oov_vectors: the rows GloVe lacks, [UNK] included).",
        ]
    return "\n".join(lines)


def _settings_section(settings):
    shown = {k: v for k, v in settings.items() if k not in ("hparams", "parameters", "architecture", "embedding_rows")}
    if not shown:
        return ""
    lines = ["## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {name} | {_fmt_setting(value)} |" for name, value in shown.items()]
    return "\n".join(lines)


def _data_section(metadata, settings):
    counts = metadata.get("counts", {})
    embedding = metadata.get("embedding", {})
    balance = metadata.get("label_balance", {})
    lines = ["## Data", ""]
    if settings.get("data_dir"):
        lines.append(f"Data directory: `{settings['data_dir']}`.")
        lines.append("")
    lines += ["| split | examples | positive share |", "|---|---|---|"]
    for split in ("train", "val", "test"):
        if split in counts:
            share = balance.get(split, {}).get("positive_fraction")
            lines.append(f"| {split} | {counts[split]:,} | {_fmt(share, percent=True)} |")
    details = [
        ("vocabulary size (incl. padding and [UNK])", metadata.get("vocab_size")),
        ("max_length (tokens per tweet)", metadata.get("max_length")),
        ("embedding", f"{embedding.get('source', '?')}, dim {embedding.get('dim', '?')}"),
        ("GloVe coverage of train tokens", _fmt(embedding.get("coverage_by_token"), percent=True)),
        ("GloVe coverage of vocabulary types", _fmt(embedding.get("coverage_by_type"), percent=True)),
        ("rejected rows", counts.get("rejected")),
        ("neutral rows skipped", counts.get("skipped_neutral")),
        ("standardizer", metadata.get("standardizer")),
        ("standardizer version", metadata.get("standardizer_version")),
    ]
    lines += ["", "| property | value |", "|---|---|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in details if value is not None]
    return "\n".join(lines)


def _curves_section(history, learning_curves, no_plot_reason):
    lines = ["## Learning curves", ""]
    if learning_curves:
        lines.append(f"![Learning curves: accuracy and loss per epoch]({learning_curves})")
    else:
        lines.append(f"No image: {no_plot_reason}.")
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if history.get(k)]
    epochs = max((len(history[k]) for k in keys), default=0)
    if epochs:
        lines += ["", "| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for epoch in range(epochs):
            cells = [_fmt(history[k][epoch]) if epoch < len(history[k]) else "" for k in keys]
            lines.append(f"| {epoch + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _metrics_section(metrics):
    if not metrics:
        return ""
    cm = metrics["confusion_matrix"]
    lines = [
        "## Test metrics",
        "",
        f"Threshold: probability > {metrics.get('threshold', 0.5):g} is positive.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "loss", "positive_rate", "count"):
        if key in metrics:
            value = metrics[key]
            lines.append(f"| {key} | {'undefined (one class)' if value is None else _fmt(value)} |")
    lines += [
        "",
        "Confusion matrix (rows: true label, columns: predicted label):",
        "",
        "| | predicted negative | predicted positive |",
        "|---|---|---|",
        f"| **negative** | {cm['tn']:,} (tn) | {cm['fp']:,} (fp) |",
        f"| **positive** | {cm['fn']:,} (fn) | {cm['tp']:,} (tp) |",
    ]
    return "\n".join(lines)


def _slices_section(slices, metadata):
    """One row per slice, a count and an accuracy column per split (val, test)."""
    if not slices:
        return ""
    splits = list(slices)
    lines = [
        "## Slices",
        "",
        "Accuracy and count of each split's tweets by what they look like; the counts of "
        "a family add up to the split's. " + slices_lib.describe(metadata),
        "",
        "| family | slice | " + " | ".join(f"{split} count | {split} accuracy" for split in splits) + " |",
        "|---|---" + "|---|---" * len(splits) + "|",
    ]
    for family in slices_lib.FAMILIES:
        # Every split has the same buckets in the same order (trainer/slices.py).
        for rows in zip(*(slices[split][family] for split in splits)):
            cells = [f"{_fmt(row['count'])} | {_fmt(row['accuracy'])}" for row in rows]
            lines.append(f"| {family} | {_fmt(rows[0]['slice'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _speed_section(history, metadata, settings):
    wall = settings.get("wall_time_seconds")
    if wall is None:
        return ""
    speed = settings.get("examples_per_second")
    epochs = len(history.get("loss") or [])
    train_count = metadata.get("counts", {}).get("train")
    if speed is None and wall and train_count and epochs:
        speed = train_count * epochs / wall
    lines = ["## Speed", "", f"Wall time: {wall:,.1f} s" + (f" for {epochs} epochs." if epochs else ".")]
    if speed:
        lines.append(f"Throughput: {speed:,.0f} training examples/second.")
    return "\n".join(lines)


def _serving_section(settings):
    export_dir = settings.get("export_dir")
    if not export_dir:
        return ""
    return "\n".join([
        "## Using the model",
        "",
        f"Exported model (SavedModel, raw tweets in, probability out): `{export_dir}`",
        "",
        "```sh",
        f"s140-predict --model_dir={export_dir} \"I love this song\" \"worst day ever\"",
        f"s140-predict --model_dir={export_dir} --format=json --input_file=tweets.txt",
        "```",
        "",
        "Its `serving_default` signature takes `text` (string[batch]) and returns "
        "`probability` (float32[batch]); `tokenize` returns the token ids it scores.",
    ])


def _fmt_setting(value):
    """Settings as written ("0.001", "12.5"), not rounded to a metric's four decimals."""
    if isinstance(value, np.generic):
        value = value.item()
    return f"{value:g}" if isinstance(value, float) else _fmt(value)


def _fmt(value, percent=False):
    if isinstance(value, np.generic):
        value = value.item()  # np.float32 is no float: format it like one
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2%}" if percent else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (dict, list, tuple)):
        return "`" + json.dumps(value, sort_keys=True, default=str) + "`"
    return str(value).replace("|", "\\|")
