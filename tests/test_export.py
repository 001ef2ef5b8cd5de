"""Tests of the serving export: raw tweets through the exported standardizer and
vocabulary must give the TFRecords' token ids and the Keras model's probabilities,
also after reloading in a fresh process, under MirroredStrategy and mixed precision."""

import csv
import json
import pathlib
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from support import tokens
from preprocessing import schema
from preprocessing import text
from trainer import data
from trainer import export
from trainer import models

REPO = pathlib.Path(__file__).resolve().parents[1]

POSITIVE_TWEETS = ["I love this, what a great happy day!", "so happy, love it"]
NEGATIVE_TWEETS = ["I hate this, so sad and terrible", "terrible day, hate it"]
# Raw forms the standardizer must reduce (case, repeats, links, users, HTML, hashtags).
MESSY_TWEETS = [
    "LOOOOVE this!!! http://t.co/abc @bob #happy",
    "&quot;worst&quot; day ever..... www.example.com/x",
    "love\x00 hate terrible worst",  # a NUL must not cut off the rest
    "",  # standardizes to nothing
]

# Runs in a fresh interpreter: nothing of the test process (Keras objects, registered
# functions, traced graphs) can leak into what the export computes.
_FRESH_PROCESS_SNIPPET = """
import json, sys
from trainer import export
model = export.load_serving_model(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
standardized, token_ids = model.tokenize(texts)
json.dump({"probability": model(texts).tolist(), "standardized": standardized,
           "token_ids": token_ids.tolist()}, open(sys.argv[3], "w", encoding="utf-8"))
"""


def _train(contract, data_dir, *, epochs=2, architecture="gap", **hparams):
    model = models.build_model(
        architecture,
        vocab_size=contract.vocab_size,
        embedding_dim=contract.embedding_dim,
        max_length=contract.max_length,
        embedding_matrix=contract.embeddings,
        **hparams,
    )
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    train = data.make_dataset(contract, "train", batch_size=64, shuffle=True, seed=0)
    model.fit(train, epochs=epochs, verbose=0, shuffle=False)  # the dataset shuffles
    return model


@pytest.fixture(scope="module")
def exported(sample_data_dir, tmp_path_factory):
    keras.utils.set_random_seed(7)
    contract = data.load_contract(sample_data_dir)
    model = _train(contract, sample_data_dir)
    export_dir = str(tmp_path_factory.mktemp("export") / "model")
    returned = export.export_serving_model(
        model, vocab_tokens=contract.vocab_tokens, max_length=contract.max_length, export_dir=export_dir
    )
    return types.SimpleNamespace(
        model=model, contract=contract, export_dir=returned, data_dir=sample_data_dir
    )


def _keras_probability(model, token_ids):
    return model(np.asarray(token_ids, np.int64), training=False).numpy().reshape(-1)


def _raw_test_tweets(data_dir):
    """{tweet_id: raw text} of the CSV the fixture's test split was made from."""
    path = pathlib.Path(data_dir).parent / "test.csv"
    with open(path, encoding="latin-1", newline="") as handle:
        return {int(row[1]): row[5] for row in csv.reader(handle)}


def _score_in_fresh_process(export_dir, texts, tmp_path):
    inputs, outputs = tmp_path / "texts.json", tmp_path / "scores.json"
    inputs.write_text(json.dumps(texts), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_SNIPPET, export_dir, str(inputs), str(outputs)],
        check=True, cwd=REPO, capture_output=True, timeout=300,
    )
    result = json.loads(outputs.read_text(encoding="utf-8"))
    return (
        np.asarray(result["probability"], np.float32),
        result["standardized"],
        np.asarray(result["token_ids"], np.int64),
    )


def _split_like_the_beam_job(standardized):
    return [token.decode("utf-8") for token in tokens.split_tokens([standardized]).to_list()[0]]


def _encode_like_the_beam_job(standardized, vocab_tokens, max_length):
    lookup = {token: index for index, token in enumerate(vocab_tokens)}
    ids = [lookup.get(token, schema.UNK_ID) for token in _split_like_the_beam_job(standardized)][:max_length]
    return ids + [schema.PAD_ID] * (max_length - len(ids))


