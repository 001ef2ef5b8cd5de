"""The Beam job's stages as composite transforms; preprocessing/pipeline.py wires them.

Each composite takes and returns PCollections of plain values (LineBatch, RowBatch,
Rejection, Vocabulary, file paths), so each one is tested alone on a few rows. The work
per batch lives in small DoFns (`...Fn`) and plain functions: the row stages' here, the
examples' in examples.py. The GloVe composites are in glove_transforms.py. No stage needs TensorFlow:
the standardizer runs as its pure-Python mirror (text_mirror.py) where one is proven,
and only otherwise imports TensorFlow, on the worker that needs it.

Rows travel in batches of a few thousand from the moment they are read, so that
TensorFlow and the runner's per-element costs are paid per batch, not per tweet.
"""

import collections
import functools
import json
import posixpath
import typing

import apache_beam as beam
from absl import logging

from common import standardizers
from preprocessing import batch_coder
from preprocessing import counters
from preprocessing import examples
from preprocessing import metadata as metadata_lib
from preprocessing import outputs
from preprocessing import rows
from preprocessing import schema
from preprocessing import text_mirror
from preprocessing import vocab as vocab_lib


class RowBatch(typing.NamedTuple):
    """Parsed, standardized rows as columns (see rows.LineBatch for why columns)."""

    splits: typing.List[typing.Optional[str]]  # None: a neutral test row, counted only
    tweet_ids: typing.List[int]
    labels: typing.List[typing.Optional[int]]
    standardized: typing.List[str]
    # Where the rows are (one file and its line numbers), kept only when asked for:
    # duplicates.DropLaterCopies needs them.
    source: typing.Optional[str] = None
    lines: typing.Optional[typing.List[int]] = None


batch_coder.register(rows.LineBatch, RowBatch)


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


class ReadLinesFn(beam.DoFn):
    """(path, role) -> LineBatches of that file's non-blank lines; counts rows read."""

    def __init__(self, batch_size):
        self._batch_size = batch_size

    def process(self, source):
        path, role, encoding = rows.InputFile(*source)
        progress = counters.Progress(f"ReadRows {path}")
        for line_batch in rows.read_line_batches(path, role, self._batch_size, encoding):
            counters.add(counters.ROWS_READ, len(line_batch.texts))
            progress.add(len(line_batch.texts), f"line {line_batch.numbers[-1]}")
            yield line_batch
        logging.info("ReadRows: read %d rows of %s (%s)", progress.rows, path, encoding)


class ReadRows(beam.PTransform):
    """PBegin -> LineBatches of every input file, spread over the workers.

    `input_files` is a list of rows.InputFile (or (path, role): encoding "auto")."""

    def __init__(self, input_files, batch_size):
        super().__init__()
        self._input_files, self._batch_size = list(input_files), batch_size

    def expand(self, pbegin):
        return (
            pbegin
            | "ListInputs" >> beam.Create(self._input_files)
            | "SpreadInputs" >> beam.Reshuffle()
            | "ReadLines" >> beam.ParDo(ReadLinesFn(self._batch_size)).with_output_types(rows.LineBatch)
            | "SpreadBatches" >> beam.Reshuffle()  # one big file is read by one worker
        )


def _tensorflow_standardize_batch(texts, standardizer):
    from preprocessing import text  # imports TensorFlow: only on workers that need it

    return text.standardize_batch(texts, standardizer=standardizer)


