"""Tests of s140-predict: the library and the CLI, run as a user runs it (subprocess),
on an export alone: tweets from arguments, stdin and a file; text and JSON output;
errors that say what was expected."""

import json
import os
import pathlib
import select
import subprocess
import sys

import keras
import numpy as np
import pytest

from trainer import data
from trainer import export
from trainer import models
from trainer import predict

REPO = pathlib.Path(__file__).resolve().parents[1]
TWEETS = ["I love this, great happy day", "hate this, so sad and terrible", "the\tweather today"]


@pytest.fixture(scope="module")
def export_dir(sample_data_dir, tmp_path_factory):
    """A briefly trained `gap` model, exported; the CLI sees only this directory."""
    keras.utils.set_random_seed(11)
    contract = data.load_contract(sample_data_dir)
    model = models.build_model(
        "gap",
        vocab_size=contract.vocab_size,
        embedding_dim=contract.embedding_dim,
        max_length=contract.max_length,
        embedding_matrix=contract.embeddings,
    )
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    train = data.make_dataset(contract, "train", batch_size=64, shuffle=True, seed=0)
    model.fit(train, epochs=2, verbose=0, shuffle=False)  # the dataset shuffles
    target = str(tmp_path_factory.mktemp("predict") / "model")
    return export.export_serving_model(
        model, vocab_tokens=contract.vocab_tokens, max_length=contract.max_length, export_dir=target
    )


@pytest.fixture(scope="module")
def expected(export_dir):
    """In-process probabilities of TWEETS, what the CLI must print."""
    return export.load_serving_model(export_dir)(TWEETS)


def _cli(*args, stdin=None, text=True, env=None):
    return subprocess.run(
        [sys.executable, "-m", "trainer.predict_main", *args],
        input=stdin, capture_output=True, text=text, cwd=REPO, timeout=300, env=env,
    )


def _json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_tweets_from_arguments_text_format(export_dir, expected):
    result = _cli(f"--model_dir={export_dir}", *TWEETS)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [len(row) for row in rows] == [3, 3, 3]
    assert [row[0] for row in rows] == ["positive", "negative", "positive" if expected[2] > 0.5 else "negative"]
    np.testing.assert_allclose([float(row[1]) for row in rows], expected, atol=1e-6)
    # The tab inside the third tweet is printed as a space: the columns stay three.
    assert [row[2] for row in rows] == [TWEETS[0], TWEETS[1], "the weather today"]


def test_tweets_from_stdin_json_format(export_dir, expected):
    stdin = f"{TWEETS[0]}\n\n   \n{TWEETS[1]}\r\n{TWEETS[2]}"  # blank lines skipped, CRLF ok
    result = _cli(f"--model_dir={export_dir}", "--format=json", stdin=stdin)
    assert result.returncode == 0, result.stderr
    lines = _json_lines(result.stdout)
    assert [line["text"] for line in lines] == TWEETS
    np.testing.assert_allclose([line["probability"] for line in lines], expected, atol=1e-6)
    assert [line["label"] for line in lines][:2] == ["positive", "negative"]
    assert all(set(line) == {"text", "label", "probability", "known_tokens"} for line in lines)


def test_tweets_from_input_file_with_threshold(export_dir, expected, tmp_path):
    path = tmp_path / "tweets.txt"
    path.write_text("\n".join(TWEETS) + "\nEl café está très bien 😀\n", encoding="utf-8")
    threshold = float(np.sort(expected)[1])  # only the highest scoring tweet is above it
    result = _cli(
        f"--model_dir={export_dir}", "--format=json", f"--input_file={path}", f"--threshold={threshold}"
    )
    assert result.returncode == 0, result.stderr
    lines = _json_lines(result.stdout)
    assert [line["text"] for line in lines] == TWEETS + ["El café está très bien 😀"]
    np.testing.assert_allclose([line["probability"] for line in lines[:3]], expected, atol=1e-6)
    labels = [line["label"] for line in lines[:3]]
    assert labels == ["positive" if p > threshold else "negative" for p in expected]
    assert labels.count("positive") == 1


def test_missing_model_dir_fails_with_a_clear_message(tmp_path):
    missing = tmp_path / "no_such_model"
    result = _cli(f"--model_dir={missing}", "hello")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "s140-predict: error: Expected a model directory written by s140-train" in result.stderr
    assert f"Received: '{missing}', which does not exist" in result.stderr


