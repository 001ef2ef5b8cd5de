"""KerasTuner chief/worker mode on localhost: real processes, as `s140-tune` runs them."""

import csv
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 400


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log_path):
    # The chief and its workers share the sweep's secret (tuning/distributed.py).
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "S140_SWEEP_SECRET": "cluster-test-secret-0123"}
    for name in ("CLUSTER_SPEC", "TF_CONFIG", "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "tuning", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _wait(processes, logs):
    deadline = time.monotonic() + TIMEOUT
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [pathlib.Path(log).read_text() for log in logs]


def _rows(tuner_dir):
    with open(tuner_dir / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def _infos(tuner_dir):
    return {
        path.parent.name.removeprefix("trial_"): json.loads(path.read_text())
        for path in (tuner_dir / "search").glob("trial_*/s140_trial.json")
    }


def _flags(sample_data_dir, tuner_dir, port, **extra):
    flags = {
        "data_dir": sample_data_dir,
        "tuner_dir": tuner_dir,
        "tuner": "random",
        "architectures": "gap,conv1d",
        "max_epochs": 2,
        "oracle_address": f"127.0.0.1:{port}",
        **extra,
    }
    return [f"--{name}={value}" for name, value in flags.items()]


def test_a_chief_and_two_workers_run_every_trial_exactly_once(sample_data_dir, tmp_path):
    tuner_dir = tmp_path / "tune"
    trials = 6
    common = _flags(sample_data_dir, tuner_dir, _free_port(), max_trials=trials, epochs_best=1)
    logs = [tmp_path / name for name in ("chief.log", "worker1.log", "worker2.log")]
    processes = [
        _start([*common, "--role=chief"], logs[0]),
        _start([*common, "--role=worker", "--worker_id=1"], logs[1]),
        _start([*common, "--role=worker", "--worker_id=2"], logs[2]),
    ]
    outputs = _wait(processes, logs)
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]

    rows = _rows(tuner_dir)
    assert [r["trial_id"] for r in rows] == [str(i) for i in range(trials)]
    assert [r["status"] for r in rows] == ["COMPLETED"] * trials
    infos = _infos(tuner_dir)
    assert sorted(infos) == sorted(r["trial_id"] for r in rows)
    assert {info["attempts"] for info in infos.values()} == {1}  # none ran twice
    runners = {r["tuner_id"] for r in rows}
    assert runners <= {"tuner-workerpool0-0", "tuner-workerpool1-1", "tuner-workerpool1-2"}
    assert len(runners) >= 2, runners  # the work was shared
    # Each process's log names the trials it ran; together: each trial exactly once.
    ran = [line for output in outputs for line in output.splitlines() if ") COMPLETED in " in line]
    assert len(ran) == trials
    # Only the chief reports, with the best trial of the shared record.
    best = json.loads((tuner_dir / "best_hyperparameters.json").read_text())
    assert best["trial_id"] == max(rows, key=lambda r: float(r["val_accuracy"]))["trial_id"]
    assert "Best: trial" in outputs[0]
    assert all("the chief writes the results" in output for output in outputs[1:])
    assert (tuner_dir / "best" / "model" / "saved_model.pb").exists()


def test_a_worker_that_dies_does_not_stop_the_sweep(sample_data_dir, tmp_path):
    tuner_dir = tmp_path / "tune"
    trials = 4
    common = _flags(
        sample_data_dir, tuner_dir, _free_port(), architectures="gap", max_trials=trials,
        max_epochs=3, epochs_best=0, worker_timeout_seconds=5,
    )
    logs = [tmp_path / "chief.log", tmp_path / "worker.log"]
    chief = _start([*common, "--role=chief"], logs[0])
    worker = _start([*common, "--role=worker", "--worker_id=1"], logs[1])
    victim = None
    deadline = time.monotonic() + TIMEOUT
    while victim is None and worker.poll() is None and time.monotonic() < deadline:
        for trial_id, info in _infos(tuner_dir).items():
            if info["tuner_id"] == "tuner-workerpool1-1" and info["status"] == "RUNNING":
                victim = trial_id
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)  # mid-trial: no goodbye to the oracle
    outputs = _wait([chief, worker], logs)
    assert victim is not None, outputs[1][-4000:]
    assert chief.returncode == 0, outputs[0][-4000:]

    rows = _rows(tuner_dir)
    assert [r["status"] for r in rows] == ["COMPLETED"] * trials
    redone = next(r for r in rows if r["trial_id"] == victim)
    assert redone["tuner_id"] == "tuner-workerpool0-0" and redone["attempts"] == "2"
    assert f"during trial {victim}; the trial is queued for another worker" in outputs[0]
