"""Building a sweep's oracle and tuner, and how a trial trains.

A trial trains exactly as `s140-train` does, through the trainer's own code: the
sweep's `trainer.run.Run` (strategy plan and strategy, global batch, dtype policy,
input feeds), `trainer.run.build_model` and `trainer.run.fit`, with the callbacks of a
run that apply to a trial (`trainer.callbacks.make_trial_callbacks`). KerasTuner adds
its own (scoring, best-epoch checkpoint, TensorBoard HParams). The tuner records who ran
each trial, how long it took and what the model was built with (`s140_trial.json`).
"""

import json
import os
import socket
import time

import keras
import keras_tuner
from absl import logging

from common import errors
from common import files
from common.quiet_tf import tf
from trainer import callbacks as callbacks_lib
from trainer import run as run_lib
from tuning import config as config_lib
from tuning import keras_tuner_adapter as kt
from tuning import search_space

TRIAL_INFO_FILE = "s140_trial.json"  # per trial dir: who ran it, how long, how many epochs


# --- Oracle.


def make_oracle(cfg, max_length):
    """A fresh KerasTuner oracle holding the complete search space."""
    if cfg.tuner == "bayesian":
        import importlib.util

        missing = [m for m in ("sklearn", "scipy") if importlib.util.find_spec(m) is None]
        if missing:
            raise errors.SettingError(
                f"Expected scikit-learn and scipy for --tuner=bayesian (KerasTuner's Gaussian "
                f"process). Received: {missing} not installed. `pip install scikit-learn`, "
                "or use --tuner=hyperband or random."
            )
    common = dict(
        objective=keras_tuner.Objective(cfg.objective, cfg.objective_direction),
        hyperparameters=search_space.declared_space(
            architectures=cfg.architectures,
            max_length=max_length,
            tune_recurrent_dropout=cfg.tune_recurrent_dropout,
        ),
        seed=cfg.seed,
    )
    if cfg.tuner == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(
            max_epochs=cfg.max_epochs, factor=cfg.hyperband_factor, hyperband_iterations=1, **common
        )
    if cfg.tuner == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=cfg.max_trials, **common)
    return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=cfg.max_trials, **common)


def load_oracle(cfg, max_length):
    """`make_oracle`, reloaded from `<tuner_dir>/search/oracle.json` when it exists
    (KerasTuner's overwrite=False): the oracle of the chief, or of a one-process sweep."""
    oracle = make_oracle(cfg, max_length)
    kt.set_project_dir(oracle, cfg.tuner_dir, config_lib.PROJECT_NAME)
    if tf.io.gfile.exists(kt.oracle_file(oracle)):
        oracle.reload()
        # The budget is the one of this run: KerasTuner keeps max_trials out of the
        # saved state, so a larger --max_trials extends a finished sweep.
        logging.info(
            "Resuming the sweep in %s: %d trial(s) on record.", cfg.tuner_dir, len(oracle.trials)
        )
    oracle.verbose = 0  # progress is logged by the tuners and the oracle server
    return oracle


# --- Tuner.


