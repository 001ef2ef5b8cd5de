"""Beam's local gRPC services bound to loopback, not to every interface.

A local run (DirectRunner, which runs the portable FnApiRunner) opens gRPC servers for
its SDK workers: control, data, state and logging (`worker_handlers.GrpcServer`), plus
one logging server per worker process with --direct_running_mode=multi_processing
(`local_job_service.SubprocessSdkWorker`). Beam 2.77 binds each with
`add_insecure_port('[::]:0')`: every interface, without authentication, for the job's
whole duration, although its workers are always told to connect to `localhost:<port>`.
No pipeline option changes that, so while a local job runs the two modules' `grpc` is
replaced by a proxy whose servers bind `localhost:0` instead of `[::]:0`: the workers
connect as before, and nothing outside the machine can reach the job.

This reaches into Beam's internals, so Beam is pinned (setup.py BEAM_VERSION) and
tests/test_beam_loopback.py checks both that Beam still binds every interface without
this module and that no listening socket of a local job is reachable from outside with it.
"""

import contextlib
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
