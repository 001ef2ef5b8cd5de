"""cloud.storage and s140-submit's staging of local inputs against a local Cloud Storage
emulator (the gcp-storage-emulator package).

The real `google.cloud.storage.Client` talks to the emulator through
STORAGE_EMULATOR_HOST. A small fault-injecting proxy in front of it answers chosen
requests with an error (503, 412) and records every request, so retries and
preconditions are seen from the server's side.
"""

import io
import json
import os
import urllib.parse
import zipfile

import pytest

from support.gcs_fault_proxy import FaultProxy, free_port as _free_port  # tests/

from cloud import __main__ as cli
from cloud import staging
from cloud import storage

gcp_storage_emulator = pytest.importorskip(
    "gcp_storage_emulator.server", reason="the test extra installs gcp-storage-emulator"
)

BUCKET = "s140-test"


@pytest.fixture(scope="module")
def emulator():
    port = _free_port()
    server = gcp_storage_emulator.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield port
    server.stop()


@pytest.fixture
def proxy(emulator, monkeypatch):
    """A fresh bucket behind a fault proxy; STORAGE_EMULATOR_HOST points at the proxy."""
    proxy = FaultProxy(emulator)
    proxy.thread.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.port}")
    yield proxy
    proxy.server.shutdown()
    proxy.server.server_close()


@pytest.fixture
def client(proxy):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    client = gcs.Client(project="test", credentials=AnonymousCredentials())
    bucket = client.bucket(BUCKET)
    if not bucket.exists():
        client.create_bucket(BUCKET)
    for blob in client.list_blobs(BUCKET):
        blob.delete()
    proxy.requests.clear()
    return client


def _is_upload(method, path, query):
    return method in ("POST", "PUT") and path.startswith("/upload/")


def _crc32c(data):
    import base64

    import google_crc32c

    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


def _read(client, uri):
    target = storage.parse_gs_uri(uri)
    return client.bucket(target.bucket).blob(target.name).download_as_bytes()


def _names(client, prefix=None):
    return sorted(blob.name for blob in client.list_blobs(BUCKET, prefix=prefix))


# --- URIs.


@pytest.mark.parametrize(
    "uri, bucket, name",
    [("gs://b-1/a/b.txt", "b-1", "a/b.txt"), ("gs://bucket", "bucket", ""), ("gs://my.bucket/dir/", "my.bucket", "dir/")],
)
def test_parse_gs_uri(uri, bucket, name):
    parsed = storage.parse_gs_uri(uri)
    assert (parsed.bucket, parsed.name) == (bucket, name)
    assert parsed.join("x.json") == storage.GsUri(bucket, (name + "x.json") if name.endswith("/") or not name else name + "/x.json")


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("/local/path", "Received: '/local/path'"),
        ("gcs://b/x", "Write Cloud Storage locations as gs://BUCKET/PATH"),
        ("gs://", "a bucket name"),
        ("gs://Upper/x", "a bucket name"),
        (None, "Received: None"),
    ],
)
def test_parse_gs_uri_errors_say_expected_and_received(uri, fragment):
    with pytest.raises(storage.StorageUriError, match="Expected --output_dir") as caught:
        storage.parse_gs_uri(uri, what="--output_dir")
    assert fragment in str(caught.value)


def test_object_uri_required_for_uploads(tmp_path, client):
    path = tmp_path / "f.txt"
    path.write_text("x")
    with pytest.raises(storage.StorageUriError, match="to name an object"):
        storage.upload_file(str(path), f"gs://{BUCKET}", client=client)


# --- Round trips.


def test_upload_round_trip_is_checked_and_create_only(tmp_path, client, proxy):
    data = os.urandom(300_000)
    path = tmp_path / "embeddings.npy"
    path.write_bytes(data)
    info = storage.upload_file(str(path), f"gs://{BUCKET}/data/embeddings.npy", client=client)
    assert info.size == len(data)
    assert info.crc32c == _crc32c(data) == storage.crc32c_of_file(str(path))
    # Create-only: the write carried ifGenerationMatch=0, which makes retrying it safe.
    (method, _, query, _), = proxy.uploads()
    assert method == "POST" and query["ifGenerationMatch"] == ["0"]
    assert query["uploadType"] == ["multipart"]  # one request: all or nothing
    assert _read(client, info.uri) == data


