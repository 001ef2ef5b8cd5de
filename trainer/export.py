"""The serving model: raw tweet strings in, probability of "positive" out.

The SavedModel carries the standardizer the data was made with (one of
`preprocessing.text.STANDARDIZERS`, by the name metadata.json records) and the
vocabulary inside its graph, so a caller sends tweets exactly as written and gets the
tokens the Beam job would have written for them: no train/serve skew, and no data
directory needed at serving time.

Signatures of an export:

  serving_default(text: string[batch]) -> {"probability": float32[batch]}
  tokenize(text: string[batch]) -> {"standardized": string[batch],
                                    "token_ids": int64[batch, max_length]}

`tokenize` reproduces the TFRecords' `token_ids` (post-padded with 0, post-truncated,
out-of-vocabulary tokens -> 1); it exists so that skew can be checked on a deployed
model. `assets.extra/s140_export.json`, written last, describes the export; its
presence is what makes a directory an s140 export.

Keras 3 cannot save string-input models through `tf.saved_model.save` (keras-team/keras
#19396, #19458), hence `keras.export.ExportArchive`.
"""

import json
import posixpath

import keras
import numpy as np

from common import errors
from common import files
from common.quiet_tf import tf
from preprocessing import schema
from preprocessing import text
from trainer import embedding_layers

SERVING_SIGNATURE = "serving_default"
TOKENIZE_SIGNATURE = "tokenize"
INPUT_KEY = "text"
OUTPUT_KEY = "probability"
STANDARDIZED_KEY = "standardized"
TOKEN_IDS_KEY = schema.TOKEN_IDS

EXPORT_FORMAT_VERSION = 1
# SavedModel's place for files that are not part of the graph (TF Serving looks there
# for warm-up data too); a serving runtime ignores what it does not know.
MANIFEST_PATH = posixpath.join("assets.extra", "s140_export.json")
_SAVED_MODEL_FILE = "saved_model.pb"

# Texts per call of the signature in `ServingModel.__call__`: bounds memory for long
# inputs while keeping the per-call overhead negligible.
_PREDICT_BATCH_SIZE = 1024


class ExportError(errors.UserError, ValueError):
    """A directory is not an export this module wrote (or can read)."""


def make_vectorizer(vocab_tokens, max_length, standardizer=text.DEFAULT_STANDARDIZER):
    """The TextVectorization that maps raw tweets to the TFRecords' `token_ids`, with the
    standardizer called `standardizer` (a name of text.STANDARDIZERS).

    Splitting on whitespace equals splitting the standardized text on " ": the
    standardizer collapses every run of whitespace into one space and strips the ends.
    """
    vocab_tokens = _check_vocab(vocab_tokens)
    vectorizer = keras.layers.TextVectorization(
        standardize=text.get_standardizer(standardizer).standardize,
        split="whitespace",
        # Keras recognises and keeps the leading "" (mask, id 0) and "[UNK]" (OOV, id 1).
        vocabulary=list(vocab_tokens),
        output_sequence_length=int(max_length),
        output_mode="int",
        name="vectorizer",
    )
    if vectorizer.vocabulary_size() != len(vocab_tokens):
        # Guards the id alignment: any shift would silently score other words.
        raise ValueError(
            f"Expected the vectorizer to keep all {len(vocab_tokens)} vocabulary entries. "
            f"Received: {vectorizer.vocabulary_size()}. Is vocab_tokens the data "
            "directory's vocab.txt, line i = token of id i?"
        )
    return vectorizer


