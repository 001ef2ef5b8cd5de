"""Start a training CLI and SIGKILL it once its history records a number of epochs: the
interruption the resume tests repeat."""

import os
import signal
import subprocess
import time

from trainer import callbacks


def kill_after_epochs(command, *, env, cwd, history_path, epochs=2, timeout=240):
    """Runs `command` until `history_path` lists `epochs` epochs, then kills it with
    SIGKILL. Two recorded epochs mean epoch 0's backup is written (history is recorded
    before the backup of the same epoch).

    Returns:
      The history read after the kill.
    """
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while len(callbacks.read_history(str(history_path)).get("epoch", [])) < epochs:
            assert process.poll() is None, f"{command[2]} ended before it could be killed"
            assert time.monotonic() < deadline, f"no {epochs} epochs in {history_path} within {timeout} s"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return callbacks.read_history(str(history_path))
