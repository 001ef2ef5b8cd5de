"""The built-in sample must look like the official files to every reader we have."""

import collections
import csv
import math
import re

import pytest

from preprocessing import sample
from preprocessing import text as text_lib

DATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} (PDT|UTC) 2009$"
)


def _rows(path):
    with open(path, encoding="latin-1", newline="") as handle:
        return list(csv.reader(handle))


def _kind_of(row):
    """What `preprocessing/rows.py` and the standardizer would make of one parsed row."""
    if len(row) != 6:
        return "wrong_column_count"
    if row[0] not in ("0", "2", "4"):
        return "unknown_label"
    if not row[1].isdigit():
        return "bad_id"
    if not row[5].strip():
        return "empty_text"
    if not text_lib.standardize_batch([row[5]])[0]:
        return "empty_after_standardize"
    return "good"


def test_same_seed_writes_identical_bytes_and_another_seed_differs(tmp_path):
    first = sample.write_sample_csv(tmp_path / "a.csv", num_rows=300, seed=3, bad_rows=5)
    second = sample.write_sample_csv(tmp_path / "b.csv", num_rows=300, seed=3, bad_rows=5)
    sample.write_sample_csv(tmp_path / "c.csv", num_rows=300, seed=4, bad_rows=5)

    assert first == second
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_train_file_has_the_official_layout(tmp_path):
    path = tmp_path / "nested" / "dir" / "train.csv"  # parent directories are created
    counts = sample.write_sample_csv(path, num_rows=2000, seed=0)
    raw = path.read_bytes()
    rows = _rows(path)

    raw.decode("latin-1").encode("latin-1")  # round-trips, so every byte is latin-1
    assert b"\r" not in raw
    assert raw.endswith(b'"\n')
    lines = raw.decode("latin-1").split("\n")[:-1]
    assert len(lines) == len(rows) == 2000
    # Every field is quoted: each line starts and ends with a quote and has 6 quoted fields.
    assert all(line.startswith('"') and line.endswith('"') for line in lines)
    assert all(len(row) == 6 for row in rows)
    assert {row[0] for row in rows} == {"0", "4"}
    assert {row[3] for row in rows} == {"NO_QUERY"}
    assert all(DATE.match(row[2]) and row[2].endswith("PDT 2009") for row in rows)
    assert rows[0][2] == "Mon Apr 06 22:19:45 PDT 2009"
    ids = [int(row[1]) for row in rows]
    assert ids[0] == 1_000_000 and len(set(ids)) == len(ids) and ids == sorted(ids)
    assert all(re.fullmatch(r"\w+", row[4]) for row in rows)

    polarity = collections.Counter(row[0] for row in rows)
    assert counts == {
        "rows": 2000,
        "negative": polarity["0"],
        "positive": polarity["4"],
        "neutral": 0,
        "bad": dict.fromkeys(sample.BAD_KINDS, 0),
    }
    assert abs(polarity["0"] - polarity["4"]) <= 0.1 * 2000


def test_texts_carry_the_noise_of_real_tweets(tmp_path):
    path = tmp_path / "train.csv"
    sample.write_sample_csv(path, num_rows=2000, seed=1)
    texts = [row[5] for row in _rows(path)]
    raw = path.read_text(encoding="latin-1")

    def share(pattern):
        return sum(bool(re.search(pattern, t)) for t in texts) / len(texts)

    assert share(r"@\w+") > 0.2
    assert share(r"https?://|www\.") > 0.05
    assert share(r"#\w+") > 0.05
    assert share(r"&quot;|&amp;") > 0.03
    assert share(r"([a-z])\1\1") > 0.05  # "soooo"
    assert share(r"!!!") > 0.03
    assert share(r"\b(can't|don't)\b") > 0.03
    assert share(r",") > 0.2
    assert share("é") > 0.01
    assert '""' in raw  # a quote inside the text, doubled by CSV quoting
    assert len(set(texts)) > 0.9 * len(texts)


