"""The one CLI runner (common/cli.py): a user's error is one line and exit status 2, a
fault of the package keeps its traceback and exits 1, for each of the seven commands."""

import errno
import os
import pathlib
import subprocess
import sys

import pytest

from common import cli
from common import errors

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_a_user_error_is_its_message_also_when_wrapped_or_from_a_worker():
    assert cli.user_message(errors.SettingError("Expected x. Received y.")) == "Expected x. Received y."
    try:
        try:
            raise errors.MissingInput("Expected a file. Received none.")
        except errors.MissingInput as inner:
            raise RuntimeError("a library's wrapper") from inner
    except RuntimeError as outer:
        assert cli.user_message(outer) == "Expected a file. Received none."
    # A Beam worker's error reaches the launcher as text; the last user error named wins.
    text = (
        "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
        "preprocessing.metadata.ErrorRateExceeded: Expected at most 1.00% of rows rejected. "
        "Received 7.14% (2 of 28 rows read). [while running 'WriteMetadata/WriteJson']\n"
    )
    assert cli.user_message(RuntimeError(text)) == (
        "Expected at most 1.00% of rows rejected. Received 7.14% (2 of 28 rows read).")
    assert cli.user_message(RuntimeError("builtins.KeyError: 'train'")) is None  # not a user error
    assert cli.user_message(KeyError("train")) is None


def test_a_fault_while_handling_a_users_error_keeps_its_traceback():
    try:
        try:
            raise errors.SettingError("Expected x. Received y.")
        except errors.SettingError:
            {}["missing"]  # a bug in the handler: not the user's error
    except KeyError as fault:
        assert cli.user_message(fault) is None


def test_a_refused_write_is_the_users_to_fix():
    full = OSError(errno.ENOSPC, "No space left on device", "/out/embeddings.npy")
    assert cli.user_message(full) == (
        "Expected the file system to take the command's files. Received: No space left on device "
        "(/out/embeddings.npy).")
    # TensorFlow's file system raises its own error class, with the words in its message.
    class ResourceExhaustedError(Exception):
        pass

    assert "Read-only file system" in cli.user_message(ResourceExhaustedError("/job/x; Read-only file system"))
    # From a Beam worker, the line that says so, not the traceback's first line.
    worker = RuntimeError("Traceback (most recent call last):\n  File x\nOSError: [Errno 28] No space left on device: '/o/x'")
    assert cli.user_message(worker).endswith("Received: OSError: [Errno 28] No space left on device: '/o/x'")
    assert cli.user_message(FileNotFoundError(errno.ENOENT, "No such file or directory", "/in/x.csv")) == (
        "Expected /in/x.csv to exist. Received: no such file or directory.")
    assert cli.user_message(OSError(errno.ECONNRESET, "Connection reset")) is None


def test_guarded_prints_one_line_and_returns_2_or_lets_a_fault_through(capsys):
    def user(argv):
        raise errors.SettingError("Expected --epochs >= 1. Received: 0.")

    assert cli.guarded("s140-x", user, []) == cli.USER_ERROR_STATUS == 2
    assert capsys.readouterr().err == "s140-x: error: Expected --epochs >= 1. Received: 0.\n"
    with pytest.raises(ZeroDivisionError):
        cli.guarded("s140-x", lambda argv: 1 / 0, [])


# Each command: arguments that make a user's error, the module, and the function that a
# fault is injected into (the command's main, or s140-submit's dispatch).
COMMANDS = {
    "s140-preprocess": ("preprocessing.__main__", "main", ["--train_csv=/nonexistent/t.csv", "--output_dir={tmp}/o"],
                        "Expected --train_csv '/nonexistent/t.csv' to match at least one file"),
    "s140-download": ("preprocessing.download_main", "main", ["--base_url=ftp://x", "--cache_dir={tmp}"],
                      "Expected a base URL starting with one of"),
    "s140-submit": ("cloud.__main__", "_dispatch",
                    ["train", "--project=p", "--region=us-central1", "--output_dir=gs://b/r",
                     "--image_uri=us-central1-docker.pkg.dev/p/r/s140-trainer:latest", "--dry_run", "--",
                     "--data_dir=gs://b/data", "--job_dir=runs/1"],
                    "Expected --job_dir of a cloud job to be a gs:// location"),
    "s140-predict": ("trainer.predict_main", "main", ["--model_dir={tmp}/none", "a tweet"],
                     "Expected a model directory written by s140-train"),
    "s140-train": ("trainer.__main__", "main", ["--data_dir={tmp}/none", "--job_dir={tmp}/j"], "Expected"),
    "s140-compare": ("trainer.compare_main", "main",
                     ["--data_dir={tmp}/none", "--job_dir={tmp}/j", "--architectures=gap,gap"],
                     "Expected each of --architectures once. Received twice or more: ['gap']."),
    "s140-tune": ("tuning.__main__", "main", ["--data_dir={tmp}/none", "--tuner_dir={tmp}/t"], "Expected"),
}


def _command(module, function, argv, fault):
    """Runs the command's console-script entry point `run` in a fresh process."""
    script = (
        "import sys\n"
        f"import {module} as command\n"
        + (f"def fault(*args, **kwargs):\n    raise KeyError('an internal fault')\ncommand.{function} = fault\n"
           if fault else "")
        + f"sys.argv = {['s140', *argv]!r}\n"
        "command.run()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env)


@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_each_command_prints_a_users_error_as_one_line_and_a_fault_with_its_traceback(program, tmp_path):
    module, function, argv, message = COMMANDS[program]
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    user = _command(module, function, argv, fault=False)
    assert user.returncode == 2, user.stderr[-3000:]
    last = user.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{program}: error: {message}"), user.stderr[-3000:]
    assert "Traceback" not in user.stderr
    fault = _command(module, function, argv, fault=True)
    assert fault.returncode == 1, fault.stderr[-3000:]
    assert "Traceback (most recent call last)" in fault.stderr
    assert fault.stderr.strip().splitlines()[-1] == "KeyError: 'an internal fault'"


@pytest.mark.parametrize("program, argv, message", [
    ("s140-train", ["--data_dir=d", "--epochs=abc"], "flag --epochs=abc: invalid literal for int()"),
    ("s140-train", ["--data_dir=d"], "--job_dir is required"),
    ("s140-download", ["--what=bogus"], "flag --what=['bogus']: Expected --what to list some of"),
])
def test_a_flag_the_command_cannot_use_is_one_line_too(program, argv, message):
    module, function, _, _ = COMMANDS[program]
    result = _command(module, function, argv, fault=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"{program}: error: {message}")
    assert "Traceback" not in result.stderr and "USAGE" not in result.stderr
