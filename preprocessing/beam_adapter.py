"""Every reach into Beam's internals, in one place: a local job's gRPC services on
loopback, and its workers' log lines sorted from Beam's chatter.

A local run (DirectRunner, which runs the portable FnApiRunner) opens gRPC servers for
its SDK workers: control, data, state and logging (`worker_handlers.GrpcServer`), plus
one logging server per worker process with --direct_running_mode=multi_processing
(`local_job_service.SubprocessSdkWorker`). Beam 2.77 binds each with
`add_insecure_port('[::]:0')`: every interface, without authentication, for the job's
whole duration, although its workers are always told to connect to `localhost:<port>`.
No pipeline option changes that, so while a local job runs the two modules' `grpc` is
replaced by a proxy whose servers bind `localhost:0` instead of `[::]:0`: the workers
connect as before, and nothing outside the machine can reach the job.

A local job also logs every line of every worker through the launcher, as the text of
a protobuf: dozens of Beam start-up and shut-down lines per worker around the few that
the job's own code wrote, and each worker prints the traceback of a failed bundle to
its own stderr. `worker_chatter_hidden` keeps only the job's own lines, shown with their
own file, line and level, and sends the workers' stderr to /dev/null.

This reaches into Beam's internals, so Beam is pinned (setup.py BEAM_VERSION) and
tests/test_beam_adapter.py checks both that Beam still binds every interface without
this module and that no listening socket of a local job is reachable from outside with it.
"""

import codecs
import contextlib
import logging
import os
import re
import subprocess
import threading

import grpc
from apache_beam.runners.portability import local_job_service
from apache_beam.runners.portability.fn_api_runner import worker_handlers

TESTED_VERSION = "2.77.0"
_EVERY_INTERFACE = "[::]:0"
_LOOPBACK = "localhost:0"  # gRPC binds 127.0.0.1 and ::1, on one port
_PATCHED_MODULES = (worker_handlers, local_job_service)
_lock = threading.RLock()  # one job patches at a time; a nested block restores in order


class _LoopbackServer:
    """A grpc.Server whose `add_insecure_port("[::]:0")` binds loopback only."""

    def __init__(self, server):
        self._server = server

    def add_insecure_port(self, address):
        return self._server.add_insecure_port(_LOOPBACK if address == _EVERY_INTERFACE else address)

    def __getattr__(self, name):
        return getattr(self._server, name)


class _LoopbackGrpc:
    """The `grpc` module, except that `grpc.server` makes `_LoopbackServer`s."""

    def server(self, *args, **kwargs):
        return _LoopbackServer(grpc.server(*args, **kwargs))

    def __getattr__(self, name):
        return getattr(grpc, name)


@contextlib.contextmanager
def local_services_on_loopback():
    """Within the block, Beam's local runner binds its gRPC services to loopback."""
    with _lock:
        saved = [module.grpc for module in _PATCHED_MODULES]
        for module in _PATCHED_MODULES:
            module.grpc = _LoopbackGrpc()
        try:
            yield
        finally:
            for module, original in zip(_PATCHED_MODULES, saved):
                module.grpc = original


# --- A local job's worker chatter.

# The launcher logs every line of every SDK worker through this logger, as
# "Worker: <the LogEntry protobuf as text>" (local_job_service.BeamFnLoggingServicer),
# and the runner logs its servers' ports through the other.
_WORKER_LOGGER = "apache_beam.runners.portability.local_job_service"
_SERVER_LOGGER = "apache_beam.runners.portability.fn_api_runner.worker_handlers"
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_ENTRY = re.compile(rf"^Worker: .*?severity: (\w+).*? message: {_QUOTED}.*? log_location: {_QUOTED}")
_SEVERITY = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "NOTICE": logging.INFO,
             "WARN": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


def _unquote(text):
    # Protobuf's text format escapes quotes and non-ASCII bytes (octal) C-style.
    return codecs.escape_decode(text.encode("ascii", "backslashreplace"))[0].decode("utf-8", "replace")


class _OwnWorkerLines(logging.Filter):
    """Passes the worker lines that code under `own_dirs` logged, as if logged here
    (their own file, line and level); drops Beam's own worker and server lines, its
    errors included: a failed job reaches the launcher as an exception anyway, which
    the command prints (one line for the user's error, its traceback for a fault)."""

    def __init__(self, own_dirs):
        super().__init__()
        self.own_dirs = tuple(os.path.join(os.path.abspath(d), "") for d in own_dirs)

    def filter(self, record):
        entry = _ENTRY.match(record.getMessage()) if record.name == _WORKER_LOGGER else None
        if entry is None:
            return False
        severity, message, location = entry.group(1), _unquote(entry.group(2)), _unquote(entry.group(3))
        path, _, line = location.rpartition(":")
        if not path.startswith(self.own_dirs):
            return False
        record.msg, record.args = message, ()
        record.levelno = _SEVERITY.get(severity, logging.INFO)
        record.levelname = logging.getLevelName(record.levelno)
        record.pathname, record.filename = path, os.path.basename(path)
        record.lineno = int(line) if line.isdigit() else record.lineno
        return True


class _WorkersWithoutStderr:
    """The `subprocess` module, except that Popen sends the process's stderr to
    /dev/null. Beam's SDK worker prints the traceback of every failed bundle there
    (sdk_worker.SdkHarness._execute) besides sending it to the launcher, which raises it."""

    def Popen(self, *args, **kwargs):  # noqa: N802 - subprocess's name
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(subprocess, name)


@contextlib.contextmanager
def worker_chatter_hidden(own_dirs):
    """Within the block, a local job's worker lines show only when code under
    `own_dirs` logged them: Beam's dozens of start-up and shut-down lines per worker,
    and the traceback a worker prints of a failed bundle, stay out of the command's
    output. (A failed job still reaches the command as an exception.)"""
    only_own = _OwnWorkerLines(own_dirs)
    loggers = [logging.getLogger(name) for name in (_WORKER_LOGGER, _SERVER_LOGGER)]
    for logger in loggers:
        logger.addFilter(only_own)
    with _lock:
        local_job_service.subprocess = _WorkersWithoutStderr()
        try:
            yield
        finally:
            local_job_service.subprocess = subprocess
            for logger in loggers:
                logger.removeFilter(only_own)
