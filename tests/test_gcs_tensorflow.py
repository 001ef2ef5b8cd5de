"""The trainer, the tuner and the predictor on `gs://` through TensorFlow's own GCS file
system, with a local Cloud Storage emulator standing in for Google's endpoints (see
tests/support/gcs_front.py for how). Every command runs as a user runs it, in a subprocess, in
a mount namespace where storage.googleapis.com and www.googleapis.com are the front.

Data: the real Beam job's output on the built-in sample (the session's sample_data_dir),
uploaded to the emulator bucket with metadata.json last. Checks read the bucket through
the emulator directly; the front's request log shows the files went through TensorFlow.
"""

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from support import gcs_front
from support import kill_after  # SIGKILL a started CLI once it got far enough

BUCKET = "s140-gcs"
TIMEOUT = 300
TWEETS = ["I love this, great happy day", "hate this, so sad and terrible"]


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """The emulator behind a TLS front, or a skip that says why (a failure on CI)."""
    reason = gcs_front.namespace_unavailable_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the gs:// tests, but {reason}")
        pytest.skip(reason)
    pytest.importorskip("gcp_storage_emulator.server", reason="the test extra installs gcp-storage-emulator")
    environment = gcs_front.GcsEnvironment(str(tmp_path_factory.mktemp("gcs")), BUCKET)
    yield environment
    environment.close()
    assert environment.front.errors == []  # no request the emulator failed to answer


@pytest.fixture(scope="module")
def gs_data_dir(gcs, sample_data_dir):
    return gcs.upload_dir(sample_data_dir, "prep/data")


def _module(name, *flags):
    return [sys.executable, "-m", name, *flags]


def _gs(name):
    return f"gs://{BUCKET}/{name}"


def _json(gcs, name):
    return json.loads(gcs.read(name)) if gcs.exists(name) else {}


def _requests_under(gcs, prefix):
    """Requests that reached the front (TensorFlow's GCS client) naming `prefix`."""
    encoded = prefix.replace("/", "%2F")
    return [r for r in gcs.front.requests if encoded in r[2]]


def _leftovers(names):
    """Temporary objects never renamed into place: the package's `name.tmp-<pid>`,
    TensorFlow's `saved_model.pb.tmp<hex>`, `*.tempstate<n>` and `variables_temp/`."""
    return [n for n in names if any(mark in n for mark in (".tmp", ".tempstate", "_temp/"))]


def _wait_all(processes):
    deadline = time.monotonic() + TIMEOUT
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for process in processes:
            process.kill()
            process.wait()
    return outputs


# --- The front's own two fixes, as TensorFlow's requests look on the wire.


def _front_request(gcs, method, path, headers, body):
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=gcs.ca)
    connection = http.client.HTTPSConnection(gcs.front.address, 443, context=context, timeout=30)
    connection.sock = context.wrap_socket(
        socket.create_connection((gcs.front.address, 443), timeout=30), server_hostname="www.googleapis.com")
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", "www.googleapis.com")
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_the_front_dechunks_uploads_and_stores_empty_directory_markers(gcs):
    upload = f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name="
    payload = b"hello, chunked world"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    # Both framings at once, as TensorFlow sends them; Content-Length counts the framing.
    status, _ = _front_request(gcs, "POST", upload + "front%2Fchunked.txt",
                               {"Transfer-Encoding": "chunked", "Content-Length": str(len(chunked))}, chunked)
    assert status == 200
    status, _ = _front_request(gcs, "POST", upload + "front%2Fdir%2F&ifGenerationMatch=0", {"Content-Length": "0"}, b"")
    assert status == 200
    assert gcs.read("front/chunked.txt") == payload
    assert gcs.names("front") == ["chunked.txt", "dir/"] and gcs.read("front/dir/") == b""
    assert gcs.front.errors == []


# --- a. One Vertex-style run on gs://, killed once and resumed.

RUN = "runs/vertex"
EPOCHS = 3


