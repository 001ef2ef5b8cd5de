"""Distributed tuning with KerasTuner's chief/worker mode, wired the way TFX does it.

KerasTuner configures a process through three environment variables, read when a tuner
is constructed (`keras_tuner.src.distribute.utils.has_chief_oracle`) and again in
`search()`:

  KERASTUNER_TUNER_ID     "chief" for the oracle server (any id containing "chief"
                          is one!), a unique id for each process that runs trials
  KERASTUNER_ORACLE_IP    where the oracle listens (the server binds to it)
  KERASTUNER_ORACLE_PORT

The TFX pattern (tfx/extensions/google_cloud_ai_platform/tuner/executor.py): the
primary machine runs the oracle in a process of its own, bound to 0.0.0.0:<its
CLUSTER_SPEC port>, and its main process *also* runs trials as a worker pointed at that
address; every other replica is a worker. `keras_tuner_env` derives these variables from
Vertex AI's CLUSTER_SPEC (pools "workerpool0", "workerpool1", ...), the single-replica
"chief" key, the legacy AI Platform "master"/"worker" keys or a TF_CONFIG-style spec;
`local_keras_tuner_env` from explicit flags. Users never set them by hand.

KerasTuner's own server (`oracle_chief.start_server`) waits forever for a worker that
died during a trial: the trial stays "ongoing" and the worker stays registered. So the
oracle here runs `serve_oracle` instead: workers send a heartbeat (a GetSpace call
tagged with their id) every few seconds, asking for a trial counts as one too, and a
registered worker silent for longer than `worker_timeout` is dropped; its trial is
queued again for the other workers (or marked FAILED when no worker is left, or when it
has already killed two workers). The chief then finishes when the budget is spent.
Every process must therefore be an `s140-tune` (a plain KerasTuner worker sends no
heartbeat and would be dropped during a trial longer than the timeout).
"""

import collections
import contextlib
import ipaddress
import json
import os
import threading
import time

from absl import logging

TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
KERASTUNER_VARIABLES = (TUNER_ID, ORACLE_IP, ORACLE_PORT)

ORACLE = "oracle"  # key of the oracle process's environment in keras_tuner_env()
WORKER = "worker"  # key of the trial-running main process's environment

CHIEF_TUNER_ID = "chief"
BIND_ALL = "0.0.0.0"
PRIMARY_POOL = "workerpool0"
WORKER_POOL = "workerpool1"
# Pool names as they appear in other formats -> Vertex AI's. "chief" must never stay
# in a worker's id: KerasTuner treats any id containing "chief" as the oracle.
_POOL_ALIASES = {"chief": PRIMARY_POOL, "master": PRIMARY_POOL, "worker": WORKER_POOL}
# Keys that can hold the primary replica, in the order they are looked for.
_PRIMARY_KEYS = (PRIMARY_POOL, "chief", "master")

HEARTBEAT_METADATA_KEY = "s140-tuner-id"
_REAPS_BEFORE_FAILED = 2  # a trial whose worker died this often is not run again


class ClusterSpecError(ValueError):
    """CLUSTER_SPEC / TF_CONFIG / the role flags do not describe a usable cluster."""


class OracleDied(RuntimeError):
    """The chief's oracle process ended with an error while the sweep was running."""


# --- Roles and environments (pure functions).


def parse_cluster_spec(environ):
    """The cluster description of `environ`: CLUSTER_SPEC, else TF_CONFIG, else None.

    Vertex AI sets both; CLUSTER_SPEC keeps its pool names, which name the tuner ids.

    Raises:
      ClusterSpecError: when the variable is not a JSON object with "cluster" and "task".
    """
    for variable in ("CLUSTER_SPEC", "TF_CONFIG"):
        raw = environ.get(variable, "")
        if not raw.strip():
            continue
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ClusterSpecError(f"Expected {variable} to be JSON. Received: {raw!r} ({error}).") from error
        if not isinstance(spec, dict) or not spec.get("cluster"):
            # TF_CONFIG without a cluster (e.g. only "task") describes no distribution.
            if variable == "TF_CONFIG" and isinstance(spec, dict):
                return None
            raise ClusterSpecError(
                f'Expected {variable} to be a JSON object with "cluster" and "task". '
                f"Received: {raw!r}."
            )
        return spec
    return None


