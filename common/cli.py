"""The one runner of the package's commands, and their --help.

`run` starts an absl command, `guarded` any command's main function (s140-submit parses
its arguments with argparse). Either way:

* a `errors.UserError`, also one raised inside a Beam worker process (which the runner
  there hands back as the text of a RuntimeError), prints one line,
  "<command>: error: Expected ... Received ...", and exits 2; with --verbosity=1 (or
  higher) its traceback is logged too;
* the file system refusing a write (full, read-only, permission denied, a file where
  a folder belongs) is the user's to fix as well, and gets the same one line;
* anything else is a fault of the package: its traceback is printed.

--help: absl's lists the key flags of the module named by sys.argv[0]; under a console
script that is the script, which defines none, so all it printed was "Try --helpfull".
Here --help prints the command's docstring (which holds the examples) and its flags,
grouped.
"""

import errno
import importlib
import re
import sys
import textwrap

from absl import app
from absl import flags
from absl import logging

from common import errors

HELP_ARGUMENTS = ("--help", "-h", "-?", "--helpshort")
# The exit status of a user's error, as argparse's; 1 stays a fault of the package.
USER_ERROR_STATUS = 2


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


def run(main, doc, groups, *, program, required=(), footer=FULL_HELP_FOOTER, known_flags_only=False):
    """Runs the absl command `program`: `main(argv)` through `guarded`, except that
    --help prints `render(doc, groups, ...)` and exits 0. A flag absl cannot parse is
    a user's error too. `known_flags_only`: flags absl does not know stay in argv (for
    s140-preprocess, which hands them to Beam)."""
    if help_requested(sys.argv[1:]):
        sys.stdout.write(render(doc, groups, required=required, footer=footer))
        sys.exit(0)

    def parse(argv):
        # absl shows its parser's errors as "FATAL Flags parsing error" and exit 1.
        try:
            return flags.FLAGS(argv, known_only=known_flags_only)
        except flags.Error as error:
            sys.exit(_print_user_error(program, str(error)))

    app.run(lambda argv: guarded(program, main, argv), flags_parser=parse)


def guarded(program, main, *args, **kwargs):
    """`main(*args, **kwargs)`; returns what it returns, or USER_ERROR_STATUS after
    printing the user's error as one line (see the module docstring)."""
    try:
        return main(*args, **kwargs)
    except (SystemExit, KeyboardInterrupt):
        raise
    except app.UsageError as error:  # a missing or contradictory flag
        return _print_user_error(program, str(error))
    except Exception as error:  # noqa: BLE001 - sorted below, re-raised when it is ours
        message = user_message(error)
        if message is None:
            raise
        if logging.get_verbosity() >= logging.DEBUG:
            logging.exception("%s", message)
        return _print_user_error(program, message)


def _print_user_error(program, message):
    print(f"{program}: error: {message}", file=sys.stderr)
    return USER_ERROR_STATUS


# What the file system says when it refuses a write, as OSError numbers and as the
# words TensorFlow's file system and h5py put into their own errors.
_REFUSED_WRITES = {
    errno.ENOSPC: "No space left on device",
    errno.EDQUOT: "Disk quota exceeded",
    errno.EROFS: "Read-only file system",
    errno.EACCES: "Permission denied",
    errno.ENOTDIR: "Not a directory",
    errno.EISDIR: "Is a directory",
}
# An error raised in a Beam worker reaches the launcher as text: "module.Class: message",
# perhaps followed by " [while running 'Step']".
_OUR_PACKAGES = ("common", "preprocessing", "trainer", "tuning", "cloud")
_WORKER_ERROR = re.compile(r"^((?:\w+\.)+)(\w+): (.+?)(?: \[while running '[^']*'\])?$", re.MULTILINE)


def user_message(error):
    """The one line to print for `error` when it is the user's to fix, else None."""
    for cause in _chain(error):
        if isinstance(cause, errors.UserError):
            return str(cause)
    for cause in _chain(error):
        refused = _refused_write(cause)
        if refused:
            return refused
    if isinstance(error, RuntimeError):
        return _user_error_from_worker(str(error))
    return None


def _chain(error):
    # Only explicit causes (`raise ... from`): an error raised while another was being
    # handled is a new error, and a fault there must keep its traceback.
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__
    return seen


def _refused_write(error):
    if isinstance(error, OSError) and error.errno == errno.ENOENT and error.filename:
        return f"Expected {error.filename} to exist. Received: no such file or directory."
    if isinstance(error, OSError) and error.errno in _REFUSED_WRITES:
        where = f" ({error.filename})" if error.filename else ""
        return f"Expected the file system to take the command's files. Received: {error.strerror}{where}."
    for line in str(error).splitlines():
        if any(words in line for words in _REFUSED_WRITES.values()):
            return f"Expected the file system to take the command's files. Received: {line.strip()}"
    return None


def _user_error_from_worker(text):
    """The message of the last `UserError` named in a worker's error text, or None."""
    found = None
    for module, name, message in _WORKER_ERROR.findall(text):
        if module.split(".")[0] not in _OUR_PACKAGES:
            continue  # only the package's own error classes are looked up, never imported blindly
        try:
            error_type = getattr(importlib.import_module(module.rstrip(".")), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(error_type, type) and issubclass(error_type, errors.UserError):
            found = message
    return found
