"""Test-set metrics of a binary classifier, from `sklearn.metrics`.

scikit-learn computes them exactly: Keras' AUC metric approximates the ROC curve with a
fixed number of thresholds, while `roc_auc_score` is the exact area (ties count one
half). The loss clips probabilities the way Keras' binary cross-entropy does, so it
agrees with the loss logged during training.

The decision rule is `probability > threshold`, the same as Keras' BinaryAccuracy,
Precision and Recall, so the report agrees with the metrics logged during training.
`evaluate_splits` adds the accuracy per slice of each split (`trainer.slices`).
"""

import typing

import numpy as np
from sklearn import metrics as sk_metrics

from common.quiet_tf import tf
from trainer import data
from trainer import slices as slices_lib

# Keras' backend epsilon: the clip its binary cross-entropy applies to probabilities.
_EPSILON = 1e-7
_CLASSES = (0, 1)


def predicted_labels(probabilities, threshold=0.5):
    """1 where probability > threshold, else 0 (int64)."""
    return (np.asarray(probabilities, dtype=np.float64) > threshold).astype(np.int64)


def accuracy_interval(correct, count, confidence=0.95):
    """[low, high]: the Wilson score interval of an accuracy of `correct` of `count`
    (scipy). On a 359-tweet test set it spans about +-0.04: differences smaller than
    that are not evidence of a better model."""
    from scipy import stats

    interval = stats.binomtest(int(correct), int(count)).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(interval.low), float(interval.high)]


def binary_metrics(labels, probabilities, threshold=0.5):
    """Accuracy, precision, recall, F1, exact ROC AUC, log loss and the confusion matrix.

    Args:
      labels: 0/1 labels, any shape with one entry per example.
      probabilities: probabilities of label 1, same number of entries.
      threshold: an example is predicted positive when its probability > threshold.

    Returns:
      A dict of Python numbers: accuracy and its 95% Wilson interval (accuracy_ci95,
        [low, high]), precision, recall, f1 (0.0 when undefined,
      as sklearn's default), roc_auc (None when only one class is present), loss (mean
      binary cross-entropy), confusion_matrix {"tn", "fp", "fn", "tp"}, count,
      positive_rate (share predicted positive), label_positive_rate (share labelled
      positive), threshold.

    Raises:
      ValueError: for mismatched sizes, no examples, labels other than 0/1, or
        probabilities outside [0, 1] (NaN included).
    """
    labels, probabilities = _check(labels, probabilities, threshold)
    predicted = predicted_labels(probabilities, threshold)
    tn, fp, fn, tp = (
        int(v) for v in sk_metrics.confusion_matrix(labels, predicted, labels=_CLASSES).ravel()
    )
    count = labels.size
    scores = dict(zero_division=0.0, labels=_CLASSES)
    clipped = np.clip(probabilities, _EPSILON, 1.0 - _EPSILON)
    return {
        "accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
        "accuracy_ci95": accuracy_interval(tn + tp, count),
        "precision": float(sk_metrics.precision_score(labels, predicted, **scores)),
        "recall": float(sk_metrics.recall_score(labels, predicted, **scores)),
        "f1": float(sk_metrics.f1_score(labels, predicted, **scores)),
        "roc_auc": roc_auc(labels, probabilities),
        "loss": float(sk_metrics.log_loss(labels, clipped, labels=_CLASSES)),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "count": int(count),
        "positive_rate": (tp + fp) / count,
        "label_positive_rate": (tp + fn) / count,
        "threshold": float(threshold),
    }


def roc_auc(labels, scores):
    """Exact area under the ROC curve (`sklearn.metrics.roc_auc_score`, ties counting
    one half); None when labels hold only one class, where it is undefined."""
    labels = np.asarray(labels).reshape(-1)
    if np.unique(labels).size < 2:
        return None
    return float(sk_metrics.roc_auc_score(labels, np.asarray(scores, dtype=np.float64).reshape(-1)))


def _check(labels, probabilities, threshold):
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if labels.size != probabilities.size:
        raise ValueError(
            f"Expected one probability per label. Received: {labels.size} labels and "
            f"{probabilities.size} probabilities."
        )
    if labels.size == 0:
        raise ValueError("Expected at least one example. Received: none.")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(
            f"Expected labels 0 or 1. Received: {sorted(set(np.unique(labels).tolist()) - {0, 1})[:5]}."
        )
    outside = ~((probabilities >= 0.0) & (probabilities <= 1.0))  # NaN counts as outside
    if outside.any():
        raise ValueError(
            f"Expected probabilities in [0, 1]. Received: {int(outside.sum())} outside "
            f"(e.g. {probabilities[outside][:3].tolist()}). Does the model end in a sigmoid?"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"Expected threshold in [0, 1]. Received: {threshold!r}.")
    return labels.astype(np.int64), probabilities


def predict_dataset(model, dataset):
    """(token ids [n, max_length], labels [n], probabilities [n]) of one pass of `dataset`.

    Args:
      model: a keras.Model from token ids to the positive probability [batch, 1].
      dataset: yields (token_ids, labels) batches, e.g. `trainer.data.make_dataset(...,
        "test", ...)`. Ids, labels and predictions come from the same batch, so a
        shuffled dataset is fine.
    """
    # One traced function instead of eager layer calls per batch; it runs outside any
    # distribution strategy, so a model trained under MirroredStrategy works as is.
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    token_ids, labels, probabilities = [], [], []
    for batch_ids, batch_labels in dataset:
        probabilities.append(np.asarray(tf.cast(predict(batch_ids), tf.float32)).reshape(-1))
        labels.append(np.asarray(batch_labels).reshape(-1))
        token_ids.append(np.asarray(batch_ids))
    if not labels:
        raise ValueError("Expected a dataset with at least one batch. Received: an empty dataset.")
    return np.concatenate(token_ids), np.concatenate(labels), np.concatenate(probabilities)


class SplitEvaluation(typing.NamedTuple):
    metrics: dict  # `binary_metrics`
    slices: dict  # `slices.slice_metrics`


def evaluate_splits(model, contract, splits, *, batch_size, threshold=0.5):
    """{split: `SplitEvaluation`} of `model` on each of `splits` of a data directory.

    Args:
      model: a keras.Model from token ids to the positive probability [batch, 1].
      contract: the `data.Contract`; its metadata and vocabulary define the slices.
      splits: e.g. ("val", "test").
      batch_size: examples per inference batch.
      threshold: decision threshold (probability > threshold is positive).
    """
    markers = slices_lib.marker_ids(contract.metadata, contract.vocab_tokens)
    evaluations = {}
    for split in splits:
        dataset = data.make_dataset(contract, split, batch_size=batch_size)
        token_ids, labels, probabilities = predict_dataset(model, dataset)
        predicted = predicted_labels(probabilities, threshold)
        evaluations[split] = SplitEvaluation(
            metrics=binary_metrics(labels, probabilities, threshold),
            slices=slices_lib.slice_metrics(token_ids, labels, predicted, markers),
        )
    return evaluations
