"""The bag-of-words baseline every model is compared with: TF-IDF over 1- and 2-grams
of the standardized text plus logistic regression (scikit-learn).

It is trained on the data directory's own train split and scored on its val and test
splits, from the `text` feature of the TFRecords: the same tweets, the same
standardization and the same split the networks see, so the comparison is fair. The
settings are the ones measured in bench/quality_results.md (0.794 val / 0.774 test on
the real 59k sample).
"""

import dataclasses
import typing

import numpy as np

from preprocessing import schema
from trainer import data

NAME = "TF-IDF 1-2-grams + logistic regression"
# min_df 2 drops the n-grams of a single tweet; `\S+` keeps the standardizer's tokens
# (punctuation, emoticons) whole instead of scikit-learn's word pattern splitting them.
_VECTORIZER = dict(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+")
_REGULARIZATION_C = 1.0


@dataclasses.dataclass(frozen=True)
class BaselineScores:
    """Accuracy of the baseline on the splits it was scored on."""

    val_accuracy: float
    test_accuracy: typing.Optional[float]  # None: the data directory has no test split
    features: int  # n-grams in the fitted vocabulary (the model's coefficients, bias aside)
    train_examples: int

    def as_dict(self):
        return {"name": NAME, **dataclasses.asdict(self)}


def split_texts(data_dir, split):
    """(standardized texts, labels) of `split` from its TFRecords."""
    records = data.read_records(data_dir, split)
    return [text.decode("utf-8") for text in records[schema.TEXT]], records[schema.LABEL]


def tfidf_logistic_regression(contract):
    """Fits the baseline on the contract's train split; scores val and (when present) test.

    Args:
      contract: a `data.Contract` of a data directory on disk.

    Returns:
      A `BaselineScores`.

    Raises:
      schema.ContractError: the train or val split is empty.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    for split in ("train", "val"):
        if contract.count(split) < 1:
            raise schema.ContractError(
                f"Expected examples in the {split} split of {contract.data_dir} for the baseline. "
                f"Received: {contract.count(split)}. Preprocess with a larger CSV."
            )
    train_x, train_y = split_texts(contract.data_dir, "train")
    vectorizer = TfidfVectorizer(**_VECTORIZER)
    classifier = LogisticRegression(C=_REGULARIZATION_C, max_iter=2000)
    classifier.fit(vectorizer.fit_transform(train_x), train_y)

    def accuracy(split):
        texts, labels = split_texts(contract.data_dir, split)
        return float(np.mean(classifier.predict(vectorizer.transform(texts)) == labels))

    has_test = contract.count("test") > 0 and bool(contract.split_shards("test"))
    return BaselineScores(
        val_accuracy=accuracy("val"),
        test_accuracy=accuracy("test") if has_test else None,
        features=len(vectorizer.vocabulary_),
        train_examples=len(train_y),
    )
