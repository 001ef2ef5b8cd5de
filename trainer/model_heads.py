"""Pieces every architecture may use between its body and its output: masked pooling
over time, and the output layer with an optional "wide" bag-of-words logit.

Both are Keras layers (registered serializable), so a model that uses them survives
`model.save`/`load_model` and the serving export unchanged.

Why a wide term: frozen GloVe 6B puts sentiment-opposite words close together ("good",
"bad"), and a network on top of frozen vectors cannot give one word a weight of its
own. A trainable scalar per vocabulary id (and, with bigrams, per hashed pair of
adjacent ids) summed over the tweet and added to the network's logit gives it exactly
that ("wide & deep"); on the real 59k sample it lifted conv1d from 0.758 to 0.800 val
accuracy (bench/quality_results.md).
"""

import keras

from preprocessing import schema

# Pooling over time of a sequence [batch, steps, channels] -> [batch, channels (x2)].
MEAN, MAX, MAX_MEAN, LAST = "mean", "max", "max_mean", "last"
MASKED_POOLINGS = (MEAN, MAX, MAX_MEAN)

# The wide term: none (the seed's output layer), one weight per id, + per hashed bigram.
WIDE_NONE, WIDE_UNIGRAMS, WIDE_BIGRAMS = "none", "unigrams", "bigrams"
WIDE_CHOICES = (WIDE_NONE, WIDE_UNIGRAMS, WIDE_BIGRAMS)
DEFAULT_WIDE_BUCKETS = 2**18

OUTPUT_LAYER = "probability"


def _real_steps(sequence, token_ids):
    """float mask [batch, steps, 1] of the steps of `sequence` that start at a real token.

    A sequence of a convolution without padding has fewer steps than tokens: window i
    covers tokens i..i+k-1, and it is real text when token i is (the data is
    post-padded), so the first `steps` token ids decide.
    """
    steps = sequence.shape[1]
    real = keras.ops.not_equal(token_ids[:, :steps], schema.PAD_ID)
    return keras.ops.expand_dims(keras.ops.cast(real, sequence.dtype), -1)


@keras.saving.register_keras_serializable(package="s140")
class MaskedGlobalPooling1D(keras.layers.Layer):
    """Mean, max or [max, mean] over the real steps of a sequence; call on
    [sequence, token_ids]. Every row has a real first token (the Beam job drops empty
    tweets, the export turns one into [UNK]), so no row is fully masked."""

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in MASKED_POOLINGS:
            raise ValueError(f"Expected a pooling in {list(MASKED_POOLINGS)}. Received: {mode!r}.")
        self.mode = mode
        self.supports_masking = True  # consumes the mask of an RNN's sequence output

    def call(self, inputs):
        sequence, token_ids = inputs
        real = _real_steps(sequence, token_ids)
        mean = keras.ops.sum(sequence * real, axis=1) / keras.ops.maximum(keras.ops.sum(real, axis=1), 1.0)
        if self.mode == MEAN:
            return mean
        # Padding steps take the row's minimum: they cannot win the max, and no constant
        # (such as -1e9, which float16 cannot hold) is needed.
        floor = keras.ops.min(sequence, axis=1, keepdims=True)
        largest = keras.ops.max(keras.ops.where(real > 0, sequence, floor), axis=1)
        return largest if self.mode == MAX else keras.ops.concatenate([largest, mean], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None  # no time axis left

    def compute_output_shape(self, input_shape):
        batch, _, channels = input_shape[0]
        return (batch, channels * (2 if self.mode == MAX_MEAN else 1))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="s140")
class WideAndDeepOutput(keras.layers.Layer):
    """sigmoid(Dense(1)(features) + sum of per-id weights (+ per hashed bigram weights));
    call on [features, token_ids]. The weights start at zero, so at step 0 the model is
    the network alone. Computed in float32 (the caller passes dtype="float32").

    Args:
      vocab_size: rows of the per-id table (PAD's weight is masked out).
      wide: WIDE_UNIGRAMS or WIDE_BIGRAMS.
      buckets: rows of the bigram table; pair (a, b) of adjacent ids goes to bucket
        (a * vocab_size + b) % buckets, in int64 (no overflow for any vocabulary).
    """

    def __init__(self, vocab_size, wide, buckets=DEFAULT_WIDE_BUCKETS, **kwargs):
        super().__init__(**kwargs)
        if wide not in (WIDE_UNIGRAMS, WIDE_BIGRAMS):
            raise ValueError(f"Expected wide in {[WIDE_UNIGRAMS, WIDE_BIGRAMS]}. Received: {wide!r}.")
        self.vocab_size, self.wide, self.buckets = int(vocab_size), wide, int(buckets)
        self.supports_masking = True
        self.logit = keras.layers.Dense(1, dtype=self.dtype_policy, name="logit")
        self.unigrams = keras.layers.Embedding(
            self.vocab_size, 1, embeddings_initializer="zeros", dtype=self.dtype_policy, name="wide_unigrams"
        )
        self.bigrams = None
        if wide == WIDE_BIGRAMS:
            self.bigrams = keras.layers.Embedding(
                self.buckets, 1, embeddings_initializer="zeros", dtype=self.dtype_policy, name="wide_bigrams"
            )

    def build(self, input_shape):
        self.logit.build(input_shape[0])
        self.unigrams.build()
        if self.bigrams is not None:
            self.bigrams.build()
        self.built = True

    def call(self, inputs):
        features, token_ids = inputs
        token_ids = keras.ops.cast(token_ids, "int64")
        real = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(token_ids, schema.PAD_ID), self.compute_dtype), -1)
        logit = self.logit(features) + keras.ops.sum(self.unigrams(token_ids) * real, axis=1)
        if self.bigrams is not None:
            pairs = (token_ids[:, :-1] * self.vocab_size + token_ids[:, 1:]) % self.buckets
            # A pair is real when its second token is (post-padding: then the first is too).
            logit = logit + keras.ops.sum(self.bigrams(pairs) * real[:, 1:], axis=1)
        return keras.ops.sigmoid(logit)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "wide": self.wide, "buckets": self.buckets}


def output_layer(features, token_ids, *, vocab_size, wide, wide_buckets):
    """The probability [batch, 1] in float32 whatever the global policy: under
    mixed_float16 a float16 sigmoid saturates to exactly 0 or 1 and binary
    cross-entropy becomes inf/NaN. wide="none" is the seed's Dense(1, sigmoid)."""
    if wide == WIDE_NONE:
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=OUTPUT_LAYER)(features)
    head = WideAndDeepOutput(vocab_size, wide, wide_buckets, dtype="float32", name=OUTPUT_LAYER)
    return head([features, token_ids])


def pool(sequence, token_ids, mode, *, seed_mean):
    """Pools a sequence over time. mode "mean" is `seed_mean` (the seed's layer, so its
    models and parameter counts stay); "max" and "max_mean" pool over the real steps."""
    if mode == MEAN:
        return seed_mean(sequence)
    return MaskedGlobalPooling1D(mode)([sequence, token_ids])
