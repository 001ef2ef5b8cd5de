"""The standardizer gives the same tokens on every path that runs it."""

import apache_beam as beam
import keras
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from preprocessing import text
from support import tokens

GOLDEN = [
    (
        "@stellargirl I loooooooovvvvvveee my Kindle2. Not that the DX is cool, but the 2 is fantastic",
        "user i loovvee my kindle2 . not that the dx is cool , but the 2 is fantastic",
    ),
    ("Reading my kindle2...  Love it... Lee childs is good read.",
     "reading my kindle2 ... love it ... lee childs is good read ."),
    ("I can't believe it's &quot;not&quot; butter!!! http://bit.ly/abc #yum &amp; www.x.com/y",
     "i ca n't believe it 's not butter ! url yum url"),
    ("'quoted' words and O'Brien's dog won't bark??", "quoted words and o'brien 's dog wo n't bark ?"),
    ("I'm sooooo HAPPY!!!!! :-) I'll be there", "i 'm soo happy ! i 'll be there"),
    ("Café NAÏVE\tnew\nline", "café naïve new line"),
    ("&lt;3 you ~~~ ^^", "3 you"),
    ("   ", ""),
    ("~~ ^^ ", ""),
    # A NUL ends a C string: the text after it must survive lower-casing. Other control
    # characters separate tokens too, and a raw \x01 must not turn into an apostrophe.
    ("GREAT\x00 awful terrible worst hate", "great awful terrible worst hate"),
    ("it\x01s\x07fine\x7f\x85ok", "it s fine ok"),
]


def test_golden_strings_eagerly():
    got = [value.decode("utf-8") for value in text.standardize(tf.constant([g[0] for g in GOLDEN])).numpy()]
    assert got == [expected for _, expected in GOLDEN]


def test_batch_helper_matches_eager():
    assert text.standardize_batch([g[0] for g in GOLDEN]) == [expected for _, expected in GOLDEN]


def test_same_tokens_in_tf_data():
    dataset = tf.data.Dataset.from_tensor_slices([g[0] for g in GOLDEN]).batch(4).map(text.standardize)
    got = [value.decode("utf-8") for batch in dataset for value in batch.numpy()]
    assert got == [expected for _, expected in GOLDEN]


def _tokens(standardized):
    """The tokens of standardized strings, split the way the Beam job splits them."""
    return [tuple(token.decode("utf-8") for token in row) for row in tokens.split_tokens(standardized).to_list()]


def test_same_tokens_in_a_beam_pipeline():
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        got = (
            pipeline
            | beam.Create([g[0] for g in GOLDEN])
            | beam.BatchElements(min_batch_size=3, max_batch_size=3)
            | beam.FlatMap(text.standardize_batch)
            | beam.Map(lambda clean: _tokens([clean])[0])
        )
        assert_that(got, equal_to(_tokens([expected for _, expected in GOLDEN])))


def test_same_tokens_in_text_vectorization():
    # The exported serving model tokenizes with TextVectorization around this function.
    vocabulary = sorted({token for _, expected in GOLDEN for token in expected.split()})
    layer = keras.layers.TextVectorization(
        standardize=text.standardize, split="whitespace", vocabulary=vocabulary, output_mode="int"
    )
    ids = layer(tf.constant([g[0] for g in GOLDEN[:6]])).numpy()
    lookup = {token: index for index, token in enumerate(layer.get_vocabulary())}
    for row, (_, expected) in zip(ids, GOLDEN[:6]):
        want = [lookup[token] for token in expected.split()]
        assert list(row[: len(want)]) == want
        assert not row[len(want):].any()  # post-padded with 0


def test_standardizer_is_keras_serializable():
    config = keras.saving.serialize_keras_object(text.standardize)
    assert keras.saving.deserialize_keras_object(config) is text.standardize


@pytest.mark.parametrize("raw", ["soooo", "coool", "YESSSSS"])
def test_repeated_letters_keep_two(raw):
    assert text.standardize_batch([raw]) == [{"soooo": "soo", "coool": "cool", "YESSSSS": "yess"}[raw]]


def test_standardizing_twice_changes_nothing():
    # The stored `text` feature is fed back through the serving model, so standardized
    # text must be a fixed point, contractions included ("it 's" must not lose its "'s").
    raw = [g[0] for g in GOLDEN] + ["it's", "it 's", "can't won't", "'tis the y'all's 'd"]
    once = text.standardize_batch(raw)
    assert text.standardize_batch(once) == once
    assert once[len(GOLDEN):] == ["it 's", "it 's", "ca n't wo n't", "tis the y'all 's 'd"]


def test_fixed_point_on_the_built_in_sample(tmp_path):
    import csv

    from preprocessing import sample

    sample.write_sample_csv(tmp_path / "s.csv", num_rows=500, seed=3)
    with open(tmp_path / "s.csv", encoding="latin-1", newline="") as handle:
        tweets = [row[5] for row in csv.reader(handle)]
    once = text.standardize_batch(tweets)
    assert text.standardize_batch(once) == once


def test_fixed_point_on_real_tweets(shared_data):
    import csv

    with open(shared_data / "sentiment140" / "train_sample.csv", encoding="latin-1", newline="") as handle:
        tweets = [row[5] for row in csv.reader(handle)]
    once = text.standardize_batch(tweets)
    assert text.standardize_batch(once) == once
    assert sum(not clean for clean in once) == 0  # every real tweet keeps a token
