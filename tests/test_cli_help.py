"""--help of s140-train, s140-tune, s140-predict and s140-download: their own flags, grouped, with examples, and
no TensorFlow start-up lines on stderr (the CLIs load TensorFlow quietly first)."""

import os
import pathlib
import subprocess
import sys

from common import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
NOISE = ("oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog", "cpu_feature_guard")


def _help(module):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", module, "--help"], env=env, capture_output=True, text=True, timeout=120
    )


def _noise(stderr):
    return [line for line in stderr.splitlines() if any(word in line for word in NOISE)]


def test_help_requested_stops_at_the_positional_marker():
    assert cli.help_requested(["--data_dir=x", "--help"])
    assert cli.help_requested(["-h"]) and cli.help_requested(["--helpshort"])
    assert not cli.help_requested(["--data_dir=x"])
    assert not cli.help_requested(["--", "--help"])
    assert not cli.help_requested(["--helpfull"])  # absl's full list stays absl's


def _sections(text):
    """The titles of the flag groups (after the docstring, whose example lines may end in ':')."""
    flags_part = text.split("\n\n\n")[-1] if "\n\n\n" in text else text
    return [line[:-1] for line in flags_part.splitlines() if line.endswith(":") and not line.startswith(" ")]


def test_train_help_lists_its_flags_grouped_with_examples():
    helped = _help("trainer")
    assert helped.returncode == 0, helped.stderr
    assert _sections(helped.stdout) == [
        "Data and outputs", "Model", "Hyperparameters (each also settable through --hparams)",
        "Training", "Devices and speed",
    ]
    for flag in ("--data_dir", "--job_dir", "--overwrite", "--architecture", "--lstm_units", "--epochs",
                 "--batch_size", "--jit_compile"):
        assert f"\n  {flag} (default: " in helped.stdout
    assert "  --epochs (default: '10')\n      Maximum number of epochs." in helped.stdout
    assert "  s140-train --data_dir=runs/data --job_dir=runs/bilstm" in helped.stdout  # the example
    assert "Try --helpfull" not in helped.stdout
    assert _noise(helped.stderr) == []


def test_tune_help_lists_its_flags_grouped_with_examples():
    helped = _help("tuning")
    assert helped.returncode == 0, helped.stderr
    assert _sections(helped.stdout) == [
        "Data and outputs", "Search", "Each trial's fit", "The best configuration", "Devices and speed",
        "Several processes",
    ]
    for flag in ("--tuner_dir", "--tuner", "--max_trials", "--seed", "--epochs_best", "--role", "--cpu_replicas"):
        assert f"\n  {flag} (default: " in helped.stdout
    assert "  s140-tune --data_dir=runs/data --tuner_dir=runs/tune" in helped.stdout
    assert _noise(helped.stderr) == []


def test_predict_and_download_help_list_their_flags_grouped_with_examples():
    predicted = _help("trainer.predict_main")
    assert predicted.returncode == 0, predicted.stderr
    assert _sections(predicted.stdout) == ["Model", "Input and output"]
    assert "  --model_dir (default: unset)\n      Directory of the exported model" in predicted.stdout
    assert 's140-predict --model_dir=runs/job/model "I love this song"' in predicted.stdout
    downloaded = _help("preprocessing.download_main")
    assert downloaded.returncode == 0, downloaded.stderr
    assert _sections(downloaded.stdout) == ["What to fetch", "Where from, and checks"]
    assert "  --glove (default: '6B')" in downloaded.stdout
    for helped in (predicted, downloaded):
        assert "Try --helpfull" not in helped.stdout
        assert _noise(helped.stderr) == []
