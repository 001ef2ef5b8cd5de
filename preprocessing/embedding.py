"""The GloVe stages' work (JoinGlove, WriteEmbeddings in preprocessing/transforms.py):
vectors of the vocabulary's tokens from a GloVe source, and the matrix they fill."""

import collections
import posixpath
import typing

import apache_beam as beam
import numpy as np

from preprocessing import counters
from preprocessing import glove
from preprocessing import outputs
from preprocessing import schema


def token_set(vocabulary):
    """The side input that GloVe lines are matched against: set lookups, not list scans."""
    return frozenset(vocabulary.tokens)


NON_FINITE = "non_finite"  # the tagged output of ParseGloveLineFn: (line number, token)


# Declared: Beam infers a union with TaggedOutput from `process`, which GroupByKey refuses.
@beam.typehints.with_output_types(typing.Tuple[str, typing.Tuple[int, typing.Any]])
class ParseGloveLineFn(beam.DoFn):
    """(line number, GloVe text line) -> (token, (line number, vector)) for the tokens of
    the vocabulary; a vector holding nan or inf goes to the NON_FINITE output instead.
    `source` (the --glove spec) is named by the error on a malformed line."""

    def __init__(self, dim, source=None):
        self._dim, self._source = dim, source
        self._fates = collections.Counter()

    def start_bundle(self):
        self._fates = collections.Counter()

    def process(self, numbered, vocabulary_set):
        number, line = numbered
        self._fates[counters.GLOVE_LINES_READ] += 1
        pair = glove.parse_line(line, self._dim, vocabulary_set, self._source)
        if pair is None:
            return
        if not np.isfinite(pair[1]).all():
            self._fates[counters.GLOVE_NON_FINITE] += 1
            yield beam.pvalue.TaggedOutput(NON_FINITE, (number, pair[0]))
            return
        self._fates[counters.GLOVE_LINES_MATCHED] += 1
        yield pair[0], (number, pair[1])

    def finish_bundle(self):
        # Counted per bundle: a counter call per line would cost more than parsing it.
        counters.add_all(self._fates)


def first_copy(grouped, non_finite, source):
    """(token, [(line number, vector)]) -> (token, the vector of its first line).

    Raises:
      GloveFormatError: when any vocabulary token's vector holds nan or inf
        (`non_finite`: [(line number, token)]); such a row would train as NaN.
    """
    if non_finite:
        listed = ", ".join(f"line {number} ({token!r})" for number, token in sorted(non_finite)[:5])
        raise glove.GloveFormatError(
            f"Expected finite numbers in --glove={source}. Received nan or inf in {len(non_finite)} "
            f"vector(s): {listed}{' ...' if len(non_finite) > 5 else ''}. Fix or remove those lines."
        )
    token, copies = grouped
    copies = sorted(copies, key=lambda copy: copy[0])
    counters.add(counters.GLOVE_DUPLICATES, len(copies) - 1)
    return token, copies[0][1]


class KumoVectorsFn(beam.DoFn):
    """None -> (token, vector) for the tokens of the vocabulary that the package has."""

    def process(self, _, vocabulary_set):
        counters.add(counters.GLOVE_LINES_READ, len(glove.kumo_vectors()))
        matched = 0
        for pair in glove.kumo_pairs(vocabulary_set):
            matched += 1
            yield pair
        counters.add(counters.GLOVE_LINES_MATCHED, matched)


def write_embeddings(found, vocabulary, dim, path):
    """Writes the matrix of the vocabulary from the {token: vector} GloVe has, and beside
    it the ids of the rows GloVe lacks (the trainer may make those trainable); returns
    metadata.json's embedding statistics."""
    matrix, coverage = glove.assemble(vocabulary, found, dim)
    uncovered = glove.uncovered_ids(vocabulary, found)
    outputs.write_npy(posixpath.join(posixpath.dirname(path), schema.UNCOVERED_IDS_FILE), uncovered)
    outputs.write_npy(path, matrix)
    return {"dim": dim, **coverage, "uncovered_rows": len(uncovered)}
