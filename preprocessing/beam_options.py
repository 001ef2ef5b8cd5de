"""Beam pipeline options from the command line, strictly.

Beam only warns about options it does not know ("Discarding unparseable args"), so a
typo such as `--direct_num_worker=2` would silently run with the default. Here any
argument that neither our flags nor a Beam options class declares fails the command.
"""

import os

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from common import errors

_LOCAL_RUNNERS = (None, "DirectRunner", "direct")
_WORKER_FLAGS = ("--direct_num_workers", "--direct_running_mode")
# Each worker process holds its share of every stage's input (the FnApiRunner hands a
# stage's input to its workers in one bundle each), so a many-core machine gets at most
# this many by default.
MAX_DEFAULT_WORKERS = 8


class UnknownFlagError(errors.UserError, ValueError):
    pass


def strict_pipeline_options(beam_args):
    """PipelineOptions from `beam_args`, or UnknownFlagError naming every unknown one."""
    beam_args = list(beam_args)
    positional = [arg for arg in beam_args if not arg.startswith("-")]
    if positional:
        raise UnknownFlagError(
            f"Expected only --flag=value arguments. Received positional arguments: {positional}."
        )
    options = PipelineOptions(beam_args)
    known = options.get_all_options(drop_default=False)
    with_unknown = options.get_all_options(drop_default=False, retain_unknown_options=True)
    unknown = sorted(set(with_unknown) - set(known))
    if unknown:
        raise UnknownFlagError(
            "Unknown flags: "
            + ", ".join(f"--{name}" for name in unknown)
            + ". Expected this command's own flags (see --helpfull) or Beam pipeline options "
            "such as --runner, --direct_num_workers, --project, --region, --temp_location."
        )
    return options


def runner_for(options):
    """The runner to use. Locally this is Beam's in-process FnApiRunner rather than the
    DirectRunner default, which since Beam 2.67 may hand the job to Prism: Prism turns a
    failure into a generic RuntimeError and drops our error message."""
    name = options.view_as(StandardOptions).runner
    if name in _LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return name


def _usable_cores():
    # The cores this process may run on (a container's or taskset's share), where the
    # platform says; os.sched_getaffinity is Linux-only.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_parallelism(beam_args, cpu_count=None):
    """The Beam args that give a local run one worker process per core (at most
    MAX_DEFAULT_WORKERS), when the job runs
    locally and the user chose neither --direct_num_workers nor --direct_running_mode
    (theirs always win); otherwise none.

    Beam's default is one worker in the launcher's process, so a local run used one core.
    Processes rather than threads: the standardizer runs in Python (text_mirror.py) and
    holds the GIL, multi_threading failed at 1.6M rows inside Beam 2.77's FnApiRunner
    ("Invalid PaneInfoEncoding"), and processes measured faster than one in-process
    worker (docs/benchmarks-history.md). On Dataflow and other runners nothing is added. The output
    does not depend on this: the vocabulary is sorted by count then token, and the split
    and shard of a row come from its tweet id."""
    beam_args = list(beam_args)
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner
    chosen = any(arg.split("=", 1)[0] in _WORKER_FLAGS for arg in beam_args)
    workers = min(cpu_count or _usable_cores(), MAX_DEFAULT_WORKERS)
    if runner not in _LOCAL_RUNNERS or chosen or workers < 2:
        return []
    return [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
