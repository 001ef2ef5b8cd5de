"""A finished Vertex hyperparameter tuning job -> the report s140-tune writes.

`GetHyperparameterTuningJob` returns every trial with its parameters, measurements and
state. This module maps them onto `tuning.results.TrialRecord` (parameter ids back to
the search space's names, Vizier's states to KerasTuner's) and a `SweepConfig` that
describes the job, then lets `tuning.results` and `tuning.summary` write trials.csv,
best_hyperparameters.json, summary.md and objective_per_trial.png as it does for a
KerasTuner sweep.
"""

import datetime

from cloud import api_clients
from cloud import arguments
from cloud import hptune
from tuning import config as tuning_config
from tuning import results
from tuning import search_space
from tuning import summary

# Trial.State -> the status names tuning.results counts.
_STATUS = {"SUCCEEDED": "COMPLETED", "INFEASIBLE": "FAILED", "ACTIVE": "RUNNING",
           "REQUESTED": "RUNNING", "STOPPING": "RUNNING"}
_TUNER = {None: "bayesian", "ALGORITHM_UNSPECIFIED": "bayesian", "RANDOM_SEARCH": "random",
          "GRID_SEARCH": "random"}


def get_job(name, *, credentials=None, endpoint=None):
    """The HyperparameterTuningJob `name` (projects/P/locations/R/hyperparameterTuningJobs/ID) as a dict."""
    try:
        region = api_clients.region_of(name, "--job")
    except ValueError as error:
        raise arguments.SpecError(str(error)) from error
    service = api_clients.client("JobServiceClient", region, credentials=credentials, endpoint=endpoint)
    return api_clients.to_dict(service.get_hyperparameter_tuning_job(name=name))


class VertexTrialRecord(results.TrialRecord):
    @property
    def number(self):  # Vizier numbers trials from 1 (KerasTuner from 0)
        return int(self.trial_id) if self.trial_id.isdigit() else None


def _values(parameters):
    values = {}
    for parameter in parameters:
        architecture, _, keyword = parameter["parameterId"].partition(hptune.PARAMETER_SEPARATOR)
        key = search_space.hp_name(architecture, keyword) if keyword else architecture
        values[key] = parameter.get("value")
    return values


def _metric(measurement):
    for metric in (measurement or {}).get("metrics", []):
        if metric.get("metricId") == hptune.METRIC:
            return float(metric["value"])
    return None


def _time(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(microsecond=0)


def trial_records(job):
    """`tuning.results.TrialRecord`s of the job's trials, by trial id."""
    records = []
    for trial in job.get("trials", []):
        final = trial.get("finalMeasurement")
        score = _metric(final)
        steps = [int(m.get("stepCount") or 0) for m in trial.get("measurements", [])]
        started, ended = _time(trial.get("startTime")), _time(trial.get("endTime"))
        status = _STATUS.get(trial.get("state"), "RUNNING")
        if status == "COMPLETED" and score is None:
            status = "FAILED"  # succeeded without reporting val_accuracy: nothing to compare
        records.append(VertexTrialRecord(
            trial_id=str(trial["id"]),
            status=status,
            values=_values(trial.get("parameters", [])),
            score=score,
            best_step=int(final["stepCount"]) - 1 if final and final.get("stepCount") else None,
            message=trial.get("infeasibleReason"),
            info={
                "epochs_run": max(steps) if steps else None,
                "wall_seconds": (ended - started).total_seconds() if started and ended else None,
                "started": started.strftime("%Y-%m-%dT%H:%M:%S%z") if started else None,
                "finished": ended.strftime("%Y-%m-%dT%H:%M:%S%z") if ended else None,
                "custom_job": trial.get("customJob"),
            },
        ))
    return sorted(records, key=lambda r: (not r.trial_id.isdigit(), int(r.trial_id) if r.trial_id.isdigit() else 0))


def sweep_config(job, output_dir):
    """A `tuning.config.SweepConfig` describing the job (for the report's headings)."""
    study = job["studySpec"]
    (architecture,) = [p for p in study["parameters"] if p["parameterId"] == search_space.ARCHITECTURE]
    args = job["trialJobSpec"]["workerPoolSpecs"][0]["containerSpec"].get("args", [])

    def last(name, default):
        values = arguments.flag_values(args, name)
        return type(default)(values[-1]) if values else default

    defaults = tuning_config.SweepConfig(data_dir="-", tuner_dir="-")
    return tuning_config.SweepConfig(
        data_dir=last("data_dir", "unknown"),
        tuner_dir=output_dir,
        tuner=_TUNER.get(study.get("algorithm")),
        architectures=tuple(architecture["categoricalValueSpec"]["values"]),
        max_trials=int(job["maxTrialCount"]),
        max_epochs=last("epochs", 10),
        objective=hptune.METRIC,
        epochs_best=0,  # Vertex trains no best model after the sweep
        batch_size=last("batch_size", defaults.batch_size),
        early_stopping_patience=last("early_stopping_patience", defaults.early_stopping_patience),
        seed=last("seed", defaults.seed),
    )


def write_report(job, output_dir):
    """Writes trials.csv, best_hyperparameters.json, summary.md and the plot into
    `output_dir` (local or gs://); returns {name: path or None}."""
    cfg = sweep_config(job, output_dir)
    records = trial_records(job)
    best = results.best_trial(records, cfg.objective_direction)
    written = results.write_tables(cfg, records, best)
    written.update(summary.write_summary(cfg, records, best, planned=cfg.max_trials))
    return written
