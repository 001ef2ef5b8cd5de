"""Tests of trainer.data: the validated contract and the tf.data input, on the real
output of the Beam job (`sample_data_dir`) and on copies of it broken one way each."""

import json
import shutil

import numpy as np
import pytest

from preprocessing import schema
from trainer import data


def _rows(token_ids, labels):
    """Examples as a sorted list of (ids..., label) tuples: order-free comparison."""
    return sorted(tuple(ids) + (int(label),) for ids, label in zip(token_ids, labels))


def _collect(dataset):
    ids, labels = [], []
    for batch_ids, batch_labels in dataset:
        ids.append(batch_ids.numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(ids), np.concatenate(labels)


@pytest.fixture
def broken_dir(sample_data_dir, tmp_path):
    """A private copy of the sample data directory, for a test to break."""
    copy = tmp_path / "data"
    shutil.copytree(sample_data_dir, copy)
    return copy


def _edit_metadata(data_dir, **changes):
    path = data_dir / schema.METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


# --- load_contract.


def test_load_contract_matches_files(sample_data_dir):
    contract = data.load_contract(sample_data_dir)
    with open(f"{sample_data_dir}/{schema.VOCAB_FILE}") as f:
        lines = f.read().split("\n")[:-1]
    assert contract.vocab_tokens == lines
    assert contract.vocab_tokens[:2] == ["", "[UNK]"]
    assert contract.embeddings.dtype == np.float32
    np.testing.assert_array_equal(
        contract.embeddings, np.load(f"{sample_data_dir}/{schema.EMBEDDINGS_FILE}")
    )
    assert contract.embeddings.shape == (contract.vocab_size, 50)
    assert (contract.max_length, contract.embedding_dim) == (24, 50)


def test_missing_metadata_names_the_path(broken_dir):
    (broken_dir / schema.METADATA_FILE).unlink()
    with pytest.raises(schema.ContractError) as error:
        data.load_contract(str(broken_dir))
    message = str(error.value)
    assert str(broken_dir / schema.METADATA_FILE) in message
    assert "not finished" in message and "not an s140-preprocess output" in message


def test_wrong_schema_version_names_expected_and_found(broken_dir):
    _edit_metadata(broken_dir, schema_version=99)
    with pytest.raises(schema.ContractError, match=r"expected schema_version 1\. Received: 99"):
        data.load_contract(str(broken_dir))


def test_the_standardizer_the_data_was_made_with_is_the_contracts(sample_data_dir, broken_dir):
    assert data.load_contract(sample_data_dir).standardizer == "glove6b"
    # metadata.json from before there was a choice names none: it was made with the default.
    path = broken_dir / schema.METADATA_FILE
    metadata = json.loads(path.read_text())
    del metadata["standardizer"]
    path.write_text(json.dumps(metadata))
    assert data.load_contract(str(broken_dir)).standardizer == "glove6b"
    _edit_metadata(broken_dir, standardizer="twitter", standardizer_version=1)
    assert data.load_contract(str(broken_dir)).standardizer == "twitter"


@pytest.mark.parametrize("recorded, version, package_version", [("glove6b", 1, 2), ("twitter", 2, 1)])
def test_a_standardizer_version_mismatch_is_refused_naming_both(broken_dir, recorded, version, package_version):
    _edit_metadata(broken_dir, standardizer=recorded, standardizer_version=version)
    with pytest.raises(schema.ContractError) as error:
        data.load_contract(str(broken_dir))
    message = str(error.value)
    assert f"expected standardizer_version {package_version} (standardizer {recorded!r} of this package)" in message
    assert f"Received: {version}, the version the data was made with" in message
    assert f"re-run s140-preprocess --standardizer={recorded}" in message


def test_an_unknown_standardizer_is_refused(broken_dir):
    _edit_metadata(broken_dir, standardizer="glove42b")
    with pytest.raises(schema.ContractError,
                       match=r"expected a standardizer in \['glove6b', 'twitter'\]\. Received: 'glove42b'"):
        data.load_contract(str(broken_dir))


def test_embeddings_shape_mismatch(broken_dir):
    path = broken_dir / schema.EMBEDDINGS_FILE
    matrix = np.load(path)
    np.save(path, matrix[:, :10])
    rows = matrix.shape[0]
    with pytest.raises(schema.ContractError) as error:
        data.load_contract(str(broken_dir))
    assert f"expected shape [vocab_size, embedding.dim] = [{rows}, 50]" in str(error.value)
    assert f"Received: shape [{rows}, 10]" in str(error.value)


def test_vocab_line_count_mismatch(broken_dir):
    path = broken_dir / schema.VOCAB_FILE
    lines = path.read_text().split("\n")[:-1]
    path.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(schema.ContractError) as error:
        data.load_contract(str(broken_dir))
    assert f"expected {len(lines)} lines" in str(error.value)
    assert f"Received: {len(lines) - 3} lines" in str(error.value)


def test_metadata_is_checked_before_other_files(broken_dir):
    # A broken metadata.json must be reported even when the other files are gone too:
    # it is the first thing a reader trusts.
    (broken_dir / schema.VOCAB_FILE).unlink()
    _edit_metadata(broken_dir, max_length="24")
    with pytest.raises(schema.ContractError, match="max_length to be a positive integer"):
        data.load_contract(str(broken_dir))


def test_missing_vocab_is_named(broken_dir):
    (broken_dir / schema.VOCAB_FILE).unlink()
    with pytest.raises(schema.ContractError, match=r"Expected the vocabulary at .*vocab\.txt"):
        data.load_contract(str(broken_dir))


# --- make_dataset.


@pytest.mark.parametrize("split", schema.SPLITS)
def test_dataset_yields_exactly_the_records(sample_data_dir, split):
    metadata = data.read_metadata(sample_data_dir)
    records = data.read_records(sample_data_dir, split)
    ids, labels = _collect(
        data.make_dataset(data.load_contract(sample_data_dir), split, batch_size=64)
    )
    assert len(labels) == metadata["counts"][split] == len(records["label"])
    assert ids.dtype == np.int64 and ids.shape[1] == 24
    assert labels.dtype == np.float32
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert int(labels.sum()) == metadata["label_balance"][split]["positive"]
    assert _rows(ids, labels) == _rows(records["token_ids"], records["label"])


def test_batches_have_the_requested_size(sample_data_dir):
    count = data.read_metadata(sample_data_dir)["counts"]["val"]
    sizes = [
        int(x.shape[0])
        for x, _ in data.make_dataset(data.load_contract(sample_data_dir), "val", batch_size=100)
    ]
    assert sizes == [100] * (count // 100) + ([count % 100] if count % 100 else [])


def test_seeded_shuffle_is_deterministic_and_reshuffles_each_epoch(sample_data_dir):
    def two_epochs(seed):
        dataset = data.make_dataset(
            data.load_contract(sample_data_dir), "train", batch_size=64, shuffle=True, seed=seed
        )
        return [_collect(dataset)[0] for _ in range(2)]

    first, again = two_epochs(7), two_epochs(7)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1])  # a new order every epoch
    assert not np.array_equal(first[0], two_epochs(8)[0])
    # Same examples, only reordered.
    assert sorted(map(tuple, first[0])) == sorted(map(tuple, first[1]))


