"""The default tweet standardizer, written in TF string ops, and the registry of all.

The same function runs in the Beam job (on batches), in tf.data and inside the exported
serving model, so training and serving cannot tokenize differently. Its output is the
tokens joined by single spaces; splitting on " " gives the tokens. Change any rule and
bump its version in standardizers.STANDARDIZER_VERSIONS: metadata.json records it and the trainer refuses a mismatch.

The rules aim at GloVe 6B's vocabulary (Wikipedia + Gigaword, lower-cased, Stanford
tokenizer): it splits "don't" into "do" "n't", keeps "!", "?", "..." as tokens, and has
no tokens for links or user names. Its name is "glove6b"; "twitter"
(preprocessing/text_twitter.py) follows GloVe's Twitter vectors instead. STANDARDIZERS
holds both by name, the name metadata.json and the export record.
"""

# TensorFlow first, through common.quiet_tf (quietly): keras would import it on its own otherwise.
from common.quiet_tf import tf  # isort: skip

import typing  # noqa: E402

import keras  # noqa: E402

from common import standardizers  # noqa: E402

# 2: control characters (NUL included) become spaces before lower-casing.
STANDARDIZER_VERSION = standardizers.STANDARDIZER_VERSIONS[standardizers.GLOVE6B_STANDARDIZER]

# tf.strings.lower(encoding="utf-8") stops at a NUL, dropping the rest of the tweet
# ("great\x00 awful" -> "great"); regex_replace does not. Control characters are never
# part of a token, so turning them into spaces first changes nothing else.
_CONTROL_CHARACTERS = r"\p{Cc}+"


def _collapse_repeats(letters):
    """(pattern, rewrite) that shortens runs of 3+ of each letter to two.

    RE2 has no back-references, so each letter gets its own group; a group that did
    not take part in the match rewrites to "", hence one rewrite covers all of them.
    RE2 rewrites know \\1-\\9 only, so callers pass at most nine letters.
    """
    pattern = "|".join(f"({c}){c}{{2,}}" for c in letters)
    rewrite = "".join(f"\\{i}\\{i}" for i in range(1, len(letters) + 1))
    return pattern, rewrite


# The tokens links and user names become (rules below). Readers find their ids in the
# vocabulary (trainer/slices.py); a literal word "url" or "user" is the same token.
LINK_TOKEN = "url"
MENTION_TOKEN = "user"

# Applied in order after lower-casing. Each comment says why the rule exists.
_RULES = (
    # Sentiment140 keeps HTML escapes ("&quot;", "&amp;"); an apostrophe must survive
    # for the contraction rule below, everything else is punctuation we drop anyway.
    (r"&#39;|&apos;", "'"),
    (r"&[a-z]+;|&#[0-9]+;", " "),
    # Links and user names are never in GloVe; the GloVe words "url" and "user" keep
    # the fact that a tweet has one (replies and link shares differ in tone).
    (r"(?:https?://|www\.)\S+", f" {LINK_TOKEN} "),
    (r"@\w+", f" {MENTION_TOKEN} "),
    # "loooove" -> "loove", "sooooo" -> "soo": two keeps real doubles ("good", "too").
    _collapse_repeats("abcdefghi"),
    _collapse_repeats("jklmnopqr"),
    _collapse_repeats("stuvwxyz"),
    # Punctuation that carries sentiment becomes one token per run: "!!!" -> "!",
    # "...." -> "...". A group that did not match rewrites to "", so one rule serves all.
    (r"\.{2,}", " ... "),
    (r"(!)!*|(\?)\?*|(,),*|(\.\.\.|\.)", " \\1\\2\\3\\4 "),
    # Everything else that is not a letter, a digit or an apostrophe separates tokens.
    (r"[^\p{L}\p{N}!?.,']+", " "),
    # Contractions the way GloVe's tokenizer split them ("don't" -> "do n't", "it's" ->
    # "it 's"). Their apostrophe is swapped for a control character (the rule above
    # removed any real ones) so that the quote-stripping rule cannot eat the "'s" of an
    # already split "it 's": standardizing standardized text must change nothing, since
    # the stored `text` feature is fed back through the serving model.
    (r"(n)'(t)\b|'(s|m|re|ll|ve|d)\b", " \\1\x01\\2\\3"),
    # Apostrophes used as quotes (at either end of a word) are not contractions. Two
    # rules, since one would consume the space between "talkin' 'bout" for both.
    (r"(^|\s)'+", "\\1"),
    (r"'+(\s|$)", "\\1"),
    (r"\x01", "'"),
    (r"\s+", " "),
)


@keras.saving.register_keras_serializable(package="s140", name=f"standardize_v{STANDARDIZER_VERSION}")
def standardize(texts):
    """Standardizes a string tensor of tweets (any shape); returns tokens joined by " "."""
    texts = tf.strings.regex_replace(tf.convert_to_tensor(texts, dtype=tf.string), _CONTROL_CHARACTERS, " ")
    texts = tf.strings.lower(texts, encoding="utf-8")
    for pattern, rewrite in _RULES:
        texts = tf.strings.regex_replace(texts, pattern, rewrite)
    return tf.strings.strip(texts)


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def _standardize_batch(texts):
    return standardize(texts)


def standardize_batch(texts, standardizer=standardizers.DEFAULT_STANDARDIZER):
    """Standardizes a list of Python strings; returns a list of Python strings.

    Runs the traced graph once per batch: the Beam job calls this with thousands of
    tweets at a time so that the per-call cost of TensorFlow is paid per batch.
    `standardizer` names one of STANDARDIZERS.
    """
    if not texts:
        return []
    encoded = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    traced = get_standardizer(standardizer).traced
    return [s.decode("utf-8") for s in traced(tf.constant(encoded)).numpy()]


# --- The registry: every standardizer by the name metadata.json records.

DEFAULT_STANDARDIZER = standardizers.DEFAULT_STANDARDIZER

from preprocessing import text_twitter  # noqa: E402  (imports nothing of this module)


class Standardizer(typing.NamedTuple):
    name: str  # what --standardizer, metadata.json and the export manifest say
    version: int  # bumped with any change of its rules
    standardize: typing.Callable  # string tensor -> string tensor, Keras-serializable
    traced: typing.Callable  # the same, traced once for string[None] batches


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def _standardize_twitter_batch(texts):
    return text_twitter.standardize_twitter(texts)


STANDARDIZERS = {
    standardizer.name: standardizer
    for standardizer in (
        Standardizer(standardizers.GLOVE6B_STANDARDIZER, STANDARDIZER_VERSION, standardize, _standardize_batch),
        Standardizer(
            standardizers.TWITTER_STANDARDIZER,
            text_twitter.TWITTER_STANDARDIZER_VERSION,
            text_twitter.standardize_twitter,
            _standardize_twitter_batch,
        ),
    )
}


def get_standardizer(name):
    """The Standardizer called `name`.

    Raises:
      ValueError: naming the known standardizers.
    """
    if name not in STANDARDIZERS:
        raise ValueError(f"Expected a standardizer in {sorted(STANDARDIZERS)}. Received: {name!r}.")
    return STANDARDIZERS[name]

