"""Scoring tweets with an exported model: the library behind `s140-predict`.

Needs only the export (`trainer.export.export_serving_model`): the standardizer, the
vocabulary and the weights are all inside it.

Input bytes are decoded line by line: UTF-8, and any line that is not valid UTF-8 as
latin-1 (the encoding of the Sentiment140 files the models are trained on; it maps
every byte), so one odd line never stops a batch.
"""

import dataclasses
import json
import os
import typing

from absl import logging

from common import errors
from preprocessing import schema
from trainer import evaluate
from trainer import export

POSITIVE = "positive"
NEGATIVE = "negative"
FORMATS = ("text", "json")
FALLBACK_ENCODING = "latin-1"
# After the tweet in text output when no word of it is in the vocabulary: its score
# is the model's reading of one unknown word, nothing about the tweet itself.
NO_KNOWN_WORD_NOTE = "(no known word: the score says nothing about this tweet)"


@dataclasses.dataclass(frozen=True)
class Prediction:
    text: str
    label: str  # POSITIVE or NEGATIVE
    probability: float  # of POSITIVE
    known_tokens: typing.Optional[int] = None  # tokens in the vocabulary (not [UNK]), if counted


def predict(model, texts, *, threshold=0.5):
    """Scores tweets.

    Args:
      model: an export directory (local or gs://) or a loaded `export.ServingModel`.
      texts: raw tweets (str).
      threshold: probability > threshold is labelled positive (the rule of
        `evaluate.binary_metrics` and Keras' accuracy).

    Returns:
      One `Prediction` per tweet, in order.
    """
    if not 0.0 <= threshold <= 1.0:
        raise errors.SettingError(f"Expected threshold in [0, 1]. Received: {threshold!r}.")
    texts = list(texts)
    serving = export.load_serving_model(model) if isinstance(model, str) else model
    if not texts:
        return []
    probabilities = serving(texts)
    labels = evaluate.predicted_labels(probabilities, threshold)
    known = (serving.tokenize(texts)[1] > schema.UNK_ID).sum(axis=1)
    return [
        Prediction(text=t, label=POSITIVE if label else NEGATIVE, probability=float(p), known_tokens=int(k))
        for t, p, label, k in zip(texts, probabilities, labels, known)
    ]


def decode_line(data):
    """(text, encoding) of one line's bytes: UTF-8, else FALLBACK_ENCODING."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode(FALLBACK_ENCODING), FALLBACK_ENCODING


def read_tweets(lines, first_number=1):
    """One tweet per line (str, or bytes decoded by `decode_line`): strips the line
    ending, skips blank lines; warns which lines (numbered from `first_number`) were
    not UTF-8."""
    tweets, fallback = [], []
    for number, line in enumerate(lines, start=first_number):
        if isinstance(line, bytes):
            line, encoding = decode_line(line)
            if encoding != "utf-8":
                fallback.append(number)
        tweet = line.rstrip("\r\n")
        if tweet.strip():
            tweets.append(tweet)
    if fallback:
        shown = ", ".join(str(number) for number in fallback[:10]) + (", ..." if len(fallback) > 10 else "")
        plural = len(fallback) > 1
        logging.warning("%s %s %s not UTF-8: read as %s.", "Lines" if plural else "Line", shown,
                        "are" if plural else "is", FALLBACK_ENCODING)
    return tweets


def line_batches(fd, max_lines=1024):
    """Lists of the lines (bytes, without their ending) that file descriptor `fd` has
    ready: each read takes what is waiting, so a line typed or piped in alone is scored
    at once, and a file or a fast pipe is scored in batches of up to `max_lines`."""
    pending = b""
    while True:
        chunk = os.read(fd, 1 << 16)  # blocks until something is there; b"" at the end
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for start in range(0, len(lines), max_lines):
            yield lines[start:start + max_lines]
    if pending:
        yield [pending]


def format_prediction(prediction, output_format="text"):
    """One output line: `label<TAB>probability<TAB>tweet`, or a JSON object.

    A tweet without a known word gets NO_KNOWN_WORD_NOTE as a fourth text column; JSON
    carries `known_tokens` whenever it was counted.
    """
    if output_format == "json":
        fields = {"text": prediction.text, "label": prediction.label, "probability": prediction.probability}
        if prediction.known_tokens is not None:
            fields["known_tokens"] = prediction.known_tokens
        return json.dumps(fields)
    if output_format == "text":
        # Tabs and line breaks inside a tweet would break the columns.
        tweet = " ".join(prediction.text.split("\t")).replace("\r", " ").replace("\n", " ")
        note = f"\t{NO_KNOWN_WORD_NOTE}" if prediction.known_tokens == 0 else ""
        return f"{prediction.label}\t{prediction.probability:.6f}\t{tweet}{note}"
    raise ValueError(f"Expected an output format in {list(FORMATS)}. Received: {output_format!r}.")
