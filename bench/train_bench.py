"""Benchmark: s140-train against the course's way of training, on the real data.

For every architecture, on the real Sentiment140 rows of ../shared/data (train_sample.csv
split into train/val by the Beam job, GloVe 50d subset, frozen):

  speed     training examples/second of `trainer.train.train` with its defaults (tf.data
            from the TFRecords, the step settings of trainer/step_plan.py) against the
            course's way: the same Keras model, same batch size, fed from in-memory NumPy
            arrays with a plain `model.fit` (no steps_per_execution, no XLA). Both timed
            by the same callback (epoch start to validation start) and reported as the
            median epoch after the first, in this run.
  headroom  examples/second of the input pipeline alone (`trainer.data.make_dataset`,
            consumed by `Dataset.reduce`) against the training rate of the fastest
            architecture; beside it the same pipeline pulled as Keras's training loop
            pulls it, that loop over a source that does no work, and Python iteration.
  quality   each architecture's accuracy on the validation split and on the official
            test set (359 positive/negative tweets), beside a TF-IDF + logistic
            regression baseline trained on the same training rows in the same run. The
            test set is only scored, never used to choose anything.

Run:  .venv/bin/python bench/train_bench.py [--epochs=5] [--architectures=gap,bilstm]
Prints Markdown tables; copy them into docs/benchmarks.md.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("S140_SHARED_DATA", ROOT.parent / "shared" / "data"))
BATCH_SIZE = 64


def load_average():
    """The machine's 1/5/15-minute load averages: on shared cores, read every rate with it."""
    return "load average " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def preprocess(work):
    from preprocessing import config, pipeline

    out = work / "data"
    pipeline.preprocess(
        config.PreprocessConfig(
            train_csv=(str(SHARED / "sentiment140" / "train_sample.csv"),),
            test_csv=(str(SHARED / "sentiment140" / "testdata.manual.2009.06.14.csv"),),
            glove=str(SHARED / "glove" / "glove.6B.50d.top50k_s140train.txt"),
            output_dir=str(out),
            num_shards=4,
        )
    )
    return str(out)


def s140_train(data_dir, job_dir, architecture, epochs):
    from trainer import config, train

    metrics = train.train(
        config.TrainConfig(
            data_dir=data_dir, job_dir=job_dir, architecture=architecture, epochs=epochs,
            batch_size=BATCH_SIZE, early_stopping_patience=0,
        )
    )
    import json

    history = json.loads(pathlib.Path(job_dir, "history.json").read_text())
    return metrics, max(history["val_accuracy"])


def course_model(contract, architecture):
    """The architecture compiled as the course compiles it: Keras's defaults (one step
    per call, no XLA), Adam, binary cross-entropy, accuracy."""
    import keras

    from trainer import models

    model = models.build_model(
        architecture, vocab_size=contract.vocab_size, embedding_dim=contract.embedding_dim,
        max_length=contract.max_length, embedding_matrix=contract.embeddings,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def course_fit(contract, arrays, architecture, epochs):
    """The course's loop: NumPy arrays in memory, model.fit, no tf.data, no strategy."""
    from trainer import callbacks

    model = course_model(contract, architecture)
    (x_train, y_train), (x_val, y_val) = arrays
    timer = callbacks.EpochLogger(len(x_train))
    model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=BATCH_SIZE, epochs=epochs,
              callbacks=[timer], verbose=0)
    return timer.examples_per_second()


def numpy_split(data_dir, split):
    from preprocessing import schema
    from trainer import data

    records = data.read_records(data_dir, split)
    return records[schema.TOKEN_IDS], records[schema.LABEL].astype("float32")


def training_pipeline(contract):
    """The shuffled training input of s140-train, batched as both fits are."""
    from trainer import data

    return data.make_dataset(contract, "train", batch_size=BATCH_SIZE, shuffle=True, seed=0)


