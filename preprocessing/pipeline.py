r"""The Beam job: Sentiment140 CSVs -> TFRecords + vocabulary + GloVe matrix + metadata.

Shape of the graph (each name is a composite in preprocessing/transforms.py):

  ReadRows -> ParseAndStandardize --(rejected rows)--> WriteRejected ------------+
                   | (row batches)                                             |
      +------------+---------------------+---------------------+               |
  BuildVocabulary          WriteExamples (vocabulary side input)   CountRows   |
      |   \--> JoinGlove -> WriteEmbeddings       |                    |       |
  WriteVocabulary               |                 |                    |       |
      +-------------------------+-----> WriteMetadata (side inputs: all of the above; runs last)

CountDuplicateIds counts repeated tweet ids for metadata.json; with
--drop_duplicate_ids, DropDuplicateIds (preprocessing/duplicates.py) turns the later copies
into rejections right after ParseAndStandardize, before anything else sees the rows.

Beam Metrics counters (preprocessing/counters.py) count the rows and GloVe lines as the
job runs; they are logged when it ends. metadata.json is the record.
"""

import json
import posixpath
import time
import typing

import apache_beam as beam
from absl import logging
from apache_beam.io.filesystems import FileSystems

from common import dir_lock
from common import errors
from common import standardizers
from preprocessing import beam_adapter
from preprocessing import beam_options
from preprocessing import counters
from preprocessing import duplicates
from preprocessing import glove
from preprocessing import glove_transforms
from preprocessing import outputs
from preprocessing import rows
from preprocessing import schema
from preprocessing import transforms


def build(pipeline, cfg, input_files, glove_dim, pipeline_options_for_metadata):
    """Adds the whole job to `pipeline`. `input_files` is a list of rows.InputFile."""
    out = cfg.output_dir
    batches, rejected = (
        pipeline
        | "ReadRows" >> transforms.ReadRows(input_files, cfg.batch_size)
        | "ParseAndStandardize"
        >> transforms.ParseAndStandardize(cfg.val_fraction, cfg.drop_duplicate_ids, cfg.standardizer_name)
    )
    duplicate_ids = batches | "CountDuplicateIds" >> duplicates.CountDuplicateIds()
    if cfg.drop_duplicate_ids:
        batches, dropped = batches | "DropDuplicateIds" >> duplicates.DropLaterCopies(duplicate_ids)
        rejected = (rejected, dropped) | "AllRejected" >> beam.Flatten()
    vocabulary = batches | "BuildVocabulary" >> transforms.BuildVocabulary(cfg.vocab_size, cfg.min_count)
    embedding = (
        vocabulary
        | "JoinGlove" >> glove_transforms.JoinGlove(cfg.glove, glove_dim)
        | "WriteEmbeddings" >> glove_transforms.WriteEmbeddings(out, glove_dim, vocabulary)
    )
    split_files = batches | "WriteExamples" >> transforms.WriteExamples(
        out, cfg.max_length, cfg.num_shards, vocabulary
    )
    written = {
        "counts": (batches, rejected) | "CountRows" >> transforms.CountRows(cfg.max_length),
        "vocabulary": vocabulary,
        "vocab_file": vocabulary | "WriteVocabulary" >> beam.Map(transforms.write_vocabulary, out),
        "embedding": embedding,
        "duplicates": duplicate_ids,
        "rejected_files": rejected | "WriteRejected" >> transforms.WriteRejected(out),
        **split_files,
    }
    _ = written | "WriteMetadata" >> transforms.WriteMetadata(cfg, input_files, pipeline_options_for_metadata)


def expand_inputs(cfg):
    """[rows.InputFile] for every file the globs match, each once, with the encoding it
    is read with (cfg.encoding, "auto" decided per file here, before the job starts).

    Fails early on a glob matching nothing, since an empty input would otherwise produce
    an empty, valid-looking job, and on a file that is both training and test input.
    A file matched by two patterns of one flag (`data/*.csv` and `data/a.csv`) is read once.
    """
    roles = {}
    for role, patterns in (("train", cfg.train_csv), ("test", cfg.test_csv)):
        for pattern in patterns:
            matched = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
            if not matched:
                raise errors.MissingInput(
                    f"Expected --{role}_csv {pattern!r} to match at least one file. Received no match."
                )
            for path in matched:
                if roles.get(path, role) != role:
                    raise errors.SettingError(
                        f"Expected every input file to be either --train_csv or --test_csv. Received "
                        f"{path!r} as both (test rows would leak into training). Name it under one flag."
                    )
                if path in roles:
                    logging.info("--%s_csv %r matches %s again: reading it once", role, pattern, path)
                    continue
                roles[path] = role
    files = []
    for path, role in roles.items():
        encoding = rows.file_encoding(path, cfg.encoding)
        logging.info("Input %s (%s) is read as %s", path, role, encoding)
        files.append(rows.InputFile(path, role, encoding))
    return files


class Outcome(typing.NamedTuple):
    metadata: dict  # what the job wrote to metadata.json
    counters: typing.Dict[str, int]  # its Metrics counters (preprocessing/counters.py)


