"""The container started on localhost exactly as Vertex AI and Dataflow would start it.

The job body is what `s140-submit ... --dry_run` prints; for each replica of it the
container's entry point runs here (the Dockerfile's ENTRYPOINT, `python3 -m
cloud.entrypoint <args from the spec>`) with the image's ENV (from the Dockerfile) and
the environment Vertex would set (tests/support/vertex_replicas.py): CLUSTER_SPEC and TF_CONFIG
naming localhost ports, AIP_MODEL_DIR/AIP_CHECKPOINT_DIR/AIP_TENSORBOARD_LOG_DIR under
tmp_path. The interpreter is the image's: a fresh venv installed by the Dockerfile's own
pip install line from constraints.txt, the package non-editable, nothing of this
checkout on Python's path (tests/support/container_venv.py; the substitutions for the base
image are listed there). The only substitution in the job: its gs:// data directory
becomes the local sample data directory. Dataflow starts the same image with Beam's boot
flags; a stand-in boot loader shows that the entry point hands them over unchanged.
"""

import datetime
import io
import json
import os
import socket
import subprocess
import sys

import pytest

from cloud import __main__ as cli

from support import container_venv  # the image's venv
from support import image_recipe  # what the Dockerfile and constraints.txt say
from support import vertex_replicas  # Vertex's part in starting replicas
from support.container_venv import image_python  # noqa: F401 (a fixture)

DATA_URI = "gs://s140-bucket/data"
IMAGE = "us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"
NOW = datetime.datetime(2026, 11, 1, 12, 30, 5, tzinfo=datetime.timezone.utc)


def _dry_run_job(command, submit_flags, job_args):
    """The CustomJob body that `s140-submit COMMAND ... --dry_run` prints."""
    out = io.StringIO()
    argv = [command, "--project=p", "--region=us-central1", "--output_dir=gs://s140-bucket/runs/1",
            f"--image_uri={IMAGE}", *submit_flags, "--dry_run", "--", *job_args]
    assert cli.main(argv, out=out, now=NOW) == 0
    return json.loads(out.getvalue())


# What the venv holds: {canonical distribution name: version}, and where the packages load from.
_INSTALLED = """
import importlib.metadata, json, re
import cloud, preprocessing, trainer, tuning
print(json.dumps({
    "versions": {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in importlib.metadata.distributions()},
    "files": [m.__file__ for m in (cloud, preprocessing, trainer, tuning)],
}))
"""


