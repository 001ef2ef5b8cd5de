"""Benchmark: the cost of reading CSV records whole (a quoted field may hold line
breaks) against splitting physical lines, on 1.6M real rows.

The real train_sample.csv rows repeated up to --rows, one file, read back by
`preprocessing.rows` both ways in alternating turns in one process: lines alone
(`_binary_lines`) and records (`_records` over them, what s140-preprocess reads).
The rest of the job (parsing, standardizing, writing) is the same either way; its
whole time is in `bench/preprocess_bench.py`.

Run:  .venv/bin/python bench/csv_reader_ab.py [--rows=1600000] [--rounds=5]
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import preprocess_bench  # bench/: the real rows, repeated with fresh ids

from preprocessing import rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_600_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not preprocess_bench.TRAIN.exists():
        sys.exit(f"Real data not found at {preprocess_bench.SHARED} (set S140_SHARED_DATA); nothing to measure.")
    directory = pathlib.Path(tempfile.mkdtemp(prefix="s140-csv-ab-"))
    preprocess_bench.make_rows(directory, args.rows, 1)
    path = directory / "train-00.csv"
    turns = {
        "lines": lambda: sum(1 for _ in rows._binary_lines(str(path))),
        "records": lambda: sum(1 for _ in rows._records(rows._binary_lines(str(path)))),
    }
    seconds = {name: [] for name in turns}
    counts = {}
    for _ in range(args.rounds):
        for name, turn in turns.items():
            start = time.perf_counter()
            counts[name] = turn()
            seconds[name].append(time.perf_counter() - start)
    ratios = [r / l for r, l in zip(seconds["records"], seconds["lines"])]
    print(f"{counts['lines']:,} lines, {counts['records']:,} records; lines {statistics.median(seconds['lines']):.2f} s, records "
          f"{statistics.median(seconds['records']):.2f} s; records / lines {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f}), median of {args.rounds} rounds")


if __name__ == "__main__":
    main()
