"""The KerasTuner version the adapter is tested with is the one installed and pinned."""

import importlib.metadata
import pathlib
import re

from tuning import keras_tuner_adapter as kt

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_installed_keras_tuner_is_the_tested_one():
    installed = importlib.metadata.version("keras-tuner")
    assert kt.installed_version() == installed
    # The message names both versions, so an upgrade says what to check.
    assert kt.version_mismatch() is None, kt.version_mismatch()
    assert installed == kt.TESTED_VERSION, (
        f"keras-tuner {installed} is installed; tuning/keras_tuner_adapter.py is tested "
        f"with {kt.TESTED_VERSION}."
    )


def test_setup_py_pins_the_tested_version():
    pins = re.findall(r'"keras-tuner==([^"]+)"', (ROOT / "setup.py").read_text())
    assert pins == [kt.TESTED_VERSION], (
        f"setup.py pins keras-tuner {pins}; tuning/keras_tuner_adapter.py is tested with "
        f"{kt.TESTED_VERSION}. Move both together."
    )


def test_a_different_version_is_named_with_the_tested_one():
    message = kt.version_mismatch(installed="9.9.9")
    assert f"keras-tuner=={kt.TESTED_VERSION}" in message and "keras-tuner 9.9.9" in message


def test_hyperband_schedule_is_keras_tuners():
    # max_epochs 9, factor 3: (trials, epochs each adds) per round of brackets 3x9;
    # 5x3 -> 2x9; 9x1 -> 3x3 -> 1x9.
    assert kt.hyperband_schedule(max_epochs=9, factor=3) == [
        (3, 9), (5, 3), (2, 6), (9, 1), (3, 2), (1, 6),
    ]
