"""KerasTuner environments from CLUSTER_SPEC / flags, and the oracle server's liveness."""

import json
import socket
import threading
import time

import keras_tuner
import pytest
from keras_tuner.src import protos
from keras_tuner.src.distribute import utils as kt_distribute_utils

from tuning import distributed
from tuning import oracle_server
from tuning import processes

ID, IP, PORT = distributed.TUNER_ID, distributed.ORACLE_IP, distributed.ORACLE_PORT

VERTEX = {
    "cluster": {
        "workerpool0": ["cmle-training-workerpool0-ab12-0:2222"],
        "workerpool1": ["cmle-training-workerpool1-ab12-0:2222", "cmle-training-workerpool1-ab12-1:2222"],
    },
    "environment": "cloud",
    "task": {"type": "workerpool0", "index": 0},
    "job": "{}",
}


SECRET = "a" * 16 + "-sweep-secret"
KEY = distributed.SECRET
AUTH = ((oracle_server.SECRET_METADATA_KEY, SECRET),)


def _with_task(spec, task_type, index):
    return {**spec, "task": {"type": task_type, "index": index}}


def test_vertex_primary_runs_the_oracle_on_its_own_address_and_a_worker():
    assert distributed.keras_tuner_env(VERTEX, secret=SECRET) == {
        "oracle": {ID: "chief", IP: "cmle-training-workerpool0-ab12-0", PORT: "2222", KEY: SECRET},
        "worker": {ID: "tuner-workerpool0-0", IP: "cmle-training-workerpool0-ab12-0", PORT: "2222", KEY: SECRET},
    }


def test_vertex_worker_points_at_the_primary():
    assert distributed.keras_tuner_env(_with_task(VERTEX, "workerpool1", 1), secret=SECRET) == {
        "worker": {ID: "tuner-workerpool1-1", IP: "cmle-training-workerpool0-ab12-0", PORT: "2222", KEY: SECRET}
    }


def test_legacy_master_key():
    spec = {"cluster": {"master": ["master-0:2222"], "worker": ["w-0:2222", "w-1:2222"]}, "task": {"type": "master", "index": 0}}
    assert distributed.keras_tuner_env(spec, secret=SECRET) == {
        "oracle": {ID: "chief", IP: "master-0", PORT: "2222", KEY: SECRET},
        "worker": {ID: "tuner-workerpool0-0", IP: "master-0", PORT: "2222", KEY: SECRET},
    }
    assert distributed.keras_tuner_env(_with_task(spec, "worker", 1), secret=SECRET) == {
        "worker": {ID: "tuner-workerpool1-1", IP: "master-0", PORT: "2222", KEY: SECRET}
    }


def test_single_replica_chief_key_runs_alone():
    spec = {"cluster": {"chief": ["cmle-training-chief-0:2222"]}, "task": {"type": "chief", "index": 0}}
    assert distributed.keras_tuner_env(spec) == {"worker": {}}
    assert distributed.is_chief(distributed.keras_tuner_env(spec))
    assert distributed.keras_tuner_env(None) == {"worker": {}}


def test_tf_config_style_chief_never_gets_a_chief_worker_id():
    # KerasTuner makes any tuner id containing "chief" an oracle: the chief's trials
    # must run under another name.
    spec = {"cluster": {"chief": ["c-0:2222"], "worker": ["w-0:2222"]}, "task": {"type": "chief", "index": 0}}
    envs = distributed.keras_tuner_env(spec, secret=SECRET)
    assert envs["worker"][ID] == "tuner-workerpool0-0"
    assert envs["oracle"][ID] == "chief"


