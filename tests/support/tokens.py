"""The reference split of standardized text into tokens, as every reader of the `text`
feature makes it: on " " (the serving model's TextVectorization splits on whitespace,
and the standardizer leaves single spaces only). Tests compare the job's own token ids
and the standardizers' output with it."""

from common.quiet_tf import tf


def split_tokens(standardized):
    """RaggedTensor of the tokens of standardized strings (a list or a string tensor)."""
    return tf.strings.split(tf.convert_to_tensor(standardized, dtype=tf.string), sep=" ")
