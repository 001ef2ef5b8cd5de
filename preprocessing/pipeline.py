"""The Beam job: Sentiment140 CSVs -> TFRecords + vocabulary + GloVe matrix + metadata.

Shape of the graph (each name is a composite transform or step label below):

  ReadLines -> ParseRows --(dead letter)--------------------------> Rejected
                  |
            BatchAndStandardize --(empty after standardizing)-----> Rejected
                  |
     +------------+------------------+--------------------+
  CountTokens   EncodeExamples     CountRows          (train tokens)
     |            |  train/val/test   |
  BuildVocab    WriteTFRecords        |
     |   \\--> JoinGlove -> WriteEmbeddings
  WriteVocab                          |
     +------------------> WriteMetadata (side inputs: everything above; runs last)

Rows travel in batches after parsing so that TensorFlow and the per-element costs of
the runner are paid per few thousand tweets, not per tweet.
"""

import collections
import json
import posixpath
import typing

import apache_beam as beam
import numpy as np
from absl import logging
from apache_beam.io.filesystems import FileSystems

from preprocessing import beam_options
from preprocessing import glove
from preprocessing import metadata as metadata_lib
from preprocessing import outputs
from preprocessing import rows
from preprocessing import schema
from preprocessing import vocab as vocab_lib


class RowBatch(typing.NamedTuple):
    rows: typing.List[rows.Row]
    standardized: typing.List[str]  # standardized text of rows[i]


class SumCounters(beam.CombineFn):
    """Adds up collections.Counter values (token counts, row counts, histograms)."""

    def create_accumulator(self):
        return collections.Counter()

    def add_input(self, accumulator, counter):
        accumulator.update(counter)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = collections.Counter()
        for accumulator in accumulators:
            merged.update(accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


class StandardizeBatch(beam.DoFn):
    """Runs the TF standardizer once per batch; rows left with no token are rejected
    (a fully padded row would make cuDNN recurrent layers fail in the trainer)."""

    REJECTED = "rejected"

    def process(self, batch):
        from preprocessing import text  # imports TensorFlow: only on workers that need it

        standardized = text.standardize_batch([row.text for row in batch])
        kept_rows, kept_texts = [], []
        for row, clean in zip(batch, standardized):
            if clean:
                kept_rows.append(row)
                kept_texts.append(clean)
            else:
                yield beam.pvalue.TaggedOutput(
                    self.REJECTED,
                    rows.Rejection(
                        row.source,
                        row.line,
                        rows.EMPTY_AFTER_STANDARDIZE,
                        "no token is left after standardizing the text",
                        row.text,
                    ),
                )
        if kept_rows:
            yield RowBatch(kept_rows, kept_texts)


def train_token_counts(batch):
    counts = collections.Counter()
    for row, clean in zip(batch.rows, batch.standardized):
        if row.split == "train":
            counts.update(clean.split(" "))
    return counts


def row_counts(batch, max_length):
    """Counter of kept rows by split and label, neutral skips, and train lengths."""
    counts = collections.Counter()
    for row, clean in zip(batch.rows, batch.standardized):
        if row.split is None:
            counts["skipped_neutral"] += 1
            continue
        counts[f"rows/{row.split}/{row.label}"] += 1
        if row.split == "train":
            length = clean.count(" ") + 1
            counts[f"train_length/{length}"] += 1
            counts["train_truncated"] += length > max_length
    return counts


class EncodeExamples(beam.DoFn):
    """Token ids (post-padded, post-truncated) -> serialized tf.train.Example per split."""

    def __init__(self, max_length):
        self._max_length = max_length
        self._lookup = None
        self._lookup_of = None

    def _ids(self, vocabulary):
        # The side input is the same object for a whole bundle; build the dict once.
        if self._lookup_of is not vocabulary:
            self._lookup = {token: index for index, token in enumerate(vocabulary.tokens)}
            self._lookup_of = vocabulary
        return self._lookup

    def process(self, batch, vocabulary):
        import tensorflow as tf

        lookup = self._ids(vocabulary)
        feature, int64s, bytes_list = tf.train.Feature, tf.train.Int64List, tf.train.BytesList
        padding = [schema.PAD_ID] * self._max_length
        for row, clean in zip(batch.rows, batch.standardized):
            if row.split is None:
                continue
            ids = [lookup.get(token, schema.UNK_ID) for token in clean.split(" ")[: self._max_length]]
            ids += padding[: self._max_length - len(ids)]
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        schema.TOKEN_IDS: feature(int64_list=int64s(value=ids)),
                        schema.LABEL: feature(int64_list=int64s(value=[row.label])),
                        schema.TWEET_ID: feature(int64_list=int64s(value=[row.tweet_id])),
                        schema.TEXT: feature(bytes_list=bytes_list(value=[clean.encode("utf-8")])),
                    }
                )
            )
            yield beam.pvalue.TaggedOutput(row.split, example.SerializeToString())