def input_rate(contract, passes=3):
    """Examples/s of the input pipeline alone, pulled the way Keras' training loop pulls
    it, after a first pass (as in the first training epoch).

    Keras does not iterate the dataset from Python: each training call is a tf.function
    that takes up to `steps_per_execution` batches from the iterator
    (`get_next_as_optional` in a while loop) and runs a step on each. So does this, with
    a sum of each batch in place of the step. Iterating the dataset eagerly from Python
    adds Python's cost per batch (an eager call and Python objects per tensor), which
    training never pays.
    """
    dataset = training_pipeline(contract)
    return pulled_rate(dataset, contract.count("train"), passes)


def produced_rate(contract, passes=3):
    """Examples/s the input pipeline produces with nothing pulling it from outside:
    `Dataset.reduce` runs the whole pass inside TensorFlow's runtime and sums each batch
    (as `input_rate` does), so no per-batch call, iterator op or branch of a consumer is
    counted. This is the pipeline alone; `input_rate` adds the cost of Keras's pull loop,
    which any input, the plain fit's NumPy arrays included, pays the same."""
    import tensorflow as tf

    dataset = training_pipeline(contract)

    @tf.function
    def one_pass():
        def add(totals, batch):
            token_ids, labels = batch
            return (
                totals[0] + tf.shape(labels, out_type=tf.int64)[0],
                totals[1] + tf.reduce_sum(token_ids) + tf.cast(tf.reduce_sum(labels), tf.int64),
            )

        return dataset.reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), add)

    seen = int(one_pass()[0])  # traces it; the first pass, as for `input_rate`
    if seen != contract.count("train"):
        sys.exit(f"Expected {contract.count('train')} examples per pass. Received: {seen}.")
    start = time.perf_counter()
    for _ in range(passes):
        one_pass()
    return passes * seen / (time.perf_counter() - start)


def floor_rate(contract, passes=3):
    """Examples/s of the same pull loop over a source that does no work (one batch of
    zeros repeated): what a pipeline that costs nothing shows in `input_rate`'s harness
    (within noise: the real pipeline has measured above it; docs/benchmarks-history.md run 7)."""
    import tensorflow as tf

    batches = contract.count("train") // BATCH_SIZE
    zeros = (tf.zeros([BATCH_SIZE, contract.max_length], tf.int64), tf.zeros([BATCH_SIZE], tf.float32))
    return pulled_rate(tf.data.Dataset.from_tensors(zeros).repeat(batches), batches * BATCH_SIZE, passes)


def pulled_rate(dataset, per_pass, passes):
    """Examples/s of `dataset` pulled as Keras pulls it (see `input_rate`)."""
    import tensorflow as tf

    from trainer import step_plan

    steps_per_call = step_plan.DEFAULT_STEPS_PER_EXECUTION

    @tf.function
    def pull(iterator):
        examples, checksum = tf.constant(0, tf.int64), tf.constant(0, tf.int64)
        for _ in tf.range(steps_per_call):
            batch = iterator.get_next_as_optional()
            if not batch.has_value():
                break
            token_ids, labels = batch.get_value()
            examples += tf.shape(labels, out_type=tf.int64)[0]
            checksum += tf.reduce_sum(token_ids) + tf.cast(tf.reduce_sum(labels), tf.int64)
        return examples, checksum

    def one_pass():
        iterator, seen = iter(dataset), 0
        while True:
            examples, _ = pull(iterator)
            if not int(examples):
                return seen
            seen += int(examples)

    seen = one_pass()  # traces `pull`, as the first epoch traces the step
    if seen != per_pass:
        sys.exit(f"Expected {per_pass} examples per pass. Received: {seen}.")
    start = time.perf_counter()
    for _ in range(passes):
        one_pass()
    return passes * seen / (time.perf_counter() - start)


def eager_input_rate(contract, passes=3):
    """Examples/s of the input pipeline iterated eagerly from Python (runs 1-5 of
    docs/benchmarks-history.md measured this): Python's cost per batch included."""
    dataset = training_pipeline(contract)
    for _ in dataset:  # the first pass, as for `input_rate`
        pass
    start = time.perf_counter()
    for _ in range(passes):
        for _ in dataset:
            pass
    return passes * contract.count("train") / (time.perf_counter() - start)


