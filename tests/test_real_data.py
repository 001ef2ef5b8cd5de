"""The Beam job on the real Sentiment140 rows and GloVe subset in ../shared/data.

Skipped when that folder is absent (a fresh clone elsewhere). The official test file is
only transformed here, never trained or tuned on."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from preprocessing import schema

REPO = pathlib.Path(__file__).resolve().parents[1]

TRAIN_ROWS = 59_473  # data/README.md
TEST_ROWS, TEST_NEUTRAL = 498, 139


@pytest.fixture(scope="module")
def real_job(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "sentiment140" / "train_sample.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    out = tmp_path_factory.mktemp("real") / "data"
    command = [
        sys.executable, "-m", "preprocessing",
        f"--train_csv={SHARED_DATA / 'sentiment140' / 'train_sample.csv'}",
        f"--test_csv={SHARED_DATA / 'sentiment140' / 'testdata.manual.2009.06.14.csv'}",
        f"--glove={SHARED_DATA / 'glove' / 'glove.6B.50d.top50k_s140train.txt'}",
        f"--output_dir={out}", "--num_shards=4",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / schema.METADATA_FILE).read_text()), out, result.stderr


def test_the_default_output_holds_the_jobs_lines_and_no_beam_worker_line(real_job):
    # Beam's worker chatter was 41 of the 54 lines of a default run.
    lines = real_job[2].splitlines()
    assert not [line for line in lines if "Worker: " in line or "local_job_service" in line]
    assert len([line for line in lines if "] ReadRows: read " in line and "transforms.py" in line]) == 2
    assert sum("Stage " in line for line in lines) == 3 and len(lines) < 20


def test_counts_add_up_exactly(real_job):
    metadata, _, _ = real_job
    counts = metadata["counts"]
    assert counts["rows_read"] == TRAIN_ROWS + TEST_ROWS
    assert counts["train"] + counts["val"] + counts["test"] + counts["rejected"] + counts["skipped_neutral"] == (
        counts["rows_read"]
    )
    assert (counts["test"], counts["skipped_neutral"]) == (TEST_ROWS - TEST_NEUTRAL, TEST_NEUTRAL)
    assert (metadata["label_balance"]["test"]["negative"], metadata["label_balance"]["test"]["positive"]) == (177, 182)
    # Every real row is well-formed and keeps at least one token, so nothing is rejected
    # and the labels of train + val are exactly those of the file (data/README.md).
    assert counts["rejected"] == 0
    negatives = sum(metadata["label_balance"][split]["negative"] for split in ("train", "val"))
    positives = sum(metadata["label_balance"][split]["positive"] for split in ("train", "val"))
    assert (negatives, positives) == (27_767, 31_706)


def test_val_is_near_its_fraction(real_job):
    counts = real_job[0]["counts"]
    assert 0.09 < counts["val"] / (counts["train"] + counts["val"]) < 0.11


def test_glove_covers_at_least_90_percent_of_tokens(real_job):
    metadata, out, _ = real_job
    assert metadata["embedding"]["dim"] == 50
    assert metadata["embedding"]["coverage_by_token"] >= 0.90
    assert metadata["train_length_percentiles"]["p99"] <= metadata["max_length"]
    assert json.loads((out / schema.METADATA_FILE).read_text()) == metadata