class ParseGloveLines(beam.DoFn):
    def __init__(self, dim):
        self._dim = dim

    def process(self, line, vocabulary_set):
        pair = glove.parse_line(line, self._dim, vocabulary_set)
        if pair is not None:
            yield pair


class JoinGlove(beam.PTransform):
    """(token, vector) pairs for the vocabulary tokens that the GloVe source has."""

    def __init__(self, spec, dim, vocabulary):
        super().__init__()
        self._spec, self._dim, self._vocabulary = spec, dim, vocabulary

    def expand(self, pbegin):
        vocabulary_set = beam.pvalue.AsSingleton(
            self._vocabulary | "VocabSet" >> beam.Map(lambda v: frozenset(v.tokens))
        )
        kind = glove.kind_of(self._spec)
        if kind == "kumo":
            return (
                pbegin
                | "KumoPackage" >> beam.Create([None])
                | "KumoVectors" >> beam.FlatMap(lambda _, words: glove.kumo_pairs(words), vocabulary_set)
            )
        if kind == "zip":
            lines = (
                pbegin
                | "ZipArchive" >> beam.Create([self._spec])
                | "ZipLines" >> beam.FlatMap(glove.read_zip_lines)
            )
        else:  # plain or gzipped text: Beam splits plain text across workers
            lines = pbegin | "GloveLines" >> beam.io.ReadFromText(self._spec)
        return lines | "ParseGlove" >> beam.ParDo(ParseGloveLines(self._dim), vocabulary_set)


def _rejection_from_dead_letter(dead_letter):
    raw, (_, exception_repr, _) = dead_letter
    reason, detail = rows.split_reason(exception_repr)
    return rows.Rejection(raw.source, raw.line, reason, detail, raw.text)


def _rejection_json(rejection):
    return json.dumps(rejection._asdict(), sort_keys=True, ensure_ascii=False)


def build(pipeline, cfg, input_files, glove_dim, pipeline_options_for_metadata):
    """Adds the whole job to `pipeline`. `input_files` is a list of (path, role)."""
    out = cfg.output_dir
    lines = (
        pipeline
        | "ListInputs" >> beam.Create(input_files)
        | "SpreadInputs" >> beam.Reshuffle()
        | "ReadLines" >> beam.FlatMapTuple(rows.read_lines)
    )
    parsed, parse_failures = lines | "ParseRows" >> beam.Map(
        rows.parse_row, cfg.val_fraction
    ).with_exception_handling(exc_class=rows.RowRejected)

    standardized = (
        parsed
        | "Batch" >> beam.BatchElements(min_batch_size=cfg.batch_size, max_batch_size=cfg.batch_size)
        | "SpreadBatches" >> beam.Reshuffle()  # one big file is read by one worker
        | "Standardize"
        >> beam.ParDo(StandardizeBatch()).with_outputs(StandardizeBatch.REJECTED, main="batches")
    )
    batches = standardized.batches

    rejected = (
        parse_failures | "DeadLetterToRejection" >> beam.Map(_rejection_from_dead_letter),
        standardized[StandardizeBatch.REJECTED],
    ) | "AllRejected" >> beam.Flatten()
    rejected_files = (
        rejected
        | "RejectedToJson" >> beam.Map(_rejection_json)
        | "WriteRejected"
        >> beam.io.WriteToText(
            posixpath.join(out, schema.REJECTED_DIR, "rejected"), file_name_suffix=".jsonl", num_shards=1
        )
    )

    counts = (
        batches | "CountRows" >> beam.Map(row_counts, cfg.max_length),
        rejected | "CountRejected" >> beam.Map(lambda r: collections.Counter({f"rejected/{r.reason}": 1})),
    ) | "AllCounts" >> beam.Flatten() | "SumCounts" >> beam.CombineGlobally(SumCounters())

    vocabulary = (
        batches
        | "CountTokens" >> beam.Map(train_token_counts)
        | "SumTokens" >> beam.CombineGlobally(SumCounters())
        | "BuildVocab"
        >> beam.Map(vocab_lib.build_vocabulary, vocab_size=cfg.vocab_size, min_count=cfg.min_count)
    )
    vocab_file = vocabulary | "WriteVocab" >> beam.Map(
        lambda v: outputs.write_text(posixpath.join(out, schema.VOCAB_FILE), vocab_lib.vocab_file_text(v))
    )

    embedding = (
        pipeline
        | "JoinGlove" >> JoinGlove(cfg.glove, glove_dim, vocabulary)
        | "GloveToDict" >> beam.combiners.ToDict()
        | "WriteEmbeddings"
        >> beam.Map(
            _write_embeddings, beam.pvalue.AsSingleton(vocabulary), glove_dim, posixpath.join(out, schema.EMBEDDINGS_FILE)
        )
    )

    encoded = batches | "EncodeExamples" >> beam.ParDo(
        EncodeExamples(cfg.max_length), beam.pvalue.AsSingleton(vocabulary)
    ).with_outputs(*schema.SPLITS)
    split_files = {
        split: encoded[split]
        | f"Write_{split}"
        >> beam.io.WriteToTFRecord(
            posixpath.join(out, split, "part"),
            file_name_suffix=schema.TFRECORD_SUFFIX,
            num_shards=cfg.num_shards,
        )
        for split in schema.SPLITS
    }

    # Runs only after every side input exists, i.e. after all files above are final.
    _ = (
        pipeline
        | "MetadataTrigger" >> beam.Create([None])
        | "WriteMetadata"
        >> beam.Map(
            _write_metadata,
            cfg=cfg,
            input_files=input_files,
            pipeline_options=pipeline_options_for_metadata,
            counts=beam.pvalue.AsSingleton(counts),
            vocabulary=beam.pvalue.AsSingleton(vocabulary),
            embedding=beam.pvalue.AsSingleton(embedding),
            **{f"{split}_files": beam.pvalue.AsList(files) for split, files in split_files.items()},
            rejected_files=beam.pvalue.AsList(rejected_files),
            vocab_file=beam.pvalue.AsSingleton(vocab_file),
        )
    )


