"""What `trainer.step_loop` needs from inside Keras' fit, in one place.

Keras 3 has no public hook for the function that `fit` and `evaluate` call per group of
`steps_per_execution` steps. Its TensorFlow trainer keeps them in `train_function` and
`test_function`, made on first use by `make_train_function`/`make_test_function` unless
already set, and reset by `compile`. The loss that `fit` reports is the `Mean` metric
`_loss_tracker`, which Keras' own `train_step` updates. Both were read at
`TESTED_VERSION` (the pin of constraints.txt); tests/test_step_loop.py fails when the
installed Keras moves, and `tests/test_step_plan.py` shows the day Keras' own loop
works across replicas (keras-team/keras#19246), when this adapter can go.
"""

import keras

TESTED_VERSION = "3.15.1"


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
            f"Expected Keras {TESTED_VERSION}'s loss tracker on a compiled model (trainer/keras_fit_adapter.py). "
            f"Received keras {keras.__version__}, whose model has none: check the adapter against it."
        )
    return tracker
