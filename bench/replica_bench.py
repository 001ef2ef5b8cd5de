"""Benchmark: s140-train's step loop across replicas, against Keras' own fit under the
same strategy, against itself on one device, and against a source that does no work.

On the real sample (train_sample.csv preprocessed as bench/train_bench.py does), for each
architecture, in one process whose CPU is split into two logical devices, taking turns
(each turn is one `fit` of a fixed number of steps, so every figure of a round is
measured within seconds of the others):

  keras2     Keras' plain `fit` under MirroredStrategy over the two devices: the same
             model, global batch 2 x 64, NumPy rows fed as Keras feeds them, one step
             per call and no XLA: what a user gets without this package.
  ours2      s140-train's model on 2 replicas: `run.build_model` (its step plan and
             `trainer.step_loop`) on the real input pipeline (`run.make_feeds`).
  ours1      the same on one device, batch 64 (the cost of distribution: ours2 / ours1).
  nowork2/1  ours2 and ours1 fed one batch of the pipeline over and over (a source that
             does no work): the real pipeline's rate over it says whether training
             waits for input (target >= 0.9).

`--multi_worker` measures MultiWorkerMirroredStrategy instead: two local processes
(TF_CONFIG on loopback), s140-train's loop against Keras' plain fit under the same
strategy, for the architectures given.

Run:  .venv/bin/python bench/replica_bench.py [--architectures=gap,bilstm] [--rounds=3]
      .venv/bin/python bench/replica_bench.py --multi_worker --architectures=gap,bilstm
      .venv/bin/python bench/replica_bench.py --xla_ab       # XLA on against off
      .venv/bin/python bench/replica_bench.py --bound        # without all-reduce and update
Prints Markdown tables; copy them into docs/benchmarks.md.
"""

import argparse
import dataclasses
import gc
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import train_bench  # bench/: the real data, preprocessed as train_bench.py does

ARCHITECTURES = ("flatten", "gap", "bilstm", "stacked_bilstm", "conv1d", "bigru", "conv_lstm")
RECURRENT = ("bilstm", "stacked_bilstm", "bigru", "conv_lstm")
PER_REPLICA_BATCH = train_bench.BATCH_SIZE


def turn_steps(architecture, epoch_steps):
    """Steps per turn. A whole epoch for the fast models: each `fit` starts the input
    pipeline again, which costs its first permutation and gather once an epoch in a
    real run, and must not weigh more here. 64 for the recurrent ones, whose epochs take
    minutes and whose steps dwarf that start."""
    return 64 if architecture in RECURRENT else epoch_steps


def split_cpu(count):
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)


def ours(data_dir, architecture, replicas, jit_compile="auto"):
    """(model, real feed, no-work feed, steps a turn) as s140-train builds them."""
    import tensorflow as tf

    model, run, steps = built(data_dir, architecture, replicas, jit_compile)
    real = run.feeds.train.repeat()
    return model, real, tf.data.Dataset.from_tensors(next(iter(real))).repeat(), steps


def built(data_dir, architecture, replicas, jit_compile="auto"):
    """(model, run, steps a turn): s140-train's set-up and model, its loop re-installed
    to count a turn's steps as an epoch."""
    from trainer import config, run as run_lib, step_loop, tensorflow_adapter

    tensorflow_adapter.fresh_collective_keys()  # one process, many strategies (see its docstring)
    job_dir = tempfile.mkdtemp(prefix="s140-replica-bench-")
    cfg = config.TrainConfig(
        data_dir=data_dir, job_dir=job_dir, architecture=architecture, batch_size=PER_REPLICA_BATCH,
        cpu_replicas=replicas, jit_compile=jit_compile,
    )
    run = run_lib.set_up(cfg, job_dir=job_dir)
    with run_lib.dtype_policy(run), run.strategy.scope():
        model = run_lib.build_model(run.contract, architecture, run.hparams, cfg.learning_rate, run=run)
    plan = step_loop.of(model).plan
    steps = turn_steps(architecture, run.feeds.train_steps)
    step_loop.install(model, plan=plan, global_batch=run.global_batch, steps_per_epoch=steps, validation_steps=1)
    return model, run, steps


def keras_plain(data_dir, contract, architecture, strategy):
    """(model, feed) of Keras' plain fit under `strategy`: NumPy rows by the global batch."""
    import tensorflow as tf

    with strategy.scope():
        model = train_bench.course_model(contract, architecture)
    token_ids, labels = (tf.constant(array) for array in train_bench.numpy_split(data_dir, "train"))
    batches = tf.data.Dataset.range(len(labels)).batch(PER_REPLICA_BATCH * strategy.num_replicas_in_sync)
    return model, batches.map(lambda rows: (tf.gather(token_ids, rows), tf.gather(labels, rows))).repeat()