def test_a_directory_that_is_not_an_export_fails_with_a_clear_message(sample_data_dir):
    result = _cli(f"--model_dir={sample_data_dir}", "hello")
    assert result.returncode != 0
    assert "Expected a SavedModel (saved_model.pb) exported by s140-train" in result.stderr
    assert "metadata.json" in result.stderr  # shows what the directory does hold


def test_usage_errors(export_dir, tmp_path):
    both = _cli(f"--model_dir={export_dir}", f"--input_file={tmp_path / 'x.txt'}", "hello")
    assert both.returncode != 0
    assert "either as arguments or in --input_file, not both" in both.stderr
    no_model = _cli("hello")
    assert no_model.returncode != 0 and "--model_dir" in no_model.stderr


def test_a_nan_threshold_is_one_line_before_the_model_loads(tmp_path):
    result = _cli(f"--model_dir={tmp_path / 'not-loaded'}", "--threshold=nan", "hello")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "s140-predict: error: Expected --threshold in [0, 1]. Received: nan."


def test_stdin_is_scored_line_by_line_as_it_comes(export_dir, expected):
    # Seen: all of stdin was read before anything was printed, so it could not sit in a pipe.
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer.predict_main", f"--model_dir={export_dir}", "--format=json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
    )
    try:
        for tweet, probability in zip(TWEETS[:2], expected[:2]):
            process.stdin.write(tweet + "\n")
            process.stdin.flush()
            # stdin stays open: the answer must come before the input ends.
            ready, _, _ = select.select([process.stdout], [], [], 120)
            assert ready, "no answer while stdin is open"
            line = process.stdout.readline()
            assert json.loads(line)["text"] == tweet
            assert json.loads(line)["probability"] == pytest.approx(float(probability), abs=1e-6)
        process.stdin.close()
        assert process.wait(timeout=60) == 0 and process.stdout.read() == ""
    finally:
        process.kill()


def test_line_batches_take_what_is_waiting(tmp_path):
    read, write = os.pipe()
    os.write(write, b"one\ntwo\nthree")  # the last line without its ending
    os.close(write)
    assert list(predict.line_batches(read, max_lines=2)) == [[b"one", b"two"], [b"three"]]
    os.close(read)


# Valid UTF-8, latin-1 (as the training data is), and bytes that are neither.
MIXED_LINES = [
    b"I love this, great happy day",
    "café très bien".encode("utf-8"),
    "café très bien".encode("latin-1"),
    b"\xff\xfe great \xc3(",
]
MIXED_DECODED = ["I love this, great happy day", "café très bien", "café très bien", "ÿþ great Ã("]


