"""Set-up promises that need no network: TensorFlow missing names the extras."""

import subprocess
import sys


def test_missing_tensorflow_names_the_extras():
    # sys.modules[name] = None makes `import name` raise ImportError, as on a plain install.
    code = "import sys; sys.modules['tensorflow'] = None; import trainer"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "s140-trainer[cpu]" in result.stderr and "s140-trainer[gpu]" in result.stderr
