"""Modules that only name things or wire the Beam graph import without TensorFlow, so
that cloud/ can import their names and `s140-preprocess --help` starts fast."""

import subprocess
import sys

MODULES = ("config", "schema", "counters", "metadata", "transforms", "pipeline", "examples", "embedding", "glove_transforms")


def test_preprocessing_modules_import_without_tensorflow():
    imports = "; ".join(f"import preprocessing.{name}" for name in MODULES)
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; {imports}; print('tensorflow' in sys.modules)"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert result.stdout.strip() == "False", result.stderr[-2000:]