def turn_timer(model, feed, steps, global_batch):
    """A function that fits `steps` steps of `model` on `feed` and returns examples/s;
    the first (tracing, compiling) turn is run here, untimed."""

    def turn():
        gc.collect()  # the previous turn's iterators, and their prefetching, gone before timing
        start = time.perf_counter()
        model.fit(feed, steps_per_epoch=steps, epochs=1, verbose=0)
        return steps * global_batch / (time.perf_counter() - start)

    turn()
    return turn


def single_machine(data_dir, architectures, rounds):
    import tensorflow as tf

    from trainer import data, tensorflow_adapter

    contract = data.load_contract(data_dir)
    print("| architecture | Keras fit, 2 replicas (ex/s) | s140, 2 replicas | s140, 1 device | "
          "2 replicas / Keras | 2 replicas / 1 device | not input-bound, 2 replicas | not input-bound, 1 device |")
    print("|---|---|---|---|---|---|---|---|")
    for architecture in architectures:
        tensorflow_adapter.fresh_collective_keys()
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        two, two_real, two_none, two_steps = ours(data_dir, architecture, 2)
        one, one_real, one_none, one_steps = ours(data_dir, architecture, 1)
        plain, plain_feed = keras_plain(data_dir, contract, architecture, mirrored)
        turns = {
            "keras2": turn_timer(plain, plain_feed, two_steps, 2 * PER_REPLICA_BATCH),
            "ours2": turn_timer(two, two_real, two_steps, 2 * PER_REPLICA_BATCH),
            "nowork2": turn_timer(two, two_none, two_steps, 2 * PER_REPLICA_BATCH),
            "ours1": turn_timer(one, one_real, one_steps, PER_REPLICA_BATCH),
            "nowork1": turn_timer(one, one_none, one_steps, PER_REPLICA_BATCH),
        }
        rates = {name: [] for name in turns}
        for _ in range(rounds):
            for name, turn in turns.items():
                rates[name].append(turn())
        med = {name: statistics.median(values) for name, values in rates.items()}

        def ratio(a, b):
            values = [x / y for x, y in zip(rates[a], rates[b])]
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        print(f"| {architecture} | {med['keras2']:,.0f} | {med['ours2']:,.0f} | {med['ours1']:,.0f} | "
              f"{ratio('ours2', 'keras2')} | {ratio('ours2', 'ours1')} | {ratio('ours2', 'nowork2')} | "
              f"{ratio('ours1', 'nowork1')} |", flush=True)
    print(f"\n{train_bench.load_average()}; median of {rounds} rounds (range)")


def compute_only(model):
    """Re-installs `model`'s step loop without the all-reduce and the update: each
    replica's forward and backward pass alone (its gradients summed into a metric, so
    nothing is pruned). Its rate on 2 replicas over 1 device is what this machine
    allows 2 replicas before any cost of distribution."""
    import keras
    import tensorflow as tf

    from trainer import step_loop

    loop = step_loop.of(model)
    with loop.strategy.scope():
        sink = keras.metrics.Sum()

    def replica_step(batch):
        gradients = loop._compiled("gradients", loop._gradients)(batch)
        sink.update_state(tf.add_n([tf.reduce_sum(g) for g in gradients]))

    loop._train_replica = replica_step
    return model


def bound(data_dir, architectures, rounds):
    """Forward and backward alone, 2 replicas against 1 device and against Keras' plain
    fit on 2 replicas, beside the full step: the last column is the most any 2-replica
    step could gain over Keras' fit on this machine."""
    import tensorflow as tf

    from trainer import data, tensorflow_adapter

    contract = data.load_contract(data_dir)
    print("| architecture | full step, 2 replicas / 1 device | forward+backward alone, 2 replicas / 1 device | "
          "full step, 2 replicas / Keras fit | forward+backward alone, 2 replicas / Keras fit |")
    print("|---|---|---|---|---|")
    for architecture in architectures:
        turns, steps = {}, {}
        for replicas in (2, 1):
            model, real, _, steps[replicas] = ours(data_dir, architecture, replicas)
            turns[("full", replicas)] = turn_timer(model, real, steps[replicas], replicas * PER_REPLICA_BATCH)
            model, real, _, _ = ours(data_dir, architecture, replicas)
            turns[("compute", replicas)] = turn_timer(compute_only(model), real, steps[replicas], replicas * PER_REPLICA_BATCH)
        tensorflow_adapter.fresh_collective_keys()
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        plain, plain_feed = keras_plain(data_dir, contract, architecture, mirrored)
        turns[("keras", 2)] = turn_timer(plain, plain_feed, steps[2], 2 * PER_REPLICA_BATCH)
        rates = {key: [] for key in turns}
        for _ in range(rounds):
            for key, turn in turns.items():
                rates[key].append(turn())

        def ratio(a, b):
            values = [x / y for x, y in zip(rates[a], rates[b])]
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        print(f"| {architecture} | {ratio(('full', 2), ('full', 1))} | {ratio(('compute', 2), ('compute', 1))} | "
              f"{ratio(('full', 2), ('keras', 2))} | {ratio(('compute', 2), ('keras', 2))} |", flush=True)
    print(f"\n{train_bench.load_average()}; median of {rounds} rounds (range)")


