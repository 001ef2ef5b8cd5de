"""Every use of KerasTuner's internals, in one place.

The sweep needs a few things KerasTuner has no public API for: Hyperband's bracket
arithmetic, the oracle's project directory, a tuner that declares its space without
building models and that tolerates a missing tensorboard package, and an oracle server
that notices dead workers (the gRPC servicer, the oracle's lock, its retry queue and
its trial bookkeeping). They are reached from here only, and tested with
`TESTED_VERSION`, the version setup.py pins: a KerasTuner upgrade is a change to this
module and its tests (tests/test_tuning_adapter.py fails on any other version).
"""

import importlib.metadata
import time

import keras_tuner
from keras_tuner.engine import trial as trial_module
from keras_tuner.src.engine import oracle as oracle_module

TESTED_VERSION = "1.4.8"

TrialStatus = trial_module.TrialStatus
Trial = trial_module.Trial


def installed_version():
    return importlib.metadata.version("keras-tuner")


def version_mismatch(installed=None):
    """A message when the installed KerasTuner (or `installed`) is not the tested one,
    else None."""
    installed = installed_version() if installed is None else installed
    if installed == TESTED_VERSION:
        return None
    return (
        f"Expected keras-tuner=={TESTED_VERSION} (the version tuning/keras_tuner_adapter.py "
        f"is tested with and setup.py pins). Received: keras-tuner {installed}. Install "
        f"keras-tuner=={TESTED_VERSION}, or check the adapter against {installed} and move "
        "the pin and TESTED_VERSION together."
    )


# --- Hyperband's budget.


def hyperband_schedule(*, max_epochs, factor):
    """[(trials, epochs each trains)] per Hyperband round, from KerasTuner's own oracle."""
    oracle = keras_tuner.oracles.HyperbandOracle(
        objective=keras_tuner.Objective("val_loss", "min"),  # the schedule ignores it
        max_epochs=max_epochs,
        factor=factor,
        hyperband_iterations=1,
    )
    schedule = []
    for bracket in range(oracle._get_num_brackets()):
        for round_num in range(bracket + 1):
            start = oracle._get_epochs(bracket, round_num - 1) if round_num else 0
            schedule.append(
                (oracle._get_size(bracket, round_num), oracle._get_epochs(bracket, round_num) - start)
            )
    return schedule


# --- Oracle state on disk.


def set_project_dir(oracle, directory, project_name):
    """Points `oracle` at `<directory>/<project_name>/` (where a Tuner would put it)."""
    oracle._set_project_dir(directory, project_name)


def oracle_file(oracle):
    """The oracle's saved state (oracle.json) under its project directory."""
    return oracle._get_oracle_fname()


# --- The tuner.


class Tuner(keras_tuner.Tuner):
    """A Tuner whose hypermodel declares the complete space itself, and which adds
    TensorBoard's HParams callback only when tensorboard is installed.

    Subclasses set `tensorboard_available` (a callable returning bool).
    """

    def __init__(self, oracle, **kwargs):
        # keras_tuner.Tuner.__init__, not the subclass's: Hyperband's would make its own
        # oracle, and the oracle here may be a reloaded one.
        keras_tuner.Tuner.__init__(self, oracle=oracle, **kwargs)

    def tensorboard_available(self):
        raise NotImplementedError

    def _populate_initial_space(self):
        # KerasTuner builds the model once per conditional scope to discover the space;
        # `declare_hyperparameters` already declares all of it.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # KerasTuner imports tensorboard here whatever the callbacks, and TensorFlow
        # 2.21 no longer installs it: without it every trial would fail.
        if self.tensorboard_available():
            super()._configure_tensorboard_dir(callbacks, trial, execution)


# --- The oracle's bookkeeping (call these holding the oracle's lock, see `locked`).


def locked(oracle, function, *args, timeout=5.0):
    """Runs `function(oracle, *args)` holding the oracle's lock; False when it is busy.

    Not `keras_tuner.synchronized`: that decorator never releases the lock when the
    oracle raises (e.g. "too many consecutive failed trials"), and the caller would
    then wait forever.
    """
    lock = oracle_module.LOCKS[oracle]
    if not lock.acquire(timeout=timeout):
        return False
    try:
        function(oracle, *args)
    finally:
        lock.release()
    return True


def create_trial_or_wait(oracle, tuner):
    """`oracle.create_trial`, except that a worker is told to wait (IDLE) rather than
    stop while other workers' trials are still running: if one of those workers dies,
    its trial is queued again and needs someone to run it. (Hyperband's oracle already
    answers IDLE then; random and Bayesian search stop as soon as the budget is drawn.)
    Called with the oracle's lock held."""
    trial = oracle.create_trial(tuner)
    if trial.status == TrialStatus.STOPPED and oracle.ongoing_trials:
        oracle.tuner_ids.add(tuner)  # create_trial removed it: it stays registered
        return Trial(oracle.get_space(), status=TrialStatus.IDLE)
    return trial


def is_registered(oracle, tuner):
    """Whether `tuner` takes part in the search (asked for trials and was not stopped)."""
    return tuner in oracle.tuner_ids or tuner in oracle.ongoing_trials


def search_finished(oracle):
    """No trial is running and no worker is registered."""
    return not oracle.ongoing_trials and not oracle.tuner_ids


def drop_worker(oracle, tuner):
    """Unregisters `tuner`; returns the trial it was running, or None."""
    oracle.tuner_ids.discard(tuner)
    return oracle.ongoing_trials.pop(tuner, None)


