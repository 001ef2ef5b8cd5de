"""Parsing and validating one Sentiment140 line."""

import pytest

from preprocessing import rows


def raw(text, role="train", line=7):
    return rows.RawLine("in.csv", line, role, text)


def test_parses_quoted_text_with_commas_and_doubled_quotes():
    row = rows.parse_row(raw('"4","1467810369","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","bob","a, ""b"", c"'), 0.1)
    assert (row.label, row.tweet_id, row.text, row.source, row.line) == (1, 1467810369, 'a, "b", c', "in.csv", 7)
    assert row.split in ("train", "val")


def test_negative_label_and_test_role():
    row = rows.parse_row(raw('"0","3","d","q","u","sad"', role="test"), 0.5)
    assert (row.label, row.split) == (0, "test")


def test_neutral_test_row_is_kept_for_counting_only():
    row = rows.parse_row(raw('"2","5","d","q","u","meh"', role="test"), 0.1)
    assert (row.label, row.split) == (None, None)


@pytest.mark.parametrize(
    "line, role, reason",
    [
        ('"4","1","d","q","u"', "train", rows.WRONG_COLUMN_COUNT),
        ('"4","1","d","q","u","t","extra"', "train", rows.WRONG_COLUMN_COUNT),
        ('"7","1","d","q","u","t"', "train", rows.UNKNOWN_LABEL),
        ('"positive","1","d","q","u","t"', "train", rows.UNKNOWN_LABEL),
        ('"2","1","d","q","u","t"', "train", rows.NEUTRAL_IN_TRAIN),
        ('"4","12x","d","q","u","t"', "train", rows.BAD_ID),
        ('"4","-3","d","q","u","t"', "train", rows.BAD_ID),
        ('"4","1","d","q","u","   "', "train", rows.EMPTY_TEXT),
    ],
)
def test_every_rejection_reason(line, role, reason):
    with pytest.raises(rows.RowRejected) as caught:
        rows.parse_row(raw(line, role), 0.1)
    assert caught.value.reason == reason
    assert str(caught.value) == f"{reason}: {caught.value.detail}"


def test_val_split_is_stable_and_near_the_fraction():
    ids = range(1_000_000, 1_020_000)
    first = [rows.is_val(i, 0.1) for i in ids]
    assert first == [rows.is_val(i, 0.1) for i in ids]
    assert 0.09 < sum(first) / len(first) < 0.11
    # A larger fraction only moves ids into val, never out of it.
    assert all(rows.is_val(i, 0.2) for i, in_val in zip(ids, first) if in_val)


def test_read_line_batches_numbers_lines_and_skips_blank_ones(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b'"0","1","d","q","u","caf\xe9"\n\n"4","2","d","q","u","x"\r\n"4","3","d","q","u","y"\n')
    batches = list(rows.read_line_batches(str(path), "train", 2))
    assert [len(b.texts) for b in batches] == [2, 1]
    got = [raw for batch in batches for raw in batch.raw_lines()]
    assert [(r.line, r.text) for r in got] == [
        (1, '"0","1","d","q","u","café"'), (3, '"4","2","d","q","u","x"'), (4, '"4","3","d","q","u","y"')
    ]
    assert {(r.source, r.role) for r in got} == {(str(path), "train")}
