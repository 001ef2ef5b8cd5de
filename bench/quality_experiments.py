"""Measurement (not a test): which levers lift frozen-GloVe models above TF-IDF + LR on val.

On the real 59k sample (train_sample.csv split by the Beam job into 53,502 train /
5,971 val, official test 359), each named experiment builds a Keras model from the
data directory's own arrays (trainer.data.read_records, embeddings.npy, vocab.txt),
trains it on train, early-stops on val_loss, and appends one JSON line to the results
file: best val accuracy, the epoch of the best, seconds per epoch. The levers live
here, not in trainer/, until the measurement says which ones the package should get:

  oov        GloVe rows stay frozen; the rows GloVe lacks ([UNK] + uncovered tokens)
             get their own trainable table (an Embedding over an id remap, combined
             with the frozen one by a `where`).
  pool       mean (the seed's), max, or max+mean concatenated, masked over time; for
             recurrent models over return_sequences outputs.
  sdrop      SpatialDropout1D on the embedded sequence; dropout before the output.
  schedule   constant, cosine with linear warm-up, or reduce-on-plateau; batch size;
             early stopping on val_loss with restore_best_weights.
  wide       a trainable logit per vocabulary id ("wide & deep"), and with "bigrams" per
             hashed pair of adjacent ids, added to the network's output logit.
  jit        jit_compile=True + steps_per_execution=32 (on by default).

The official test set is scored only with --score_test, for the recipe named, once at
the end; nothing here is chosen on it.

Run (data prepared once with bench/train_bench.py's `preprocess()` into /tmp/quality/data;
the exact commands behind bench/quality_results.md, each prefixed with
`S140_SHARED_DATA=/work/shared/data PYTHONPATH=$PWD nice -n 10 .venv/bin/python
bench/quality_experiments.py`; --results defaults to /tmp/quality/results.jsonl):
  --experiments=baseline,gap_mean,gap_mean_nojit
  --experiments=conv1d_mean,conv1d_max,conv1d_max_oov,conv1d_max_oov_reg,gap_maxmean,gap_maxmean_oov,conv1d_maxmean
      (stopped during conv1d_maxmean for time)
  --experiments=conv1d_max_oov_reg_wide,gap_maxmean_oov_wide,bigru_maxmean_oov_reg_b256,bigru_last
  --experiments=wide_only_b256,conv1d_max_oov_reg_wide_b256
  --experiments=conv1d_max_oov_reg_wide2_b256,wide2_only_b256
  --experiments=gap_maxmean_oov_wide2_b256
  --experiments=conv1d_max_oov_reg_wide2 --save_dir=/tmp/quality/weights --results=.../results_saved.jsonl
  --experiments=conv1d_max_oov_reg_wide2_b256 --save_dir=/tmp/quality/weights --results=.../results_saved.jsonl
  --experiments=conv1d_max_oov_reg_wide2_b256,wide2_only_b256 --recipe='{"seed": 1}'   (and seed 7)
then, once, for the recipe chosen on val (test scored, nothing chosen on it):
  --experiments=conv1d_max_oov_reg_wide2_b256,baseline --score_saved --score_test --save_dir=/tmp/quality/weights
and the tables:  --markdown --results=bench/quality_results_raw.jsonl
All names: --list.
"""

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = pathlib.Path(os.environ.get("S140_SHARED_DATA", ROOT.parent / "shared" / "data"))

WIDE_BIGRAM_BUCKETS = 2**18

# One recipe = these keys; an experiment overrides some of them.
DEFAULTS = dict(
    arch="gap", pool="mean", oov=False, sdrop=0.0, dropout=0.0, units=64, dense=64,
    filters=128, kernel=5, lr=1e-3, schedule="constant", batch=64, epochs=8, patience=3,
    jit=True, seed=42, proj=0, wide=False,
)