def requeue_trial(oracle, trial):
    """Queues a dropped worker's trial for the next worker that asks (same id)."""
    oracle._retry_queue.append(trial.trial_id)
    oracle._save_trial(trial)


def fail_trial(oracle, trial, message):
    """Ends a dropped worker's trial as FAILED with `message`."""
    trial.status = TrialStatus.FAILED
    trial.message = message
    oracle.end_order.append(trial.trial_id)
    oracle._save_trial(trial)


def running_trials(oracle):
    """How many trials workers are running now."""
    return len(oracle.ongoing_trials)


def ended_trials(oracle):
    """The trials that ended, in the order they ended."""
    return [oracle.trials[i] for i in oracle.end_order if i in oracle.trials]


# --- gRPC: the oracle's servicer and a worker's heartbeat.


def servicer(oracle, *, metadata_key, known_tuner, on_sign_of_life, on_trial_created, on_trial_ended, on_fatal):
    """KerasTuner's oracle servicer, with hooks and checks.

    A call naming a tuner id that `known_tuner` refuses (INVALID_ARGUMENT), or a trial
    the oracle never created (NOT_FOUND), gets an error with a message: KerasTuner's
    own servicer would register any id, or fail with a bare KeyError.

    Args:
      oracle: the oracle to serve.
      metadata_key: the gRPC metadata key of a heartbeat (a GetSpace call tagged with
        the worker's id).
      known_tuner: a predicate on tuner ids; ids it refuses are not served.
      on_sign_of_life: called with a tuner id on each heartbeat and trial request.
      on_trial_created: called with (tuner id, trial) after each CreateTrial.
      on_trial_ended: called after each EndTrial.
      on_fatal: called with the oracle's RuntimeError when EndTrial fails (e.g. too
        many consecutive failed trials); the error still reaches the worker.

    Returns:
      The servicer; its `stop_triggered` is True once the oracle answered STOPPED.
    """
    # Imported on use, as KerasTuner does: gRPC and its protobufs only where served.
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    import grpc

    def check_tuner(tuner, context):
        if not known_tuner(tuner):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expected the id of one of this sweep's s140-tune workers (tuner-workerpoolN-ID). Received: {tuner!r}.",
            )

    def check_trial(trial_id, context):
        if trial_id not in oracle.trials:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Expected a trial id of this sweep. Received: {trial_id!r}.")

    class Servicer(oracle_chief.OracleServicer):
        def GetSpace(self, request, context):
            tuner = dict(context.invocation_metadata() or ()).get(metadata_key)
            if tuner is not None:
                check_tuner(tuner, context)
                on_sign_of_life(tuner)
            return super().GetSpace(request, context)

        def CreateTrial(self, request, context):
            check_tuner(request.tuner_id, context)
            on_sign_of_life(request.tuner_id)
            trial = oracle_module.synchronized(create_trial_or_wait)(self.oracle, request.tuner_id)
            if trial.status == TrialStatus.STOPPED:
                self.stop_triggered = True
            on_trial_created(request.tuner_id, trial)
            return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

        def UpdateTrial(self, request, context):
            check_trial(request.trial_id, context)
            return super().UpdateTrial(request, context)

        def GetTrial(self, request, context):
            check_trial(request.trial_id, context)
            return super().GetTrial(request, context)

        def EndTrial(self, request, context):
            check_trial(request.trial.trial_id, context)
            try:
                response = super().EndTrial(request, context)
            except RuntimeError as error:
                on_fatal(error)
                raise
            on_trial_ended()
            return response

    return Servicer(oracle)


def add_servicer_to_server(servicer_, server):
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(servicer_, server)


def heartbeat_call(channel):
    """A function (metadata, timeout) -> None that sends one heartbeat on `channel`."""
    from keras_tuner.src import protos

    stub = protos.get_service_grpc().OracleStub(channel)
    request = protos.get_service().GetSpaceRequest()

    def call(metadata, timeout):
        # wait_for_ready: while the oracle starts (or its channel backs off after a
        # failed connect), wait for it instead of failing at once.
        stub.GetSpace(request, metadata=metadata, wait_for_ready=True, timeout=timeout)

    return call


def wait_when_idle(oracle_client, seconds=1.0):
    """Makes a worker wait `seconds` before asking again when the oracle answers IDLE.

    KerasTuner's search loop (`BaseTuner.search`, keras_tuner/src/engine/base_tuner.py
    at TESTED_VERSION) asks again at once, which on a small machine turns a Hyperband
    round that waits for other workers into a busy loop against the server. Its
    `create_trial` is wrapped on this one client object.
    """
    create_trial = oracle_client.create_trial

    def patient_create_trial(tuner_id):
        trial = create_trial(tuner_id)
        if trial.status == TrialStatus.IDLE:
            time.sleep(seconds)
        return trial

    oracle_client.create_trial = patient_create_trial


def authenticate_client(oracle_client, address, metadata):
    """Makes a worker's OracleClient send `metadata` ((key, value) pairs: the sweep's
    secret) with every call: KerasTuner's client opens a plain channel of its own, so
    its stub is rebuilt on the oracle's `address` (host:port) through an interceptor
    that adds them."""
    import grpc
    from keras_tuner.src import protos

    class _AddMetadata(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            details = details._replace(metadata=tuple(details.metadata or ()) + tuple(metadata))
            return continuation(details, request)

    channel = grpc.intercept_channel(grpc.insecure_channel(address), _AddMetadata())
    oracle_client.stub = protos.get_service_grpc().OracleStub(channel)

