"""What the Dockerfile and constraints.txt say, read (never run) for the tests that play
the image without a Docker engine (tests/support/container_venv.py, tests/test_cloud_scale.py).

Only the Dockerfile syntax this repository uses is understood: `\\` line continuations,
`#` comment lines, `ARG NAME=default`, `ENV KEY=value ...`, `COPY src... dest`, shell-form
`RUN` and exec-form `ENTRYPOINT`. Anything else that these helpers need fails with the
instruction it could not read.
"""

import dataclasses
import json
import os
import shlex

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/support/ -> the repository
DOCKERFILE = os.path.join(REPO, "Dockerfile")
CONSTRAINTS = os.path.join(REPO, "constraints.txt")


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    rest: str


def instructions(path=DOCKERFILE):
    """Every instruction of the Dockerfile, continuation lines joined."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append(Instruction(keyword.upper(), rest.strip()))
    return found


def final_stage(path=DOCKERFILE):
    """The instructions after the last FROM: the image that runs."""
    found = instructions(path)
    starts = [i for i, instruction in enumerate(found) if instruction.keyword == "FROM"]
    if not starts:
        raise ValueError(f"Expected a FROM instruction in {path}. Received none.")
    return found[starts[-1] + 1:]


def arg_defaults(path=DOCKERFILE):
    """{name: default} of every `ARG NAME=default` (the build's values without --build-arg)."""
    defaults = {}
    for instruction in instructions(path):
        if instruction.keyword == "ARG" and "=" in instruction.rest:
            name, value = instruction.rest.split("=", 1)
            defaults[name.strip()] = value.strip()
    return defaults


def env(path=DOCKERFILE):
    """The ENV of the final stage, as the container starts with it."""
    values = {}
    for instruction in final_stage(path):
        if instruction.keyword == "ENV":
            for item in shlex.split(instruction.rest):
                if "=" not in item:
                    raise ValueError(f"Expected ENV KEY=value pairs. Received: ENV {instruction.rest}")
                key, value = item.split("=", 1)
                values[key] = value
    return values


def copied_sources(path=DOCKERFILE):
    """The build-context paths the final stage COPYs in (not those from other stages)."""
    sources = []
    for instruction in final_stage(path):
        if instruction.keyword == "COPY" and not instruction.rest.startswith("--from"):
            sources += instruction.rest.split()[:-1]
    return sources


def pip_install_runs(path=DOCKERFILE):
    """The shell commands of the final stage's RUN instructions that pip-install from
    constraints.txt (the image's install line), in order."""
    runs = [instruction.rest for instruction in final_stage(path)
            if instruction.keyword == "RUN" and "pip install" in instruction.rest and "constraints.txt" in instruction.rest]
    if not runs:
        raise ValueError(f"Expected a `RUN ... pip install --constraint constraints.txt ...` in {path}. Received none.")
    return runs


def entrypoint(path=DOCKERFILE):
    """The exec-form ENTRYPOINT as a list, e.g. ["python3", "-m", "cloud.entrypoint"]."""
    (rest,) = [instruction.rest for instruction in final_stage(path) if instruction.keyword == "ENTRYPOINT"]
    try:
        return json.loads(rest)
    except json.JSONDecodeError as error:
        raise ValueError(f"Expected an exec-form ENTRYPOINT [\"...\"]. Received: ENTRYPOINT {rest}") from error


def pins(path=CONSTRAINTS):
    """{name: version} of constraints.txt's `name==version` lines."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    return dict(line.split("==") for line in lines)