def _split_address(address, where):
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterSpecError(f"Expected host:port in {where}. Received: {address!r}.")
    return host, port


def _primary(cluster):
    for key in _PRIMARY_KEYS:
        if cluster.get(key):
            return key
    if cluster.get("worker"):
        return "worker"  # TF_CONFIG without a chief: worker 0 leads, as in TensorFlow
    raise ClusterSpecError(
        f"Expected the cluster to name a primary replica under one of {list(_PRIMARY_KEYS)}. "
        f"Received pools: {sorted(cluster)}."
    )


def tuner_id(task_type, index):
    """The KerasTuner id of a trial-running process, e.g. "tuner-workerpool1-3"."""
    name = f"tuner-{_POOL_ALIASES.get(task_type, task_type)}-{int(index)}"
    if CHIEF_TUNER_ID in name:
        raise ClusterSpecError(
            f"Expected a worker id without {CHIEF_TUNER_ID!r} (KerasTuner would make it the "
            f"oracle). Received task type {task_type!r}."
        )
    return name


def keras_tuner_env(cluster_spec, *, bind_host=BIND_ALL):
    """The KerasTuner environment of each process this replica runs.

    Args:
      cluster_spec: a parsed CLUSTER_SPEC (or TF_CONFIG-style) dict, or None.
      bind_host: the interface the oracle binds to on the primary machine.

    Returns:
      {"worker": env} on every replica (the main process, which runs trials), plus
      {"oracle": env} on the primary replica (the oracle's own process). A single
      replica (or no spec) gets {"worker": {}}: nothing to distribute, so trials run
      with an in-process oracle.

    Raises:
      ClusterSpecError: for a spec without a primary replica, a task that is not in the
        cluster, or an address that is not host:port.
    """
    if not cluster_spec:
        return {WORKER: {}}
    cluster = cluster_spec.get("cluster") or {}
    task = cluster_spec.get("task") or {}
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise ClusterSpecError(
            f"Expected the task type to be one of the cluster's pools {sorted(cluster)}. "
            f"Received task {task!r}."
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ClusterSpecError(
            f"Expected task index in [0, {len(cluster[task_type])}) for pool {task_type!r}. "
            f"Received: {index!r}."
        )
    replicas = sum(len(addresses or ()) for addresses in cluster.values())
    if replicas <= 1:
        return {WORKER: {}}
    primary = _primary(cluster)
    host, port = _split_address(cluster[primary][0], f"cluster[{primary!r}][0]")
    worker = {TUNER_ID: tuner_id(task_type, index), ORACLE_IP: host, ORACLE_PORT: port}
    if (task_type, index) != (primary, 0):
        return {WORKER: worker}
    return {ORACLE: {TUNER_ID: CHIEF_TUNER_ID, ORACLE_IP: bind_host, ORACLE_PORT: port}, WORKER: worker}


ROLES = ("standalone", "chief", "worker")


def local_keras_tuner_env(role, *, oracle_address=None, worker_id=None):
    """`keras_tuner_env` for processes started by hand (flags instead of CLUSTER_SPEC).

    Args:
      role: "standalone" (one process), "chief" (oracle process + trials) or "worker".
      oracle_address: host:port of the oracle (chief and worker).
      worker_id: a worker's unique id (a number or a name); a worker restarted with the
        same id resumes the trial it was running.

    The chief binds to the address's host when it is a loopback address (a local test
    stays off the network), else to 0.0.0.0.
    """
    if role not in ROLES:
        raise ClusterSpecError(f"Expected --role in {list(ROLES)}. Received: {role!r}.")
    if role == "standalone":
        if oracle_address or worker_id is not None:
            raise ClusterSpecError(
                "Expected --oracle_address and --worker_id only with --role=chief or worker. "
                f"Received: --role=standalone, --oracle_address={oracle_address!r}, "
                f"--worker_id={worker_id!r}."
            )
        return {WORKER: {}}
    if not oracle_address:
        raise ClusterSpecError(f"Expected --oracle_address=host:port with --role={role}. Received none.")
    host, port = _split_address(oracle_address, "--oracle_address")
    if role == "chief":
        if worker_id is not None:
            raise ClusterSpecError(
                f"Expected no --worker_id with --role=chief (its trials run as "
                f"{tuner_id(PRIMARY_POOL, 0)!r}). Received: {worker_id!r}."
            )
        bind = host if _is_loopback(host) else BIND_ALL
        return {
            ORACLE: {TUNER_ID: CHIEF_TUNER_ID, ORACLE_IP: bind, ORACLE_PORT: port},
            WORKER: {TUNER_ID: tuner_id(PRIMARY_POOL, 0), ORACLE_IP: host, ORACLE_PORT: port},
        }
    if worker_id is None or str(worker_id) == "":
        raise ClusterSpecError("Expected --worker_id (unique per worker) with --role=worker. Received none.")
    name = f"tuner-{WORKER_POOL}-{worker_id}"
    if CHIEF_TUNER_ID in name:
        raise ClusterSpecError(f"Expected a --worker_id without {CHIEF_TUNER_ID!r}. Received: {worker_id!r}.")
    return {WORKER: {TUNER_ID: name, ORACLE_IP: host, ORACLE_PORT: port}}


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_chief(envs):
    """Whether the replica with these environments writes the sweep's results."""
    return ORACLE in envs or not envs.get(WORKER)


@contextlib.contextmanager
def kerastuner_environment(env, environ=None):
    """Sets exactly `env`'s KerasTuner variables (removing the others) in `environ`
    (os.environ by default) and restores the previous values on exit.

    KerasTuner reads them when a tuner is constructed and again in `search()`, so they
    must stay set around both.
    """
    environ = os.environ if environ is None else environ
    saved = {name: environ.get(name) for name in KERASTUNER_VARIABLES}
    for name in KERASTUNER_VARIABLES:
        environ.pop(name, None)
    environ.update({name: str(value) for name, value in env.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value


# --- Worker side: heartbeat.


def heartbeat_interval(worker_timeout):
    """Seconds between heartbeats: several per timeout, at most every 10 s."""
    return max(0.2, min(10.0, worker_timeout / 5.0))


class Heartbeat:
    """Tells the oracle every `interval` seconds that this worker is alive.

    A GetSpace call carrying the worker's id in its metadata: KerasTuner's protocol has
    no heartbeat, and GetSpace is cheap and changes nothing. Failures are logged, not
    raised: the worker's own calls report a dead oracle.
    """

    def __init__(self, address, tuner_id_, interval):
        self.address, self.tuner_id, self.interval = address, tuner_id_, interval
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
        from keras_tuner.src import protos

        channel = grpc.insecure_channel(self.address)
        stub = protos.get_service_grpc().OracleStub(channel)
        request = protos.get_service().GetSpaceRequest()
        metadata = ((HEARTBEAT_METADATA_KEY, self.tuner_id),)
        try:
            while not self._stop.is_set():
                try:
                    # wait_for_ready: while the oracle starts (or its channel backs off
                    # after a failed connect), wait for it instead of failing at once.
                    stub.GetSpace(
                        request, metadata=metadata, wait_for_ready=True, timeout=max(self.interval, 5.0)
                    )
                except grpc.RpcError as error:
                    logging.log_every_n_seconds(
                        logging.WARNING, "Heartbeat to the oracle at %s failed: %s", 60,
                        self.address, error.code() if hasattr(error, "code") else error,
                    )
                self._stop.wait(self.interval)
        finally:
            channel.close()


# --- Chief side: the oracle server.


def _servicer_class():
    from keras_tuner.src.distribute import oracle_chief

    class Servicer(oracle_chief.OracleServicer):
        """KerasTuner's servicer, plus heartbeats, progress logs and fatal errors."""

        def __init__(self, oracle, *, planned_trials=None, clock=time.monotonic):
            super().__init__(oracle)
            self.clock = clock
            self.heartbeats = {}  # tuner id -> last heartbeat (clock seconds)
            self.reaped = collections.Counter()  # trial id -> workers it outlived
            self.fatal = None  # the oracle's error that ends the sweep
            self.planned_trials = planned_trials
            self.started = clock()

        def GetSpace(self, request, context):
            tuner = dict(context.invocation_metadata() or ()).get(HEARTBEAT_METADATA_KEY)
            if tuner:
                self.heartbeats[tuner] = self.clock()
            return super().GetSpace(request, context)

        def CreateTrial(self, request, context):
            from keras_tuner.src import protos
            from keras_tuner.src.engine import oracle as oracle_module
            from keras_tuner.src.engine import trial as trial_module

            # Asking for a trial is a sign of life too: a worker that dies before its
            # first heartbeat got through must not hold the sweep forever.
            self.heartbeats[request.tuner_id] = self.clock()
            trial = oracle_module.synchronized(_create_trial_or_wait)(self.oracle, request.tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED:
                self.stop_triggered = True
                logging.info("Oracle: budget spent; %s stops.", request.tuner_id)
            elif trial.status == trial_module.TrialStatus.RUNNING:
                number = int(trial.trial_id) + 1 if trial.trial_id.isdigit() else trial.trial_id
                logging.info(
                    "Oracle: trial %s%s (id %s) started on %s.", number,
                    f" of {self.planned_trials}" if self.planned_trials else "",
                    trial.trial_id, request.tuner_id,
                )
            return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

        def EndTrial(self, request, context):
            try:
                response = super().EndTrial(request, context)
            except RuntimeError as error:  # e.g. too many consecutive failed trials
                self.fatal = str(error)
                logging.error("Oracle: %s", error)
                raise
            self._log_progress()
            return response

        def _log_progress(self):
            oracle = self.oracle
            ended = [oracle.trials[i] for i in oracle.end_order if i in oracle.trials]
            best = oracle.get_best_trials(1)
            best = best[0] if best and best[0].score is not None else None
            elapsed = self.clock() - self.started
            logging.info(
                "Oracle: %d trial(s) ended%s, %d running; best %s %s; %.0f s elapsed, "
                "%.1f trials/hour.",
                len(ended),
                f" of {self.planned_trials}" if self.planned_trials else "",
                len(oracle.ongoing_trials),
                oracle.objective.name,
                f"{best.score:.4f} (trial {best.trial_id})" if best else "n/a",
                elapsed,
                3600.0 * len(ended) / max(elapsed, 1e-9),
            )

    return Servicer


def _create_trial_or_wait(oracle, tuner):
    """`oracle.create_trial`, except that a worker is told to wait (IDLE) rather than
    stop while other workers' trials are still running: if one of those workers dies,
    its trial is queued again and needs someone to run it. (Hyperband's oracle already
    answers IDLE then; random and Bayesian search stop as soon as the budget is drawn.)
    Called with the oracle's lock held."""
    from keras_tuner.src.engine import trial as trial_module

    trial = oracle.create_trial(tuner)
    if trial.status == trial_module.TrialStatus.STOPPED and oracle.ongoing_trials:
        oracle.tuner_ids.add(tuner)  # create_trial removed it: it stays registered
        return trial_module.Trial(oracle.get_space(), status=trial_module.TrialStatus.IDLE)
    return trial


def _reap(oracle, servicer, dead, reason):
    """Drops dead workers; re-queues or fails their trials. Holds the oracle's lock."""
    from keras_tuner.src.engine import trial as trial_module

    for tuner in dead:
        oracle.tuner_ids.discard(tuner)
        servicer.heartbeats.pop(tuner, None)
    for tuner in dead:
        trial = oracle.ongoing_trials.pop(tuner, None)
        if trial is None:
            logging.warning("Oracle: %s %s; it was between trials.", tuner, reason)
            continue
        servicer.reaped[trial.trial_id] += 1
        if oracle.tuner_ids and servicer.reaped[trial.trial_id] < _REAPS_BEFORE_FAILED:
            oracle._retry_queue.append(trial.trial_id)
            logging.warning(
                "Oracle: %s %s during trial %s; the trial is queued for another worker.",
                tuner, reason, trial.trial_id,
            )
        else:
            trial.status = trial_module.TrialStatus.FAILED
            trial.message = (
                f"Worker {tuner} {reason} during this trial "
                f"({servicer.reaped[trial.trial_id]} time(s)); no worker left to retry it."
                if not oracle.tuner_ids
                else f"Worker {tuner} {reason} during this trial, again: not retried."
            )
            oracle.end_order.append(trial.trial_id)
            logging.warning("Oracle: trial %s FAILED: %s", trial.trial_id, trial.message)
        oracle._save_trial(trial)
    oracle.save()


def _locked(oracle, function, *args, timeout=5.0):
    """Runs `function(oracle, *args)` holding the oracle's lock; False when it is busy.

    Not `keras_tuner.synchronized`: that decorator never releases the lock when the
    oracle raises (e.g. "too many consecutive failed trials"), and this thread would
    then wait forever.
    """
    from keras_tuner.src.engine import oracle as oracle_module

    lock = oracle_module.LOCKS[oracle]
    if not lock.acquire(timeout=timeout):
        return False
    try:
        function(oracle, *args)
    finally:
        lock.release()
    return True


def serve_oracle(
    oracle, *, host, port, worker_timeout, planned_trials=None, poll_seconds=1.0, parent_pid=None
):
    """Serves `oracle` over gRPC until the budget is spent and every worker has left.

    Like `keras_tuner.src.distribute.oracle_chief.start_server`, plus: workers that stop
    sending heartbeats for `worker_timeout` seconds are dropped (see the module
    docstring), the check runs every `poll_seconds` instead of every 20 s, and the
    server stops when the process `parent_pid` (the chief's main process) is gone.

    After an error of the oracle (e.g. too many consecutive failed trials) it keeps
    serving, so that every worker gets that error at its next call; the chief's main
    process then stops it.

    Raises:
      RuntimeError: when the port cannot be bound or the parent process died.
    """
    import grpc
    from concurrent import futures
    from keras_tuner.src import protos

    servicer = _servicer_class()(oracle, planned_trials=planned_trials)
    # One thread, as KerasTuner's server: the oracle is not meant for concurrent calls.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if not server.add_insecure_port(f"{host}:{port}"):
        raise RuntimeError(f"Expected to listen on {host}:{port}. Received: the port is not available.")
    server.start()
    logging.info("Oracle listening on %s:%s (worker timeout %.0f s).", host, port, worker_timeout)
    try:
        while True:
            time.sleep(poll_seconds)
            if parent_pid is not None and os.getppid() != parent_pid:
                raise RuntimeError(f"The chief's main process {parent_pid} is gone; stopping the oracle.")
            if servicer.fatal:
                continue
            now = servicer.clock()
            silent = [
                tuner
                for tuner, seen in list(servicer.heartbeats.items())
                if now - seen > worker_timeout
            ]
            # Workers that were told to stop have left; only registered ones can be dead.
            dead = [tuner for tuner in silent if tuner in oracle.tuner_ids or tuner in oracle.ongoing_trials]
            for tuner in set(silent) - set(dead):
                servicer.heartbeats.pop(tuner, None)
            if dead:
                _locked(oracle, _reap, servicer, dead, f"sent no heartbeat for {worker_timeout:g} s")
            # Reads without the lock: a stale answer only delays the exit by one poll.
            if servicer.stop_triggered and not oracle.ongoing_trials and not oracle.tuner_ids:
                break
    finally:
        # A short grace: the last worker's STOPPED answer is still on its way back.
        server.stop(grace=2).wait()
    logging.info("Oracle: sweep finished; server stopped.")
