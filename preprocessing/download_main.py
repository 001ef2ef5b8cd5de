"""s140-download: fetches Sentiment140 and a GloVe archive, then says what to pass on.

    s140-download                                 # both, GloVe 6B, into ~/.keras/datasets/s140
    s140-download --what=sentiment140
    s140-download --glove=twitter.27B --cache_dir=/data/s140
    s140-download --base_url=https://mirror.example.com/s140   # all archives from one mirror

Files already in the cache are not fetched again. The command ends by printing the
`s140-preprocess` flags that point at the files it fetched.
"""

import shlex

from absl import app
from absl import flags
from absl import logging

from common import cli
from preprocessing import download

FETCHABLE = ("sentiment140", "glove")
NO_GLOVE = "none"

_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", "~/.keras/datasets/s140", "Local directory that keeps the downloads."
)
_WHAT = flags.DEFINE_list("what", list(FETCHABLE), f"What to fetch, any of {list(FETCHABLE)}.")
_GLOVE = flags.DEFINE_enum(
    "glove",
    "6B",
    [*download.GLOVE_ARCHIVES, NO_GLOVE],
    "GloVe archive: "
    + "; ".join(f"{name} = {a.description}" for name, a in download.GLOVE_ARCHIVES.items())
    + f"; {NO_GLOVE} = skip GloVe.",
)
_BASE_URL = flags.DEFINE_string(
    "base_url",
    None,
    "One URL (http, https or file) under which a mirror keeps every archive by its official "
    f"file name. Default: {download.SENTIMENT140_BASE_URL} for Sentiment140 and "
    f"{download.GLOVE_BASE_URL} for GloVe.",
)
_SENTIMENT140_SHA256 = flags.DEFINE_string(
    "sentiment140_sha256", None, "Expected sha256 of trainingandtestdata.zip (none is published)."
)
_GLOVE_SHA256 = flags.DEFINE_string(
    "glove_sha256", None, "Expected sha256 of the GloVe zip (none is published)."
)

flags.register_validator(
    "what",
    lambda values: bool(values) and set(values) <= set(FETCHABLE),
    message=f"Expected --what to list some of {list(FETCHABLE)}.",
)


def _fetch_sentiment140():
    """Fetches Sentiment140; returns (description lines, s140-preprocess flags)."""
    base_url = _BASE_URL.value or download.SENTIMENT140_BASE_URL
    paths = download.fetch_sentiment140(
        _CACHE_DIR.value, base_url=base_url, sha256=_SENTIMENT140_SHA256.value
    )
    lines = [
        f"Sentiment140 training CSV: {paths['train_csv']}",
        f"Sentiment140 test CSV: {paths['test_csv']}",
    ]
    return lines, [f"--train_csv={paths['train_csv']}", f"--test_csv={paths['test_csv']}"]


def _fetch_glove():
    """Fetches the chosen GloVe zip; returns (description lines, s140-preprocess flags)."""
    if _GLOVE.value == NO_GLOVE:
        return ["GloVe: skipped (--glove=none)."], []
    base_url = _BASE_URL.value or download.GLOVE_BASE_URL
    archive = download.fetch_glove(
        _GLOVE.value, _CACHE_DIR.value, base_url=base_url, sha256=_GLOVE_SHA256.value
    )
    values = download.glove_flag_values(archive)
    lines = [f"GloVe {_GLOVE.value} archive: {archive}"]
    lines += [f"  vectors: --glove={value}" for value in values]
    # The smallest vectors make the fastest first run; the other values are listed above.
    return lines, [f"--glove={values[0]}"]


_FETCHERS = {"sentiment140": _fetch_sentiment140, "glove": _fetch_glove}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Expected no positional arguments. Received: {argv[1:]}.")
    # Keras' get_file does the transfer, and Keras loads TensorFlow: without its start-up
    # lines (seen: CUDA noise before the command's own message), and only now, after the
    # flags are checked.
    from common.quiet_tf import tf  # noqa: F401
    lines, preprocess_flags = [], []
    for what in dict.fromkeys(_WHAT.value):  # keeps order, drops repeats
        logging.info("Fetching %s into %s", what, _CACHE_DIR.value)
        more_lines, more_flags = _FETCHERS[what]()
        lines += more_lines
        preprocess_flags += more_flags
    # stdout, not the log: these lines are the command's result, meant to be copied or
    # captured by a script.
    print("\n".join(lines))
    if preprocess_flags:
        print("Pass to s140-preprocess:")
        # Quoted for a POSIX shell: cache paths may hold spaces.
        quoted = " ".join(shlex.quote(flag) for flag in preprocess_flags)
        print(f"  s140-preprocess {quoted} --output_dir=DATA_DIR")


# --help lists these groups (common/cli.py).
HELP_GROUPS = (
    ("What to fetch", ("what", "glove", "cache_dir")),
    ("Where from, and checks", ("base_url", "sentiment140_sha256", "glove_sha256")),
)


def run():
    """Console-script entry point (`s140-download`)."""
    cli.run(main, __doc__, HELP_GROUPS, program="s140-download")


if __name__ == "__main__":
    run()
