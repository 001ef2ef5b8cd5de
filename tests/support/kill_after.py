"""SIGKILL a started CLI once it has got far enough: the interruption the resume tests
repeat."""

import os
import signal
import subprocess
import time

from trainer import callbacks


def kill_when(process, ready, *, timeout, waiting_for, poll_seconds=0.01):
    """Kills `process` with SIGKILL as soon as `ready()` is true.

    Fails the test when the process ends first or `ready()` stays false for `timeout`
    seconds (`waiting_for` names what did not happen).
    """
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, "the first run ended before it could be killed"
            assert time.monotonic() < deadline, f"no {waiting_for} within {timeout} s"
            time.sleep(poll_seconds)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL


def kill_after_epochs(command, *, env, cwd, history_path, epochs=2, timeout=240):
    """Runs `command` until `history_path` lists `epochs` epochs, then SIGKILLs it. Two
    recorded epochs mean epoch 0's backup is written (history is recorded before the
    backup of the same epoch).

    Returns:
      The history read after the kill.
    """
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    kill_when(
        process, lambda: len(callbacks.read_history(str(history_path)).get("epoch", [])) >= epochs,
        timeout=timeout, waiting_for=f"{epochs} epochs in {history_path}",
    )
    return callbacks.read_history(str(history_path))
