"""The tweet-aware standardizer: the token conventions of GloVe's Twitter vectors.

Stanford's `preprocess-twitter` script turned 2B tweets into the text that
glove.twitter.27B was trained on. It replaces links, user names, smileys, hearts and
numbers by tokens (`<url>`, `<user>`, `<smile>`, `<lolface>`, `<sadface>`,
`<neutralface>`, `<heart>`, `<number>`), puts `<hashtag>` before a hashtag's words,
`<repeat>` after a run of "!", "?" or "." (kept once), `<elong>` after a word that ends
in a run of one letter (kept once: "wayyyy" -> "way <elong>") and `<allcaps>` after an
all-capitals word, then lower-cases. Those tokens are in the Twitter vectors'
vocabulary, so these rules give them their trained vectors instead of random ones.

Like the default standardizer (preprocessing/text.py) it is TF string ops (RE2), so one
function runs in Beam, tf.data and the serving model, its output is tokens joined by
single spaces, and standardizing standardized text changes nothing. Change any rule and
bump its version in standardizers.STANDARDIZER_VERSIONS.

Where this differs from the script, it is on purpose:
- Special tokens are always tokens of their own ("kindle2" -> "kindle <number>"), and a
  literal "<user>" stays "<user>" (the stored text is fed back through the serving model).
- Faces ending in a letter (":D", ":p", ":l") must not run into a word (":Do", "8pm"),
  reversed ones ("D:") must not start inside one ("good:"), and an "8" is an eye only at
  the start of a token ("2018)" is no smile). ":/" is a neutral face (the script split
  "/" off first, so it never matched). Like the script, "):" is a smile: its reversed
  smile rule runs before the sad one.
- An all-capitals word gets one `<allcaps>`, after the whole word (the script's Python
  port gives "#HAPPY" two); a hashtag is split where a lower-case letter meets an
  upper-case one ("#BitCoin" -> "<hashtag> bit coin"), not before every capital.
- HTML escapes are undone ("&lt;3" is a heart), underscores separate words, and
  punctuation is kept only where it carries sentiment ("!", "?", ".", ","), as in v2;
  contractions are split the way Stanford's tokenizer splits them ("do n't", "it 's").
"""

# TensorFlow first, through common.quiet_tf (quietly): keras would import it on its own otherwise.
from common.quiet_tf import tf  # isort: skip

import keras  # noqa: E402

from common import standardizers  # noqa: E402

TWITTER_STANDARDIZER_VERSION = standardizers.STANDARDIZER_VERSIONS[standardizers.TWITTER_STANDARDIZER]

# The special tokens, also the names evaluation slices look for.
LINK_TOKEN = "<url>"
MENTION_TOKEN = "<user>"
HASHTAG_TOKEN = "<hashtag>"
NUMBER_TOKEN = "<number>"
SPECIAL_TOKENS = (
    LINK_TOKEN, MENTION_TOKEN, "<smile>", "<lolface>", "<sadface>", "<neutralface>", "<heart>",
    NUMBER_TOKEN, HASHTAG_TOKEN, "<repeat>", "<elong>", "<allcaps>",
)

# Control characters never survive the first rule, so the rules below use them as
# markers no tweet can contain: \x01 the apostrophe of a split contraction (as in v2),
# \x02 and \x03 the brackets of a special token (so that no later rule sees "<" or ">"
# as punctuation), \x04 and \x05 the ends of an all-capitals word.
_CONTROL_CHARACTERS = r"\p{Cc}+"
_OPEN, _CLOSE = "\x02", "\x03"


def _token(name):
    """The rewrite that puts special token `name` (between markers) as a token of its own."""
    return f" {_OPEN}{name}{_CLOSE} "


_EYES = r"(?:[:=;]|\b8)"  # "8" only at the start of a token: "2018)" is no smile
_NOSE = r"['`\-]?"


# Capitals of the alphabets whose every capital lower-cases (Latin, Greek, Cyrillic), not
# all of \p{Lu}: a capital without a lower-case form ("\u2102") would stay a capital
# and get one more <allcaps> each time standardized text is standardized again.
_CAPITALS = r"A-Z\x{C0}-\x{D6}\x{D8}-\x{DE}\x{100}-\x{17F}\x{391}-\x{3A9}\x{400}-\x{42F}"


def _elongation(letters):
    """(pattern, rewrite): a word-final run of 3+ of one letter -> that letter and <elong>.

    RE2 has no back-references, so each letter gets its own group (as in v2's repeat
    rule); a group that did not take part rewrites to "". At most nine letters a rule.
    """
    pattern = "(?i)" + "|".join(f"({c}){c}{{2,}}\\b" for c in letters)
    rewrite = "".join(f"\\{i}" for i in range(1, len(letters) + 1)) + _token("elong")
    return pattern, rewrite


