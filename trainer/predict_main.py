"""s140-predict: scores tweets with a model exported by s140-train.

    s140-predict --model_dir=runs/job/model "I love this song" "worst day ever"
    s140-predict --model_dir=gs://bucket/job/model --input_file=tweets.txt --format=json
    cat tweets.txt | s140-predict --model_dir=runs/job/model

Tweets come from the positional arguments, else from --input_file (one per line,
local or gs://), else from stdin (one per line); blank lines are skipped. Each line is
decoded on its own: as UTF-8, or when it is not valid UTF-8 as latin-1 (the encoding of
the Sentiment140 training files), with a warning naming the line. Each tweet gives one
output line: `label<TAB>probability<TAB>tweet` (--format=text) or
`{"text": ..., "label": ..., "probability": ..., "known_tokens": ...}` (--format=json).
A tweet with no word in the model's vocabulary ("", emoji only) says so: a fourth text
column, or "known_tokens": 0. Put `--` before tweets that start with "-" so they are not
read as flags. TensorFlow's start-up lines are hidden unless TF_CPP_MIN_LOG_LEVEL is 0 or 1.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from common import cli
from common import errors

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Directory of the exported model (s140-train's export; local or gs://)."
)
_FORMAT = flags.DEFINE_enum(
    "format", "text", ["text", "json"],
    "text: label<TAB>probability<TAB>tweet per line; json: one JSON object per line.",
)
_THRESHOLD = flags.DEFINE_float(
    "threshold", 0.5, "Probability above which a tweet is labelled positive.",
    lower_bound=0.0, upper_bound=1.0,
)
_INPUT_FILE = flags.DEFINE_string(
    "input_file", None, "File with one tweet per line (local or gs://); used when no tweets are given as arguments."
)
flags.mark_flag_as_required("model_dir")


def _tweets(positional):
    """The tweets of the arguments or of --input_file; None: stdin, read as it comes."""
    from trainer import predict

    if positional:
        # Python decoded argv with surrogate escapes; back to the bytes the user typed.
        return [predict.decode_line(os.fsencode(argument))[0] for argument in positional]
    if _INPUT_FILE.value:
        from common.quiet_tf import tf

        if not tf.io.gfile.exists(_INPUT_FILE.value):
            raise errors.MissingInput(
                f"Expected --input_file to name a file of tweets, one per line. "
                f"Received: {_INPUT_FILE.value!r}, which does not exist."
            )
        with tf.io.gfile.GFile(_INPUT_FILE.value, "rb") as handle:
            return predict.read_tweets(handle.read().split(b"\n"))
    return None  # stdin, read as it comes (`_score_stdin`)


def main(argv):
    if argv[1:] and _INPUT_FILE.value:
        raise app.UsageError(
            "Expected tweets either as arguments or in --input_file, not both. Received: "
            f"{len(argv) - 1} arguments and --input_file={_INPUT_FILE.value}."
        )
    # TensorFlow loads only now (not for --help), without its C++ start-up lines.
    from common.quiet_tf import tf  # noqa: F401
    from trainer import export
    from trainer import predict

    # A terminal that cannot show a character gets an escape, not a traceback.
    sys.stdout.reconfigure(errors="backslashreplace")

    if not 0.0 <= _THRESHOLD.value <= 1.0:  # absl's bounds let nan through
        raise errors.SettingError(f"Expected --threshold in [0, 1]. Received: {_THRESHOLD.value}.")
    # Load first: a wrong --model_dir fails at once, not after the user typed tweets.
    model = export.load_serving_model(_MODEL_DIR.value)
    tweets = _tweets(argv[1:])
    if tweets is None:
        return _score_stdin(model)
    if not tweets:
        logging.warning("No tweets to score.")
        return
    _print(predict.predict(model, tweets, threshold=_THRESHOLD.value))


def _score_stdin(model):
    """Scores stdin as it comes: each line's result as soon as it is read, so the
    command can sit in a pipe; lines waiting together are scored as one batch."""
    from trainer import predict

    if sys.stdin.isatty():
        print("Reading tweets from stdin, one per line; end with Ctrl-D.", file=sys.stderr)
    number, scored = 1, 0
    for lines in predict.line_batches(sys.stdin.fileno()):
        tweets = predict.read_tweets(lines, first_number=number)
        number += len(lines)
        if tweets:
            _print(predict.predict(model, tweets, threshold=_THRESHOLD.value))
            scored += len(tweets)
    if not scored:
        logging.warning("No tweets to score.")


def _print(predictions):
    from trainer import predict

    for prediction in predictions:
        print(predict.format_prediction(prediction, _FORMAT.value))
    sys.stdout.flush()


# --help lists these groups (common/cli.py).
HELP_GROUPS = (
    ("Model", ("model_dir", "threshold")),
    ("Input and output", ("input_file", "format")),
)


def run():
    cli.run(main, __doc__, HELP_GROUPS, program="s140-predict")


if __name__ == "__main__":
    run()
