"""summary.md: one page on a sweep (budget, time, workers, the best trial and how to
reproduce it, the top trials, each architecture's scores, failures), read back from the
trial records of `tuning.results`."""

import statistics

from common import files
from tuning import best as best_lib
from tuning import config as config_lib
from tuning import results

_FAILED = ("FAILED", "INVALID")


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


def _overview(cfg, records, *, planned, epoch_budget):
    completed = [r for r in records if r.status == results.COMPLETED and results.finite_score(r.score)]
    failed = [r for r in records if r.status in _FAILED]
    running = [r for r in records if r.status not in (results.COMPLETED, *_FAILED)]
    epochs = sum(int(r.info.get("epochs_run") or 0) for r in records)
    trial_seconds = sum(float(r.info.get("wall_seconds") or 0.0) for r in records)
    span = _span_seconds(records)
    workers = sorted({r.info.get("tuner_id") for r in records if r.info.get("tuner_id")})
    return [
        "# Hyperparameter sweep",
        "",
        f"`{cfg.tuner_dir}` — {cfg.tuner} search over {', '.join(cfg.architectures)}, "
        f"objective **{cfg.objective}** ({cfg.objective_direction}), on `{cfg.data_dir}`.",
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


def _best_section(cfg, best, best_metrics):
    if best is None:
        return ["No trial completed, so there is no best configuration.", ""]
    hp = best_lib.best_hyperparameters(cfg, best)
    lines = [
        "## Best trial",
        "",
        f"Trial {best.trial_id}: **{best.architecture}**, {cfg.objective} **{best.score:.4f}** "
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
    return lines


def _ranking(cfg, records):
    objective, direction = cfg.objective, cfg.objective_direction
    completed = [r for r in records if r.status == results.COMPLETED and results.finite_score(r.score)]
    if not completed:
        return []
    sign = -1.0 if direction == "max" else 1.0
    top = sorted(completed, key=lambda r: (sign * r.score, results.trial_sort_key(r.trial_id)))[:results.TOP_TRIALS]
    lines = [
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
    return lines + [""]


def _failed_section(records):
    failed = [r for r in records if r.status in _FAILED]
    if not failed:
        return []
    lines = ["## Failed trials", "", "| trial | architecture | error |", "|---|---|---|"]
    for r in failed:
        message = (r.message or "").strip().splitlines()
        lines.append(f"| {r.trial_id} | {r.architecture} | {(message[-1] if message else '—').replace('|', '/')} |")
    return lines + [""]


def render_summary(cfg, records, best, *, best_metrics=None, planned=None, epoch_budget=None, plot=None, no_plot_reason=None):
    """summary.md as a string."""
    lines = _overview(cfg, records, planned=planned, epoch_budget=epoch_budget)
    lines += _best_section(cfg, best, best_metrics)
    lines += _ranking(cfg, records)
    lines += ["## Objective per trial", ""]
    if plot:
        lines += [f"![{cfg.objective} per trial]({plot})", ""]
    else:
        lines += [f"No plot: {no_plot_reason}.", ""]
    lines += _failed_section(records)
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
    png, why_not = results.objective_plot_png(records, cfg.objective, cfg.objective_direction)
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
