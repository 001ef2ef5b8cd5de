"""Benchmark (not a test): every architecture against TF-IDF + logistic regression on
the real sample, in one run of s140-compare.

On the real Sentiment140 rows of ../shared/data (train_sample.csv split into train/val
by the Beam job as bench/train_bench.py does, the official test CSV, the GloVe 50d
subset, frozen), s140-compare trains each architecture by the path of s140-train, with
its recommended recipe (`--recipe=recommended`, trainer/recipes.py), and fits the TF-IDF (1-2-gram) +
logistic regression baseline on the same train split's standardized text. Printed:

  - per architecture: val accuracy (at the lowest val loss epoch, the weights kept),
    official-test accuracy, epochs, seconds per epoch; the baseline's val and test;
  - the wall time of the whole comparison on this machine;
  - the winner on val, and its slice table when metrics.json has `slices`.

The official test set is only scored, never used to choose anything: the winner is
chosen on val.

Run (about 30 minutes on a 2-core CPU for all seven; docs/benchmarks-history.md):

  .venv/bin/python bench/quality_bench.py [--architectures=gap,conv1d] [--epochs=N] \\
      [--work_dir=/tmp/s140-quality]

--work_dir keeps the data and the runs: the same command again resumes the comparison
(finished architectures are not trained again). Prints Markdown; copy it into
docs/benchmarks.md.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import train_bench  # noqa: E402  (the real sample's preprocessing, shared)

ALL = "flatten,gap,bilstm,stacked_bilstm,conv1d,bigru,conv_lstm"


def compare_command(data_dir, job_dir, args):
    return [
        sys.executable, "-m", "trainer.compare_main", f"--data_dir={data_dir}", f"--job_dir={job_dir}",
        f"--architectures={args.architectures}",
        "--recipe=recommended", *([f"--epochs={args.epochs}"] if args.epochs else []),
    ]


def print_table(result):
    print("| model | val accuracy | test accuracy | best epoch / run | s/epoch | parameters |")
    print("|---|---|---|---|---|---|")
    for row in result["rows"]:
        test = "n/a" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
        seconds = "n/a" if row["seconds_per_epoch"] is None else f"{row['seconds_per_epoch']:.1f}"
        print(f"| {row['architecture']} | {row['best_val_accuracy']:.4f} | {test} | "
              f"{row['best_epoch']} / {row['epochs_run']} | {seconds} | {row['parameters']:,} |")
    base = result["baseline"]
    test = "n/a" if base["test_accuracy"] is None else f"{base['test_accuracy']:.4f}"
    print(f"| {base['name']} (baseline) | {base['val_accuracy']:.4f} | {test} | | | |")


def slice_rows(slices, path=()):
    """(path of keys, row) of every {"slice", "count", "accuracy"} row in metrics.json's
    `slices` ({split: {family: [row, ...]}}), in their order."""
    if isinstance(slices, dict):
        for key, value in slices.items():
            yield from slice_rows(value, (*path, str(key)))
    elif isinstance(slices, list):
        for row in slices:
            if isinstance(row, dict):
                yield path, row


def print_slices(slices):
    rows = list(slice_rows(slices))
    if not rows:  # a layout this script does not know: show it as it is
        print(json.dumps(slices, indent=2, sort_keys=True))
        return
    print("| split / family | slice | accuracy | count |")
    print("|---|---|---|---|")
    for path, row in rows:
        accuracy = row.get("accuracy")
        shown = "n/a" if accuracy is None else f"{accuracy:.4f}"
        print(f"| {' / '.join(path)} | {row.get('slice', '')} | {shown} | {row.get('count', '')} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", default=ALL)
    parser.add_argument("--epochs", type=int, default=None, help="default: each recipe's")
    parser.add_argument("--work_dir", default=None, help="keeps data/ and compare/; default: a new temporary dir")
    args = parser.parse_args()
    if not (train_bench.SHARED / "sentiment140" / "train_sample.csv").exists():
        sys.exit(f"Real data not found at {train_bench.SHARED} (set S140_SHARED_DATA); nothing to measure.")
    work = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="s140-quality-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = str(work / "data") if (work / "data" / "metadata.json").exists() else train_bench.preprocess(work)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = compare_command(data_dir, work / "compare", args)
    recipe_note = "each architecture's recommended recipe (--recipe=recommended)"
    print(f"Recipe: {recipe_note}.\nCommand: {' '.join(str(part) for part in command)}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    wall = time.perf_counter() - started
    result = json.loads((work / "compare" / "compare.json").read_text())

    counts = result["counts"]
    print(f"\n{counts['train']:,} train / {counts['val']:,} val / {counts['test']:,} official test tweets; "
          f"{recipe_note}; {os.cpu_count()} cores; wall time {wall:,.0f} s "
          f"({', '.join(f'{k}: {v}' for k, v in result['trained'].items())})\n")
    print_table(result)
    scored = [row for row in result["rows"] if row["best_val_accuracy"] is not None]
    best = max(scored, key=lambda row: row["best_val_accuracy"])
    base = result["baseline"]
    print(f"\nwinner on val: {best['architecture']} ({best['best_val_accuracy']:.4f}); beats the baseline on val: "
          f"{best['best_val_accuracy'] > base['val_accuracy']}, on test: "
          f"{best['test_accuracy'] is not None and base['test_accuracy'] is not None and best['test_accuracy'] > base['test_accuracy']}")
    if best.get("slices"):
        print(f"\nslices of {best['architecture']} (its metrics.json):\n")
        print_slices(best["slices"])
    else:
        print(f"\n{best['architecture']}'s metrics.json has no slices.")
    print(f"\nComparison page: {result['outputs']['compare_md']}")


if __name__ == "__main__":
    main()