@pytest.mark.parametrize(
    "spec",
    [
        VERTEX,
        {"cluster": {"master": ["m:1"], "worker": ["a:1", "b:1", "c:1"]}, "task": {}},
        {"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "task": {}},
        {"cluster": {"worker": ["a:7", "b:7", "c:7"]}, "task": {}},
    ],
)
def test_every_process_of_a_cluster_has_a_unique_worker_id_and_one_oracle(spec):
    envs = [
        distributed.keras_tuner_env(_with_task(spec, pool, index), secret=SECRET)
        for pool, addresses in spec["cluster"].items()
        for index in range(len(addresses))
    ]
    ids = [e["worker"][ID] for e in envs]
    assert len(set(ids)) == len(ids)
    assert all(distributed.is_worker_id(i) for i in ids)  # the oracle serves them
    assert not [i for i in ids if "chief" in i]
    assert sum("oracle" in e for e in envs) == 1
    addresses = {(e["worker"][IP], e["worker"][PORT]) for e in envs}
    assert len(addresses) == 1  # everyone talks to the one oracle


def test_keras_tuner_reads_the_environment_as_intended():
    envs = distributed.keras_tuner_env(VERTEX, secret=SECRET)
    with distributed.kerastuner_environment(envs["oracle"]):
        assert kt_distribute_utils.has_chief_oracle() and kt_distribute_utils.is_chief_oracle()
    with distributed.kerastuner_environment(envs["worker"]):
        assert kt_distribute_utils.has_chief_oracle() and not kt_distribute_utils.is_chief_oracle()
    with distributed.kerastuner_environment({}):
        assert not kt_distribute_utils.has_chief_oracle()
    environ = {ID: "old", "OTHER": "kept"}
    with distributed.kerastuner_environment(envs["worker"], environ):
        assert environ[ID] == "tuner-workerpool0-0" and environ[PORT] == "2222"
    assert environ == {ID: "old", "OTHER": "kept"}


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"cluster": {"workerpool0": ["a:1"]}, "task": {"type": "workerpool1", "index": 0}}, "task type"),
        ({"cluster": {"workerpool0": ["a:1"], "workerpool1": ["b:1"]}, "task": {"type": "workerpool1", "index": 3}}, "index"),
        ({"cluster": {"workerpool0": ["nohostport"], "workerpool1": ["b:1"]}, "task": {"type": "workerpool1", "index": 0}}, "host:port"),
        ({"cluster": {"ps": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 0}}, "primary"),
    ],
)
def test_unusable_cluster_specs_are_refused(spec, match):
    with pytest.raises(distributed.ClusterSpecError, match=match):
        distributed.keras_tuner_env(spec, secret=SECRET)


def test_cluster_spec_wins_over_tf_config_and_bad_json_is_named():
    tf_config = {"cluster": {"chief": ["c:1"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 0}}
    environ = {"CLUSTER_SPEC": json.dumps(VERTEX), "TF_CONFIG": json.dumps(tf_config)}
    assert distributed.parse_cluster_spec(environ) == VERTEX
    assert distributed.parse_cluster_spec({"TF_CONFIG": json.dumps(tf_config)}) == tf_config
    assert distributed.parse_cluster_spec({"TF_CONFIG": '{"task": {}}'}) is None
    assert distributed.parse_cluster_spec({}) is None
    with pytest.raises(distributed.ClusterSpecError, match="CLUSTER_SPEC to be JSON"):
        distributed.parse_cluster_spec({"CLUSTER_SPEC": "{not json"})


def test_local_roles_from_flags():
    chief = distributed.local_keras_tuner_env("chief", oracle_address="127.0.0.1:8000", secret=SECRET)
    assert chief == {
        "oracle": {ID: "chief", IP: "127.0.0.1", PORT: "8000", KEY: SECRET},
        "worker": {ID: "tuner-workerpool0-0", IP: "127.0.0.1", PORT: "8000", KEY: SECRET},
    }
    # The oracle binds the address given, never every interface.
    assert distributed.local_keras_tuner_env("chief", oracle_address="10.0.0.2:8000", secret=SECRET)["oracle"][IP] == "10.0.0.2"
    assert distributed.local_keras_tuner_env("worker", oracle_address="10.0.0.2:8000", worker_id="3", secret=SECRET) == {
        "worker": {ID: "tuner-workerpool1-3", IP: "10.0.0.2", PORT: "8000", KEY: SECRET}
    }
    assert distributed.local_keras_tuner_env("standalone") == {"worker": {}}
    with pytest.raises(distributed.ClusterSpecError, match="--worker_id"):
        distributed.local_keras_tuner_env("worker", oracle_address="h:1", secret=SECRET)
    with pytest.raises(distributed.ClusterSpecError, match="--oracle_address"):
        distributed.local_keras_tuner_env("chief")
    with pytest.raises(distributed.ClusterSpecError, match="chief"):
        distributed.local_keras_tuner_env("worker", oracle_address="h:1", worker_id="chief2", secret=SECRET)
    with pytest.raises(distributed.ClusterSpecError, match="without spaces"):
        distributed.local_keras_tuner_env("worker", oracle_address="h:1", worker_id="a b", secret=SECRET)


def test_s140_submit_names_the_same_variable():
    from cloud import vertex

    assert vertex.SWEEP_SECRET == distributed.SECRET


def test_a_distributed_sweep_needs_a_shared_secret():
    for short in (None, "", "tooshort"):
        with pytest.raises(distributed.ClusterSpecError, match=r"Expected S140_SWEEP_SECRET to hold the sweep's shared secret \(at least 16"):
            distributed.local_keras_tuner_env("worker", oracle_address="h:1", worker_id="1", secret=short)
        with pytest.raises(distributed.ClusterSpecError, match="S140_SWEEP_SECRET"):
            distributed.keras_tuner_env(VERTEX, secret=short)
    assert distributed.sweep_secret({KEY: SECRET}) == SECRET


# --- The oracle server: a worker that goes silent loses its trial to another worker.


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _oracle(tmp_path, max_trials):
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [1, 2, 3, 4, 5, 6, 7, 8])
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("score", "max"), max_trials=max_trials, hyperparameters=hp, seed=1
    )
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.verbose = 0
    return oracle


