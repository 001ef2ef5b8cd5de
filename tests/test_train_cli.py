"""s140-train as a user runs it: a killed run resumed, two local workers, and its
errors (one line each)."""

import json
import os
import pathlib
import socket
import subprocess
import sys

from support import kill_after  # start a CLI and SIGKILL it after N epochs

from trainer import callbacks

REPO = pathlib.Path(__file__).resolve().parents[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG",) and not k.startswith("AIP_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), **extra)
    return env


def _cli(data_dir, job_dir, *flags):
    return [
        sys.executable, "-m", "trainer",
        f"--data_dir={data_dir}", f"--job_dir={job_dir}", *flags,
    ]


def test_cli_resumes_after_a_kill_without_repeating_epochs(sample_data_dir, tmp_path):
    job_dir = tmp_path / "job"
    epochs = 5
    command = _cli(
        sample_data_dir, job_dir,
        "--architecture=bilstm", "--lstm_units=8", "--dense_units=8", f"--epochs={epochs}",
        "--batch_size=16", "--early_stopping_patience=0",
    )
    history_path = job_dir / "history.json"
    killed = kill_after.kill_after_epochs(command, env=_env(), cwd=tmp_path, history_path=history_path)
    assert 2 <= len(killed["epoch"]) < epochs
    assert not (job_dir / "metrics.json").exists()

    second = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    history = callbacks.read_history(str(history_path))
    assert history["epoch"] == list(range(epochs))  # each epoch exactly once
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == epochs
    # The second run did only the epochs the first had not backed up, and kept the
    # records of those it had.
    resumed_at = epochs - metrics["epochs_run_this_process"]
    assert 1 <= resumed_at <= len(killed["epoch"])
    assert history["loss"][:resumed_at] == killed["loss"][:resumed_at]
    assert "Resuming at epoch" in second.stderr
    assert (job_dir / "model" / "saved_model.pb").exists() and (job_dir / "report.md").exists()
    assert f"Report: {job_dir}/report.md" in second.stdout


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_local_workers_train_together_and_only_the_chief_writes(sample_data_dir, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    job_dirs = [tmp_path / "worker0", tmp_path / "worker1"]
    processes = []
    for index, job_dir in enumerate(job_dirs):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        command = _cli(
            sample_data_dir, job_dir, "--architecture=gap", "--dense_units=8", "--epochs=1",
            "--batch_size=32",
        )
        processes.append(
            subprocess.Popen(
                command, env=_env(TF_CONFIG=json.dumps(tf_config)), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]

    chief_dir, other_dir = job_dirs
    metrics = json.loads((chief_dir / "metrics.json").read_text())
    assert (metrics["strategy"], metrics["num_workers"], metrics["replicas"]) == ("multi_worker", 2, 2)
    assert metrics["global_batch_size"] == 64
    assert metrics["epochs_run"] == 1
    assert (chief_dir / "model" / "saved_model.pb").exists() and (chief_dir / "model.keras").exists()
    assert not other_dir.exists()  # the non-chief wrote nothing into its job dir
    assert "Worker finished" in outputs[1][0]


def test_cli_errors_name_what_was_expected(sample_data_dir, tmp_path):
    runs = {
        "no_data": _cli(tmp_path / "nowhere", tmp_path / "job1"),
        "unknown_hparam": _cli(sample_data_dir, tmp_path / "job2", "--architecture=gap", "--hparams=lstm_units=8"),
        "unknown_flag": _cli(sample_data_dir, tmp_path / "job3", "--epochz=3"),
        "zero_batch": _cli(sample_data_dir, tmp_path / "job4", "--batch_size=0"),
        "nan_rate": _cli(sample_data_dir, tmp_path / "job5", "--learning_rate=nan"),
    }
    processes = {
        name: subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, command in runs.items()
    }
    results = {name: (p.wait(timeout=120), p.stderr.read()) for name, p in processes.items()}

    code, stderr = results["no_data"]
    assert code != 0
    assert f"Expected {tmp_path / 'nowhere'}/metadata.json" in stderr
    assert "not an s140-preprocess output directory" in stderr
    code, stderr = results["unknown_hparam"]
    assert code != 0
    assert "Expected hyperparameters of 'gap' among ['dense_units', 'dropout', 'pooling', 'spatial_dropout', 'wide', 'wide_buckets']" in stderr
    code, stderr = results["unknown_flag"]
    assert code != 0 and "epochz" in stderr
    # Settings errors: one line, no traceback (seen: "Training failed." and a traceback).
    for name, line in (("zero_batch", "Expected --batch_size to be an integer >= 1. Received: 0."),
                       ("nan_rate", "Expected --learning_rate in (0, 10). Received: nan.")):
        code, stderr = results[name]
        assert code != 0 and "Traceback" not in stderr, stderr
        assert stderr.strip().splitlines()[-1] == f"s140-train: error: {line}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("job")]  # nothing written
