"""Every reach into Keras' internals, in one place, each checked on `TESTED_VERSION`.

Keras is pinned (constraints.txt) and tests/test_keras_adapter.py fails when the
installed version moves, so each workaround here is re-read against a new Keras before
it is trusted; each names the upstream behaviour it works around and when it can go.

* **The step functions of fit** (`set_step_functions`, `loss_tracker`). Keras 3 has no
  public hook for the function that `fit` and `evaluate` call per group of
  `steps_per_execution` steps. Its TensorFlow trainer keeps them in `train_function`
  and `test_function`, made on first use unless already set and reset by `compile`;
  the loss that `fit` reports is the `Mean` metric `_loss_tracker`, which Keras' own
  `train_step` updates. `trainer.step_loop` replaces them because Keras' own loop is
  slow across replicas (keras-team/keras#19246); tests/test_step_plan.py shows the day
  that is fixed, when this can go.
* **Dropout with Philox named** (`install`). Keras 3's TensorFlow backend draws every
  dropout mask (Dropout, SpatialDropout1D, the dropout of LSTM and GRU cells) with
  `tf.nn.experimental.stateless_dropout` and no `rng_alg`, which means "auto_select".
  Outside XLA, auto_select is Philox on a CPU and on a GPU. Inside an XLA cluster it
  becomes XLA's default bit generator, which XLA's CPU backend runs about 30x slower: a
  64 x 40 x 50 mask took 60 ms a call against 1.8 ms with Philox named
  (docs/benchmarks-history.md, run 7), which made conv_lstm 8x slower under XLA. No
  upstream issue names this; the function is keras/src/backend/tensorflow/random.py's
  `dropout`, whose source the test hashes. `install()` swaps it for a copy that names
  Philox; outside XLA its masks are bit for bit Keras' own (tested), inside XLA they
  are XLA's Philox stream. On another Keras nothing is swapped and
  `trainer.step_plan` keeps XLA off on a CPU for models with dropout.
* **BackupAndRestore's paths and epoch** (`Backup`, `RestoreFromChiefBackup`,
  `initial_epoch`). Keras keeps the backup's file names and the epoch a resumed fit
  starts at in private attributes; a damaged backup there surfaced as h5py's or json's
  error, and a non-chief worker must restore the chief's backup but write its own.
"""

import json
import posixpath

import keras
from absl import logging
from keras.src.backend.tensorflow import random as keras_tf_random

from common import files
from common.quiet_tf import tf

TESTED_VERSION = "3.15.1"
RNG_ALG = "philox"


# --- The step functions of fit.


def set_step_functions(model, *, train, test):
    """Makes Keras' fit and evaluate on `model` call `train(iterator)` and
    `test(iterator)`; call it after `compile`, which resets them."""
    if not model.compiled:
        raise RuntimeError("Expected a compiled model. Received one whose compile() was not called.")
    model.train_function = train
    model.test_function = test


def loss_tracker(model):
    """The `keras.metrics.Mean` behind the "loss" that fit and evaluate report."""
    tracker = getattr(model, "_loss_tracker", None)
    if not isinstance(tracker, keras.metrics.Mean):
        raise RuntimeError(
            f"Expected Keras {TESTED_VERSION}'s loss tracker on a compiled model (trainer/keras_adapter.py). "
            f"Received keras {keras.__version__}, whose model has none: check the adapter against it."
        )
    return tracker


# --- Dropout with Philox named.


_keras_dropout = keras_tf_random.dropout


def _philox_dropout(inputs, rate, noise_shape=None, seed=None):
    # Keras's own function (keras/src/backend/tensorflow/random.py at TESTED_VERSION),
    # with `rng_alg` named.
    if rate == 1.0:
        return tf.zeros_like(inputs)
    if rate == 0.0:
        return inputs
    seed = keras_tf_random._cast_seed(keras_tf_random.draw_seed(seed))
    noise_shape = keras_tf_random._get_concrete_noise_shape(inputs, noise_shape)
    return tf.nn.experimental.stateless_dropout(
        inputs, rate=rate, noise_shape=noise_shape, seed=seed, rng_alg=RNG_ALG
    )


def version_mismatch(installed=None, backend=None):
    """Why the swap cannot be made here (a message), or None when it can."""
    installed = keras.__version__ if installed is None else installed
    backend = keras.backend.backend() if backend is None else backend
    if backend != "tensorflow":
        return f"Expected the Keras backend tensorflow. Received: {backend}."
    if installed != TESTED_VERSION:
        return (
            f"Expected keras=={TESTED_VERSION} (the version trainer/keras_adapter.py is checked "
            f"with). Received: keras {installed}."
        )
    return None


