"""trainer/tensorflow_adapter.py: checked on the pinned TensorFlow, and each upstream bug
it works around still present (when one is fixed, its test says the workaround can go)."""

import os
import pathlib
import subprocess
import sys

from trainer import tensorflow_adapter as adapter

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_the_installed_tensorflow_is_the_checked_one():
    assert adapter.version_mismatch() is None, adapter.version_mismatch()
    assert "Received: tensorflow 2.22.0." in adapter.version_mismatch("2.22.0")
    setup = (REPO / "setup.py").read_text()
    assert f'TF_VERSION = "{adapter.TESTED_VERSION}.*"' in setup


def test_fresh_collective_keys_moves_the_private_key_base():
    # tensorflow/tensorflow#62790: the attribute the workaround moves must still exist.
    from common.quiet_tf import tf

    base = tf.distribute.MirroredStrategy._collective_key_base
    adapter.fresh_collective_keys()
    assert tf.distribute.MirroredStrategy._collective_key_base == base + 100_000


_REDUCES = """
import sys
from trainer import tensorflow_adapter
from common.quiet_tf import tf

plain = tf.distribute.MultiWorkerMirroredStrategy()
ours = tensorflow_adapter.multi_worker_strategy()
pair, scalar = (tf.constant([1.0, 3.0]), tf.constant([2.0])), tf.constant(3.0)
for name, strategy in (("plain", plain), ("ours", ours)):
    for value in (pair, scalar):
        try:
            result = strategy.reduce("MEAN", value, axis=0)
            print(name, "ok", tf.nest.map_structure(lambda t: float(t.numpy()), result))
        except (AttributeError, ValueError):  # a tuple has no shape; axis 0 of a scalar
            print(name, "fails")
"""


def test_keras_fit_reductions_fail_on_plain_multi_worker_and_work_on_ours():
    # keras-team/keras#20585: fit reduces an (x, y) tuple and scalar logs with axis=0.
    # When the plain strategy stops failing here, tensorflow_adapter's subclass can go.
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    result = subprocess.run([sys.executable, "-c", _REDUCES], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "plain fails",
        "plain fails",
        "ours ok (2.0, 2.0)",
        "ours ok 3.0",
    ]
