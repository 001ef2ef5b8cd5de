"""One writer per directory (common/dir_lock.py): on local disk, and on Cloud
Storage against the local emulator."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from support.gcs_fault_proxy import FaultProxy, free_port  # tests/

from common import dir_lock

BUCKET = "lock-bucket"


def test_a_second_writer_is_refused_by_name_until_the_first_releases(tmp_path):
    directory = str(tmp_path / "out")
    with dir_lock.holding(directory, command="s140-train"):
        with pytest.raises(dir_lock.DirectoryLocked) as refused:
            with dir_lock.holding(directory, command="s140-compare"):
                pass
        message = str(refused.value)
        assert f"s140-train (host {socket.gethostname()}, pid {os.getpid()}, started " in message
        assert message.startswith(f"Expected {directory} to have no other writer.")
        held = json.loads((tmp_path / "out" / dir_lock.LOCK_NAME).read_text())
        assert (held["command"], held["pid"]) == ("s140-train", os.getpid())
    assert not os.path.exists(directory)  # released: it made the folder, and nothing was written
    with dir_lock.holding(directory, command="s140-train"):
        open(os.path.join(directory, "run.json"), "w").close()
    assert os.listdir(directory) == ["run.json"]  # nothing of the lock left


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    directory = str(tmp_path / "out")
    script = textwrap.dedent(f"""
        import sys, time
        from common import dir_lock
        with dir_lock.holding({directory!r}, command="killed"):
            print("held", flush=True)
            time.sleep(600)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(dir_lock.DirectoryLocked, match=r"in use by killed \(host"):
            with dir_lock.holding(directory, command="second"):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # The lock file is still there, but the kernel dropped the dead process's lock.
    assert os.path.exists(os.path.join(directory, dir_lock.LOCK_NAME))
    with dir_lock.holding(directory, command="second"):
        assert json.loads(open(os.path.join(directory, dir_lock.LOCK_NAME)).read())["command"] == "second"


def test_a_symlink_in_place_of_the_lock_is_refused_and_not_followed(tmp_path):
    directory = tmp_path / "out"
    directory.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    (directory / dir_lock.LOCK_NAME).symlink_to(outside)
    with pytest.raises(dir_lock.DirectoryError, match="Received a symlink"):
        with dir_lock.holding(str(directory), command="s140-train"):
            pass
    assert outside.read_text() == "keep me"


def test_a_file_or_a_read_only_folder_in_place_of_the_directory_is_one_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(dir_lock.DirectoryError, match=r"to be a directory \(or absent\). Received a file."):
        with dir_lock.holding(str(tmp_path / "a-file"), command="s140-train"):
            pass
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    # As root, permissions do not stop writes: a private read-only bind mount does.
    mount = f"mount --bind -o ro {read_only} {read_only}"
    if subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True).returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m)")
    script = f"from common import dir_lock\nwith dir_lock.holding({str(read_only / 'job')!r}, command='x'): pass"
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{mount} && exec {sys.executable} -c \"$0\"", script],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"common.dir_lock.DirectoryError: Expected to create the directory "
                    f"{read_only / 'job'}. Received: Read-only file system.")


def test_another_file_system_is_not_taken_for_a_local_path(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with dir_lock.holding("hdfs://cluster/runs/job", command="s140-train"):
        pass
    assert os.listdir(tmp_path) == []  # no local "hdfs:" folder
    assert "No lock on hdfs://cluster/runs/job: only local paths and gs:// are locked." in caplog.text


# --- Cloud Storage, against the emulator.


@pytest.fixture
def gcs(monkeypatch):
    """A bucket on the emulator, behind a front that evaluates ifGenerationMatch as Cloud
    Storage does (the emulator alone ignores it)."""
    gcp_storage_emulator = pytest.importorskip("gcp_storage_emulator.server")
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = gcp_storage_emulator.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    front = FaultProxy(port, preconditions=True)
    front.thread.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{front.port}")
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    client.create_bucket(BUCKET)
    yield client.bucket(BUCKET)
    front.server.shutdown()
    server.stop()


def test_on_cloud_storage_a_second_writer_is_refused_and_a_release_frees_it(gcs):
    directory = f"gs://{BUCKET}/runs/job"
    with dir_lock.holding(directory, command="s140-train"):
        held = json.loads(gcs.blob(f"runs/job/{dir_lock.LOCK_NAME}").download_as_bytes())
        assert (held["command"], held["pid"]) == ("s140-train", os.getpid())
        with pytest.raises(dir_lock.DirectoryLocked, match=r"in use by s140-train \(host"):
            with dir_lock.holding(directory, command="s140-tune"):
                pass
    assert not gcs.blob(f"runs/job/{dir_lock.LOCK_NAME}").exists()
    with dir_lock.holding(directory, command="s140-tune"):
        pass


def test_on_cloud_storage_a_lock_not_renewed_is_taken_over(gcs, monkeypatch):
    directory = f"gs://{BUCKET}/job"
    gcs.blob(f"job/{dir_lock.LOCK_NAME}").upload_from_string(json.dumps(dir_lock.holder("dead run")))
    with pytest.raises(dir_lock.DirectoryLocked, match="in use by dead run"):
        with dir_lock.holding(directory, command="s140-train"):
            pass
    monkeypatch.setattr(dir_lock, "STALE_SECONDS", 0)  # as if its holder stopped beating long ago
    with dir_lock.holding(directory, command="s140-train"):
        held = json.loads(gcs.blob(f"job/{dir_lock.LOCK_NAME}").download_as_bytes())
        assert held["command"] == "s140-train"
