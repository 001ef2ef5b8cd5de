"""One trial of a Vertex hyperparameter tuning job: Vizier's parameters -> s140-train.

Vertex starts each trial's container with the job's arguments followed by the trial's
parameters as --parameter_id=value (`cloud.hptune` declares them):

  hptrial --data_dir=gs://B/data --epochs=10 --architecture=gap \\
      --learning_rate=0.0012 --gap__dense_units=64.0 --gap__dropout=0.2

This module turns that into the s140-train command line

  --data_dir=gs://B/data --epochs=10 --architecture=gap --learning_rate=0.0012 \\
      --hparams=dense_units=64,dropout=0.2

with each value cast to the type of the model's default (Vizier sends discrete values
as doubles), and runs s140-train in this process.
"""

import sys

from cloud import hptune
from common import cli
from common import errors

ARCHITECTURE_FLAG = "--architecture="
LEARNING_RATE_FLAG = "--learning_rate="


class TrialArgumentError(errors.UserError, ValueError):
    """The trial's arguments do not match the study spec `cloud.hptune` writes."""


def _split(argv):
    """(the trial's parameters as tuning.search_space names, the other arguments)."""
    from tuning import search_space

    values, rest = {}, []
    for arg in argv:
        name, sep, value = arg.partition("=")
        flag = name.removeprefix("--")
        if sep and name.startswith("--") and (
            hptune.PARAMETER_SEPARATOR in flag or flag in (search_space.ARCHITECTURE, search_space.LEARNING_RATE)
        ):
            architecture, _, keyword = flag.partition(hptune.PARAMETER_SEPARATOR)
            key = search_space.hp_name(architecture, keyword) if keyword else flag
            if key in values:
                raise TrialArgumentError(f"Expected --{flag} once in a trial. Received it twice.")
            values[key] = _number(flag, value) if key == search_space.LEARNING_RATE else _value(value)
        else:
            rest.append(arg)
    return values, rest


def _value(text):
    """A trial parameter's value: a number, or the text of a categorical one (architecture,
    pooling, wide); search_space.trial_config casts it to the model's type and the model
    checks it."""
    try:
        return float(text)
    except ValueError:
        return text


def _number(flag, text):
    try:
        return float(text)
    except ValueError as error:
        raise TrialArgumentError(f"Expected --{flag} to be a number. Received: {text!r}.") from error


def trainer_args(argv):
    """s140-train's arguments for a trial's `argv` (without the program name).

    Raises:
      TrialArgumentError: without --architecture or --learning_rate, or with a
        parameter of an architecture other than the trial's.
    """
    from tuning import search_space

    values, rest = _split(argv)
    for required in (search_space.ARCHITECTURE, search_space.LEARNING_RATE):
        if required not in values:
            raise TrialArgumentError(
                f"Expected --{required} among a trial's arguments (Vizier sets it). Received: {argv}."
            )
    architecture = values[search_space.ARCHITECTURE]
    foreign = sorted(k for k in values if "/" in k and not k.startswith(architecture + "/"))
    if foreign:
        raise TrialArgumentError(
            f"Expected only parameters of {architecture!r} in this trial. Received: {foreign}. "
            "Was the study spec written by s140-submit hptune?"
        )
    try:
        architecture, learning_rate, hparams = search_space.trial_config(values)
    except (KeyError, ValueError) as error:
        raise TrialArgumentError(f"Expected a trial of the s140 search space. Received {argv}: {error}.") from error
    args = [*rest, f"{ARCHITECTURE_FLAG}{architecture}", f"{LEARNING_RATE_FLAG}{learning_rate!r}"]
    if hparams:
        # Text values go bare (pooling=max): s140-train's --hparams reads them as written.
        args.append("--hparams=" + ",".join(f"{k}={v if isinstance(v, str) else repr(v)}" for k, v in hparams.items()))
    return args


def run():
    sys.exit(cli.guarded("s140 hptrial", _hand_over, sys.argv[1:]))


def _hand_over(argv):
    args = trainer_args(argv)
    print("s140 hptrial: s140-train " + " ".join(args), file=sys.stderr, flush=True)
    from trainer import __main__ as train_main

    sys.argv = ["s140-train", *args]
    train_main.run()


if __name__ == "__main__":
    run()
