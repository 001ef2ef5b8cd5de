"""The sweep's records and tables: trials.csv, best_hyperparameters.json and the plot
(summary.md is `tuning.summary`'s).

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
import typing

from common import files
from common.quiet_tf import tf
from trainer import charts
from tuning import best as best_lib
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


def trial_sort_key(trial_id):
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
    return sorted(records, key=lambda r: trial_sort_key(r.trial_id))


def best_trial(records, direction):
    """The completed trial with the best score (the earliest one on a tie), or None."""
    scored = [r for r in records if r.status == COMPLETED and finite_score(r.score)]
    if not scored:
        return None
    sign = -1.0 if direction == "max" else 1.0
    return min(scored, key=lambda r: (sign * r.score, trial_sort_key(r.trial_id)))


def finite_score(value):
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
        files.write_json(best_path, best_lib.best_hyperparameters(cfg, best))
    return {"trials_csv": trials_path, "best_hyperparameters": best_path}


# --- The plot.


def objective_plot_png(records, objective, direction):
    """(PNG bytes, None), or (None, why not): objective per trial, one colour per
    architecture, with the best-so-far line."""
    points = [r for r in records if r.status == COMPLETED and finite_score(r.score) and r.number]
    if not points:
        return None, "no trial completed"
    figure = charts.new_figure(figsize=(8, 4.5), dpi=100)
    if figure is None:
        return None, charts.MISSING
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
    return charts.png(figure), None
