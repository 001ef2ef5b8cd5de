r"""The Beam job: Sentiment140 CSVs -> TFRecords + vocabulary + GloVe matrix + metadata.

Shape of the graph (each name is a composite transform or step label below):

  ReadLines (batches of lines) -> ParseAndStandardize --(bad rows)--> WriteRejected
                                        |
           +----------------------------+---------------------+
      CountTokens (train)          EncodeExamples          CountRows
           |                      GroupShards (split, shard)    |
      BuildVocab --side input-->  WriteShards                   |
        |      \--> JoinGlove -> WriteEmbeddings               |
     WriteVocab                        |                        |
        +---------------> WriteMetadata (side inputs: everything above; runs last)

Rows travel in batches of a few thousand from the moment they are read, so that
TensorFlow and the runner's per-element costs are paid per batch, not per tweet.
"""

import collections
import json
import os
import posixpath
import tempfile
import typing

import apache_beam as beam
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
    """Parsed, standardized rows as columns (see rows.LineBatch for why columns)."""

    splits: typing.List[typing.Optional[str]]  # None: a neutral test row, counted only
    tweet_ids: typing.List[int]
    labels: typing.List[typing.Optional[int]]
    standardized: typing.List[str]


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


class ParseAndStandardize(beam.DoFn):
    """LineBatch -> RowBatch of the usable rows; every other row goes to REJECTED with
    its reason. Rows left with no token are rejected too: a fully padded row would make
    cuDNN recurrent layers fail in the trainer.

    This loop, not Beam's `with_exception_handling`, catches RowRejected: the wrapper
    works per element, and per-element overhead was the largest cost of the job at 1.6M
    tweets (docs/benchmarks.md). Any other exception is a bug and fails the job."""

    REJECTED = "rejected"

    def __init__(self, val_fraction):
        self._val_fraction = val_fraction

    def process(self, line_batch):
        from preprocessing import text  # imports TensorFlow: only on workers that need it

        parsed = []
        for raw in line_batch.raw_lines():
            try:
                parsed.append(rows.parse_row(raw, self._val_fraction))
            except rows.RowRejected as rejected:
                yield beam.pvalue.TaggedOutput(
                    self.REJECTED, rows.Rejection(raw.source, raw.line, rejected.reason, rejected.detail, raw.text)
                )
        batch = RowBatch([], [], [], [])
        for row, clean in zip(parsed, text.standardize_batch([row.text for row in parsed])):
            if not clean:
                yield beam.pvalue.TaggedOutput(
                    self.REJECTED,
                    rows.Rejection(row.source, row.line, rows.EMPTY_AFTER_STANDARDIZE,
                                   "no token is left after standardizing the text", row.text),
                )
                continue
            batch.splits.append(row.split)
            batch.tweet_ids.append(row.tweet_id)
            batch.labels.append(row.label)
            batch.standardized.append(clean)
        if batch.splits:
            yield batch


def train_token_counts(batch):
    counts = collections.Counter()
    for split, clean in zip(batch.splits, batch.standardized):
        if split == "train":
            counts.update(clean.split(" "))
    return counts


def row_counts(batch, max_length):
    """Counter of kept rows by split and label, neutral skips, and train lengths."""
    counts = collections.Counter()
    for split, label, clean in zip(batch.splits, batch.labels, batch.standardized):
        if split is None:
            counts["skipped_neutral"] += 1
            continue
        counts[f"rows/{split}/{label}"] += 1
        if split == "train":
            length = clean.count(" ") + 1
            counts[f"train_length/{length}"] += 1
            counts["train_truncated"] += length > max_length
    return counts


