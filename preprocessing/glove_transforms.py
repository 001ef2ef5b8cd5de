"""The Beam job's GloVe stages as composite transforms (preprocessing/pipeline.py wires
them beside preprocessing/transforms.py's): the vocabulary's vectors from a GloVe
source, and the matrix they fill. The work per element is in embedding.py."""

import posixpath

import apache_beam as beam

from preprocessing import embedding
from preprocessing import glove
from preprocessing import schema


class JoinGlove(beam.PTransform):
    """Vocabulary -> (token, vector) pairs for the vocabulary tokens that the GloVe
    source `spec` (see glove.kind_of) has: the first copy of a token repeated in the file,
    and a failed job, naming the lines, when a token's vector holds nan or inf. The file is
    read by one worker, in order (glove.read_numbered_lines); only the vocabulary's lines
    are parsed, so that costs little beside the job (`bench/preprocess_bench.py`)."""

    def __init__(self, spec, dim):
        super().__init__()
        self._spec, self._dim = spec, dim

    def expand(self, vocabulary):
        vocabulary_set = beam.pvalue.AsSingleton(vocabulary | "VocabSet" >> beam.Map(embedding.token_set))
        pbegin = beam.pvalue.PBegin(vocabulary.pipeline)
        kind = glove.kind_of(self._spec)
        if kind == "kumo":
            return (
                pbegin
                | "KumoPackage" >> beam.Create([None])
                | "KumoVectors" >> beam.ParDo(embedding.KumoVectorsFn(), vocabulary_set)
            )
        parsed = (
            pbegin
            | "GloveFile" >> beam.Create([self._spec])
            | "GloveLines" >> beam.FlatMap(glove.read_numbered_lines)
            | "ParseGlove" >> beam.ParDo(embedding.ParseGloveLineFn(self._dim, self._spec), vocabulary_set)
            .with_outputs(embedding.NON_FINITE, main="vectors")
        )
        return (
            parsed.vectors
            | "ByToken" >> beam.GroupByKey()
            | "FirstCopy" >> beam.Map(embedding.first_copy, beam.pvalue.AsList(parsed[embedding.NON_FINITE]), self._spec)
        )


class WriteEmbeddings(beam.PTransform):
    """(token, vector) pairs -> one dict of embedding statistics, once embeddings.npy
    (row i = vector of token i of `vocabulary`, a singleton PCollection) is written."""

    def __init__(self, output_dir, dim, vocabulary):
        super().__init__()
        self._path = posixpath.join(output_dir, schema.EMBEDDINGS_FILE)
        self._dim, self._vocabulary = dim, vocabulary

    def expand(self, pairs):
        return (
            pairs
            | "GloveToDict" >> beam.combiners.ToDict()
            | "WriteMatrix"
            >> beam.Map(embedding.write_embeddings, beam.pvalue.AsSingleton(self._vocabulary), self._dim, self._path)
        )
