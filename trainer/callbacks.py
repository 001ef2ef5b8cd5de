"""The callbacks of a training run: resumable after a kill, chief-only file writes.

Resuming works from the last finished epoch: `BackupAndRestore` saves weights, optimizer
state and the epoch number at every epoch end and restores them when the same command
runs again. Three other pieces of state would otherwise restart from nothing and are
seeded from history.json instead: the history itself (epochs of both runs, each once),
the best val_loss that `BestModelFile` must beat, and `EarlyStopping`'s patience.

Under MultiWorkerMirroredStrategy every worker runs the same callbacks (they take part
in the same collectives), but only the chief writes into the run's directories. The
other workers restore from the chief's backup (the checkpoint dir is shared, e.g. on
Cloud Storage) and write their own backups, checkpoints and logs to a local temporary
directory, as the Keras multi-worker guide recommends.
"""

import importlib.util
import json
import posixpath
import shutil
import statistics
import tempfile
import time
import typing

import keras
from absl import logging

from common import files
from common.quiet_tf import tf
from trainer import hypertune
from trainer import keras_adapter

HISTORY_FILE = "history.json"
BEST_MODEL_FILE = "best.keras"
BACKUP_DIR = "backup"
EPOCH = "epoch"  # history.json key of the epoch indices (0-based, as Keras counts)


# --- history.json.


def read_history(path):
    """history.json as {"epoch": [...], "loss": [...], ...}; empty dict when absent.

    Raises:
      files.DamagedFile: naming the file, when it is empty or not a JSON object.
    """
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    try:
        history = json.loads(text)
    except ValueError:
        history = None
    if not isinstance(history, dict):
        raise files.DamagedFile(
            f"Expected {path} to hold a run's history (a JSON object of per-epoch lists). Received "
            f"{'an empty file' if not text.strip() else 'something else'}. The package writes it whole, so "
            "something else changed it: restore it, or pass --overwrite to start the run afresh."
        )
    return history


def _records(history):
    epochs = history.get(EPOCH, [])
    return [
        {EPOCH: epoch, **{key: values[i] for key, values in history.items() if key != EPOCH}}
        for i, epoch in enumerate(epochs)
    ]


def _columns(records):
    keys = [EPOCH] + sorted({key for record in records for key in record} - {EPOCH})
    return {key: [record.get(key) for record in records] for key in keys}


def prior_epochs(history_path, model):
    """Records of history.json from before the epoch this fit starts at (a resume)."""
    start = keras_adapter.initial_epoch(model)
    return [record for record in _records(read_history(history_path)) if record[EPOCH] < start]


class HistoryFile(keras.callbacks.Callback):
    """Appends each finished epoch's logs to history.json (atomically).

    At the first epoch of a fit it drops recorded epochs >= that epoch: a resumed run
    keeps the epochs it does not repeat, and a fresh run in a reused job dir starts a
    new history. Place it *before* BackupAndRestore: an epoch is recorded before its
    backup, so a kill in between repeats that epoch, which then replaces its record.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self._records = None

    def on_train_begin(self, logs=None):
        self._records = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._records is None:
            self._records = [r for r in _records(read_history(self.path)) if r[EPOCH] < epoch]
            if self._records:
                logging.info(
                    "Resuming at epoch %d; history.json keeps epochs %s.",
                    epoch + 1,
                    [r[EPOCH] for r in self._records],
                )

    def on_epoch_end(self, epoch, logs=None):
        record = {EPOCH: epoch, **{key: float(value) for key, value in (logs or {}).items()}}
        self._records = [r for r in self._records if r[EPOCH] < epoch] + [record]
        files.write_json(self.path, _columns(self._records))


# --- Resume-aware Keras callbacks.


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose best value and patience count carry over a resume."""

    def __init__(self, history_path, **kwargs):
        super().__init__(**kwargs)
        self.history_path = history_path

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        previous = [r for r in prior_epochs(self.history_path, self.model) if self.monitor in r]
        if previous:
            best = min(previous, key=lambda r: r[self.monitor])
            self.best, self.best_epoch = best[self.monitor], best[EPOCH]
            self.wait = previous[-1][EPOCH] - best[EPOCH]
            # best_weights stay None: the resumed run cannot restore the killed run's
            # weights from memory; the trainer reloads them from best.keras instead.


class BestModelFile(keras.callbacks.Callback):
    """Saves the model of the lowest `monitor` so far to `path`, whole or not at all.

    Keras' ModelCheckpoint writes over the file in place, so a kill during the save left
    a truncated zip that the resume could not load. Here the model goes to a temporary
    name beside `path` and is renamed over it. After a resume, an epoch must beat the
    best value of the epochs before the kill, not overwrite it with a worse model.
    """

    def __init__(self, path, history_path, monitor="val_loss"):
        super().__init__()
        self.path, self.history_path, self.monitor = path, history_path, monitor
        self.best = float("inf")

    def on_train_begin(self, logs=None):
        previous = [r[self.monitor] for r in prior_epochs(self.history_path, self.model) if self.monitor in r]
        self.best = min(previous) if previous and tf.io.gfile.exists(self.path) else float("inf")
        files.remove_temporaries(self.path)  # of a save that a kill cut short

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value < self.best:  # NaN is never better
            return
        self.best = float(value)
        files.save_model(self.model, self.path)


# --- Progress.


class EpochLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics and training throughput; keeps the timings.

    Training time runs from the epoch's start to the start of its validation, so
    examples/s measure training alone.
    """

    def __init__(self, examples_per_epoch):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.train_seconds = []  # one per epoch run by this process
        self._start = None
        self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        seconds = (self._train_end or now) - self._start
        self.train_seconds.append(seconds)
        self._start = None
        metrics = ", ".join(f"{key} {float(value):.4f}" for key, value in sorted((logs or {}).items()))
        logging.info(
            "Epoch %d/%d: %s; %.1f s training, %.0f examples/s.",
            epoch + 1,
            self.params.get("epochs", 0),
            metrics,
            seconds,
            self.examples_per_epoch / max(seconds, 1e-9),
        )

    def examples_per_second(self):
        """Steady training throughput of this process: examples/s of its median epoch
        after the first, which also traces (and XLA-compiles) the step; the first
        epoch's when it ran only one. None before any."""
        seconds = self.train_seconds[1:] or self.train_seconds
        if not seconds or not statistics.median(seconds):
            return None
        return self.examples_per_epoch / statistics.median(seconds)


# --- Assembly.


def tensorboard_available():
    """Whether tf.summary can write: it needs the separate tensorboard package."""
    return importlib.util.find_spec("tensorboard") is not None


class RunCallbacks(typing.NamedTuple):
    callbacks: list
    epoch_logger: EpochLogger
    best_model_path: str  # where the best-val_loss model of this process is saved
    scratch_dir: typing.Optional[str]  # a non-chief's temporary dir, to delete after fit

    def cleanup(self):
        if self.scratch_dir:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)


def make_callbacks(
    *,
    job_dir,
    checkpoint_dir,
    log_dir,
    chief,
    early_stopping_patience,
    examples_per_epoch,
):
    """The callbacks of one run, in the order their side effects need.

    Args:
      job_dir: where history.json goes.
      checkpoint_dir: BackupAndRestore state (`backup/`) and `best.keras`.
      log_dir: TensorBoard logs.
      chief: whether this process writes the run's files.
      early_stopping_patience: epochs without a better val_loss before stopping; 0 = never.
      examples_per_epoch: training examples per epoch, for throughput logs.

    Returns:
      A `RunCallbacks`.
    """
    history_path = posixpath.join(job_dir, HISTORY_FILE)
    chief_backup = posixpath.join(checkpoint_dir, BACKUP_DIR)
    scratch = None if chief else tempfile.mkdtemp(prefix="s140-worker-")
    best_model_path = posixpath.join(checkpoint_dir if chief else scratch, BEST_MODEL_FILE)
    logger = EpochLogger(examples_per_epoch)

    callbacks = [keras.callbacks.TerminateOnNaN()]
    if chief:
        callbacks.append(HistoryFile(history_path))  # before the backup: see HistoryFile
        # double_checkpoint: a kill while the backup is written (preemption strikes at
        # any moment) leaves the previous epoch's backup to resume from.
        # delete_checkpoint=False: a finished run keeps its last epoch, so a larger
        # --epochs continues from it rather than from the first epoch.
        callbacks.append(
            keras_adapter.Backup(chief_backup, double_checkpoint=True, delete_checkpoint=False)
        )
    else:
        callbacks.append(keras_adapter.RestoreFromChiefBackup(chief_backup, posixpath.join(scratch, BACKUP_DIR)))
    if early_stopping_patience:
        callbacks.append(
            ResumableEarlyStopping(
                history_path,
                monitor="val_loss",
                patience=early_stopping_patience,
                restore_best_weights=True,
            )
        )
    callbacks.append(BestModelFile(best_model_path, history_path))
    callbacks += _tensorboard(log_dir if chief else posixpath.join(scratch, "logs"))
    callbacks.append(logger)
    callbacks += hypertune.trial_callbacks(chief=chief)  # a Vertex tuning trial's metric
    return RunCallbacks(_async_safe(callbacks), logger, best_model_path, scratch)


def make_trial_callbacks(*, log_dir, early_stopping_patience, examples_per_epoch):
    """The callbacks of a run that apply to a tuning trial.

    Not the ones that write a run's files (history.json, backups, best.keras): KerasTuner
    keeps each trial's state and best epoch itself, and a killed sweep reruns the trial.
    Early stopping does not restore weights: the trial is scored on its best epoch.
    """
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping_patience))
    callbacks.append(EpochLogger(examples_per_epoch))
    callbacks += _tensorboard(log_dir)
    return _async_safe(callbacks)


def _tensorboard(log_dir):
    """[TensorBoard(log_dir)], or [] with a warning when tensorboard is not installed."""
    if tensorboard_available():
        return [keras.callbacks.TensorBoard(log_dir)]
    logging.warning(
        "TensorBoard is not installed (TensorFlow 2.21 no longer depends on it): no "
        "logs in %s. `pip install tensorboard` to get them.",
        log_dir,
    )
    return []


def _async_safe(callbacks):
    # Keras runs batch hooks on the training thread, converting every step's logs to
    # Python (a device sync per step), unless every callback with a batch hook is marked
    # async_safe. Ours act once per epoch (TensorBoard, backups and checkpoints at epoch
    # frequency); TerminateOnNaN checking a step's loss off-thread stops the run a few
    # steps later at most. Without this, small models trained at ~0.65x the examples/s
    # of a plain `fit` (docs/benchmarks-history.md).
    for callback in callbacks:
        callback.async_safe = True
    return callbacks
