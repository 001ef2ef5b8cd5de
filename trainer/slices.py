"""Evaluation slices: accuracy and count of a split's tweets grouped by what they look
like, so a user sees where the model fails (short tweets, replies, link shares, words
the vocabulary lacks).

Each family partitions the split, so its counts add up to the split's count:

- `length`: real tokens, i.e. non-padding ids. Token ids are post-truncated at the
  contract's max_length, so a longer tweet counts max_length tokens and the buckets
  above max_length stay empty.
- `link`, `mention`: whether the ids hold the token the standardizer writes for a link
  or a user name ("url" and "user" for the default one). A literal word "url" or "user"
  is the same token and counts too; a link after the first max_length tokens is not seen.
- `oov_share`: the share of `[UNK]` ids among the real tokens.

Everything is computed from the token ids the model saw, not from the raw text, so a
slice says exactly what the model was given. An empty bucket is listed with count 0
and accuracy None.
"""

import typing

import numpy as np
from sklearn import metrics as sk_metrics

from common import standardizers
from preprocessing import schema
from preprocessing import text
from preprocessing import text_twitter

# (label, largest length in the bucket); None: no upper bound.
LENGTH_BUCKETS = (("1-5", 5), ("6-10", 10), ("11-20", 20), ("21+", None))
# (label, largest share of [UNK] ids in percent); None: no upper bound.
OOV_SHARE_BUCKETS = (("0%", 0), ("(0%, 10%]", 10), ("(10%, 25%]", 25), ("> 25%", None))
FAMILIES = ("length", "link", "mention", "oov_share")


class MarkerTokens(typing.NamedTuple):
    """The tokens a standardizer writes for a link and for a user name."""

    link: str
    mention: str


class MarkerIds(typing.NamedTuple):
    """Vocabulary ids of the `MarkerTokens`; None when the vocabulary lacks the token
    (then a link or user name became [UNK] and cannot be told apart)."""

    link: typing.Optional[int]
    mention: typing.Optional[int]
    tokens: MarkerTokens


# Standardizer recorded in metadata.json (by name) -> the tokens it writes. A new
# standardizer adds its entry here.
_MARKER_TOKENS = {
    standardizers.GLOVE6B_STANDARDIZER: MarkerTokens(link=text.LINK_TOKEN, mention=text.MENTION_TOKEN),
    standardizers.TWITTER_STANDARDIZER: MarkerTokens(link=text_twitter.LINK_TOKEN, mention=text_twitter.MENTION_TOKEN),
}


def marker_tokens(metadata):
    """The `MarkerTokens` of the standardizer a data directory was written with.

    Raises:
      ValueError: the recorded standardizer has no entry in `_MARKER_TOKENS`.
    """
    standardizer = schema.standardizer_of(metadata)
    if standardizer not in _MARKER_TOKENS:
        raise ValueError(
            f"Expected a standardizer whose link and user-name tokens are known: "
            f"{sorted(_MARKER_TOKENS)}. Received: standardizer {standardizer!r} in "
            "metadata.json. Add its tokens to trainer/slices.py:_MARKER_TOKENS."
        )
    return _MARKER_TOKENS[standardizer]


def marker_ids(metadata, vocab_tokens):
    """`MarkerIds` of the data directory's standardizer in its vocabulary (vocab.txt)."""
    tokens = marker_tokens(metadata)
    ids = {token: i for i, token in enumerate(vocab_tokens)}
    return MarkerIds(link=ids.get(tokens.link), mention=ids.get(tokens.mention), tokens=tokens)


def slice_metrics(token_ids, labels, predicted, markers):
    """Accuracy and count per slice of one split.

    Args:
      token_ids: int [n, max_length], post-padded with `schema.PAD_ID`.
      labels: 0/1 labels [n].
      predicted: 0/1 predicted labels [n] (`evaluate.predicted_labels`).
      markers: the `MarkerIds` of the data directory (`marker_ids`).

    Returns:
      {family: [{"slice": label, "count": int, "accuracy": float or None}, ...]} for
      each of `FAMILIES`, buckets in a fixed order; None where a bucket is empty.
    """
    token_ids = np.asarray(token_ids)
    labels, predicted = np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1)
    if token_ids.ndim != 2 or not token_ids.shape[0] == labels.size == predicted.size:
        raise ValueError(
            f"Expected token ids [n, max_length] and n labels and predictions. Received: "
            f"token ids {list(token_ids.shape)}, {labels.size} labels, {predicted.size} predictions."
        )
    real = token_ids != schema.PAD_ID
    lengths = real.sum(axis=1)
    unknown = (real & (token_ids == schema.UNK_ID)).sum(axis=1)

    def rows(named_masks):
        return [_row(name, mask, labels, predicted) for name, mask in named_masks]

    return {
        "length": rows(_bucket_masks(lengths, LENGTH_BUCKETS)),
        "link": rows(_presence_masks(token_ids, markers.link, markers.tokens.link, "link")),
        "mention": rows(_presence_masks(token_ids, markers.mention, markers.tokens.mention, "mention")),
        # Whole percent bounds, compared in integers: 1 [UNK] in 10 tokens is exactly 10%.
        "oov_share": rows(_bucket_masks(100 * unknown, OOV_SHARE_BUCKETS, scale=lengths)),
    }


def _bucket_masks(values, buckets, scale=None):
    """(label, mask) per bucket: values <= bound x scale (scale 1 when None), each value
    in the first bucket that holds it, so the buckets partition the examples."""
    scale = np.ones_like(values) if scale is None else scale
    unassigned = np.ones(values.shape, dtype=bool)
    for label, bound in buckets:
        mask = unassigned if bound is None else unassigned & (values <= bound * scale)
        unassigned = unassigned & ~mask
        yield label, mask


def _presence_masks(token_ids, token_id, token, what):
    if token_id is None:
        # Never in the train split's vocabulary: these tweets hold [UNK] where it was.
        return [(f"unknown ({token!r} not in the vocabulary)", np.ones(token_ids.shape[0], dtype=bool))]
    has = (token_ids == token_id).any(axis=1)
    return [(f"with {what}", has), (f"without {what}", ~has)]


def _row(name, mask, labels, predicted):
    count = int(mask.sum())
    accuracy = float(sk_metrics.accuracy_score(labels[mask], predicted[mask])) if count else None
    return {"slice": name, "count": count, "accuracy": accuracy}


def describe(metadata):
    """One paragraph for the report: how each family is defined for this data directory."""
    tokens = marker_tokens(metadata)
    return (
        f"Length counts real tokens (non-padding ids); ids are truncated at max_length "
        f"{metadata.get('max_length', '?')}, so a longer tweet counts as that many and a "
        f"link or user name after it is not seen. Link and mention: the ids hold "
        f"{tokens.link!r} or {tokens.mention!r}, the tokens the standardizer writes for "
        f"links and user names (a literal word {tokens.link!r} or {tokens.mention!r} counts "
        "too). OOV share: the share of [UNK] ids among the real tokens."
    )
