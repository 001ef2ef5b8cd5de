"""Beam pipeline options from the command line, strictly.

Beam only warns about options it does not know ("Discarding unparseable args"), so a
typo such as `--direct_num_worker=2` would silently run with the default. Here any
argument that neither our flags nor a Beam options class declares fails the command.
"""

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions


class UnknownFlagError(ValueError):
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
    if name in (None, "DirectRunner", "direct"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return name
