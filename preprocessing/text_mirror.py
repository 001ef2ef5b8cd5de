"""A pure-Python mirror of text.py's default standardizer, for the Beam job only.

Every Beam worker process that imports TensorFlow for the standardizer pays ~764 MiB of
resident memory and ~10 s of start-up (docs/benchmarks-history.md); this mirror gives the same
strings with Python's `re`, without TensorFlow. tf.data and the exported serving model
keep the TF ops of text.py, which stay the definition: tests/test_text_mirror.py feeds
every Unicode code point (in several contexts), a table of tricky tweets and every real
tweet through both and requires equal output.

Where RE2 and ICU (TensorFlow's regex and lower-casing) differ from Python, and what the
mirror does about it:

* RE2's \\s, \\w and \\b are ASCII-only, Python's are Unicode: the rules spell out the
  ASCII classes. RE2's `$` is the end of the text, Python's also matches before a final
  newline: `\\Z`. RE2 rewrites a group that did not take part as "", so does `re`.
* RE2's \\p{L}\\p{N} is Unicode 15.0's; Python 3.11's \\w knows Unicode 14.0:
  `_UNICODE_15_LETTERS_AND_DIGITS` adds the difference. TensorFlow's ICU lower-cases by
  Unicode 13.0 and Python by 14.0: a tweet with a character of `_ICU_DIFFERS` (Unicode
  14.0 letters and marks that change lower-casing or its final-sigma rule) is handed to
  the caller's fallback, TensorFlow itself.
* Those tables hold for the versions they were measured with, so `mirror_for` offers
  the mirror only under Python's Unicode 14.0.0 and TensorFlow 2.21 (read from the
  installed distribution, without importing it); anywhere else the job uses TensorFlow.
* A whole batch runs through each rule at once, joined by `_SEP` (a character that no
  rule matches, treated like a text's start and end), and a latin-1 batch (every
  official Sentiment140 file) drops what is not a letter or digit with one
  bytes.translate.
"""

import functools
import importlib.metadata
import re
import unicodedata

# What this module mirrors: the name and version of text.py's default standardizer
# (tests/test_text_mirror.py checks both against text.py and compares outputs). The
# version is written out, not read from config: a new version's rules are not proven
# here, so bumping it there must make mirror_for stop offering this mirror.
STANDARDIZER_NAME = "glove6b"
STANDARDIZER_VERSION = 2
PROVEN_UNICODE = "14.0.0"  # unicodedata.unidata_version the tables below were measured with
PROVEN_TENSORFLOW = "2.21."


def _ranges(pairs):
    return "".join(f"{chr(start)}-{chr(end)}" for start, end in pairs)


_UNICODE_15_LETTERS_AND_DIGITS = _ranges((
    (0x1123F, 0x11240), (0x11F02, 0x11F02), (0x11F04, 0x11F10), (0x11F12, 0x11F33), (0x11F50, 0x11F59),
    (0x1342F, 0x1342F), (0x13441, 0x13446), (0x1B132, 0x1B132), (0x1B155, 0x1B155), (0x1D2C0, 0x1D2D3),
    (0x1DF25, 0x1DF2A), (0x1E030, 0x1E06D), (0x1E4D0, 0x1E4EB), (0x1E4F0, 0x1E4F9), (0x2B739, 0x2B739),
    (0x31350, 0x323AF),
))
_ICU_DIFFERS = re.compile("[" + _ranges((
    (0x888, 0x888), (0x890, 0x891), (0x898, 0x89F), (0x8C9, 0x8D2), (0xC3C, 0xC3C), (0x1734, 0x1734),
    (0x180F, 0x180F), (0x1AC1, 0x1ACE), (0x1DFA, 0x1DFA), (0x2C2F, 0x2C2F), (0x2C5F, 0x2C5F),
    (0xA7C0, 0xA7C1), (0xA7D0, 0xA7D1), (0xA7D3, 0xA7D3), (0xA7D5, 0xA7D9), (0xA7F2, 0xA7F4),
    (0xFBC2, 0xFBC2), (0x10570, 0x1057A), (0x1057C, 0x1058A), (0x1058C, 0x10592), (0x10594, 0x10595),
    (0x10597, 0x105A1), (0x105A3, 0x105B1), (0x105B3, 0x105B9), (0x105BB, 0x105BC), (0x10780, 0x10785),
    (0x10787, 0x107B0), (0x107B2, 0x107BA), (0x10F82, 0x10F85), (0x11070, 0x11070), (0x11073, 0x11074),
    (0x110C2, 0x110C2), (0x1AFF0, 0x1AFF3), (0x1AFF5, 0x1AFFB), (0x1AFFD, 0x1AFFE), (0x1CF00, 0x1CF2D),
    (0x1CF30, 0x1CF46), (0x1DF00, 0x1DF09), (0x1DF0B, 0x1DF1E), (0x1E2AE, 0x1E2AE),
)) + "]")