def export_serving_model(model, *, vocab_tokens, max_length, export_dir,
                         standardizer=text.DEFAULT_STANDARDIZER):
    """Writes `model` with the standardizer and vocabulary in front as a SavedModel.

    Args:
      model: a keras.Model from int token ids [batch, max_length] to the probability
        of the positive class [batch, 1] (any float dtype: a mixed-precision model's
        output is cast to float32).
      vocab_tokens: the data directory's vocabulary, line i of vocab.txt = token of id
        i; vocab_tokens[0] == "" (padding), vocab_tokens[1] == "[UNK]".
      max_length: token ids per example, from metadata.json.
      export_dir: local path or gs:// URI; existing export files are replaced.
      standardizer: the name of the standardizer the data was made with
        (`data.Contract.standardizer`): the served model standardizes with it.

    Returns:
      export_dir.

    Raises:
      ValueError: when the vocabulary or max_length does not fit the model.
    """
    vocab_tokens = _check_vocab(vocab_tokens)
    max_length = _check_model(model, vocab_tokens, max_length)
    standardizer = text.get_standardizer(standardizer)
    vectorizer = make_vectorizer(vocab_tokens, max_length, standardizer.name)
    vectorizer(tf.constant([""]))  # builds it: ExportArchive tracks only built layers
    input_dtype = _input_dtype(model)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def tokenize(texts):
        return {
            STANDARDIZED_KEY: standardizer.standardize(texts),
            TOKEN_IDS_KEY: tf.cast(vectorizer(texts), tf.int64),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])
    def serve(texts):
        token_ids = _unk_for_empty(tf.cast(vectorizer(texts), tf.int64), max_length)
        probability = model(tf.cast(token_ids, input_dtype), training=False)
        # float32 whatever the policy the model ran under: clients parse JSON floats,
        # and float16 would round probabilities to about three digits.
        return {OUTPUT_KEY: tf.reshape(tf.cast(probability, tf.float32), [-1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(vectorizer)
    archive.add_endpoint(SERVING_SIGNATURE, serve)
    archive.add_endpoint(TOKENIZE_SIGNATURE, tokenize)
    manifest_path = posixpath.join(export_dir, MANIFEST_PATH)
    if tf.io.gfile.exists(manifest_path):
        # Written last: while it is absent the directory does not count as an export,
        # so a crash half-way through a re-export cannot pass for a complete one.
        tf.io.gfile.remove(manifest_path)
    archive.write_out(export_dir, verbose=False)
    _write_manifest(export_dir, model=model, vocab_size=len(vocab_tokens), max_length=max_length,
                    standardizer=standardizer)
    return export_dir


def _check_vocab(vocab_tokens):
    vocab_tokens = [str(token) for token in vocab_tokens]
    head = vocab_tokens[:2]
    if head != [schema.PAD_TOKEN, schema.UNK_TOKEN]:
        raise ValueError(
            f"Expected vocab_tokens to start with {[schema.PAD_TOKEN, schema.UNK_TOKEN]} "
            f"(ids {schema.PAD_ID} and {schema.UNK_ID}). Received: {head}. Pass the lines "
            f"of the data directory's {schema.VOCAB_FILE} unchanged."
        )
    return vocab_tokens


def _check_model(model, vocab_tokens, max_length):
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"Expected max_length to be a positive integer. Received: {max_length!r}.")
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) == 1 and inputs[0].shape[-1] is not None and inputs[0].shape[-1] != max_length:
        raise ValueError(
            f"Expected a model reading {max_length} token ids (max_length of the data). "
            f"Received: a model with input shape {tuple(inputs[0].shape)}."
        )
    embeddings = [
        layer for layer in model.layers
        if isinstance(layer, (keras.layers.Embedding, embedding_layers.PartlyFrozenEmbedding))
    ]
    if embeddings and embeddings[0].input_dim != len(vocab_tokens):
        raise ValueError(
            f"Expected vocab_tokens to have as many entries as the model's embedding has "
            f"rows ({embeddings[0].input_dim}). Received: {len(vocab_tokens)} tokens. Use "
            "the vocabulary of the data directory the model was trained on."
        )
    return int(max_length)


def _input_dtype(model):
    inputs = getattr(model, "inputs", None) or []
    return inputs[0].dtype if len(inputs) == 1 else tf.int64


def _unk_for_empty(token_ids, max_length):
    """Rows without a token become a lone [UNK].

    A tweet that standardizes to nothing ("", "~~~") never reaches training (the Beam
    job rejects it); as all padding it would be a fully masked row, on which a masked
    mean divides by zero (NaN) and Keras 3's cuDNN RNNs fail. "One unknown word" is the
    honest reading of such a tweet and gives every architecture a defined probability.
    """
    empty = tf.reduce_all(tf.equal(token_ids, schema.PAD_ID), axis=1, keepdims=True)
    lone_unk = tf.one_hot(0, max_length, on_value=schema.UNK_ID, off_value=schema.PAD_ID, dtype=tf.int64)
    return tf.where(empty, lone_unk[tf.newaxis, :], token_ids)


def _write_manifest(export_dir, *, model, vocab_size, max_length, standardizer):
    manifest = {
        "format": "s140-serving-model",
        "format_version": EXPORT_FORMAT_VERSION,
        "model_name": model.name,
        "standardizer": standardizer.name,
        "standardizer_version": standardizer.version,
        "schema_version": schema.SCHEMA_VERSION,
        "vocab_size": int(vocab_size),
        "max_length": int(max_length),
        "signatures": {
            SERVING_SIGNATURE: {"inputs": {INPUT_KEY: "string[batch]"}, "outputs": {OUTPUT_KEY: "float32[batch]"}},
            TOKENIZE_SIGNATURE: {
                "inputs": {INPUT_KEY: "string[batch]"},
                "outputs": {STANDARDIZED_KEY: "string[batch]", TOKEN_IDS_KEY: f"int64[batch, {max_length}]"},
            },
        },
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    files.write_json(posixpath.join(export_dir, MANIFEST_PATH), manifest)


# --- Loading.


def read_manifest(export_dir):
    """The manifest of an export; raises ExportError / FileNotFoundError saying what is wrong."""
    if not tf.io.gfile.isdir(export_dir):
        raise errors.MissingInput(
            f"Expected a model directory written by s140-train (a SavedModel with "
            f"{MANIFEST_PATH}). Received: {export_dir!r}, which does not exist or is not a "
            "directory."
        )
    if not tf.io.gfile.exists(posixpath.join(export_dir, _SAVED_MODEL_FILE)):
        raise ExportError(
            f"Expected a SavedModel ({_SAVED_MODEL_FILE}) exported by s140-train in "
            f"{export_dir!r}. Received: a directory without {_SAVED_MODEL_FILE} (contents: "
            f"{sorted(tf.io.gfile.listdir(export_dir))[:10]}). Point at the export "
            f"directory itself, the one that holds {_SAVED_MODEL_FILE}."
        )
    path = posixpath.join(export_dir, MANIFEST_PATH)
    if not tf.io.gfile.exists(path):
        raise ExportError(
            f"Expected an s140 serving model, marked by {MANIFEST_PATH}, in {export_dir!r}. "
            "Received: a SavedModel without it: either another program's model or an "
            "export that did not finish. Re-export it with s140-train."
        )
    with tf.io.gfile.GFile(path, "r") as handle:
        try:
            manifest = json.loads(handle.read())
        except json.JSONDecodeError as error:
            raise ExportError(f"{path}: expected JSON. Received invalid JSON: {error}.") from error
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != EXPORT_FORMAT_VERSION:
        raise ExportError(
            f"{path}: expected format_version {EXPORT_FORMAT_VERSION}. Received: {version!r}. "
            "Use the version of s140-trainer that wrote this export."
        )
    return manifest


class ServingModel:
    """A loaded export: call it with tweets, get probabilities of "positive".

    Works on the export alone (no data directory, no Keras model code): the graph
    holds the standardizer, the vocabulary and the weights.
    """

    def __init__(self, export_dir):
        self.export_dir = export_dir
        self.manifest = read_manifest(export_dir)
        loaded = tf.saved_model.load(export_dir)
        self._serve = _signature(loaded, SERVING_SIGNATURE, export_dir, OUTPUT_KEY)
        self._tokenize = _signature(loaded, TOKENIZE_SIGNATURE, export_dir, TOKEN_IDS_KEY)
        self._loaded = loaded  # keeps the variables the signatures capture alive

    @property
    def max_length(self):
        return self.manifest["max_length"]

    def __call__(self, texts, batch_size=_PREDICT_BATCH_SIZE):
        """float32 [len(texts)] probabilities of the positive class."""
        chunks = [
            self._serve(**{INPUT_KEY: batch})[OUTPUT_KEY].numpy()
            for batch in _batches(texts, batch_size)
        ]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros([0], np.float32)

    def tokenize(self, texts):
        """(standardized strings, int64 [len(texts), max_length] token ids), as in the TFRecords."""
        standardized, token_ids = [], [np.zeros([0, self.max_length], np.int64)]
        for batch in _batches(texts, _PREDICT_BATCH_SIZE):
            out = self._tokenize(**{INPUT_KEY: batch})
            standardized.extend(s.decode("utf-8") for s in out[STANDARDIZED_KEY].numpy())
            token_ids.append(out[TOKEN_IDS_KEY].numpy())
        return standardized, np.concatenate(token_ids)


def load_serving_model(export_dir):
    """Loads an export of `export_serving_model`; returns a callable list[str] -> np.ndarray.

    Raises:
      FileNotFoundError: export_dir does not exist.
      ExportError: export_dir is not a complete s140 export.
    """
    return ServingModel(export_dir)


def _signature(loaded, name, export_dir, output_key):
    signatures = getattr(loaded, "signatures", {})
    if name not in signatures:
        raise ExportError(
            f"Expected signature {name!r} in the SavedModel at {export_dir!r}. "
            f"Received: signatures {sorted(signatures)}. Re-export it with s140-train."
        )
    function = signatures[name]
    inputs = function.structured_input_signature[1]
    if set(inputs) != {INPUT_KEY} or output_key not in function.structured_outputs:
        raise ExportError(
            f"Expected signature {name!r} to take {INPUT_KEY!r} and return {output_key!r}. "
            f"Received: inputs {sorted(inputs)}, outputs {sorted(function.structured_outputs)}."
        )
    return function


def _encode(texts):
    return [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts]


def _batches(texts, batch_size):
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        yield tf.constant(_encode(texts[start : start + batch_size]), dtype=tf.string)
