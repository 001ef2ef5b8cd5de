"""Reporting the tuning metric to a Vertex AI hyperparameter tuning job (Vizier).

Vertex reads each trial's metric from the file the `cloudml-hypertune` package writes
(JSON lines in /tmp/hypertune/output.metrics, or $CLOUD_ML_HP_METRIC_FILE) and sets
CLOUD_ML_TRIAL_ID in every trial's containers. `ReportMetric` hands the metric to that
package after every epoch, with the epoch number as the step, so Vizier sees the whole
curve: median stopping compares trials at the same step, and
measurementSelectionType=BEST_MEASUREMENT picks the best epoch.

Only the chief reports (`trial_callbacks(chief=...)`): the workers of a multi-worker
trial see the same values, and two writers of one file would interleave.
"""

import math
import os

import keras
from absl import logging

TRIAL_ID_VARIABLE = "CLOUD_ML_TRIAL_ID"
METRIC_FILE_VARIABLE = "CLOUD_ML_HP_METRIC_FILE"
DEFAULT_METRIC = "val_accuracy"


class ReportMetric(keras.callbacks.Callback):
    """After every epoch, reports `logs[metric]` to Vertex's hyperparameter tuning.

    Args:
      metric: the Keras log key; it is also the metric id of the study spec.
      reporter: an object with `report_hyperparameter_tuning_metric` (default: a new
        `hypertune.HyperTune()`, which reads the environment when made).
    """

    def __init__(self, metric=DEFAULT_METRIC, reporter=None):
        super().__init__()
        self.metric = metric
        self._reporter = reporter
        self._warned = False

    def on_train_begin(self, logs=None):
        if self._reporter is None:
            import hypertune  # cloudml-hypertune: in the training image's install_requires

            self._reporter = hypertune.HyperTune()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.metric)
        if value is None or not math.isfinite(float(value)):
            if not self._warned:
                logging.warning(
                    "Expected %s in the epoch logs to report to the tuning job. Received keys: "
                    "%s. The trial will have no measurement for this epoch.",
                    self.metric, sorted(logs or {}),
                )
                self._warned = True
            return
        self._reporter.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag=self.metric,
            metric_value=float(value),
            global_step=epoch + 1,  # 1-based: the package writes a step of 0 as "0" too
        )


def in_tuning_trial(environ=None):
    """Whether this process runs as a trial of a Vertex hyperparameter tuning job."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(TRIAL_ID_VARIABLE) or environ.get(METRIC_FILE_VARIABLE))


def trial_callbacks(*, chief, environ=None, metric=DEFAULT_METRIC):
    """[ReportMetric] for the chief of a tuning trial, else [] (an ordinary run)."""
    if chief and in_tuning_trial(environ):
        return [ReportMetric(metric)]
    return []
