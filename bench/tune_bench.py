"""Benchmark: s140-tune on real Sentiment140 rows (../shared/data).

Two comparisons, each against a named baseline measured in the same run:

  1. Search quality at the same epoch budget: Hyperband (max_epochs M, factor 3) against
     RandomSearch (the baseline) given as many trials of M epochs as fit in Hyperband's
     nominal budget. Reported: best validation accuracy, epochs actually run (early
     stopping), wall time, trials per hour.
  2. Parallel trials: one sweep run by the chief alone (its oracle process + one trial
     runner; the baseline) against the chief plus one worker process (two runners), the
     same random trials. Reported: wall time from launch to the chief's exit, ratio,
     trials per hour.

The data: train_sample.csv preprocessed with the real GloVe 50d vectors by
`preprocessing.pipeline.preprocess`; the train split trains, the val split scores the
trials. The official test set is not used at all (nothing here may choose on it).
Every sweep runs `python -m tuning` in its own process(es), with --epochs_best=0.

Run:  .venv/bin/python bench/tune_bench.py [--max_epochs=5] [--scaling_trials=6]
Prints a Markdown section for docs/benchmarks.md.
"""

import argparse
import csv
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("S140_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRAIN = SHARED / "sentiment140" / "train_sample.csv"
GLOVE = SHARED / "glove" / "glove.6B.50d.top50k_s140train.txt"
# The fast architectures: on a 2-core CPU an LSTM/GRU epoch over the 53k training
# tweets takes about ten times as long as these (see docs/benchmarks-history.md).
ARCHITECTURES = "flatten,gap,conv1d"


def preprocess(output_dir):
    sys.path.insert(0, str(ROOT))
    from preprocessing import config, pipeline

    start = time.perf_counter()
    pipeline.preprocess(
        config.PreprocessConfig(train_csv=(str(TRAIN),), output_dir=str(output_dir), glove=str(GLOVE))
    )
    return time.perf_counter() - start


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep(data_dir, tuner_dir, logs, *, workers=0, role=None, **flags):
    """Runs one sweep (chief + `workers` worker processes when role="chief"); returns
    (wall seconds from launch to the chief's exit, trials.csv rows)."""
    args = [f"--data_dir={data_dir}", f"--tuner_dir={tuner_dir}", "--epochs_best=0"]
    args += [f"--{name}={value}" for name, value in flags.items()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    commands = [args]
    if role == "chief":
        address = f"--oracle_address=127.0.0.1:{_free_port()}"
        commands = [args + ["--role=chief", address]]
        commands += [args + ["--role=worker", address, f"--worker_id={i + 1}"] for i in range(workers)]
    start = time.perf_counter()
    processes = []
    for index, command in enumerate(commands):
        log = open(logs / f"{pathlib.Path(tuner_dir).name}-{index}.log", "w")
        processes.append(
            subprocess.Popen([sys.executable, "-m", "tuning", *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    processes[0].wait()
    seconds = time.perf_counter() - start
    for process in processes[1:]:
        process.wait(timeout=600)
    if any(p.returncode for p in processes):
        sys.exit(f"A sweep process failed; see the logs in {logs}.")
    with open(pathlib.Path(tuner_dir) / "trials.csv", newline="") as f:
        return seconds, list(csv.DictReader(f))


def summarise(rows):
    done = [r for r in rows if r["status"] == "COMPLETED"]
    best = max(done, key=lambda r: float(r["val_accuracy"]))
    return {
        "trials": len(done),
        "epochs": sum(int(r["epochs_run"]) for r in done),
        "best": float(best["val_accuracy"]),
        "best_trial": f"trial {best['trial_id']}, {best['architecture']}",
        "runners": len({r["tuner_id"] for r in done}),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max_epochs", type=int, default=5, help="Hyperband's max_epochs; epochs per random trial.")
    parser.add_argument("--scaling_trials", type=int, default=6, help="Random trials of the 1-vs-2-worker sweeps.")
    parser.add_argument("--scaling_epochs", type=int, default=3, help="Epochs per trial of the 1-vs-2-worker sweeps.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work_dir", default=None, help="Keep data and sweeps here (default: a temporary dir).")
    args = parser.parse_args()
    if not TRAIN.exists() or not GLOVE.exists():
        print(f"Skipped: real data not found at {SHARED} (set S140_SHARED_DATA); nothing to measure.")
        return
    work = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="s140-tune-bench-"))
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from tuning import config as tuning_config
    from tuning import budget as tuning_budget

    try:
        data_dir = work / "data"
        prep_seconds = preprocess(data_dir) if not (data_dir / "metadata.json").exists() else 0.0
        common = dict(architectures=ARCHITECTURES, seed=args.seed)

        # 1. Hyperband against RandomSearch at the same nominal epoch budget.
        hyperband_cfg = tuning_config.SweepConfig(
            data_dir=str(data_dir), tuner_dir="unused", tuner="hyperband", max_epochs=args.max_epochs
        )
        budget = tuning_budget.epoch_budget(hyperband_cfg)
        random_trials = max(1, round(budget / args.max_epochs))
        hb_s, hb_rows = sweep(data_dir, work / "hyperband", logs, tuner="hyperband", max_epochs=args.max_epochs, **common)
        rs_s, rs_rows = sweep(
            data_dir, work / "random", logs, tuner="random", max_trials=random_trials, max_epochs=args.max_epochs, **common
        )
        hb, rs = summarise(hb_rows), summarise(rs_rows)

        # 2. One trial runner against two (chief alone vs chief + 1 worker).
        scaling = dict(tuner="random", max_trials=args.scaling_trials, max_epochs=args.scaling_epochs,
                       early_stopping_patience=0, **common)
        one_s, one_rows = sweep(data_dir, work / "workers1", logs, role="chief", workers=0, **scaling)
        two_s, two_rows = sweep(data_dir, work / "workers2", logs, role="chief", workers=1, **scaling)
        one, two = summarise(one_rows), summarise(two_rows)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    def per_hour(summary, seconds):
        return 3600.0 * summary["trials"] / seconds

    print(f"Data: {TRAIN.name} preprocessed in {prep_seconds:.0f} s; architectures {ARCHITECTURES}; "
          f"{os.cpu_count()} CPU cores, no GPU; seed {args.seed}.\n")
    print(f"Search at the same nominal budget of {budget} epochs (Hyperband max_epochs {args.max_epochs}, "
          f"factor 3; random: {random_trials} trials x {args.max_epochs} epochs, early stopping patience 3 on val_loss "
          "for both):\n")
    print("| sweep | trials | epochs run | best val accuracy (trial) | wall s | trials/hour |")
    print("|---|---|---|---|---|---|")
    print(f"| baseline: RandomSearch | {rs['trials']} | {rs['epochs']} | {rs['best']:.4f} ({rs['best_trial']}) | {rs_s:.0f} | {per_hour(rs, rs_s):.0f} |")
    print(f"| Hyperband | {hb['trials']} | {hb['epochs']} | {hb['best']:.4f} ({hb['best_trial']}) | {hb_s:.0f} | {per_hour(hb, hb_s):.0f} |")
    print(f"\nbest val accuracy, Hyperband - RandomSearch: {hb['best'] - rs['best']:+.4f}; "
          f"wall time ratio (Hyperband / RandomSearch): {hb_s / rs_s:.2f}\n")
    print(f"Parallel trials: {args.scaling_trials} random trials x {args.scaling_epochs} epochs (no early stopping), "
          "chief (oracle process + trials) with 0 or 1 extra worker process on this machine:\n")
    print("| sweep | trial runners used | trials | wall s (launch to chief exit) | trials/hour |")
    print("|---|---|---|---|---|")
    print(f"| baseline: chief alone | {one['runners']} | {one['trials']} | {one_s:.0f} | {per_hour(one, one_s):.0f} |")
    print(f"| chief + 1 worker | {two['runners']} | {two['trials']} | {two_s:.0f} | {per_hour(two, two_s):.0f} |")
    print(f"\nspeed-up (chief alone wall / chief + 1 worker wall): {one_s / two_s:.2f}")


if __name__ == "__main__":
    main()