def install():
    """Makes Keras draw dropout masks with Philox in this process, once.

    Returns:
      True when Keras's dropout names Philox (now or from an earlier call); False when
      this Keras cannot take the swap (logged with the reason).
    """
    if installed():
        return True
    problem = version_mismatch()
    if problem:
        logging.warning("Dropout keeps Keras's random-number algorithm, so XLA stays off for it on a CPU: %s", problem)
        return False
    keras_tf_random.dropout = _philox_dropout
    return True


def installed():
    return keras_tf_random.dropout is _philox_dropout


# --- BackupAndRestore.


def initial_epoch(model):
    """The epoch the fit of `model` starts at: after a resume, the one BackupAndRestore restored."""
    # BackupAndRestore.on_train_begin sets this private attribute to the epoch it
    # resumes from; Keras's fit loop reads the same attribute.
    return int(getattr(model, "_initial_epoch", None) or 0)


class Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, written whole and with a damaged backup reported by name.

    Keras writes latest.weights.h5 and its epoch file (training_metadata.json) over
    themselves, so a kill or a full disk during a save left half a file; here each file
    of a save goes to a temporary name and is renamed (`_save_model`, Keras' own steps
    at TESTED_VERSION otherwise; tests/test_keras_adapter.py hashes its source).
    With `double_checkpoint`, Keras falls back to the previous epoch's copy when the
    latest weights cannot be opened, but not when the epoch file is damaged, and when
    neither copy can be read h5py's or json's error ended the run. Here a damaged epoch
    file also falls back to the previous pair, and what cannot be restored is a
    `files.DamagedFile` naming the backup and what to do.
    """

    writes_backup_dir = True  # False for a non-chief worker, which only reads the chief's

    def on_train_begin(self, logs=None):
        if self.writes_backup_dir:
            self._repair()
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as error:
            if not self.model.built:
                raise  # Keras' own "build the model first": a bug here, not a damaged file
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise files.DamagedFile(
                f"Expected a backup to resume from in {self.backup_dir}. Received files that cannot be "
                f"read ({reason}). Pass --overwrite to train this run afresh, or restore that folder."
            ) from error

    def _repair(self):
        for path in (self._weights_path, self._training_metadata_path,
                     self._prev_weights_path, self._prev_training_metadata_path):
            files.remove_temporaries(path)  # of a save that a kill cut short (whole, on gs://)
        damaged = _damaged_json(self._training_metadata_path)
        if damaged and _holds_json(self._prev_training_metadata_path):
            logging.warning("%s is damaged; resuming from the previous epoch's backup.", self._training_metadata_path)
            for previous, latest in ((self._prev_weights_path, self._weights_path),
                                     (self._prev_training_metadata_path, self._training_metadata_path)):
                files.copy_atomically(previous, latest)

    def _save_model(self):
        # keras/src/callbacks/backup_and_restore.py `_save_model`, each file written whole.
        tf.io.gfile.makedirs(self.backup_dir)
        if self.double_checkpoint and tf.io.gfile.exists(self._weights_path):
            files.copy_atomically(self._weights_path, self._prev_weights_path)
        if self.double_checkpoint and tf.io.gfile.exists(self._training_metadata_path):
            files.copy_atomically(self._training_metadata_path, self._prev_training_metadata_path)
        files.save_weights(self.model, self._weights_path)
        files.write_atomically(
            self._training_metadata_path, json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
        )


def _damaged_json(path):
    """Whether `path` exists but does not hold JSON."""
    return tf.io.gfile.exists(path) and not _holds_json(path)


def _holds_json(path):
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            json.loads(f.read())
    except (ValueError, tf.errors.NotFoundError):
        return False
    return True


class RestoreFromChiefBackup(Backup):
    """A non-chief worker's BackupAndRestore: restores the chief's backup (so all
    workers resume at the same epoch) but saves to its own throw-away directory."""

    writes_backup_dir = False  # the chief's: this worker restores from it, never writes there

    def __init__(self, chief_backup_dir, own_dir):
        super().__init__(chief_backup_dir)
        self._own_dir = own_dir

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.backup_dir = self._own_dir
        self._weights_path = posixpath.join(self._own_dir, "latest.weights.h5")
        self._training_metadata_path = posixpath.join(self._own_dir, "training_metadata.json")
        self._prev_weights_path = f"{self._weights_path}.bkp"
        self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"
