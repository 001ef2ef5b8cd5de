"""Imports TensorFlow quietly, or says which extra installs it.

Every module of the package that needs TensorFlow imports it from here, so it loads the
same way in a CLI, in a Beam worker process and in a test:

* TensorFlow comes from an extra (`[cpu]` or `[gpu]`) rather than from install_requires
  so that a CPU-only machine never downloads the CUDA wheels; a bare ImportError
  becomes an instruction.
* Its C++ start-up lines (oneDNN, "Could not find cuda drivers", "failed call to
  cuInit", ...) are dropped from stderr unless TF_CPP_MIN_LOG_LEVEL is 0 or 1
  (`preprocessing.quiet_tf`): Beam's worker processes import TensorFlow themselves,
  and every one of them would print them again.
"""

from preprocessing import quiet_tf

with quiet_tf.start_up_noise_filtered():
    try:
        import tensorflow as tf  # noqa: F401  (re-exported)
    except ImportError as error:  # pragma: no cover - exercised only on a broken install
        raise ImportError(
            "s140-trainer needs TensorFlow, which is installed through an extra. Expected one of: "
            "`pip install 's140-trainer[cpu]'` (CPU-only build) or `pip install 's140-trainer[gpu]'` "
            f"(CUDA build). Received: {error}"
        ) from error
    # Device discovery is where "failed call to cuInit" is written; do it now. Listing
    # physical devices does not start the runtime: logical devices can still be set up.
    tf.config.list_physical_devices()