class EncodeExamples(beam.DoFn):
    """RowBatch -> ((split, shard), [serialized tf.train.Example]) per shard it touches.

    Token ids are post-padded and post-truncated to max_length. The shard is
    tweet_id % num_shards, so shards are balanced and their membership is stable."""

    def __init__(self, max_length, num_shards):
        self._max_length = max_length
        self._num_shards = num_shards
        self._table = None
        self._table_of = None

    def _lookup_table(self, vocabulary):
        import tensorflow as tf

        # The side input is the same object for a whole bundle; build the table once.
        if self._table_of is not vocabulary:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocabulary.tokens), tf.range(len(vocabulary.tokens), dtype=tf.int64)
                ),
                default_value=schema.UNK_ID,
            )
            self._table_of = vocabulary
        return self._table

    def process(self, batch, vocabulary):
        import tensorflow as tf

        # One vectorized lookup for the whole batch; to_tensor post-pads with PAD_ID and
        # post-truncates to max_length.
        token_ids = (
            self._lookup_table(vocabulary)
            .lookup(tf.strings.split(tf.constant(batch.standardized), sep=" "))
            .to_tensor(default_value=schema.PAD_ID, shape=[None, self._max_length])
            .numpy()
            .tolist()
        )
        shards = collections.defaultdict(list)
        for split, tweet_id, label, clean, ids in zip(
            batch.splits, batch.tweet_ids, batch.labels, batch.standardized, token_ids
        ):
            if split is None:
                continue
            # Filling a message in place is ~3x faster than nesting constructors.
            example = tf.train.Example()
            feature = example.features.feature
            feature[schema.TOKEN_IDS].int64_list.value.extend(ids)
            feature[schema.LABEL].int64_list.value.append(label)
            feature[schema.TWEET_ID].int64_list.value.append(tweet_id)
            feature[schema.TEXT].bytes_list.value.append(clean.encode("utf-8"))
            shards[(split, tweet_id % self._num_shards)].append(example.SerializeToString())
        yield from shards.items()


def write_shard(keyed_records, output_dir, num_shards):
    """Writes one GZIP TFRecord shard from its groups of records; returns (split, path).

    Beam's WriteToTFRecord with a fixed shard count shuffles every record on its own;
    grouping whole lists of records per shard moves the same bytes as a few thousand
    elements instead of millions. The shard is framed by TensorFlow's writer into a
    local file, then copied through Beam's FileSystems (local or gs://, like every other
    output of the job) under a temporary name and renamed, so a retried or interrupted
    worker never leaves a partial shard under the final name."""
    import tensorflow as tf

    (split, shard), groups = keyed_records
    path = posixpath.join(output_dir, split, f"part-{shard:05d}-of-{num_shards:05d}{schema.TFRECORD_SUFFIX}")
    # zlib level 1 writes ~2.7x faster than the default level 6 for files ~12% larger.
    options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)
    with tempfile.TemporaryDirectory(prefix="s140-shard-") as local_dir:
        local_path = os.path.join(local_dir, posixpath.basename(path))
        with tf.io.TFRecordWriter(local_path, options=options) as writer:
            for records in groups:
                for record in records:
                    writer.write(record)
        outputs.copy_local_file(local_path, path)
    return split, path


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


def _rejection_json(rejection):
    return json.dumps(rejection._asdict(), sort_keys=True, ensure_ascii=False)


def build(pipeline, cfg, input_files, glove_dim, pipeline_options_for_metadata):
    """Adds the whole job to `pipeline`. `input_files` is a list of (path, role)."""
    out = cfg.output_dir
    parsed = (
        pipeline
        | "ListInputs" >> beam.Create(input_files)
        | "SpreadInputs" >> beam.Reshuffle()
        | "ReadLines" >> beam.FlatMap(lambda source: rows.read_line_batches(*source, cfg.batch_size))
        | "SpreadBatches" >> beam.Reshuffle()  # one big file is read by one worker
        | "ParseAndStandardize"
        >> beam.ParDo(ParseAndStandardize(cfg.val_fraction)).with_outputs(
            ParseAndStandardize.REJECTED, main="batches"
        )
    )
    batches, rejected = parsed.batches, parsed[ParseAndStandardize.REJECTED]
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

    shards = (
        batches
        | "EncodeExamples"
        >> beam.ParDo(EncodeExamples(cfg.max_length, cfg.num_shards), beam.pvalue.AsSingleton(vocabulary))
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(write_shard, out, cfg.num_shards)
    )
    split_files = {
        split: shards | f"FilesOf_{split}" >> beam.FlatMap(lambda written, want=split: [written[1]] if written[0] == want else [])
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
