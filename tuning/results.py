"""The sweep's report: trials.csv, best_hyperparameters.json, summary.md and the plot.

Everything is read back from the files under `<tuner_dir>/search/` (KerasTuner's
`trial_*/trial.json`, written by the oracle, and the sweep's `trial_*/s140_trial.json`,
written by whichever worker ran the trial), so the report is the same whether the sweep
ran in one process or on many machines, and after any number of resumes. Files go
through `tf.io.gfile` (gs:// works); matplotlib is imported only to draw the plot, with
the Agg canvas and no pyplot, and its absence only costs the plot.
"""

import csv
import dataclasses
import io
import math
import posixpath
import statistics
import typing

from preprocessing._tf import tf
from trainer import files
from tuning import config as config_lib
from tuning import search_space

COMPLETED = "COMPLETED"
TOP_TRIALS = 10

# Fixed columns of trials.csv; the hyperparameters (every one the trials hold) go
# between ARCHITECTURE and the objective.
_HEAD = ("trial_id", "status", search_space.ARCHITECTURE)
_TAIL = (
    "best_epoch",
    "epochs_run",
    "wall_seconds",
    "tuner_id",
    "attempts",  # >1: the trial was started again (after a kill, or its worker died)
    "started",
    "finished",
    "message",
)


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    trial_id: str
    status: str
    values: typing.Mapping[str, typing.Any]  # KerasTuner's active values
    score: typing.Optional[float]
    best_step: typing.Optional[float]  # 0-based epoch of the score within the trial's fit
    message: typing.Optional[str]
    info: typing.Mapping[str, typing.Any]  # s140_trial.json (empty when missing)

    @property
    def number(self):
        """1-based trial number (KerasTuner numbers trial ids from 0)."""
        try:
            return int(self.trial_id) + 1
        except ValueError:
            return None

    @property
    def architecture(self):
        return self.values.get(search_space.ARCHITECTURE)

    @property
    def config(self):
        """(architecture, learning_rate, hparams) as `trainer.config.TrainConfig` takes them."""
        return search_space.trial_config(self.values)

    @property
    def learning_rate(self):
        return self.config[1]

    @property
    def hparams(self):
        return self.config[2]

    @property
    def best_epoch(self):
        """1-based epoch of the trial's best objective, counting Hyperband's earlier rounds."""
        if self.best_step is None or self.score is None:
            return None
        return int(self.values.get("tuner/initial_epoch", 0)) + int(round(self.best_step)) + 1


def _sort_key(trial_id):
    return (0, int(trial_id), "") if str(trial_id).isdigit() else (1, 0, str(trial_id))


def read_trials(project_dir, info_file):
    """Every trial of the sweep in `project_dir` (KerasTuner's project), by trial id."""
    records = []
    for path in tf.io.gfile.glob(posixpath.join(project_dir, "trial_*", "trial.json")):
        state = files.read_json(path)
        info_path = posixpath.join(posixpath.dirname(path), info_file)
        info = files.read_json(info_path) if tf.io.gfile.exists(info_path) else {}
        records.append(
            TrialRecord(
                trial_id=str(state["trial_id"]),
                status=state["status"],
                values=dict(state["hyperparameters"].get("values") or {}),
                score=state.get("score"),
                best_step=state.get("best_step"),
                message=state.get("message") or info.get("message"),
                info=info,
            )
        )
    return sorted(records, key=lambda r: _sort_key(r.trial_id))


def best_trial(records, direction):
    """The completed trial with the best score (the earliest one on a tie), or None."""
    scored = [r for r in records if r.status == COMPLETED and _finite(r.score)]
    if not scored:
        return None
    sign = -1.0 if direction == "max" else 1.0
    return min(scored, key=lambda r: (sign * r.score, _sort_key(r.trial_id)))


def _finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


# --- trials.csv and best_hyperparameters.json.


