"""A local Beam job's gRPC services listen on loopback only (preprocessing/beam_adapter.py)."""

import contextlib
import ipaddress
import logging
import os
import threading
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from preprocessing import beam_adapter
from preprocessing import beam_options


def _listening_addresses(pid):
    """The local addresses of the TCP sockets process `pid` listens on (/proc, Linux)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    addresses = set()
    for table, width in (("tcp", 4), ("tcp6", 16)):
        with open(f"/proc/{pid}/net/{table}") as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # 0A: LISTEN
                    raw = bytes.fromhex(local.split(":")[0])
                    # /proc prints each 32-bit word in host (little-endian) order.
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
                    address = ipaddress.ip_address(words)
                    addresses.add(getattr(address, "ipv4_mapped", None) or address)  # ::ffff:127.0.0.1
    return addresses


def _listening_during_a_local_job(loopback):
    """The addresses this process listened on while a two-process local job ran."""
    seen, running = set(), threading.Event()

    def watch():
        while not running.is_set():
            seen.update(_listening_addresses(os.getpid()))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    before = _listening_addresses(os.getpid())
    watcher.start()
    try:
        with beam_adapter.local_services_on_loopback() if loopback else contextlib.nullcontext():
            with beam.Pipeline(runner=beam_options.runner_for(options), options=options) as pipeline:
                # Slow enough for the watcher to see the workers' servers.
                _ = pipeline | beam.Create(range(4)) | beam.Map(lambda x: time.sleep(0.5) or x)
    finally:
        running.set()
        watcher.join()
    return seen - before


def test_the_pinned_beam_binds_every_interface_and_the_adapter_binds_loopback():
    # Without the adapter Beam 2.77 listens on [::] (every interface): if this fails,
    # Beam changed and beam_adapter.py may no longer be needed.
    assert beam.__version__ == beam_adapter.TESTED_VERSION
    everywhere = _listening_during_a_local_job(loopback=False)
    assert ipaddress.ip_address("::") in everywhere
    loopback = _listening_during_a_local_job(loopback=True)
    assert loopback  # the job's servers were seen ...
    assert all(address.is_loopback for address in loopback), loopback  # ... on loopback only
    # The job ran on, and the modules are as they were.
    assert beam_adapter.worker_handlers.grpc is beam_adapter.grpc
    assert beam_adapter.local_job_service.grpc is beam_adapter.grpc


def _worker_record(severity, message, location):
    text = (f'Worker: severity: {severity} timestamp {{   seconds: 1   nanos: 2 }} message: "{message}" '
            f'instruction_id: "bundle_1" log_location: "{location}" thread: "Thread-13" ')
    return logging.LogRecord(beam_adapter._WORKER_LOGGER, logging.INFO, "local_job_service.py", 367,
                             "Worker: %s", (text,), None)


def test_only_the_jobs_own_worker_lines_pass_as_their_own(tmp_path):
    own = str(tmp_path / "preprocessing")
    keep = beam_adapter._OwnWorkerLines([own])
    ours = _worker_record("WARN", r"ReadRows: read 3 rows of caf\303\251.csv (utf-8)", f"{own}/transforms.py:84")
    assert keep.filter(ours)
    assert (ours.getMessage(), ours.levelno, ours.filename, ours.lineno) == (
        "ReadRows: read 3 rows of café.csv (utf-8)", logging.WARNING, "transforms.py", 84)
    beams = _worker_record("INFO", "Done consuming work.", "/venv/apache_beam/runners/worker/sdk_worker.py:300")
    assert not keep.filter(beams)
    # Beam's own error lines too: the failed job's exception reaches the command anyway.
    assert not keep.filter(_worker_record("ERROR", "Error processing instruction", "/venv/apache_beam/x.py:1"))
    server = logging.LogRecord(beam_adapter._SERVER_LOGGER, logging.INFO, "worker_handlers.py", 525,
                               "starting control server on port %s", (4242,), None)
    assert not keep.filter(server)
