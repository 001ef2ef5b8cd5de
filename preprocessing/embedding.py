"""The GloVe stages' work (JoinGlove, WriteEmbeddings in preprocessing/transforms.py):
vectors of the vocabulary's tokens from a GloVe source, and the matrix they fill."""

import collections
import posixpath

import apache_beam as beam

from preprocessing import counters
from preprocessing import glove
from preprocessing import outputs
from preprocessing import schema


def token_set(vocabulary):
    """The side input that GloVe lines are matched against: set lookups, not list scans."""
    return frozenset(vocabulary.tokens)


class ParseGloveLineFn(beam.DoFn):
    """GloVe text line -> (token, vector) for the tokens of the vocabulary. `source`
    (the --glove spec) is named by the error on a malformed line."""

    def __init__(self, dim, source=None):
        self._dim, self._source = dim, source
        self._fates = collections.Counter()

    def start_bundle(self):
        self._fates = collections.Counter()

    def process(self, line, vocabulary_set):
        self._fates[counters.GLOVE_LINES_READ] += 1
        pair = glove.parse_line(line, self._dim, vocabulary_set, self._source)
        if pair is not None:
            self._fates[counters.GLOVE_LINES_MATCHED] += 1
            yield pair

    def finish_bundle(self):
        # Counted per bundle: a counter call per line would cost more than parsing it.
        counters.add_all(self._fates)


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
