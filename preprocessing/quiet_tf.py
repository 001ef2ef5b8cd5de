"""Keeps TensorFlow's C++ start-up chatter off stderr.

TF_CPP_MIN_LOG_LEVEL=2 hides TensorFlow's own INFO and WARNING lines, but not all of
them: the oneDNN and "Could not find cuda drivers" lines are written through absl's
C++ logging before it is initialised (which writes everything to stderr, whatever the
level), and "failed call to cuInit" on a machine without a GPU is an ERROR line. So
`preprocessing/_tf.py` imports TensorFlow and discovers its devices inside
`start_up_noise_filtered`, with file descriptor 2 pointing at a temporary file;
afterwards every captured line except those known start-up lines is written to the
real stderr, in order. Nothing of the program's own output is lost.

A user who sets TF_CPP_MIN_LOG_LEVEL to 0 or 1 asked for TensorFlow's lines and gets
them all. `import_tensorflow` also sets the level's default, which is process-wide
state (inherited by worker processes), so only entry points call it: each CLI, before
anything else imports TensorFlow.
"""

import contextlib
import os
import re
import sys
import tempfile

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


def import_tensorflow():
    """Sets TF_CPP_MIN_LOG_LEVEL=2 unless the user set it, then imports TensorFlow (and
    discovers its devices) without the start-up lines; returns the module. Call it
    first in a CLI: the level also silences TensorFlow's later INFO and WARNING lines,
    in this process and in the worker processes it starts.
    """
    os.environ.setdefault(LEVEL_VARIABLE, DEFAULT_LEVEL)
    from preprocessing._tf import tf  # quiet (see start_up_noise_filtered)

    return tf
