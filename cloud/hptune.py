"""Vertex AI hyperparameter tuning (Vizier): the HyperparameterTuningJob of a sweep.

The study spec comes from the table that s140-tune searches (`tuning.search_space`):

- `architecture` is a categorical parameter;
- each architecture's hyperparameters are `conditionalParameterSpecs` under it (active
  only in trials that drew that architecture), with parameter ids
  "<architecture>__<keyword>" ("gap__dense_units"): ids must be unique in a study,
  and several architectures share keywords;
- the learning rate, shared by all, is a top-level double on the log scale
  (UNIT_LOG_SCALE), as `LogUniform` samples it in KerasTuner; choices are discrete.

Each trial is one custom job running the training image with `hptrial` first: Vertex
appends the trial's parameters as --parameter_id=value, and `cloud.hptrial` turns them
into s140-train's flags. The trainer's chief reports val_accuracy after every epoch
(`trainer.hypertune`); every trial writes under its own AIP_MODEL_DIR
(<output_dir>/<trial id>/model), which the trainer follows.
"""

from cloud import arguments
from cloud import entrypoint
from cloud import vertex

CONTAINER_HPTRIAL = entrypoint.HPTRIAL
PARAMETER_SEPARATOR = "__"
METRIC = "val_accuracy"

# --algorithm -> StudySpec.Algorithm; Vizier's default (ALGORITHM_UNSPECIFIED) is its
# Bayesian optimisation. Grid search needs no continuous parameter: the learning rate is one.
ALGORITHMS = {"bayesian": None, "random": "RANDOM_SEARCH"}

# Flags that Vizier sets per trial, or that would send every trial to the same place.
_TRIAL_FLAGS = ("architecture", "learning_rate", "hparams", "job_dir")


def parameter_id(architecture, keyword):
    return f"{architecture}{PARAMETER_SEPARATOR}{keyword}"


def _parameter_spec(pid, spec):
    from tuning import search_space

    if isinstance(spec, search_space.LogUniform):
        return {
            "parameterId": pid,
            "doubleValueSpec": {"minValue": spec.low, "maxValue": spec.high},
            "scaleType": "UNIT_LOG_SCALE",
        }
    if any(isinstance(v, str) for v in spec.values):  # pooling, wide: categories
        return {"parameterId": pid, "categoricalValueSpec": {"values": [str(v) for v in spec.values]}}
    # Vizier wants discrete values as increasing doubles; cloud.hptrial casts them back.
    return {"parameterId": pid, "discreteValueSpec": {"values": sorted(float(v) for v in spec.values)}}


def study_spec(*, architectures, max_length, algorithm="bayesian", median_stopping=False,
               tune_recurrent_dropout=False):
    """The StudySpec (REST JSON) of a sweep over `architectures`.

    Args:
      architectures: names from trainer.models.
      max_length: the data's max_length (drops kernel/pool sizes that do not fit, as
        s140-tune does).
      algorithm: a key of ALGORITHMS.
      median_stopping: stop a trial whose val_accuracy falls below the median of the
        completed trials at the same epoch.
      tune_recurrent_dropout: also search recurrent_dropout (takes LSTM/GRU off cuDNN).

    Raises:
      arguments.SpecError: for an unknown algorithm or architecture.
    """
    from tuning import search_space

    if algorithm not in ALGORITHMS:
        raise arguments.SpecError(f"Expected --algorithm in {sorted(ALGORITHMS)}. Received: {algorithm!r}.")
    try:
        architectures = search_space.check_architectures(architectures)
        conditional = []
        for name in architectures:
            space = search_space.architecture_space(
                name, max_length=max_length, tune_recurrent_dropout=tune_recurrent_dropout
            )
            for keyword, spec in space.items():
                conditional.append({
                    "parameterSpec": _parameter_spec(parameter_id(name, keyword), spec),
                    "parentCategoricalValues": {"values": [name]},
                })
    except ValueError as error:
        raise arguments.SpecError(str(error)) from error
    parameters = [
        {
            "parameterId": search_space.ARCHITECTURE,
            "categoricalValueSpec": {"values": list(architectures)},
            "conditionalParameterSpecs": conditional,
        },
        *(_parameter_spec(name, spec) for name, spec in search_space.COMMON_SPACE.items()),
    ]
    spec = {
        "metrics": [{"metricId": METRIC, "goal": "MAXIMIZE"}],
        "parameters": parameters,
        # Early stopping restores the best epoch's weights: that epoch is the trial's score.
        "measurementSelectionType": "BEST_MEASUREMENT",
    }
    if ALGORITHMS[algorithm]:
        spec["algorithm"] = ALGORITHMS[algorithm]
    if median_stopping:
        spec["medianAutomatedStoppingSpec"] = {"useElapsedDuration": False}
    return spec


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise arguments.SpecError(f"Expected --{name} to be an integer >= {minimum}. Received: {value!r}.")


def tuning_job(cfg, trainer_args, *, study, max_trials, parallel_trials, max_failed_trials=0, workers=1):
    """The HyperparameterTuningJob body (REST JSON).

    Args:
      cfg: a `vertex.JobConfig` (machine, image, base output directory, spot ...).
      trainer_args: s140-train flags every trial shares (--data_dir, --epochs, ...).
      study: a `study_spec`.
      max_trials, parallel_trials: trials in all, and at a time.
      max_failed_trials: failed trials before the job fails; 0 is Vertex's default.
      workers: machines per trial (>1: MultiWorkerMirroredStrategy; the chief reports).

    Raises:
      arguments.SpecError: for counts out of range, flags Vizier sets per trial, or a
        local path where the job needs gs:// (or a /gcs/ FUSE path).
    """
    _check_count("max_trials", max_trials, 1)
    _check_count("parallel_trials", parallel_trials, 1)
    _check_count("max_failed_trials", max_failed_trials, 0)
    if parallel_trials > max_trials:
        raise arguments.SpecError(
            f"Expected --parallel_trials <= --max_trials ({max_trials}). Received: {parallel_trials}."
        )
    from trainer import models

    knobs = sorted({name for a in models.ARCHITECTURES for name in models.hyperparameters(a)})
    given = [name for name in (*_TRIAL_FLAGS, *knobs) if arguments.flag_values(trainer_args, name)]
    given += [arg.split("=")[0].lstrip("-") for arg in trainer_args if PARAMETER_SEPARATOR in arg.split("=")[0]]
    if given:
        raise arguments.SpecError(
            "Expected no " + ", ".join(f"--{name}" for name in given) + " after `--` in hptune: "
            "Vizier chooses the architecture and its hyperparameters per trial, and every trial "
            "writes under its own AIP_MODEL_DIR (<output_dir>/<trial id>/model)."
        )
    custom_job = vertex.training_job(cfg, trainer_args, workers=workers)
    for pool in custom_job["jobSpec"]["workerPoolSpecs"]:
        pool["containerSpec"]["args"][0] = CONTAINER_HPTRIAL
    job = {
        "displayName": cfg.display_name,
        "labels": {**custom_job["labels"], "s140-command": "hptune"},
        "studySpec": study,
        "maxTrialCount": max_trials,
        "parallelTrialCount": parallel_trials,
        "trialJobSpec": custom_job["jobSpec"],
    }
    if max_failed_trials:
        job["maxFailedTrialCount"] = max_failed_trials
    return job

