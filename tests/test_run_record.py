"""Tests of a job directory's memory of its settings (trainer/run_record.py): a rerun
under other settings is refused before training, --overwrite starts afresh, and the
settings that only change how long or how fast a run trains may differ."""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from common import files
from trainer import callbacks
from trainer import config
from trainer import run_record
from trainer import train

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL_CONV = {"conv_filters": 8, "kernel_size": 3, "dense_units": 8}


def _cfg(data_dir, job_dir, **overrides):
    settings = dict(
        data_dir=str(data_dir), job_dir=str(job_dir), architecture="conv1d", hparams=SMALL_CONV,
        epochs=1, batch_size=32, learning_rate=0.01, early_stopping_patience=0,
    )
    settings.update(overrides)
    return config.TrainConfig(**settings)


def _metadata():
    return {
        "schema_version": 1, "standardizer_version": 2, "vocab_size": 100, "max_length": 20,
        "embedding": {"dim": 50, "source": "glove.txt"}, "counts": {"train": 10, "val": 2, "test": 3},
    }


def test_only_settings_that_change_what_is_learned_must_match(tmp_path):
    base = _cfg(tmp_path / "data", tmp_path / "job")
    recorded = run_record.record_of(base, _metadata(), base.resolved_hparams())
    faster = _cfg(
        tmp_path / "data", tmp_path / "job", epochs=7, early_stopping_patience=2,
        steps_per_execution=4, jit_compile="false",
    )
    assert run_record.differences(recorded, run_record.record_of(faster, _metadata(), faster.resolved_hparams())) == []

    other = _cfg(tmp_path / "data", tmp_path / "job", learning_rate=0.1, seed=7)
    metadata = _metadata()
    metadata["vocab_size"] = 200  # the data directory was preprocessed again
    found = run_record.differences(recorded, run_record.record_of(other, metadata, other.resolved_hparams()))
    assert found == [("data.vocab_size", 100, 200), ("learning_rate", 0.01, 0.1), ("seed", 42, 7)]


def test_trainable_oov_rows_and_new_options_are_part_of_what_must_match(tmp_path):
    base = _cfg(tmp_path / "data", tmp_path / "job")
    recorded = run_record.record_of(base, _metadata(), base.resolved_hparams())
    assert (recorded["train_oov_vectors"], recorded["recipe"], recorded["hparams"]["wide"]) == (False, "none", "none")
    other = _cfg(tmp_path / "data", tmp_path / "job", train_oov_vectors=True, hparams={**SMALL_CONV, "wide": "bigrams"})
    found = run_record.differences(recorded, run_record.record_of(other, _metadata(), other.resolved_hparams()))
    assert found == [("hparams.wide", "none", "bigrams"), ("train_oov_vectors", False, True)]
    # A run.json written before these settings existed resumes at their seed values ...
    older = json.loads(json.dumps(recorded))
    for name in ("train_oov_vectors", "recipe"):
        del older[name]
    for name in ("pooling", "spatial_dropout", "wide", "wide_buckets"):
        del older["hparams"][name]
    assert run_record.differences(older, recorded) == []
    # ... and is refused under other values.
    assert run_record.differences(older, run_record.record_of(other, _metadata(), other.resolved_hparams())) == [
        ("hparams.wide", None, "bigrams"), ("train_oov_vectors", None, True)]


