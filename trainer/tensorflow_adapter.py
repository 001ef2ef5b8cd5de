"""Every reach into TensorFlow's internals, in one place, each checked on `TESTED_VERSION`.

TensorFlow is pinned (setup.py TF_VERSION) and tests/test_tensorflow_adapter.py fails
when the installed version moves, or when an upstream bug worked around here is fixed,
so that the day a workaround can go is visible.

* **Fresh collective keys** (`fresh_collective_keys`). A second MirroredStrategy in one
  process reuses the first one's collective keys and its all-reduces collide
  (tensorflow/tensorflow#62790); TensorFlow's own tests move the private key base for
  each new strategy. The package does the same before every strategy after the first
  in one process (a sweep's retraining, a comparison's next architecture).
* **MultiWorkerMirroredStrategy under Keras 3** (`multi_worker_strategy`). Keras 3's fit
  fails with it out of the box (keras-team/keras#20585): fit reduces the first (x, y)
  batch, a tuple, to build the model, and reduces each step's scalar logs with axis=0.
  MirroredStrategy accepts both; the subclass here maps over nested values and reduces
  a scalar across replicas (axis=None), which is what a MEAN over axis 0 of one value
  per replica means.
"""

from common.quiet_tf import tf

TESTED_VERSION = "2.21"  # major.minor of setup.py's TF_VERSION = "2.21.*"


def version_mismatch(installed=None):
    """Why this adapter was not checked against the installed TensorFlow, or None."""
    installed = tf.__version__ if installed is None else installed
    if ".".join(installed.split(".")[:2]) != TESTED_VERSION:
        return (f"Expected tensorflow {TESTED_VERSION}.* (the version trainer/tensorflow_adapter.py is "
                f"checked with). Received: tensorflow {installed}.")
    return None


def fresh_collective_keys():
    """Moves MirroredStrategy's collective key base past the keys of every strategy
    made so far in this process (tensorflow/tensorflow#62790)."""
    mirrored = tf.distribute.MirroredStrategy
    if hasattr(mirrored, "_collective_key_base"):
        mirrored._collective_key_base += 100_000


class _KerasCompatibleMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3's fit passes it
    (keras-team/keras#20585; see the module docstring)."""

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def leaf(v):
            local = self.experimental_local_results(v)[0]
            leaf_axis = None if local.shape.rank == 0 else axis
            return parent.reduce(reduce_op, v, leaf_axis)

        return tf.nest.map_structure(leaf, value)


def multi_worker_strategy():
    """A MultiWorkerMirroredStrategy that Keras 3's fit can use. It reads TF_CONFIG
    itself and uses all local GPUs, or the CPU."""
    return _KerasCompatibleMultiWorkerMirroredStrategy()