def hyperparameter_columns(records):
    """Hyperparameter names in a stable, readable order: learning_rate, then each
    architecture's knobs ("gap/dense_units") in the search-space table's order, then
    anything else (Hyperband's tuner/* bookkeeping)."""
    seen = {key for r in records for key in r.values} - {search_space.ARCHITECTURE}
    ordered = [search_space.LEARNING_RATE]
    for architecture, space in search_space.SEARCH_SPACE.items():
        keywords = list(space) + [search_space.RECURRENT_DROPOUT]
        ordered.extend(search_space.hp_name(architecture, k) for k in keywords)
    columns = [name for name in ordered if name in seen]
    return columns + sorted(seen - set(columns))


def trial_rows(records, objective):
    """(header, rows) of trials.csv: one row per trial."""
    hp_columns = hyperparameter_columns(records)
    header = list(_HEAD) + hp_columns + [objective] + list(_TAIL)
    rows = []
    for r in records:
        row = {"trial_id": r.trial_id, "status": r.status, search_space.ARCHITECTURE: r.architecture}
        row.update({name: r.values.get(name) for name in hp_columns})
        message = (r.message or "").strip().splitlines()
        row.update(
            {
                objective: r.score,
                "best_epoch": r.best_epoch,
                "epochs_run": r.info.get("epochs_run"),
                "wall_seconds": r.info.get("wall_seconds"),
                "tuner_id": r.info.get("tuner_id"),
                "attempts": r.info.get("attempts"),
                "started": r.info.get("started"),
                "finished": r.info.get("finished"),
                "message": message[-1] if message else None,
            }
        )
        rows.append(row)
    return header, rows


def best_hyperparameters(cfg, best):
    """The content of best_hyperparameters.json for the trial `best`."""
    architecture, learning_rate, hparams = best.config
    flags = [
        f"--data_dir={cfg.data_dir}",
        f"--job_dir={cfg.path(config_lib.BEST_DIR)}",
        f"--architecture={architecture}",
        f"--learning_rate={learning_rate!r}",
        f"--epochs={cfg.epochs_best or cfg.max_epochs}",
        f"--batch_size={cfg.batch_size}",
    ]
    if hparams:
        flags.append("--hparams=" + ",".join(f"{k}={v!r}" for k, v in hparams.items()))
    return {
        "trial_id": best.trial_id,
        "objective": {"name": cfg.objective, "direction": cfg.objective_direction, "value": best.score},
        search_space.ARCHITECTURE: architecture,
        search_space.LEARNING_RATE: learning_rate,
        "hparams": hparams,
        "values": dict(best.values),  # as KerasTuner holds them, incl. Hyperband's tuner/*
        "best_epoch": best.best_epoch,
        "epochs_run": best.info.get("epochs_run"),
        "s140_train_command": "s140-train " + " ".join(flags),
    }