EXPERIMENTS = {
    # jit check: the same model with and without jit_compile + steps_per_execution.
    "gap_mean_nojit": dict(arch="gap", jit=False),
    "gap_mean": dict(arch="gap"),
    # trainable OOV rows
    "gap_mean_oov": dict(arch="gap", oov=True),
    # pooling
    "gap_max": dict(arch="gap", pool="max"),
    "gap_maxmean": dict(arch="gap", pool="maxmean"),
    "gap_maxmean_oov": dict(arch="gap", pool="maxmean", oov=True),
    "conv1d_mean": dict(arch="conv1d", pool="mean_unmasked"),  # the seed's conv1d
    "conv1d_mean_masked": dict(arch="conv1d"),
    "conv1d_max": dict(arch="conv1d", pool="max"),
    "conv1d_maxmean": dict(arch="conv1d", pool="maxmean"),
    "conv1d_max_oov": dict(arch="conv1d", pool="max", oov=True),
    "conv1d_max_oov_reg": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3),
    "conv1d_maxmean_oov_reg": dict(arch="conv1d", pool="maxmean", oov=True, sdrop=0.2, dropout=0.3),
    "conv1d_max_oov_reg_k3": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3, kernel=3),
    "conv1d_max_oov_reg_cos": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3,
                                   schedule="cosine", epochs=10),
    "conv1d_max_oov_reg_plateau": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3,
                                       schedule="plateau", epochs=12, patience=4),
    "conv1d_max_oov_reg_b256": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3,
                                    batch=256, lr=2e-3),
    "gap_maxmean_oov_proj": dict(arch="gap", pool="maxmean", oov=True, proj=128),
    "conv1d_k123_max_oov_reg": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3, kernel=(1, 2, 3)),
    "conv1d_max_oov_reg_wide": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3, wide=True),
    "gap_maxmean_oov_wide": dict(arch="gap", pool="maxmean", oov=True, wide=True),
    "wide_only": dict(arch="wide_only", wide=True, epochs=8),
    "wide_only_b256": dict(arch="wide_only", wide=True, batch=256, lr=3e-3, epochs=12),
    "conv1d_max_oov_reg_wide_b256": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3, wide=True,
                                         batch=256, lr=3e-3, epochs=12),
    "bigru_maxmean_oov_reg_wide_b256": dict(arch="bigru", pool="maxmean", oov=True, sdrop=0.2, dropout=0.3,
                                            wide=True, batch=256, lr=3e-3, epochs=10),
    "wide2_only_b256": dict(arch="wide_only", wide="bigrams", batch=256, lr=3e-3, epochs=12),
    "conv1d_max_oov_reg_wide2_b256": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3,
                                          wide="bigrams", batch=256, lr=3e-3, epochs=12),
    "conv1d_max_oov_reg_wide2": dict(arch="conv1d", pool="max", oov=True, sdrop=0.2, dropout=0.3,
                                     wide="bigrams", epochs=8),
    "gap_maxmean_oov_wide2_b256": dict(arch="gap", pool="maxmean", oov=True, wide="bigrams", batch=256, lr=3e-3,
                                       epochs=12),
    "bigru_last": dict(arch="bigru", pool="last", epochs=4),
    "bigru_maxmean": dict(arch="bigru", pool="maxmean", epochs=4),
    "bigru_maxmean_oov_reg": dict(arch="bigru", pool="maxmean", oov=True, sdrop=0.2, dropout=0.3, epochs=6),
    "bigru_maxmean_oov_reg_u128": dict(arch="bigru", pool="maxmean", oov=True, sdrop=0.2, dropout=0.3,
                                       units=128, epochs=6),
    "bigru_maxmean_oov_reg_b256": dict(arch="bigru", pool="maxmean", oov=True, sdrop=0.2, dropout=0.3,
                                       batch=256, lr=2e-3, epochs=8),
    "bigru_maxmean_oov_reg_b256_cos": dict(arch="bigru", pool="maxmean", oov=True, sdrop=0.2, dropout=0.3,
                                           batch=256, lr=2e-3, epochs=10, schedule="cosine"),
    "bigru_maxmean_oov_reg_b256_plateau": dict(arch="bigru", pool="maxmean", oov=True, sdrop=0.2,
                                               dropout=0.3, batch=256, lr=2e-3, epochs=14, patience=4,
                                               schedule="plateau"),
    "bilstm_last": dict(arch="bilstm", pool="last", epochs=4),
    "bilstm_maxmean_oov_reg_b256": dict(arch="bilstm", pool="maxmean", oov=True, sdrop=0.2, dropout=0.3,
                                        batch=256, lr=2e-3, epochs=8),
}