def xla_ab(data_dir, architectures, rounds):
    """s140-train's loop with XLA as planned against XLA off, on 2 replicas and on 1."""
    print("| architecture | plan, 2 replicas | XLA on / off, 2 replicas | plan, 1 device | XLA on / off, 1 device |")
    print("|---|---|---|---|---|")
    for architecture in architectures:
        turns, plans = {}, {}
        for replicas in (2, 1):
            for jit in ("true", "false"):
                model, run, steps = built(data_dir, architecture, replicas, jit)
                turns[(replicas, jit)] = turn_timer(model, run.feeds.train.repeat(), steps, run.global_batch)
            # What the plan would choose for this model: the same run with "auto".
            auto = dataclasses.replace(run, settings=dataclasses.replace(run.settings, jit_compile="auto"))
            plans[replicas] = "XLA" if auto.step_plan_for(model).jit_compile else "no XLA"
        rates = {key: [] for key in turns}
        for _ in range(rounds):
            for key, turn in turns.items():
                rates[key].append(turn())

        def ratio(replicas):
            values = [x / y for x, y in zip(rates[(replicas, "true")], rates[(replicas, "false")])]
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        print(f"| {architecture} | {plans[2]} | {ratio(2)} | {plans[1]} | {ratio(1)} |", flush=True)
    print(f"\n{train_bench.load_average()}; median of {rounds} rounds (range)")


# --- MultiWorkerMirroredStrategy: two local processes.


def worker(data_dir, architecture, rounds, index):
    """One of the two workers (one strategy per process): both run the same turns;
    worker 0 prints its rates."""
    from trainer import data

    model, run, steps = built(data_dir, architecture, 1)  # TF_CONFIG: MultiWorkerMirroredStrategy
    plain, plain_feed = keras_plain(data_dir, data.load_contract(data_dir), architecture, run.strategy)
    turns = {
        "keras": turn_timer(plain, plain_feed, steps, run.global_batch),
        "ours": turn_timer(model, run.feeds.train, steps, run.global_batch),
    }
    rates = {name: [] for name in turns}
    for _ in range(rounds):
        for name, turn in turns.items():
            rates[name].append(turn())
    if index == 0:
        print(json.dumps(rates))


def worker_pair(data_dir, architecture, rounds):
    """The rates of `worker` 0, from two local processes on loopback."""
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", str(index), "--data_dir", data_dir,
             "--architectures", architecture, "--rounds", str(rounds)],
            env=env, stdout=subprocess.PIPE, text=True,
        ))
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        sys.exit("A worker failed; see its output above.")
    return json.loads(outputs[0].strip().splitlines()[-1])


def multi_worker(data_dir, architectures, rounds):
    results = {architecture: worker_pair(data_dir, architecture, rounds) for architecture in architectures}
    print("| architecture | Keras fit, MultiWorkerMirroredStrategy 2 processes (ex/s) | s140 (ex/s) | s140 / Keras |")
    print("|---|---|---|---|")
    for architecture, rates in results.items():
        ratios = [ours / keras for ours, keras in zip(rates["ours"], rates["keras"])]
        print(f"| {architecture} | {statistics.median(rates['keras']):,.0f} | {statistics.median(rates['ours']):,.0f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
    print(f"\n{train_bench.load_average()}; median of {rounds} rounds (range)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data_dir", help="a directory s140-preprocess wrote; default: preprocess the real sample")
    parser.add_argument("--multi_worker", action="store_true")
    parser.add_argument("--xla_ab", action="store_true", help="XLA on against off, on 2 replicas and on 1")
    parser.add_argument("--bound", action="store_true", help="the step without all-reduce and update")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # a process of --multi_worker
    args = parser.parse_args()
    architectures = args.architectures.split(",")
    if args.worker is not None:
        return worker(args.data_dir, args.architectures, args.rounds, args.worker)
    if not args.multi_worker:
        split_cpu(2)  # before TensorFlow's runtime starts
    data_dir = args.data_dir
    if not data_dir:
        if not (train_bench.SHARED / "sentiment140" / "train_sample.csv").exists():
            sys.exit(f"Real data not found at {train_bench.SHARED} (set S140_SHARED_DATA); nothing to measure.")
        data_dir = train_bench.preprocess(pathlib.Path(tempfile.mkdtemp(prefix="s140-replica-bench-")))
    if args.multi_worker:
        return multi_worker(data_dir, architectures, args.rounds)
    if args.xla_ab:
        return xla_ab(data_dir, architectures, args.rounds)
    if args.bound:
        return bound(data_dir, architectures, args.rounds)
    single_machine(data_dir, architectures, args.rounds)


if __name__ == "__main__":
    main()