def test_reloaded_export_reproduces_records_and_keras_model_on_test_tweets(exported, tmp_path):
    records = data.read_records(exported.data_dir, "test")
    raw = _raw_test_tweets(exported.data_dir)
    raw_texts = [raw[int(tweet_id)] for tweet_id in records[schema.TWEET_ID]]
    stored_texts = [t.decode("utf-8") for t in records[schema.TEXT]]
    extra = POSITIVE_TWEETS + NEGATIVE_TWEETS + MESSY_TWEETS
    probability, standardized, token_ids = _score_in_fresh_process(
        exported.export_dir, raw_texts + stored_texts + extra, tmp_path
    )
    n = len(raw_texts)
    assert n == exported.contract.metadata["counts"]["test"] > 100
    expected = _keras_probability(exported.model, records[schema.TOKEN_IDS])
    assert 0.05 < expected.std()  # a trained model with varied outputs, not a constant

    # Both the raw tweets of the CSV and the stored standardized `text` (a fixed point
    # of the standardizer) give, token for token, what the Beam job wrote ...
    for part, name in ((slice(0, n), "raw"), (slice(n, 2 * n), "stored")):
        assert standardized[part] == stored_texts, name
        np.testing.assert_array_equal(token_ids[part], records[schema.TOKEN_IDS], err_msg=name)
        # ... and so the Keras model's probabilities on the TFRecords' token ids.
        np.testing.assert_allclose(probability[part], expected, atol=1e-5, err_msg=name)
    assert probability.dtype == np.float32

    # Invented tweets: same agreement with the Keras model on the export's own tokens
    # (the last one, "", is the lone-[UNK] case tested below).
    np.testing.assert_allclose(
        probability[2 * n : -1], _keras_probability(exported.model, token_ids[2 * n : -1]), atol=1e-5
    )
    # The reloaded export keeps the words after a NUL, as the Beam job does.
    nul = 2 * n + extra.index(MESSY_TWEETS[2])
    assert standardized[nul] == "love hate terrible worst" == text.standardize_batch([MESSY_TWEETS[2]])[0]


