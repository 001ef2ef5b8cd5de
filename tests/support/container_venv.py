"""The training image's Python environment, built without a Docker engine: a fresh
virtual environment installed by the Dockerfile's own install line.

What the Dockerfile does, and what this does instead:

- `FROM tensorflow/tensorflow:${TF_VERSION}-gpu`: `python -m venv` with an interpreter
  of the Dockerfile's PYTHON_VERSION, then `pip install "tensorflow==${TF_VERSION}"`,
  the base image's TensorFlow package. The substitution: PyPI's wheel of that package
  without the CUDA and cuDNN libraries the GPU base image adds (no GPU here), and
  TensorFlow's own dependencies at the versions pip picks today, not the base image's;
  constraints.txt does not pin TensorFlow (the image keeps the base image's).
- `COPY setup.py constraints.txt <packages> ./` into WORKDIR: the same COPY sources
  copied into a fresh directory, without what .dockerignore keeps out (__pycache__,
  *.pyc, *.egg-info); nothing else of the repository is there.
- `RUN python3 -m pip install --constraint constraints.txt ".[cloud,glove,plots]" ...`
  and the checks chained to it: every such RUN of the Dockerfile, read from it, run
  by /bin/sh in that directory with the ARG defaults and the ENV of the Dockerfile,
  and the venv's bin/ first on PATH, so `python3` and the console scripts are the
  venv's. The changes to the ENV, for speed only: PIP_NO_CACHE_DIR is dropped (pip may
  use its cache) and PIP_NO_COMPILE=1 is added (pip does not byte-compile the ~1.5 GB
  it installs; Python compiles what runs, on first import). The package is installed
  non-editable, as in the image.

The venv is kept under ~/.cache/s140/image-py<version>-<hash> (tests/support/cached_venv.py),
the hash over Dockerfile, constraints.txt and setup.py: a change to any of them builds a
new venv. When only the package's sources changed since the venv was last installed,
the same RUN line runs again in it (as Docker reruns the layer after a changed COPY):
the pinned requirements are already there, and pip reinstalls the package from the
fresh copy. A test run holds a shared lock on the venv while it uses it, so a run with
other sources waits before reinstalling.

Building needs PyPI. When it cannot be built the tests fail and say why; outside CI,
S140_OFFLINE=1 makes them skip instead, naming the reason.
"""

import contextlib
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from support import cached_venv  # venvs kept between runs
from support import image_recipe  # what the Dockerfile says

# What .dockerignore keeps out of the image.
_NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
_SOURCES_MARK = ".s140-sources"  # in the venv: the digest of the sources it was installed from
_INSTALL_TIMEOUT = 1800
# Part of the cache key: change it when this module changes how the venv is built.
_RECIPE = "tensorflow==TF_VERSION, then the Dockerfile's pip install RUN lines; PIP_NO_COMPILE=1"


def _digest(paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.relpath(path, image_recipe.REPO).encode() + b"\0")
        digest.update(pathlib.Path(path).read_bytes() + b"\0")
    return digest.hexdigest()


def _copied_files():
    """The files the Dockerfile's COPY lines bring in, in a stable order."""
    files = []
    for source in image_recipe.copied_sources():
        root = os.path.join(image_recipe.REPO, source)
        if os.path.isfile(root):
            files.append(root)
            continue
        for directory, subdirectories, names in os.walk(root):
            ignored = _NOT_COPIED(directory, subdirectories + names)
            subdirectories[:] = sorted(name for name in subdirectories if name not in ignored)
            files += [os.path.join(directory, name) for name in sorted(names) if name not in ignored]
    return files


def _copy_context(destination):
    """The Dockerfile's COPY sources, copied into `destination` (its WORKDIR)."""
    for source in image_recipe.copied_sources():
        path = os.path.join(image_recipe.REPO, source)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(destination, source), ignore=_NOT_COPIED)
        else:
            shutil.copy2(path, destination)


def _build_environment(python):
    """What a RUN of the Dockerfile sees: its ARG defaults and ENV, the venv first on PATH."""
    environ = {**run_environment(), **image_recipe.arg_defaults()}
    # The changes, for speed only: pip's cache may be used, and pip does not byte-compile
    # the ~1.5 GB it installs (Python compiles what the tests import, on first import).
    environ.pop("PIP_NO_CACHE_DIR", None)
    environ["PIP_NO_COMPILE"] = "1"
    environ["PATH"] = f"{pathlib.Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return environ


