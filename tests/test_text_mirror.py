"""The pure-Python mirror of the standardizer gives exactly text.py's strings.

The Beam job standardizes with preprocessing/text_mirror.py so that its workers need no
TensorFlow; training and serving standardize with text.py's TF ops. Any difference would
be train/serve skew, so every Unicode code point, a table of tricky tweets and every real
tweet go through both.
"""

import csv
import unicodedata

import pytest

from common import standardizers
from preprocessing import text, text_mirror, transforms
from tests.test_text import GOLDEN


def _mirror(texts):
    """The mirror, with a fallback that fails the test when it is needed unexpectedly."""
    return text_mirror.standardize_batch(texts, fallback=_no_fallback)


def _no_fallback(texts):
    raise AssertionError(f"the mirror declined {texts!r}")


def _assert_same(texts, batch_size=4096, mirror=_mirror):
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        want, got = text.standardize_batch(batch), mirror(batch)
        differ = [(raw, w, g) for raw, w, g in zip(batch, want, got) if w != g]
        assert not differ, differ[:5]
        assert len(got) == len(batch)


def test_mirrors_the_default_standardizer_of_this_tensorflow_and_python():
    assert (text_mirror.STANDARDIZER_NAME, text_mirror.STANDARDIZER_VERSION) == (
        standardizers.DEFAULT_STANDARDIZER, text.STANDARDIZER_VERSION)
    assert standardizers.STANDARDIZER_VERSIONS[standardizers.DEFAULT_STANDARDIZER] == text.STANDARDIZER_VERSION
    assert unicodedata.unidata_version == text_mirror.PROVEN_UNICODE
    assert text_mirror.mirror_for("glove6b", text.STANDARDIZER_VERSION) is text_mirror.standardize_batch
    assert text_mirror.mirror_for("glove6b", text.STANDARDIZER_VERSION + 1) is None
    twitter_version = standardizers.STANDARDIZER_VERSIONS[standardizers.TWITTER_STANDARDIZER]
    assert text_mirror.mirror_for("twitter", twitter_version) is None


# Each code point c in one string, in the places where a rule or lower-casing looks at
# its neighbours: at the start, after a capital, before an apostrophe, after a final or
# before a non-final capital sigma, after contractions, URLs and mentions, in quotes and
# at the end.
_CONTEXT = "{c}A{c}'b \u0391\u03a3{c}a \u0391{c}\u03a3 n't{c} 's{c} www.{c}x @{c} '{c}' so{c}o x{c}"


def test_every_code_point_in_context():
    # Latin-1 first, in batches of their own: the mirror takes a faster path for them.
    code_points = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]  # UTF-8 has no surrogates
    _assert_same([_CONTEXT.format(c=c) for c in code_points[:256]], mirror=_mirror_or_tensorflow)
    _assert_same([_CONTEXT.format(c=c) for c in code_points[256:]], mirror=_mirror_or_tensorflow)


def _mirror_or_tensorflow(texts):
    # The code points where ICU lower-cases differently are declined and handed to
    # TensorFlow, so those must be exactly the declined ones.
    return text_mirror.standardize_batch(texts, fallback=text.standardize_batch)


def test_declines_exactly_the_characters_icu_lower_cases_differently():
    # U+2C2F is a Unicode 14 capital that ICU (Unicode 13 here) leaves as it is;
    # U+1734 became a spacing mark in Unicode 14, which changes the final-sigma rule.
    declined = []
    got = text_mirror.standardize_batch(
        ["ok \u2c2f", "fine", "\u0391\u1734\u03a3 x"], fallback=lambda texts: declined.extend(texts) or ["tf"] * len(texts)
    )
    assert declined == ["ok \u2c2f", "\u0391\u1734\u03a3 x"]
    assert got == ["tf", "fine", "tf"]
    assert text.standardize_batch(["ok \u2c2f"]) == ["ok \u2c2f"]  # not lower-cased by TensorFlow
    assert "ok \u2c2f".lower() == "ok \u2c5f"  # but by Python