def test_each_shuffled_pass_is_an_exact_permutation_in_full_batches(sample_data_dir):
    records = data.read_records(sample_data_dir, "train")
    count = len(records["label"])
    dataset = data.make_dataset(data.load_contract(sample_data_dir), "train", batch_size=7, shuffle=True, seed=5)
    orders = []
    for _ in range(2):
        sizes = [int(labels.shape[0]) for _, labels in dataset]
        assert sizes == [7] * (count // 7) + ([count % 7] if count % 7 else [])
        ids, labels = _collect(dataset)
        # Every example exactly once per pass (no duplicate, none lost), in a new order.
        assert _rows(ids, labels) == _rows(records["token_ids"], records["label"])
        orders.append(ids)
    assert not np.array_equal(orders[0], orders[1])


def test_weighted_batches_are_full_and_weigh_each_real_example_once(sample_data_dir):
    records = data.read_records(sample_data_dir, "train")
    count = len(records["label"])
    batch = 64
    full, rest = divmod(count, batch)
    assert rest  # the sample's split leaves a partial batch to fill
    dataset = data.make_dataset(
        data.load_contract(sample_data_dir), "train", batch_size=batch, shuffle=True, seed=5, weighted=True
    )
    batches = [tuple(t.numpy() for t in element) for element in dataset]
    assert [len(labels) for _, labels, _ in batches] == [batch] * (full + 1)  # static: all full
    assert all(weights.sum() == pytest.approx(batch) for _, _, weights in batches)
    assert all((weights == 1).all() for _, _, weights in batches[:-1])
    last_weights = batches[-1][2]
    np.testing.assert_allclose(last_weights[:rest], batch / rest)
    assert (last_weights[rest:] == 0).all()
    # The examples of weight > 0 are the split, each exactly once; the fill repeats
    # real examples (never a row of padding ids, which a masked model cannot take).
    real = [(ids[weights > 0], labels[weights > 0]) for ids, labels, weights in batches]
    ids, labels = (np.concatenate(parts) for parts in zip(*real))
    assert _rows(ids, labels) == _rows(records["token_ids"], records["label"])
    fill = batches[-1][0][rest:]
    assert (fill != 0).any(axis=1).all()
    assert set(map(tuple, fill)) <= set(map(tuple, records["token_ids"]))


def test_shuffle_mixes_examples_across_batches(sample_data_dir):
    """Shuffling whole batches would keep each batch's members together; ours may not."""
    kwargs = dict(batch_size=64, seed=3)
    contract = data.load_contract(sample_data_dir)
    plain = [
        {tuple(row) for row in x.numpy()}
        for x, _ in data.make_dataset(contract, "train", **kwargs)
    ]
    shuffled_first = {
        tuple(row)
        for row in next(iter(data.make_dataset(contract, "train", shuffle=True, **kwargs)))[
            0
        ].numpy()
    }
    # The first shuffled batch draws from many of the unshuffled batches.
    sources = sum(1 for batch in plain if batch & shuffled_first)
    assert sources >= 10


def test_repeat_continues_past_one_epoch(sample_data_dir):
    count = data.read_metadata(sample_data_dir)["counts"]["val"]
    dataset = data.make_dataset(
        data.load_contract(sample_data_dir), "val", batch_size=50, repeat=True, drop_remainder=True
    )
    steps = count // 50 + 3
    seen = sum(int(x.shape[0]) for x, _ in dataset.take(steps))
    assert seen == steps * 50


def test_the_contract_lists_the_shards_and_a_count_mismatch_is_refused(sample_data_dir, broken_dir):
    contract = data.load_contract(sample_data_dir)
    assert contract.data_dir == sample_data_dir
    assert [len(contract.split_shards(split)) for split in schema.SPLITS] == [2, 2, 2]
    assert contract.split_shards("val") == tuple(data.split_files(sample_data_dir, "val"))
    # A data directory whose shards hold other examples than metadata.json counts.
    metadata = json.loads((broken_dir / schema.METADATA_FILE).read_text())
    val = metadata["counts"]["val"]
    _edit_metadata(broken_dir, counts={**metadata["counts"], "val": val + 1})
    with pytest.raises(schema.ContractError, match=rf"Expected {val + 1} examples in split 'val' .*Received {val} in 2 shards"):
        data.make_dataset(data.load_contract(str(broken_dir)), "val", batch_size=8)


def test_empty_split_is_refused(broken_dir):
    metadata = json.loads((broken_dir / schema.METADATA_FILE).read_text())
    _edit_metadata(broken_dir, counts={**metadata["counts"], "test": 0})
    shutil.rmtree(broken_dir / "test")
    with pytest.raises(schema.ContractError) as error:
        data.make_dataset(data.load_contract(str(broken_dir)), "test", batch_size=8)
    assert "Expected examples in split 'test'" in str(error.value)
    assert "Received: 0 shards" in str(error.value)


def test_a_truncated_shard_is_named_with_what_to_do(broken_dir):
    contract = data.load_contract(str(broken_dir))
    intact, cut = contract.split_shards("train")
    content = open(cut, "rb").read()
    with open(cut, "wb") as f:
        f.write(content[: len(content) // 2])  # an interrupted copy
    with pytest.raises(schema.ContractError) as error:
        data.make_dataset(contract, "train", batch_size=8)
    message = str(error.value)
    assert f"Received damaged ones: ['{cut}']" in message
    assert intact not in message
    assert "re-run s140-preprocess" in message


# --- The rows GloVe lacks.


def test_contract_lists_the_rows_glove_lacks(sample_data_dir):
    contract = data.load_contract(sample_data_dir)
    ids = contract.require_uncovered_ids()
    assert ids.tolist() == np.load(f"{sample_data_dir}/{schema.UNCOVERED_IDS_FILE}").tolist()
    assert ids[0] == schema.UNK_ID and len(ids) == contract.metadata["embedding"]["uncovered_rows"]
    assert contract.vocab_size - len(ids) - 1 == contract.metadata["embedding"]["covered_types"]


def test_older_data_dir_loads_and_fails_only_when_its_uncovered_rows_are_asked_for(broken_dir):
    path = broken_dir / schema.METADATA_FILE
    metadata = json.loads(path.read_text())
    del metadata["embedding"]["uncovered_rows"]
    path.write_text(json.dumps(metadata))
    (broken_dir / schema.UNCOVERED_IDS_FILE).unlink()
    contract = data.load_contract(str(broken_dir))
    assert contract.uncovered_ids is None and contract.count("train") > 0
    with pytest.raises(schema.ContractError, match=r"Expected uncovered_ids.npy .* --train_oov_vectors.*Re-run s140-preprocess"):
        contract.require_uncovered_ids()


def test_uncovered_ids_that_disagree_with_metadata_are_refused(broken_dir):
    path = broken_dir / schema.UNCOVERED_IDS_FILE
    ids = np.load(path)
    np.save(path, ids[:-2])
    with pytest.raises(schema.ContractError, match=rf"expected {len(ids)} integer ids .* Received: shape \[{len(ids) - 2}\]"):
        data.load_contract(str(broken_dir))
    path.unlink()
    with pytest.raises(schema.ContractError, match="Expected the ids of the rows GloVe lacks at"):
        data.load_contract(str(broken_dir))
