"""One sweep: oracle + trials (any role), then the chief's report and best model.

Every trial trains the way `s140-train` does: the trainer's strategy choice
(`trainer.strategy`), its tf.data input (`trainer.data.make_dataset`), its builder
(`trainer.models.build_model`) and its compile settings, plus early stopping on
val_loss. At the end the chief writes `best_hyperparameters.json`, `trials.csv`,
`summary.md` and `objective_per_trial.png` (`tuning.results`) and retrains the best
configuration with `trainer.train.train` into `<tuner_dir>/best/`, so the exported
model, metrics.json and report.md are exactly those of `s140-train`.

Resuming is KerasTuner's `overwrite=False`: finished trials are reloaded from
`<tuner_dir>/search/`, a trial that was running when the process died runs again under
the same id, and a finished sweep runs no new trial. `sweep.json` records the settings
of the first run; a resume with settings that would change the trials fails.
"""

import _thread
import contextlib
import dataclasses
import json
import multiprocessing
import os
import socket
import threading
import time
import typing

import keras
import keras_tuner
import tensorflow as tf
from absl import logging
from keras_tuner.src.engine import trial as trial_module

from trainer import callbacks as callbacks_lib
from trainer import config as train_config
from trainer import data
from trainer import files
from trainer import strategy as strategy_lib
from tuning import config as config_lib
from tuning import distributed
from tuning import results as results_lib
from tuning import search_space

TRIAL_INFO_FILE = "s140_trial.json"  # per trial dir: who ran it, how long, how many epochs

# Variables that describe the tuning job, not a training run: the best model is
# retrained on this machine alone and written under <tuner_dir>/best/.
_JOB_VARIABLES = (
    "TF_CONFIG",
    "CLUSTER_SPEC",
    train_config.AIP_MODEL_DIR,
    train_config.AIP_CHECKPOINT_DIR,
    train_config.AIP_TENSORBOARD_LOG_DIR,
) + distributed.KERASTUNER_VARIABLES


# --- Budget.


def _hyperband_schedule(cfg):
    """[(trials, epochs each trains)] per Hyperband round, from KerasTuner's own oracle."""
    oracle = keras_tuner.oracles.HyperbandOracle(
        objective=keras_tuner.Objective(cfg.objective, cfg.objective_direction),
        max_epochs=cfg.max_epochs,
        factor=cfg.hyperband_factor,
        hyperband_iterations=1,
    )
    schedule = []
    for bracket in range(oracle._get_num_brackets()):
        for round_num in range(bracket + 1):
            start = oracle._get_epochs(bracket, round_num - 1) if round_num else 0
            schedule.append(
                (oracle._get_size(bracket, round_num), oracle._get_epochs(bracket, round_num) - start)
            )
    return schedule


def planned_trials(cfg):
    """Trials the sweep runs when every one completes (random draws may end it early)."""
    if cfg.tuner == "hyperband":
        return sum(trials for trials, _ in _hyperband_schedule(cfg))
    return cfg.max_trials


def epoch_budget(cfg):
    """Training epochs the sweep may spend (before early stopping), all trials together."""
    if cfg.tuner == "hyperband":
        per_execution = sum(trials * epochs for trials, epochs in _hyperband_schedule(cfg))
    else:
        per_execution = cfg.max_trials * cfg.max_epochs
    return per_execution * cfg.executions_per_trial


# --- Oracle and tuner.


