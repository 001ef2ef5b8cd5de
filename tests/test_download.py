"""s140-download against a real local HTTP server serving tiny copies of the archives."""

import functools
import hashlib
import http.server
import os
import pathlib
import re
import shlex
import subprocess
import sys
import threading
import zipfile

import pytest

from preprocessing import download
from preprocessing import glove
from preprocessing import sample

REPO = pathlib.Path(__file__).resolve().parents[1]
GLOVE_50D = "the 0.1 0.2 0.3\nlove 0.4 0.5 0.6\nhate -0.1 -0.2 -0.3\n"
GLOVE_100D = "the 1.0 2.0\nlove 3.0 4.0\n"  # content is never parsed as 100-d here


class _Server:
    """A local HTTP server and the paths it was asked for."""

    def __init__(self, root):
        self.root = root
        self.requests = []
        handler = functools.partial(_CountingHandler, self.requests, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        # A short poll interval keeps shutdown() (each teardown) quick.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, requests, *args, **kwargs):
        self._requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self._requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keeps pytest output free of access-log lines
        pass


@pytest.fixture
def site(tmp_path):
    """Tiny official-looking archives under <root>/mirror/, by their official names."""
    mirror = tmp_path / "site" / "mirror"
    csvs = tmp_path / "csvs"
    sample.write_sample_csv(csvs / download.SENTIMENT140_TRAIN_CSV, num_rows=20, seed=0)
    sample.write_sample_csv(csvs / download.SENTIMENT140_TEST_CSV, num_rows=10, kind="test")
    mirror.mkdir(parents=True)
    with zipfile.ZipFile(mirror / download.SENTIMENT140_ARCHIVE, "w") as zipped:
        for name in (download.SENTIMENT140_TRAIN_CSV, download.SENTIMENT140_TEST_CSV):
            zipped.write(csvs / name, arcname=name)
    with zipfile.ZipFile(mirror / "glove.6B.zip", "w") as zipped:
        # Written 100d first: the flag values must still list 50d first (by dimension).
        zipped.writestr("glove.6B.100d.txt", GLOVE_100D)
        zipped.writestr("glove.6B.50d.txt", GLOVE_50D)
    return {"root": tmp_path / "site", "mirror": mirror, "csvs": csvs}


@pytest.fixture
def server(site, monkeypatch):
    # A proxy configured in the environment would otherwise receive the 127.0.0.1 requests.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    running = _Server(site["root"])
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()
    running.thread.join(timeout=10)


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_sentiment140_arrives_extracted_and_the_second_call_uses_the_cache(
    server, site, tmp_path
):
    cache = tmp_path / "cache"

    paths = download.fetch_sentiment140(cache, base_url=server.base_url)

    assert paths == {
        "archive": str(cache / download.SENTIMENT140_ARCHIVE),
        "train_csv": str(cache / "sentiment140" / download.SENTIMENT140_TRAIN_CSV),
        "test_csv": str(cache / "sentiment140" / download.SENTIMENT140_TEST_CSV),
    }
    for key in ("train_csv", "test_csv"):
        name = os.path.basename(paths[key])
        assert pathlib.Path(paths[key]).read_bytes() == (site["csvs"] / name).read_bytes()
    assert server.requests == ["/mirror/trainingandtestdata.zip"]

    # Cached: no second request, and a deleted CSV comes back from the cached zip.
    os.remove(paths["test_csv"])
    assert download.fetch_sentiment140(cache, base_url=server.base_url + "/") == paths
    assert pathlib.Path(paths["test_csv"]).read_bytes() == (
        site["csvs"] / download.SENTIMENT140_TEST_CSV
    ).read_bytes()
    assert server.requests == ["/mirror/trainingandtestdata.zip"]
    assert not list((cache / "sentiment140").glob("*.partial"))


def test_glove_zip_is_cached_and_its_flag_values_work_in_the_preprocessing_reader(
    server, site, tmp_path
):
    cache = tmp_path / "cache"
    expected = _sha256(site["mirror"] / "glove.6B.zip")

    path = download.fetch_glove("6B", cache, base_url=server.base_url, sha256=expected.upper())
    again = download.fetch_glove("6B", cache, base_url=server.base_url, sha256=expected)

    assert path == again == str(cache / "glove.6B.zip")
    assert _sha256(path) == expected
    assert server.requests == ["/mirror/glove.6B.zip"]
    values = download.glove_flag_values(path)
    assert values == [f"{path}#glove.6B.50d.txt", f"{path}#glove.6B.100d.txt"]
    # The value is what s140-preprocess --glove accepts: its reader finds the vectors.
    assert glove.infer_dim(values[0]) == 3
    assert list(glove.read_zip_lines(values[0])) == GLOVE_50D.splitlines()


def test_a_wrong_checksum_fails_clearly_and_leaves_no_file(server, tmp_path):
    cache = tmp_path / "cache"
    wrong = "0" * 64

    with pytest.raises(download.ChecksumError) as raised:
        download.fetch_sentiment140(cache, base_url=server.base_url, sha256=wrong)

    message = str(raised.value)
    assert f"Expected {server.base_url}/trainingandtestdata.zip to have sha256 {wrong}." in message
    actual = _sha256(pathlib.Path(server.root) / "mirror" / "trainingandtestdata.zip")
    assert f"Received: {actual}." in message
    assert not (cache / "trainingandtestdata.zip").exists()


def test_a_missing_file_names_the_url_and_the_manual_fix(server, tmp_path):
    cache = tmp_path / "cache"

    with pytest.raises(download.DownloadError) as raised:
        download.fetch_glove("twitter.27B", cache, base_url=server.base_url)

    message = str(raised.value)
    assert f"Could not download {server.base_url}/glove.twitter.27B.zip" in message
    assert "404" in message
    assert f"put it at {cache / 'glove.twitter.27B.zip'} and run again" in message
    assert not (cache / "glove.twitter.27B.zip").exists()


def test_an_archive_without_the_expected_csv_is_reported(server, site, tmp_path):
    with zipfile.ZipFile(site["mirror"] / download.SENTIMENT140_ARCHIVE, "w") as zipped:
        zipped.writestr("readme.txt", "not the data")

    expected = r"Expected 'training\.1600000.*Received members: \['readme\.txt'\]"
    with pytest.raises(download.DownloadError, match=expected):
        download.fetch_sentiment140(tmp_path / "cache", base_url=server.base_url)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda cache: download.fetch_glove("42B", cache),
            "Expected a GloVe archive name, one of ['6B', '840B', 'twitter.27B']. Received: '42B'.",
        ),
        (
            lambda cache: download.fetch_sentiment140(cache, sha256="abc"),
            "Expected sha256 to be 64 hex digits. Received: 'abc'.",
        ),
        (
            lambda cache: download.fetch_sentiment140(cache, base_url="mirror.example.com/s140"),
            "Expected a base URL starting with one of ['http://', 'https://', 'file://']. "
            "Received: 'mirror.example.com/s140/trainingandtestdata.zip'.",
        ),
    ],
)
def test_bad_arguments_fail_before_any_download(tmp_path, call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(tmp_path / "cache")


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "preprocessing.download_main", *args],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_fetches_everything_and_prints_the_preprocess_flags(server, tmp_path):
    cache = tmp_path / "cache"

    result = _cli(f"--base_url={server.base_url}", f"--cache_dir={cache}")

    assert result.returncode == 0, result.stderr
    assert sorted(server.requests) == ["/mirror/glove.6B.zip", "/mirror/trainingandtestdata.zip"]
    command = next(line for line in result.stdout.splitlines() if "s140-preprocess " in line)
    words = shlex.split(command)
    assert words == [
        "s140-preprocess",
        f"--train_csv={cache}/sentiment140/{download.SENTIMENT140_TRAIN_CSV}",
        f"--test_csv={cache}/sentiment140/{download.SENTIMENT140_TEST_CSV}",
        f"--glove={cache}/glove.6B.zip#glove.6B.50d.txt",
        "--output_dir=DATA_DIR",
    ]
    assert f"--glove={cache}/glove.6B.zip#glove.6B.100d.txt" in result.stdout
    assert (cache / "sentiment140" / download.SENTIMENT140_TRAIN_CSV).is_file()

    # A second run, Sentiment140 only: served from the cache, no new request.
    again = _cli(f"--base_url={server.base_url}", f"--cache_dir={cache}", "--what=sentiment140")
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == 2
    assert "--glove=" not in again.stdout


