"""Keras' dropout with its random-number algorithm named (Philox), so XLA compiles it fast.

Keras 3's TensorFlow backend draws every dropout mask (Dropout, SpatialDropout1D, the
dropout of LSTM and GRU cells) with `tf.nn.experimental.stateless_dropout` and no
`rng_alg`, which means "auto_select". Outside XLA, auto_select is Philox on a CPU and on a
GPU. Inside an XLA cluster it becomes XLA's default bit generator, which XLA's CPU backend
runs about 30x slower: a 64 x 40 x 50 mask took 60 ms a call against 1.8 ms with Philox
named (docs/benchmarks-history.md, run 7). That is what made conv_lstm 8x slower under XLA.

`install()` swaps that one backend function for a copy that names Philox. Outside XLA its
masks are bit for bit Keras's own (Philox is what auto_select picks there; tested), so a
model trained without XLA learns exactly what it learned before. Inside XLA the masks are
XLA's Philox stream: as random, not the same numbers.

This is Keras's private module, so the swap is made only on the Keras version it was
checked with (`TESTED_VERSION`, the pin of constraints.txt);
tests/test_keras_random_adapter.py also fails when the source of Keras's function
changes. On any other version nothing is swapped and `trainer.step_plan` keeps XLA off on
a CPU for models with dropout, as before.
"""

import keras
import tensorflow as tf
from absl import logging
from keras.src.backend.tensorflow import random as keras_tf_random

TESTED_VERSION = "3.15.1"
RNG_ALG = "philox"

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
            f"Expected keras=={TESTED_VERSION} (the version trainer/keras_random_adapter.py is checked "
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