# The record separator: a control character, so no tweet holds one once the first rule
# has turned control characters into spaces (a batch that held one goes tweet by tweet).
_SEP = "\x1e"
_SPACE = "\t\n\f\r "  # RE2's \s
# \p{Cc} (fixed by Unicode's stability policy), less the separator of joined tweets.
_CONTROL = {_SEP: re.compile(r"[\x00-\x1d\x1f\x7f-\x9f]+"), "": re.compile(r"[\x00-\x1f\x7f-\x9f]+")}


# Characters above these are rare in tweets (latin-1 files have none): a batch without
# any skips the tables below, whose long classes cost far more per character.
_NOT_BELOW_ICU_DIFFERS = re.compile("[\u0888-\U0010ffff]")
_NOT_BELOW_UNICODE_15 = re.compile("[\U00011000-\U0010ffff]")


def _drop_quotes(match):
    # A run of apostrophes at either end of a word is a quote, not a contraction: the
    # two rules of text.py in one pass (deleting one run never changes another's ends).
    text, start, end = match.string, match.start(), match.end()
    if start == 0 or text[start - 1] in _EDGE or end == len(text) or text[end] in _EDGE:
        return ""
    return match.group()


_EDGE = " " + _SEP  # what stands around a word once only single spaces are left


_KEPT = "!?.,'"  # besides letters and digits


class _Others:
    r"""[^\p{L}\p{N}!?.,']+ -> " ". Python's \w less "_" is its letters and digits; a
    latin-1 text takes a 256-byte table instead, one space per character (the rules
    after this one treat a run of spaces as one, and the last one collapses them)."""

    _LATIN1 = bytes(
        code if chr(code).isalnum() or chr(code) in _KEPT + _SEP else ord(" ") for code in range(256)
    )

    def __init__(self, sep, letters_and_digits):
        self._pattern = re.compile(rf"[^{_KEPT}{sep}\w{letters_and_digits}]+|_+")

    def __call__(self, text):
        try:
            return text.encode("latin-1").translate(self._LATIN1).decode("latin-1")
        except UnicodeEncodeError:
            return self._pattern.sub(" ", text)


def _compile_rules(sep, letters_and_digits):
    """text._RULES in order, each rewritten for `re` (see above). `sep` is the separator
    of joined tweets ("" for one tweet): no class takes it."""
    rules = (
        (r"&#39;|&apos;", "'"),
        (r"&[a-z]+;|&#[0-9]+;", " "),
        (rf"(?:https?://|www\.)[^{_SPACE}{sep}]+", " url "),
        (r"@[0-9A-Za-z_]+", " user "),
        # text.py needs one alternative per letter in three rules (RE2 has no
        # back-references); runs of different letters never meet, so one rule is the same.
        # A repeat is written `xx*`, not `x+` or `x{2,}`: the same matches, but `re` then
        # finds the literal that starts a match with its fast search instead of trying a
        # match at every position (`!!*`: ~6x), and repeats a back-reference without its
        # general repeat loop (`\1\1+`: ~1.7x).
        (r"([a-z])\1\1+", r"\1\1"),
        (r"\.\.+", " ... "),
        # text.py's one rule for "!", "?", "," and "." as four: each only wraps its own
        # character's runs in spaces, so none changes what another matches.
        (r"!!*", " ! "),
        (r"\?\?*", " ? "),
        (r",,*", " , "),
        (r"\.\.\.|\.", r" \g<0> "),
        _Others(sep, letters_and_digits),
        # \b after a letter: the next character is not an ASCII word character. text.py's
        # one rule as two, ~4x faster since each starts with a literal: their matches
        # never overlap (an "n't" holds no "'s", "'m", ...), and the first neither makes
        # nor breaks an "n't" nor puts a word character after one.
        (r"'(s|m|re|ll|ve|d)(?![0-9A-Za-z_])", " \x01\\1"),
        (r"n't(?![0-9A-Za-z_])", " n\x01t"),
        # Every whitespace character is a space by now (the class above took the others).
        (r"''*", _drop_quotes),
        ("\x01", "'"),
        (r"  +", " "),
    )
    return tuple(
        rule if callable(rule) else functools.partial(re.compile(rule[0]).sub, rule[1]) for rule in rules
    )