class ParseAndStandardizeFn(beam.DoFn):
    """LineBatch -> RowBatch of the usable rows; every other row goes to REJECTED with
    its reason. Rows left with no token are rejected too: a fully padded row would make
    cuDNN recurrent layers fail in the trainer.

    This loop, not Beam's `with_exception_handling`, catches RowRejected: the wrapper
    works per element, and per-element overhead was the largest cost of the job at 1.6M
    tweets (docs/benchmarks-history.md). Any other exception is a bug and fails the job."""

    REJECTED = "rejected"

    def __init__(self, val_fraction, keep_positions=False, standardizer=standardizers.DEFAULT_STANDARDIZER):
        self._val_fraction, self._keep_positions = val_fraction, keep_positions
        self._standardizer = standardizer  # a name of standardizers.STANDARDIZER_NAMES
        self._standardize_batch = None
        self._progress = None

    def setup(self):
        name, version = self._standardizer, standardizers.STANDARDIZER_VERSIONS[self._standardizer]
        with_tensorflow = functools.partial(_tensorflow_standardize_batch, standardizer=name)
        mirror = text_mirror.mirror_for(name, version)
        if mirror is None:
            logging.info("Standardizer %s v%s runs with TensorFlow here (no pure-Python mirror proven for it "
                         "under this Python and TensorFlow)", name, version)
            self._standardize_batch = with_tensorflow
        else:
            # The mirror keeps TensorFlow out of this worker process (memory, start-up);
            # the rare tweet it cannot prove equal goes to TensorFlow.
            self._standardize_batch = functools.partial(mirror, fallback=with_tensorflow)
        self._progress = counters.Progress("ParseAndStandardize on this worker")

    def process(self, line_batch):
        parsed, fates = [], collections.Counter()
        for raw in line_batch.raw_lines():
            try:
                parsed.append(rows.parse_row(raw, self._val_fraction))
            except rows.RowRejected as rejected:
                fates[counters.rejected(rejected.reason)] += 1
                yield beam.pvalue.TaggedOutput(
                    self.REJECTED, rows.Rejection(raw.source, raw.line, rejected.reason, rejected.detail, raw.text)
                )
        batch = RowBatch([], [], [], [], *((line_batch.source, []) if self._keep_positions else ()))
        for row, clean in zip(parsed, self._standardize_batch([row.text for row in parsed])):
            if not clean:
                fates[counters.rejected(rows.EMPTY_AFTER_STANDARDIZE)] += 1
                yield beam.pvalue.TaggedOutput(
                    self.REJECTED,
                    rows.Rejection(row.source, row.line, rows.EMPTY_AFTER_STANDARDIZE,
                                   "no token is left after standardizing the text", row.text),
                )
                continue
            fates[counters.kept(row.split) if row.split else counters.SKIPPED_NEUTRAL] += 1
            batch.splits.append(row.split)
            batch.tweet_ids.append(row.tweet_id)
            batch.labels.append(row.label)
            batch.standardized.append(clean)
            if self._keep_positions:
                batch.lines.append(row.line)
        counters.add_all(fates)
        self._progress.add(len(line_batch.texts), f"{line_batch.source} line {line_batch.numbers[-1]}")
        if batch.splits:
            yield batch


def _same(value):
    return value


class ParseAndStandardize(beam.PTransform):
    """LineBatches -> (RowBatches of usable rows, Rejections of all the others).
    With keep_positions the RowBatches carry their source and line numbers; `standardizer`
    names one of text.STANDARDIZERS."""

    def __init__(self, val_fraction, keep_positions=False, standardizer=standardizers.DEFAULT_STANDARDIZER):
        super().__init__()
        self._val_fraction, self._keep_positions = val_fraction, keep_positions
        self._standardizer = standardizer

    def expand(self, line_batches):
        parsed = line_batches | "ParseRows" >> beam.ParDo(
            ParseAndStandardizeFn(self._val_fraction, self._keep_positions, self._standardizer)
        ).with_outputs(ParseAndStandardizeFn.REJECTED, main="batches")
        # Typed, so that the batches that wait for the vocabulary travel compressed.
        batches = parsed.batches | "TypeBatches" >> beam.Map(_same).with_output_types(RowBatch)
        return batches, parsed[ParseAndStandardizeFn.REJECTED]


def row_counts(batch, max_length):
    """Counter of kept rows by split and label, neutral skips, and train lengths."""
    counts = collections.Counter(
        f"rows/{split}/{label}" if split else "skipped_neutral" for split, label in zip(batch.splits, batch.labels)
    )
    # A token per space plus one: the standardizer leaves single spaces between tokens.
    lengths = collections.Counter(
        clean.count(" ") + 1 for split, clean in zip(batch.splits, batch.standardized) if split == "train"
    )
    for length, rows_of_length in lengths.items():
        counts[f"train_length/{length}"] += rows_of_length
        if length > max_length:
            counts["train_truncated"] += rows_of_length
    return counts


def rejection_counts(rejection):
    return collections.Counter({f"rejected/{rejection.reason}": 1})


