"""Training: architectures, input, strategy, export, evaluation and reports."""

import importlib.util

# Looked up, not imported: config and constant modules (trainer.config) stay free of
# TensorFlow, so cloud/ can import them cheaply. When TensorFlow is absent, importing
# common.quiet_tf raises the ImportError that names the [cpu] and [gpu] extras.
if importlib.util.find_spec("tensorflow") is None:
    from common.quiet_tf import tf  # noqa: F401
