"""The prebuilt prediction container can serve what the trainer exports.

`s140-submit deploy` and `batch-predict` serve exports with Vertex's newest prebuilt
TensorFlow 2 prediction image (tf2-cpu.2-15: TensorFlow 2.15), while the trainer writes
them with TensorFlow 2.21. This test trains a real model on tiny data, then loads the
export with plain `tf.saved_model.load` under TensorFlow 2.15 in a side environment and
scores raw tweets through `serving_default`, as TensorFlow Serving in that container
does for {"instances": [...]}. The probabilities must equal the trainer's own.

The side environment (python -m venv + pip install tensorflow-cpu==2.15.*) is created
on first use and cached under ~/.cache/s140/serving-tf-2.15 (tests/support/cached_venv.py;
$S140_SERVING_VENV overrides); the test skips when it cannot be created (no network, or
a Python that TensorFlow 2.15 has no wheels for).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from cloud import serving
from trainer import config
from trainer import export

from support import cached_venv  # venvs kept between runs

TWEETS = ["I love this, what a great happy day!", "terrible day, hate it", "LOOOOVE it @bob http://t.co/x", ""]

# What TensorFlow Serving does with {"instances": [...]} for a one-input, one-output
# signature: the instances are the input batch, the one output's values the predictions.
_SCORE = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
serve = loaded.signatures["serving_default"]
request = json.loads(sys.argv[2])
outputs = serve(text=tf.constant(request["instances"]))
(name, values), = outputs.items()
print(json.dumps({"tf_version": tf.__version__, "output": name, "predictions": values.numpy().tolist()}))
"""


def _install_serving_tensorflow(python):
    version = serving.SERVING_TF_VERSION
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"tensorflow-cpu=={version}.*"],
        capture_output=True, text=True, timeout=1800,
    )
    if install.returncode != 0:
        raise cached_venv.BuildError(f"could not install tensorflow-cpu=={version}.* into {python}: "
                                     f"{install.stderr[-500:]}")


def _side_python():
    version = serving.SERVING_TF_VERSION
    if sys.version_info[:2] > (3, 11):
        pytest.skip(f"TensorFlow {version} has no wheels for Python {sys.version_info[0]}.{sys.version_info[1]}")
    venv = pathlib.Path(os.environ.get("S140_SERVING_VENV") or cached_venv.cache_dir() / f"serving-tf-{version}")
    try:
        with cached_venv.locked(venv):
            return cached_venv.cached_venv(venv, _install_serving_tensorflow)
    except cached_venv.BuildError as error:
        pytest.skip(str(error))


def test_tf_2_15_loads_the_export_and_scores_raw_tweets(sample_data_dir, tmp_path):
    python = _side_python()
    from trainer import train

    metrics = train.train(config.TrainConfig(data_dir=sample_data_dir, job_dir=str(tmp_path / "run"),
                                             architecture="gap", epochs=1), environ={})
    model_dir = metrics["outputs"]["model_dir"]
    expected = export.load_serving_model(model_dir)(TWEETS).tolist()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}  # nothing of this repository
    result = subprocess.run([str(python), "-c", _SCORE, model_dir, json.dumps({"instances": TWEETS})],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["tf_version"].startswith(serving.SERVING_TF_VERSION + ".")
    assert answer["output"] == export.OUTPUT_KEY
    assert answer["predictions"] == pytest.approx(expected, abs=1e-5)
    assert len(answer["predictions"]) == len(TWEETS) and all(0.0 < p < 1.0 for p in answer["predictions"])