def test_overwrite_is_conditional_on_the_replaced_generation(tmp_path, client, proxy):
    uri = f"gs://{BUCKET}/staging/train/train.csv"
    (tmp_path / "a.csv").write_text("0,1,x\n")
    (tmp_path / "b.csv").write_text("4,2,y\n")
    first = storage.upload_file(str(tmp_path / "a.csv"), uri, overwrite=True, client=client)
    second = storage.upload_file(str(tmp_path / "b.csv"), uri, overwrite=True, client=client)
    assert _read(client, uri) == b"4,2,y\n"
    generations = [q["ifGenerationMatch"] for m, _, q, _ in proxy.uploads()]
    assert generations == [["0"], [str(first.generation)]]
    assert second.generation != first.generation


def test_create_only_write_that_finds_an_object_fails_clearly(tmp_path, client, proxy):
    # The emulator does not evaluate preconditions; Cloud Storage answers 412 here.
    proxy.inject(_is_upload, 412)
    (tmp_path / "x.txt").write_bytes(b"x")
    with pytest.raises(storage.ObjectExistsError, match="to not exist yet.*ifGenerationMatch=0"):
        storage.upload_file(str(tmp_path / "x.txt"), f"gs://{BUCKET}/taken.txt", overwrite=False, client=client)
    assert len(proxy.uploads()) == 1  # a precondition failure is final, not retried


def test_transient_503_is_retried_and_the_upload_succeeds(tmp_path, client, proxy):
    proxy.inject(_is_upload, 503)
    path = tmp_path / "vocab.txt"
    path.write_text("\n[UNK]\nthe\n")
    info = storage.upload_file(str(path), f"gs://{BUCKET}/data/vocab.txt", client=client)
    assert _read(client, info.uri) == b"\n[UNK]\nthe\n"
    uploads = proxy.uploads()
    assert [forwarded for *_, forwarded in uploads] == [False, True]  # the server saw the retry
    assert all(q["ifGenerationMatch"] == ["0"] for _, _, q, _ in uploads)


class _FailingReader(io.RawIOBase):
    """A source that dies after `limit` bytes, e.g. a disk or pipe error mid-upload."""

    def __init__(self, limit):
        self.position = 0
        self.limit = limit

    def readable(self):
        return True

    def read(self, size=-1):
        if size < 0 or self.position + size > self.limit:
            raise OSError("source went away")
        self.position += size
        return b"z" * size

    def tell(self):
        return self.position


def test_upload_interrupted_mid_stream_leaves_no_object(client, proxy):
    uri = f"gs://{BUCKET}/data/train/part-00000.tfrecord.gz"
    chunk = 256 * 1024
    with pytest.raises(OSError, match="source went away"):
        storage.upload_stream(_FailingReader(chunk + 1000), uri, chunk_size=chunk, client=client)
    # The resumable session had received a whole chunk before the source failed ...
    assert any(method == "PUT" for method, *_ in proxy.uploads())
    # ... yet nothing is visible under the final name, nor anywhere else.
    assert _names(client) == []


def test_resumable_upload_of_a_stream_completes(client, proxy):
    data = os.urandom(600 * 1024)
    uri = f"gs://{BUCKET}/big.bin"
    info = storage.upload_stream(io.BytesIO(data), uri, chunk_size=256 * 1024, client=client)
    assert (info.size, info.crc32c) == (len(data), _crc32c(data))
    assert _read(client, uri) == data
    assert [q.get("uploadType") for m, _, q, _ in proxy.uploads() if m == "POST"] == [["resumable"]]


def test_missing_file_error(tmp_path, client):
    with pytest.raises(FileNotFoundError, match="Expected a local file to upload"):
        storage.upload_file(str(tmp_path / "absent"), f"gs://{BUCKET}/x", client=client)


def test_default_client_follows_the_emulator_variable(tmp_path, client):
    (tmp_path / "hello.txt").write_bytes(b"hello")
    # No client given: make_client() with STORAGE_EMULATOR_HOST is anonymous and local.
    storage.upload_file(str(tmp_path / "hello.txt"), f"gs://{BUCKET}/hello.txt")
    assert _read(client, f"gs://{BUCKET}/hello.txt") == b"hello"


# --- Beam's FileSystems honours the emulator: the real preprocessing job reads gs://.


@pytest.fixture
def anonymous_beam(monkeypatch):
    """Beam looks for application default credentials with four retries (about 30 s)
    before connecting anonymously; start it out anonymous, as it would end up."""
    pytest.importorskip("apache_beam.io.gcp.gcsfilesystem", reason="Beam's GCS file system (apache-beam[gcp])")
    from apache_beam.internal.gcp import auth

    monkeypatch.setattr(auth._Credentials, "_credentials_init", True)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)