def test_token_ids_are_post_padded_post_truncated_with_oov_one(exported):
    serving = export.load_serving_model(exported.export_dir)
    length, vocab = exported.contract.max_length, exported.contract.vocab_tokens
    long_tweet = " ".join(["happy", "sad", "qwzxvbn"] * length)  # 3 * length tokens
    tweets = ["love it zzqqxx", long_tweet, "the", "@bob http://x.co #great"]
    standardized, token_ids = serving.tokenize(tweets)

    assert standardized[3] == "user url great"
    assert token_ids.shape == (len(tweets), length) and token_ids.dtype == np.int64
    for row, clean in zip(token_ids, standardized):
        assert row.tolist() == _encode_like_the_beam_job(clean, vocab, length)
    assert token_ids[0].tolist()[:4] == [vocab.index("love"), vocab.index("it"), schema.UNK_ID, 0]
    assert token_ids[1].tolist() == [vocab.index("happy"), vocab.index("sad"), schema.UNK_ID] * (length // 3)
    assert token_ids[2].tolist() == [vocab.index("the")] + [schema.PAD_ID] * (length - 1)


def test_raw_tweet_and_its_standardized_form_score_the_same(exported):
    serving = export.load_serving_model(exported.export_dir)
    raw = [t for t in POSITIVE_TWEETS + NEGATIVE_TWEETS + MESSY_TWEETS if t]
    clean = text.standardize_batch(raw)
    assert clean[raw.index(MESSY_TWEETS[0])] == "loove this ! url user happy"
    assert text.standardize_batch(clean) == clean  # idempotent on these
    np.testing.assert_allclose(serving(raw), serving(clean), atol=1e-6)
    np.testing.assert_array_equal(serving.tokenize(raw)[1], serving.tokenize(clean)[1])


def test_stored_standardized_text_is_a_fixed_point_of_the_standardizer(exported):
    records = data.read_records(exported.data_dir, "test")
    stored = [t.decode("utf-8") for t in records[schema.TEXT]]
    assert any(" 'm " in t or " 's " in t or " n't" in t for t in stored)  # contractions present
    assert text.standardize_batch(stored) == stored


def test_sentiment_moves_the_right_way_after_training(exported):
    serving = export.load_serving_model(exported.export_dir)
    positive, negative = serving(POSITIVE_TWEETS), serving(NEGATIVE_TWEETS)
    assert positive.min() > 0.5 > negative.max()
    assert positive.mean() - negative.mean() > 0.3


def test_tweet_without_tokens_scores_as_a_lone_unknown_word(exported):
    serving = export.load_serving_model(exported.export_dir)
    probability = serving(["", "   ", "~~~ ^^"])
    lone_unk = np.zeros([1, exported.contract.max_length], np.int64)
    lone_unk[0, 0] = schema.UNK_ID
    assert np.isfinite(probability).all()
    np.testing.assert_allclose(probability, _keras_probability(exported.model, lone_unk)[0], atol=1e-6)
    # tokenize still shows what the Beam job would write: nothing (all padding).
    assert not serving.tokenize([""])[1].any()


def test_manifest_and_signatures(exported):
    manifest = export.read_manifest(exported.export_dir)
    assert manifest["max_length"] == exported.contract.max_length
    assert manifest["vocab_size"] == len(exported.contract.vocab_tokens)
    assert manifest["standardizer_version"] == text.STANDARDIZER_VERSION
    assert manifest["model_name"] == "gap"
    serving = tf.saved_model.load(exported.export_dir).signatures["serving_default"]
    assert serving.structured_input_signature[1]["text"].dtype == tf.string
    output = serving(text=tf.constant(["love", "hate"]))
    assert list(output) == ["probability"]
    assert output["probability"].dtype == tf.float32 and output["probability"].shape == (2,)


def test_export_of_a_model_trained_under_mirrored_strategy(sample_data_dir, tmp_path):
    contract = data.load_contract(sample_data_dir)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _train(contract, sample_data_dir, epochs=1)
        export.export_serving_model(
            model, vocab_tokens=contract.vocab_tokens, max_length=contract.max_length,
            export_dir=str(tmp_path / "model"),
        )
    serving = export.load_serving_model(str(tmp_path / "model"))
    tweets = POSITIVE_TWEETS + NEGATIVE_TWEETS
    np.testing.assert_allclose(
        serving(tweets), _keras_probability(model, serving.tokenize(tweets)[1]), atol=1e-5
    )


def test_export_of_the_recommended_options_reloads_to_the_same_predictions(sample_data_dir, tmp_path):
    """Trainable rows for the tokens GloVe lacks, max pooling and the wide bigram logit:
    saved as model.keras and reloaded (as s140-train does), exported, and scored in a
    fresh process, the served model gives the in-memory model's probabilities."""
    contract = data.load_contract(sample_data_dir)
    uncovered = contract.require_uncovered_ids()
    model = _train(
        contract, sample_data_dir, epochs=1, architecture="conv1d", trainable_ids=uncovered,
        pooling="max", spatial_dropout=0.2, dropout=0.3, wide="bigrams", wide_buckets=4096,
    )
    # Training moved the uncovered rows and the wide weights; GloVe's rows did not move.
    embedding = model.get_layer("embedding")
    assert np.abs(embedding.rows.get_weights()[0] - contract.embeddings[uncovered]).max() > 1e-3
    np.testing.assert_array_equal(embedding.frozen.get_weights()[0], contract.embeddings)
    assert np.abs(model.get_layer("probability").bigrams.get_weights()[0]).max() > 0
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    export.export_serving_model(
        reloaded, vocab_tokens=contract.vocab_tokens, max_length=contract.max_length,
        export_dir=str(tmp_path / "model"),
    )
    tweets = POSITIVE_TWEETS + NEGATIVE_TWEETS + MESSY_TWEETS[:-1]
    probability, _, token_ids = _score_in_fresh_process(str(tmp_path / "model"), tweets, tmp_path)
    assert (token_ids == schema.UNK_ID).any()  # an uncovered row is read
    np.testing.assert_allclose(probability, _keras_probability(model, token_ids), atol=1e-5)
    assert probability.std() > 0.01


def test_mixed_precision_model_exports_float32_probabilities(sample_data_dir, tmp_path):
    contract = data.load_contract(sample_data_dir)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _train(contract, sample_data_dir, epochs=1)
        assert model.get_layer("embedding").compute_dtype == "float16"
        export.export_serving_model(
            model, vocab_tokens=contract.vocab_tokens, max_length=contract.max_length,
            export_dir=str(tmp_path / "model"),
        )
        tweets = POSITIVE_TWEETS + NEGATIVE_TWEETS
        serving = export.load_serving_model(str(tmp_path / "model"))
        expected = _keras_probability(model, serving.tokenize(tweets)[1])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    probability = serving(tweets)
    assert probability.dtype == np.float32
    np.testing.assert_allclose(probability, expected, atol=1e-3)
    assert probability[:2].min() > probability[2:].max()


def test_export_through_a_non_local_filesystem(exported):
    # ram:// goes through the same tf.io.gfile / SavedModel file-system layer as gs://.
    export_dir = "ram://s140-test/model"
    export.export_serving_model(
        exported.model, vocab_tokens=exported.contract.vocab_tokens,
        max_length=exported.contract.max_length, export_dir=export_dir,
    )
    tweets = POSITIVE_TWEETS + NEGATIVE_TWEETS
    np.testing.assert_allclose(
        export.load_serving_model(export_dir)(tweets),
        export.load_serving_model(exported.export_dir)(tweets),
        atol=1e-6,
    )


def test_re_export_into_the_same_directory_replaces_it(exported, tmp_path):
    contract, export_dir = exported.contract, str(tmp_path / "model")
    keras.utils.set_random_seed(3)
    other = models.build_model(
        "gap", vocab_size=contract.vocab_size, embedding_dim=contract.embedding_dim,
        max_length=contract.max_length, embedding_matrix=contract.embeddings,
    )
    for model in (other, exported.model):
        export.export_serving_model(
            model, vocab_tokens=contract.vocab_tokens, max_length=contract.max_length, export_dir=export_dir
        )
    np.testing.assert_allclose(
        export.load_serving_model(export_dir)(POSITIVE_TWEETS),
        export.load_serving_model(exported.export_dir)(POSITIVE_TWEETS),
        atol=1e-6,
    )


def test_export_rejects_a_vocabulary_or_length_that_does_not_fit(exported, tmp_path):
    model, contract = exported.model, exported.contract
    vocab, length = contract.vocab_tokens, contract.max_length
    target = str(tmp_path / "model")
    with pytest.raises(ValueError, match=r"start with \['', '\[UNK\]'\].*Received: \['the'"):
        export.export_serving_model(model, vocab_tokens=vocab[2:], max_length=length, export_dir=target)
    with pytest.raises(ValueError, match=f"embedding has rows \\({len(vocab)}\\).*Received: {len(vocab) - 1}"):
        export.export_serving_model(model, vocab_tokens=vocab[:-1], max_length=length, export_dir=target)
    with pytest.raises(ValueError, match=f"reading {length + 1} token ids"):
        export.export_serving_model(model, vocab_tokens=vocab, max_length=length + 1, export_dir=target)
    assert not (tmp_path / "model").exists()


def test_loading_something_else_says_what_was_expected(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.load_serving_model(str(tmp_path / "missing"))
    with pytest.raises(export.ExportError, match=r"without saved_model.pb .*metadata.json"):
        export.load_serving_model(exported.data_dir)
    # A SavedModel, but not ours: Keras' own export of the bare token-id model.
    exported.model.export(str(tmp_path / "keras_export"), verbose=False)
    with pytest.raises(export.ExportError, match="s140_export.json"):
        export.load_serving_model(str(tmp_path / "keras_export"))
