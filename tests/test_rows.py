"""Parsing and validating one Sentiment140 line."""

import bz2
import gzip

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
        ('"4","9223372036854775808","d","q","u","t"', "train", rows.BAD_ID),  # 2**63: beyond int64
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


def test_largest_int64_tweet_id_is_accepted():
    row = rows.parse_row(raw('"4","9223372036854775807","d","q","u","fine"'), 0.1)
    assert row.tweet_id == 2**63 - 1


def _lines_of(path, **kwargs):
    return [(r.line, r.text, r.decode_error) for b in rows.read_line_batches(str(path), "train", 2, **kwargs)
            for r in b.raw_lines()]


def test_gzip_and_bzip2_inputs_read_exactly_like_the_plain_file(tmp_path):
    content = b'"0","1","d","q","u","caf\xe9"\n\n"4","2","d","q","u","x"\r\n"4","3","d","q","u","y"'
    (tmp_path / "f.csv").write_bytes(content)
    (tmp_path / "f.csv.gz").write_bytes(gzip.compress(content))
    (tmp_path / "f.csv.bz2").write_bytes(bz2.compress(content))
    plain = _lines_of(tmp_path / "f.csv")
    assert [line for line, _, _ in plain] == [1, 3, 4]
    assert plain[0][1] == '"0","1","d","q","u","café"'
    assert _lines_of(tmp_path / "f.csv.gz") == plain
    assert _lines_of(tmp_path / "f.csv.bz2") == plain


def test_a_bare_cr_inside_a_quoted_tweet_stays_one_row(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b'"4","1","d","q","u","one\rtwo"\r\n"0","2","d","q","u","three"\n')
    lines = _lines_of(path)
    assert [(line, text) for line, text, _ in lines] == [
        (1, '"4","1","d","q","u","one\rtwo"'), (2, '"0","2","d","q","u","three"')
    ]
    row = rows.parse_row(raw(lines[0][1]), 0.1)
    assert (row.tweet_id, row.text) == (1, "one\rtwo")


def test_a_quoted_tweet_across_lines_is_one_record_numbered_by_its_first_line(tmp_path):
    # Seen: the first physical line was kept as the whole tweet and the rest rejected as
    # wrong_column_count. RFC 4180 allows line breaks inside quotes.
    path = tmp_path / "f.csv"
    path.write_bytes(
        b'"4","1","d","q","u","first line\r\nsecond ""quoted"" line\nthird"\r\n'
        b'"0","2","d","q","u","plain"\n'
        b'"0","3","d","q","u","a stray "quote\n'  # never closed: its own line, as before
        b'"4","4","d","q","u","after"\n'
    )
    lines = _lines_of(path)
    assert [line for line, _, _ in lines] == [1, 4, 5, 6]
    row = rows.parse_row(raw(lines[0][1]), 0.1)
    assert (row.tweet_id, row.text) == (1, 'first line\nsecond "quoted" line\nthird')
    assert rows.parse_row(raw(lines[1][1]), 0.1).text == "plain"
    assert rows.parse_row(raw(lines[2][1]), 0.1).tweet_id == 3  # read leniently, as before
    assert rows.parse_row(raw(lines[3][1]), 0.1).tweet_id == 4  # the stray quote ate nothing


UTF8_CSV = '\ufeff"4","1","d","q","u","café ☕"\n"0","2","d","q","u","naïve"\n'.encode("utf-8")
LATIN1_CSV = '"4","1","d","q","u","café"\n"0","2","d","q","u","naïve"\n'.encode("latin-1")


def test_auto_encoding_reads_a_utf8_file_as_utf8_and_a_latin1_file_as_latin1(tmp_path):
    (tmp_path / "u.csv").write_bytes(UTF8_CSV)
    (tmp_path / "l.csv.gz").write_bytes(gzip.compress(LATIN1_CSV))
    (tmp_path / "a.csv").write_bytes(b'"4","1","d","q","u","plain"\n')
    assert rows.file_encoding(str(tmp_path / "u.csv"), "auto") == "utf-8"
    assert rows.file_encoding(str(tmp_path / "l.csv.gz"), "auto") == "latin-1"
    assert rows.file_encoding(str(tmp_path / "a.csv"), "auto") == "utf-8"  # ASCII: both agree
    assert rows.file_encoding(str(tmp_path / "u.csv"), "latin-1") == "latin-1"  # forced
    expected = [(1, '"4","1","d","q","u","café ☕"', ""), (2, '"0","2","d","q","u","naïve"', "")]
    assert _lines_of(tmp_path / "u.csv") == expected  # auto is the default; the BOM is dropped
    assert _lines_of(tmp_path / "l.csv.gz") == [(1, '"4","1","d","q","u","café"', ""), expected[1]]
    # Forcing latin-1 on UTF-8 bytes gives the mojibake that auto avoids.
    assert _lines_of(tmp_path / "u.csv", encoding="latin-1")[1][1] == '"0","2","d","q","u","naÃ¯ve"'


def test_forced_utf8_rejects_the_lines_that_are_not_utf8(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes('"4","1","d","q","u","ok é"\n'.encode("utf-8") + b'"0","2","d","q","u","caf\xe9"\n')
    (first, _, first_error), (second, text, error) = _lines_of(path, encoding="utf-8")
    assert (first, first_error) == (1, "")
    assert second == 2 and text == '"0","2","d","q","u","café"'  # shown as latin-1 in rejected/
    assert "not valid utf-8" in error
    assert rows.parse_row(rows.RawLine(str(path), 1, "train", '"4","1","d","q","u","ok é"'), 0.1).text == "ok é"
    with pytest.raises(rows.RowRejected) as caught:
        rows.parse_row(rows.RawLine(str(path), 2, "train", text, error), 0.1)
    assert caught.value.reason == rows.BAD_ENCODING


def test_unknown_encoding_is_refused(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"x\n")
    with pytest.raises(ValueError, match=r"Expected --encoding to be one of \['auto', 'latin-1', 'utf-8'\]"):
        rows.file_encoding(str(tmp_path / "a.csv"), "cp1252")


def test_a_file_that_changes_encoding_midway_is_warned_about(tmp_path, caplog):
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes("caf\u00e9 ok\n".encode("utf-8") * 3 + "caf\u00e9 later\n".encode("latin-1"))
    assert rows.file_encoding(str(mixed)) == rows.LATIN1
    assert f"{mixed} changes encoding: it holds UTF-8 text beyond ASCII, then bytes that are not UTF-8 (near byte 30)" in caplog.text  # 3 x 9 bytes, then "caf"
    caplog.clear()
    latin = tmp_path / "latin.csv"
    latin.write_bytes("plain ascii first\n".encode() + "caf\u00e9\n".encode("latin-1"))
    assert rows.file_encoding(str(latin)) == rows.LATIN1
    assert "changes encoding" not in caplog.text  # latin-1 throughout: nothing mixed