class CountRows(beam.PTransform):
    """(RowBatches, Rejections) -> one Counter of every row's fate, the counts that
    metadata.json reports (see metadata.build_metadata)."""

    def __init__(self, max_length):
        super().__init__()
        self._max_length = max_length

    def expand(self, batches_and_rejected):
        batches, rejected = batches_and_rejected
        return (
            (
                batches | "CountKept" >> beam.Map(row_counts, self._max_length),
                rejected | "CountRejected" >> beam.Map(rejection_counts),
            )
            | "AllCounts" >> beam.Flatten()
            | "SumCounts" >> beam.CombineGlobally(SumCounters())
        )


def train_token_counts(batch):
    # One split of the joined texts counts in C what a split per tweet did in Python.
    train_texts = [clean for split, clean in zip(batch.splits, batch.standardized) if split == "train"]
    return collections.Counter(" ".join(train_texts).split(" ")) if train_texts else collections.Counter()


class BuildVocabulary(beam.PTransform):
    """RowBatches -> one Vocabulary, from the tokens of the train split only."""

    def __init__(self, vocab_size, min_count):
        super().__init__()
        self._vocab_size, self._min_count = vocab_size, min_count

    def expand(self, batches):
        return (
            batches
            | "CountTokens" >> beam.Map(train_token_counts)
            | "SumTokens" >> beam.CombineGlobally(SumCounters())
            | "Vocabulary"
            >> beam.Map(vocab_lib.build_vocabulary, vocab_size=self._vocab_size, min_count=self._min_count)
        )


def write_vocabulary(vocabulary, output_dir):
    """Writes vocab.txt; returns its path."""
    return outputs.write_text(posixpath.join(output_dir, schema.VOCAB_FILE), vocab_lib.vocab_file_text(vocabulary))


def paths_of_split(written, split):
    """[path] if the written (split, path) is one of `split`'s shards, else []."""
    return [written[1]] if written[0] == split else []


class WriteExamples(beam.PTransform):
    """RowBatches -> {split: PCollection of the paths of its TFRecord shards}.

    Token ids come from `vocabulary` (a singleton PCollection)."""

    def __init__(self, output_dir, max_length, num_shards, vocabulary):
        super().__init__()
        self._output_dir, self._max_length, self._num_shards = output_dir, max_length, num_shards
        self._vocabulary = vocabulary

    def expand(self, batches):
        shards = (
            batches
            | "EncodeExamples"
            >> beam.ParDo(
                examples.EncodeExamplesFn(self._max_length, self._num_shards),
                beam.pvalue.AsSingleton(self._vocabulary),
            ).with_output_types(typing.Tuple[typing.Tuple[str, int], bytes])
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(examples.WriteShardFn(self._output_dir, self._num_shards))
        )
        return {
            split: shards | f"FilesOf{split.capitalize()}" >> beam.FlatMap(paths_of_split, split)
            for split in schema.SPLITS
        }


def rejection_json(rejection):
    return json.dumps(rejection._asdict(), sort_keys=True, ensure_ascii=False)


class WriteRejected(beam.PTransform):
    """Rejections -> the path of rejected/rejected-*.jsonl, one JSON object a line."""

    def __init__(self, output_dir):
        super().__init__()
        self._prefix = posixpath.join(output_dir, schema.REJECTED_DIR, "rejected")

    def expand(self, rejected):
        return (
            rejected
            | "RejectedToJson" >> beam.Map(rejection_json)
            | "WriteJsonLines" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl", num_shards=1)
        )


class WriteMetadata(beam.PTransform):
    """{name: PCollection} of everything the job wrote -> the metadata it recorded.

    Every input is a side input of the one writing step, so metadata.json is written
    only after all other files are final: its presence means the directory is complete.
    Singletons: counts, vocabulary, embedding, vocab_file, duplicates; lists: train, val, test
    (shard paths) and rejected_files."""

    def __init__(self, cfg, input_files, pipeline_options):
        super().__init__()
        self._cfg, self._input_files, self._pipeline_options = cfg, list(input_files), pipeline_options

    def expand(self, written):
        singletons = ("counts", "vocabulary", "embedding", "vocab_file", "duplicates")
        side_inputs = {
            name: (beam.pvalue.AsSingleton if name in singletons else beam.pvalue.AsList)(collection)
            for name, collection in written.items()
        }
        return (
            beam.pvalue.PBegin(written["counts"].pipeline)
            | "Trigger" >> beam.Create([None])
            | "WriteJson"
            >> beam.Map(
                metadata_lib.write_metadata,
                cfg=self._cfg,
                input_files=self._input_files,
                pipeline_options=self._pipeline_options,
                **side_inputs,
            )
        )