def _run(command, python, cwd):
    """`command` run by /bin/sh as a Dockerfile RUN runs it, with the venv's python3."""
    try:
        result = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=_build_environment(python),
                                capture_output=True, text=True, timeout=_INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise cached_venv.BuildError(f"`{command}` did not finish in {error.timeout} s") from error
    if result.returncode != 0:
        raise cached_venv.BuildError(
            f"`{command}` failed with exit code {result.returncode} in {cwd}:\n{result.stderr[-3000:]}")


def _run_install_lines(python):
    """The Dockerfile's pip install RUN lines, in a fresh copy of the COPY sources."""
    sources = _digest(_copied_files())
    with tempfile.TemporaryDirectory(prefix="s140-image-workdir-") as workdir:
        _copy_context(workdir)
        for command in image_recipe.pip_install_runs():
            _run(command, python, workdir)
    (pathlib.Path(python).parent.parent / _SOURCES_MARK).write_text(sources)


def _build(python):
    # The base image's TensorFlow (see the module docstring for what differs).
    _run('python3 -m pip install "tensorflow==${TF_VERSION}"', python, cwd=pathlib.Path(python).parent.parent)
    _run_install_lines(python)


def _base_python(version):
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        raise cached_venv.BuildError(
            f"The Dockerfile's PYTHON_VERSION is {version}: expected this interpreter or a python{version} "
            f"on PATH to make the image's venv. Received Python {sys.version.split()[0]} and none on PATH.")
    return found


def venv_path():
    version = image_recipe.arg_defaults()["PYTHON_VERSION"]
    key = _digest([image_recipe.DOCKERFILE, image_recipe.CONSTRAINTS, os.path.join(image_recipe.REPO, "setup.py")])
    key = hashlib.sha256(f"{key} python{version} {_RECIPE}".encode()).hexdigest()[:16]
    return cached_venv.cache_dir() / f"image-py{version}-{key}"


@contextlib.contextmanager
def image_venv():
    """Yields the image venv's bin/python3, built or brought up to date with this
    repository's sources, and held (a shared lock) until the block ends."""
    path = venv_path()
    base = _base_python(image_recipe.arg_defaults()["PYTHON_VERSION"])
    with contextlib.ExitStack() as stack:
        with cached_venv.locked(path):
            python = cached_venv.cached_venv(path, _build, base_python=base)
            mark = path / _SOURCES_MARK
            if not mark.exists() or mark.read_text() != _digest(_copied_files()):
                with cached_venv.locked(path, "use"):  # waits for the runs that use it now
                    _run_install_lines(python)
            stack.enter_context(cached_venv.locked(path, "use", shared=True))
        yield path / "bin" / "python3"


def entrypoint(python):
    """The Dockerfile's ENTRYPOINT with its interpreter replaced by the venv's."""
    command = image_recipe.entrypoint()
    return [str(pathlib.Path(python).parent / command[0]), *command[1:]]


def run_environment(environ=os.environ):
    """`environ` as a container process sees it: the Dockerfile's ENV on top, nothing of
    a development venv or of this repository on Python's path."""
    kept = {key: value for key, value in environ.items() if not key.startswith("PYTHON") and key != "VIRTUAL_ENV"}
    return {**kept, **image_recipe.env()}


@pytest.fixture(scope="session")
def image_python():
    """bin/python3 of the training image's venv (see the module docstring)."""
    with contextlib.ExitStack() as stack:
        failure = None
        try:
            python = stack.enter_context(image_venv())
        except cached_venv.BuildError as error:
            failure = f"the training image's venv could not be built at {venv_path()}: {error}"
        if failure is not None:  # outside the except: the message, not a chain of tracebacks
            if os.environ.get("S140_OFFLINE") and os.environ.get("CI") != "true":
                pytest.skip(f"S140_OFFLINE is set and {failure}")
            pytest.fail(f"{failure}\nIt needs PyPI (pip's network); outside CI, S140_OFFLINE=1 skips these tests.",
                        pytrace=False)
        yield python
