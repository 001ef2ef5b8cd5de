"""s140-submit hptune: the study spec from tuning.search_space's table, the
HyperparameterTuningJob body (parsed strictly into its proto), its submission through
the real client to a local stand-in, and the trial command (cloud.hptrial)."""

import json
import os
import re
import subprocess
import sys

import pytest
from support.vertex_stand_in import anonymous, parse_strictly, run_cli, stand_in  # noqa: F401  (fixtures)

from cloud import __main__ as cli
from cloud import arguments
from cloud import hptrial
from cloud import hptune
from cloud import vertex
from trainer import models
from tuning import search_space

IMAGE = "us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"
COMMON = ["--project=p", "--region=us-central1", "--output_dir=gs://b/hptune/1", f"--image_uri={IMAGE}"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_study_spec_follows_the_search_space_table():
    spec = hptune.study_spec(architectures=models.ARCHITECTURES, max_length=40)
    (architecture, learning_rate) = spec["parameters"]
    assert architecture["parameterId"] == "architecture"
    assert architecture["categoricalValueSpec"]["values"] == list(models.ARCHITECTURES)
    conditional = architecture["conditionalParameterSpecs"]
    expected = [(a, k) for a, space in search_space.SEARCH_SPACE.items() for k in space]
    assert [c["parameterSpec"]["parameterId"] for c in conditional] == [f"{a}__{k}" for a, k in expected]
    assert [c["parentCategoricalValues"]["values"] for c in conditional] == [[a] for a, _ in expected]
    by_id = {c["parameterSpec"]["parameterId"]: c["parameterSpec"] for c in conditional}
    assert by_id["flatten__dense_units"]["discreteValueSpec"]["values"] == [4.0, 6.0, 8.0, 16.0, 32.0, 64.0]
    assert by_id["conv1d__kernel_size"]["discreteValueSpec"]["values"] == [3.0, 5.0, 7.0]
    # Text choices are Vizier categories, in the search space's order.
    assert by_id["conv1d__pooling"] == {"parameterId": "conv1d__pooling",
                                        "categoricalValueSpec": {"values": ["mean", "max", "max_mean"]}}
    assert by_id["bilstm__pooling"]["categoricalValueSpec"]["values"] == ["last", "max", "max_mean"]
    assert by_id["gap__wide"]["categoricalValueSpec"]["values"] == ["none", "unigrams", "bigrams"]
    assert by_id["gap__wide_buckets"]["discreteValueSpec"]["values"] == [65536.0, 262144.0]
    assert learning_rate == {"parameterId": "learning_rate", "doubleValueSpec": {"minValue": 1e-4, "maxValue": 1e-2},
                             "scaleType": "UNIT_LOG_SCALE"}
    assert spec["metrics"] == [{"metricId": "val_accuracy", "goal": "MAXIMIZE"}]
    assert "algorithm" not in spec and "medianAutomatedStoppingSpec" not in spec
    decoded = parse_strictly("StudySpec", spec)
    assert decoded.parameters[1].scale_type.name == "UNIT_LOG_SCALE"
    assert len(decoded.parameters[0].conditional_parameter_specs) == len(expected) == 50


def test_study_spec_drops_kernels_that_do_not_fit_and_takes_options():
    spec = hptune.study_spec(architectures=["conv1d", "bilstm"], max_length=5, algorithm="random",
                             median_stopping=True, tune_recurrent_dropout=True)
    conditional = {c["parameterSpec"]["parameterId"]: c["parameterSpec"]
                   for c in spec["parameters"][0]["conditionalParameterSpecs"]}
    assert spec["parameters"][0]["categoricalValueSpec"]["values"] == ["bilstm", "conv1d"]  # registry order
    assert conditional["conv1d__kernel_size"]["discreteValueSpec"]["values"] == [3.0, 5.0]
    assert conditional["bilstm__recurrent_dropout"]["discreteValueSpec"]["values"] == [0.0, 0.1, 0.2, 0.3]
    assert spec["algorithm"] == "RANDOM_SEARCH"
    assert spec["medianAutomatedStoppingSpec"] == {"useElapsedDuration": False}
    assert parse_strictly("StudySpec", spec).algorithm.name == "RANDOM_SEARCH"


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(algorithm="grid"), r"Expected --algorithm in \['bayesian', 'random'\]. Received: 'grid'."),
     (dict(architectures=["lstm9"]), r"Expected one or more architectures among"),
     (dict(architectures=["conv1d"], max_length=2), r"Expected max_length to fit the smallest convolution")],
)
def test_study_spec_errors(kwargs, message):
    with pytest.raises(arguments.SpecError, match=message):
        hptune.study_spec(**{"architectures": models.ARCHITECTURES, "max_length": 40, **kwargs})


