"""trainer.hypertune: val_accuracy after every epoch, in the file Vertex's hyperparameter
tuning reads (written by the real cloudml-hypertune package)."""

import json

import keras
import numpy as np
import pytest

from trainer import hypertune

pytest.importorskip("hypertune", reason="cloudml-hypertune is in install_requires")


def _fit(callbacks, epochs=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, validation_data=(x, y), epochs=epochs, verbose=0, callbacks=callbacks)


def test_chief_of_a_trial_reports_val_accuracy_every_epoch(tmp_path, monkeypatch):
    metric_file = tmp_path / "hypertune" / "output.metrics"
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "7")
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(metric_file))
    callbacks = hypertune.trial_callbacks(chief=True)
    assert [type(c) for c in callbacks] == [hypertune.ReportMetric]
    history = _fit(callbacks)
    lines = [json.loads(line) for line in metric_file.read_text().splitlines()]
    assert [line["global_step"] for line in lines] == ["1", "2", "3"]
    assert {line["trial"] for line in lines} == {"7"}
    reported = [float(line["val_accuracy"]) for line in lines]
    assert reported == pytest.approx(history.history["val_accuracy"])


def test_no_reporting_outside_a_trial_or_on_workers(monkeypatch):
    monkeypatch.delenv("CLOUD_ML_TRIAL_ID", raising=False)
    monkeypatch.delenv("CLOUD_ML_HP_METRIC_FILE", raising=False)
    assert hypertune.trial_callbacks(chief=True) == []
    assert hypertune.trial_callbacks(chief=False, environ={"CLOUD_ML_TRIAL_ID": "3"}) == []
    assert hypertune.in_tuning_trial({"CLOUD_ML_TRIAL_ID": "3"})
    assert not hypertune.in_tuning_trial({})


def test_a_missing_metric_is_skipped_not_reported():
    reports = []

    class Recorder:
        def report_hyperparameter_tuning_metric(self, **kwargs):
            reports.append(kwargs)

    callback = hypertune.ReportMetric("val_auc", reporter=Recorder())
    callback.on_epoch_end(0, {"val_accuracy": 0.5})
    callback.on_epoch_end(1, {"val_auc": 0.75})
    assert reports == [{"hyperparameter_metric_tag": "val_auc", "metric_value": 0.75, "global_step": 2}]