def run(cfg, beam_args=(), default_beam_args=()):
    """Runs the job to completion; returns its Outcome.

    Args:
      cfg: a config.PreprocessConfig.
      beam_args: Beam pipeline options as command-line strings (--runner, --project, ...),
        recorded in metadata.json.
      default_beam_args: options the command chose for this machine (see
        beam_options.local_parallelism); they change how fast, not what, the job writes,
        so they are logged rather than recorded.
    """
    options = beam_options.strict_pipeline_options(list(beam_args) + list(default_beam_args))
    visible_options = beam_options.strict_pipeline_options(beam_args).get_all_options(drop_default=True)
    if default_beam_args:
        logging.info("Beam options chosen for this machine: %s", " ".join(default_beam_args))
    started = time.monotonic()
    logging.info("Stage 1/3: checking the inputs, the GloVe source and %s", cfg.output_dir)
    input_files = expand_inputs(cfg)
    glove_dim = glove.infer_dim(cfg.glove)
    _log_standardizer(cfg)
    outputs.refuse_inputs_inside(cfg.output_dir, _input_paths(cfg, input_files))
    with dir_lock.holding(cfg.output_dir, command="s140-preprocess"):
        outputs.prepare_output_dir(cfg.output_dir, overwrite=cfg.overwrite)
        logging.info("Stage 2/3: the Beam job reads, parses and standardizes %d input files, builds the "
                     "vocabulary, joins GloVe %s (dim %d) and writes %s; workers log rows done every %gs",
                     len(input_files), cfg.glove, glove_dim, cfg.output_dir, counters.PROGRESS_SECONDS)
        # Leaving the block runs the job and waits for it; pipeline.result then has its metrics.
        # A local job's worker services listen on loopback only (on Dataflow the launcher
        # opens none of them).
        with beam_adapter.local_services_on_loopback():
            with beam.Pipeline(runner=beam_options.runner_for(options), options=options) as pipeline:
                build(pipeline, cfg, input_files, glove_dim, visible_options)
        final_counters = counters.final_values(pipeline.result)
        logging.info("Stage 3/3: the job ended after %.0fs; reading back %s", time.monotonic() - started,
                     schema.METADATA_FILE)
        logging.info("Counters of namespace %s: %s", counters.NAMESPACE,
                     ", ".join(f"{name}={value}" for name, value in final_counters.items()))
        with FileSystems.open(posixpath.join(cfg.output_dir, schema.METADATA_FILE)) as handle:
            metadata = json.loads(handle.read().decode("utf-8"))
        _warn_of_duplicates(metadata["duplicate_tweet_ids"], cfg.drop_duplicate_ids)
    _warn_of_a_thin_vocabulary(metadata, cfg)
    _warn_of_test_overlap(metadata)
    if final_counters.get(counters.GLOVE_DUPLICATES):
        logging.warning("--glove=%s lists %d vocabulary word(s) more than once: the first copy of each was used",
                        cfg.glove, final_counters[counters.GLOVE_DUPLICATES])
    return Outcome(metadata, final_counters)


def _input_paths(cfg, input_files):
    """The CSVs, and the GloVe file unless --glove names the built-in vectors."""
    return [f.path for f in input_files] + ([] if glove.kind_of(cfg.glove) == "kumo" else [cfg.glove])


def _log_standardizer(cfg):
    """Logs the standardizer of the job; warns when it is not the one the GloVe source's
    name calls for (an explicit --standardizer wins: the user may know better)."""
    suggested = standardizers.standardizer_for(cfg.glove)
    if cfg.standardizer_name == suggested:
        logging.info("Standardizer %s (%s)", cfg.standardizer_name,
                     "chosen by --standardizer" if cfg.standardizer else f"the one --glove={cfg.glove} calls for")
        return
    logging.warning(
        "--standardizer=%s, but --glove=%s calls for --standardizer=%s: the tokens of one are "
        "not the words of the other (<user>, <url>, <smile> ... are GloVe Twitter's), so fewer "
        "tokens get a GloVe vector (metadata.json: embedding.coverage_by_token). Using %s as told.",
        cfg.standardizer_name, cfg.glove, suggested, cfg.standardizer_name,
    )


# Below this share of the training tokens in the vocabulary (and in GloVe) a model sees
# mostly [UNK]; the sample's defaults give about 95%.
THIN_COVERAGE = 0.5


def _warn_of_a_thin_vocabulary(metadata, cfg):
    """Warns when the vocabulary holds no word, or GloVe covers few of the tokens (seen:
    --min_count=1000000 ended "vocabulary 2, coverage 0.0%" with no word of warning)."""
    words = metadata["vocab_size"] - 2  # padding and [UNK] are not words
    coverage = metadata["embedding"]["coverage_by_token"]
    if words <= 0:
        logging.warning("The vocabulary holds no word: no token of the train split reached --min_count=%d. "
                        "Every token will be [UNK]; lower --min_count.", cfg.min_count)
    elif coverage < THIN_COVERAGE:
        logging.warning("GloVe vectors cover only %.1f%% of the train split's tokens (vocabulary %d): most "
                        "tokens will be [UNK] or untrained rows. Check --glove, --standardizer and --min_count.",
                        100 * coverage, metadata["vocab_size"])


def _warn_of_test_overlap(metadata):
    overlap, test = metadata.get("test_ids_in_train", 0), metadata["counts"]["test"]
    if overlap:
        logging.warning("%d of the %d test examples (%.1f%%) have the tweet id of a training row: the test "
                        "split overlaps the training CSVs, so its accuracy measures memory (test_ids_in_train "
                        "in metadata.json). Is --test_csv the right file?", overlap, test, 100 * overlap / max(test, 1))


def _warn_of_duplicates(later_copies, dropped):
    if not later_copies:
        return
    if dropped:
        logging.warning("%d rows repeated the tweet id of another row: dropped (reason %s in rejected/)",
                        later_copies, rows.DUPLICATE_ID)
    else:
        logging.warning("%d rows repeat the tweet id of another row and are kept (duplicate_tweet_ids in "
                        "metadata.json); pass --drop_duplicate_ids to keep one copy of each", later_copies)


def preprocess(cfg, beam_args=(), default_beam_args=()):
    """Runs the job to completion (see `run`); returns the metadata it wrote."""
    return run(cfg, beam_args, default_beam_args).metadata
