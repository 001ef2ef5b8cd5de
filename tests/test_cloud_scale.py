"""Scale-out on localhost, started exactly as the Vertex AI jobs would start it.

`cloud.vertex` builds the job body (as `s140-submit ... --dry_run` prints it); for each
replica of it the container's entry point runs here (`python -m cloud.entrypoint
<args from the spec>`) with the environment Vertex would set: CLUSTER_SPEC and
TF_CONFIG naming localhost ports, AIP_MODEL_DIR/AIP_CHECKPOINT_DIR/
AIP_TENSORBOARD_LOG_DIR under tmp_path. The only substitution: the job's gs:// data
directory becomes the local sample data directory, since TensorFlow's file system
cannot reach a local Cloud Storage emulator.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import pytest

from cloud import vertex

import vertex_replicas  # tests/: Vertex's part in starting replicas

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_URI = "gs://s140-bucket/data"
IMAGE = "us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_replicas(job, tmp_path, data_dir):
    """Starts every replica of `job` like Vertex would; returns [(replica, Popen)]."""
    base = tmp_path / "base"
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(sum(
        int(pool["replicaCount"]) for pool in job["jobSpec"]["workerPoolSpecs"]))]
    started = []
    for replica in vertex_replicas.replica_environments(job, addresses, base_output_dir=str(base), job_id="local-job"):
        env = {k: v for k, v in os.environ.items()
               if k not in ("TF_CONFIG", "CLUSTER_SPEC") and not k.startswith(("AIP_", "KERASTUNER_"))}
        env.update(replica.env, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
        args = [arg.replace(DATA_URI, data_dir) for arg in replica.args]
        process = subprocess.Popen(
            [sys.executable, "-m", "cloud.entrypoint", *args], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append((replica, process))
    return base, started


def _wait(started, timeout):
    outputs = []
    try:
        for _, process in started:
            outputs.append(process.communicate(timeout=timeout))
    finally:
        for _, process in started:
            process.kill()
    for (replica, process), (_, stderr) in zip(started, outputs):
        assert process.returncode == 0, f"replica {replica.pool}/{replica.index}:\n{stderr[-4000:]}"
    return outputs


def _tensorboard_installed():
    return importlib.util.find_spec("tensorboard") is not None


def _config(name):
    return vertex.JobConfig(project="p", region="us-central1", output_dir="gs://s140-bucket/runs/1",
                            image_uri=IMAGE, display_name=name)


def test_multi_worker_training_job_runs_on_two_local_processes(sample_data_dir, tmp_path):
    job = vertex.training_job(
        _config("s140-train-gap"),
        [f"--data_dir={DATA_URI}", "--architecture=gap", "--dense_units=8", "--epochs=1", "--batch_size=32"],
        workers=2,
    )
    assert [pool["replicaCount"] for pool in job["jobSpec"]["workerPoolSpecs"]] == [1, 1]
    base, started = _start_replicas(job, tmp_path, sample_data_dir)
    (chief_out, chief_err), (worker_out, worker_err) = _wait(started, timeout=300)

    # The entry point saw the Vertex environment and handed over to s140-train.
    assert '"task": {"type": "workerpool0", "index": 0}' in chief_err
    assert '"task": {"type": "workerpool1", "index": 0}' in worker_err
    # No --job_dir: the base output directory (parent of AIP_MODEL_DIR) is the job dir.
    metrics = json.loads((base / "metrics.json").read_text())
    assert (metrics["strategy"], metrics["num_workers"], metrics["replicas"]) == ("multi_worker", 2, 2)
    assert metrics["global_batch_size"] == 64 and metrics["epochs_run"] == 1
    assert (base / "model" / "saved_model.pb").exists()  # AIP_MODEL_DIR: what Vertex deploys
    if _tensorboard_installed():  # the cloud extra (and the image) install it
        assert list((base / "logs").rglob("events.out.tfevents.*"))  # AIP_TENSORBOARD_LOG_DIR
    assert f"Serving model: {base}/model" in chief_out
    assert "Worker finished" in worker_out


def test_tuning_job_runs_chief_and_worker_from_cluster_spec(sample_data_dir, tmp_path):
    # Looked up, not imported: each CLI module defines absl flags, and trainer's and
    # tuning's share names (--data_dir) within one process.
    if importlib.util.find_spec("tuning.__main__") is None:
        pytest.skip("the tuning CLI (tuning/__main__.py) is not committed yet")
    job = vertex.tuning_job(
        _config("s140-tune-gap"),
        [f"--data_dir={DATA_URI}", "--tuner=random", "--max_trials=3", "--max_epochs=1",
         "--architectures=gap", "--epochs_best=0", "--batch_size=32", "--early_stopping_patience=0"],
        parallel_trials=2,
    )
    assert [pool["replicaCount"] for pool in job["jobSpec"]["workerPoolSpecs"]] == [1, 1]
    base, started = _start_replicas(job, tmp_path, sample_data_dir)
    (chief_out, chief_err), (worker_out, worker_err) = _wait(started, timeout=300)

    assert '"task": {"type": "workerpool0", "index": 0}' in chief_err
    assert "Worker finished after" in worker_out
    # No --tuner_dir: the base output directory holds the sweep's results, chief-written.
    best = json.loads((base / "best_hyperparameters.json").read_text())
    assert best["architecture"] == "gap"
    assert "Best: trial" in chief_out and (base / "trials.csv").exists()
    worker_trials = int(worker_out.split("Worker finished after ")[1].split(" trial")[0])
    trial_rows = (base / "trials.csv").read_text().strip().splitlines()[1:]
    assert len(trial_rows) == 3 and worker_trials >= 1  # the worker really ran trials