def load(data_dir):
    from preprocessing import schema
    from trainer import data

    contract = data.load_contract(data_dir)
    arrays = {}
    for split in ("train", "val", "test"):
        records = data.read_records(data_dir, split)
        arrays[split] = (records[schema.TOKEN_IDS].astype("int32"), records[schema.LABEL].astype("float32"))
    return contract, arrays


def oov_rows(contract):
    """Ids of the rows GloVe lacks: [UNK] and every vocabulary token not in the GloVe file."""
    source = contract.metadata["embedding"]["source"]
    with open(source, encoding="utf-8") as f:
        glove_words = {line.split(" ", 1)[0] for line in f}
    return np.array([1] + [i for i, t in enumerate(contract.vocab_tokens) if i > 1 and t not in glove_words])


def make_embedding_layer(keras, contract, trainable_oov_ids):
    """Frozen GloVe rows; optionally a trainable row for each id in `trainable_oov_ids`."""
    ops = keras.ops
    matrix = contract.embeddings

    class GloveWithOov(keras.layers.Layer):
        def __init__(self):
            super().__init__(name="embedding")
            self.frozen = keras.layers.Embedding(*matrix.shape, weights=matrix, trainable=False, name="glove")
            remap = np.zeros(matrix.shape[0], "int32")  # id -> row of the trainable table (0 = none)
            if trainable_oov_ids is not None:
                remap[trainable_oov_ids] = np.arange(1, len(trainable_oov_ids) + 1)
                # Start from the fixed random rows so step 0 equals the frozen model.
                init = np.concatenate([np.zeros((1, matrix.shape[1]), "float32"), matrix[trainable_oov_ids]])
                self.oov = keras.layers.Embedding(len(init), matrix.shape[1], weights=init, name="oov")
            self.remap = remap
            self.supports_masking = True

        def call(self, ids):
            ids = ops.cast(ids, "int32")
            x = self.frozen(ids)
            if trainable_oov_ids is None:
                return x
            row = ops.take(ops.convert_to_tensor(self.remap), ids)
            return ops.where(ops.expand_dims(row > 0, -1), self.oov(row), x)

        def compute_mask(self, ids, mask=None):
            return ops.not_equal(ids, 0)

    return GloveWithOov()


def masked_pool(keras, x, mask, pool):
    ops = keras.ops
    m = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    mean = ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
    mx = ops.max(ops.where(m > 0, x, -1e9), axis=1)
    return {"mean": mean, "max": mx, "maxmean": ops.concatenate([mx, mean], axis=-1)}[pool]


def build(keras, contract, r, trainable_oov_ids):
    ops = keras.ops
    ids = keras.Input(shape=(contract.max_length,), dtype="int32", name="token_ids")
    mask = ops.not_equal(ids, 0)
    x = make_embedding_layer(keras, contract, trainable_oov_ids if r["oov"] else None)(ids)
    if r["sdrop"]:
        x = keras.layers.SpatialDropout1D(r["sdrop"])(x)
    if r["proj"]:  # a trainable per-position projection: GloVe rows stay frozen, their use adapts
        x = keras.layers.Dense(r["proj"], activation="tanh")(x)
    if r["arch"] == "wide_only":  # the wide part alone: a unigram logistic regression
        x = ops.zeros_like(masked_pool(keras, x, mask, "mean"))
    elif r["arch"] == "gap":
        x = masked_pool(keras, x, mask, r["pool"])
    elif r["arch"] == "conv1d" and isinstance(r["kernel"], (list, tuple)):  # several widths, concatenated
        x = ops.concatenate([
            masked_pool(keras, keras.layers.Conv1D(r["filters"], k, activation="relu")(x),
                        mask[:, : contract.max_length - k + 1], r["pool"]) for k in r["kernel"]], axis=-1)
    elif r["arch"] == "conv1d":
        x = keras.layers.Conv1D(r["filters"], r["kernel"], activation="relu")(x)
        # Window i covers tokens i..i+k-1: it is real text when token i is.
        conv_mask = mask[:, : contract.max_length - r["kernel"] + 1]
        if r["pool"] == "mean_unmasked":  # the seed's: GAP over every window, padding included
            x = ops.mean(x, axis=1)
        else:
            x = masked_pool(keras, x, conv_mask, r["pool"])
    else:
        cell = {"bigru": keras.layers.GRU, "bilstm": keras.layers.LSTM}[r["arch"]]
        seq = r["pool"] != "last"
        x = keras.layers.Bidirectional(cell(r["units"], return_sequences=seq))(x, mask=mask)
        if seq:
            x = masked_pool(keras, x, mask, r["pool"])
    x = keras.layers.Dense(r["dense"], activation="relu")(x)
    if r["dropout"]:
        x = keras.layers.Dropout(r["dropout"])(x)
    logit = keras.layers.Dense(1)(x)
    if r["wide"]:
        # "Wide" part: one trainable weight per vocabulary id, summed over the tweet: a
        # bag-of-words logistic term beside the frozen-GloVe network (PAD's row is masked).
        weights = keras.layers.Embedding(contract.vocab_size, 1, embeddings_initializer="zeros", name="wide")(ids)
        logit = logit + ops.sum(weights * ops.expand_dims(ops.cast(mask, "float32"), -1), axis=1)
    if r["wide"] == "bigrams":
        # and one per hashed pair of adjacent ids (2**18 buckets), as TF-IDF's 2-grams.
        pair = (ids[:, :-1] * contract.vocab_size + ids[:, 1:]) % WIDE_BIGRAM_BUCKETS
        weights = keras.layers.Embedding(WIDE_BIGRAM_BUCKETS, 1, embeddings_initializer="zeros", name="wide2")(pair)
        logit = logit + ops.sum(weights * ops.expand_dims(ops.cast(mask[:, 1:], "float32"), -1), axis=1)
    out = keras.layers.Activation("sigmoid", dtype="float32")(logit)
    return keras.Model(ids, out, name=r["arch"])


