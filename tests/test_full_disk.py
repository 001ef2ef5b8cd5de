"""A disk that fills up during a command: one line naming it, exit 2, nothing half-written.

A small tmpfs in a private mount namespace (`unshare -m`) is a disk that really fills up;
the command runs inside that namespace, as a user runs it."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FULL = "Expected the file system to take the command's files. Received: "


def _in_a_full_disk(disk, size, argv):
    """Runs `python -m argv...` with a `size` tmpfs mounted on `disk`."""
    mount = f"mount -t tmpfs -o size={size} tmpfs {disk}"
    if subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True).returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m)")
    command = " ".join(f"'{arg}'" for arg in [sys.executable, "-m", *argv])
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # The listing is taken inside the namespace: the tmpfs is gone when it ends.
    script = f"{mount} && {command}; status=$?; find {disk} -name '*.tmp*' -o -name '*.partial*'; exit $status"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=REPO, env=env)


def test_preprocess_into_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path):
    from preprocessing import sample

    sample.write_sample_csv(tmp_path / "train.csv", num_rows=3000, seed=0)
    disk = tmp_path / "disk"
    disk.mkdir()
    result = _in_a_full_disk(disk, "96k", ["preprocessing", f"--train_csv={tmp_path / 'train.csv'}",
                                          f"--output_dir={disk / 'data'}", "--num_shards=1"])
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"s140-preprocess: error: {FULL}") and "No space left on device" in last
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""  # no temporary left behind (find printed none)


def test_train_into_a_full_disk_is_one_line_and_leaves_no_temporary(sample_data_dir, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    result = _in_a_full_disk(disk, "64k", ["trainer", f"--data_dir={sample_data_dir}", f"--job_dir={disk / 'job'}",
                                          "--architecture=gap", "--dense_units=8", "--epochs=1", "--batch_size=32"])
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"s140-train: error: {FULL}") and "No space left on device" in last
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""
