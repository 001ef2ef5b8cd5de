"""The chief's oracle server: KerasTuner's, plus dead-worker detection.

KerasTuner's own server (`oracle_chief.start_server`) waits forever for a worker that
died during a trial: the trial stays "ongoing" and the worker stays registered. So the
oracle here runs `serve_oracle` instead: workers send a heartbeat (a GetSpace call
tagged with their id, `processes.Heartbeat`) every few seconds, asking for a trial
counts as one too, and a registered worker silent for longer than `worker_timeout` is
dropped; its trial is queued again for the next worker that asks (the chief's own
worker always does), or marked FAILED when it has already lost two workers. The chief then finishes
when the budget is spent. Every process must therefore be an `s140-tune` (a plain
KerasTuner worker sends no heartbeat and would be dropped during a trial longer than
the timeout), and the oracle refuses any other tuner id (`distributed.is_worker_id`),
as it refuses a trial id it never created.
"""

import collections
import hmac
import os
import time

from absl import logging

from common import errors
from tuning import distributed
from tuning import keras_tuner_adapter as kt

HEARTBEAT_METADATA_KEY = "s140-tuner-id"
SECRET_METADATA_KEY = "s140-sweep-secret"
_REAPS_BEFORE_FAILED = 2  # a trial whose worker died this often is not run again
# A poll that comes this much later than due means this process itself was not running
# (a loaded machine): heartbeats sent meanwhile may still wait in the server's queue.
_STARVED_SLACK_SECONDS = 1.0


def starved(previous_poll, now, poll_seconds):
    """Whether the oracle process was starved between two polls, so that its record of
    heartbeats is stale: a worker must not be judged silent on it."""
    return now - previous_poll > 2 * poll_seconds + _STARVED_SLACK_SECONDS


class _Liveness:
    """Heartbeats, reaped trials, progress and the fatal error of one served oracle."""

    def __init__(self, oracle, *, planned_trials=None, clock=time.monotonic):
        self.oracle = oracle
        self.clock = clock
        self.heartbeats = {}  # tuner id -> last sign of life (clock seconds)
        self.reaped = collections.Counter()  # trial id -> workers it outlived
        self.fatal = None  # the oracle's error that ends the sweep
        self.planned_trials = planned_trials
        self.started = clock()

    def sign_of_life(self, tuner):
        self.heartbeats[tuner] = self.clock()

    def trial_created(self, tuner, trial):
        if trial.status == kt.TrialStatus.STOPPED:
            logging.info("Oracle: budget spent; %s stops.", tuner)
        elif trial.status == kt.TrialStatus.RUNNING:
            number = int(trial.trial_id) + 1 if trial.trial_id.isdigit() else trial.trial_id
            logging.info(
                "Oracle: trial %s%s (id %s) started on %s.", number,
                f" of {self.planned_trials}" if self.planned_trials else "", trial.trial_id, tuner,
            )

    def set_fatal(self, error):
        self.fatal = str(error)
        logging.error("Oracle: %s", error)

    def log_progress(self):
        oracle = self.oracle
        ended = kt.ended_trials(oracle)
        best = oracle.get_best_trials(1)
        best = best[0] if best and best[0].score is not None else None
        elapsed = self.clock() - self.started
        logging.info(
            "Oracle: %d trial(s) ended%s, %d running; best %s %s; %.0f s elapsed, "
            "%.1f trials/hour.",
            len(ended),
            f" of {self.planned_trials}" if self.planned_trials else "",
            kt.running_trials(oracle),
            oracle.objective.name,
            f"{best.score:.4f} (trial {best.trial_id})" if best else "n/a",
            elapsed,
            3600.0 * len(ended) / max(elapsed, 1e-9),
        )

    def silent_workers(self, worker_timeout):
        """Registered workers silent for longer than `worker_timeout`; forgets the
        heartbeats of silent workers that had left (told to stop)."""
        now = self.clock()
        silent = [tuner for tuner, seen in list(self.heartbeats.items()) if now - seen > worker_timeout]
        dead = [tuner for tuner in silent if kt.is_registered(self.oracle, tuner)]
        for tuner in set(silent) - set(dead):
            self.heartbeats.pop(tuner, None)
        return dead