def run(name, r, contract, arrays, oov_ids, score_test=False, save_dir=None):
    import keras

    keras.utils.set_random_seed(r["seed"])
    (x_train, y_train), (x_val, y_val) = arrays["train"], arrays["val"]
    steps = -(-len(x_train) // r["batch"])
    lr = r["lr"]
    if r["schedule"] == "cosine":
        warmup = steps  # one epoch of linear warm-up, then cosine to 0 over the rest
        lr = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=steps * (r["epochs"] - 1), warmup_target=r["lr"], warmup_steps=warmup)
    model = build(keras, contract, r, oov_ids)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"],
                  jit_compile=r["jit"], steps_per_execution=32 if r["jit"] else 1)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=r["patience"],
                                               restore_best_weights=True)]
    if r["schedule"] == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=1, min_lr=1e-5))
    start = time.perf_counter()
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=r["batch"],
                        epochs=r["epochs"], callbacks=callbacks, verbose=0, shuffle=True).history
    seconds = time.perf_counter() - start
    val_acc = history["val_accuracy"]
    best_loss_epoch = int(np.argmin(history["val_loss"]))  # the weights restored
    row = dict(
        name=name, **r, params=model.count_params(),
        trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        epochs_run=len(val_acc), best_val_accuracy=round(max(val_acc), 4),
        best_val_accuracy_epoch=int(np.argmax(val_acc)) + 1,
        restored_epoch=best_loss_epoch + 1, restored_val_accuracy=round(val_acc[best_loss_epoch], 4),
        best_val_loss=round(min(history["val_loss"]), 4),
        final_train_accuracy=round(history["accuracy"][-1], 4),
        seconds_per_epoch=round(seconds / len(val_acc), 1), seconds=round(seconds, 1),
        val_accuracy_curve=[round(v, 4) for v in val_acc],
    )
    if save_dir:  # the restored (min val_loss) weights, for scoring the chosen recipe later
        model.save_weights(os.path.join(save_dir, f"{name}.weights.h5"))
    if score_test:
        x_test, y_test = arrays["test"]
        row["test_accuracy"] = round(float(np.mean((model.predict(x_test, verbose=0)[:, 0] > 0.5) == y_test)), 4)
        row["val_accuracy_restored_model"] = round(
            float(np.mean((model.predict(x_val, verbose=0)[:, 0] > 0.5) == y_val)), 4)
    return row