TRICKY = [
    raw for raw, _ in GOLDEN
] + [
    "&quot;Hi&quot; &lt;3 &amp;&amp; &#39;x&#39; &apos;y&apos; &#8364; &nbsp;&NBSP; &#; &a1;",
    "I can't, won't, don't, shouldn't; it's, I'm, we're, they'll, I've, he'd; y'all's rock'n'roll",
    "CAN'T WON'T IT'S 'tis 'twas ''double'' '''triple''' rock' 'n 'roll' o'clock",
    "\u201csmart quotes\u201d \u2018single\u2019 don\u2019t \u00abguillemets\u00bb",
    "sooooo goooood!!!!!! yessss??? whyyyy,,,, no.... ok.. . ... ..... aaabbbccc AAAHHH xxxyyyzzz",
    "a\x00b\x00\x00c \x1e rs \x1f us \x7f del \x85 nel \x9f apc \t\r\n\x0b\x0c",
    "emoji \U0001f600\U0001f44d\U0001f3fd \u2764\ufe0f \U0001f1fa\U0001f1f8 family \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "http://bit.ly/x?y=1&z=2 https://t.co/AbC!!! www.Example.COM/path. HTTP://CAPS.com x.com ftp://no",
    "@user @User_Name @_x @ @@double email@example.com @\u00e9t\u00e9 @123",
    "#hashtag #\u00fcber #123 ##two",
    "\u0130stanbul \u03a3\u039f\u03a6\u039f\u03a3 \u039f\u0394\u039f\u03a3. \u1e9e Stra\u00dfe \uff21\uff22\uff23 \u2160\u2161 \u00b2\u00b3",
    "tabs\tand  many   spaces\u00a0nbsp\u2003em\u3000ideographic \u2028 line \u2029 para",
    "mixed\u00e9\u0301accents cafe\u0301 na\u00efve \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u4f60\u597d \ud55c\uad6d\uc5b4 \u0928\u092e\u0938\u094d\u0924\u0947",
    "under_score snake_case_name __init__ a_b",
    "1,000,000 3.14 1.2.3 $5 50% #1 24/7 9-5 i<3u",
    "'",
    "''",
    "n't",
    "'s",
    "",
    " ",
    "\x1e",
    "\uffff noncharacter \ufffe \U0010ffff",
]


def test_tricky_tweets():
    _assert_same(TRICKY)


def test_tricky_tweets_one_at_a_time():
    # The path for a tweet that holds the separator of joined batches, and batches of one.
    for raw in TRICKY:
        _assert_same([raw])


def test_a_batch_with_the_batch_separator_in_a_tweet():
    _assert_same(["a b", "x\x1ey", "'q' \x1e 'r'", "ALL CAPS"])


def test_empty_batch():
    assert text_mirror.standardize_batch([], fallback=_no_fallback) == []


def test_every_real_tweet(shared_data):
    tweets = []
    for path in sorted((shared_data / "sentiment140").glob("*.csv")):
        with open(path, encoding="latin-1", newline="") as handle:
            tweets += [row[-1] for row in csv.reader(handle) if row]
    assert len(tweets) > 100_000
    _assert_same(tweets)
    # The same tweets read as UTF-8 where they are valid UTF-8, as a UTF-8 export gives them.
    _assert_same([tweet.encode("latin-1").decode("utf-8", errors="replace") for tweet in tweets])


@pytest.mark.parametrize("batch_size", [1, 7, 2048])
def test_batch_size_does_not_matter(batch_size):
    _assert_same(TRICKY * 3, batch_size=batch_size)


def test_the_beam_step_runs_the_mirror_only_for_a_standardizer_it_mirrors():
    mirrored = transforms.ParseAndStandardizeFn(0.1)
    mirrored.setup()
    twitter = transforms.ParseAndStandardizeFn(0.1, standardizer=standardizers.TWITTER_STANDARDIZER)
    twitter.setup()
    assert mirrored._standardize_batch.func is text_mirror.standardize_batch
    assert twitter._standardize_batch.func is transforms._tensorflow_standardize_batch
    assert twitter._standardize_batch.keywords == {"standardizer": "twitter"}
    raw = ["I can't \u2c2f!!", "SOOO good &amp; www.x.y"]  # the first goes to the fallback
    assert mirrored._standardize_batch(raw) == text.standardize_batch(raw)
    assert twitter._standardize_batch(raw) == text.standardize_batch(raw, standardizer="twitter")
    assert twitter._standardize_batch(raw) != mirrored._standardize_batch(raw)
