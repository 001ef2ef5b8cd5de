"""Training: architectures, input, strategy, export, evaluation and reports."""

from preprocessing import _tf  # noqa: F401  (a clear error when TensorFlow is missing)