def _write_embeddings(found, vocabulary, dim, path):
    matrix, coverage = glove.assemble(vocabulary, found, dim)
    outputs.write_npy(path, matrix)
    return {"dim": dim, **coverage}


def _write_metadata(_, *, cfg, input_files, pipeline_options, counts, vocabulary, embedding, train_files,
                    val_files, test_files, rejected_files, vocab_file):
    del vocab_file  # a side input only so that this step waits for vocab.txt
    written = {"train": list(train_files), "val": list(val_files), "test": list(test_files)}
    metadata = metadata_lib.build_metadata(
        cfg=cfg,
        counts=counts,
        vocabulary=vocabulary,
        embedding=embedding,
        input_files=input_files,
        split_files=written,
        rejected_files=list(rejected_files),
        pipeline_options=pipeline_options,
    )
    metadata_lib.check_error_rate(metadata, cfg.max_error_rate)
    outputs.write_text(posixpath.join(cfg.output_dir, schema.METADATA_FILE), metadata_lib.to_json(metadata))
    return metadata


def expand_inputs(cfg):
    """[(path, role)] for every file the globs match; fails early on a glob matching
    nothing, since an empty input would otherwise produce an empty, valid-looking job."""
    files = []
    for role, patterns in (("train", cfg.train_csv), ("test", cfg.test_csv)):
        for pattern in patterns:
            matched = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
            if not matched:
                raise FileNotFoundError(
                    f"Expected --{role}_csv {pattern!r} to match at least one file. Received no match."
                )
            files.extend((path, role) for path in matched)
    return files


def preprocess(cfg, beam_args=()):
    """Runs the job to completion; returns the metadata it wrote.

    Args:
      cfg: a config.PreprocessConfig.
      beam_args: Beam pipeline options as command-line strings (--runner, --project, ...).
    """
    options = beam_options.strict_pipeline_options(beam_args)
    input_files = expand_inputs(cfg)
    glove_dim = glove.infer_dim(cfg.glove)
    outputs.prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite)
    logging.info("Preprocessing %d input files into %s (GloVe %s, dim %d)",
                 len(input_files), cfg.output_dir, cfg.glove, glove_dim)
    visible_options = options.get_all_options(drop_default=True)
    with beam.Pipeline(runner=beam_options.runner_for(options), options=options) as pipeline:
        build(pipeline, cfg, input_files, glove_dim, visible_options)
    with FileSystems.open(posixpath.join(cfg.output_dir, schema.METADATA_FILE)) as handle:
        return json.loads(handle.read().decode("utf-8"))


def load_embeddings(path):
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return np.load(handle)
