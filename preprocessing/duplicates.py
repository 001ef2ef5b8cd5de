"""Tweet ids that occur more than once: counted always, later copies dropped on request.

Sentiment140 repeats some tweets, sometimes with the other label. metadata.json counts
the rows that repeat the id of another row ("duplicate_tweet_ids"); with
--drop_duplicate_ids each such id keeps the copy with the smallest (file, line) and the
others become `duplicate_id` rejections, so the counts still add up. The copy kept
depends on the input only, never on the order in which a runner handles the rows.

Cost: the ids of every example are gathered as one int64 array (8 bytes a row, 13 MB
at 1.6M rows) and sorted once; only the rows of repeated ids are grouped by id.
"""

import typing

import apache_beam as beam
import numpy as np

from preprocessing import counters
from preprocessing import rows


class Duplicates(typing.NamedTuple):
    ids: typing.FrozenSet[int]  # every tweet id that more than one example has
    later_copies: int  # examples beyond the first of each of those ids
    test_in_train: int = 0  # test examples whose id a train or val example also has


def example_ids(batch):
    """(tweet ids, whether each is a test example) of a RowBatch's examples (neutral
    test rows are not examples)."""
    ids = np.fromiter(
        (tweet_id for split, tweet_id in zip(batch.splits, batch.tweet_ids) if split is not None), dtype=np.int64
    )
    is_test = np.fromiter((split == "test" for split in batch.splits if split is not None), dtype=bool)
    return ids, is_test


class FindDuplicatesFn(beam.CombineFn):
    """(ids, is_test) arrays -> Duplicates."""

    def create_accumulator(self):
        return []

    def add_input(self, accumulator, ids):
        accumulator.append(ids)
        return accumulator

    def merge_accumulators(self, accumulators):
        # One pair of arrays per merge keeps the accumulators cheap to pickle between workers.
        return [_joined([pair for accumulator in accumulators for pair in accumulator])]

    def extract_output(self, accumulator):
        ids, is_test = _joined(accumulator)
        unique, counts = np.unique(ids, return_counts=True)
        test_in_train = int(np.isin(ids[is_test], ids[~is_test]).sum())
        return Duplicates(frozenset(unique[counts > 1].tolist()), int(len(ids) - len(unique)), test_in_train)


def _joined(pairs):
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate([ids for ids, _ in pairs]), np.concatenate([is_test for _, is_test in pairs])


class CountDuplicateIds(beam.PTransform):
    """RowBatches -> one Duplicates."""

    def expand(self, batches):
        return (
            batches
            | "ExampleIds" >> beam.Map(example_ids)
            | "FindDuplicates" >> beam.CombineGlobally(FindDuplicatesFn())
        )


def positions_of_duplicates(batch, duplicates):
    """(tweet id, (source, line)) of each example of a repeated id. Needs the positions
    that ParseAndStandardize keeps with keep_positions=True."""
    for split, tweet_id, line in zip(batch.splits, batch.tweet_ids, batch.lines):
        if split is not None and tweet_id in duplicates.ids:
            yield tweet_id, (batch.source, line)


class DropLaterCopiesFn(beam.DoFn):
    """RowBatch -> the RowBatch without later copies; each dropped row to REJECTED."""

    REJECTED = "rejected"

    def process(self, batch, kept_position):
        keep = [
            split is None or kept_position.get(tweet_id, (batch.source, line)) == (batch.source, line)
            for split, tweet_id, line in zip(batch.splits, batch.tweet_ids, batch.lines)
        ]
        for index in (i for i, kept in enumerate(keep) if not kept):
            tweet_id, line = batch.tweet_ids[index], batch.lines[index]
            source, first_line = kept_position[tweet_id]
            counters.add(counters.kept(batch.splits[index]), -1)  # counted as kept when parsed
            counters.add(counters.rejected(rows.DUPLICATE_ID), 1)
            yield beam.pvalue.TaggedOutput(self.REJECTED, rows.Rejection(
                batch.source, line, rows.DUPLICATE_ID,
                f"tweet id {tweet_id} is also on line {first_line} of {source}, the copy kept "
                "(--drop_duplicate_ids keeps the copy of the smallest file and line)",
                batch.standardized[index],
            ))
        if all(keep):
            yield batch
        elif any(keep):
            yield batch._replace(**{
                column: [value for value, kept in zip(getattr(batch, column), keep) if kept]
                for column in ("splits", "tweet_ids", "labels", "standardized", "lines")
            })


class DropLaterCopies(beam.PTransform):
    """RowBatches (with positions) -> (RowBatches, Rejections of the later copies) of
    the ids in `duplicates` (a singleton PCollection of Duplicates)."""

    def __init__(self, duplicates):
        super().__init__()
        self._duplicates = duplicates

    def expand(self, batches):
        kept_position = (
            batches
            | "PositionsOfDuplicates"
            >> beam.FlatMap(positions_of_duplicates, beam.pvalue.AsSingleton(self._duplicates))
            | "FirstPosition" >> beam.CombinePerKey(min)
        )
        dropped = batches | "DropLater" >> beam.ParDo(
            DropLaterCopiesFn(), beam.pvalue.AsDict(kept_position)
        ).with_outputs(DropLaterCopiesFn.REJECTED, main="batches")
        return dropped.batches, dropped[DropLaterCopiesFn.REJECTED]