def _csv_text(header, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # repr of floats round-trips exactly; None is an empty cell.
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def write_tables(cfg, records, best):
    """Writes trials.csv and best_hyperparameters.json (when a trial completed).

    Returns:
      {"trials_csv": path, "best_hyperparameters": path or None}.
    """
    header, rows = trial_rows(records, cfg.objective)
    trials_path = cfg.path(config_lib.TRIALS_FILE)
    files.write_atomically(trials_path, _csv_text(header, rows))
    best_path = None
    if best is not None:
        best_path = cfg.path(config_lib.BEST_HYPERPARAMETERS_FILE)
        files.write_json(best_path, best_hyperparameters(cfg, best))
    return {"trials_csv": trials_path, "best_hyperparameters": best_path}


# --- The plot.


def objective_plot_png(records, objective, direction):
    """(PNG bytes, None), or (None, why not): objective per trial, one colour per
    architecture, with the best-so-far line."""
    points = [r for r in records if r.status == COMPLETED and _finite(r.score) and r.number]
    if not points:
        return None, "no trial completed"
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None, "matplotlib is not installed (`pip install s140-trainer[plots]`)"
    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for architecture in search_space.SEARCH_SPACE:
        mine = [r for r in points if r.architecture == architecture]
        if mine:
            axes.scatter([r.number for r in mine], [r.score for r in mine], label=architecture, s=28)
    best, xs, ys = None, [], []
    for r in sorted(points, key=lambda r: r.number):
        if best is None or (r.score > best if direction == "max" else r.score < best):
            best = r.score
        xs.append(r.number)
        ys.append(best)
    axes.step(xs, ys, where="post", color="black", linewidth=1, label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(objective)
    axes.set_title(f"{objective} per trial")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue(), None


# --- summary.md.


def _fmt(value, digits=4):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _config_text(record):
    architecture, learning_rate, hparams = record.config
    knobs = ", ".join(f"{k}={v}" for k, v in hparams.items())
    return f"learning_rate={learning_rate:.3g}" + (f", {knobs}" if knobs else "")


def _span_seconds(records):
    """Seconds from the first trial's start to the last one's end (across resumes)."""
    import datetime

    def parse(text):
        try:
            return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
        except (TypeError, ValueError):
            return None

    starts = [parse(r.info.get("started")) for r in records]
    ends = [parse(r.info.get("finished")) for r in records]
    starts, ends = [s for s in starts if s], [e for e in ends if e]
    if not starts or not ends:
        return None
    return max((max(ends) - min(starts)).total_seconds(), 1.0)


def render_summary(cfg, records, best, *, best_metrics=None, planned=None, epoch_budget=None, plot=None, no_plot_reason=None):
    """summary.md as a string."""
    objective, direction = cfg.objective, cfg.objective_direction
    completed = [r for r in records if r.status == COMPLETED and _finite(r.score)]
    failed = [r for r in records if r.status in ("FAILED", "INVALID")]
    running = [r for r in records if r.status not in (COMPLETED, "FAILED", "INVALID")]
    epochs = sum(int(r.info.get("epochs_run") or 0) for r in records)
    trial_seconds = sum(float(r.info.get("wall_seconds") or 0.0) for r in records)
    span = _span_seconds(records)
    workers = sorted({r.info.get("tuner_id") for r in records if r.info.get("tuner_id")})
    lines = [
        "# Hyperparameter sweep",
        "",
        f"`{cfg.tuner_dir}` — {cfg.tuner} search over {', '.join(cfg.architectures)}, "
        f"objective **{objective}** ({direction}), on `{cfg.data_dir}`.",
        "",
        "| | |",
        "|---|---|",
        f"| trials | {len(completed)} completed, {len(failed)} failed"
        + (f", {len(running)} unfinished" if running else "")
        + (f" (planned: {planned})" if planned else "")
        + " |",
        "| budget | " + (
            f"Hyperband, max_epochs {cfg.max_epochs}, factor {cfg.hyperband_factor}"
            if cfg.tuner == "hyperband"
            else f"max_trials {cfg.max_trials}, max_epochs {cfg.max_epochs}"
        ) + (f"; at most {epoch_budget} epochs in all" if epoch_budget else "")
        + f"; {cfg.executions_per_trial} execution(s) per trial |",
        f"| epochs run | {epochs} (early stopping: patience {cfg.early_stopping_patience} on val_loss) |",
        f"| time | {trial_seconds:.0f} s in trials"
        + (f"; {span:.0f} s from first start to last end; {3600.0 * len(completed) / span:.1f} completed trials/hour" if span else "")
        + " |",
        f"| workers | {len(workers)}: {', '.join(workers) if workers else '—'} |",
        f"| batch | {cfg.batch_size} per replica, cpu_replicas {cfg.cpu_replicas}, seed {cfg.seed} |",
        "",
    ]
    if best is None:
        lines += ["No trial completed, so there is no best configuration.", ""]
    else:
        hp = best_hyperparameters(cfg, best)
        lines += [
            "## Best trial",
            "",
            f"Trial {best.trial_id}: **{best.architecture}**, {objective} **{best.score:.4f}** "
            f"at epoch {best.best_epoch}; {_config_text(best)}.",
            "",
            f"Reproduce with: `{hp['s140_train_command']}`",
            "",
        ]
        if best_metrics:
            where = best_metrics.get("evaluated_on", "test")
            auc = best_metrics.get("roc_auc")
            lines += [
                f"Retrained for up to {cfg.epochs_best} epochs ({best_metrics.get('epochs_run')} run) "
                f"by s140-train's code into `{config_lib.BEST_DIR}/`: {where} accuracy "
                f"**{best_metrics.get('accuracy', float('nan')):.4f}**, F1 "
                f"{best_metrics.get('f1', float('nan')):.4f}"
                + (f", ROC AUC {auc:.4f}" if isinstance(auc, float) else "")
                + f" on {best_metrics.get('count')} examples. The {where} split played no part "
                "in choosing: trials were scored on the validation split. Serving model: "
                f"`{config_lib.BEST_DIR}/model/` (`s140-predict --model_dir=...`); report: "
                f"[{config_lib.BEST_DIR}/report.md]({config_lib.BEST_DIR}/report.md).",
                "",
            ]
        elif cfg.epochs_best == 0:
            lines += ["Not retrained (--epochs_best=0).", ""]
    if completed:
        sign = -1.0 if direction == "max" else 1.0
        top = sorted(completed, key=lambda r: (sign * r.score, _sort_key(r.trial_id)))[:TOP_TRIALS]
        lines += [
            f"## Top {len(top)} trials",
            "",
            f"| trial | architecture | {objective} | best epoch | epochs run | seconds | configuration |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in top:
            lines.append(
                f"| {r.trial_id} | {r.architecture} | {r.score:.4f} | {_fmt(r.best_epoch)} | "
                f"{_fmt(r.info.get('epochs_run'))} | {_fmt(r.info.get('wall_seconds'), 3)} | {_config_text(r)} |"
            )
        lines += ["", "## Per architecture", "", f"| architecture | trials | best {objective} | median |", "|---|---|---|---|"]
        for architecture in cfg.architectures:
            scores = [r.score for r in completed if r.architecture == architecture]
            if scores:
                best_score = max(scores) if direction == "max" else min(scores)
                lines.append(f"| {architecture} | {len(scores)} | {best_score:.4f} | {statistics.median(scores):.4f} |")
            else:
                lines.append(f"| {architecture} | 0 | — | — |")
        lines.append("")
    lines += ["## Objective per trial", ""]
    if plot:
        lines += [f"![{objective} per trial]({plot})", ""]
    else:
        lines += [f"No plot: {no_plot_reason}.", ""]
    if failed:
        lines += ["## Failed trials", "", "| trial | architecture | error |", "|---|---|---|"]
        for r in failed:
            message = (r.message or "").strip().splitlines()
            lines.append(f"| {r.trial_id} | {r.architecture} | {(message[-1] if message else '—').replace('|', '/')} |")
        lines.append("")
    lines += [
        "Files: `trials.csv` (one row per trial), `best_hyperparameters.json`, "
        f"`{config_lib.PROJECT_NAME}/` (KerasTuner's state; running the same command again "
        "resumes the sweep).",
        "",
    ]
    return "\n".join(lines)


def write_summary(cfg, records, best, *, best_metrics=None, planned=None, epoch_budget=None):
    """Writes objective_per_trial.png (when possible) and summary.md.

    Returns:
      {"summary": path, "plot": path or None}.
    """
    png, why_not = objective_plot_png(records, cfg.objective, cfg.objective_direction)
    plot_path = None
    if png is not None:
        plot_path = cfg.path(config_lib.PLOT_FILE)
        files.write_atomically(plot_path, png)
    summary_path = cfg.path(config_lib.SUMMARY_FILE)
    files.write_atomically(
        summary_path,
        render_summary(
            cfg,
            records,
            best,
            best_metrics=best_metrics,
            planned=planned,
            epoch_budget=epoch_budget,
            plot=config_lib.PLOT_FILE if png is not None else None,
            no_plot_reason=why_not,
        ),
    )
    return {"summary": summary_path, "plot": plot_path}
