"""TensorFlow, imported quietly: `from common.quiet_tf import tf`.

Every module of the package that needs TensorFlow imports it from here, so it loads the
same way in a CLI, in a Beam worker process and in a test:

* TensorFlow comes from an extra (`[cpu]` or `[gpu]`) rather than from install_requires
  so that a CPU-only machine never downloads the CUDA wheels; a bare ImportError
  becomes an instruction.
* TF_CPP_MIN_LOG_LEVEL=2 hides TensorFlow's own INFO and WARNING lines, but not all of
  them: the oneDNN and "Could not find cuda drivers" lines are written through absl's
  C++ logging before it is initialised (which writes everything to stderr, whatever the
  level), and "failed call to cuInit" on a machine without a GPU is an ERROR line. So
  TensorFlow is imported, and its devices discovered, inside `start_up_noise_filtered`,
  with file descriptor 2 pointing at a temporary file; afterwards every captured line
  except those known start-up lines is written to the real stderr, in order. Nothing
  of the program's own output is lost. Beam's worker processes import TensorFlow
  themselves, and every one of them would print those lines again.
* The level defaults to 2 before TensorFlow is imported: the package's processes (the
  CLIs, Beam's workers and the processes they start, which inherit it) all want
  TensorFlow quiet. A user who sets TF_CPP_MIN_LOG_LEVEL to 0 or 1 asked for
  TensorFlow's lines and gets them all.

TensorFlow is imported on the first `from common.quiet_tf import tf`, not when this
module is: the preprocessing launcher only calls `quiet_level` (its process never needs
TensorFlow's 764 MiB; its Beam workers inherit the level). Importing the package's
modules from Python (a notebook) sets the same default level, on purpose.
"""

import contextlib
import os
import re
import sys
import tempfile
import threading

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "2"  # hide INFO and WARNING

# The start-up lines of a TensorFlow import and device discovery (TF 2.16 - 2.21).
_START_UP_NOISE = re.compile(
    rb"All log messages before absl::InitializeLog\(\) is called"
    rb"|\] oneDNN custom operations are on"
    rb"|\] Could not find cuda drivers on your machine"
    rb"|failed call to cuInit"
    rb"|\] This TensorFlow binary is optimized to use available CPU instructions"
    rb"|^To enable the following instructions: .*rebuild TensorFlow"
)


def _wants_tensorflow_lines():
    try:
        return int(os.environ[LEVEL_VARIABLE]) < int(DEFAULT_LEVEL)
    except (KeyError, ValueError):
        return False


@contextlib.contextmanager
def start_up_noise_filtered():
    """Captures file descriptor 2 and replays it without the start-up lines; does
    nothing when the user asked for TensorFlow's lines (TF_CPP_MIN_LOG_LEVEL 0 or 1)."""
    if _wants_tensorflow_lines():
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured:
                if not _START_UP_NOISE.search(line):
                    os.write(2, line)


def quiet_level():
    """TF_CPP_MIN_LOG_LEVEL=2 unless the user set it; inherited by child processes."""
    os.environ.setdefault(LEVEL_VARIABLE, DEFAULT_LEVEL)


def _import_tensorflow():
    quiet_level()
    with start_up_noise_filtered():
        try:
            import tensorflow
        except ImportError as error:  # pragma: no cover - exercised only on a broken install
            raise ImportError(
                "s140-trainer needs TensorFlow, which is installed through an extra. Expected one of: "
                "`pip install 's140-trainer[cpu]'` (CPU-only build) or `pip install 's140-trainer[gpu]'` "
                f"(CUDA build). Received: {error}"
            ) from error
        # Device discovery is where "failed call to cuInit" is written; do it now. Listing
        # physical devices does not start the runtime: logical devices can still be set up.
        tensorflow.config.list_physical_devices()
    return tensorflow


_import_lock = threading.Lock()  # two threads' first imports must not both redirect fd 2


def __getattr__(name):  # PEP 562: `tf` is imported on first use (see the docstring)
    if name != "tf":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _import_lock:
        if "tf" not in globals():
            globals()["tf"] = _import_tensorflow()
    return globals()["tf"]