def score_saved(name, r, contract, arrays, oov_ids, save_dir):
    import keras

    model = build(keras, contract, r, oov_ids)
    model.load_weights(os.path.join(save_dir, f"{name}.weights.h5"))
    accuracy = lambda x, y: round(float(np.mean((model.predict(x, verbose=0, batch_size=512)[:, 0] > 0.5) == y)), 4)  # noqa: E731
    return dict(name=name + "_scored", arch=r["arch"], val_accuracy=accuracy(*arrays["val"]),
                test_accuracy=accuracy(*arrays["test"]))


def baseline(data_dir, score_test):
    sys.path.insert(0, str(ROOT / "bench"))
    import train_bench

    start = time.perf_counter()
    val, test = train_bench.tfidf_baseline(data_dir)
    row = dict(name="baseline_tfidf_lr", arch="tfidf_lr", best_val_accuracy=round(val, 4),
               seconds=round(time.perf_counter() - start, 1))
    if score_test:
        row["test_accuracy"] = round(test, 4)
    return row


def markdown(results):
    """One Markdown table row per result line (the last run of each name wins)."""
    rows = {}
    for line in pathlib.Path(results).read_text().splitlines():
        row = json.loads(line)
        rows[row["name"]] = row
    keys = ("arch", "pool", "oov", "sdrop", "dropout", "units", "kernel", "proj", "wide", "lr", "schedule", "batch", "jit")
    print("| experiment | setting | best val acc | epoch of best | restored (min val_loss) val acc, epoch | "
          "epochs run | train acc (last) | s/epoch | trainable params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        if name.endswith("_scored"):
            continue  # a test-scoring line, reported by hand for the chosen recipe only
        if r["arch"] == "tfidf_lr":
            print(f"| {name} | TF-IDF 1-2-gram, min_df 2, LR C=1 | {r['best_val_accuracy']:.4f} | | | | | | |")
            continue
        setting = ", ".join(f"{k}={r[k]}" for k in keys if k in r and r[k] != DEFAULTS.get(k) or k in ("arch", "pool"))
        print(f"| {name} | {setting} | {r['best_val_accuracy']:.4f} | {r['best_val_accuracy_epoch']} | "
              f"{r['restored_val_accuracy']:.4f}, {r['restored_epoch']} | {r['epochs_run']} | "
              f"{r['final_train_accuracy']:.4f} | {r['seconds_per_epoch']} | {r['trainable_params']:,} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="/tmp/quality/data")
    parser.add_argument("--results", default="/tmp/quality/results.jsonl")
    parser.add_argument("--experiments", default="baseline")
    parser.add_argument("--recipe", default="{}", help="JSON overrides applied to each experiment")
    parser.add_argument("--score_test", action="store_true", help="also score the official test set (final only)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--save_dir", help="save each experiment's restored weights here")
    parser.add_argument("--score_saved", action="store_true",
                        help="do not train: rebuild each named experiment, load its saved weights, score val and test")
    parser.add_argument("--markdown", action="store_true", help="print --results as a Markdown table")
    args = parser.parse_args()
    if args.markdown:
        markdown(args.results)
        return
    if args.list:
        print("\n".join(["baseline", *EXPERIMENTS]))
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    contract, arrays = load(args.data_dir)
    oov_ids = oov_rows(contract)
    unk_share = {s: round(float(np.mean(a[0][a[0] > 0] == 1)), 4) for s, a in arrays.items()}
    print(f"vocab {contract.vocab_size}: {contract.vocab_size - len(oov_ids)} GloVe rows frozen, "
          f"{len(oov_ids)} rows GloVe lacks ([UNK] + {len(oov_ids) - 1} tokens); [UNK] share of tokens {unk_share}",
          flush=True)
    for name in args.experiments.split(","):
        if name == "baseline":
            row = baseline(args.data_dir, args.score_test)
        elif args.score_saved:
            row = score_saved(name, {**DEFAULTS, **EXPERIMENTS[name], **json.loads(args.recipe)}, contract, arrays,
                              oov_ids, args.save_dir)
        else:
            recipe = {**DEFAULTS, **EXPERIMENTS[name], **json.loads(args.recipe)}
            row = run(name, recipe, contract, arrays, oov_ids, args.score_test, args.save_dir)
        row["frozen_rows"], row["trainable_oov_rows"] = contract.vocab_size - len(oov_ids), len(oov_ids)
        print(json.dumps(row), flush=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
