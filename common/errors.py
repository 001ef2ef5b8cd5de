"""The user's errors: what the user can fix, as opposed to a fault of the package.

Every command prints a `UserError` as one line, "<command>: error: Expected ...
Received ...", and exits 2, without a traceback (common/cli.py). Any other exception is
the package's fault and keeps its traceback. The package's own error classes subclass
`UserError` (and the built-in class a caller may already catch, e.g. ValueError).
"""


class UserError(Exception):
    """A mistake the user can fix: a setting, an input, a directory, a cloud resource."""


class SettingError(UserError, ValueError):
    """A flag or setting outside what the command accepts."""


class MissingInput(UserError, FileNotFoundError):
    """An input the user named does not exist."""