def test_cli_download_failure_exits_with_the_message_not_a_traceback(server, tmp_path):
    result = _cli(
        f"--base_url={server.base_url}", f"--cache_dir={tmp_path}", "--what=glove", "--glove=840B"
    )

    assert result.returncode == 2
    url = f"{server.base_url}/glove.840B.300d.zip"
    assert f"s140-download: error: Could not download {url}" in result.stderr
    assert "Traceback" not in result.stderr
    # Seen: TensorFlow's CUDA and oneDNN start-up lines before the message.
    assert not [line for line in result.stderr.splitlines() if "cuInit" in line or "oneDNN" in line or "cuda" in line]


@pytest.mark.parametrize(
    "flag, complaint",
    [
        ("--no_such_flag=1", "Unknown command line flag 'no_such_flag'"),
        ("--glove=42B", "value should be one of <6B|twitter.27B|840B|none>"),
        ("--what=tweets", "Expected --what to list some of ['sentiment140', 'glove']."),
    ],
)
def test_cli_rejects_bad_flags_before_downloading(tmp_path, flag, complaint):
    result = _cli(flag, f"--cache_dir={tmp_path / 'cache'}", "--base_url=http://127.0.0.1:9")

    assert result.returncode != 0
    assert complaint in result.stderr
    assert not (tmp_path / "cache").exists()


def test_a_file_url_mirror_works_without_a_server(site, tmp_path):
    # A mirror on a shared disk: base_url may be a file:// URL.
    path = download.fetch_glove("6B", tmp_path / "cache", base_url=site["mirror"].as_uri())

    assert pathlib.Path(path).read_bytes() == (site["mirror"] / "glove.6B.zip").read_bytes()
