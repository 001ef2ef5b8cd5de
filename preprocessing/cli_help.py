"""--help of the package's absl commands: the command's own flags, grouped, after its
docstring (which holds the examples).

absl's --help lists the key flags of the module named by sys.argv[0]; under a console
script that is the script, which defines none, so all it printed was "Try --helpfull".
CLI-side only: the command-line modules call `run` (s140-preprocess has its own,
which adds Beam's pass-through options).
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


def _describe(flag):
    head = f"  --{flag.name} (default: {flag.default_as_str or 'unset'})"
    body = textwrap.fill(flag.help, width=88, initial_indent="      ", subsequent_indent="      ")
    return f"{head}\n{body}"


def render(doc, groups):
    """`doc`, then each (title, [flag names]) group with each flag's default and help."""
    lines = [doc.strip(), "", ""]  # a blank pair ends the docstring's part
    for title, names in groups:
        lines.append(f"{title}:")
        lines += [_describe(flags.FLAGS[name]) for name in names]
        lines.append("")
    lines.append("All flags, absl's and TensorFlow's included: --helpfull.")
    return "\n".join(lines) + "\n"


def run(main, doc, groups):
    """`app.run(main)`, except that --help prints `render(doc, groups)` and exits 0."""
    if help_requested(sys.argv[1:]):
        sys.stdout.write(render(doc, groups))
        sys.exit(0)
    app.run(main)
