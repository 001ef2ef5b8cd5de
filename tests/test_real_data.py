"""The Beam job on the real Sentiment140 rows and GloVe subset in ../shared/data.

Skipped when that folder is absent (a fresh clone elsewhere). The official test file is
only transformed here, never trained or tuned on."""

import json

import pytest

from preprocessing import config, pipeline, schema

TRAIN_ROWS = 59_473  # data/README.md
TEST_ROWS, TEST_NEUTRAL = 498, 139


@pytest.fixture(scope="module")
def real_job(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "sentiment140" / "train_sample.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    out = tmp_path_factory.mktemp("real") / "data"
    metadata = pipeline.preprocess(
        config.PreprocessConfig(
            train_csv=(str(SHARED_DATA / "sentiment140" / "train_sample.csv"),),
            test_csv=(str(SHARED_DATA / "sentiment140" / "testdata.manual.2009.06.14.csv"),),
            glove=str(SHARED_DATA / "glove" / "glove.6B.50d.top50k_s140train.txt"),
            output_dir=str(out),
            num_shards=4,
        )
    )
    return metadata, out


def test_counts_add_up_exactly(real_job):
    metadata, _ = real_job
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
    metadata, out = real_job
    assert metadata["embedding"]["dim"] == 50
    assert metadata["embedding"]["coverage_by_token"] >= 0.90
    assert metadata["train_length_percentiles"]["p99"] <= metadata["max_length"]
    assert json.loads((out / schema.METADATA_FILE).read_text()) == metadata
