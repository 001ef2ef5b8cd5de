"""The Beam job on inputs a new user gets wrong: encodings, overlapping globs, broken
GloVe lines past the checked head, empty training data, duplicate tweet ids, and the
error-rate message. In every case the counts add up exactly."""

import json
import logging

import pytest

from preprocessing import config, counters, glove, metadata, pipeline, rows, schema

GLOVE_TEXT = "happy 1 0 0 0\nsad 0 1 0 0\nday 0 0 1 0\ncafé 0 0 0 1\n"


def csv_line(polarity, tweet_id, text):
    return f'"{polarity}","{tweet_id}","d","q","u","{text}"\n'


def tweets(first_id, n, extra=""):
    """n alternating happy/sad rows with ids first_id, first_id + 1, ..."""
    return "".join(
        csv_line("4" if i % 2 == 0 else "0", first_id + i, ("happy day" if i % 2 == 0 else "sad day") + extra)
        for i in range(n)
    )


def write(path, text, encoding="latin-1"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return str(path)


def settings(tmp_path, train, **overrides):
    glove_path = tmp_path / "glove.txt"
    if not glove_path.exists():
        glove_path.write_text(GLOVE_TEXT, encoding="utf-8")
    values = dict(
        train_csv=tuple(train), output_dir=str(tmp_path / "out"), glove=str(glove_path),
        num_shards=1, max_length=4, min_count=1, max_error_rate=0.5,
    )
    values.update(overrides)
    return config.PreprocessConfig(**values)


def assert_counts_add_up(meta, rows_read):
    counts = meta["counts"]
    assert counts["rows_read"] == rows_read
    assert (
        counts["train"] + counts["val"] + counts["test"] + counts["skipped_neutral"] + counts["rejected"]
        == counts["rows_read"]
    )
    assert sum(meta["rejected_by_reason"].values()) == counts["rejected"]


def test_auto_encoding_is_decided_and_recorded_per_file(tmp_path):
    utf8 = write(tmp_path / "utf8.csv", tweets(1, 20, " café"), encoding="utf-8")
    latin1 = write(tmp_path / "latin1.csv", tweets(100, 20, " café"), encoding="latin-1")
    meta = pipeline.preprocess(settings(tmp_path, [utf8, latin1]))
    assert meta["input_encodings"] == {utf8: rows.UTF8, latin1: rows.LATIN1}
    tokens = (tmp_path / "out" / schema.VOCAB_FILE).read_text(encoding="utf-8").split("\n")
    # Both files decode to the same word: no mojibake ("cafÃ©") reaches the vocabulary.
    assert "café" in tokens and not [token for token in tokens if "Ã" in token]
    assert meta["embedding"]["covered_types"] == 4
    assert_counts_add_up(meta, 40)


def test_overlapping_globs_read_each_file_once(tmp_path, caplog):
    a = write(tmp_path / "data" / "a.csv", tweets(1, 30))
    b = write(tmp_path / "data" / "b.csv", tweets(100, 20))
    with caplog.at_level(logging.INFO):
        meta = pipeline.preprocess(settings(tmp_path, [str(tmp_path / "data" / "*.csv"), a]))
    assert meta["files"]["train_csv"] == [a, b]
    assert meta["counts"]["train"] + meta["counts"]["val"] == 50
    assert_counts_add_up(meta, 50)
    assert f"matches {a} again: reading it once" in caplog.text


def test_a_file_given_as_train_and_test_is_refused(tmp_path):
    a = write(tmp_path / "data" / "a.csv", tweets(1, 4))
    with pytest.raises(ValueError, match="as both"):
        pipeline.expand_inputs(settings(tmp_path, [str(tmp_path / "data" / "*.csv")], test_csv=(a,)))


def test_a_bad_glove_line_past_the_checked_head_names_glove(tmp_path):
    good = "".join(f"word{i} 1 2 3 4\n" for i in range(glove.HEAD_LINES + 5))
    bad = tmp_path / "long_glove.txt"
    bad.write_text("happy 1 0 0 0\n" + good + "sad 0 1 0\n", encoding="utf-8")
    train = write(tmp_path / "train.csv", tweets(1, 10))
    with pytest.raises(glove.GloveFormatError, match=f"Expected 4 values .* of --glove={bad} .*Received 3 on a line, which starts 'sad 0 1 0'"):
        pipeline.preprocess(settings(tmp_path, [train], glove=str(bad)))
    assert not (tmp_path / "out" / schema.METADATA_FILE).exists()


def test_the_error_rate_message_counts_the_rows_read_as_metadata_does(tmp_path):
    train = write(tmp_path / "train.csv", tweets(1, 20) + csv_line("9", 50, "x") + csv_line("4", "abc", "x"))
    test = write(tmp_path / "test.csv", tweets(200, 4) + csv_line("2", 300, "a day") + csv_line("2", 301, "day"))
    meta = pipeline.preprocess(settings(tmp_path, [train], test_csv=(test,), max_error_rate=1.0))
    counts = meta["counts"]
    assert_counts_add_up(meta, 28)
    assert (counts["rejected"], counts["skipped_neutral"]) == (2, 2)
    assert meta["error_rate"] == round(2 / 28, 6)
    with pytest.raises(metadata.ErrorRateExceeded) as failure:
        pipeline.preprocess(settings(tmp_path, [train], test_csv=(test,), max_error_rate=0.01, overwrite=True))
    assert f"Received {2 / 28:.2%} (2 of 28 rows read)" in str(failure.value)
    assert f"{counts['rejected']} of {counts['rows_read']} rows read" in str(failure.value)
    assert not (tmp_path / "out" / schema.METADATA_FILE).exists()


@pytest.mark.parametrize("content, reason", [
    ("", "the files hold no row"),
    (csv_line("2", 1, "meh") + csv_line("2", 2, "meh too"), "every row was rejected"),
    (csv_line("4", 1, "~~ ^^") + csv_line("0", 2, "~~") + csv_line("4", 3, ""), "every row was rejected"),
])
def test_an_empty_train_split_fails_and_leaves_no_metadata(tmp_path, content, reason):
    train = write(tmp_path / "train.csv", content)
    test = write(tmp_path / "test.csv", tweets(200, 4))
    with pytest.raises(metadata.EmptyTrainSplit, match=f"Expected at least one training example .*{reason}") as failure:
        pipeline.preprocess(settings(tmp_path, [train], test_csv=(test,), max_error_rate=1.0))
    assert not (tmp_path / "out" / schema.METADATA_FILE).exists()
    # Counts add up: every training row is in rejected/, the 4 test rows are the rest.
    rejected = [line for path in (tmp_path / "out" / "rejected").glob("*.jsonl") for line in path.read_text().splitlines()]
    train_rows = content.count("\n")
    assert len(rejected) == train_rows
    assert f"Received none of {train_rows + 4} rows read" in str(failure.value)


def test_an_empty_train_split_fails_the_command_with_one_line(tmp_path):
    import subprocess
    import sys

    train = write(tmp_path / "train.csv", "")
    (tmp_path / "glove.txt").write_text(GLOVE_TEXT, encoding="utf-8")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "preprocessing", f"--train_csv={train}", f"--output_dir={out}",
         f"--glove={tmp_path / 'glove.txt'}", "--num_shards=1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("s140-preprocess: error:")]
    assert len(errors) == 1 and "Received none of 0 rows read" in errors[0], result.stderr[-2000:]
    assert not (out / schema.METADATA_FILE).exists()


def duplicate_inputs(tmp_path):
    """a.csv: ids 1..20, then id 5 again (other label); b.csv: ids 5 and 7 again, then 30..33."""
    a = write(tmp_path / "a.csv", tweets(1, 20) + csv_line("4", 5, "happy happy"))
    b = write(tmp_path / "b.csv", csv_line("0", 5, "sad") + csv_line("0", 7, "sad sad") + tweets(30, 4))
    return a, b


def test_duplicate_ids_are_counted_kept_and_warned_of(tmp_path, caplog):
    a, b = duplicate_inputs(tmp_path)
    with caplog.at_level(logging.WARNING):
        meta = pipeline.preprocess(settings(tmp_path, [b, a]))
    assert meta["duplicate_tweet_ids"] == 3 and meta["drop_duplicate_ids"] is False
    assert meta["rejected_by_reason"] == {}
    assert meta["counts"]["train"] + meta["counts"]["val"] == 27
    assert_counts_add_up(meta, 27)
    assert "3 rows repeat the tweet id of another row and are kept" in caplog.text


def test_drop_duplicate_ids_keeps_the_copy_of_the_smallest_file_and_line(tmp_path):
    import tensorflow as tf

    a, b = duplicate_inputs(tmp_path)
    outcome = pipeline.run(settings(tmp_path, [b, a], drop_duplicate_ids=True))
    meta = outcome.metadata
    # The live counters agree: the dropped copies move from kept to rejected.
    assert outcome.counters[counters.rejected(rows.DUPLICATE_ID)] == 3
    assert outcome.counters[counters.kept("train")] + outcome.counters.get(counters.kept("val"), 0) == 24
    assert meta["duplicate_tweet_ids"] == 3 and meta["drop_duplicate_ids"] is True
    assert meta["rejected_by_reason"] == {rows.DUPLICATE_ID: 3}
    assert meta["counts"]["train"] + meta["counts"]["val"] == 24
    assert_counts_add_up(meta, 27)
    out = tmp_path / "out"
    rejected = [json.loads(line) for path in (out / "rejected").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert sorted((r["source"], r["line"], r["reason"]) for r in rejected) == [
        (a, 21, rows.DUPLICATE_ID), (b, 1, rows.DUPLICATE_ID), (b, 2, rows.DUPLICATE_ID),
    ]
    files = tf.io.gfile.glob(str(out / "train" / "*")) + tf.io.gfile.glob(str(out / "val" / "*"))
    kept = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.io.parse_single_example(record, schema.feature_spec(4))
        tweet_id = int(example[schema.TWEET_ID])
        assert tweet_id not in kept
        kept[tweet_id] = (int(example[schema.LABEL]), example[schema.TEXT].numpy().decode())
    assert sorted(kept) == list(range(1, 21)) + [30, 31, 32, 33]
    # The copies of a.csv's lines 5 and 7 are kept: id 5 is "happy day" (4), id 7 "happy day".
    assert kept[5] == (1, "happy day") and kept[7] == (1, "happy day")
