"""The job's Beam Metrics counters agree with the metadata.json it writes."""

import logging

from preprocessing import config, counters, pipeline, sample

GLOVE_WORDS = ("the", "i", "day", "love", "happy", "sad", "user", "url", "!", "zzqqxx")


def test_counters_of_a_real_run_equal_the_counts_of_its_metadata(tmp_path, caplog):
    train = sample.write_sample_csv(tmp_path / "train.csv", num_rows=300, seed=4, bad_rows=6)
    test = sample.write_sample_csv(tmp_path / "test.csv", num_rows=60, seed=5, kind="test")
    glove_path = tmp_path / "glove.txt"
    glove_path.write_text("".join(f"{word} {i} 0.5 -1\n" for i, word in enumerate(GLOVE_WORDS)), encoding="utf-8")
    cfg = config.PreprocessConfig(
        train_csv=(str(tmp_path / "train.csv"),), test_csv=(str(tmp_path / "test.csv"),),
        output_dir=str(tmp_path / "out"), glove=str(glove_path), max_length=12, num_shards=2,
        max_error_rate=0.05,
    )
    with caplog.at_level(logging.INFO):
        outcome = pipeline.run(cfg)

    meta = outcome.metadata
    counts = meta["counts"]
    assert counts["rows_read"] == 300 + 6 + 60
    assert counts["skipped_neutral"] == test["neutral"] > 0
    assert sum(meta["rejected_by_reason"].values()) == sum(train["bad"].values()) == 6
    expected = {
        counters.ROWS_READ: counts["rows_read"],
        counters.SKIPPED_NEUTRAL: counts["skipped_neutral"],
        **{counters.kept(split): counts[split] for split in ("train", "val", "test")},
        **{counters.rejected(reason): n for reason, n in meta["rejected_by_reason"].items()},
        counters.GLOVE_LINES_READ: len(GLOVE_WORDS),
        counters.GLOVE_LINES_MATCHED: meta["embedding"]["covered_types"],
    }
    assert outcome.counters == expected
    assert 0 < meta["embedding"]["covered_types"] < len(GLOVE_WORDS)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"rows_read={counts['rows_read']}" in logged and "Counters of namespace s140" in logged


def test_progress_logs_the_running_row_count_at_most_every_few_seconds(caplog):
    with caplog.at_level(logging.INFO):
        every_time = counters.Progress("ReadRows a.csv", seconds=0.0)
        every_time.add(2048, "line 2048")
        every_time.add(952, "line 3000")
        rarely = counters.Progress("ParseAndStandardize", seconds=3600.0)
        rarely.add(5, "b.csv line 5")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "ReadRows a.csv: 2048 rows so far (now at line 2048)",
        "ReadRows a.csv: 3000 rows so far (now at line 3000)",
    ]
    assert (every_time.rows, rarely.rows) == (3000, 5)
    assert counters.PROGRESS_SECONDS <= 10
