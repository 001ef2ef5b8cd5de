"""cloudbuild.yaml, Dockerfile and .dockerignore: shape and consistency (no Docker
engine here, so the image itself is not built by the tests)."""

import os
import re
import shlex

import pytest

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
    assert re.search(r'pip install "\.\[cloud,glove,plots\]"', text)
    for line in instructions:
        if line.startswith("COPY ") and "--from" not in line:
            source = line.split()[1]
            assert os.path.exists(os.path.join(REPO, source)), source
    # The packages the image copies are exactly the ones setup.py ships.
    copied = {line.split()[1] for line in instructions if line.startswith("COPY ") and "--from" not in line}
    assert copied == {"setup.py", "preprocessing", "trainer", "tuning", "cloud"}


def test_dockerignore_keeps_local_state_out_of_the_context():
    with open(os.path.join(REPO, ".dockerignore")) as handle:
        patterns = {line.strip() for line in handle if line.strip() and not line.startswith("#")}
    assert {".venv", "runs", "demo", ".git", "**/__pycache__", "*.egg-info"} <= patterns
    assert not patterns & {"cloud", "trainer", "tuning", "preprocessing", "setup.py"}
