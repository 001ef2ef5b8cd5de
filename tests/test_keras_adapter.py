"""trainer/keras_adapter.py: checked on the pinned Keras. Its dropout with Philox named
gives the same masks outside XLA, Philox's inside it; its fit hooks are the checked
internals; its backup names a damaged file (the resume itself: tests/test_run_record.py)."""

import hashlib
import inspect
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import files
from trainer import keras_adapter as adapter
from trainer import models
from trainer import step_loop
from trainer import step_plan

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Of keras/src/backend/tensorflow/random.py's `dropout` at TESTED_VERSION: the adapter's
# copy must be re-read against Keras's when this changes.
KERAS_DROPOUT_SOURCE_SHA256 = "47a159de0b6729e28a3b77cc8454ecc018652d8bd72d0a710180b8b3db1a2c22"
# Of BackupAndRestore._save_model, whose steps keras_adapter.Backup repeats with atomic writes.
KERAS_BACKUP_SAVE_SOURCE_SHA256 = "5eb7b53ca13ad33d97bdb44f3208f772d2fe030f5d3b3f3fcced5322821f32b7"


def test_installed_keras_is_the_checked_one_and_the_image_pins_it():
    assert adapter.version_mismatch() is None, adapter.version_mismatch()
    pins = re.findall(r"^keras==(\S+)$", (ROOT / "constraints.txt").read_text(), flags=re.M)
    assert pins == [adapter.TESTED_VERSION]
    source = inspect.getsource(adapter._keras_dropout).encode()
    assert hashlib.sha256(source).hexdigest() == KERAS_DROPOUT_SOURCE_SHA256, (
        "Keras's backend dropout changed: compare it with trainer/keras_adapter._philox_dropout."
    )
    source = inspect.getsource(keras.callbacks.BackupAndRestore._save_model).encode()
    assert hashlib.sha256(source).hexdigest() == KERAS_BACKUP_SAVE_SOURCE_SHA256, (
        "Keras's BackupAndRestore._save_model changed: compare it with trainer/keras_adapter.Backup._save_model."
    )


def test_other_versions_and_backends_are_named_and_refused():
    assert adapter.version_mismatch(installed="3.16.0") == (
        f"Expected keras=={adapter.TESTED_VERSION} (the version trainer/keras_adapter.py is "
        "checked with). Received: keras 3.16.0."
    )
    assert "Received: jax" in adapter.version_mismatch(backend="jax")


@pytest.mark.parametrize("noise_shape", [None, (4, 1, 6)])  # Dropout, then SpatialDropout1D's shape
def test_outside_xla_the_masks_are_keras_own(noise_shape):
    inputs = tf.reshape(tf.range(1.0, 4 * 5 * 6 + 1), (4, 5, 6))
    # Two generators from one seed: each call advances its state the same way.
    ours, theirs = keras.random.SeedGenerator(7), keras.random.SeedGenerator(7)
    for _ in range(3):  # eagerly, three successive draws
        expected = adapter._keras_dropout(inputs, 0.3, noise_shape=noise_shape, seed=theirs)
        got = adapter._philox_dropout(inputs, 0.3, noise_shape=noise_shape, seed=ours)
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    graph = tf.function(lambda fn, seed: fn(inputs, 0.3, noise_shape=noise_shape, seed=seed))
    np.testing.assert_array_equal(
        graph(adapter._philox_dropout, ours).numpy(), graph(adapter._keras_dropout, theirs).numpy()
    )
    assert adapter._philox_dropout(inputs, 0.0) is inputs
    assert not np.any(adapter._philox_dropout(inputs, 1.0).numpy())


def test_installed_keras_layers_draw_philox_under_xla():
    assert adapter.install() is True and adapter.installed()
    assert adapter.install() is True  # a second call keeps it
    inputs = tf.ones((64, 40, 8))
    layer = keras.layers.Dropout(0.25, seed=3)
    seed = adapter.keras_tf_random._cast_seed(keras.random.SeedGenerator(3).state.value)

    @tf.function(jit_compile=True)
    def compiled():
        return layer(inputs, training=True), tf.nn.experimental.stateless_dropout(
            inputs, rate=0.25, seed=seed, rng_alg="philox"
        )

    dropped, philox = (tensor.numpy() for tensor in compiled())
    np.testing.assert_array_equal(dropped, philox)  # the layer's mask is XLA's Philox stream
    kept = dropped != 0
    assert 0.70 < kept.mean() < 0.80  # a quarter dropped, of 20,480
    np.testing.assert_allclose(dropped[kept], 1 / 0.75)


def test_with_philox_dropout_only_other_random_layers_keep_xla_off():
    def build(architecture, **hparams):
        return models.build_model(architecture, vocab_size=30, embedding_dim=4, max_length=12, **hparams)

    philox = dict(except_philox_dropout=True)
    assert step_plan.random_layers(build("conv_lstm")) != []
    assert step_plan.random_layers(build("conv_lstm"), **philox) == []
    assert step_plan.random_layers(build("gap", dropout=0.3, spatial_dropout=0.2), **philox) == []
    assert step_plan.random_layers(build("bilstm", recurrent_dropout=0.1), **philox) == []
    noisy = keras.Sequential([
        keras.Input((3,)), keras.layers.Dropout(0.5), keras.layers.GaussianNoise(0.1), keras.layers.Dense(1)
    ])
    assert [path.split("_")[0] for path in step_plan.random_layers(noisy, **philox)] == ["gaussian"]


def test_the_fit_internals_are_the_checked_ones():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(RuntimeError, match="Expected a compiled model"):
        adapter.set_step_functions(model, train=None, test=None)
    model.compile("adam", "mse")
    assert adapter.loss_tracker(model).name == "loss"
    assert step_loop.of(model) is None


def test_a_backup_that_cannot_be_read_is_named(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    backup = adapter.Backup(str(tmp_path / "backup"), double_checkpoint=True, delete_checkpoint=False)
    backup.set_model(model)
    backup.on_epoch_end(0)
    backup.on_epoch_end(1)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json", "training_metadata.json.bkp"
    ]  # written whole: no temporary left
    assert adapter.initial_epoch(model) == 0
    backup.on_train_begin()
    assert adapter.initial_epoch(model) == 2  # resumed after epoch 2
    (tmp_path / "backup" / "latest.weights.h5.bkp").unlink()
    (tmp_path / "backup" / "latest.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(files.DamagedFile, match=f"Expected a backup to resume from in {tmp_path / 'backup'}"):
        backup.on_train_begin()
