"""Training: architectures, input, strategy, export, evaluation and reports."""

import importlib.util

# Looked up, not imported: config and constant modules (trainer.config) stay free of
# TensorFlow, so cloud/ can import them cheaply. When TensorFlow is absent, importing
# preprocessing._tf raises the ImportError that names the [cpu] and [gpu] extras.
if importlib.util.find_spec("tensorflow") is None:
    from preprocessing import _tf  # noqa: F401