class _SweepTuner(kt.Tuner):
    """A Tuner that logs progress, records who ran each trial and for how long, and
    declares the search space without building models."""

    def __init__(self, oracle, *, sweep, planned, **kwargs):
        super().__init__(oracle, **kwargs)
        self._sweep = sweep
        self._planned = planned
        self._started = time.monotonic()
        self._trials_run = 0
        self._trial_clock = None
        self._trial_started = None
        self._epochs_run = 0
        self._attempts = 1
        self.trial_ids = []  # trials run by this process, in order

    def tensorboard_available(self):
        return callbacks_lib.tensorboard_available()

    def _number(self, trial):
        try:
            return int(trial.trial_id) + 1
        except ValueError:
            return trial.trial_id

    def _info_path(self, trial):
        return os.path.join(self.get_trial_dir(trial.trial_id), TRIAL_INFO_FILE)

    def _write_info(self, trial, **fields):
        info = {
            "trial_id": trial.trial_id,
            "tuner_id": self.tuner_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self._trial_started,
            "attempts": self._attempts,
            **fields,
        }
        files.write_json(self._info_path(trial), info)

    def _previous_attempts(self, trial):
        """Runs of this trial that started before (a resume or a dead worker's run)."""
        path = self._info_path(trial)
        if not tf.io.gfile.exists(path):
            return 0
        with tf.io.gfile.GFile(path, "r") as f:
            return int(json.loads(f.read()).get("attempts") or 1)

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        number = self._number(trial)
        # Reproducible per trial, and different between trials.
        keras.utils.set_random_seed(self._sweep.seed + (number if isinstance(number, int) else 0))
        self._trial_clock = time.monotonic()
        self._trial_started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._epochs_run = 0
        self._attempts = self._previous_attempts(trial) + 1
        self.hypermodel.last_built = None
        self._write_info(trial, status="RUNNING")
        values = trial.hyperparameters.values
        architecture, learning_rate, hparams = search_space.trial_config(values)
        continued = (
            f"; epochs {values['tuner/initial_epoch']}->{values['tuner/epochs']}"
            + (f" from trial {values['tuner/trial_id']}" if "tuner/trial_id" in values else "")
            if "tuner/epochs" in values
            else ""
        )
        logging.info(
            "Trial %s of %s (id %s) on %s: %s, learning_rate %.3g, %s%s.",
            number, self._planned, trial.trial_id, self.tuner_id, architecture, learning_rate,
            ", ".join(f"{k} {v}" for k, v in hparams.items()) or "defaults", continued,
        )

    def on_epoch_end(self, trial, model, epoch, logs=None):
        self._epochs_run += 1

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._trial_clock
        message = (trial.message or "").strip().splitlines()
        self._write_info(
            trial,
            status=trial.status,
            # The error's last line: the oracle's copy loses the message over gRPC.
            message=message[-1] if message else None,
            # What the model was really built with, to check against the oracle's record.
            built=self.hypermodel.last_built,
            epochs_run=self._epochs_run,
            wall_seconds=seconds,
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        super().on_trial_end(trial)  # reports to the oracle, which scores the trial
        self._trials_run += 1
        self.trial_ids.append(trial.trial_id)
        scored = self.oracle.get_trial(trial.trial_id)
        best = self.oracle.get_best_trials(1)
        best = best[0] if best and best[0].score is not None else None
        elapsed = time.monotonic() - self._started
        logging.info(
            "Trial %s of %s (id %s) %s in %.1f s, %d epoch(s): %s %s. Best so far: %s. "
            "This worker: %d trial(s), %.1f trials/hour.",
            self._number(trial), self._planned, trial.trial_id, scored.status, seconds,
            self._epochs_run, self.oracle.objective.name,
            "n/a" if scored.score is None else f"{scored.score:.4f}",
            "n/a" if best is None else (
                f"{best.score:.4f} (trial {best.trial_id}, "
                f"{best.hyperparameters.values.get(search_space.ARCHITECTURE)})"
            ),
            self._trials_run, 3600.0 * self._trials_run / max(elapsed, 1e-9),
        )


class _HyperbandSweepTuner(_SweepTuner, keras_tuner.Hyperband):
    """Hyperband's run_trial (epochs of the round) and _build_hypermodel (continues
    from the previous round's checkpoint), with the sweep's bookkeeping."""


def _tuner_class(cfg):
    return _HyperbandSweepTuner if cfg.tuner == "hyperband" else _SweepTuner


class TrialHyperModel(search_space.SentimentHyperModel):
    """The sweep's hypermodel: trials build on the run's contract and fit on its feeds
    through `trainer.run.fit`, as a run of s140-train does."""

    def __init__(self, run, **kwargs):
        super().__init__(run.contract, run=run, **kwargs)

    def fit(self, hp, model, *, epochs, callbacks, initial_epoch=0):
        # KerasTuner passes what search() got (epochs, callbacks) plus its own
        # callbacks and, for Hyperband, the round's initial_epoch; the data is the run's.
        return run_lib.fit(self.run, model, epochs=epochs, callbacks=callbacks, initial_epoch=initial_epoch)


def make_tuner(cfg, run, *, max_length, distributed_worker, planned):
    """The tuner of this process. Call it with KerasTuner's variables set
    (`distributed.kerastuner_environment`): KerasTuner reads them here."""
    hypermodel = TrialHyperModel(
        run, architectures=cfg.architectures, tune_recurrent_dropout=cfg.tune_recurrent_dropout
    )
    # A worker's own oracle is only a template: KerasTuner swaps it for a client of the
    # chief's. A one-process sweep uses the (reloaded) oracle itself.
    oracle = make_oracle(cfg, max_length) if distributed_worker else load_oracle(cfg, max_length)
    return _tuner_class(cfg)(
        oracle,
        sweep=cfg,
        planned=planned,
        hypermodel=hypermodel,
        distribution_strategy=run.strategy,
        directory=cfg.tuner_dir,
        project_name=config_lib.PROJECT_NAME,
        overwrite=False,
        executions_per_trial=cfg.executions_per_trial,
    )


def trial_callbacks(cfg, run):
    """The callbacks of a run that apply to a trial; KerasTuner gives each trial and
    execution its own TensorBoard log dir (and adds its HParams callback)."""
    return callbacks_lib.make_trial_callbacks(
        log_dir=cfg.path(config_lib.LOGS_DIR),
        early_stopping_patience=cfg.early_stopping_patience,
        examples_per_epoch=run.feeds.examples_per_epoch,
    )