def test_preprocess_reads_csvs_and_glove_from_gs(tmp_path, client, proxy, anonymous_beam):
    from preprocessing import config, pipeline, sample

    local = tmp_path / "local"
    sample.write_sample_csv(local / "train.csv", num_rows=400, seed=3, bad_rows=2)
    sample.write_sample_csv(local / "test.csv", num_rows=60, seed=4, kind="test")
    (local / "glove.4d.txt").write_text(
        "".join(f"{word} 0.1 0.2 0.3 {i / 10}\n" for i, word in enumerate(["the", "i", "good", "bad", "love"]))
    )
    # Staged as s140-submit stages a user's local inputs before a Dataflow job.
    staged = staging.plan("preprocess", [f"--train_csv={local}/train.csv", f"--test_csv={local}/test.csv",
                                         f"--glove={local}/glove.4d.txt"], f"gs://{BUCKET}/raw")
    staging.upload(staged, client=client, out=io.StringIO())

    out = tmp_path / "data"
    metadata = pipeline.preprocess(
        config.PreprocessConfig(
            train_csv=(f"gs://{BUCKET}/raw/train/train*.csv",),
            test_csv=(f"gs://{BUCKET}/raw/test/test.csv",),
            output_dir=str(out),
            glove=f"gs://{BUCKET}/raw/glove/glove.4d.txt",
            max_length=16,
            num_shards=1,
        )
    )
    assert metadata["files"]["train_csv"] == [f"gs://{BUCKET}/raw/train/train.csv"]
    assert metadata["files"]["test_csv"] == [f"gs://{BUCKET}/raw/test/test.csv"]
    counts = metadata["counts"]
    assert counts["rows_read"] == 400 + 2 + 60
    assert counts["rejected"] >= 2 and counts["train"] + counts["val"] > 300
    assert metadata["embedding"]["dim"] == 4
    # The files came through the emulator (object downloads), not from the local copies.
    downloaded = {urllib.parse.unquote(r[1]) for r in proxy.requests if r[2].get("alt") == ["media"]}
    assert {f"/download/storage/v1/b/{BUCKET}/o/raw/{name}"
            for name in ("train/train.csv", "test/test.csv", "glove/glove.4d.txt")} <= downloaded
    from trainer import data

    contract = data.load_contract(str(out))
    assert contract.vocab_size == metadata["vocab_size"]


def test_preprocess_writes_its_data_dir_to_gs(tmp_path, client, anonymous_beam):
    from preprocessing import config, pipeline, sample, schema
    from trainer import data

    sample.write_sample_csv(tmp_path / "train.csv", num_rows=300, seed=5, bad_rows=1)
    glove = tmp_path / "glove.4d.txt"
    glove.write_text("".join(f"{word} 0.1 0.2 0.3 {i / 10}\n" for i, word in enumerate(["the", "i", "good", "bad"])))
    metadata = pipeline.preprocess(
        config.PreprocessConfig(
            train_csv=(str(tmp_path / "train.csv"),), output_dir=f"gs://{BUCKET}/data", glove=str(glove),
            max_length=16, num_shards=2,
        )
    )
    names = {blob.name for blob in client.list_blobs(BUCKET, prefix="data/")}
    assert {"data/metadata.json", "data/vocab.txt", "data/embeddings.npy"} <= names
    assert not [name for name in names if ".tmp-" in name]  # every temporary name was renamed
    shards = sorted(name for name in names if name.startswith("data/train/"))
    assert shards == [f"data/train/part-0000{i}-of-00002.tfrecord.gz" for i in range(2)]
    # The directory, copied down, is a complete data directory with every example in it.
    for blob in client.list_blobs(BUCKET, prefix="data/"):
        target = tmp_path / "copy" / blob.name.removeprefix("data/")
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
    contract = data.load_contract(str(tmp_path / "copy"))
    assert contract.vocab_size == metadata["vocab_size"]
    records = data.read_records(str(tmp_path / "copy"), "train")
    assert len(records[schema.LABEL]) == metadata["counts"]["train"]


# --- s140-submit stages a user's local inputs before a cloud job.


def _local_inputs(root):
    from preprocessing import sample

    sample.write_sample_csv(root / "train.csv", num_rows=50, seed=1)
    sample.write_sample_csv(root / "test.csv", num_rows=20, seed=2, kind="test")
    with zipfile.ZipFile(root / "glove.zip", "w") as archive:
        archive.writestr("glove.4d.txt", "the 0.1 0.2 0.3 0.4\n")
    return root