# Before lower-casing, in order; case tells hashtag words and all-capitals words apart.
_CASED_RULES = (
    # Sentiment140 keeps HTML escapes; "&lt;3" is a heart. "&amp;" last, so "&amp;lt;"
    # stays "&lt;" rather than becoming "<".
    (r"&#39;|&apos;", "'"),
    (r"&lt;", "<"),
    (r"&gt;", ">"),
    (r"&amp;", "&"),
    (r"&[a-zA-Z]+;|&#[0-9]+;", " "),
    # Special tokens already in the text (standardized text fed back) stay what they are.
    ("<(" + "|".join(token[1:-1] for token in SPECIAL_TOKENS) + ")>", _token("\\1")),
    (r"(?i)(?:https?://\S+\b|www\.(?:\w+\.)+\S*)", _token("url")),
    (r"@\w+", _token("user")),
    # After user names, which may hold one: "_" is no part of a word here, and the
    # elongation rule's \b must not see one ("sooo_" would elongate only once standardized).
    (r"_+", " "),
    (_EYES + _NOSE + r"(?:\)+|[dD]+\b)|(?:\)+|\b[dD]+)" + _NOSE + _EYES, _token("smile")),
    (_EYES + _NOSE + r"[pP]+\b", _token("lolface")),
    (_EYES + _NOSE + r"\(+", _token("sadface")),
    (r"[:=;]" + _NOSE + r"[/|*]|" + _EYES + _NOSE + r"[lL]\b", _token("neutralface")),
    (r"<+3+", _token("heart")),
    # A hashtag starts a token, so that _split_hashtag_words finds it.
    (r"#+([^\s#])", " #\\1"),
)

_AFTER_HASHTAG_WORDS = (
    (r"#([^\s#])", _token("hashtag") + "\\1"),
    (r"[-+]?[.\p{Nd}]*\p{Nd}+[:,.\p{Nd}]*", _token("number")),
    # "!!!" -> "! <repeat>", "?!?" -> "? <repeat>": the last of the run, as the script.
    (r"[!?.]+([!?.])", " \\1" + _token("repeat")),
    _elongation("abcdefghi"),
    _elongation("jklmnopqr"),
    _elongation("stuvwxyz"),
    # All-capitals words: a word with a lower-case letter is matched first and kept as
    # it is, so that the second branch only sees whole words ("iPHONE" is not marked).
    # RE2 rewrites cannot depend on the branch: both write markers, and the empty
    # pair of the first branch is removed.
    (rf"([\p{{L}}']*\p{{Ll}}[\p{{L}}']*)|([{_CAPITALS}]['{_CAPITALS}]*[{_CAPITALS}])", "\\1\x04\\2\x05"),
    (r"\x04\x05|\x04", ""),
    (r"\x05", _token("allcaps")),
)

# After lower-casing, as in v2 (preprocessing/text.py says why): "!", "?", ".", "," are
# tokens ("," once per run; runs of the others are <repeat>ed above), anything else that
# is not a letter, digit, apostrophe or special-token marker separates tokens, and
# contractions are split with \x01 standing for their apostrophe.
_LOWER_RULES = (
    (r"(,),*|([!?.])", " \\1\\2 "),
    (r"[^\p{L}\p{N}!?.,'\x02\x03]+", " "),
    (r"(n)'(t)\b|'(s|m|re|ll|ve|d)\b", " \\1\x01\\2\\3"),
    (r"(^|\s)'+", "\\1"),
    (r"'+(\s|$)", "\\1"),
    (r"\x01", "'"),
    (r"\x02", "<"),
    (r"\x03", ">"),
    (r"\s+", " "),
)


def _apply(texts, rules):
    for pattern, rewrite in rules:
        texts = tf.strings.regex_replace(texts, pattern, rewrite)
    return texts


def _split_hashtag_words(texts):
    """Splits the tokens that start with "#" where a lower-case letter meets an
    upper-case one ("#BitCoin" -> "#Bit Coin"); other tokens ("iPhone") are kept.

    RE2 has no look-behind to confine a rule to hashtags, so the tokens are split out,
    the rule is applied to the hashtags among them, and the tokens are joined again.
    Splitting on " " keeps empty tokens, so joining restores every other byte.
    """
    tokens = tf.strings.split(texts, sep=" ")
    words = tokens.flat_values
    split = tf.strings.regex_replace(words, r"(\p{Ll})(\p{Lu})", "\\1 \\2")
    words = tf.where(tf.strings.regex_full_match(words, "#.*"), split, words)
    return tf.strings.reduce_join(tokens.with_flat_values(words), axis=-1, separator=" ")


@keras.saving.register_keras_serializable(package="s140", name=f"standardize_twitter_v{TWITTER_STANDARDIZER_VERSION}")
def standardize_twitter(texts):
    """Standardizes a string tensor of tweets (any shape); returns tokens joined by " "."""
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    shape = tf.shape(texts)
    texts = tf.strings.regex_replace(tf.reshape(texts, [-1]), _CONTROL_CHARACTERS, " ")
    texts = _split_hashtag_words(_apply(texts, _CASED_RULES))
    texts = tf.strings.lower(_apply(texts, _AFTER_HASHTAG_WORDS), encoding="utf-8")
    return tf.reshape(tf.strings.strip(_apply(texts, _LOWER_RULES)), shape)