def make_oracle(cfg, max_length):
    """A fresh KerasTuner oracle holding the complete search space."""
    if cfg.tuner == "bayesian":
        import importlib.util

        missing = [m for m in ("sklearn", "scipy") if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(
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
    oracle._set_project_dir(cfg.tuner_dir, config_lib.PROJECT_NAME)
    if tf.io.gfile.exists(oracle._get_oracle_fname()):
        oracle.reload()
        # The budget is the one of this run: KerasTuner keeps max_trials out of the
        # saved state, so a larger --max_trials extends a finished sweep.
        logging.info(
            "Resuming the sweep in %s: %d trial(s) on record.", cfg.tuner_dir, len(oracle.trials)
        )
    oracle.verbose = 0  # progress is logged by the tuners and the oracle server
    return oracle


class _SweepTuner(keras_tuner.Tuner):
    """A Tuner that logs progress, records who ran each trial and for how long, and
    declares the search space without building models."""

    def __init__(self, oracle, *, sweep, planned, **kwargs):
        # keras_tuner.Tuner.__init__, not the subclass's: Hyperband's would make its own
        # oracle, and the oracle here may be a reloaded one.
        keras_tuner.Tuner.__init__(self, oracle=oracle, **kwargs)
        self._sweep = sweep
        self._planned = planned
        self._started = time.monotonic()
        self._trials_run = 0
        self._trial_clock = None
        self._trial_started = None
        self._epochs_run = 0
        self._attempts = 1
        self.trial_ids = []  # trials run by this process, in order

    def _populate_initial_space(self):
        # KerasTuner builds the model once per conditional scope to discover the space;
        # `declare_hyperparameters` already declares all of it.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # KerasTuner imports tensorboard here whatever the callbacks, and TensorFlow
        # 2.21 no longer installs it: without it every trial would fail.
        if callbacks_lib.tensorboard_available():
            super()._configure_tensorboard_dir(callbacks, trial, execution)

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


def _idle_wait(oracle, seconds=1.0):
    """Makes a worker wait before asking again when the oracle answers IDLE.

    KerasTuner's search loop asks again at once, which on a small machine turns a
    Hyperband round that waits for other workers into a busy loop against the server.
    """
    create_trial = oracle.create_trial

    def patient_create_trial(tuner_id):
        trial = create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.IDLE:
            time.sleep(seconds)
        return trial

    oracle.create_trial = patient_create_trial


# --- Processes.


def _oracle_process_main(cfg_fields, env, max_length, planned, parent_pid):
    """The chief's oracle process (spawned): serves the oracle until the sweep ends."""
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    cfg = config_lib.SweepConfig(**cfg_fields)
    # This process only serves the oracle; the variables say so to KerasTuner.
    os.environ.update(env)
    oracle = load_oracle(cfg, max_length)
    oracle.save()  # before serving, so that a resume finds the state (KerasTuner #977)
    distributed.serve_oracle(
        oracle,
        host=env[distributed.ORACLE_IP],
        port=env[distributed.ORACLE_PORT],
        worker_timeout=cfg.worker_timeout_seconds,
        planned_trials=planned,
        parent_pid=parent_pid,
    )


def _start_oracle_process(cfg, env, max_length):
    # spawn, not fork: this process has imported TensorFlow, which does not survive a fork.
    context = multiprocessing.get_context("spawn")
    process = context.Process(
        target=_oracle_process_main,
        args=(dataclasses.asdict(cfg), dict(env), max_length, planned_trials(cfg), os.getpid()),
        name="s140-oracle",
        daemon=True,
    )
    process.start()
    logging.info(
        "Oracle process %d serving on %s:%s.",
        process.pid, env[distributed.ORACLE_IP], env[distributed.ORACLE_PORT],
    )
    return process


OracleDied = distributed.OracleDied


@contextlib.contextmanager
def _watch(process):
    """Interrupts the main thread if `process` dies with an error: its worker would
    otherwise wait an hour for the oracle (KerasTuner's gRPC timeout)."""
    if process is None:
        yield
        return
    done = threading.Event()
    died = []

    def watch():
        while not done.wait(1.0):
            if process.exitcode not in (None, 0):
                died.append(process.exitcode)
                _thread.interrupt_main()
                return

    thread = threading.Thread(target=watch, name="s140-oracle-watch", daemon=True)
    thread.start()
    try:
        yield
    except KeyboardInterrupt:
        if died:
            raise OracleDied(
                f"The oracle process exited with code {died[0]} during the sweep; see its log "
                "above. Run the same command again to resume."
            ) from None
        raise
    finally:
        done.set()
        thread.join()


def _check_sweep_file(cfg, *, chief):
    """Records the settings of a new sweep (chief), or checks a resume against them."""
    path = cfg.path(config_lib.SWEEP_FILE)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "r") as f:
            saved = json.loads(f.read())
        message = config_lib.identity_mismatch(saved, cfg)
        if message:
            raise ValueError(message)
    elif chief:
        tf.io.gfile.makedirs(cfg.tuner_dir)
        files.write_json(path, json.loads(config_lib.dumps(cfg)))


def _fresh_collective_keys():
    """A second MirroredStrategy in one process reuses the first one's collective keys
    and its all-reduces collide (tensorflow/tensorflow#62790); TensorFlow's own tests
    move the key base for each new strategy. Needed before the best model's retraining,
    which makes its own strategy (trainer.train.train takes none)."""
    mirrored = tf.distribute.MirroredStrategy
    if hasattr(mirrored, "_collective_key_base"):
        mirrored._collective_key_base += 100_000


# --- The sweep.


@dataclasses.dataclass(frozen=True)
class SweepResult:
    chief: bool
    trial_ids: typing.Tuple[str, ...]  # trials this process ran
    outputs: typing.Optional[dict] = None  # chief: paths of the written files
    best: typing.Optional[dict] = None  # chief: best_hyperparameters.json content
    best_metrics: typing.Optional[dict] = None  # chief: best/metrics.json (None if not retrained)


def _search(cfg, contract, plan, policy, worker_env, oracle_process, max_length):
    """Runs trials in this process until the oracle stops; returns their ids."""
    distribution = strategy_lib.make_strategy(plan)
    replicas = distribution.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    train = data.make_dataset(contract, "train", batch_size=global_batch, shuffle=True, seed=cfg.seed)
    val = data.make_dataset(contract, "val", batch_size=global_batch)
    logging.info(
        "Trials train on %s: %d replica(s) x %d = global batch %d; dtype policy %s.",
        plan.describe(), replicas, cfg.batch_size, global_batch, policy,
    )

    fit_callbacks = [keras.callbacks.TerminateOnNaN()]
    if cfg.early_stopping_patience:
        fit_callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping_patience)
        )
    fit_callbacks.append(callbacks_lib.EpochLogger(contract.count("train")))
    if callbacks_lib.tensorboard_available():
        # KerasTuner gives each trial and execution its own log dir and adds the HParams
        # callback when it finds a TensorBoard callback here.
        fit_callbacks.append(keras.callbacks.TensorBoard(cfg.path(config_lib.LOGS_DIR)))
    else:
        logging.warning(
            "TensorBoard is not installed: no trial logs in %s. `pip install tensorboard` "
            "to get them (with KerasTuner's HParams view).",
            cfg.path(config_lib.LOGS_DIR),
        )

    hypermodel = search_space.SentimentHyperModel(
        contract,
        architectures=cfg.architectures,
        tune_recurrent_dropout=cfg.tune_recurrent_dropout,
    )
    distributed_worker = bool(worker_env)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        # KerasTuner reads its variables when the tuner is made and again in search().
        with distributed.kerastuner_environment(worker_env):
            # A worker's own oracle is only a template: KerasTuner swaps it for a client
            # of the chief's. A one-process sweep uses the (reloaded) oracle itself.
            oracle = make_oracle(cfg, max_length) if distributed_worker else load_oracle(cfg, max_length)
            tuner = _tuner_class(cfg)(
                oracle,
                sweep=cfg,
                planned=planned_trials(cfg),
                hypermodel=hypermodel,
                distribution_strategy=distribution,
                directory=cfg.tuner_dir,
                project_name=config_lib.PROJECT_NAME,
                overwrite=False,
                executions_per_trial=cfg.executions_per_trial,
            )
            heartbeat = contextlib.nullcontext()
            if distributed_worker:
                _idle_wait(tuner.oracle)
                address = f"{worker_env[distributed.ORACLE_IP]}:{worker_env[distributed.ORACLE_PORT]}"
                heartbeat = distributed.Heartbeat(
                    address,
                    worker_env[distributed.TUNER_ID],
                    distributed.heartbeat_interval(cfg.worker_timeout_seconds),
                )
            with heartbeat, _watch(oracle_process):
                tuner.search(
                    train,
                    validation_data=val,
                    epochs=cfg.max_epochs,
                    callbacks=fit_callbacks,
                    shuffle=False,  # the dataset shuffles examples itself
                    verbose=0,
                )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
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

    # Files only, no TensorFlow runtime yet: logical CPU devices must be configured
    # before the first op (trainer.strategy).
    contract = data.load_contract(cfg.data_dir)
    max_length = contract.max_length
    # Fails now, naming the architecture, if a convolution cannot fit max_length.
    search_space.SentimentHyperModel(contract, architectures=cfg.architectures)
    local = {key: value for key, value in environ.items() if key != "TF_CONFIG"}
    plan = strategy_lib.plan_from_environment(cpu_replicas=cfg.cpu_replicas, environ=local)
    policy = strategy_lib.mixed_precision_policy(
        cfg.mixed_precision, gpu_compute_capabilities=strategy_lib.local_gpu_compute_capabilities()
    )
    _check_sweep_file(cfg, chief=chief)
    logging.info(
        "Sweep %s: %s over %s; %s planned trial(s), at most %d epoch(s) each; %s.",
        cfg.tuner_dir, cfg.tuner, list(cfg.architectures), planned_trials(cfg), cfg.max_epochs,
        "chief" if chief else f"worker {envs[distributed.WORKER].get(distributed.TUNER_ID)}",
    )

    oracle_process = None
    if distributed.ORACLE in envs:
        oracle_process = _start_oracle_process(cfg, envs[distributed.ORACLE], max_length)
    try:
        trial_ids = _search(
            cfg, contract, plan, policy, envs[distributed.WORKER], oracle_process, max_length
        )
        if oracle_process is not None:
            # The oracle exits once the budget is spent and every worker has left.
            logging.info("Trials done here; waiting for the other workers to finish theirs.")
            oracle_process.join()
            if oracle_process.exitcode != 0:
                raise OracleDied(
                    f"The oracle process exited with code {oracle_process.exitcode}; see its log above."
                )
    finally:
        if oracle_process is not None and oracle_process.is_alive():
            oracle_process.terminate()
            oracle_process.join(timeout=10)
    logging.info("This process ran %d trial(s) in %.0f s.", len(trial_ids), time.perf_counter() - started)
    if not chief:
        return SweepResult(chief=False, trial_ids=trial_ids)

    records = results_lib.read_trials(cfg.project_dir, TRIAL_INFO_FILE)
    best = results_lib.best_trial(records, cfg.objective_direction)
    outputs = results_lib.write_tables(cfg, records, best)
    best_metrics = None
    if best is not None and cfg.epochs_best:
        best_metrics = retrain_best(cfg, best, environ=environ)
    elif best is None:
        logging.warning("No trial completed: nothing to retrain.")
    outputs.update(
        results_lib.write_summary(
            cfg,
            records,
            best,
            best_metrics=best_metrics,
            planned=planned_trials(cfg),
            epoch_budget=epoch_budget(cfg),
        )
    )
    best_json = results_lib.best_hyperparameters(cfg, best) if best is not None else None
    return SweepResult(
        chief=True, trial_ids=trial_ids, outputs=outputs, best=best_json, best_metrics=best_metrics
    )


