"""The coder of the batches that cross the Beam job's stage boundaries."""

import pickle

import apache_beam as beam

from preprocessing import batch_coder, rows, transforms


def _line_batch():
    texts = [f'"4","{i}","Mon Apr 06","NO_QUERY","user{i}","good day number {i} !!!"' for i in range(500)]
    return rows.LineBatch("/data/train.csv", "train", list(range(1, 501)), texts, {7: "not utf-8"})


def test_batches_come_back_equal_and_smaller_than_pickled():
    coder = batch_coder.CompressedBatchCoder()
    row_batch = transforms.RowBatch(["train", None, "val"], [1, 2, 3], [1, None, 0], ["a b", "c", "d e f"])
    for batch in (_line_batch(), row_batch, rows.LineBatch("/x.csv", "test", [], [])):
        assert coder.decode(coder.encode(batch)) == batch
    pickled = len(pickle.dumps(_line_batch(), protocol=pickle.HIGHEST_PROTOCOL))
    assert len(coder.encode(_line_batch())) < pickled / 3  # repetitive lines compress well
    # Beam's byte counters get the pickled size, without compressing to measure it.
    assert coder.estimate_size(_line_batch()) == pickled


def test_the_job_s_batch_types_travel_with_it():
    for batch_type in (rows.LineBatch, transforms.RowBatch):
        assert isinstance(beam.coders.registry.get_coder(batch_type), batch_coder.CompressedBatchCoder)