def test_test_kind_looks_like_the_official_test_set(tmp_path):
    path = tmp_path / "test.csv"
    counts = sample.write_sample_csv(path, num_rows=500, seed=0, kind="test")
    rows = _rows(path)

    polarity = collections.Counter(row[0] for row in rows)
    assert set(polarity) == {"0", "2", "4"}
    assert counts["neutral"] == polarity["2"] and 100 <= polarity["2"] <= 180
    assert counts["negative"] == polarity["0"] and counts["positive"] == polarity["4"]
    assert all(row[2].endswith("UTC 2009") and DATE.match(row[2]) for row in rows)
    ids = [int(row[1]) for row in rows]
    assert ids[0] == 1 and max(ids) < 2000 and len(set(ids)) == 500
    assert "NO_QUERY" not in {row[3] for row in rows}
    # The query is the topic the tweet was found by, as in the official test set.
    assert sum(row[3] in row[5].lower() for row in rows) > 0.5 * len(rows)


def test_bad_rows_of_every_kind_are_inserted(tmp_path):
    path = tmp_path / "train.csv"
    counts = sample.write_sample_csv(path, num_rows=200, seed=2, bad_rows=12, first_id=7)
    rows = _rows(path)

    assert counts["bad"] == {
        "wrong_column_count": 3,
        "unknown_label": 3,
        "bad_id": 2,
        "empty_text": 2,
        "empty_after_standardize": 2,
    }
    assert len(rows) == 212
    by_kind = collections.defaultdict(list)
    for row in rows:
        by_kind[_kind_of(row)].append(row)
    assert len(by_kind.pop("good")) == 200
    assert {kind: len(found) for kind, found in by_kind.items()} == counts["bad"]
    assert sorted(len(row) for row in by_kind["wrong_column_count"]) == [5, 5, 7]
    assert "7" in {row[0] for row in by_kind["unknown_label"]}
    # The text of these rows is not blank to `str.strip`, only to the standardizer.
    assert all(row[5].strip() for row in by_kind["empty_after_standardize"])
    # Bad rows are spread through the file, not all appended at the end.
    positions = [index for index, row in enumerate(rows) if _kind_of(row) != "good"]
    assert positions[0] < len(rows) - len(positions)
    numeric_ids = [int(row[1]) for row in rows if len(row) > 1 and row[1].isdigit()]
    assert len(set(numeric_ids)) == len(numeric_ids) and min(numeric_ids) == 7


def _tokens(text):
    return re.findall(r"[a-z']+", text.lower())


def _naive_bayes_accuracy(train_rows, test_rows):
    """Multinomial naive Bayes with add-one smoothing: the simplest bag-of-words model."""
    word_counts = {"0": collections.Counter(), "4": collections.Counter()}
    for polarity, text in train_rows:
        word_counts[polarity].update(_tokens(text))
    vocab = set(word_counts["0"]) | set(word_counts["4"])
    totals = {label: sum(counts.values()) + len(vocab) for label, counts in word_counts.items()}

    def score(label, text):
        return sum(math.log((word_counts[label][w] + 1) / totals[label]) for w in _tokens(text))

    correct = sum(
        (score("4", text) > score("0", text)) == (polarity == "4") for polarity, text in test_rows
    )
    return correct / len(test_rows)


def test_labels_are_learnable_but_not_perfect(tmp_path):
    sample.write_sample_csv(tmp_path / "train.csv", num_rows=4000, seed=0)
    sample.write_sample_csv(tmp_path / "heldout.csv", num_rows=1000, seed=1, first_id=9_000_000)
    train = [(row[0], row[5]) for row in _rows(tmp_path / "train.csv")]
    heldout = [(row[0], row[5]) for row in _rows(tmp_path / "heldout.csv")]

    accuracy = _naive_bayes_accuracy(train, heldout)

    assert 0.82 < accuracy < 0.97


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "dev"}, "Expected kind to be one of ['train', 'test']. Received: 'dev'."),
        ({"num_rows": -1}, "Expected num_rows to be a non-negative integer. Received: -1."),
        ({"bad_rows": 1.5}, "Expected bad_rows to be a non-negative integer. Received: 1.5."),
    ],
)
def test_invalid_arguments_say_what_was_expected(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        sample.write_sample_csv(tmp_path / "x.csv", **kwargs)
