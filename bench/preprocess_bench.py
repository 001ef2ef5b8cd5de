"""Benchmark: s140-preprocess against the course's Keras Tokenizer on 1.6M tweets.

The real Sentiment140 rows in ../shared/data are repeated with fresh tweet ids until
there are as many as in the full training file (1,600,000), written as several CSV
files, then two commands run one after the other on the same rows, each in its own
process so that its peak memory (summed over its worker processes) is its own:

  baseline  the course's way: csv -> tf_keras Tokenizer.fit_on_texts ->
            texts_to_sequences -> pad_sequences (padding and truncating "post")
  ours      s140-preprocess with its default flags (locally: Beam's FnApiRunner with one
            worker process per core), which also splits train/val, rejects bad rows,
            writes sharded GZIP TFRecords, the vocabulary and the GloVe matrix, and
            metadata.json

Peak memory is sampled every 0.2 s as the resident set (RSS) summed over the command's
processes, and every 1 s as the proportional set size (PSS), which counts a page shared by several
processes (TensorFlow's libraries, mapped by every worker) once in total rather than once
per process. For the one-process baseline the two are nearly equal.

Run:  .venv/bin/python bench/preprocess_bench.py [--rows=1600000]
      [--workers=N --mode=multi_processing|multi_threading|in_memory]  (default: the job's own)
Prints a Markdown table; copy it into docs/benchmarks.md.
"""

import argparse
import csv
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("S140_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRAIN = SHARED / "sentiment140" / "train_sample.csv"
GLOVE = SHARED / "glove" / "glove.6B.50d.top50k_s140train.txt"
MAX_LENGTH = 40
VOCAB_SIZE = 50_000

BASELINE = f"""
import csv, glob, sys
from tf_keras.preprocessing.text import Tokenizer
from tf_keras.preprocessing.sequence import pad_sequences
texts, labels = [], []
for path in sorted(glob.glob(sys.argv[1] + "/*.csv")):
    with open(path, encoding="latin-1", newline="") as handle:
        for row in csv.reader(handle):
            labels.append(0 if row[0] == "0" else 1)
            texts.append(row[5])
tokenizer = Tokenizer(num_words={VOCAB_SIZE}, oov_token="<OOV>")
tokenizer.fit_on_texts(texts)
padded = pad_sequences(tokenizer.texts_to_sequences(texts), maxlen={MAX_LENGTH}, padding="post", truncating="post")
print(padded.shape)
"""


def make_rows(directory, total_rows, files):
    """Writes `total_rows` real rows, repeated with fresh ids, into `files` CSV files."""
    with open(TRAIN, encoding="latin-1", newline="") as handle:
        base = list(csv.reader(handle))
    per_file = -(-total_rows // files)
    written = 0
    for index in range(files):
        with open(directory / f"train-{index:02d}.csv", "w", encoding="latin-1", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
            for _ in range(min(per_file, total_rows - written)):
                row = list(base[written % len(base)])
                row[1] = str(3_000_000_000 + written)  # a fresh id: the split sees a new tweet
                writer.writerow(row)
                written += 1
    return written


def _pss(process):
    try:
        return process.memory_full_info().pss
    except (psutil.Error, AttributeError):  # no /proc/<pid>/smaps_rollup: report RSS
        return process.memory_info().rss


# Reading a process's PSS (/proc/<pid>/smaps_rollup) takes ~9 ms of CPU for a 2 GiB
# process, and the job has three large processes to the baseline's one: sampled every
# 0.2 s, it took up to ~7% of the two cores from the job against ~2% from the baseline.
PSS_EVERY = 5  # RSS samples


def measure(command):
    """(wall seconds, peak RSS in MiB, peak PSS in MiB, stdout), memory summed over the
    process and its children."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = peak_pss = 0
    done = threading.Event()

    def sample():
        nonlocal peak, peak_pss
        parent = psutil.Process(process.pid)
        count = 0
        while not done.is_set():
            try:
                tree = [p for p in [parent] + parent.children(recursive=True) if p.is_running()]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
                if count % PSS_EVERY == 0:
                    peak_pss = max(peak_pss, sum(_pss(p) for p in tree))
            except psutil.Error:
                pass
            count += 1
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    elapsed = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"{command[:3]} failed:\n{err[-3000:]}")
    return elapsed, peak / 2**20, peak_pss / 2**20, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_600_000)
    parser.add_argument("--files", type=int, default=8)
    # Both unset: the job chooses (preprocessing/beam_options.with_local_parallelism).
    # multi_threading was faster at 400k rows but failed at 1.6M inside Beam 2.77's
    # FnApiRunner ("Invalid PaneInfoEncoding" while decoding a bundle).
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--mode", default=None)
    args = parser.parse_args()
    if not TRAIN.exists():
        sys.exit(f"Real data not found at {SHARED} (set S140_SHARED_DATA); nothing to measure.")
    work = pathlib.Path(tempfile.mkdtemp(prefix="s140-bench-"))
    try:
        (work / "csv").mkdir()
        rows = make_rows(work / "csv", args.rows, args.files)
        worker_flags = [f"--direct_num_workers={args.workers}"] if args.workers else []
        worker_flags += [f"--direct_running_mode={args.mode}"] if args.mode else []
        loads = [os.getloadavg()[0]]
        base_s, base_mb, base_pss, _ = measure([sys.executable, "-c", BASELINE, str(work / "csv")])
        loads.append(os.getloadavg()[0])
        ours_s, ours_mb, ours_pss, out = measure([
            sys.executable, "-m", "preprocessing", f"--train_csv={work / 'csv'}/*.csv",
            f"--output_dir={work / 'out'}", f"--glove={GLOVE}", f"--max_length={MAX_LENGTH}",
            f"--vocab_size={VOCAB_SIZE}", *worker_flags,
        ])
        loads.append(os.getloadavg()[0])
        ours_name = " ".join(worker_flags) or "default flags"
        print(out.strip())
        print(f"\n{rows:,} tweets, {os.cpu_count()} cores, 1-minute load average "
              f"{' -> '.join(f'{load:.1f}' for load in loads)} (before, between, after)\n")
        print("| command | wall s | tweets/s | peak RSS MiB | peak PSS MiB |")
        print("|---|---|---|---|---|")
        print(f"| baseline: tf_keras Tokenizer + pad_sequences | {base_s:.1f} | {rows / base_s:,.0f} | {base_mb:,.0f} | {base_pss:,.0f} |")
        print(f"| s140-preprocess, {ours_name} | {ours_s:.1f} | {rows / ours_s:,.0f} | {ours_mb:,.0f} | {ours_pss:,.0f} |")
        print(f"\nspeed ratio (ours / baseline tweets per second): {base_s / ours_s:.2f}")
        print(f"memory ratio (ours / baseline), RSS: {ours_mb / base_mb:.2f}, PSS: {ours_pss / base_pss:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
