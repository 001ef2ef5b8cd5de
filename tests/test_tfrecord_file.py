"""TFRecord shards and token ids made without TensorFlow, against TensorFlow's own."""

import gzip

import numpy as np
import tensorflow as tf

from preprocessing import examples, schema, tfrecord_file
from support import tokens


def test_tensorflow_reads_back_every_record_of_every_member_in_order(tmp_path):
    records = [b"", b"x", b"\x00" * 300, "é".encode() * 5000] + [f"record {i}".encode() for i in range(1000)]
    path = tmp_path / "part.tfrecord.gz"
    members = [tfrecord_file.gzip_member(records[:3]), tfrecord_file.gzip_member([]),
               tfrecord_file.gzip_member(records[3:500]), tfrecord_file.gzip_member(records[500:])]
    tfrecord_file.write_members(str(path), members)
    # A small read buffer makes members end across reads, not only at the end of one.
    for buffer_size in (None, 64):
        dataset = tf.data.TFRecordDataset(str(path), compression_type="GZIP", buffer_size=buffer_size)
        assert [record.numpy() for record in dataset] == records
    assert gzip.decompress(path.read_bytes()) == tfrecord_file.framed(records)


def test_frames_are_tensorflows_bytes(tmp_path):
    # TensorFlow's writer without compression gives the frames themselves.
    records = [b"good day", b"", b"y" * 70_000]
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    with open(path, "rb") as handle:
        assert tfrecord_file.framed(records) == handle.read()


def test_the_same_records_give_the_same_bytes():
    member = tfrecord_file.gzip_member([b"one", b"two"])
    assert member == tfrecord_file.gzip_member([b"one", b"two"])
    assert member[4:8] == b"\x00\x00\x00\x00"  # mtime 0: no clock in the bytes
    assert gzip.decompress(member) == tfrecord_file.framed([b"one", b"two"])


def test_padded_token_ids_are_the_tensorflow_lookups():
    vocabulary = ["", "[UNK]", "good", "day", "!", "é"]
    texts = ["good day !", "good", "unknown day é é é", " ".join(["good"] * 7), "day"]
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)),
        default_value=schema.UNK_ID,
    )
    for max_length in (1, 4, 8):
        want = table.lookup(tokens.split_tokens(texts)).to_tensor(
            default_value=schema.PAD_ID, shape=[None, max_length]).numpy()
        got = examples.padded_token_ids(texts, {token: i for i, token in enumerate(vocabulary)}, max_length)
        assert got.dtype == np.int64
        assert got.tolist() == want.tolist()
    assert examples.padded_token_ids(texts, {"good": 2}, 3).tolist()[0] == [2, 1, 1]