def _serve(oracle, port, *, worker_timeout, host="127.0.0.1"):
    """The sweep's oracle served in a thread, as the chief's oracle process serves it."""
    server = threading.Thread(
        target=oracle_server.serve_oracle,
        kwargs=dict(oracle=oracle, host=host, port=port, worker_timeout=worker_timeout, poll_seconds=0.1, secret=SECRET),
        daemon=True,
    )
    server.start()
    return server


def test_a_silent_worker_is_dropped_and_its_trial_runs_elsewhere(tmp_path):
    import grpc

    DIES, LIVES = "tuner-workerpool1-dies", "tuner-workerpool1-lives"

    port = _free_port()
    oracle = _oracle(tmp_path, max_trials=2)
    server = _serve(oracle, port, worker_timeout=1.0)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = protos.get_service_grpc().OracleStub(channel)
    service = protos.get_service()

    def heartbeat(tuner):
        stub.GetSpace(service.GetSpaceRequest(), metadata=((oracle_server.HEARTBEAT_METADATA_KEY, tuner), *AUTH), wait_for_ready=True, timeout=10)

    def create(tuner):
        response = stub.CreateTrial(service.CreateTrialRequest(tuner_id=tuner), metadata=AUTH, wait_for_ready=True, timeout=10)
        return keras_tuner.engine.trial.Trial.from_proto(response.trial)

    def finish(trial, score):
        stub.UpdateTrial(service.UpdateTrialRequest(trial_id=trial.trial_id, metrics={"score": score}, step=0), metadata=AUTH, timeout=10)
        trial.status = "COMPLETED"
        stub.EndTrial(service.EndTrialRequest(trial=trial.to_proto()), metadata=AUTH, timeout=10)

    heartbeat(DIES)
    lost = create(DIES)  # and never heard of again
    alive = processes.Heartbeat(f"127.0.0.1:{port}", LIVES, interval=0.2, secret=SECRET)
    with alive:
        first = create(LIVES)
        assert {lost.trial_id, first.trial_id} == {"0", "1"}
        time.sleep(1.5)  # > worker_timeout: "dies" is dropped, its trial queued again
        finish(first, 0.5)
        again = create(LIVES)
        assert again.trial_id == lost.trial_id
        assert again.hyperparameters.values == lost.hyperparameters.values
        finish(again, 0.7)
        assert create(LIVES).status == "STOPPED"  # budget spent
    server.join(timeout=10)
    assert not server.is_alive()  # the chief finished although "dies" never came back
    channel.close()
    statuses = {t.trial_id: (t.status, t.score) for t in oracle.trials.values()}
    assert statuses == {lost.trial_id: ("COMPLETED", 0.7), first.trial_id: ("COMPLETED", 0.5)}
    assert oracle.tuner_ids == set() and oracle.ongoing_trials == {}


def test_a_trial_waits_for_the_next_worker_and_fails_after_losing_two(tmp_path):
    # Seen on a loaded machine: a worker died before the chief's own worker had asked for
    # a trial, and its trial was marked FAILED for "no worker left". The chief's worker
    # always comes; the trial must wait for it.
    import grpc

    port = _free_port()
    oracle = _oracle(tmp_path, max_trials=1)
    server = _serve(oracle, port, worker_timeout=0.5)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = protos.get_service_grpc().OracleStub(channel)

    def create(tuner):
        response = stub.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id=tuner), metadata=AUTH,
                                    wait_for_ready=True, timeout=10)
        return keras_tuner.engine.trial.Trial.from_proto(response.trial)

    taken = []
    for tuner in ("tuner-workerpool1-first", "tuner-workerpool1-late"):  # each takes the trial, then dies (its heartbeat stops)
        with processes.Heartbeat(f"127.0.0.1:{port}", tuner, interval=0.1, secret=SECRET):
            taken.append(create(tuner))
        time.sleep(1.0)  # > worker_timeout
    assert [t.trial_id for t in taken] == ["0", "0"] and taken[1].status == "RUNNING"  # the same trial, again
    assert oracle.trials["0"].status == "FAILED"
    assert "again (2 times): not retried" in oracle.trials["0"].message
    assert create("tuner-workerpool1-third").status == "STOPPED"  # budget spent
    channel.close()
    server.join(timeout=10)
    assert not server.is_alive()


