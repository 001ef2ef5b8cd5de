"""Test-set metrics of a binary classifier, computed exactly in numpy.

Keras' AUC metric approximates the ROC curve with a fixed number of thresholds; the
report wants the exact value, which is the Mann-Whitney statistic over the ranks of
the probabilities (ties get their average rank, i.e. count one half). No sklearn: it
is a test-only dependency.

The decision rule is `probability > threshold`, the same as Keras' BinaryAccuracy,
Precision and Recall, so the report agrees with the metrics logged during training.
"""

import numpy as np

from preprocessing._tf import tf

# Keras' backend epsilon: the clip its binary cross-entropy applies to probabilities.
_EPSILON = 1e-7


def predicted_labels(probabilities, threshold=0.5):
    """1 where probability > threshold, else 0 (int64)."""
    return (np.asarray(probabilities, dtype=np.float64) > threshold).astype(np.int64)


def binary_metrics(labels, probabilities, threshold=0.5):
    """Accuracy, precision, recall, F1, exact ROC AUC, log loss and the confusion matrix.

    Args:
      labels: 0/1 labels, any shape with one entry per example.
      probabilities: probabilities of label 1, same number of entries.
      threshold: an example is predicted positive when its probability > threshold.

    Returns:
      A dict of Python numbers: accuracy, precision, recall, f1 (0.0 when undefined,
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
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    count = labels.size
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    clipped = np.clip(probabilities, _EPSILON, 1.0 - _EPSILON)
    loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1.0 - clipped))
    return {
        "accuracy": (tp + tn) / count,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "roc_auc": roc_auc(labels, probabilities),
        "loss": float(loss),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "count": int(count),
        "positive_rate": (tp + fp) / count,
        "label_positive_rate": (tp + fn) / count,
        "threshold": float(threshold),
    }


def roc_auc(labels, scores):
    """Exact area under the ROC curve; None when labels hold only one class.

    AUC = P(score of a random positive > score of a random negative), ties counting
    one half, which is (sum of positive ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)
    with average ranks for ties.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positives = int(np.sum(labels == 1))
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(scores)
    u = ranks[labels == 1].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def _average_ranks(values):
    """1-based ranks of values, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], values.size)  # exclusive
    # Positions start..end-1 hold ranks start+1..end, whose mean is (start + 1 + end) / 2.
    mean_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else 0.0


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


def evaluate_model(model, dataset, *, threshold=0.5):
    """`binary_metrics` of `model` on every batch of `dataset`.

    Args:
      model: a keras.Model from token ids to the positive probability [batch, 1].
      dataset: yields (token_ids, labels) batches, e.g. `trainer.data.make_dataset(...,
        "test", ...)`. One pass; labels and predictions come from the same batch, so a
        shuffled dataset is fine.
      threshold: decision threshold (probability > threshold is positive).

    Returns:
      The dict of `binary_metrics`.
    """
    # One traced function instead of eager layer calls per batch; it runs outside any
    # distribution strategy, so a model trained under MirroredStrategy works as is.
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    labels, probabilities = [], []
    for token_ids, batch_labels in dataset:
        probabilities.append(np.asarray(tf.cast(predict(token_ids), tf.float32)).reshape(-1))
        labels.append(np.asarray(batch_labels).reshape(-1))
    if not labels:
        raise ValueError("Expected a dataset with at least one batch. Received: an empty dataset.")
    return binary_metrics(np.concatenate(labels), np.concatenate(probabilities), threshold)
