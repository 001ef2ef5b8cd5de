"""A local Beam job's gRPC services listen on loopback only (preprocessing/beam_loopback.py)."""

import contextlib
import ipaddress
import os
import threading
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from preprocessing import beam_loopback
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
        with beam_loopback.local_services_on_loopback() if loopback else contextlib.nullcontext():
            with beam.Pipeline(runner=beam_options.runner_for(options), options=options) as pipeline:
                # Slow enough for the watcher to see the workers' servers.
                _ = pipeline | beam.Create(range(4)) | beam.Map(lambda x: time.sleep(0.5) or x)
    finally:
        running.set()
        watcher.join()
    return seen - before


def test_the_pinned_beam_binds_every_interface_and_the_adapter_binds_loopback():
    # Without the adapter Beam 2.77 listens on [::] (every interface): if this fails,
    # Beam changed and beam_loopback.py may no longer be needed.
    assert beam.__version__ == beam_loopback.TESTED_VERSION
    everywhere = _listening_during_a_local_job(loopback=False)
    assert ipaddress.ip_address("::") in everywhere
    loopback = _listening_during_a_local_job(loopback=True)
    assert loopback  # the job's servers were seen ...
    assert all(address.is_loopback for address in loopback), loopback  # ... on loopback only
    # The job ran on, and the modules are as they were.
    assert beam_loopback.worker_handlers.grpc is beam_loopback.grpc
    assert beam_loopback.local_job_service.grpc is beam_loopback.grpc
