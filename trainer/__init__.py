"""Training: architectures, input, strategy, export, evaluation and reports."""

from preprocessing import quiet_tf

# Every trainer and tuning command imports this package first, so TensorFlow loads here:
# without its C++ start-up lines, and with a clear error when it is not installed.
quiet_tf.import_tensorflow()
