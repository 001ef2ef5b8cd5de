"""The Beam job's Metrics counters: what it read, kept, rejected and matched, live.

They show in the Dataflow console while the job runs and are logged when it ends.
metadata.json stays the record (it is written from the data, not from counters, and a
runner may count a retried bundle's attempts); the counters are for watching a job.
"""

import collections
import time

from absl import logging
from apache_beam.metrics.metric import Metrics, MetricsFilter

NAMESPACE = "s140"

ROWS_READ = "rows_read"  # every non-blank line of every input CSV
SKIPPED_NEUTRAL = "rows_skipped_neutral"  # neutral (2) rows of the test CSV
GLOVE_LINES_READ = "glove_lines_read"  # vectors in the GloVe source (rows of the kumo package)
GLOVE_LINES_MATCHED = "glove_lines_matched"  # of those, the vectors of vocabulary tokens
GLOVE_DUPLICATES = "glove_duplicate_words"  # later copies of a vocabulary token's vector (unused)
GLOVE_NON_FINITE = "glove_lines_non_finite"  # vocabulary tokens' vectors holding nan or inf
PROGRESS_SECONDS = 5.0  # a worker logs its progress at most this often


def kept(split):
    """Rows kept as examples of `split` (train, val, test)."""
    return f"rows_kept_{split}"


def rejected(reason):
    """Rows rejected for `reason` (one of the reasons in preprocessing/rows.py)."""
    return f"rows_rejected_{reason}"


def add(name, value):
    """Adds `value` to the counter `name`; zero is not reported (an idle counter would
    only clutter the console)."""
    if value:
        Metrics.counter(NAMESPACE, name).inc(value)


def add_all(counts):
    """`add` for each name -> value of a mapping (DoFns count a batch, then add once)."""
    for name, value in counts.items():
        add(name, value)


def final_values(result):
    """{counter name: value} of a finished job's counters, summed over the steps.

    Committed values where the runner has them (FnApiRunner, Dataflow), attempted ones
    otherwise."""
    totals = collections.Counter()
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] += value or 0
    return dict(sorted(totals.items()))


class Progress:
    """Running row count of one stage on one worker, logged every PROGRESS_SECONDS: a
    long job says what it is doing in its logs (counters need the Dataflow console)."""

    def __init__(self, stage, seconds=PROGRESS_SECONDS):
        self._stage, self._seconds = stage, seconds
        self.rows = 0
        self._last = time.monotonic()

    def add(self, rows, where):
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= self._seconds:
            self._last = now
            logging.info("%s: %d rows so far (now at %s)", self._stage, self.rows, where)
