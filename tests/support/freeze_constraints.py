"""Prints constraints.txt: the installed versions of everything the training image
installs, i.e. `pip freeze` limited to the dependency closure of setup.py's
install_requires and its cloud, glove and plots extras (the Dockerfile's install line).

  python tests/support/freeze_constraints.py > constraints.txt

TensorFlow is left out: the base image provides it and pip must not replace it.
"""

import ast
import importlib.metadata
import os
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/support/ -> the repository
IMAGE_EXTRAS = ("cloud", "glove", "plots")
# Provided by the base image (tensorflow/tensorflow:*-gpu), or by pip itself.
NOT_PINNED = {"tensorflow", "tensorflow-cpu", "tf-keras", "setuptools", "pip", "wheel"}
HEADER = """\
# The versions the tests ran with, for the training image (Dockerfile: pip install -c).
#
# `pip freeze` of the test environment, limited to what setup.py's install_requires and
# its cloud, glove and plots extras pull in. TensorFlow is left out: the base image
# provides it (GPU build), and pip must not replace it. apache-beam equals the
# Dockerfile's BEAM_VERSION and setup.py's pin (tests/test_cloud_build.py checks them).
# Regenerate after changing setup.py's requirements:
#   python tests/support/freeze_constraints.py > constraints.txt
"""


def image_requirements(setup_py=os.path.join(REPO, "setup.py")):
    """setup.py's install_requires plus its IMAGE_EXTRAS, as `Requirement`s (read, not run:
    strings and f-strings over setup.py's own string constants)."""
    tree = ast.parse(open(setup_py, encoding="utf-8").read())
    constants = {
        node.targets[0].id: node.value.value for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and len(node.targets) == 1
    }

    def text(node):
        return eval(compile(ast.Expression(node), setup_py, "eval"), {"__builtins__": {}}, dict(constants))

    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and any(
        keyword.arg == "install_requires" for keyword in node.keywords))
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    requirements = [text(item) for item in keywords["install_requires"].elts]
    extras = keywords["extras_require"]
    for key, value in zip(extras.keys, extras.values):
        if text(key) in IMAGE_EXTRAS:
            requirements += [text(item) for item in value.elts]
    return [Requirement(requirement) for requirement in requirements]


def _applies(requirement, extras):
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(roots):
    """{canonical name: installed version} of `roots` and everything they require here."""
    versions, seen = {}, set()
    todo = [(root, frozenset(root.extras)) for root in roots]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in NOT_PINNED or (name, extras) in seen:
            continue
        seen.add((name, extras))
        distribution = importlib.metadata.distribution(requirement.name)
        versions[name] = distribution.version
        for text in distribution.requires or ():
            needed = Requirement(text)
            if _applies(needed, extras):
                todo.append((needed, frozenset(needed.extras)))
    return versions


def main():
    sys.stdout.write(HEADER)
    for name, version in sorted(closure(image_requirements()).items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
