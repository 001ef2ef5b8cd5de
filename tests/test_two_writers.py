"""Two writers, one directory: every command that writes a directory takes its lock
(common/dir_lock.py), so a second run fails at once, naming the holder, and
leaves the directory as it was. The lock itself, across processes and on Cloud Storage,
is tested in test_dir_lock.py."""

import os
import pathlib
import subprocess
import sys

import pytest

from common import dir_lock
from preprocessing import config as preprocess_config
from preprocessing import pipeline
from preprocessing import sample
from trainer import compare
from trainer import config as train_config
from trainer import train
from tuning import config as tune_config
from tuning import sweep

REPO = pathlib.Path(__file__).resolve().parents[1]
HOLDER = "an earlier run"


def _untouched(directory):
    assert os.listdir(directory) == [dir_lock.LOCK_NAME]


def test_preprocess_into_a_directory_in_use_is_refused(tmp_path):
    sample.write_sample_csv(tmp_path / "train.csv", num_rows=50, seed=0)
    out = tmp_path / "out"
    cfg = preprocess_config.PreprocessConfig(train_csv=(str(tmp_path / "train.csv"),), output_dir=str(out))
    with dir_lock.holding(str(out), command=HOLDER):
        with pytest.raises(dir_lock.DirectoryLocked, match=f"in use by {HOLDER}"):
            pipeline.preprocess(cfg)
        _untouched(out)


def test_train_and_compare_into_a_directory_in_use_are_refused(sample_data_dir, tmp_path):
    job_dir = tmp_path / "job"
    cfg = train_config.TrainConfig(data_dir=sample_data_dir, job_dir=str(job_dir), architecture="gap", epochs=1)
    with dir_lock.holding(str(job_dir), command=HOLDER):
        with pytest.raises(dir_lock.DirectoryLocked, match=f"in use by {HOLDER}"):
            train.train(cfg, environ={})
        with pytest.raises(dir_lock.DirectoryLocked, match=f"in use by {HOLDER}"):
            compare.compare(cfg, ["gap"], environ={})
        _untouched(job_dir)


def test_tune_into_a_directory_in_use_is_refused(sample_data_dir, tmp_path):
    tuner_dir = tmp_path / "tune"
    cfg = tune_config.SweepConfig(data_dir=sample_data_dir, tuner_dir=str(tuner_dir), architectures=("gap",),
                                  max_trials=1, max_epochs=1)
    with dir_lock.holding(str(tuner_dir), command=HOLDER):
        with pytest.raises(dir_lock.DirectoryLocked, match=f"in use by {HOLDER}"):
            sweep.run_sweep(cfg, environ={})
        _untouched(tuner_dir)


def test_the_cli_says_so_in_one_line(sample_data_dir, tmp_path):
    job_dir = tmp_path / "job"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("AIP_")}
    with dir_lock.holding(str(job_dir), command=HOLDER):
        result = subprocess.run(
            [sys.executable, "-m", "trainer", f"--data_dir={sample_data_dir}", f"--job_dir={job_dir}",
             "--architecture=gap", "--epochs=1"],
            capture_output=True, text=True, cwd=REPO, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300,
        )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"s140-train: error: Expected {job_dir} to have no other writer. Received: it is in use by {HOLDER} (host ")
    assert "Traceback" not in result.stderr