_RULES = {
    (sep, unicode_15): _compile_rules(sep, _UNICODE_15_LETTERS_AND_DIGITS if unicode_15 else "")
    for sep in (_SEP, "") for unicode_15 in (False, True)
}


# Control characters to spaces and lower-casing of a latin-1 text in one table: neither
# leaves latin-1, and a run of spaces is one to every rule (see _Others).
_LATIN1_LOWER = bytes(
    ord(" ") if _CONTROL[_SEP].match(chr(code)) else ord(chr(code).lower()) for code in range(256)
)


def _lower(joined, sep):
    """Control characters to spaces, then lower-casing."""
    if sep:
        try:
            return joined.encode("latin-1").translate(_LATIN1_LOWER).decode("latin-1")
        except UnicodeEncodeError:
            pass
    return _CONTROL[sep].sub(" ", joined).lower()


def _apply(joined, sep):
    """Control characters to spaces, lower-casing, then each rule."""
    rules = _RULES[(sep, bool(_NOT_BELOW_UNICODE_15.search(joined)))]
    joined = _lower(joined, sep)
    for rule in rules:
        joined = rule(joined)
    return joined


def _mirrored(texts):
    joined = _SEP.join(texts)
    if joined.count(_SEP) == len(texts) - 1:
        pieces = _apply(joined, _SEP).split(_SEP)
    else:  # a tweet holds _SEP itself
        pieces = [_apply(text, "") for text in texts]
    return [piece.strip(" ") for piece in pieces]  # tf.strings.strip; only spaces are left


def _icu_differs(text):
    return bool(_NOT_BELOW_ICU_DIFFERS.search(text)) and bool(_ICU_DIFFERS.search(text))


def standardize_batch(texts, fallback):
    """Standardizes a list of Python strings as text.standardize_batch does.

    `fallback` (a list of strings -> their standardized strings, i.e. TensorFlow's
    text.standardize_batch) gets the rare tweets whose characters ICU lower-cases
    differently from Python (`_ICU_DIFFERS`)."""
    if not texts:
        return []
    if not _icu_differs("".join(texts)):
        return _mirrored(texts)
    declined = [index for index, text in enumerate(texts) if _icu_differs(text)]
    declined_set = set(declined)
    out = _mirrored([text for index, text in enumerate(texts) if index not in declined_set])
    for index, clean in zip(declined, fallback([texts[index] for index in declined])):
        out.insert(index, clean)
    return out


def _tensorflow_version():
    for distribution in ("tensorflow", "tensorflow-cpu"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


_MIRRORS = {(STANDARDIZER_NAME, STANDARDIZER_VERSION): standardize_batch}


def mirror_for(name, version):
    """The batch function (texts, fallback) that mirrors standardizer `name` at
    `version` here, or None: no mirror of it, or not proven under this Python's Unicode
    data and this TensorFlow."""
    tensorflow = _tensorflow_version() or ""
    if unicodedata.unidata_version != PROVEN_UNICODE or not tensorflow.startswith(PROVEN_TENSORFLOW):
        return None
    return _MIRRORS.get((name, version))