def tfidf_baseline(data_dir):
    """(val, test) accuracy of the product's TF-IDF + logistic regression baseline."""
    from trainer import baseline, data

    scores = baseline.tfidf_logistic_regression(data.load_contract(data_dir))
    return scores.val_accuracy, scores.test_accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--architectures", default="flatten,gap,bilstm,stacked_bilstm,conv1d,bigru,conv_lstm")
    args = parser.parse_args()
    if not (SHARED / "sentiment140" / "train_sample.csv").exists():
        sys.exit(f"Real data not found at {SHARED} (set S140_SHARED_DATA); nothing to measure.")
    from trainer import data

    work = pathlib.Path(tempfile.mkdtemp(prefix="s140-train-bench-"))
    data_dir = preprocess(work)
    contract = data.load_contract(data_dir)
    arrays = (numpy_split(data_dir, "train"), numpy_split(data_dir, "val"))
    rows = []
    for architecture in args.architectures.split(","):
        metrics, val_accuracy = s140_train(data_dir, str(work / architecture), architecture, args.epochs)
        course = course_fit(contract, arrays, architecture, args.epochs)
        ours = metrics["train_examples_per_second"]
        rows.append((architecture, val_accuracy, metrics["accuracy"], ours, course))
        print(f"{architecture}: val {val_accuracy:.4f} test {metrics['accuracy']:.4f} "
              f"s140 {ours:,.0f}/s ({metrics['step_plan']}) course {course:,.0f}/s; {load_average()}", flush=True)
    produced, pulled = produced_rate(contract), input_rate(contract)
    eager_rate, floor = eager_input_rate(contract), floor_rate(contract)
    pipeline_load = load_average()
    baseline_val, baseline_test = tfidf_baseline(data_dir)

    print(f"\n{contract.count('train'):,} training examples, batch {BATCH_SIZE}, {args.epochs} epochs, "
          f"{os.cpu_count()} cores, GloVe 50d frozen\n")
    print("| architecture | val accuracy | test accuracy (359) | s140-train ex/s | course ex/s | speed ratio |")
    print("|---|---|---|---|---|---|")
    for architecture, val_accuracy, test_accuracy, ours, course in rows:
        print(f"| {architecture} | {val_accuracy:.4f} | {test_accuracy:.4f} | {ours:,.0f} | {course:,.0f} | {ours / course:.2f} |")
    print(f"| TF-IDF + logistic regression (baseline) | {baseline_val:.4f} | {baseline_test:.4f} | | | |")
    fastest = max(rows, key=lambda row: row[3])
    print(f"\ninput pipeline alone (Dataset.reduce): {produced:,.0f} examples/s; fastest architecture "
          f"({fastest[0]}) trains at {fastest[3]:,.0f}/s; headroom ratio {produced / fastest[3]:.1f}; {pipeline_load}")
    print(f"pulled as Keras pulls it: {pulled:,.0f} examples/s, {pulled / fastest[3]:.1f}x; the same pull loop over a "
          f"source that does no work: {floor:,.0f} examples/s, {floor / fastest[3]:.1f}x (the loop's own limit; the "
          f"pipeline's cost in it {1e6 * BATCH_SIZE * (1 / pulled - 1 / floor):.0f} us a batch); "
          f"iterated eagerly from Python: {eager_rate:,.0f} examples/s, {eager_rate / fastest[3]:.1f}x")
    best_val = max(rows, key=lambda row: row[1])
    print(f"best architecture by validation accuracy: {best_val[0]} (val {best_val[1]:.4f}, test {best_val[2]:.4f}); "
          f"beats the baseline on val: {best_val[1] > baseline_val}, on test: {best_val[2] > baseline_test}")


if __name__ == "__main__":
    main()
