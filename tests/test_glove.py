"""GloVe text files as users bring them: word2vec/fastText headers, wrong value counts,
binary files under a text name."""

import csv
import struct

import pytest

from preprocessing import config, glove, pipeline

VECTORS = {"happy": (0.5, 0.25, 1.0), "sad": (-0.5, -0.25, -1.0), "unused": (1.0, 2.0, 3.0)}


def _vector_lines(vectors=VECTORS, trailing=""):
    return [f"{word} " + " ".join(f"{v:g}" for v in values) + trailing for word, values in vectors.items()]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_infer_dim_skips_a_word2vec_header_and_parse_line_ignores_it(tmp_path):
    spec = _write(tmp_path / "w.txt", ["3 3", *_vector_lines()])
    assert glove.infer_dim(spec) == 3
    assert glove.parse_line("3 3", 3, {"happy"}) is None
    word, vector = glove.parse_line(_vector_lines()[0], 3, {"happy"})
    assert word == "happy" and vector.tolist() == [0.5, 0.25, 1.0]


def test_fasttext_vec_with_header_and_trailing_spaces(tmp_path):
    spec = _write(tmp_path / "wiki.vec", ["3 3", *_vector_lines(trailing=" ")])
    assert glove.kind_of(spec) == "text"
    assert glove.infer_dim(spec) == 3
    assert glove.parse_line(_vector_lines(trailing=" ")[1], 3, {"sad"})[1].tolist() == [-0.5, -0.25, -1.0]


def _train_csv(path):
    with open(path, "w", encoding="latin-1", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for i in range(60):
            words = "happy day" if i % 2 else "sad day"
            writer.writerow(["4" if i % 2 else "0", str(1000 + i), "d", "q", "u", words])
    return str(path)


@pytest.mark.parametrize("name", ["vectors.vec", "vectors.txt"])
def test_a_header_file_gives_the_right_dimension_and_coverage(tmp_path, name):
    spec = _write(tmp_path / name, ["3 3", *_vector_lines(trailing=" " if name.endswith(".vec") else "")])
    metadata = pipeline.preprocess(
        config.PreprocessConfig(
            train_csv=(_train_csv(tmp_path / "train.csv"),), output_dir=str(tmp_path / "out"),
            glove=spec, max_length=4, num_shards=1,
        )
    )
    embedding = metadata["embedding"]
    # Vocabulary: happy, sad, day; GloVe has the first two.
    assert (embedding["dim"], embedding["covered_types"], embedding["vocab_types"]) == (3, 2, 3)
    assert embedding["coverage_by_type"] == pytest.approx(2 / 3, abs=1e-6)
    assert embedding["coverage_by_token"] == pytest.approx(0.5, abs=1e-6)  # "day" is half the tokens


def test_a_line_with_too_many_values_fails_naming_file_line_and_flag(tmp_path):
    lines = _vector_lines()
    lines[2] = "unused 1 2 3 4"
    spec = _write(tmp_path / "g.txt", lines)
    with pytest.raises(glove.GloveFormatError) as caught:
        glove.infer_dim(spec)
    message = str(caught.value)
    assert f"--glove={spec}" in message and "line 3" in message
    assert "Expected 3 values" in message and "Received 4" in message
    # The same line met by a worker (no line number there) fails too, not silently dropped.
    with pytest.raises(glove.GloveFormatError, match=r"Expected 3 values .*--glove=x.txt.*Received 4"):
        glove.parse_line("unused 1 2 3 4", 3, {"happy"}, source="x.txt")


def test_a_line_with_too_few_values_names_file_and_line(tmp_path):
    spec = _write(tmp_path / "g.txt", [*_vector_lines(), "short 1 2"])
    with pytest.raises(glove.GloveFormatError, match=r"Expected 3 values .*Received 2 on line 4"):
        glove.infer_dim(spec)


def test_words_with_spaces_are_kept(tmp_path):
    # glove.840B has a few words with spaces (". . ."); they are not extra values.
    assert glove.parse_line(". . . 1 2 3", 3, {". . ."})[0] == ". . ."


def test_a_binary_file_named_txt_is_refused_naming_the_flag(tmp_path):
    path = tmp_path / "GoogleNews-vectors.txt"
    # word2vec's binary format: a text header, then each word and its raw float32s.
    path.write_bytes(b"2 3\nhappy " + struct.pack("<3f", 0.5, -1.5, 2.25) + b"sad " + struct.pack("<3f", 1, 2, 3))
    with pytest.raises(glove.GloveFormatError) as caught:
        glove.infer_dim(str(path))
    message = str(caught.value)
    assert f"--glove={path}" in message and "not a text vectors file" in message
    (tmp_path / "zeros.txt").write_bytes(bytes(100))
    with pytest.raises(glove.GloveFormatError, match="not a text vectors file"):
        glove.infer_dim(str(tmp_path / "zeros.txt"))