def test_hptune_dry_run_parses_strictly_into_a_tuning_job():
    code, out = run_cli([
        "hptune", *COMMON, "--machine_type=g2-standard-8", "--accelerator_type=NVIDIA_L4", "--max_trials=12",
        "--parallel_trials=3", "--max_failed_trials=4", "--algorithm=random", "--median_stopping", "--spot",
        "--architectures=gap,bigru", "--display_name=hp-1", "--dry_run", "--",
        "--data_dir=gs://b/prep/data", "--epochs=6",
    ])
    assert code == 0
    job = json.loads(out)
    assert (job["displayName"], job["maxTrialCount"], job["parallelTrialCount"], job["maxFailedTrialCount"]) == (
        "hp-1", 12, 3, 4)
    assert job["labels"] == {"s140-command": "hptune"}
    trial = job["trialJobSpec"]
    (pool,) = trial["workerPoolSpecs"]
    assert pool["containerSpec"]["args"] == ["hptrial", "--data_dir=gs://b/prep/data", "--epochs=6"]
    assert pool["machineSpec"] == {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1}
    assert trial["baseOutputDirectory"] == {"outputUriPrefix": "gs://b/hptune/1"}
    assert trial["scheduling"] == {"strategy": "SPOT"}
    decoded = parse_strictly("HyperparameterTuningJob", job)
    assert decoded.study_spec.parameters[0].categorical_value_spec.values == ["gap", "bigru"]
    assert decoded.trial_job_spec.scheduling.strategy.name == "SPOT"
    assert decoded.study_spec.median_automated_stopping_spec.use_elapsed_duration is False


