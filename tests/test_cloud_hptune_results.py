"""s140-submit hptune-results: a finished HyperparameterTuningJob, fetched with the real
client from a local stand-in, becomes the trials.csv, best_hyperparameters.json,
summary.md and plot that s140-tune writes."""

import csv
import io
import json

import pytest
from support.vertex_stand_in import anonymous, stand_in  # noqa: F401  (fixtures)

from cloud import __main__ as cli
from cloud import hptune
from cloud import hptune_results
from cloud import vertex

JOB = "projects/p/locations/us-central1/hyperparameterTuningJobs/77"
IMAGE = "us-central1-docker.pkg.dev/p/repo/s140-trainer:latest"


def _trial(trial_id, state, parameters, curve=(), start="2026-11-01T12:00:00Z", end="2026-11-01T12:10:30Z", **extra):
    measurements = [{"stepCount": str(i + 1), "metrics": [{"metricId": "val_accuracy", "value": v}]}
                    for i, v in enumerate(curve)]
    trial = {"id": str(trial_id), "state": state, "startTime": start, "endTime": end,
             "parameters": [{"parameterId": k, "value": v} for k, v in parameters.items()],
             "measurements": measurements, **extra}
    if curve:
        best = max(range(len(curve)), key=lambda i: curve[i])
        trial["finalMeasurement"] = measurements[best]
    return trial


def _finished_job():
    """A job as GetHyperparameterTuningJob returns it: our body plus trials and state."""
    cfg = vertex.JobConfig(project="p", region="us-central1", output_dir="gs://b/hptune/1", image_uri=IMAGE,
                           display_name="hp-1")
    study = hptune.study_spec(architectures=["gap", "bilstm"], max_length=40, algorithm="random")
    job = hptune.tuning_job(cfg, ["--data_dir=gs://b/prep/data", "--epochs=3", "--batch_size=128"], study=study,
                            max_trials=4, parallel_trials=2)
    job.update(name=JOB, state="JOB_STATE_SUCCEEDED", trials=[
        _trial(1, "SUCCEEDED", {"architecture": "gap", "learning_rate": 0.002, "gap__dense_units": 32.0,
                                "gap__dropout": 0.1}, curve=(0.70, 0.74, 0.73), customJob="projects/p/locations/us-central1/customJobs/1"),
        _trial(2, "SUCCEEDED", {"architecture": "bilstm", "learning_rate": 0.001, "bilstm__lstm_units": 64.0,
                                "bilstm__dense_units": 16.0, "bilstm__dropout": 0.2}, curve=(0.72, 0.78, 0.77)),
        _trial(3, "INFEASIBLE", {"architecture": "gap", "learning_rate": 0.0001, "gap__dense_units": 16.0,
                                 "gap__dropout": 0.0}, infeasibleReason="The replica workerpool0-0 exited with a non-zero status of 1."),
        _trial(4, "SUCCEEDED", {"architecture": "gap", "learning_rate": 0.005, "gap__dense_units": 128.0,
                                "gap__dropout": 0.5}, curve=(0.69,)),
    ])
    return job


def test_trial_records_map_parameters_and_states_back():
    records = hptune_results.trial_records(_finished_job())
    assert [(r.trial_id, r.status, r.number) for r in records] == [
        ("1", "COMPLETED", 1), ("2", "COMPLETED", 2), ("3", "FAILED", 3), ("4", "COMPLETED", 4)]
    second = records[1]
    assert second.values == {"architecture": "bilstm", "learning_rate": 0.001, "bilstm/lstm_units": 64.0,
                             "bilstm/dense_units": 16.0, "bilstm/dropout": 0.2}
    assert second.config == ("bilstm", 0.001, {"lstm_units": 64, "dense_units": 16, "dropout": 0.2})
    assert (second.score, second.best_epoch, second.info["epochs_run"], second.info["wall_seconds"]) == (0.78, 2, 3, 630.0)
    assert records[2].message.startswith("The replica workerpool0-0 exited")


def test_hptune_results_fetches_the_job_and_writes_the_report(stand_in, anonymous, tmp_path, capsys):
    job = _finished_job()
    stand_in.route("GET", r"/v1/" + JOB, lambda body, match: job)
    out_dir = tmp_path / "report"
    code = cli.main(["hptune-results", f"--job={JOB}", f"--output_dir={out_dir}",
                     f"--api_endpoint={stand_in.endpoint}"], credentials=anonymous)
    assert code == 0
    assert stand_in.methods == ["GET"] and stand_in.requests[0][0].split("?")[0] == f"/v1/{JOB}"
    rows = list(csv.DictReader((out_dir / "trials.csv").open()))
    assert [(r["trial_id"], r["status"], r["architecture"], r["val_accuracy"]) for r in rows] == [
        ("1", "COMPLETED", "gap", "0.74"), ("2", "COMPLETED", "bilstm", "0.78"), ("3", "FAILED", "gap", ""),
        ("4", "COMPLETED", "gap", "0.69")]
    assert rows[1]["bilstm/lstm_units"] == "64.0" and rows[1]["best_epoch"] == "2"
    best = json.loads((out_dir / "best_hyperparameters.json").read_text())
    assert (best["trial_id"], best["architecture"], best["hparams"]) == (
        "2", "bilstm", {"lstm_units": 64, "dense_units": 16, "dropout": 0.2})
    assert "--data_dir=gs://b/prep/data" in best["s140_train_command"]
    assert "--batch_size=128" in best["s140_train_command"] and "--epochs=3" in best["s140_train_command"]
    summary = (out_dir / "summary.md").read_text()
    assert "random search over gap, bilstm" in summary
    assert "| trials | 3 completed, 1 failed (planned: 4) |" in summary
    assert "Trial 2: **bilstm**, val_accuracy **0.7800** at epoch 2" in summary
    pytest.importorskip("matplotlib")
    assert (out_dir / "objective_per_trial.png").read_bytes()[:4] == b"\x89PNG"
    assert f"summary: {out_dir}/summary.md" in capsys.readouterr().out


def test_hptune_results_wants_a_resource_name(capsys):
    code = cli.main(["hptune-results", "--job=77", "--output_dir=/tmp/x"], out=io.StringIO())
    assert code == 2
    assert "Expected --job as a resource name projects/PROJECT/locations/REGION/..." in capsys.readouterr().err
