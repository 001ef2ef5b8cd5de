"""The run's own files in trainer/: best.keras replaced whole or not at all, and a
history.json or best.keras that is not the run's named with what to do."""

import keras
import numpy as np
import pytest

from common import files
from trainer import callbacks
from trainer import train


def test_the_best_model_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = str(tmp_path / "best.keras")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = callbacks.BestModelFile(path, str(tmp_path / "history.json"))
    best.set_model(model)
    best.on_train_begin()
    best.on_epoch_end(0, {"val_loss": 0.5})
    saved = [w.copy() for w in model.get_weights()]
    best.on_epoch_end(1, {"val_loss": 0.7})  # worse: not saved
    best.on_epoch_end(2, {"val_loss": float("nan")})  # never better
    model.set_weights([w + 1 for w in saved])

    def killed_mid_save(self, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(keras.Model, "save", killed_mid_save)
    with pytest.raises(KeyboardInterrupt):
        best.on_epoch_end(3, {"val_loss": 0.1})
    monkeypatch.undo()
    # The kill left the previous best whole: it loads, with epoch 0's weights.
    reloaded = keras.models.load_model(path)
    for expected, got in zip(saved, reloaded.get_weights()):
        np.testing.assert_array_equal(expected, got)


def test_an_empty_or_foreign_history_file_is_named(tmp_path):
    path = tmp_path / "history.json"
    for text, received in (("", "an empty file"), ("[1, 2]", "something else")):
        path.write_text(text)
        with pytest.raises(files.DamagedFile) as error:
            callbacks.read_history(str(path))
        assert str(error.value).startswith(f"Expected {path} to hold a run's history") and received in str(error.value)


def test_a_damaged_best_model_is_named_not_a_raw_zipfile_error(tmp_path):
    path = tmp_path / "best.keras"
    path.write_bytes(b"PK\x03\x04 half a zip")  # what an in-place save killed midway left
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(files.DamagedFile) as error:
        train._load_best(model, str(path))
    assert str(error.value).startswith(f"Expected {path} to hold this run's best model.")
    assert "pass --overwrite" in str(error.value)


def test_a_killed_saves_temporary_is_removed_when_the_run_starts_again(tmp_path):
    # Seen on Cloud Storage: a kill during the save left a whole object under the
    # temporary name (an upload lands whole), beside best.keras.
    (tmp_path / "best.tmp-123-0123456789ab.keras").write_bytes(b"whole, but orphaned")
    (tmp_path / "best.keras").write_bytes(b"kept")
    (tmp_path / "other.tmp-1-x.keras").write_bytes(b"not ours to judge")
    best = callbacks.BestModelFile(str(tmp_path / "best.keras"), str(tmp_path / "history.json"))
    best.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    best.on_train_begin()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "other.tmp-1-x.keras"]


def test_only_the_temporaries_of_the_named_file_are_removed(tmp_path):
    for name in ("history.json", "history.json.tmp-9-0123456789ab", "metrics.json.tmp-9-0123456789ab"):
        (tmp_path / name).write_text("{}")
    files.remove_temporaries(str(tmp_path / "history.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "metrics.json.tmp-9-0123456789ab"]