@pytest.mark.parametrize(
    "extra, job_args, message",
    [([], ["--data_dir=gs://b/d", "--architecture=gap"], r"Expected no --architecture after `--` in hptune"),
     ([], ["--data_dir=gs://b/d", "--job_dir=gs://b/x"], r"Expected no --job_dir"),
     ([], ["--data_dir=gs://b/d", "--gap__dropout=0.1"], r"Expected no --gap__dropout"),
     ([], ["--data_dir=gs://b/d", "--lstm_units=32"], r"Expected no --lstm_units"),
     ([], ["--data_dir=/nonexistent/data"], r"Expected --data_dir to be a gs:// location or an s140-preprocess "
                                             r"output directory on this machine to upload"),
     (["--max_trials=2", "--parallel_trials=3"], ["--data_dir=gs://b/d"], r"Expected --parallel_trials <= --max_trials \(2\)"),
     (["--max_trials=0"], ["--data_dir=gs://b/d"], r"Expected --max_trials to be an integer >= 1"),
     (["--tensorboard=projects/p/locations/us-central1/tensorboards/7"], ["--data_dir=gs://b/d"],
      r"Expected --service_account with --tensorboard")],
)
def test_hptune_errors(extra, job_args, message, capsys):
    code, _ = run_cli(["hptune", *COMMON, *extra, "--dry_run", "--", *job_args])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_hptune_stages_a_local_data_dir_like_train(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part-0.tfrecord.gz").write_bytes(b"12345")
    (tmp_path / "metadata.json").write_text("{}")
    code, out = run_cli(["hptune", *COMMON, "--staging_dir=gs://b/staging", "--architectures=gap", "--dry_run", "--",
                         f"--data_dir={tmp_path}", "--epochs=2"])
    assert code == 0
    (pool,) = json.loads(out)["trialJobSpec"]["workerPoolSpecs"]
    assert pool["containerSpec"]["args"] == ["hptrial", "--data_dir=gs://b/staging/data", "--epochs=2"]
    err = capsys.readouterr().err
    assert [line.split(" -> ")[1] for line in err.splitlines() if "would upload" in line] == [
        "gs://b/staging/data/train/part-0.tfrecord.gz", "gs://b/staging/data/metadata.json"]


def test_hptune_trials_with_several_machines_and_a_reduction_server():
    code, out = run_cli(["hptune", *COMMON, "--machine_type=a3-ultragpu-8g", "--accelerator_type=NVIDIA_H200_141GB",
                         "--workers=2", "--reduction_server_count=2", "--architectures=bilstm", "--dry_run", "--",
                         "--data_dir=/gcs/b/prep/data"])
    assert code == 0
    pools = json.loads(out)["trialJobSpec"]["workerPoolSpecs"]
    assert [p["replicaCount"] for p in pools] == [1, 1, 2]
    assert [p["containerSpec"]["args"] for p in pools[:2]] == [["hptrial", "--data_dir=/gcs/b/prep/data"]] * 2
    assert pools[0]["machineSpec"] == {"machineType": "a3-ultragpu-8g", "acceleratorType": "NVIDIA_H200_141GB",
                                       "acceleratorCount": 8}
    assert len(parse_strictly("HyperparameterTuningJob", json.loads(out)).trial_job_spec.worker_pool_specs) == 3


def test_hptune_submits_through_the_client(stand_in, anonymous, capsys):
    stand_in.route("POST", r"/v1/(.+)/hyperparameterTuningJobs",
                   lambda body, match: {**body, "name": f"{match[1]}/hyperparameterTuningJobs/77", "state": "JOB_STATE_PENDING"})
    code = cli.main([
        "hptune", *COMMON, "--max_trials=4", "--architectures=gap",
        "--service_account=sa@p.iam.gserviceaccount.com",
        "--tensorboard=projects/p/locations/us-central1/tensorboards/7",
        f"--api_endpoint={stand_in.endpoint}", "--", "--data_dir=gs://b/prep/data",
    ], credentials=anonymous)
    assert code == 0
    (path, body, _), = stand_in.requests
    assert path.split("?")[0] == "/v1/projects/p/locations/us-central1/hyperparameterTuningJobs"
    assert body["maxTrialCount"] == 4 and body["parallelTrialCount"] == 2
    assert body["trialJobSpec"]["tensorboard"] == "projects/p/locations/us-central1/tensorboards/7"
    assert body["trialJobSpec"]["serviceAccount"] == "sa@p.iam.gserviceaccount.com"
    ids = [c["parameterSpec"]["parameterId"] for c in body["studySpec"]["parameters"][0]["conditionalParameterSpecs"]]
    assert ids == ["gap__dense_units", "gap__dropout", "gap__pooling", "gap__spatial_dropout", "gap__wide",
                   "gap__wide_buckets"]
    out = capsys.readouterr().out
    assert "Submitted projects/p/locations/us-central1/hyperparameterTuningJobs/77 (JOB_STATE_PENDING)." in out
    assert "s140-submit hptune-results --job=projects/p/locations/us-central1/hyperparameterTuningJobs/77" in out


# --- The trial command.


def test_hptrial_turns_vizier_parameters_into_s140_train_flags():
    args = hptrial.trainer_args([
        "--data_dir=gs://b/d", "--epochs=3", "--architecture=conv_lstm", "--learning_rate=0.0012",
        "--conv_lstm__kernel_size=5.0", "--conv_lstm__embedding_dropout=0.1", "--conv_lstm__lstm_units=32.0",
    ])
    assert args == ["--data_dir=gs://b/d", "--epochs=3", "--architecture=conv_lstm", "--learning_rate=0.0012",
                    "--hparams=embedding_dropout=0.1,kernel_size=5,lstm_units=32"]


def test_hptrial_passes_categorical_values_as_text():
    args = hptrial.trainer_args([
        "--architecture=conv1d", "--learning_rate=0.003", "--conv1d__pooling=max", "--conv1d__wide=bigrams",
        "--conv1d__wide_buckets=262144.0", "--conv1d__spatial_dropout=0.2",
    ])
    # Bare text (pooling=max, not pooling='max'): s140-train's --hparams reads it as written.
    assert args == ["--architecture=conv1d", "--learning_rate=0.003",
                    "--hparams=pooling=max,spatial_dropout=0.2,wide=bigrams,wide_buckets=262144"]


@pytest.mark.parametrize(
    "argv, message",
    [(["--learning_rate=0.01"], r"Expected --architecture among a trial's arguments"),
     (["--architecture=gap", "--learning_rate=0.01", "--bigru__gru_units=32"], r"Expected only parameters of 'gap'"),
     (["--architecture=gap", "--learning_rate=fast"], r"Expected --learning_rate to be a number. Received: 'fast'."),
     (["--architecture=gap", "--learning_rate=0.1", "--gap__dropout=0.1", "--gap__dropout=0.2"], r"once"),
     (["--architecture=gap", "--learning_rate=0.1", "--gap__dense_units=many"], r"invalid literal for int.*'many'")],
)
def test_hptrial_errors(argv, message):
    with pytest.raises(hptrial.TrialArgumentError, match=message):
        hptrial.trainer_args(argv)


def test_a_trial_trains_reports_each_epoch_and_writes_under_its_model_dir(sample_data_dir, tmp_path):
    pytest.importorskip("hypertune", reason="cloudml-hypertune is in install_requires")
    trial_dir = tmp_path / "base" / "3"
    metric_file = tmp_path / "hypertune" / "output.metrics"
    env = {
        **os.environ, "CLOUD_ML_TRIAL_ID": "3", "CLOUD_ML_HP_METRIC_FILE": str(metric_file),
        "AIP_MODEL_DIR": f"{trial_dir}/model/", "AIP_CHECKPOINT_DIR": f"{trial_dir}/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": f"{trial_dir}/logs/",
        "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "cloud.entrypoint", "hptrial", f"--data_dir={sample_data_dir}", "--epochs=2",
         "--early_stopping_patience=0", "--architecture=gap", "--learning_rate=0.01", "--gap__dense_units=16.0",
         "--gap__dropout=0.1"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in metric_file.read_text().splitlines()]
    assert [(line["trial"], line["global_step"]) for line in lines] == [("3", "1"), ("3", "2")]
    history = json.loads((trial_dir / "history.json").read_text())
    assert [float(line["val_accuracy"]) for line in lines] == pytest.approx(history["val_accuracy"])
    assert (trial_dir / "model" / "saved_model.pb").exists()
    metrics = json.loads((trial_dir / "metrics.json").read_text())
    assert metrics["architecture"] == "gap" and metrics["hparams"]["dense_units"] == 16
