"""Virtual environments that tests build once and keep between runs, under
~/.cache/s140/ ($S140_CACHE_DIR overrides): TensorFlow 2.15's for the serving test
(tests/test_serving_container.py), the training image's (tests/support/container_venv.py).

A venv is built at NAME.partial and renamed to NAME only once its installation
succeeded, so an interrupted build is never taken for a complete one. The rename leaves
the console scripts' first lines naming the .partial interpreter: start what is in
such a venv with `bin/python -m ...` (pip rewrites a package's scripts when it
reinstalls the package). Old venvs are not deleted: remove ~/.cache/s140 to free space.
"""

import contextlib
import fcntl
import os
import pathlib
import shutil
import subprocess
import sys


class BuildError(RuntimeError):
    """The venv could not be created or its packages could not be installed."""


def cache_dir():
    return pathlib.Path(os.environ.get("S140_CACHE_DIR") or pathlib.Path.home() / ".cache" / "s140")


@contextlib.contextmanager
def locked(path, purpose="build", *, shared=False):
    """Holds a lock on NAME.PURPOSE.lock beside the venv at `path` (exclusive unless
    `shared`): test runs on one machine do not build, or change, one venv together."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.{purpose}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def cached_venv(path, install, *, base_python=sys.executable):
    """bin/python of the venv at `path`, created on first use (hold `locked(path)`).

    Args:
      path: where the complete venv lives.
      install: called with the new venv's bin/python (under NAME.partial); raises
        `BuildError` when the packages cannot be installed.
      base_python: the interpreter that runs `-m venv`.

    Raises:
      BuildError: from `install`, or when `-m venv` fails.
    """
    path = pathlib.Path(path)
    python = path / "bin" / "python"
    if python.exists():
        return python
    partial = path.with_name(path.name + ".partial")
    made = subprocess.run([str(base_python), "-m", "venv", "--clear", str(partial)],
                          capture_output=True, text=True, timeout=600)
    if made.returncode != 0:
        raise BuildError(f"`{base_python} -m venv {partial}` failed: {made.stderr[-1000:]}")
    install(partial / "bin" / "python")
    if path.exists():  # a directory without bin/python is a leftover, not a complete build
        shutil.rmtree(path)
    partial.rename(path)  # only a complete environment gets the cached name
    return python
