"""Imports TensorFlow, or says which extra installs it.

TensorFlow comes from an extra (`[cpu]` or `[gpu]`) rather than from install_requires so
that a CPU-only machine never downloads the CUDA wheels; this module turns the resulting
bare ImportError into an instruction.
"""

try:
    import tensorflow as tf  # noqa: F401  (re-exported)
except ImportError as error:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "s140-trainer needs TensorFlow, which is installed through an extra. Expected one of: "
        "`pip install 's140-trainer[cpu]'` (CPU-only build) or `pip install 's140-trainer[gpu]'` "
        f"(CUDA build). Received: {error}"
    ) from error
