"""The packages' layers: common/ at the bottom, no import circle anywhere (lazy imports
inside functions included), and TensorFlow imported only through common/quiet_tf.py."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("common", "preprocessing", "trainer", "tuning", "cloud")
# Which packages each may import (besides itself): the layers of docs/architecture.md.
MAY_IMPORT = {
    "common": set(),
    "preprocessing": {"common"},
    "trainer": {"common", "preprocessing"},
    "tuning": {"common", "preprocessing", "trainer"},
    "cloud": {"common", "preprocessing", "trainer", "tuning"},
}


def _module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """The package modules `path` imports anywhere in it, and its TensorFlow imports."""
    found, tensorflow = set(), []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        tensorflow += [name for name in names if name.split(".")[0] == "tensorflow"]
        found |= {name for name in names if name.split(".")[0] in PACKAGES}
    return found, tensorflow


def _graph():
    modules = {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported, _ = _imports(path)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph, modules


def test_no_package_imports_a_layer_above_it():
    graph, _ = _graph()
    wrong = [
        (module, target) for module, targets in graph.items() for target in targets
        if target.split(".")[0] != module.split(".")[0] and target.split(".")[0] not in MAY_IMPORT[module.split(".")[0]]
    ]
    assert wrong == []


def test_no_import_circle():
    graph, _ = _graph()
    circles = []

    def visit(module, path):
        for target in sorted(graph[module]):
            if target in path:
                circles.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(module)

    done = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert circles == []


def test_tensorflow_is_imported_only_through_quiet_tf():
    _, modules = _graph()
    direct = {name: tf for name, path in modules.items() if (tf := _imports(path)[1]) and name != "common.quiet_tf"}
    assert direct == {}