def test_the_oracle_serves_only_its_sweep_on_the_address_given(tmp_path):
    import grpc

    port = _free_port()
    oracle = _oracle(tmp_path, max_trials=1)
    # 127.0.0.2 is loopback too, but another address: the oracle must not answer on 127.0.0.1.
    _serve(oracle, port, worker_timeout=30, host="127.0.0.2")  # serves until the process ends (daemon)
    request = protos.get_service().CreateTrialRequest(tuner_id="tuner-workerpool1-intruder")
    with grpc.insecure_channel(f"127.0.0.2:{port}") as channel:
        stub = protos.get_service_grpc().OracleStub(channel)
        for metadata in ((), ((oracle_server.SECRET_METADATA_KEY, "x" * 32),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.CreateTrial(request, metadata=metadata, wait_for_ready=True, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert oracle.trials == {} and oracle.tuner_ids == set()  # nothing was handed out
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = protos.get_service_grpc().OracleStub(channel)
        with pytest.raises(grpc.RpcError) as unreachable:
            stub.CreateTrial(request, metadata=AUTH, timeout=2)
        assert unreachable.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(f"127.0.0.2:{port}") as channel:  # the sweep's own worker
        stub = protos.get_service_grpc().OracleStub(channel)
        response = stub.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id="tuner-workerpool1-own"), metadata=AUTH, timeout=10)
        assert keras_tuner.engine.trial.Trial.from_proto(response.trial).status == "RUNNING"
    assert oracle.tuner_ids == {"tuner-workerpool1-own"}


def test_the_oracle_refuses_an_unknown_tuner_or_trial_id(tmp_path):
    import grpc

    port = _free_port()
    oracle = _oracle(tmp_path, max_trials=2)
    _serve(oracle, port, worker_timeout=30)  # serves until the process ends (daemon)
    service = protos.get_service()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = protos.get_service_grpc().OracleStub(channel)
        # A plain KerasTuner worker's id ("tuner0"), an empty one, one the oracle's own.
        for tuner in ("tuner0", "", "chief", "tuner-workerpool1-chief"):
            with pytest.raises(grpc.RpcError) as refused:
                stub.CreateTrial(service.CreateTrialRequest(tuner_id=tuner), metadata=AUTH, wait_for_ready=True, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"Received: {tuner!r}" in refused.value.details()
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetSpace(service.GetSpaceRequest(), metadata=((oracle_server.HEARTBEAT_METADATA_KEY, tuner), *AUTH), timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert oracle.trials == {} and oracle.tuner_ids == set()  # nothing handed out
        with pytest.raises(grpc.RpcError) as unknown:
            stub.UpdateTrial(service.UpdateTrialRequest(trial_id="7", metrics={"score": 1.0}), metadata=AUTH, timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "Received: '7'" in unknown.value.details()
        trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="7", status="COMPLETED")
        with pytest.raises(grpc.RpcError) as unknown:
            stub.EndTrial(service.EndTrialRequest(trial=trial.to_proto()), metadata=AUTH, timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        response = stub.CreateTrial(service.CreateTrialRequest(tuner_id="tuner-workerpool1-2"), metadata=AUTH, timeout=10)
        assert keras_tuner.engine.trial.Trial.from_proto(response.trial).status == "RUNNING"  # a known id is served
    assert oracle.tuner_ids == {"tuner-workerpool1-2"} and list(oracle.trials) == ["0"]


def test_a_starved_oracle_judges_no_worker_silent():
    # Seen under load: a live worker taken for dead. When the oracle's own poll comes
    # late, heartbeats that arrived meanwhile may still be queued: no verdict then.
    assert not oracle_server.starved(previous_poll=100.0, now=101.0, poll_seconds=1.0)
    assert not oracle_server.starved(previous_poll=100.0, now=102.9, poll_seconds=1.0)
    assert oracle_server.starved(previous_poll=100.0, now=108.0, poll_seconds=1.0)
    assert oracle_server.starved(previous_poll=100.0, now=101.5, poll_seconds=0.1)

