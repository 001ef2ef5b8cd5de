"""Keras' fit driven by our own step loop: many steps per call into TensorFlow, on one
device or across replicas, with XLA on each replica's own work.

Keras' `fit` keeps everything a run relies on (callbacks, history, validation, resume);
only the function it calls for each group of steps is ours. Keras' own function cannot
run several steps per call across replicas: it wraps each step in a `tf.cond` on "is
there another batch", and a cond in replica context whose branch reaches the optimizer's
`merge_call` (the all-reduce) fails ("You must feed a value for placeholder tensor",
keras-team/keras#19246; TensorFlow's LossScaleOptimizer notes the same rule). Its XLA
option compiles the whole step, all-reduce included, and XLA cannot reach a mirrored
variable on another device. So Keras alone gives a multi-replica run one step per call
and no XLA: a fraction of one device's speed (docs/benchmarks.md, "Across replicas").

The loop here is tf.distribute's documented custom-training pattern, the way
tensorflow/models' Orbit runs `steps_per_loop`:

* One `tf.function` runs a `tf.while_loop` over exactly `n` steps, each
  `strategy.run(replica_step, next(iterator))`. No cond: `n` is known, because every
  batch is full (`data.make_dataset(weighted=True)`) and the steps of an epoch are
  counted here.
* XLA compiles what one replica does alone: the forward and backward pass, the loss and
  the metric updates, as one `tf.function(jit_compile=True)` per replica, traced in that
  replica's context so that it captures that replica's own copies of the variables. The
  all-reduce and the optimizer's update of mirrored variables stay outside XLA. With a
  single replica there is nothing to reduce, and the update is compiled too.
* The loss is summed with the batch's weights and divided by the global batch: the mean
  over the real examples of the batch, whatever the number of replicas (the weights
  carry the partial last batch; see `data.make_dataset`). Accuracy and the loss metric
  count real examples only.

Under mixed precision Keras' LossScaleOptimizer scales the loss and skips non-finite
updates itself (its cond runs in cross-replica context, which works).
"""

import dataclasses
import typing
import weakref

import keras

from common.quiet_tf import tf
from trainer import keras_adapter


@dataclasses.dataclass
class _Position:
    """How far an iterator is into its epoch, counted in steps. The iterator is held
    weakly: a live distributed iterator keeps its prefetching going after the fit."""

    iterator: typing.Optional[weakref.ref] = None
    done: int = 0


