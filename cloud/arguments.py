"""s140-submit's argument helpers: the job command's arguments after `--`, the flags
read from them, and the checks every cloud job shares.

The job's own flags (s140-preprocess's, s140-train's, s140-tune's) are absl flags
defined in their CLI modules, which import TensorFlow; s140-submit reads them from the
argument list instead of importing those modules.
"""

import argparse
import re

from cloud import storage
from common import errors


class SpecError(errors.UserError, ValueError):
    """A job cannot be specified as requested; the message says what to change."""


# Vertex mounts every bucket the job may read at /gcs/BUCKET (Cloud Storage FUSE).
FUSE_PREFIX = "/gcs/"


def is_job_visible(path):
    """True for a path a Vertex job's machines can read: gs:// or its /gcs/ FUSE path."""
    return storage.is_gs_uri(path) or path.startswith(FUSE_PREFIX)


def split_job_args(argv):
    """(s140-submit's arguments, the job command's arguments): split at the first `--`."""
    argv = list(argv)
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _flag_slots(args, name):
    """(index, prefix, value) of each value given to --name: `--name=v` is (i, "--name=",
    v), `--name v` is (i + 1, "", v)."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            yield i, f"--{name}=", arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args) and not args[i + 1].startswith("--"):
            yield i + 1, "", args[i + 1]


def flag_values(args, name):
    """Values given to --name in a list of command-line arguments (--name=v or --name v)."""
    return [value for _, _, value in _flag_slots(args, name)]


def replace_flag_values(args, name, rewrite):
    """A copy of `args` with every value of --name passed through `rewrite(value)`."""
    out = list(args)
    for index, prefix, value in list(_flag_slots(args, name)):
        out[index] = prefix + rewrite(value)
    return out


def check_remote_paths(args, names, *, fuse=False):
    """Raises SpecError when a path flag of a cloud job names a local path: the job's
    machines cannot see this machine's files. gs:// passes, and with `fuse` (Vertex
    jobs; Dataflow workers have no such mount) so does the Cloud Storage FUSE path
    /gcs/BUCKET/..., a local path inside the job."""
    for name in names:
        for value in flag_values(args, name):
            for item in value.split(","):
                if item and not (is_job_visible(item) if fuse else storage.is_gs_uri(item)):
                    fuse_hint = (f", or give its Cloud Storage FUSE path {FUSE_PREFIX}BUCKET/... as the job sees it"
                                 if fuse else "")
                    raise SpecError(
                        f"Expected --{name} of a cloud job to be a gs:// location. Received: "
                        f"{item!r}, a path the job's machines cannot see. Name a gs://BUCKET/... "
                        f"location instead{fuse_hint}."
                    )


def env_pair(text):
    """argparse type of --env: "NAME=VALUE" -> (NAME, VALUE)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"Expected NAME=VALUE. Received: {text!r}.")
    return name, value


def require(value, flag, example):
    if not value:
        raise SpecError(f"Expected --{flag}, e.g. --{flag}={example}. Received: none.")


def display_name(command, job_args, now):
    """s140-COMMAND-[ARCHITECTURE-]YYYYMMDD-HHMMSS: valid as a Vertex display name and as
    a Dataflow job name."""
    architecture = (flag_values(job_args, "architecture") or [None])[-1]
    parts = ["s140", command] + ([architecture.replace("_", "-")] if architecture else [])
    return "-".join(parts + [now.strftime("%Y%m%d-%H%M%S")])


# Loose on purpose (the API has the last word): lower-case id, optionally "domain:id".
_PROJECT = re.compile(r"([-a-z0-9.]+:)?[a-z][-a-z0-9]{0,62}")
_REGION = re.compile(r"[a-z]+-[a-z]+\d+")


def check_project_and_region(project, region):
    """Raises SpecError unless both look like a Google Cloud project id and region."""
    if not project:
        raise SpecError("Expected --project, the Google Cloud project id (e.g. my-project). Received: none.")
    if not _PROJECT.fullmatch(project):
        raise SpecError(
            f"Expected --project to be a project id (lower-case letters, digits and hyphens, "
            f"starting with a letter). Received: {project!r}."
        )
    if not region:
        raise SpecError("Expected --region, e.g. us-central1. Received: none.")
    if not _REGION.fullmatch(region):
        raise SpecError(f"Expected --region such as us-central1 or europe-west4. Received: {region!r}.")
