"""The processes of a distributed sweep: the chief's oracle process, the watchdog that
stops a worker whose oracle died, and a worker's heartbeat and secret."""

import _thread
import contextlib
import dataclasses
import multiprocessing
import os
import sys
import threading

from absl import logging

from common import cli
from tuning import budget
from tuning import config as config_lib
from tuning import distributed
from tuning import keras_tuner_adapter as kt
from tuning import oracle_server


OracleDied = distributed.OracleDied


# --- Chief: the oracle process.


def _oracle_process_main(cfg_fields, env, max_length, planned, parent_pid):
    """The chief's oracle process (spawned): serves the oracle until the sweep ends; a
    user's error is one line there too (common/cli.py)."""
    status = cli.guarded("s140-tune (oracle)", _serve, cfg_fields, env, max_length, planned, parent_pid)
    if status:
        sys.exit(status)


def _serve(cfg_fields, env, max_length, planned, parent_pid):
    from tuning import tuners  # imports TensorFlow: in the spawned process only

    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    cfg = config_lib.SweepConfig(**cfg_fields)
    # This process only serves the oracle; the variables say so to KerasTuner.
    os.environ.update(env)
    oracle = tuners.load_oracle(cfg, max_length)
    oracle.save()  # before serving, so that a resume finds the state (KerasTuner #977)
    oracle_server.serve_oracle(
        oracle,
        host=env[distributed.ORACLE_IP],
        port=env[distributed.ORACLE_PORT],
        secret=env[distributed.SECRET],
        worker_timeout=cfg.worker_timeout_seconds,
        planned_trials=planned,
        parent_pid=parent_pid,
    )


def start_oracle_process(cfg, env, max_length):
    """Starts the chief's oracle process, serving on `env`'s address."""
    # spawn, not fork: this process has imported TensorFlow, which does not survive a fork.
    context = multiprocessing.get_context("spawn")
    process = context.Process(
        target=_oracle_process_main,
        args=(dataclasses.asdict(cfg), dict(env), max_length, budget.planned_trials(cfg), os.getpid()),
        name="s140-oracle",
        daemon=True,
    )
    process.start()
    logging.info(
        "Oracle process %d serving on %s:%s.",
        process.pid, env[distributed.ORACLE_IP], env[distributed.ORACLE_PORT],
    )
    return process


def join_oracle_process(process):
    """Waits for the oracle to exit (budget spent, every worker gone).

    Raises:
      OracleDied: when it exited with an error.
    """
    logging.info("Trials done here; waiting for the other workers to finish theirs.")
    process.join()
    if process.exitcode != 0:
        raise OracleDied(f"The oracle process exited with code {process.exitcode}; see its log above.")


def stop_oracle_process(process):
    if process is not None and process.is_alive():
        process.terminate()
        process.join(timeout=10)


@contextlib.contextmanager
def watch(process):
    """Interrupts the main thread if `process` dies with an error: its worker would
    otherwise wait an hour for the oracle (KerasTuner's gRPC timeout)."""
    if process is None:
        yield
        return
    done = threading.Event()
    died = []

    def check():
        while not done.wait(1.0):
            if process.exitcode not in (None, 0):
                died.append(process.exitcode)
                _thread.interrupt_main()
                return

    thread = threading.Thread(target=check, name="s140-oracle-watch", daemon=True)
    thread.start()
    try:
        yield
    except KeyboardInterrupt:
        if died:
            raise OracleDied(
                f"The oracle process exited with code {died[0]} during the sweep; see its log "
                "above. Run the same command again to resume."
            ) from None
        raise
    finally:
        done.set()
        thread.join()


# --- Workers: heartbeat and the sweep's secret.


def heartbeat_interval(worker_timeout):
    """Seconds between heartbeats: several per timeout, at most every 10 s."""
    return max(0.2, min(10.0, worker_timeout / 5.0))


class Heartbeat:
    """Tells the oracle every `interval` seconds that this worker is alive.

    A GetSpace call carrying the worker's id in its metadata: KerasTuner's protocol has
    no heartbeat, and GetSpace is cheap and changes nothing. Failures are logged, not
    raised: the worker's own calls report a dead oracle.
    """

    def __init__(self, address, tuner_id, interval, secret):
        self.address, self.tuner_id, self.interval, self.secret = address, tuner_id, interval, secret
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s140-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self):
        import grpc

        channel = grpc.insecure_channel(self.address)
        send = kt.heartbeat_call(channel)
        metadata = ((oracle_server.HEARTBEAT_METADATA_KEY, self.tuner_id), *secret_metadata(self.secret))
        try:
            while not self._stop.is_set():
                try:
                    send(metadata, timeout=max(self.interval, 5.0))
                except grpc.RpcError as error:
                    logging.log_every_n_seconds(
                        logging.WARNING, "Heartbeat to the oracle at %s failed: %s", 60,
                        self.address, error.code() if hasattr(error, "code") else error,
                    )
                self._stop.wait(self.interval)
        finally:
            channel.close()


def worker_heartbeat(worker_env, worker_timeout):
    """The heartbeat of a distributed worker (a context manager)."""
    return Heartbeat(
        _oracle_address(worker_env), worker_env[distributed.TUNER_ID], heartbeat_interval(worker_timeout),
        worker_env[distributed.SECRET],
    )


def _oracle_address(worker_env):
    return f"{worker_env[distributed.ORACLE_IP]}:{worker_env[distributed.ORACLE_PORT]}"


def secret_metadata(secret):
    """The gRPC metadata that shows the oracle a call is the sweep's own."""
    return ((oracle_server.SECRET_METADATA_KEY, secret),)


def authenticate(tuner, worker_env):
    """Makes a distributed worker's calls to the oracle carry the sweep's secret."""
    kt.authenticate_client(tuner.oracle, _oracle_address(worker_env), secret_metadata(worker_env[distributed.SECRET]))
