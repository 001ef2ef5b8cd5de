"""Benchmark: s140-train's training step against a plain fit's, alternated in one process.

`bench/train_bench.py` times s140-train's epochs, then the plain fit's, minutes apart. On
shared cores the machine's speed moves by up to +-40% between such minutes, and with it
the ratio (stacked_bilstm: 1.09-1.63 across five runs of the same code). Here the two
steps take turns: each round runs 64 batches of s140-train's step (the model and input
that `trainer.run` builds: the step plan, the in-memory pipeline) and then 64 batches of
the plain step (the same architecture compiled as the course does: one step per call, no
XLA, fed from the NumPy arrays as Keras's own adapter feeds them, but in order). A change
in the machine's speed then hits both within seconds of each other, and the median of
the rounds' ratios is the step's own gain. No callbacks, no validation: `train_bench.py`
remains the end-to-end measure.

Run:  .venv/bin/python bench/step_ab.py --architectures=stacked_bilstm,gap [--rounds=6]
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import train_bench  # bench/: the real data, preprocessed as train_bench.py does

BATCHES_PER_TURN = 64


def ours(data_dir, architecture):
    """(compiled model, infinite feed) as s140-train builds them."""
    from trainer import config, run as run_lib, step_loop

    job_dir = tempfile.mkdtemp(prefix="s140-step-ab-")
    cfg = config.TrainConfig(
        data_dir=data_dir, job_dir=job_dir, architecture=architecture, batch_size=train_bench.BATCH_SIZE
    )
    run = run_lib.set_up(cfg, job_dir=job_dir)
    with run_lib.dtype_policy(run), run.strategy.scope():
        model = run_lib.build_model(run.contract, architecture, run.hparams, cfg.learning_rate, run=run)
    # A turn is the loop's "epoch", so that every call runs whole steps_per_execution.
    step_loop.install(model, plan=step_loop.of(model).plan, global_batch=run.global_batch,
                      steps_per_epoch=BATCHES_PER_TURN, validation_steps=1)
    return model, run.feeds.train.repeat()


def plain(data_dir, contract, architecture):
    """(compiled model, infinite feed) of the course's way: Keras defaults, NumPy rows."""
    import tensorflow as tf

    model = train_bench.course_model(contract, architecture)
    token_ids, labels = (tf.constant(array) for array in train_bench.numpy_split(data_dir, "train"))
    # As Keras's own NumPy adapter feeds model.fit, without its shuffle: a batch of row
    # indices, one gather. The last batch is partial, so the batch size is not static;
    # the plain step ran 30-40% faster on stacked_bilstm with batches of a static size
    # (docs/benchmarks-history.md run 9), which a plain fit of 53,502 rows does not get.
    batches = tf.data.Dataset.range(len(labels)).batch(train_bench.BATCH_SIZE)
    return model, batches.map(lambda rows: (tf.gather(token_ids, rows), tf.gather(labels, rows))).repeat()


def turn_timer(model, feed):
    """A function that runs BATCHES_PER_TURN batches of `model`'s training step and
    returns their seconds. The step is traced and compiled here, before any timing.
    (Both feeds repeat passes whose last batch is partial: one batch in 836 of the real
    sample, counted as full.)"""
    calls, rest = divmod(BATCHES_PER_TURN, model.steps_per_execution)
    if rest:
        sys.exit(f"Expected {BATCHES_PER_TURN} batches a turn to be whole calls of "
                 f"{model.steps_per_execution} steps. Received {rest} left over.")
    model.fit(feed, steps_per_epoch=model.steps_per_execution, epochs=1, verbose=0)
    step, iterator = model.make_train_function(), iter(feed)

    def turn():
        start = time.perf_counter()
        for _ in range(calls):
            logs = step(iterator)
        float(logs["loss"])  # waits for the last call's result
        return time.perf_counter() - start

    turn()  # a first turn, as a first epoch
    return turn


def compare(data_dir, contract, architecture, rounds):
    ours_turn, plain_turn = turn_timer(*ours(data_dir, architecture)), turn_timer(*plain(data_dir, contract, architecture))
    ratios, ours_rates, plain_rates = [], [], []
    examples = BATCHES_PER_TURN * train_bench.BATCH_SIZE
    for _ in range(rounds):
        ours_seconds, plain_seconds = ours_turn(), plain_turn()
        ratios.append(plain_seconds / ours_seconds)
        ours_rates.append(examples / ours_seconds)
        plain_rates.append(examples / plain_seconds)
    return statistics.median(ours_rates), statistics.median(plain_rates), ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", default="stacked_bilstm")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--data_dir", help="a directory s140-preprocess wrote; default: preprocess the real sample")
    args = parser.parse_args()
    from trainer import data

    if args.data_dir:
        data_dir = args.data_dir
    else:
        if not (train_bench.SHARED / "sentiment140" / "train_sample.csv").exists():
            sys.exit(f"Real data not found at {train_bench.SHARED} (set S140_SHARED_DATA); nothing to measure.")
        data_dir = train_bench.preprocess(pathlib.Path(tempfile.mkdtemp(prefix="s140-step-ab-")))
    contract = data.load_contract(data_dir)
    print(f"| architecture | s140-train step ex/s | plain step ex/s | median ratio | ratios of the {args.rounds} rounds |")
    print("|---|---|---|---|---|")
    for architecture in args.architectures.split(","):
        ours_rate, plain_rate, ratios = compare(data_dir, contract, architecture, args.rounds)
        print(f"| {architecture} | {ours_rate:,.0f} | {plain_rate:,.0f} | {statistics.median(ratios):.2f} | "
              f"{', '.join(f'{ratio:.2f}' for ratio in ratios)} |", flush=True)
    print(f"\n{train_bench.load_average()}")


if __name__ == "__main__":
    main()