def test_a_job_dir_refuses_another_architecture_and_overwrite_starts_afresh(sample_data_dir, tmp_path):
    job_dir = tmp_path / "job"
    # The first run writes run.json before its first epoch and then its history.
    train.train(_cfg(sample_data_dir, job_dir, epochs=2), environ={})
    recorded = json.loads((job_dir / "run.json").read_text())
    assert (recorded["architecture"], recorded["hparams"]["conv_filters"]) == ("conv1d", 8)
    assert recorded["data"]["vocab_size"] == json.loads((pathlib.Path(sample_data_dir) / "metadata.json").read_text())["vocab_size"]
    conv_history = (job_dir / "history.json").read_text()
    conv_metrics = (job_dir / "metrics.json").read_text()
    assert json.loads(conv_history)["epoch"] == [0, 1]

    # The same job dir as gap: refused before training, naming both, nothing touched.
    with pytest.raises(run_record.RunMismatchError) as refused:
        train.train(_cfg(sample_data_dir, job_dir, architecture="gap", hparams={}), environ={})
    message = str(refused.value)
    assert "architecture: 'conv1d' there, 'gap' now" in message
    assert "hparams.conv_filters: 8 there, None now" in message
    assert "--overwrite" in message
    assert (job_dir / "history.json").read_text() == conv_history
    assert (job_dir / "metrics.json").read_text() == conv_metrics
    assert json.loads((job_dir / "run.json").read_text()) == recorded

    # --overwrite: the old run's files go, the history holds only gap's epoch.
    metrics = train.train(
        _cfg(sample_data_dir, job_dir, architecture="gap", hparams={"dense_units": 8}, overwrite=True), environ={}
    )
    assert metrics["architecture"] == "gap" and metrics["epochs_run"] == 1
    history = json.loads((job_dir / "history.json").read_text())
    assert history["epoch"] == [0]
    assert json.loads((job_dir / "run.json").read_text())["architecture"] == "gap"

    # The finished gap run again, same settings: nothing trains, its metrics come back.
    gap = _cfg(sample_data_dir, job_dir, architecture="gap", hparams={"dense_units": 8})
    before = {path: path.stat().st_mtime_ns for path in job_dir.rglob("*") if path.is_file()}
    assert train.train(gap, environ={}) == metrics
    assert {path: path.stat().st_mtime_ns for path in job_dir.rglob("*") if path.is_file()} == before

    # More epochs: it continues from its last epoch, training only the new one.
    metrics = train.train(dataclasses.replace(gap, epochs=2), environ={})
    assert (metrics["epochs_run"], metrics["epochs_run_this_process"]) == (2, 1)
    assert json.loads((job_dir / "history.json").read_text())["epoch"] == [0, 1]
    assert json.loads((job_dir / "run.json").read_text())["epochs"] == 2


def test_a_damaged_backup_is_named_and_a_failed_continuation_is_not_finished(sample_data_dir, tmp_path):
    job_dir = tmp_path / "job"
    gap = _cfg(sample_data_dir, job_dir, architecture="gap", hparams={"dense_units": 8}, epochs=2)
    train.train(gap, environ={})
    backup = job_dir / "checkpoints" / "backup"
    kept = tmp_path / "kept"
    shutil.copytree(backup, kept)
    assert sorted(p.name for p in backup.iterdir()) == [
        "latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json", "training_metadata.json.bkp"
    ]
    # Both copies of the weights cut short: nothing to resume from, said by name, twice:
    # the failed start of a 3-epoch run must not leave the job dir looking finished at 3.
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        (backup / name).write_bytes((kept / name).read_bytes()[:1000])
    for _ in range(2):
        with pytest.raises(files.DamagedFile, match=f"Expected a backup to resume from in {backup}.*--overwrite"):
            train.train(dataclasses.replace(gap, epochs=3), environ={})
    # A damaged epoch file: the previous epoch's pair is restored, and epoch 2 runs again.
    shutil.rmtree(backup)
    shutil.copytree(kept, backup)
    (backup / "training_metadata.json").write_text('{"epo')
    metrics = train.train(dataclasses.replace(gap, epochs=3), environ={})
    assert (metrics["epochs_run"], metrics["epochs_run_this_process"]) == (3, 2)
    assert json.loads((job_dir / "history.json").read_text())["epoch"] == [0, 1, 2]


def _env():
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("AIP_")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


def _cli(data_dir, job_dir, *flags):
    return [sys.executable, "-m", "trainer", f"--data_dir={data_dir}", f"--job_dir={job_dir}", "--batch_size=16", *flags]


