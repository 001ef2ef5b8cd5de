"""Who does what in a distributed sweep: KerasTuner's chief/worker environment of each
process, derived from Vertex AI's CLUSTER_SPEC, TF_CONFIG or the role flags.

KerasTuner configures a process through three environment variables, read when a tuner
is constructed and again in `search()`:

  KERASTUNER_TUNER_ID     "chief" for the oracle server (any id containing "chief"
                          is one!), a unique id for each process that runs trials
  KERASTUNER_ORACLE_IP    where the oracle listens (the server binds to it)
  KERASTUNER_ORACLE_PORT

The primary machine runs the oracle in a process of its own, bound to its own
CLUSTER_SPEC address (host:port) (`processes.start_oracle_process`, `oracle_server.serve_oracle`), and
its main process *also* runs trials as a worker pointed at that address; every other
replica is a worker (the layout of TFX's Cloud AI Platform tuner executor).
`keras_tuner_env` derives these variables from Vertex AI's CLUSTER_SPEC (pools
"workerpool0", "workerpool1", ...), the single-replica "chief" key, the legacy AI
Platform "master"/"worker" keys or a TF_CONFIG-style spec; `local_keras_tuner_env` from
explicit flags. Users never set them by hand. Everything here is a pure function of
plain values.

The oracle serves only the sweep's own processes: every call must carry the sweep's
shared secret, S140_SWEEP_SECRET, which every process of the sweep has in its
environment. s140-submit draws one per Vertex AI job and puts it in the job's own
worker pool specs, which only the job's replicas (and whoever may read the job in the
project) see; by hand, set the same value for the chief and every worker.
"""

import contextlib
import json
import os
import re

from common import errors

TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
SECRET = "S140_SWEEP_SECRET"  # the sweep's shared secret; in every process's environment
KERASTUNER_VARIABLES = (TUNER_ID, ORACLE_IP, ORACLE_PORT, SECRET)
MIN_SECRET_LENGTH = 16

ORACLE = "oracle"  # key of the oracle process's environment in keras_tuner_env()
WORKER = "worker"  # key of the trial-running main process's environment

CHIEF_TUNER_ID = "chief"
PRIMARY_POOL = "workerpool0"
WORKER_POOL = "workerpool1"
# Pool names as they appear in other formats -> Vertex AI's. "chief" must never stay
# in a worker's id: KerasTuner treats any id containing "chief" as the oracle.
_POOL_ALIASES = {"chief": PRIMARY_POOL, "master": PRIMARY_POOL, "worker": WORKER_POOL}
# Keys that can hold the primary replica, in the order they are looked for.
_PRIMARY_KEYS = (PRIMARY_POOL, "chief", "master")


class ClusterSpecError(errors.UserError, ValueError):
    """CLUSTER_SPEC / TF_CONFIG / the role flags do not describe a usable cluster."""


class OracleDied(errors.UserError, RuntimeError):
    """The chief's oracle process ended with an error while the sweep was running. One
    line: what went wrong is in the oracle process's own log, just above."""


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


# Every id `tuner_id` and `local_keras_tuner_env` give: the oracle serves no other.
_WORKER_ID = re.compile(r"tuner-workerpool\d+-\S+")


def is_worker_id(name):
    """Whether `name` is the id of a trial-running process of this package (an
    s140-tune, which sends heartbeats), e.g. "tuner-workerpool1-3"."""
    return bool(_WORKER_ID.fullmatch(name or "")) and CHIEF_TUNER_ID not in name


def sweep_secret(environ):
    """S140_SWEEP_SECRET of `environ`.

    Raises:
      ClusterSpecError: when it is unset or shorter than MIN_SECRET_LENGTH.
    """
    secret = environ.get(SECRET, "")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ClusterSpecError(
            f"Expected {SECRET} to hold the sweep's shared secret (at least {MIN_SECRET_LENGTH} "
            f"characters, the same in every process of the sweep). Received "
            f"{'nothing' if not secret else f'{len(secret)} characters'}. For example: "
            f"export {SECRET}=$(python -c 'import secrets; print(secrets.token_hex(16))')"
        )
    return secret


def keras_tuner_env(cluster_spec, *, secret=None):
    """The KerasTuner environment of each process this replica runs.

    Args:
      cluster_spec: a parsed CLUSTER_SPEC (or TF_CONFIG-style) dict, or None.
      secret: the sweep's shared secret (`sweep_secret`); needed with several replicas.

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
    _require(secret)
    primary = _primary(cluster)
    host, port = _split_address(cluster[primary][0], f"cluster[{primary!r}][0]")
    worker = {TUNER_ID: tuner_id(task_type, index), ORACLE_IP: host, ORACLE_PORT: port, SECRET: secret}
    if (task_type, index) != (primary, 0):
        return {WORKER: worker}
    # The oracle binds the primary's own address, not every interface.
    return {ORACLE: {**worker, TUNER_ID: CHIEF_TUNER_ID}, WORKER: worker}


def _require(secret):
    sweep_secret({SECRET: secret or ""})  # raises, saying how to set it


ROLES = ("standalone", "chief", "worker")


def local_keras_tuner_env(role, *, oracle_address=None, worker_id=None, secret=None):
    """`keras_tuner_env` for processes started by hand (flags instead of CLUSTER_SPEC).

    Args:
      role: "standalone" (one process), "chief" (oracle process + trials) or "worker".
      oracle_address: host:port of the oracle (chief and worker).
      worker_id: a worker's unique id (a number or a name); a worker restarted with the
        same id resumes the trial it was running.
      secret: the sweep's shared secret (`sweep_secret`); needed by the chief and workers.

    The chief's oracle binds the address given, and nothing else.
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
        _require(secret)  # after the flags: their errors come first
        address = {ORACLE_IP: host, ORACLE_PORT: port, SECRET: secret}
        return {
            ORACLE: {TUNER_ID: CHIEF_TUNER_ID, **address},
            WORKER: {TUNER_ID: tuner_id(PRIMARY_POOL, 0), **address},
        }
    if worker_id is None or str(worker_id) == "":
        raise ClusterSpecError("Expected --worker_id (unique per worker) with --role=worker. Received none.")
    name = f"tuner-{WORKER_POOL}-{worker_id}"
    if not is_worker_id(name):
        raise ClusterSpecError(
            f"Expected a --worker_id without spaces or {CHIEF_TUNER_ID!r}. Received: {worker_id!r}."
        )
    _require(secret)
    return {WORKER: {TUNER_ID: name, ORACLE_IP: host, ORACLE_PORT: port, SECRET: secret}}


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
