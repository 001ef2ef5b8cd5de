"""The twitter standardizer from data to served model: the Beam job makes the data with
it, the trainer exports a model that standardizes with it (the one metadata.json
records), and the reloaded export gives the TFRecords' tokens and the Keras model's
probabilities. A data directory whose standardizer this package does not have at the
recorded version is refused before training."""

import csv
import json
import pathlib
import shutil
import types

import keras
import numpy as np
import pytest
from test_export import _keras_probability, _score_in_fresh_process

from preprocessing import config as preprocess_config
from preprocessing import pipeline, sample, schema, text, text_twitter
from trainer import config, data, export, train


@pytest.fixture(scope="module")
def twitter_run(tmp_path_factory):
    """The sample CSVs preprocessed with --standardizer=twitter, and a short s140-train
    run on them (gap, one epoch)."""
    root = tmp_path_factory.mktemp("twitter")
    sample.write_sample_csv(root / "train.csv", num_rows=3000, seed=0)
    sample.write_sample_csv(root / "test.csv", num_rows=300, seed=1, kind="test")
    data_dir, job_dir = root / "data", root / "job"
    pipeline.preprocess(preprocess_config.PreprocessConfig(
        train_csv=(str(root / "train.csv"),), test_csv=(str(root / "test.csv"),), output_dir=str(data_dir),
        max_length=24, num_shards=2, standardizer="twitter",
    ))
    keras.utils.set_random_seed(7)
    metrics = train.train(config.TrainConfig(
        data_dir=str(data_dir), job_dir=str(job_dir), architecture="gap", epochs=2, batch_size=64,
        learning_rate=0.01, cpu_replicas=1,
    ), environ={})
    return types.SimpleNamespace(data_dir=str(data_dir), job_dir=job_dir, export_dir=str(job_dir / "model"),
                                 metrics=metrics, contract=data.load_contract(str(data_dir)), root=root)


def test_data_export_and_report_record_the_twitter_standardizer(twitter_run):
    contract = twitter_run.contract
    assert contract.standardizer == "twitter"
    assert contract.metadata["standardizer_version"] == text_twitter.TWITTER_STANDARDIZER_VERSION
    assert {"<user>", "<url>", "<repeat>", "<hashtag>", "<elong>"} <= set(contract.vocab_tokens)
    assert "user" not in contract.vocab_tokens
    manifest = export.read_manifest(twitter_run.export_dir)
    assert (manifest["standardizer"], manifest["standardizer_version"]) == ("twitter", 1)
    assert "| standardizer | twitter |" in (twitter_run.job_dir / "report.md").read_text()
    run_file = json.loads((twitter_run.job_dir / "run.json").read_text())
    assert (run_file["data"]["standardizer"], run_file["data"]["standardizer_version"]) == ("twitter", 1)


def test_reloaded_export_reproduces_records_and_keras_model(twitter_run, tmp_path):
    records = data.read_records(twitter_run.data_dir, "test")
    with open(twitter_run.root / "test.csv", encoding="latin-1", newline="") as handle:
        raw = {int(row[1]): row[5] for row in csv.reader(handle)}
    raw_texts = [raw[int(tweet_id)] for tweet_id in records[schema.TWEET_ID]]
    stored_texts = [t.decode("utf-8") for t in records[schema.TEXT]]
    messy = ["@bob http://x.co #GreatDay :) <3", "SOOOO HAPPY!!! 2day", "love\x00 hate"]
    probability, standardized, token_ids = _score_in_fresh_process(
        twitter_run.export_dir, raw_texts + stored_texts + messy, tmp_path
    )
    n = len(raw_texts)
    assert n == twitter_run.contract.count("test") > 100
    model = keras.models.load_model(twitter_run.job_dir / "model.keras")
    expected = _keras_probability(model, records[schema.TOKEN_IDS])
    assert 0.05 < expected.std()  # a trained model with varied outputs
    for part, name in ((slice(0, n), "raw"), (slice(n, 2 * n), "stored")):
        assert standardized[part] == stored_texts, name
        np.testing.assert_array_equal(token_ids[part], records[schema.TOKEN_IDS], err_msg=name)
        np.testing.assert_allclose(probability[part], expected, atol=1e-5, err_msg=name)
    # The served model standardizes with the twitter rules, as the Beam job did.
    assert standardized[2 * n:] == [
        "<user> <url> <hashtag> great day <smile> <heart>",
        "so <allcaps> <elong> happy <allcaps> ! <repeat> <number> day",
        "love hate",
    ] == text.standardize_batch(messy, standardizer="twitter")
    np.testing.assert_allclose(probability[2 * n:], _keras_probability(model, token_ids[2 * n:]), atol=1e-5)


def test_a_mismatched_standardizer_version_stops_the_trainer_before_it_trains(twitter_run, tmp_path):
    broken = tmp_path / "data"
    shutil.copytree(twitter_run.data_dir, broken)
    metadata = json.loads((broken / schema.METADATA_FILE).read_text())
    metadata["standardizer_version"] = 7
    (broken / schema.METADATA_FILE).write_text(json.dumps(metadata))
    job_dir = tmp_path / "job"
    with pytest.raises(schema.ContractError) as error:
        train.train(config.TrainConfig(data_dir=str(broken), job_dir=str(job_dir), architecture="gap",
                                       epochs=1, cpu_replicas=1), environ={})
    message = str(error.value)
    assert "expected standardizer_version 1 (standardizer 'twitter' of this package)" in message
    assert "Received: 7, the version the data was made with" in message
    assert not pathlib.Path(job_dir / "model").exists()
