"""One sweep: oracle + trials (any role), then the chief's report and best model.

Every trial trains the way `s140-train` does, through the trainer's own set-up and fit
(`trainer.run`; see `tuning.tuners`). At the end the chief writes
`best_hyperparameters.json`, `trials.csv`, `summary.md` and `objective_per_trial.png`
(`tuning.results`) and retrains the best configuration with `trainer.train.train` into
`<tuner_dir>/best/` (`tuning.best`).

Resuming is KerasTuner's `overwrite=False`: finished trials are reloaded from
`<tuner_dir>/search/`, a trial that was running when the process died runs again under
the same id, and a finished sweep runs no new trial. `sweep.json` records the settings
of the first run; a resume with settings that would change the trials fails.
"""

import contextlib
import dataclasses
import json
import os
import time
import typing

from absl import logging

from common import dir_lock
from common import errors
from common import files
from common.quiet_tf import tf
from trainer import run as run_lib
from tuning import best as best_lib
from tuning import budget
from tuning import config as config_lib
from tuning import distributed
from tuning import keras_tuner_adapter as kt
from tuning import processes
from tuning import results as results_lib
from tuning import search_space
from tuning import summary as summary_lib
from tuning import tuners

TRIAL_INFO_FILE = tuners.TRIAL_INFO_FILE
OracleDied = distributed.OracleDied


@dataclasses.dataclass(frozen=True)
class SweepResult:
    chief: bool
    trial_ids: typing.Tuple[str, ...]  # trials this process ran
    outputs: typing.Optional[dict] = None  # chief: paths of the written files
    best: typing.Optional[dict] = None  # chief: best_hyperparameters.json content
    best_metrics: typing.Optional[dict] = None  # chief: best/metrics.json (None if not retrained)


def _check_sweep_file(cfg, *, chief):
    """Records the settings of a new sweep (chief), or checks a resume against them."""
    path = cfg.path(config_lib.SWEEP_FILE)
    if tf.io.gfile.exists(path):
        message = config_lib.identity_mismatch(files.read_json(path), cfg)
        if message:
            raise errors.SettingError(message)
    elif chief:
        tf.io.gfile.makedirs(cfg.tuner_dir)
        files.write_json(path, json.loads(config_lib.dumps(cfg)))


def _search(cfg, run, worker_env, oracle_process):
    """Runs trials in this process until the oracle stops; returns their ids."""
    distributed_worker = bool(worker_env)
    max_length = run.contract.max_length
    with run_lib.dtype_policy(run):
        # KerasTuner reads its variables when the tuner is made and again in search().
        with distributed.kerastuner_environment(worker_env):
            tuner = tuners.make_tuner(
                cfg, run, max_length=max_length, distributed_worker=distributed_worker,
                planned=budget.planned_trials(cfg),
            )
            heartbeat = contextlib.nullcontext()
            if distributed_worker:
                processes.authenticate(tuner, worker_env)
                kt.wait_when_idle(tuner.oracle)
                heartbeat = processes.worker_heartbeat(worker_env, cfg.worker_timeout_seconds)
            with heartbeat, processes.watch(oracle_process):
                # The data is the run's (TrialHyperModel.fit): only epochs and callbacks.
                tuner.search(epochs=cfg.max_epochs, callbacks=tuners.trial_callbacks(cfg, run))
    return tuple(tuner.trial_ids)


def run_sweep(cfg, *, envs=None, environ=None):
    """Runs this process's part of a sweep.

    Args:
      cfg: a `config.SweepConfig`.
      envs: `distributed.keras_tuner_env(...)` (or `local_keras_tuner_env`) of this
        replica: {"worker": env} and, on the chief, {"oracle": env}. Default: one process.
      environ: a mapping like os.environ (TF_CONFIG is ignored for the trials' strategy:
        it describes the tuning job, whose workers train independently).

    Returns:
      A `SweepResult`; on the chief, with the written outputs and the best model's metrics.

    Raises:
      schema.ContractError, strategy.StrategyError, ValueError: bad data or settings.
      OracleDied: the chief's oracle process ended with an error.
      RuntimeError: the oracle stopped the sweep (e.g. 3 consecutive failed trials).
    """
    started = time.perf_counter()
    environ = os.environ if environ is None else environ
    envs = envs or {distributed.WORKER: {}}
    chief = distributed.is_chief(envs)
    # The chief writes the tuner dir's own files; workers write only their trials'.
    with dir_lock.holding(cfg.tuner_dir, command="s140-tune") if chief else contextlib.nullcontext():
        return _sweep(cfg, envs, environ, chief, started)


def _sweep(cfg, envs, environ, chief, started):
    _check_sweep_file(cfg, chief=chief)
    # The trainer's set-up: each trial of this process trains in this run.
    local = {key: value for key, value in environ.items() if key != "TF_CONFIG"}
    run = run_lib.set_up(cfg, environ=local)
    # Fails now, naming the architecture, if a convolution cannot fit max_length.
    search_space.SentimentHyperModel(run.contract, architectures=cfg.architectures)
    logging.info(
        "Sweep %s: %s over %s; %s planned trial(s), at most %d epoch(s) each; %s.",
        cfg.tuner_dir, cfg.tuner, list(cfg.architectures), budget.planned_trials(cfg), cfg.max_epochs,
        "chief" if chief else f"worker {envs[distributed.WORKER].get(distributed.TUNER_ID)}",
    )

    oracle_process = None
    if distributed.ORACLE in envs:
        oracle_process = processes.start_oracle_process(cfg, envs[distributed.ORACLE], run.contract.max_length)
    try:
        trial_ids = _search(cfg, run, envs[distributed.WORKER], oracle_process)
        if oracle_process is not None:
            processes.join_oracle_process(oracle_process)
    finally:
        processes.stop_oracle_process(oracle_process)
    logging.info("This process ran %d trial(s) in %.0f s.", len(trial_ids), time.perf_counter() - started)
    if not chief:
        return SweepResult(chief=False, trial_ids=trial_ids)
    return _finish(cfg, trial_ids, environ)


def _finish(cfg, trial_ids, environ):
    """The chief's report of the sweep, with the best configuration retrained."""
    records = results_lib.read_trials(cfg.project_dir, TRIAL_INFO_FILE)
    best = results_lib.best_trial(records, cfg.objective_direction)
    outputs = results_lib.write_tables(cfg, records, best)
    best_metrics = None
    if best is not None and cfg.epochs_best:
        best_metrics = best_lib.retrain_best(cfg, best, environ=environ)
    elif best is None:
        logging.warning("No trial completed: nothing to retrain.")
    outputs.update(
        summary_lib.write_summary(
            cfg,
            records,
            best,
            best_metrics=best_metrics,
            planned=budget.planned_trials(cfg),
            epoch_budget=budget.epoch_budget(cfg),
        )
    )
    best_json = best_lib.best_hyperparameters(cfg, best) if best is not None else None
    return SweepResult(
        chief=True, trial_ids=trial_ids, outputs=outputs, best=best_json, best_metrics=best_metrics
    )