def test_cli_refuses_a_killed_run_resumed_as_another_architecture(sample_data_dir, tmp_path):
    """The defect: a conv1d run killed after its first epoch, resumed as gap, used to
    keep conv1d's epoch in history.json and report the mixture as one model."""
    job_dir = tmp_path / "job"
    conv = _cli(sample_data_dir, job_dir, "--architecture=conv1d", "--conv_filters=8", "--kernel_size=3", "--epochs=50")
    first = subprocess.Popen(conv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while len(callbacks.read_history(str(job_dir / "history.json")).get("epoch", [])) < 1:
            assert first.poll() is None, "the conv1d run ended before it could be killed"
            assert time.monotonic() < deadline, "no epoch within 240 s"
            time.sleep(0.01)
    finally:
        first.kill()
        first.wait()
    killed_history = (job_dir / "history.json").read_text()

    gap = _cli(sample_data_dir, job_dir, "--architecture=gap", "--dense_units=8", "--epochs=1")
    refused = subprocess.run(gap, env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert refused.returncode != 0
    assert "architecture: 'conv1d' there, 'gap' now" in refused.stderr
    assert "Traceback" not in refused.stderr  # one line, the user's to fix
    assert (job_dir / "history.json").read_text() == killed_history
    assert not (job_dir / "metrics.json").exists()

    fresh = subprocess.run(gap + ["--overwrite"], env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert callbacks.read_history(str(job_dir / "history.json"))["epoch"] == [0]  # gap's only
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert (metrics["architecture"], metrics["epochs_run"]) == ("gap", 1)


def test_symlinks_where_a_run_writes_are_refused_and_not_followed(sample_data_dir, tmp_path):
    # Seen: report.md, learning_curves.png and model.keras written through symlinks found
    # in a job dir, overwriting files outside it.
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.md").write_text("not the package's")
    (job_dir / "report.md").symlink_to(outside / "report.md")
    (job_dir / "checkpoints").symlink_to(outside, target_is_directory=True)
    with pytest.raises(files.SymlinkRefused) as refused:
        train.train(_cfg(sample_data_dir, job_dir), environ={})
    assert f"{job_dir / 'checkpoints'}" in str(refused.value) and f"{job_dir / 'report.md'}" in str(refused.value)
    assert (outside / "report.md").read_text() == "not the package's"
    assert sorted(os.listdir(outside)) == ["report.md"]
    assert not (job_dir / "run.json").exists()


def test_a_symlink_under_a_files_final_name_is_replaced_not_written_through(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    (tmp_path / "metrics.json").symlink_to(outside)
    files.write_json(str(tmp_path / "metrics.json"), {"accuracy": 1})
    assert outside.read_text() == "keep"
    assert not (tmp_path / "metrics.json").is_symlink()
    assert files.read_json(str(tmp_path / "metrics.json")) == {"accuracy": 1}


def test_a_full_disk_leaves_the_old_file_and_no_orphan(tmp_path):
    # Seen: a full disk left an orphan "<name>.tmp-*" beside the file. A 64 KiB tmpfs in a
    # private mount namespace (unshare -m) is a disk that really fills up.
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = f"mount -t tmpfs -o size=64k tmpfs {disk}"
    if subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True).returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m)")
    script = (
        "import os, sys\n"
        "from common import files\n"
        f"path = {str(disk / 'metrics.json')!r}\n"
        "files.write_json(path, {'old': 1})\n"
        "try:\n"
        "    files.write_atomically(path, b'x' * (1 << 20))\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, sorted(os.listdir(os.path.dirname(path))), open(path).read().strip())\n"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && exec {sys.executable} -c \"$0\"", script],
                            capture_output=True, text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    kind, rest = result.stdout.split(" ", 1)
    assert kind in ("OSError", "ResourceExhaustedError", "FailedPreconditionError", "InternalError"), result.stdout + result.stderr
    assert rest.startswith("['metrics.json'] {"), result.stdout  # the old file, whole; no orphan
    assert '"old": 1' in rest

