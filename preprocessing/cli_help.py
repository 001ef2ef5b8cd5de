"""--help of the package's absl commands: the command's own flags, grouped, after its
docstring (which holds the examples).

absl's --help lists the key flags of the module named by sys.argv[0]; under a console
script that is the script, which defines none, so all it printed was "Try --helpfull".
CLI-side only: the command-line modules call `run`; s140-preprocess calls `render` with
its required flags and a footer for Beam's pass-through options.
"""

import sys
import textwrap

from absl import app
from absl import flags

HELP_ARGUMENTS = ("--help", "-h", "-?", "--helpshort")


def help_requested(arguments):
    """Whether `arguments` (argv without the program) ask for the short help; anything
    after "--" is a positional argument, not a flag."""
    for argument in arguments:
        if argument == "--":
            return False
        if argument in HELP_ARGUMENTS:
            return True
    return False


FULL_HELP_FOOTER = "All flags, absl's and TensorFlow's included: --helpfull."


def _describe(flag, required):
    setting = "required" if required else f"default: {flag.default_as_str or 'unset'}"
    head = f"  --{flag.name} ({setting})"
    body = textwrap.fill(' '.join(flag.help.split()), width=88, initial_indent="      ", subsequent_indent="      ")
    return f"{head}\n{body}"


def render(doc, groups, *, required=(), footer=FULL_HELP_FOOTER):
    """`doc`, then each (title, [flag names]) group with each flag's default (or
    "required", for the names in `required`) and help, then `footer`."""
    lines = [doc.strip(), "", ""]  # a blank pair ends the docstring's part
    for title, names in groups:
        lines.append(f"{title}:")
        lines += [_describe(flags.FLAGS[name], name in required) for name in names]
        lines.append("")
    lines.append(textwrap.fill(footer, width=88))
    return "\n".join(lines) + "\n"


def run(main, doc, groups):
    """`app.run(main)`, except that --help prints `render(doc, groups)` and exits 0."""
    if help_requested(sys.argv[1:]):
        sys.stdout.write(render(doc, groups))
        sys.exit(0)
    app.run(main)