def best_train_config(cfg, best):
    """The `trainer.config.TrainConfig` that retrains the best trial into best/."""
    return train_config.TrainConfig(
        data_dir=cfg.data_dir,
        job_dir=cfg.path(config_lib.BEST_DIR),
        architecture=best.architecture,
        epochs=cfg.epochs_best,
        batch_size=cfg.batch_size,
        learning_rate=best.learning_rate,
        hparams=best.hparams,
        early_stopping_patience=cfg.early_stopping_patience,
        mixed_precision=cfg.mixed_precision,
        cpu_replicas=cfg.cpu_replicas,
        seed=cfg.seed,
    )


def retrain_best(cfg, best, *, environ=None):
    """Retrains the best configuration with `trainer.train.train` into <tuner_dir>/best/.

    Skipped when best/metrics.json already holds this configuration (a finished sweep
    run again); a retraining that was interrupted resumes from the trainer's backup.

    Returns:
      The content of best/metrics.json.
    """
    from trainer import train as train_lib

    train_cfg = best_train_config(cfg, best)
    metrics_path = cfg.path(f"{config_lib.BEST_DIR}/{train_lib.METRICS_FILE}")
    if tf.io.gfile.exists(metrics_path):
        with tf.io.gfile.GFile(metrics_path, "r") as f:
            metrics = json.loads(f.read())
        same = (
            metrics.get("architecture") == train_cfg.architecture
            and metrics.get("hparams") == train_cfg.resolved_hparams()
            and metrics.get("learning_rate") == train_cfg.learning_rate
            and metrics.get("epochs_requested") == train_cfg.epochs
            and metrics.get("seed") == train_cfg.seed
        )
        if same:
            logging.info("The best configuration (trial %s) is already retrained in %s.", best.trial_id, train_cfg.job_dir)
            return metrics
    environ = os.environ if environ is None else environ
    clean = {key: value for key, value in environ.items() if key not in _JOB_VARIABLES}
    logging.info(
        "Retraining trial %s (%s) for %d epoch(s) into %s.",
        best.trial_id, best.architecture, cfg.epochs_best, train_cfg.job_dir,
    )
    _fresh_collective_keys()
    return train_lib.train(train_cfg, environ=clean)