@pytest.fixture(scope="module")
def vertex_run(gcs, gs_data_dir, tmp_path_factory):
    """`s140-train` with gs:// data and job dir and the AIP_* directories Vertex sets
    (with their trailing slashes), SIGKILLed once its first epoch is backed up, then
    run again with the same command. Returns what the test checks."""
    env = gcs.env(
        AIP_MODEL_DIR=_gs(f"{RUN}/model/"),
        AIP_CHECKPOINT_DIR=_gs(f"{RUN}/checkpoints/"),
        AIP_TENSORBOARD_LOG_DIR=_gs(f"{RUN}/logs/"),
    )
    command = _module(
        "trainer", f"--data_dir={gs_data_dir}", f"--job_dir={_gs(RUN)}", "--architecture=gap",
        "--dense_units=8", f"--epochs={EPOCHS}", "--batch_size=16", "--early_stopping_patience=0",
    )
    cwd = tmp_path_factory.mktemp("vertex")
    first = gcs.popen(command, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    # history.json is written before the epoch's backup; once the backup's metadata is
    # there too, a resume starts after that epoch.
    kill_after.kill_when(
        first,
        lambda: _json(gcs, f"{RUN}/history.json").get("epoch")
        and gcs.exists(f"{RUN}/checkpoints/backup/training_metadata.json"),
        timeout=TIMEOUT, waiting_for="epoch backed up", poll_seconds=0.05,
    )
    killed = {"returncode": first.returncode, "history": _json(gcs, f"{RUN}/history.json"),
              "names": gcs.names(RUN)}
    second = gcs.run(command, env, timeout=TIMEOUT, cwd=cwd)
    return {"killed": killed, "second": second}


def test_a_vertex_run_on_gs_is_killed_resumed_and_complete(gcs, vertex_run):
    killed, second = vertex_run["killed"], vertex_run["second"]
    assert killed["returncode"] == -signal.SIGKILL
    assert 1 <= len(killed["history"]["epoch"]) < EPOCHS
    # Nothing of the interrupted run looks complete.
    for complete_sign in ("metrics.json", "report.md", "model.keras", "model/saved_model.pb"):
        assert complete_sign not in killed["names"], killed["names"]

    assert second.returncode == 0, second.stderr[-3000:]
    history = _json(gcs, f"{RUN}/history.json")
    assert history["epoch"] == list(range(EPOCHS))  # each epoch exactly once
    metrics = _json(gcs, f"{RUN}/metrics.json")
    assert metrics["epochs_run"] == EPOCHS
    resumed_at = EPOCHS - metrics["epochs_run_this_process"]
    assert 1 <= resumed_at <= len(killed["history"]["epoch"])
    assert history["loss"][:resumed_at] == killed["history"]["loss"][:resumed_at]
    assert "Resuming at epoch" in second.stderr
    # Vertex's trailing slashes are gone from the directories the run recorded.
    assert {k: metrics["outputs"][k] for k in ("model_dir", "checkpoint_dir", "log_dir")} == {
        "model_dir": _gs(f"{RUN}/model"), "checkpoint_dir": _gs(f"{RUN}/checkpoints"), "log_dir": _gs(f"{RUN}/logs")}

    names = gcs.names(RUN)
    for expected in ("metrics.json", "history.json", "report.md", "model.keras",
                     "model/saved_model.pb", "checkpoints/best.keras"):
        assert expected in names, names
    assert [n for n in names if n.startswith("model/variables/variables.data")], names
    assert [n for n in names if n.startswith("logs/train/events.out.tfevents.")], names
    assert [n for n in names if n.startswith("logs/validation/events.out.tfevents.")], names
    assert _leftovers(names) == []
    assert f"gs://{BUCKET}/{RUN}/report.md" in second.stdout
    # TensorFlow itself read the shards and wrote the export through the front, with
    # no credentials (an empty token: no Authorization header at all).
    assert _requests_under(gcs, "prep/data/train/") and _requests_under(gcs, f"{RUN}/model/")
    assert gcs.front.authorizations == {None}


# --- b. Two workers under MultiWorkerMirroredStrategy, one gs:// job dir.


def test_two_workers_train_together_on_gs_and_only_the_chief_writes(gcs, gs_data_dir, tmp_path):
    base = "runs/multiworker"
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    workers = [f"127.0.0.1:{port}" for port in ports]
    command = _module(
        "trainer", f"--data_dir={gs_data_dir}", f"--job_dir={_gs(base)}", "--architecture=gap",
        "--dense_units=8", "--epochs=1", "--batch_size=32",
    )
    processes = [
        gcs.popen(
            command,
            gcs.env(TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        for i in range(2)
    ]
    outputs = _wait_all(processes)
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]

    metrics = _json(gcs, f"{base}/metrics.json")
    assert (metrics["strategy"], metrics["num_workers"], metrics["replicas"]) == ("multi_worker", 2, 2)
    assert metrics["global_batch_size"] == 64 and metrics["epochs_run"] == 1
    names = gcs.names(base)
    for expected in ("metrics.json", "history.json", "report.md", "model.keras",
                     "model/saved_model.pb", "checkpoints/best.keras"):
        assert expected in names, names
    assert _json(gcs, f"{base}/history.json")["epoch"] == [0]
    assert _leftovers(names) == []
    # The chief held the job dir's lock on Cloud Storage and released it (common/dir_lock.py).
    lock = f"{base}/.s140.lock"
    assert [r for r in _requests_under(gcs, lock) if r[0] == "DELETE"] and not gcs.exists(lock)
    # The non-chief kept its copies in a local scratch directory: one event file per
    # TensorBoard split, the chief's.
    assert len([n for n in names if n.startswith("logs/train/events.out.tfevents.")]) == 1, names
    assert "Worker finished" in outputs[1][0]


# --- c. A chief + worker sweep with a gs:// tuner directory.


def test_a_chief_and_a_worker_sweep_into_a_gs_tuner_dir(gcs, gs_data_dir, tmp_path):
    base = "tune/sweep"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    trials = 2
    common = [
        f"--data_dir={gs_data_dir}", f"--tuner_dir={_gs(base)}", "--tuner=random",
        "--architectures=gap", "--max_epochs=1", f"--max_trials={trials}", "--epochs_best=0",
        f"--oracle_address=127.0.0.1:{port}",
    ]
    processes = [
        gcs.popen(_module("tuning", *common, *role), {**gcs.env(), "S140_SWEEP_SECRET": "gcs-test-secret-0123456"},
                  stdout=subprocess.PIPE,
                  stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        for role in (["--role=chief"], ["--role=worker", "--worker_id=1"])
    ]
    outputs = [stdout for stdout, _ in _wait_all(processes)]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]

    names = gcs.names(base)
    for expected in ("best_hyperparameters.json", "trials.csv", "summary.md", "search/oracle.json"):
        assert expected in names, names
    rows = list(csv.DictReader(io.StringIO(gcs.read(f"{base}/trials.csv").decode())))
    assert [r["trial_id"] for r in rows] == [str(i) for i in range(trials)]
    assert [r["status"] for r in rows] == ["COMPLETED"] * trials
    for row in rows:
        assert f"search/trial_{row['trial_id']}/trial.json" in names, names
        info = _json(gcs, f"{base}/search/trial_{row['trial_id']}/s140_trial.json")
        assert info["attempts"] == 1 and info["tuner_id"] == row["tuner_id"]
    best = _json(gcs, f"{base}/best_hyperparameters.json")
    assert best["trial_id"] == max(rows, key=lambda r: float(r["val_accuracy"]))["trial_id"]
    assert "the chief writes the results" in outputs[1]
    assert _leftovers(names) == []


# --- d. s140-predict on the gs:// export of (a).


def test_predict_scores_tweets_from_a_gs_export(gcs, vertex_run, tmp_path):
    from trainer import export

    assert vertex_run["second"].returncode == 0, vertex_run["second"].stderr[-3000:]
    model_dir = f"{RUN}/model"
    gcs.client().bucket(BUCKET).blob("inputs/tweets.txt").upload_from_string("\n".join(TWEETS) + "\n")
    result = gcs.run(
        _module("trainer.predict_main", f"--model_dir={_gs(model_dir)}", "--format=json",
                f"--input_file={_gs('inputs/tweets.txt')}"),
        gcs.env(), timeout=TIMEOUT, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == TWEETS

    # The same export, copied out of the bucket and loaded here, scores the same.
    local = tmp_path / "model"
    for name in gcs.names(model_dir):
        if name and not name.endswith("/"):  # "" and "x/" are TensorFlow's directory markers
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            (local / name).write_bytes(gcs.read(f"{model_dir}/{name}"))
    expected = export.load_serving_model(str(local))(TWEETS)
    np.testing.assert_allclose([line["probability"] for line in lines], expected, atol=1e-6)
    assert [line["label"] for line in lines] == ["positive" if p > 0.5 else "negative" for p in expected]