def _reap(oracle, liveness, dead, reason):
    """Drops dead workers; re-queues or fails their trials. Holds the oracle's lock."""
    trials = {}
    for tuner in dead:
        liveness.heartbeats.pop(tuner, None)
        trials[tuner] = kt.drop_worker(oracle, tuner)
    for tuner, trial in trials.items():
        if trial is None:
            logging.warning("Oracle: %s %s; it was between trials.", tuner, reason)
            continue
        liveness.reaped[trial.trial_id] += 1
        times = liveness.reaped[trial.trial_id]
        if times < _REAPS_BEFORE_FAILED:
            # Queued even when no other worker is registered yet: the chief's own worker
            # always comes (it runs in the chief's main process, which this process does
            # not outlive), it may only be slower to start than the worker that died.
            # Seen on a loaded machine: such a trial marked FAILED for "no worker left".
            kt.requeue_trial(oracle, trial)
            logging.warning(
                "Oracle: %s %s during trial %s; the trial is queued for another worker.",
                tuner, reason, trial.trial_id,
            )
            continue
        message = f"Worker {tuner} {reason} during this trial, again ({times} times): not retried."
        kt.fail_trial(oracle, trial, message)
        logging.warning("Oracle: trial %s FAILED: %s", trial.trial_id, message)
    oracle.save()


def secret_check(secret, metadata_key):
    """A gRPC server interceptor that answers UNAUTHENTICATED to any call whose
    `metadata_key` is not `secret`: the oracle serves only its own sweep."""
    import grpc

    expected = secret.encode()

    def deny(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "Expected the sweep's shared secret. Received another or none.")

    denied = grpc.unary_unary_rpc_method_handler(deny)

    class SecretCheck(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            given = dict(details.invocation_metadata or ()).get(metadata_key, "")
            if hmac.compare_digest(given.encode(), expected):
                return continuation(details)
            logging.log_every_n_seconds(logging.WARNING, "Oracle: refused a call without the sweep's secret.", 60)
            return denied

    return SecretCheck()


def serve_oracle(
    oracle, *, host, port, worker_timeout, secret, planned_trials=None, poll_seconds=1.0, parent_pid=None
):
    """Serves `oracle` over gRPC until the budget is spent and every worker has left.

    Like KerasTuner's `oracle_chief.start_server`, plus: workers that stop sending
    heartbeats for `worker_timeout` seconds are dropped (see the module docstring), the
    check runs every `poll_seconds` instead of every 20 s, and the server stops when the
    process `parent_pid` (the chief's main process) is gone.

    Only calls that carry `secret` (distributed.SECRET_METADATA_KEY) are served, on
    `host`:`port` only.

    After an error of the oracle (e.g. too many consecutive failed trials) it keeps
    serving, so that every worker gets that error at its next call; the chief's main
    process then stops it.

    Raises:
      RuntimeError: when the port cannot be bound or the parent process died.
    """
    import grpc
    from concurrent import futures

    liveness = _Liveness(oracle, planned_trials=planned_trials)
    servicer = kt.servicer(
        oracle,
        metadata_key=HEARTBEAT_METADATA_KEY,
        known_tuner=distributed.is_worker_id,
        on_sign_of_life=liveness.sign_of_life,
        on_trial_created=liveness.trial_created,
        on_trial_ended=liveness.log_progress,
        on_fatal=liveness.set_fatal,
    )
    # One thread, as KerasTuner's server: the oracle is not meant for concurrent calls.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=1), interceptors=[secret_check(secret, SECRET_METADATA_KEY)]
    )
    kt.add_servicer_to_server(servicer, server)
    if not server.add_insecure_port(f"{host}:{port}"):
        raise errors.SettingError(
            f"Expected the oracle to listen on {host}:{port} (--oracle_address, or this replica's address in "
            "CLUSTER_SPEC). Received: that address and port are not available here."
        )
    server.start()
    logging.info("Oracle listening on %s:%s (worker timeout %.0f s).", host, port, worker_timeout)
    try:
        previous_poll = time.monotonic()
        while True:
            time.sleep(poll_seconds)
            now = time.monotonic()
            late, previous_poll = starved(previous_poll, now, poll_seconds), now
            if parent_pid is not None and os.getppid() != parent_pid:
                raise RuntimeError(f"The chief's main process {parent_pid} is gone; stopping the oracle.")
            if liveness.fatal:
                continue
            if late:  # judge silence at the next poll, once queued heartbeats are served
                logging.info("Oracle: this process did not run for a while; no worker is judged silent now.")
                continue
            dead = liveness.silent_workers(worker_timeout)
            if dead:
                reason = f"sent no heartbeat for {worker_timeout:g} s"
                kt.locked(oracle, _reap, liveness, dead, reason)
            # Reads without the lock: a stale answer only delays the exit by one poll.
            if servicer.stop_triggered and kt.search_finished(oracle):
                break
    finally:
        # A short grace: the last worker's STOPPED answer is still on its way back.
        server.stop(grace=2).wait()
    logging.info("Oracle: sweep finished; server stopped.")
