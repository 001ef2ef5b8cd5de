"""Preprocessing: Sentiment140 CSVs -> TFRecords, vocabulary, GloVe matrix, metadata.json."""

import importlib.util

# Looked up, not imported (see trainer/__init__.py): preprocessing.schema and
# preprocessing.config stay free of TensorFlow, and a missing TensorFlow still gets the
# message naming the [cpu] and [gpu] extras rather than keras' bare ModuleNotFoundError.
if importlib.util.find_spec("tensorflow") is None:
    from common.quiet_tf import tf  # noqa: F401