class StepLoop:
    """The train and test functions of one compiled model (`install`)."""

    def __init__(self, model, *, plan, global_batch, steps_per_epoch, validation_steps):
        self.model = model
        self.plan = plan  # a `step_plan.StepPlan`
        self.strategy = model.distribute_strategy
        self.global_batch = global_batch
        self.steps_per_epoch = {"train": steps_per_epoch, "test": validation_steps}
        self._positions = {"train": _Position(), "test": _Position()}
        self._replica_functions = {}  # (name, replica id) -> that replica's compiled step
        self._loss_tracker = keras_adapter.loss_tracker(model)
        # The whole update inside XLA when no all-reduce is needed.
        self._update_in_step = self.strategy.num_replicas_in_sync == 1
        self._train_calls = tf.function(self._train_calls_fn)
        self._test_calls = tf.function(self._test_calls_fn)

    # --- What Keras' fit calls.

    def train_function(self, iterator):
        return self._train_calls(iterator, tf.constant(self._steps_for("train", iterator)))

    def test_function(self, iterator):
        return self._test_calls(iterator, tf.constant(self._steps_for("test", iterator)))

    def _steps_for(self, name, iterator):
        # Keras calls the function ceil(steps / steps_per_execution) times an epoch with
        # one iterator, a new one per epoch unless the data repeats (then the count wraps).
        position = self._positions[name]
        if position.iterator is None or position.iterator() is not iterator:
            position.iterator, position.done = weakref.ref(iterator), 0
        steps = min(self.plan.steps_per_execution, self.steps_per_epoch[name] - position.done)
        position.done = (position.done + steps) % self.steps_per_epoch[name]
        return steps

    # --- The calls: a loop of n steps, then the metrics, reduced across replicas.

    def _train_calls_fn(self, iterator, steps):
        self._loop(iterator, steps, self._train_replica)
        return self.model.get_metrics_result()

    def _test_calls_fn(self, iterator, steps):
        self._loop(iterator, steps, self._test_replica)
        return self.model.get_metrics_result()

    def _loop(self, iterator, steps, replica_fn):
        def body(step):
            self.strategy.run(replica_fn, args=(next(iterator),))
            return (step + 1,)

        tf.while_loop(lambda step: step < steps, body, (tf.constant(0),))

    # --- One replica's step.

    def _train_replica(self, batch):
        if self._update_in_step:
            self._compiled("train_and_update", self._train_and_update)(batch)
            return
        gradients = self._compiled("gradients", self._gradients)(batch)
        self.model.optimizer.apply(gradients, self.model.trainable_variables)

    def _test_replica(self, batch):
        self._compiled("evaluate", self._evaluate)(batch)

    def _compiled(self, name, fn):
        """`fn` as this replica's own XLA-compiled function, or `fn` without XLA.

        One function per replica, traced in its replica's context: it captures that
        replica's variables. A function shared by replicas would capture the first
        replica's, and XLA refuses a variable on another device.
        """
        if not self.plan.jit_compile:
            return fn
        replica = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
        if replica is None:
            raise RuntimeError("Expected a static replica id in the replica context; received a tensor.")
        key = (name, int(replica))
        if key not in self._replica_functions:
            self._replica_functions[key] = tf.function(fn, jit_compile=True)
        return self._replica_functions[key]

    def _gradients(self, batch):
        x, y, weights = batch
        model = self.model
        with tf.GradientTape() as tape:
            predictions = model(x, training=True)
            loss = self._loss(y, predictions, weights)
            scaled = model.optimizer.scale_loss(loss)
        return tape.gradient(scaled, model.trainable_variables)

    def _train_and_update(self, batch):
        self.model.optimizer.apply(self._gradients(batch), self.model.trainable_variables)

    def _evaluate(self, batch):
        x, y, weights = batch
        self._loss(y, self.model(x, training=False), weights)

    def _loss(self, y, predictions, weights):
        """This replica's share of the batch loss; updates the loss and compiled metrics."""
        model = self.model
        per_example = tf.cast(keras.losses.binary_crossentropy(y[:, None], predictions), tf.float32)
        real = tf.cast(weights > 0, tf.float32)
        regularization = tf.add_n(model.losses) if model.losses else 0.0
        self._loss_tracker.update_state(
            tf.math.divide_no_nan(tf.reduce_sum(per_example * real), tf.reduce_sum(real)) + regularization,
            sample_weight=tf.reduce_sum(real),
        )
        model.compute_metrics(x=None, y=y, y_pred=predictions, sample_weight=real)
        # Summed over replicas by the all-reduce: the weighted mean over the global batch.
        replicas = self.strategy.num_replicas_in_sync
        return tf.reduce_sum(per_example * weights) / self.global_batch + regularization / replicas


def install(model, *, plan, global_batch, steps_per_epoch, validation_steps):
    """Makes Keras' fit and evaluate on `model` (compiled in its strategy's scope) run
    the step loop with `plan` (a `step_plan.StepPlan`: steps per call, XLA). The data
    must be `data.make_dataset(..., weighted=True)` batches of `global_batch`,
    `steps_per_epoch` of them a training epoch and `validation_steps` a validation.
    Returns the `StepLoop`."""
    loop = StepLoop(
        model,
        plan=plan,
        global_batch=global_batch,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
    )
    keras_adapter.set_step_functions(model, train=loop.train_function, test=loop.test_function)
    return loop


def of(model):
    """The `StepLoop` installed on `model`, or None (a model trained by Keras' own fit)."""
    loop = getattr(getattr(model, "train_function", None), "__self__", None)
    return loop if isinstance(loop, StepLoop) else None