def _installed(python, cwd):
    result = subprocess.run([str(python), "-c", _INSTALLED], env=container_venv.run_environment(), cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_image_venv_passes_pip_check_with_constraints_pins(image_python, tmp_path):
    check = subprocess.run([str(image_python), "-m", "pip", "check"], env=container_venv.run_environment(),
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "No broken requirements found."
    installed = _installed(image_python, tmp_path)["versions"]
    pins = image_recipe.pins()
    named = ("keras", "apache-beam", "keras-tuner")
    assert {name: installed.get(name) for name in named} == {name: pins[name] for name in named}
    # TensorFlow is the base image's (not in constraints.txt): the Dockerfile's TF_VERSION.
    assert installed["tensorflow"] == image_recipe.arg_defaults()["TF_VERSION"]
    assert {name: installed.get(name) for name in pins} == pins  # every pin installed, at its version


def test_constraints_are_what_the_fresh_image_venv_freezes_to(image_python):
    # tests/support/freeze_constraints.py, run in the image's venv: no requirement of the image
    # is left unpinned, and constraints.txt pins nothing the image does not install.
    result = subprocess.run([str(image_python), os.path.join(image_recipe.REPO, "tests", "support", "freeze_constraints.py")],
                            env=container_venv.run_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(image_recipe.CONSTRAINTS) as handle:
        assert result.stdout == handle.read()


def test_image_venv_runs_the_installed_package_not_this_checkout(image_python, tmp_path):
    site_packages = image_python.parent.parent / "lib"
    files = _installed(image_python, tmp_path)["files"]
    assert len(files) == 4 and all(os.path.realpath(f).startswith(os.path.realpath(site_packages)) for f in files), files
    assert not any(f.startswith(image_recipe.REPO + os.sep) for f in files)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_replicas(job, tmp_path, data_dir, python):
    """Starts every replica of `job` like Vertex would; returns [(replica, Popen)]."""
    base = tmp_path / "base"
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(sum(
        int(pool["replicaCount"]) for pool in job["jobSpec"]["workerPoolSpecs"]))]
    started = []
    for replica in vertex_replicas.replica_environments(job, addresses, base_output_dir=str(base), job_id="local-job"):
        env = container_venv.run_environment({
            k: v for k, v in os.environ.items()
            if k not in ("TF_CONFIG", "CLUSTER_SPEC") and not k.startswith(("AIP_", "KERASTUNER_"))})
        env.update(replica.env, TF_CPP_MIN_LOG_LEVEL="2")
        args = [arg.replace(DATA_URI, data_dir) for arg in replica.args]
        process = subprocess.Popen(
            [*container_venv.entrypoint(python), *args], env=env, cwd=tmp_path,
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


def test_multi_worker_training_job_runs_on_two_local_processes(sample_data_dir, tmp_path, image_python):
    job = _dry_run_job(
        "train", ["--workers=2"],
        [f"--data_dir={DATA_URI}", "--architecture=gap", "--dense_units=8", "--epochs=1", "--batch_size=32"],
    )
    assert job["displayName"] == "s140-train-gap-20261101-123005"
    assert [pool["replicaCount"] for pool in job["jobSpec"]["workerPoolSpecs"]] == [1, 1]
    base, started = _start_replicas(job, tmp_path, sample_data_dir, image_python)
    (chief_out, chief_err), (worker_out, worker_err) = _wait(started, timeout=300)

    # The entry point saw the Vertex environment and handed over to s140-train.
    assert '"task": {"type": "workerpool0", "index": 0}' in chief_err
    assert '"task": {"type": "workerpool1", "index": 0}' in worker_err
    # No --job_dir: the base output directory (parent of AIP_MODEL_DIR) is the job dir.
    metrics = json.loads((base / "metrics.json").read_text())
    assert (metrics["strategy"], metrics["num_workers"], metrics["replicas"]) == ("multi_worker", 2, 2)
    assert metrics["global_batch_size"] == 64 and metrics["epochs_run"] == 1
    assert (base / "model" / "saved_model.pb").exists()  # AIP_MODEL_DIR: what Vertex deploys
    assert list((base / "logs").rglob("events.out.tfevents.*"))  # AIP_TENSORBOARD_LOG_DIR
    assert f"Serving model: {base}/model" in chief_out
    assert "Worker finished" in worker_out


def test_tuning_job_runs_chief_and_worker_from_cluster_spec(sample_data_dir, tmp_path, image_python):
    job = _dry_run_job(
        "tune", ["--parallel_trials=2"],
        [f"--data_dir={DATA_URI}", "--tuner=random", "--max_trials=3", "--max_epochs=1",
         "--architectures=gap", "--epochs_best=0", "--batch_size=32", "--early_stopping_patience=0"],
    )
    assert [pool["replicaCount"] for pool in job["jobSpec"]["workerPoolSpecs"]] == [1, 1]
    base, started = _start_replicas(job, tmp_path, sample_data_dir, image_python)
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


_STAND_IN_BOOT = """#!{python}
import json, os, sys
with open({record!r}, "w") as handle:
    json.dump({{"argv": sys.argv, "pid": os.getpid(),
               "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": os.environ.get("RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT")}}, handle)
"""


def test_dataflow_boot_flags_go_to_beams_boot_loader_unchanged(tmp_path, image_python):
    # Beam's boot loader lives at entrypoint.BEAM_BOOT in the image; a stand-in records
    # what it was handed, and by whom.
    boot, record = tmp_path / "boot", tmp_path / "boot.json"
    boot.write_text(_STAND_IN_BOOT.format(python=sys.executable, record=str(record)))
    boot.chmod(0o755)
    # What Dataflow passes to an SDK worker container (Beam's boot flags).
    boot_args = ["--id=sdk-0-0", "--logging_endpoint=localhost:12370", "--artifact_endpoint=localhost:12371",
                 "--provision_endpoint=localhost:12372", "--control_endpoint=localhost:12373",
                 "--semi_persist_dir=/var/opt/google"]
    start = f"import sys, cloud.entrypoint as e; e.BEAM_BOOT = {str(boot)!r}; e.main(['entrypoint', *sys.argv[1:]])"
    env = container_venv.run_environment()
    process = subprocess.Popen([str(image_python), "-c", start, *boot_args], env=env, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    handed = json.loads(record.read_text())
    assert handed["argv"] == [str(boot), *boot_args]
    assert handed["pid"] == process.pid  # exec'd: the boot loader is the container's process
    assert handed["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] == "1"  # the image's ENV reaches Beam
    assert "s140 entrypoint" not in stderr  # handed over before any command was looked up


def test_boot_flags_without_a_boot_loader_are_refused_clearly(image_python):
    env = container_venv.run_environment()
    start = "import cloud.entrypoint as e; e.BEAM_BOOT = '/nonexistent/boot'; e.main(['entrypoint', '--id=sdk-0-0'])"
    process = subprocess.run([str(image_python), "-c", start], env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 1
    assert "Expected a command among ['hptrial', 'predict', 'preprocess', 'train', 'tune']" in process.stderr
    assert "Received: '--id=sdk-0-0'" in process.stderr
