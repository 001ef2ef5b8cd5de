"""Scoring tweets with an exported model: the library behind `s140-predict`.

Needs only the export (`trainer.export.export_serving_model`): the standardizer, the
vocabulary and the weights are all inside it.
"""

import dataclasses
import json

from trainer import evaluate
from trainer import export

POSITIVE = "positive"
NEGATIVE = "negative"
FORMATS = ("text", "json")


@dataclasses.dataclass(frozen=True)
class Prediction:
    text: str
    label: str  # POSITIVE or NEGATIVE
    probability: float  # of POSITIVE


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
        raise ValueError(f"Expected threshold in [0, 1]. Received: {threshold!r}.")
    texts = list(texts)
    serving = export.load_serving_model(model) if isinstance(model, str) else model
    probabilities = serving(texts) if texts else []
    labels = evaluate.predicted_labels(probabilities, threshold) if texts else []
    return [
        Prediction(text=t, label=POSITIVE if label else NEGATIVE, probability=float(p))
        for t, p, label in zip(texts, probabilities, labels)
    ]


def read_tweets(lines):
    """One tweet per line: strips the line ending, skips blank lines."""
    tweets = []
    for line in lines:
        tweet = line.rstrip("\r\n")
        if tweet.strip():
            tweets.append(tweet)
    return tweets


def format_prediction(prediction, output_format="text"):
    """One output line: `label<TAB>probability<TAB>tweet`, or a JSON object."""
    if output_format == "json":
        return json.dumps(
            {"text": prediction.text, "label": prediction.label, "probability": prediction.probability}
        )
    if output_format == "text":
        # Tabs and line breaks inside a tweet would break the columns.
        tweet = " ".join(prediction.text.split("\t")).replace("\r", " ").replace("\n", " ")
        return f"{prediction.label}\t{prediction.probability:.6f}\t{tweet}"
    raise ValueError(f"Expected an output format in {list(FORMATS)}. Received: {output_format!r}.")
