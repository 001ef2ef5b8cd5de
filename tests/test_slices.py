"""Tests of the evaluation slices: exact accuracies on hand-made token ids, families that
partition a split, empty buckets, the link and user-name tokens of the standardizer, and
the slice table of the report."""

import numpy as np
import pytest

from preprocessing import text
from trainer import report
from trainer import slices

PAD, UNK, URL, USER, W = 0, 1, 2, 3, 4  # W: an ordinary word; W + 1, W + 2 ... too
VOCAB = ["", "[UNK]", "url", "user", "good", "bad", "day", "fun"]
METADATA = {"standardizer_version": text.STANDARDIZER_VERSION, "max_length": 24}
MARKERS = slices.MarkerIds(link=URL, mention=USER, tokens=slices.MarkerTokens("url", "user"))


def _padded(rows, max_length):
    return np.array([row + [PAD] * (max_length - len(row)) for row in rows], dtype=np.int64)


# Six tweets at max_length 24, with (label, predicted): lengths 5, 4, 6, 10, 20, 24
# (the last truncated), and 0%, 25%, 1/6, 10%, 0%, 7/24 of [UNK] ids.
SIX = _padded(
    [
        [W, W + 1, URL, W + 2, W + 3],  # link; correct
        [USER, UNK, W, W + 1],  # mention, 25% [UNK]; wrong
        [W] * 5 + [UNK],  # 1/6 [UNK]; correct
        [UNK] + [W] * 9,  # exactly 10% [UNK]; correct
        [URL, USER] + [W + 1] * 18,  # link and mention; wrong
        [UNK] * 7 + [W] * 17,  # truncated at 24, 7/24 [UNK]; correct
    ],
    24,
)
LABELS = np.array([1, 0, 1, 0, 1, 0])
PREDICTED = np.array([1, 1, 1, 0, 0, 0])


def _table(rows):
    return [(row["slice"], row["count"], row["accuracy"]) for row in rows]


def test_six_tweets_give_the_hand_computed_accuracy_of_every_slice():
    got = slices.slice_metrics(SIX, LABELS, PREDICTED, MARKERS)
    assert list(got) == list(slices.FAMILIES)
    assert _table(got["length"]) == [("1-5", 2, 0.5), ("6-10", 2, 1.0), ("11-20", 1, 0.0), ("21+", 1, 1.0)]
    assert _table(got["link"]) == [("with link", 2, 0.5), ("without link", 4, 0.75)]
    assert _table(got["mention"]) == [("with mention", 2, 0.0), ("without mention", 4, 1.0)]
    # The bounds belong to the lower bucket: 10% in "(0%, 10%]", 25% in "(10%, 25%]".
    assert _table(got["oov_share"]) == [("0%", 2, 0.5), ("(0%, 10%]", 1, 1.0), ("(10%, 25%]", 2, 0.5), ("> 25%", 1, 1.0)]


def test_empty_buckets_have_count_zero_and_no_accuracy():
    short = _padded([[W, W], [W, UNK, W, W, W, W, W, W]], 8)  # max_length 8: nothing above 10 tokens
    got = slices.slice_metrics(short, [1, 0], [1, 1], MARKERS)
    assert _table(got["length"]) == [("1-5", 1, 1.0), ("6-10", 1, 0.0), ("11-20", 0, None), ("21+", 0, None)]
    assert _table(got["link"]) == [("with link", 0, None), ("without link", 2, 0.5)]
    assert _table(got["oov_share"]) == [("0%", 1, 1.0), ("(0%, 10%]", 0, None), ("(10%, 25%]", 1, 0.0), ("> 25%", 0, None)]


