"""The bulk Example serializer against protobuf's own messages."""

import numpy as np
import pytest
import tensorflow as tf

from preprocessing import example_wire, schema


def proto_example(token_ids, label, tweet_id, text):
    example = tf.train.Example()
    feature = example.features.feature
    feature[schema.TOKEN_IDS].int64_list.value.extend(token_ids)
    feature[schema.LABEL].int64_list.value.append(label)
    feature[schema.TWEET_ID].int64_list.value.append(tweet_id)
    feature[schema.TEXT].bytes_list.value.append(text)
    return example


def test_serialized_examples_parse_into_the_messages_protobuf_builds():
    # Varint widths 1 to 10 bytes, lengths across the 1- and 2-byte varint boundary
    # (127/128, 16383/16384) and a text longer than the precomputed varints.
    token_ids = np.array([[0, 127, 128, 16383], [16384, 2**21, 9_999_999, 0], [1, 0, 0, 0]])
    labels = [1, 0, 1]
    tweet_ids = [0, 2**63 - 1, 3_000_000_123]
    texts = ["happy day !".encode(), "é".encode() * 100, b"x" * 20_000]
    records = example_wire.serialize_examples(token_ids, labels, tweet_ids, texts)
    assert len(records) == 3
    for record, row, label, tweet_id, text in zip(records, token_ids.tolist(), labels, tweet_ids, texts):
        assert tf.train.Example.FromString(record) == proto_example(row, label, tweet_id, text)


def test_serialized_examples_parse_with_the_trainers_feature_spec():
    (record,) = example_wire.serialize_examples(np.array([[5, 2, 0]]), [0], [42], [b"good day"])
    parsed = tf.io.parse_single_example(record, schema.feature_spec(3))
    assert parsed[schema.TOKEN_IDS].numpy().tolist() == [5, 2, 0]
    assert (parsed[schema.LABEL].numpy(), parsed[schema.TWEET_ID].numpy(), parsed[schema.TEXT].numpy()) == (0, 42, b"good day")


@pytest.mark.parametrize("value, expected", [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"),
                                             (300, b"\xac\x02"), (16384, b"\x80\x80\x01")])
def test_varint_matches_the_protobuf_encoding(value, expected):
    assert example_wire.varint(value) == expected
    assert example_wire.packed_varints(np.array([[value]])) == [expected]


def test_negative_ids_are_refused():
    with pytest.raises(ValueError, match="Expected non-negative ids"):
        example_wire.packed_varints(np.array([[1, -1]]))