def test_undecodable_bytes_fall_back_to_latin1_per_line(export_dir, tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\n".join(MIXED_LINES) + b"\n")
    from_file = _cli(f"--model_dir={export_dir}", "--format=json", f"--input_file={path}")
    assert from_file.returncode == 0, from_file.stderr
    assert [line["text"] for line in _json_lines(from_file.stdout)] == MIXED_DECODED
    assert "Lines 3, 4 are not UTF-8: read as latin-1" in from_file.stderr
    from_stdin = _cli(f"--model_dir={export_dir}", "--format=json", stdin=b"\r\n".join(MIXED_LINES), text=False)
    assert from_stdin.returncode == 0, from_stdin.stderr
    # stdin is scored as it arrives, so in other batches: the same texts, and the same
    # probabilities up to float rounding.
    streamed, whole = _json_lines(from_stdin.stdout.decode("utf-8")), _json_lines(from_file.stdout)
    assert [line["text"] for line in streamed] == MIXED_DECODED
    np.testing.assert_allclose([line["probability"] for line in streamed], [line["probability"] for line in whole], atol=1e-6)
    expected = export.load_serving_model(export_dir)(MIXED_DECODED)
    np.testing.assert_allclose([line["probability"] for line in _json_lines(from_file.stdout)], expected, atol=1e-6)
    from_args = _cli(f"--model_dir={export_dir}", "--format=json", *MIXED_LINES, text=False)
    assert from_args.returncode == 0, from_args.stderr
    assert from_args.stdout.decode("utf-8") == from_file.stdout


def test_tweets_without_a_known_word_are_marked(export_dir):
    tweets = ["", "😀😀", "qwzxvbn zzqqxx", TWEETS[0]]
    serving = export.load_serving_model(export_dir)
    known_first = int((serving.tokenize([TWEETS[0]])[1] > 1).sum())
    assert known_first == 7  # i love this , great happy day
    result = _cli(f"--model_dir={export_dir}", "--format=json", *tweets)
    assert result.returncode == 0, result.stderr
    assert [line["known_tokens"] for line in _json_lines(result.stdout)] == [0, 0, 0, 7]
    text = _cli(f"--model_dir={export_dir}", *tweets)
    rows = [line.split("\t") for line in text.stdout.splitlines()]
    assert [len(row) for row in rows] == [4, 4, 4, 3]
    assert {row[3] for row in rows[:3]} == {predict.NO_KNOWN_WORD_NOTE}
    assert [row[2] for row in rows] == tweets


def _no_tensorflow_noise(stderr):
    noise = ("oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog", "cpu_feature_guard")
    return [line for line in stderr.splitlines() if any(word in line for word in noise)]


def test_no_tensorflow_start_up_lines_on_stderr(export_dir):
    import os

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    helped = _cli("--help", env=env)
    assert "--model_dir" in helped.stdout + helped.stderr  # (absl's --help exits with 1)
    assert _no_tensorflow_noise(helped.stderr) == []
    scored = _cli(f"--model_dir={export_dir}", TWEETS[0], env=env)
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.startswith("positive\t")
    assert _no_tensorflow_noise(scored.stderr) == []
    # The user's own setting wins: at level 0 TensorFlow says what it says.
    loud = _cli(f"--model_dir={export_dir}", TWEETS[0], env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert loud.returncode == 0 and loud.stdout == scored.stdout


# --- The library.


def test_predict_labels_with_the_threshold_rule(export_dir, expected):
    serving = export.load_serving_model(export_dir)
    predictions = predict.predict(serving, TWEETS, threshold=0.5)
    assert [p.text for p in predictions] == TWEETS
    np.testing.assert_allclose([p.probability for p in predictions], expected, atol=1e-7)
    assert [p.label for p in predictions] == ["positive" if p > 0.5 else "negative" for p in expected]
    # An export directory works too; and probability == threshold is negative.
    exactly = predict.predict(export_dir, TWEETS[:1], threshold=float(expected[0]))
    assert exactly[0].label == "negative"
    assert predict.predict(serving, []) == []
    with pytest.raises(ValueError, match=r"threshold in \[0, 1\]"):
        predict.predict(serving, TWEETS, threshold=1.5)


def test_read_tweets_and_format_prediction():
    assert predict.read_tweets(["a b\n", "\n", "  \r\n", "c\r\n", "d"]) == ["a b", "c", "d"]
    assert predict.read_tweets([b"caf\xc3\xa9\r\n", b"caf\xe9\n", b" \n"]) == ["café", "café"]
    assert predict.decode_line(b"\xff ok") == ("ÿ ok", "latin-1")
    assert predict.decode_line("naïve".encode("utf-8")) == ("naïve", "utf-8")
    prediction = predict.Prediction(text='say "hi"\tthere', label="positive", probability=0.8125)
    assert predict.format_prediction(prediction) == 'positive\t0.812500\tsay "hi" there'
    assert json.loads(predict.format_prediction(prediction, "json")) == {
        "text": 'say "hi"\tthere', "label": "positive", "probability": 0.8125,
    }
    with pytest.raises(ValueError, match=r"format in \['text', 'json'\]"):
        predict.format_prediction(prediction, "csv")
    unknown = predict.Prediction(text="😀", label="positive", probability=0.6, known_tokens=0)
    assert predict.format_prediction(unknown) == f"positive\t0.600000\t😀\t{predict.NO_KNOWN_WORD_NOTE}"
    assert json.loads(predict.format_prediction(unknown, "json"))["known_tokens"] == 0


def test_predict_counts_known_tokens(export_dir):
    predictions = predict.predict(export.load_serving_model(export_dir), ["", "love zzqqxx love"])
    assert [p.known_tokens for p in predictions] == [0, 2]