def test_submit_preprocess_uploads_local_inputs_and_launches_with_their_copies(tmp_path, client, proxy, capsys):
    local = _local_inputs(tmp_path)
    launched = []
    argv = ["preprocess", "--project=p", "--region=us-central1", f"--output_dir=gs://{BUCKET}/prep", "--",
            f"--train_csv={local}/train*.csv", f"--test_csv={local}/test.csv", f"--glove={local}/glove.zip#glove.4d.txt"]
    assert cli.main(argv, run_command=lambda command: launched.append(command) or 0, out=io.StringIO()) == 0
    staged = f"gs://{BUCKET}/prep/staging"
    assert _names(client) == ["prep/staging/glove/glove.zip", "prep/staging/test/test.csv", "prep/staging/train/train.csv"]
    for name in ("train/train.csv", "test/test.csv", "glove/glove.zip"):
        assert _read(client, f"{staged}/{name}") == (local / name.split("/")[1]).read_bytes()
    (command,) = launched
    assert command[3:6] == [f"--train_csv={staged}/train/train.csv", f"--test_csv={staged}/test/test.csv",
                            f"--glove={staged}/glove/glove.zip#glove.4d.txt"]
    err = capsys.readouterr().err
    assert f"s140-submit: [1/3] uploading {local}/train.csv (" in err and f"-> {staged}/train/train.csv" in err
    assert "[3/3] uploading" in err and err.index("uploading") < err.index("launching")
    assert len(proxy.uploads()) == 3

    # Submitting again uploads nothing: the objects already hold the same bytes.
    proxy.requests.clear()
    assert cli.main(argv, run_command=lambda command: 0, out=io.StringIO()) == 0
    assert proxy.uploads() == []
    assert capsys.readouterr().err.count("already holds") == 3


def test_submit_dry_run_shows_the_uploads_and_uploads_nothing(tmp_path, client, proxy, capsys):
    local = _local_inputs(tmp_path)
    out = io.StringIO()
    code = cli.main(["train", "--project=p", "--region=us-central1", f"--output_dir=gs://{BUCKET}/runs/1",
                     "--image_uri=us-central1-docker.pkg.dev/p/repo/s140-trainer:latest",
                     f"--staging_dir=gs://{BUCKET}/inputs", "--dry_run", "--", f"--data_dir={_data_dir(local)}"], out=out)
    assert code == 0
    (pool,) = json.loads(out.getvalue())["jobSpec"]["workerPoolSpecs"]
    assert pool["containerSpec"]["args"] == ["train", f"--data_dir=gs://{BUCKET}/inputs/data"]
    err = capsys.readouterr().err
    assert err.count("would upload") == 4
    assert f"would upload {local}/data/metadata.json (2 B) -> gs://{BUCKET}/inputs/data/metadata.json" in err
    assert proxy.requests == [] and _names(client) == []


def _data_dir(root):
    data = root / "data"
    (data / "train").mkdir(parents=True)
    (data / "vocab.txt").write_text("\n[UNK]\n")
    (data / "train" / "part-00000-of-00001.tfrecord.gz").write_bytes(b"\x1f\x8b")
    (data / "embeddings.npy").write_bytes(b"\x93NUMPY")
    (data / "metadata.json").write_text("{}")
    return data


def test_a_staged_data_dir_gets_its_metadata_last(tmp_path, client, proxy):
    data = _data_dir(tmp_path)
    plan = staging.plan("tune", [f"--data_dir={data}", "--tuner=random"], f"gs://{BUCKET}/staging")
    assert plan.args == (f"--data_dir=gs://{BUCKET}/staging/data", "--tuner=random")
    out = io.StringIO()
    infos = staging.upload(plan, client=client, out=out)
    assert [info.uri.rsplit("/data/", 1)[1] for info in infos] == [
        "embeddings.npy", "train/part-00000-of-00001.tfrecord.gz", "vocab.txt", "metadata.json"]
    # The marker's generation (its creation on the server) is the newest.
    assert infos[-1].generation == max(info.generation for info in infos)
    assert [line.split("] ")[0] for line in out.getvalue().splitlines()] == [
        f"s140-submit: [{i}/4" for i in range(1, 5)]
    assert _read(client, f"gs://{BUCKET}/staging/data/train/part-00000-of-00001.tfrecord.gz") == b"\x1f\x8b"