def test_every_family_partitions_the_split():
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 41, size=500)
    ids = [list(rng.integers(1, len(VOCAB), size=n)) for n in lengths]
    token_ids = _padded(ids, 40)
    labels, predicted = rng.integers(0, 2, size=500), rng.integers(0, 2, size=500)
    got = slices.slice_metrics(token_ids, labels, predicted, MARKERS)
    for family in slices.FAMILIES:
        rows = got[family]
        assert sum(row["count"] for row in rows) == 500, family
        # The correct predictions of the buckets add up to those of the split.
        correct = sum(round(row["accuracy"] * row["count"]) for row in rows if row["count"])
        assert correct == int((labels == predicted).sum()), family
    with_link = int((token_ids == URL).any(axis=1).sum())
    assert got["link"][0]["count"] == with_link and 0 < with_link < 500


def test_marker_ids_come_from_the_vocabulary_of_the_recorded_standardizer():
    assert slices.marker_ids(METADATA, VOCAB) == (URL, USER, ("url", "user"))
    # A vocabulary without "url" (no link in train): links became [UNK], so the
    # family cannot tell them apart and says so, in one bucket holding every tweet.
    markers = slices.marker_ids(METADATA, [t for t in VOCAB if t != "url"])
    assert (markers.link, markers.mention) == (None, 2)
    got = slices.slice_metrics(SIX, LABELS, PREDICTED, markers)
    assert _table(got["link"]) == [("unknown ('url' not in the vocabulary)", 6, 4 / 6)]
    with pytest.raises(ValueError, match=r"standardizer 'nonesuch' .*_MARKER_TOKENS"):
        slices.marker_ids({"standardizer": "nonesuch", "standardizer_version": 1}, VOCAB)


def test_the_marker_tokens_are_what_the_standardizer_writes():
    standardized = text.standardize_batch(["look http://t.co/abc", "@bob hi", "the url of a user"])
    assert standardized == [f"look {text.LINK_TOKEN}", f"{text.MENTION_TOKEN} hi", "the url of a user"]
    assert slices.marker_tokens(METADATA) == (text.LINK_TOKEN, text.MENTION_TOKEN)


def test_the_twitter_standardizer_has_its_own_marker_tokens():
    twitter = text.get_standardizer("twitter")
    standardized = text.standardize_batch(["look http://t.co/abc", "@bob hi"], standardizer="twitter")
    assert standardized == ["look <url>", "<user> hi"]
    metadata = {"standardizer": "twitter", "standardizer_version": twitter.version}
    assert slices.marker_tokens(metadata) == ("<url>", "<user>")


def test_mismatched_sizes_say_what_was_expected():
    with pytest.raises(ValueError, match=r"token ids \[6, 24\], 5 labels, 6 predictions"):
        slices.slice_metrics(SIX, LABELS[:5], PREDICTED, MARKERS)


def test_report_shows_one_row_per_slice_and_a_column_pair_per_split():
    val = slices.slice_metrics(SIX, LABELS, PREDICTED, MARKERS)
    test = slices.slice_metrics(SIX[:2], LABELS[:2], PREDICTED[:2], MARKERS)
    markdown = report.render_markdown(
        history={}, metrics=None, metadata=METADATA, settings={"architecture": "gap"},
        learning_curves=None, no_plot_reason="no epoch was recorded", slices={"val": val, "test": test},
    )
    section = markdown.split("## Slices\n", 1)[1].split("\n## ", 1)[0]
    assert "max_length 24" in section and "a literal word 'url' or 'user' counts too" in section
    assert "| family | slice | val count | val accuracy | test count | test accuracy |" in section
    assert "| length | 1-5 | 2 | 0.5000 | 2 | 0.5000 |" in section
    assert "| length | 21+ | 1 | 1.0000 | 0 | n/a |" in section
    assert "| mention | with mention | 2 | 0.0000 | 1 | 0.0000 |" in section
    assert "| oov_share | (10%, 25%] | 2 | 0.5000 | 1 | 0.0000 |" in section
    assert section.count("\n| ") == 1 + 4 + 2 + 2 + 4  # the header and 12 slices
    assert "## Slices" not in report.render_markdown(
        history={}, metrics=None, metadata=METADATA, settings={}, learning_curves=None, slices=None
    )
